//! The scheduling framework: plugin interface, per-cycle state, statuses,
//! cluster events, and the per-profile runtime that runs plugins in order.

pub mod cycle_state;
pub mod events;
pub mod extender;
pub mod group;
pub mod handle;
pub mod helper;
pub mod memo;
pub mod plugin;
pub mod registry;
pub mod runtime;
pub mod status;
pub mod types;
pub mod waiting;

use std::collections::BTreeSet;
use std::sync::Arc;

pub use cycle_state::CycleState;
pub use events::{action, ClusterEvent, ClusterEventWithHint, EventObject, EventResource, QueueingHint};
pub use extender::{Extender, ExtenderError, FilterResult, Victims};
pub use group::{GroupCounts, GroupMembership, GroupResult, PodGroups};
pub use handle::{
    Background, CollectEvents, EventRecord, EventSink, EventType, Handle, NoEvents, NoObserver, ObjectError, ObjectKey, ObjectKind,
    ObjectRef, ObjectWriter, Observer, PluginHost, Store, StoreObserver, WriteError,
};
pub use memo::{NodeMemo, NodeVersion};
pub use plugin::*;
pub use registry::{Factory, PluginArgs, PluginError, Registry, RegistryError};
pub use runtime::{Framework, RawScores, ScoreMatrix, WeightedPlugin};
pub use status::{Code, Reason, Reasons, Status};
pub use types::{AffinityTerm, PodInfo, WeightedAffinityTerm};
pub use waiting::{WaitingPod, WaitingPods};

/// A pod in the scheduling queue, with its attempt history.
#[derive(Clone, Debug)]
pub struct QueuedPodInfo {
    /// The pod with its precomputed data; replaced when the pod object is updated
    /// while queued, or when preemption nominates it to a node.
    pub pod_info: Arc<PodInfo>,
    /// When the pod was last added to the queue (ms, the queue's clock).
    pub timestamp: i64,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When the pod was first added to the queue (for the SLI metric).
    pub initial_attempt_timestamp: i64,
    /// Plugins that rejected it in its last attempt (decides what requeues it).
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// Plugins that reported it Pending (waiting on something external).
    pub pending_plugins: BTreeSet<&'static str>,
    /// Blocked by a PreEnqueue plugin (e.g. scheduling gates).
    pub gated: bool,
    /// Order of first arrival in the queue: breaks ties deterministically
    /// when several pods move back to the queue at once.
    pub seq: u64,
}

impl QueuedPodInfo {
    /// A pod first seen at `now_ms`: no attempts yet, not gated; the queue sets
    /// `seq` when it adds the pod.
    pub fn new(pod_info: Arc<PodInfo>, now_ms: i64) -> QueuedPodInfo {
        QueuedPodInfo {
            pod_info,
            timestamp: now_ms,
            attempts: 0,
            initial_attempt_timestamp: now_ms,
            unschedulable_plugins: BTreeSet::new(),
            pending_plugins: BTreeSet::new(),
            gated: false,
            seq: 0,
        }
    }

    /// The pod's `namespace/name`, the key the queue, the cache and
    /// [`WaitingPods`] use.
    pub fn key(&self) -> String {
        self.pod_info.key()
    }
}
