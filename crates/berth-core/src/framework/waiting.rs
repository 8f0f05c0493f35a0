//! Pods held at Permit: a plugin answered `Wait`, and the pod binds only when
//! every waiting plugin allows it; any rejection, or a plugin's timeout,
//! sends it back to the queue (upstream `waitingPodsMap`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::types::PodInfo;

/// A pod held at Permit: reserved (assumed) on `node` until every plugin that answered `Wait`
/// allows it, one rejects it, or a plugin's timeout passes.
#[derive(Clone, Debug)]
pub struct WaitingPod {
    /// The pod.
    pub pod: Arc<PodInfo>,
    /// The node it is reserved on.
    pub node: String,
    /// Plugin -> (when its wait ends, ms on the engine's clock; its timeout in ms).
    pub pending: BTreeMap<&'static str, (i64, i64)>,
    /// Set by `reject`: (plugin, message).
    pub rejected: Option<(&'static str, String)>,
}

/// The pods held at Permit, by pod key (`namespace/name`). Permit plugins receive it to allow
/// or reject pods that earlier cycles left waiting: a gang plugin allows the whole group when
/// its last member arrives.
#[derive(Default, Debug)]
pub struct WaitingPods {
    pods: BTreeMap<String, WaitingPod>,
}

impl WaitingPods {
    /// Holds a pod under its key. The framework does this when Permit answers `Wait`; plugins use
    /// [`WaitingPods::allow`] and [`WaitingPods::reject`].
    pub fn insert(&mut self, key: String, w: WaitingPod) {
        self.pods.insert(key, w);
    }

    /// The pod held under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&WaitingPod> {
        self.pods.get(key)
    }

    /// The held pods with their keys, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &WaitingPod)> {
        self.pods.iter()
    }

    /// How many pods are held.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether no pod is held.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// `plugin` no longer holds the pod; returns whether the pod was waiting on it.
    /// The pod goes on to binding once no plugin holds it.
    pub fn allow(&mut self, key: &str, plugin: &'static str) -> bool {
        self.pods.get_mut(key).is_some_and(|w| w.pending.remove(plugin).is_some())
    }

    /// Rejects the pod held under `key`: it is unreserved and goes back to the queue as
    /// unschedulable, with `message` blamed on `plugin`. The first rejection wins; an unknown key
    /// is ignored.
    pub fn reject(&mut self, key: &str, plugin: &'static str, message: impl Into<String>) {
        if let Some(w) = self.pods.get_mut(key) {
            w.rejected.get_or_insert((plugin, message.into()));
        }
    }

    /// Stops holding the pod under `key` and returns it. For the framework: plugins use
    /// [`WaitingPods::allow`] and [`WaitingPods::reject`].
    pub fn remove(&mut self, key: &str) -> Option<WaitingPod> {
        self.pods.remove(key)
    }

    /// Earliest plugin deadline among waiting pods.
    pub fn next_deadline(&self) -> Option<i64> {
        self.pods.values().flat_map(|w| w.pending.values().map(|(d, _)| *d)).min()
    }
}
