//! Cluster events that move unschedulable pods back to the active queue.
//!
//! A plugin that rejects a pod registers the events that could make it pass
//! (e.g. NodeResourcesFit: a node was added, a pod was deleted); the queue only
//! retries a pod when such an event happens, as upstream does.

use std::sync::Arc;

use crate::model::{Node, Pod};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventResource {
    /// Any pod (assigned or not).
    Pod,
    /// Pods bound to a node.
    AssignedPod,
    /// Pods not bound yet.
    UnscheduledPod,
    Node,
    Namespace,
    PodDisruptionBudget,
    /// Objects of a kind a plugin declared (`Handle::objects`), e.g. a PodGroup.
    Object(super::handle::ObjectKind),
    WildCard,
}

/// Action bits, as upstream's `ActionType`.
pub mod action {
    pub const ADD: u32 = 1;
    pub const DELETE: u32 = 1 << 1;
    pub const UPDATE_NODE_ALLOCATABLE: u32 = 1 << 2;
    pub const UPDATE_NODE_LABEL: u32 = 1 << 3;
    pub const UPDATE_NODE_TAINT: u32 = 1 << 4;
    pub const UPDATE_NODE_CONDITION: u32 = 1 << 5;
    pub const UPDATE_NODE_ANNOTATION: u32 = 1 << 6;
    pub const UPDATE_POD_LABEL: u32 = 1 << 7;
    pub const UPDATE_POD_SCALE_DOWN: u32 = 1 << 8;
    pub const UPDATE_POD_TOLERATIONS: u32 = 1 << 9;
    pub const UPDATE_POD_SCHEDULING_GATES_ELIMINATED: u32 = 1 << 10;
    pub const UPDATE_POD_GENERATED_RESOURCE_CLAIM: u32 = 1 << 11;
    pub const UPDATE_NODE_SCHEDULABLE: u32 = 1 << 12;
    pub const UPDATE_POD_OTHER: u32 = 1 << 13;
    pub const UPDATE_NODE: u32 = UPDATE_NODE_ALLOCATABLE
        | UPDATE_NODE_LABEL
        | UPDATE_NODE_TAINT
        | UPDATE_NODE_CONDITION
        | UPDATE_NODE_ANNOTATION
        | UPDATE_NODE_SCHEDULABLE;
    pub const UPDATE_POD: u32 = UPDATE_POD_LABEL
        | UPDATE_POD_SCALE_DOWN
        | UPDATE_POD_TOLERATIONS
        | UPDATE_POD_SCHEDULING_GATES_ELIMINATED
        | UPDATE_POD_GENERATED_RESOURCE_CLAIM
        | UPDATE_POD_OTHER;
    pub const UPDATE: u32 = UPDATE_NODE | UPDATE_POD;
    pub const ALL: u32 = ADD | DELETE | UPDATE;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterEvent {
    pub resource: EventResource,
    pub action: u32,
    pub label: &'static str,
}

impl ClusterEvent {
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

    pub const fn wildcard() -> ClusterEvent {
        ClusterEvent::new(EventResource::WildCard, action::ALL, "WildCardEvent")
    }

    pub const fn unschedulable_timeout() -> ClusterEvent {
        ClusterEvent::new(EventResource::WildCard, action::ALL, "UnschedulableTimeout")
    }
}

/// The object an event carries, for queueing hints.
#[derive(Clone, Debug)]
pub enum EventObject {
    None,
    Node { old: Option<Arc<Node>>, new: Option<Arc<Node>> },
    Pod { old: Option<Arc<Pod>>, new: Option<Arc<Pod>> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueingHint {
    Skip,
    Queue,
}

pub type QueueingHintFn = Arc<dyn Fn(&Pod, &EventObject) -> QueueingHint + Send + Sync>;

#[derive(Clone)]
pub struct ClusterEventWithHint {
    pub event: ClusterEvent,
    /// `None`: always requeue on this event.
    pub hint: Option<QueueingHintFn>,
}

impl ClusterEventWithHint {
    pub fn new(event: ClusterEvent) -> Self {
        ClusterEventWithHint { event, hint: None }
    }
    pub fn with_hint(event: ClusterEvent, hint: impl Fn(&Pod, &EventObject) -> QueueingHint + Send + Sync + 'static) -> Self {
        ClusterEventWithHint { event, hint: Some(Arc::new(hint)) }
    }
}

impl std::fmt::Debug for ClusterEventWithHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}{}", self.event, if self.hint.is_some() { "+hint" } else { "" })
    }
}
