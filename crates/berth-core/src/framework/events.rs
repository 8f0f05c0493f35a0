//! Cluster events that move unschedulable pods back to the active queue.
//!
//! A plugin that rejects a pod registers the events that could make it pass
//! (e.g. NodeResourcesFit: a node was added, a pod was deleted); the queue only
//! retries a pod when such an event happens, as upstream does.

use std::sync::Arc;

use crate::model::{Node, Pod};

/// The kind of object a [`ClusterEvent`] is about (upstream `EventResource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventResource {
    /// Any pod (assigned or not).
    Pod,
    /// Pods bound to a node.
    AssignedPod,
    /// Pods not bound yet.
    UnscheduledPod,
    /// Nodes.
    Node,
    /// Namespaces (their labels decide `namespaceSelector` matches).
    Namespace,
    /// PodDisruptionBudgets.
    PodDisruptionBudget,
    /// Objects of a kind a plugin declared (`Handle::objects`), e.g. a PodGroup.
    Object(super::handle::ObjectKind),
    /// Any kind. Registered, it matches every event; as an event, it moves every unschedulable
    /// pod that is not gated.
    WildCard,
}

/// Action bits, as upstream's `ActionType`.
pub mod action {
    /// The object was created (or first seen).
    pub const ADD: u32 = 1;
    /// The object was deleted.
    pub const DELETE: u32 = 1 << 1;
    /// A node's `status.allocatable` changed.
    pub const UPDATE_NODE_ALLOCATABLE: u32 = 1 << 2;
    /// A node's labels changed.
    pub const UPDATE_NODE_LABEL: u32 = 1 << 3;
    /// A node's taints changed; also set when `spec.unschedulable` changes.
    pub const UPDATE_NODE_TAINT: u32 = 1 << 4;
    /// A node's conditions (type or status) changed.
    pub const UPDATE_NODE_CONDITION: u32 = 1 << 5;
    /// A node's annotations changed.
    pub const UPDATE_NODE_ANNOTATION: u32 = 1 << 6;
    /// A bound pod's labels changed.
    pub const UPDATE_POD_LABEL: u32 = 1 << 7;
    /// A bound pod's requests changed. Upstream sets it only when they shrink; Berth sets it on any
    /// change.
    pub const UPDATE_POD_SCALE_DOWN: u32 = 1 << 8;
    /// A pending pod's tolerations changed (upstream). Berth does not emit it: any update to a
    /// pending pod moves that pod back to the queue itself.
    pub const UPDATE_POD_TOLERATIONS: u32 = 1 << 9;
    /// A pending pod lost its last scheduling gate (upstream). Berth does not emit it: an update to
    /// a gated pod runs PreEnqueue again.
    pub const UPDATE_POD_SCHEDULING_GATES_ELIMINATED: u32 = 1 << 10;
    /// A pending pod's generated ResourceClaim changed (upstream). Berth does not emit it: any
    /// update to a pending pod moves that pod back to the queue itself.
    pub const UPDATE_POD_GENERATED_RESOURCE_CLAIM: u32 = 1 << 11;
    /// A node's `spec.unschedulable` changed (cordon, uncordon).
    pub const UPDATE_NODE_SCHEDULABLE: u32 = 1 << 12;
    /// Set on every update of a bound pod, whatever changed.
    pub const UPDATE_POD_OTHER: u32 = 1 << 13;
    /// A node's `status.declaredFeatures` changed.
    pub const UPDATE_NODE_DECLARED_FEATURE: u32 = 1 << 14;
    /// Any node update.
    pub const UPDATE_NODE: u32 = UPDATE_NODE_ALLOCATABLE
        | UPDATE_NODE_LABEL
        | UPDATE_NODE_TAINT
        | UPDATE_NODE_CONDITION
        | UPDATE_NODE_ANNOTATION
        | UPDATE_NODE_SCHEDULABLE
        | UPDATE_NODE_DECLARED_FEATURE;
    /// Any pod update.
    pub const UPDATE_POD: u32 = UPDATE_POD_LABEL
        | UPDATE_POD_SCALE_DOWN
        | UPDATE_POD_TOLERATIONS
        | UPDATE_POD_SCHEDULING_GATES_ELIMINATED
        | UPDATE_POD_GENERATED_RESOURCE_CLAIM
        | UPDATE_POD_OTHER;
    /// Any update; also what a change to a plugin-declared object carries.
    pub const UPDATE: u32 = UPDATE_NODE | UPDATE_POD;
    /// Every action.
    pub const ALL: u32 = ADD | DELETE | UPDATE;
}

