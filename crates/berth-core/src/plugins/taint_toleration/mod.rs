//! TaintToleration: NoSchedule/NoExecute taints must be tolerated (Filter);
//! fewer untolerated PreferNoSchedule taints score higher (Score).

use std::sync::Arc;

use crate::cache::{NodeInfo, Snapshot};
use crate::framework::helper::default_normalize_score;
use crate::framework::*;
use crate::model::{Node, Pod, Taint, TaintEffect, Toleration};

pub const NAME: &str = "TaintToleration";
const STATE_KEY: &str = "PreScoreTaintToleration";

pub struct TaintToleration;

pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(TaintToleration))
}

/// The first NoSchedule/NoExecute taint none of the tolerations tolerates.
/// Upstream's reason for a node with a NoSchedule or NoExecute taint the pod does not tolerate.
pub const ERR_REASON_UNTOLERATED: &str = "node(s) had untolerated taint(s)";

pub fn find_untolerated_taint<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute))
        .find(|t| !tolerations.iter().any(|tol| tol.tolerates(t)))
}

/// Requeue only when the node went from having a taint the pod does not
/// tolerate (or not existing) to having none, as upstream
/// `isSchedulableAfterNodeChange`.
fn node_change_hint(pod: &Pod, obj: &EventObject) -> QueueingHint {
    let EventObject::Node { old, new: Some(new) } = obj else { return QueueingHint::Queue };
    let untolerated = |n: &Node| find_untolerated_taint(&n.taints, &pod.tolerations).is_some();
    let was_untolerated = old.as_deref().is_none_or(untolerated);
    if was_untolerated && !untolerated(new) {
        QueueingHint::Queue
    } else {
        QueueingHint::Skip
    }
}

