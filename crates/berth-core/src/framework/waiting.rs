//! Pods held at Permit: a plugin answered `Wait`, and the pod binds only when
//! every waiting plugin allows it; any rejection, or a plugin's timeout,
//! sends it back to the queue (upstream `waitingPodsMap`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::types::PodInfo;

#[derive(Clone, Debug)]
pub struct WaitingPod {
    pub pod: Arc<PodInfo>,
    pub node: String,
    /// Plugin -> (when its wait ends, ms on the engine's clock; its timeout in ms).
    pub pending: BTreeMap<&'static str, (i64, i64)>,
    /// Set by `reject`: (plugin, message).
    pub rejected: Option<(&'static str, String)>,
}

#[derive(Default, Debug)]
pub struct WaitingPods {
    pods: BTreeMap<String, WaitingPod>,
}

impl WaitingPods {
    pub fn insert(&mut self, key: String, w: WaitingPod) {
        self.pods.insert(key, w);
    }

    pub fn get(&self, key: &str) -> Option<&WaitingPod> {
        self.pods.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &WaitingPod)> {
        self.pods.iter()
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// `plugin` no longer holds the pod; returns whether the pod was waiting on it.
    pub fn allow(&mut self, key: &str, plugin: &'static str) -> bool {
        self.pods.get_mut(key).is_some_and(|w| w.pending.remove(plugin).is_some())
    }

    pub fn reject(&mut self, key: &str, plugin: &'static str, message: impl Into<String>) {
        if let Some(w) = self.pods.get_mut(key) {
            w.rejected.get_or_insert((plugin, message.into()));
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<WaitingPod> {
        self.pods.remove(key)
    }

    /// Earliest plugin deadline among waiting pods.
    pub fn next_deadline(&self) -> Option<i64> {
        self.pods.values().flat_map(|w| w.pending.values().map(|(d, _)| *d)).min()
    }
}
