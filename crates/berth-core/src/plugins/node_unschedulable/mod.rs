//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods
//! that tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use std::sync::Arc;

use crate::cache::NodeInfo;
use crate::framework::*;
use crate::model::{Taint, TaintEffect};

pub const NAME: &str = "NodeUnschedulable";
pub const ERR_REASON: &str = "node(s) were unschedulable";
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(NodeUnschedulable))
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn extension_points(&self) -> &'static [ExtensionPoint] {
        &[ExtensionPoint::Filter]
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::Node,
                action::ADD | action::UPDATE_NODE_TAINT | action::UPDATE_NODE_SCHEDULABLE,
                "NodeSchedulableChange",
            )),
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

    #[test]
    fn filter() {
        let tolerates = Toleration {
            key: TAINT_NODE_UNSCHEDULABLE.into(),
            operator: TolerationOp::Exists,
            effect: Some(TaintEffect::NoSchedule),
            ..Default::default()
        };
        let table = [
            (make_pod("p").obj(), make_node("n").obj(), Code::Success),
            (make_pod("p").obj(), make_node("n").unschedulable().obj(), Code::UnschedulableAndUnresolvable),
            (make_pod("p").toleration(tolerates).obj(), make_node("n").unschedulable().obj(), Code::Success),
        ];
        for (pod, node, code) in table {
            let s = NodeUnschedulable.filter(&CycleState::new(), &PodInfo::new(pod), &node_info(node, vec![]));
            assert_eq!(s.code, code);
            if code != Code::Success {
                assert_eq!(s.message(), ERR_REASON);
            }
        }
    }
}
