//! An indexed binary heap ordered by a comparator (the QueueSort plugin), with
//! removal and update by pod key.

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::QueuedPodInfo;

type LessFn = Arc<dyn Fn(&QueuedPodInfo, &QueuedPodInfo) -> bool + Send + Sync>;

pub struct Heap {
    items: Vec<QueuedPodInfo>,
    pos: HashMap<String, usize>,
    less: LessFn,
}

impl Heap {
    pub fn new(less: LessFn) -> Heap {
        Heap { items: Vec::new(), pos: HashMap::new(), less }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn peek(&self) -> Option<&QueuedPodInfo> {
        self.items.first()
    }

    pub fn push(&mut self, q: QueuedPodInfo) {
        let key = q.key();
        if let Some(&i) = self.pos.get(&key) {
            self.items[i] = q;
            self.fix(i);
            return;
        }
        self.items.push(q);
        let i = self.items.len() - 1;
        self.pos.insert(key, i);
        self.up(i);
    }

    pub fn pop(&mut self) -> Option<QueuedPodInfo> {
        if self.items.is_empty() {
            return None;
        }
        Some(self.remove_at(0))
    }

    pub fn remove(&mut self, key: &str) -> Option<QueuedPodInfo> {
        let i = *self.pos.get(key)?;
        Some(self.remove_at(i))
    }

    pub fn update(&mut self, key: &str, f: impl FnOnce(&mut QueuedPodInfo)) {
        if let Some(&i) = self.pos.get(key) {
            f(&mut self.items[i]);
            self.fix(i);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &QueuedPodInfo> {
        self.items.iter()
    }

    fn remove_at(&mut self, i: usize) -> QueuedPodInfo {
        let last = self.items.len() - 1;
        self.swap(i, last);
        let q = self.items.pop().expect("non-empty");
        self.pos.remove(&q.key());
        if i < self.items.len() {
            self.fix(i);
        }
        q
    }

    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.items.swap(a, b);
        self.pos.insert(self.items[a].key(), a);
        self.pos.insert(self.items[b].key(), b);
    }

    fn fix(&mut self, i: usize) {
        if !self.down(i) {
            self.up(i);
        }
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if (self.less)(&self.items[i], &self.items[parent]) {
                self.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn down(&mut self, start: usize) -> bool {
        let mut i = start;
        let n = self.items.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let mut best = l;
            let r = l + 1;
            if r < n && (self.less)(&self.items[r], &self.items[l]) {
                best = r;
            }
            if (self.less)(&self.items[best], &self.items[i]) {
                self.swap(i, best);
                i = best;
            } else {
                break;
            }
        }
        i > start
    }
}
