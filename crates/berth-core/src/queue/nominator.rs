//! Pods nominated to a node by preemption, which lower-or-equal priority pods
//! must not take the freed room from.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use crate::cache::Snapshot;
use crate::framework::{Nominated, NominatedPods, PodInfo};

#[derive(Default, Clone)]
pub struct Nominator {
    by_node: HashMap<String, Vec<Arc<PodInfo>>>,
    node_of: HashMap<String, String>,
    /// `by_node` by snapshot node index, as of the last `sync`: a preemptor
    /// filters every node, and looking each one up by name was a fifth of
    /// its cycle once most nodes carried a nomination.
    by_index: Vec<Vec<Nominated>>,
    /// The snapshot layout `by_index` follows, if synced.
    layout: Option<u64>,
    /// Nodes whose nominations changed since the last `sync`.
    touched: Vec<String>,
}

impl Nominator {
    pub fn add(&mut self, pod: Arc<PodInfo>, node: &str) {
        let key = pod.key();
        self.remove(&key);
        self.node_of.insert(key, node.to_string());
        self.by_node.entry(node.to_string()).or_default().push(pod);
        self.touch(node);
    }

    fn touch(&mut self, node: &str) {
        if self.layout.is_some() {
            self.touched.push(node.to_string());
        }
    }

    /// Brings the by-index view up to date with `snap`: in full when node
    /// indices changed, otherwise only for the nodes touched since.
    pub fn sync(&mut self, snap: &Snapshot) {
        if self.by_node.is_empty() {
            // Nothing to lay out (the common case): stay unsynced, so that
            // nodes coming and going cost nothing here.
            self.by_index = Vec::new();
            self.layout = None;
            self.touched.clear();
            return;
        }
        if self.layout != Some(snap.layout()) || self.by_index.len() != snap.num_nodes() {
            self.by_index = vec![Vec::new(); snap.num_nodes()];
            for (node, pods) in &self.by_node {
                if let Some(i) = snap.index_of(node) {
                    self.by_index[i] = pods.iter().map(Nominated::new).collect();
                }
            }
            self.touched.clear();
            self.layout = Some(snap.layout());
            return;
        }
        for node in std::mem::take(&mut self.touched) {
            if let Some(i) = snap.index_of(&node) {
                self.by_index[i] = self.by_node.get(&node).map(|pods| pods.iter().map(Nominated::new).collect()).unwrap_or_default();
            }
        }
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(node) = self.node_of.remove(key) {
            self.touch(&node);
            if let Some(v) = self.by_node.get_mut(&node) {
                v.retain(|p| p.key() != key);
                if v.is_empty() {
                    self.by_node.remove(&node);
                }
            }
        }
    }

    pub fn node_of(&self, key: &str) -> Option<&str> {
        self.node_of.get(key).map(|s| s.as_str())
    }

    pub fn nominated_for_node(&self, node: &str) -> Vec<Arc<PodInfo>> {
        self.by_node.get(node).cloned().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.node_of.is_empty()
    }
}

impl NominatedPods for Nominator {
    fn nominated_for(&self, node: &str) -> &[Arc<PodInfo>] {
        self.by_node.get(node).map(|v| v.as_slice()).unwrap_or(&[])
    }
    fn is_empty(&self) -> bool {
        self.node_of.is_empty()
    }
    fn by_index(&self, snap: &Snapshot) -> Option<&[Vec<Nominated>]> {
        (self.layout == Some(snap.layout()) && self.touched.is_empty() && self.by_index.len() == snap.num_nodes())
            .then_some(self.by_index.as_slice())
    }
}
