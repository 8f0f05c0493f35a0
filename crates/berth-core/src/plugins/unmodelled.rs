//! Plugins that keep pending, with a reason, the pods that need what Berth
//! does not model yet (dynamic resource allocation, gang scheduling): a
//! wrong placement is worse than none.

use crate::cache::Snapshot;
use crate::framework::*;
use crate::model::Pod;

/// A plugin that keeps pods needing what Berth does not model pending, in
/// PreFilter, with the reason its check gives.
pub struct Unmodelled {
    name: &'static str,
    /// The reason a pod cannot be placed, if it needs what this plugin checks.
    check: fn(&Pod) -> Option<String>,
}

impl Unmodelled {
    /// The plugin `name`, refusing the pods for which `check` gives a reason.
    pub const fn new(name: &'static str, check: fn(&Pod) -> Option<String>) -> Unmodelled {
        Unmodelled { name, check }
    }
}

#[crate::plugin]
impl Plugin for Unmodelled {
    fn name(&self) -> &'static str {
        self.name
    }

    /// No change to the cluster can help (only a Berth that models it):
    /// a rejected pod is retried when it changes, or after the periodic
    /// flush of unschedulable pods.
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![ClusterEventWithHint::new(ClusterEvent::new(EventResource::UnscheduledPod, action::UPDATE, "UnscheduledPodUpdate"))]
    }

    fn pre_filter(&self, _state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        match (self.check)(&pod.pod) {
            Some(reason) => (None, Status::unresolvable(reason)),
            None => (None, Status::skip()),
        }
    }
}
