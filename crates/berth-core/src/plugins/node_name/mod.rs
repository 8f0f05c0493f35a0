//! NodeName: a pod that names its node (`spec.nodeName`) fits only there.

use std::sync::Arc;

use crate::cache::NodeInfo;
use crate::framework::*;

pub const NAME: &str = "NodeName";
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(NodeName))
}

#[crate::plugin]
impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    fn filter_is_node_local(&self) -> bool {
        true
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![ClusterEventWithHint::new(ClusterEvent::new(EventResource::Node, action::ADD, "NodeAdd"))]
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match &pod.pod.node_name {
            Some(n) if !n.is_empty() && n != node.name() => Status::unresolvable(ERR_REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod, node_info};

    #[test]
    fn filter() {
        let table = [
            (make_pod("p").obj(), "foo", Code::Success),
            (make_pod("p").node("foo").obj(), "foo", Code::Success),
            (make_pod("p").node("bar").obj(), "foo", Code::UnschedulableAndUnresolvable),
        ];
        for (pod, node, code) in table {
            let ni = node_info(make_node(node).obj(), vec![]);
            let s = NodeName.filter(&CycleState::new(), &PodInfo::new(pod), &ni);
            assert_eq!(s.code, code);
            if code != Code::Success {
                assert_eq!(s.message(), ERR_REASON);
            }
        }
    }
}