#[crate::plugin]
impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
    fn filter_is_node_local(&self) -> bool {
        true
    }
    fn score_is_node_local(&self) -> bool {
        true
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::with_hint(
                ClusterEvent::new(EventResource::Node, action::ADD | action::UPDATE_NODE_TAINT, "NodeTaintChange"),
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
        if node.taints.is_empty() {
            return Status::success();
        }
        match find_untolerated_taint(&node.taints, &pod.pod.tolerations) {
            None => Status::success(),
            // Since 1.34.2 the reason no longer names the taint (kubernetes#134740).
            Some(_) => Status::unresolvable(ERR_REASON_UNTOLERATED),
        }
    }
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[&NodeInfo], _snap: &Snapshot) -> Status {
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
    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TolerationOp;
    use crate::testing::{make_node, make_pod, node_info, NodeWrapper, PodWrapper};

    const NS: TaintEffect = TaintEffect::NoSchedule;
    const PNS: TaintEffect = TaintEffect::PreferNoSchedule;

    fn exists(key: &str, effect: Option<TaintEffect>) -> Toleration {
        Toleration { key: key.into(), operator: TolerationOp::Exists, effect, ..Default::default() }
    }

    fn equal(key: &str, value: &str, effect: Option<TaintEffect>) -> Toleration {
        Toleration { key: key.into(), operator: TolerationOp::Equal, value: value.into(), effect, ..Default::default() }
    }

    // Cases of upstream TestTaintTolerationFilter, plus NoExecute and the
    // message, which since 1.34.2 names no taint.
    #[test]
    fn filter() {
        let user1 = || make_node("n").taint("dedicated", "user1", NS);
        let untolerated = "node(s) had untolerated taint(s)";
        let table: Vec<(&str, PodWrapper, NodeWrapper, &str)> = vec![
            ("no taints", make_pod("p"), make_node("n"), ""),
            ("no tolerations, a NoSchedule taint", make_pod("p"), user1(), untolerated),
            ("tolerated with effect NoSchedule", make_pod("p").tolerate("dedicated", "user1", NS), user1(), ""),
            ("another user's toleration", make_pod("p").toleration(equal("dedicated", "user2", Some(NS))), user1(), untolerated),
            ("Exists tolerates any value", make_pod("p").toleration(exists("foo", Some(NS))), make_node("n").taint("foo", "bar", NS), ""),
            (
                "every taint tolerated by one of several tolerations",
                make_pod("p").toleration(equal("dedicated", "user2", Some(NS))).toleration(exists("foo", Some(NS))),
                make_node("n").taint("dedicated", "user2", NS).taint("foo", "bar", NS),
                "",
            ),
            (
                "key and value match but the (non-empty) effect does not",
                make_pod("p").toleration(equal("foo", "bar", Some(PNS))),
                make_node("n").taint("foo", "bar", NS),
                "node(s) had untolerated taint(s)",
            ),
            (
                "an empty effect tolerates every effect",
                make_pod("p").toleration(equal("foo", "bar", None)),
                make_node("n").taint("foo", "bar", NS),
                "",
            ),
            (
                "an untolerated PreferNoSchedule taint does not filter",
                make_pod("p").toleration(equal("dedicated", "user2", Some(NS))),
                make_node("n").taint("dedicated", "user1", PNS),
                "",
            ),
            ("no tolerations, only a PreferNoSchedule taint", make_pod("p"), make_node("n").taint("dedicated", "user1", PNS), ""),
            (
                "NoExecute filters too",
                make_pod("p"),
                make_node("n").taint("k", "", TaintEffect::NoExecute),
                "node(s) had untolerated taint(s)",
            ),
            (
                "an empty key with Exists tolerates everything",
                make_pod("p").toleration(exists("", None)),
                user1().taint("k", "", TaintEffect::NoExecute),
                "",
            ),
            (
                "a second taint, untolerated, is not named either",
                make_pod("p").tolerate("dedicated", "user1", NS),
                user1().taint("gpu", "true", NS).taint("zone", "a", NS),
                "node(s) had untolerated taint(s)",
            ),
        ];
        for (name, pod, node, msg) in table {
            let s = TaintToleration.filter(&CycleState::new(), &PodInfo::new(pod.obj()), &node_info(node.obj(), vec![]));
            if msg.is_empty() {
                assert!(s.is_success(), "{name}: {s}");
            } else {
                assert_eq!((s.code, s.message().as_str()), (Code::UnschedulableAndUnresolvable, msg), "{name}");
            }
        }
    }

    // Cases of upstream TestTaintTolerationScore.
    #[test]
    fn score() {
        let arm = || make_node("b").taint("cpu-type", "arm64", PNS);
        let arm_ssd = || make_node("c").taint("cpu-type", "arm64", PNS).taint("disk-type", "ssd", PNS);
        let table: Vec<(&str, PodWrapper, Vec<NodeWrapper>, Vec<i64>)> = vec![
            (
                "a node whose taints are tolerated beats one with an untolerated taint",
                make_pod("p").tolerate("foo", "bar", PNS),
                vec![make_node("a").taint("foo", "bar", PNS), make_node("b").taint("foo", "blah", PNS)],
                vec![100, 0],
            ),
            (
                "how many tolerated taints a node has does not matter",
                make_pod("p").tolerate("cpu-type", "arm64", PNS).tolerate("disk-type", "ssd", PNS),
                vec![make_node("a"), arm(), arm_ssd()],
                vec![100, 100, 100],
            ),
            (
                "the more untolerated taints, the lower the score",
                make_pod("p").tolerate("foo", "bar", PNS),
                vec![make_node("a"), arm(), arm_ssd()],
                vec![100, 50, 0],
            ),
            (
                "only PreferNoSchedule taints and tolerations count",
                make_pod("p").tolerate("cpu-type", "arm64", NS).tolerate("disk-type", "ssd", NS),
                vec![make_node("a"), make_node("b").taint("cpu-type", "arm64", NS), arm_ssd()],
                vec![100, 100, 0],
            ),
            ("no tolerations: the untainted node wins", make_pod("p"), vec![make_node("a"), arm()], vec![100, 0]),
            (
                "a toleration with an empty effect counts for PreferNoSchedule",
                make_pod("p").toleration(equal("cpu-type", "arm64", None)),
                vec![make_node("a"), arm(), arm_ssd()],
                vec![100, 100, 0],
            ),
            ("no taints anywhere: every node scores the maximum", make_pod("p"), vec![make_node("a"), make_node("b")], vec![100, 100]),
        ];
        for (name, pod, nodes, want) in table {
            let pod = pod.info();
            let infos: Vec<NodeInfo> = nodes.into_iter().map(|n| node_info(n.obj(), vec![])).collect();
            let nodes: Vec<&NodeInfo> = infos.iter().collect();
            let mut st = CycleState::new();
            assert!(TaintToleration.pre_score(&mut st, &pod, &nodes, &Snapshot::default()).is_success());
            let mut scores: Vec<NodeScore> =
                nodes.iter().enumerate().map(|(index, n)| NodeScore { index, score: TaintToleration.score(&st, &pod, n).0 }).collect();
            assert!(TaintToleration.normalize_score(&st, &pod, &mut scores).is_success());
            assert_eq!(scores.iter().map(|s| s.score).collect::<Vec<_>>(), want, "{name}");
        }
    }

    // Cases of upstream TestIsSchedulableAfterNodeChange.
    #[test]
    fn node_change_requeues_only_when_the_taints_become_tolerated() {
        let pod = make_pod("p").toleration(equal("dedicated", "user2", Some(NS))).obj();
        let node = |taints: &[&str]| {
            let mut n = make_node("a");
            for v in taints {
                n = n.taint("dedicated", v, NS);
            }
            Arc::new(n.obj())
        };
        let table = [
            ("an added node with an untolerated taint", None, node(&["user1"]), QueueingHint::Skip),
            ("an added node with a tolerated taint", None, node(&["user2"]), QueueingHint::Queue),
            ("still untolerated after the change", Some(node(&["user1"])), node(&["user1", "user3"]), QueueingHint::Skip),
            ("untolerated, then tolerated", Some(node(&["user1"])), node(&["user2"]), QueueingHint::Queue),
            ("tolerated before and after: nothing new", Some(node(&["user2"])), node(&[]), QueueingHint::Skip),
        ];
        for (name, old, new, want) in table {
            assert_eq!(node_change_hint(&pod, &EventObject::Node { old, new: Some(new) }), want, "{name}");
        }
        assert_eq!(node_change_hint(&pod, &EventObject::None), QueueingHint::Queue, "an unexpected object requeues");
    }
}
