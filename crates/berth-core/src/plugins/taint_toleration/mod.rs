//! TaintToleration: NoSchedule/NoExecute taints must be tolerated (Filter);
//! fewer untolerated PreferNoSchedule taints score higher (Score).

use std::sync::Arc;

use crate::cache::{NodeInfo, Snapshot};
use crate::framework::helper::default_normalize_score;
use crate::framework::*;
use crate::model::{Taint, TaintEffect, Toleration};

pub const NAME: &str = "TaintToleration";
const STATE_KEY: &str = "PreScoreTaintToleration";

pub struct TaintToleration;

pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(TaintToleration))
}

/// The first NoSchedule/NoExecute taint none of the tolerations tolerates.
pub fn find_untolerated_taint<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute))
        .find(|t| !tolerations.iter().any(|tol| tol.tolerates(t)))
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
    fn extension_points(&self) -> &'static [ExtensionPoint] {
        &[ExtensionPoint::Filter, ExtensionPoint::PreScore, ExtensionPoint::Score]
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::Node, action::ADD | action::UPDATE_NODE_TAINT, "NodeTaintChange")),
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::UnscheduledPod,
                action::UPDATE_POD_TOLERATIONS,
                "PodTolerationsChange",
            )),
        ]
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if node.taints.is_empty() {
            return Status::success();
        }
        match find_untolerated_taint(&node.taints, &pod.pod.tolerations) {
            None => Status::success(),
            Some(t) => Status::unresolvable(format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value)),
        }
    }
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[Arc<NodeInfo>], _snap: &Snapshot) -> Status {
        let tols: Vec<Toleration> =
            pod.pod.tolerations.iter().filter(|t| t.effect.is_none() || t.effect == Some(TaintEffect::PreferNoSchedule)).cloned().collect();
        state.write(STATE_KEY, tols);
        Status::success()
    }
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(tols) = state.read::<Vec<Toleration>>(STATE_KEY) else {
            return (0, Status::error("reading PreScore state of TaintToleration"));
        };
        if node.taints.is_empty() {
            return (0, Status::success());
        }
        let n =
            node.taints.iter().filter(|t| t.effect == TaintEffect::PreferNoSchedule && !tols.iter().any(|tol| tol.tolerates(t))).count();
        (n as i64, Status::success())
    }
    fn has_normalize_score(&self) -> bool {
        true
    }
    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TolerationOp;
    use crate::testing::{make_node, make_pod, node_info};

    #[test]
    fn filter() {
        let node = || make_node("n").taint("dedicated", "user1", TaintEffect::NoSchedule);
        let table = vec![
            (make_pod("p").obj(), make_node("n").obj(), ""),
            (make_pod("p").obj(), node().obj(), "node(s) had untolerated taint {dedicated: user1}"),
            (make_pod("p").tolerate("dedicated", "user1", TaintEffect::NoSchedule).obj(), node().obj(), ""),
            (
                make_pod("p").tolerate("dedicated", "user2", TaintEffect::NoSchedule).obj(),
                node().obj(),
                "node(s) had untolerated taint {dedicated: user1}",
            ),
            (
                make_pod("p")
                    .toleration(Toleration { key: "dedicated".into(), operator: TolerationOp::Exists, ..Default::default() })
                    .obj(),
                node().obj(),
                "",
            ),
            // PreferNoSchedule never filters.
            (make_pod("p").obj(), make_node("n").taint("soft", "x", TaintEffect::PreferNoSchedule).obj(), ""),
            (make_pod("p").obj(), make_node("n").taint("k", "", TaintEffect::NoExecute).obj(), "node(s) had untolerated taint {k: }"),
        ];
        for (i, (pod, node, msg)) in table.into_iter().enumerate() {
            let s = TaintToleration.filter(&CycleState::new(), &PodInfo::new(pod), &node_info(node, vec![]));
            if msg.is_empty() {
                assert!(s.is_success(), "case {i}: {s}");
            } else {
                assert_eq!((s.code, s.message().as_str()), (Code::UnschedulableAndUnresolvable, msg), "case {i}");
            }
        }
    }

    #[test]
    fn score() {
        // Upstream case: the node with fewer intolerable PreferNoSchedule taints wins.
        let pod = make_pod("p").tolerate("foo", "bar", TaintEffect::PreferNoSchedule).info();
        let nodes = vec![
            Arc::new(node_info(make_node("n1").obj(), vec![])),
            Arc::new(node_info(make_node("n2").taint("foo", "bar", TaintEffect::PreferNoSchedule).obj(), vec![])),
            Arc::new(node_info(
                make_node("n3")
                    .taint("cpu-type", "arm64", TaintEffect::PreferNoSchedule)
                    .taint("x", "y", TaintEffect::PreferNoSchedule)
                    .obj(),
                vec![],
            )),
            Arc::new(node_info(make_node("n4").taint("cpu-type", "arm64", TaintEffect::PreferNoSchedule).obj(), vec![])),
        ];
        let mut st = CycleState::new();
        assert!(TaintToleration.pre_score(&mut st, &pod, &nodes, &Snapshot::default()).is_success());
        let mut scores: Vec<NodeScore> =
            nodes.iter().enumerate().map(|(index, n)| NodeScore { index, score: TaintToleration.score(&st, &pod, n).0 }).collect();
        TaintToleration.normalize_score(&st, &pod, &mut scores);
        assert_eq!(scores.iter().map(|s| s.score).collect::<Vec<_>>(), [100, 100, 0, 50]);
    }
}
