//! An indexed binary heap ordered by a comparator (the QueueSort plugin), with
//! removal and update by pod key.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::framework::QueuedPodInfo;

type LessFn = Arc<dyn Fn(&QueuedPodInfo, &QueuedPodInfo) -> bool + Send + Sync>;

/// A pod in the heap: insertion order (for ties) and its key, made once:
/// a pop moves a pod up to log2(n) times, and each move updates `pos`.
struct Entry {
    seq: u64,
    key: String,
    q: QueuedPodInfo,
}

pub struct Heap {
    items: Vec<Entry>,
    seq: u64,
    pos: FxHashMap<String, usize>,
    less: LessFn,
}

impl Heap {
    pub fn new(less: LessFn) -> Heap {
        Heap { items: Vec::new(), seq: 0, pos: FxHashMap::default(), less }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn peek(&self) -> Option<&QueuedPodInfo> {
        self.items.first().map(|e| &e.q)
    }

    /// QueueSort order; pods the plugin considers equal keep insertion order.
    fn before(&self, a: usize, b: usize) -> bool {
        let (a, b) = (&self.items[a], &self.items[b]);
        (self.less)(&a.q, &b.q) || (!(self.less)(&b.q, &a.q) && a.seq < b.seq)
    }

    pub fn push(&mut self, q: QueuedPodInfo) {
        let key = q.key();
        if let Some(&i) = self.pos.get(&key) {
            self.items[i].q = q;
            self.fix(i);
            return;
        }
        self.seq += 1;
        let i = self.items.len();
        self.pos.insert(key.clone(), i);
        self.items.push(Entry { seq: self.seq, key, q });
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
            f(&mut self.items[i].q);
            self.fix(i);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &QueuedPodInfo> {
        self.items.iter().map(|e| &e.q)
    }

    fn remove_at(&mut self, i: usize) -> QueuedPodInfo {
        let last = self.items.len() - 1;
        self.swap(i, last);
        let Entry { key, q, .. } = self.items.pop().expect("non-empty");
        self.pos.remove(&key);
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
        for i in [a, b] {
            if let Some(p) = self.pos.get_mut(&self.items[i].key) {
                *p = i;
            }
        }
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
