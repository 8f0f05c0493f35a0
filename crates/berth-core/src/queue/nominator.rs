//! Pods nominated to a node by preemption, which lower-or-equal priority pods
//! must not take the freed room from.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use crate::framework::{NominatedPods, PodInfo};

#[derive(Default, Clone)]
pub struct Nominator {
    by_node: HashMap<String, Vec<Arc<PodInfo>>>,
    node_of: HashMap<String, String>,
}

impl Nominator {
    pub fn add(&mut self, pod: Arc<PodInfo>, node: &str) {
        let key = pod.key();
        self.remove(&key);
        self.node_of.insert(key, node.to_string());
        self.by_node.entry(node.to_string()).or_default().push(pod);
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(node) = self.node_of.remove(key) {
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
    fn len(&self) -> usize {
        self.node_of.len()
    }
    fn nodes(&self) -> Box<dyn Iterator<Item = (&str, &[Arc<PodInfo>])> + '_> {
        Box::new(self.by_node.iter().map(|(node, pods)| (node.as_str(), pods.as_slice())))
    }
}
