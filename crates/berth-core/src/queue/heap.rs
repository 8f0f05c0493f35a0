//! An indexed binary heap ordered by a comparator (the QueueSort plugin), with
//! removal and update by pod key.

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::QueuedPodInfo;

type LessFn = Arc<dyn Fn(&QueuedPodInfo, &QueuedPodInfo) -> bool + Send + Sync>;

pub struct Heap {
    items: Vec<(u64, QueuedPodInfo)>,
    seq: u64,
    pos: HashMap<String, usize>,
    less: LessFn,
}

impl Heap {
    pub fn new(less: LessFn) -> Heap {
        Heap { items: Vec::new(), seq: 0, pos: HashMap::new(), less }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn peek(&self) -> Option<&QueuedPodInfo> {
        self.items.first().map(|(_, q)| q)
    }

    /// QueueSort order; pods the plugin considers equal keep insertion order.
    fn before(&self, a: usize, b: usize) -> bool {
        let (sa, qa) = &self.items[a];
        let (sb, qb) = &self.items[b];
        (self.less)(qa, qb) || (!(self.less)(qb, qa) && sa < sb)
    }

    pub fn push(&mut self, q: QueuedPodInfo) {
        let key = q.key();
        if let Some(&i) = self.pos.get(&key) {
            self.items[i].1 = q;
            self.fix(i);
            return;
        }
        self.seq += 1;
        self.items.push((self.seq, q));
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
            f(&mut self.items[i].1);
            self.fix(i);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &QueuedPodInfo> {
        self.items.iter().map(|(_, q)| q)
    }

    fn remove_at(&mut self, i: usize) -> QueuedPodInfo {
        let last = self.items.len() - 1;
        self.swap(i, last);
        let (_, q) = self.items.pop().expect("non-empty");
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
        self.pos.insert(self.items[a].1.key(), a);
        self.pos.insert(self.items[b].1.key(), b);
    }

    fn fix(&mut self, i: usize) {
        if !self.down(i) {
            self.up(i);
        }
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.before(i, parent) {
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
            if r < n && self.before(r, l) {
                best = r;
            }
            if self.before(best, i) {
                self.swap(i, best);
                i = best;
            } else {
                break;
            }
        }
        i > start
    }
}
