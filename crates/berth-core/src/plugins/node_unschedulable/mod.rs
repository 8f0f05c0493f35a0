//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods
//! that tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use std::sync::Arc;

use crate::cache::NodeInfo;
use crate::framework::*;
use crate::model::{Pod, Taint, TaintEffect};

pub const NAME: &str = "NodeUnschedulable";
pub const ERR_REASON: &str = "node(s) were unschedulable";
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(NodeUnschedulable))
}

/// Requeue when a schedulable node is added or a cordoned one uncordoned,
/// as upstream `isSchedulableAfterNodeChange`.
fn node_change_hint(_pod: &Pod, obj: &EventObject) -> QueueingHint {
    let EventObject::Node { old, new: Some(new) } = obj else { return QueueingHint::Queue };
    let was_unschedulable = old.as_ref().is_none_or(|o| o.unschedulable);
    if was_unschedulable && !new.unschedulable {
        QueueingHint::Queue
    } else {
        QueueingHint::Skip
    }
}

#[crate::plugin]
impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn filter_is_node_local(&self) -> bool {
        true
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::with_hint(
                ClusterEvent::new(
                    EventResource::Node,
                    action::ADD | action::UPDATE_NODE_TAINT | action::UPDATE_NODE_SCHEDULABLE,
                    "NodeSchedulableChange",
                ),
                node_change_hint,
            ),
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::UnscheduledPod,
                action::UPDATE_POD_TOLERATIONS,
                "PodTolerationsChange",
            )),
        ]
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.unschedulable {
            return Status::success();
        }
        let taint = Taint { key: TAINT_NODE_UNSCHEDULABLE.into(), value: String::new(), effect: TaintEffect::NoSchedule };
        if pod.pod.tolerations.iter().any(|t| t.tolerates(&taint)) {
            return Status::success();
        }
        Status::unresolvable(ERR_REASON)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Toleration, TolerationOp};
    use crate::testing::{make_node, make_pod, node_info};

    // Cases of upstream TestNodeUnschedulable.
    #[test]
    fn filter() {
        let tolerates =
            |effect| Toleration { key: TAINT_NODE_UNSCHEDULABLE.into(), operator: TolerationOp::Exists, effect, ..Default::default() };
        let table = [
            ("a schedulable node", make_pod("p").obj(), make_node("n").obj(), Code::Success),
            ("a cordoned node", make_pod("p").obj(), make_node("n").unschedulable().obj(), Code::UnschedulableAndUnresolvable),
            (
                "a cordoned node, the pod tolerates the unschedulable taint",
                make_pod("p").toleration(tolerates(Some(TaintEffect::NoSchedule))).obj(),
                make_node("n").unschedulable().obj(),
                Code::Success,
            ),
            (
                "a toleration with any effect covers NoSchedule",
                make_pod("p").toleration(tolerates(None)).obj(),
                make_node("n").unschedulable().obj(),
                Code::Success,
            ),
            (
                "a NoExecute toleration does not",
                make_pod("p").toleration(tolerates(Some(TaintEffect::NoExecute))).obj(),
                make_node("n").unschedulable().obj(),
                Code::UnschedulableAndUnresolvable,
            ),
        ];
        for (name, pod, node, code) in table {
            let s = NodeUnschedulable.filter(&CycleState::new(), &PodInfo::new(pod), &node_info(node, vec![]));
            assert_eq!(s.code, code, "{name}");
            if code != Code::Success {
                assert_eq!(s.message(), ERR_REASON, "{name}");
            }
        }
    }

    // Cases of upstream TestIsSchedulableAfterNodeChange.
    #[test]
    fn node_change_requeues_when_a_node_becomes_schedulable() {
        let pod = make_pod("p").obj();
        let node = |cordoned: bool| Arc::new(if cordoned { make_node("n").unschedulable().obj() } else { make_node("n").obj() });
        let table = [
            ("a schedulable node is added", None, node(false), QueueingHint::Queue),
            ("a cordoned node is added", None, node(true), QueueingHint::Skip),
            ("a node is uncordoned", Some(node(true)), node(false), QueueingHint::Queue),
            ("a schedulable node stays schedulable", Some(node(false)), node(false), QueueingHint::Skip),
            ("a node is cordoned", Some(node(false)), node(true), QueueingHint::Skip),
        ];
        for (name, old, new, want) in table {
            assert_eq!(node_change_hint(&pod, &EventObject::Node { old, new: Some(new) }), want, "{name}");
        }
    }
}