/// A change in the cluster, as a plugin registers for it (`Plugin::events_to_register`) and as
/// the queue reports it (upstream `ClusterEvent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterEvent {
    /// The kind of object that changed.
    pub resource: EventResource,
    /// What happened: [`action`] bits, ORed. A registration matches an event that shares a bit.
    pub action: u32,
    /// A name for logs and debug output, e.g. `NodeAdd`; matching ignores it.
    pub label: &'static str,
}

impl ClusterEvent {
    /// An event from its parts.
    pub const fn new(resource: EventResource, action: u32, label: &'static str) -> ClusterEvent {
        ClusterEvent { resource, action, label }
    }

    /// Whether an event that happened (`self`) is one a plugin registered for (`registered`).
    pub fn matches(&self, registered: &ClusterEvent) -> bool {
        let res_ok = match (registered.resource, self.resource) {
            (EventResource::WildCard, _) => true,
            (a, b) if a == b => true,
            (EventResource::Pod, EventResource::AssignedPod | EventResource::UnscheduledPod) => true,
            _ => false,
        };
        res_ok && (registered.action & self.action) != 0
    }

    /// Any change to anything. Berth registers it for plugins whose `events_to_register` is empty.
    pub const fn wildcard() -> ClusterEvent {
        ClusterEvent::new(EventResource::WildCard, action::ALL, "WildCardEvent")
    }

    /// Upstream's `UnschedulableTimeout`: a wildcard event under that label.
    pub const fn unschedulable_timeout() -> ClusterEvent {
        ClusterEvent::new(EventResource::WildCard, action::ALL, "UnschedulableTimeout")
    }
}

/// The object an event carries, for queueing hints.
#[derive(Clone, Debug)]
pub enum EventObject {
    /// The event carries no object: namespace changes and the room a failed binding frees. A
    /// hint that needs the object should answer `Queue`.
    None,
    /// An object of a plugin-declared kind (`Handle::objects`) was added, changed or deleted:
    /// which one. Read it from your store.
    Object(super::handle::ObjectKey),
    /// A node event.
    Node {
        /// The node before the change; `None` when it was added.
        old: Option<Arc<Node>>,
        /// The node after the change; `None` when it was deleted.
        new: Option<Arc<Node>>,
    },
    /// A pod event.
    Pod {
        /// The pod before the change; `None` when it was added, or when an update came
        /// without the old object.
        old: Option<Arc<Pod>>,
        /// The pod after the change; `None` when it was deleted.
        new: Option<Arc<Pod>>,
    },
}

/// A queueing hint's answer: may this event make the pod schedulable (upstream `QueueingHint`)?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueingHint {
    /// It cannot help this pod: the pod keeps waiting for another event (or the periodic flush
    /// of pods unschedulable for five minutes).
    Skip,
    /// It may help: the pod moves back to the queue (to backoff first if its backoff has not
    /// expired).
    Queue,
}

/// Decides whether a matching event may help a pod the plugin rejected. Called with that pod
/// (not the object that changed) and the event's object, on the scheduling thread, for every
/// such pod waiting: keep it cheap. One `Queue` among the pod's rejecting plugins is enough.
pub type QueueingHintFn = Arc<dyn Fn(&Pod, &EventObject) -> QueueingHint + Send + Sync>;

/// An event a plugin registers for, with an optional per-pod hint.
#[derive(Clone)]
pub struct ClusterEventWithHint {
    /// The events to match.
    pub event: ClusterEvent,
    /// `None`: always requeue on this event.
    pub hint: Option<QueueingHintFn>,
}

impl ClusterEventWithHint {
    /// Requeues on every matching event.
    pub fn new(event: ClusterEvent) -> Self {
        ClusterEventWithHint { event, hint: None }
    }
    /// Requeues on a matching event only when `hint` answers `Queue` for the pod.
    pub fn with_hint(event: ClusterEvent, hint: impl Fn(&Pod, &EventObject) -> QueueingHint + Send + Sync + 'static) -> Self {
        ClusterEventWithHint { event, hint: Some(Arc::new(hint)) }
    }
}

impl std::fmt::Debug for ClusterEventWithHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}{}", self.event, if self.hint.is_some() { "+hint" } else { "" })
    }
}
