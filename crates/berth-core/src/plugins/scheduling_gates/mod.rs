//! SchedulingGates: pods with `spec.schedulingGates` wait outside activeQ
//! until every gate is removed.

use std::sync::Arc;

use crate::framework::{action, ClusterEvent, ClusterEventWithHint, EventResource, Plugin, Status};
use crate::model::Pod;

pub const NAME: &str = "SchedulingGates";

pub struct SchedulingGates;

pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(SchedulingGates))
}

#[crate::plugin]
impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![ClusterEventWithHint::new(ClusterEvent::new(
            EventResource::UnscheduledPod,
            action::UPDATE_POD_SCHEDULING_GATES_ELIMINATED,
            "PodSchedulingGatesEliminated",
        ))]
    }
    fn pre_enqueue(&self, pod: &Pod) -> Status {
        if pod.scheduling_gates.is_empty() {
            return Status::success();
        }
        Status::unresolvable(format!("waiting for scheduling gates: [{}]", pod.scheduling_gates.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::make_pod;

    #[test]
    fn pre_enqueue() {
        let table = [
            (make_pod("p").obj(), Code::Success, ""),
            (make_pod("p").scheduling_gate("foo").obj(), Code::UnschedulableAndUnresolvable, "waiting for scheduling gates: [foo]"),
            (
                make_pod("p").scheduling_gate("foo").scheduling_gate("bar").obj(),
                Code::UnschedulableAndUnresolvable,
                "waiting for scheduling gates: [foo bar]",
            ),
        ];
        for (pod, code, msg) in table {
            let s = SchedulingGates.pre_enqueue(&pod);
            assert_eq!(s.code, code);
            assert_eq!(s.message(), msg);
        }
    }
}
