//! NodeAffinity: `nodeSelector` and required node affinity (Filter, with a
//! PreFilter shortcut to named nodes for `matchFields: metadata.name`), and
//! preferred node affinity (Score). `addedAffinity` in the args applies a
//! profile-wide affinity to every pod.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Deserialize;

use crate::cache::{NodeInfo, Snapshot};
use crate::framework::helper::default_normalize_score;
use crate::framework::*;
use crate::model::{NodeSelector, NodeSelectorTerm, Pod, PreferredSchedulingTerm, Requirement, SelectorOp};

pub const NAME: &str = "NodeAffinity";
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";
pub const ERR_REASON_CONFLICT: &str = "pod affinity terms conflict";
const PRE_FILTER_KEY: &str = "PreFilterNodeAffinity";
const PRE_SCORE_KEY: &str = "PreScoreNodeAffinity";

// ---- args (API-shaped, as in KubeSchedulerConfiguration) --------------------

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAffinityArgs {
    #[serde(default)]
    pub added_affinity: Option<ApiNodeAffinity>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiNodeAffinity {
    #[serde(default)]
    pub required_during_scheduling_ignored_during_execution: Option<ApiNodeSelector>,
    #[serde(default)]
    pub preferred_during_scheduling_ignored_during_execution: Vec<ApiPreferredTerm>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiNodeSelector {
    #[serde(default)]
    pub node_selector_terms: Vec<ApiTerm>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiTerm {
    #[serde(default)]
    pub match_expressions: Vec<ApiRequirement>,
    #[serde(default)]
    pub match_fields: Vec<ApiRequirement>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiPreferredTerm {
    pub weight: i32,
    pub preference: ApiTerm,
}

fn convert_term(t: &ApiTerm) -> Result<NodeSelectorTerm, String> {
    let conv = |r: &ApiRequirement| -> Result<Requirement, String> {
        let op = SelectorOp::parse(&r.operator).ok_or_else(|| format!("unsupported operator {:?}", r.operator))?;
        Ok(Requirement { key: r.key.clone(), op, values: r.values.clone() })
    };
    Ok(NodeSelectorTerm {
        match_expressions: t.match_expressions.iter().map(conv).collect::<Result<_, _>>()?,
        match_fields: t.match_fields.iter().map(conv).collect::<Result<_, _>>()?,
    })
}

// ---- plugin ------------------------------------------------------------------

pub struct NodeAffinity {
    added_required: Option<NodeSelector>,
    added_preferred: Vec<PreferredSchedulingTerm>,
}

pub fn new(args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    let a: NodeAffinityArgs = super::decode_args(NAME, args)?;
    let mut added_required = None;
    let mut added_preferred = Vec::new();
    if let Some(aa) = &a.added_affinity {
        if let Some(r) = &aa.required_during_scheduling_ignored_during_execution {
            added_required = Some(NodeSelector { terms: r.node_selector_terms.iter().map(convert_term).collect::<Result<_, _>>()? });
        }
        for p in &aa.preferred_during_scheduling_ignored_during_execution {
            if !(1..=100).contains(&p.weight) {
                return Err(format!("addedAffinity: weight {} must be in the range 1-100", p.weight));
            }
            added_preferred.push(PreferredSchedulingTerm { weight: p.weight, preference: convert_term(&p.preference)? });
        }
    }
    Ok(Arc::new(NodeAffinity { added_required, added_preferred }))
}

/// nodeSelector plus required node affinity: both must hold.
pub fn required_node_affinity_matches(pod: &Pod, node_name: &str, labels: &crate::model::Labels) -> bool {
    for (k, v) in &pod.node_selector {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    match pod.affinity.node_affinity.as_ref().and_then(|n| n.required.as_ref()) {
        Some(sel) => sel.matches(node_name, labels),
        None => true,
    }
}

fn preferred_score(terms: &[PreferredSchedulingTerm], node: &NodeInfo) -> i64 {
    terms.iter().filter(|t| t.weight != 0 && t.preference.matches(node.name(), &node.node.labels)).map(|t| t.weight as i64).sum()
}

/// Requeue when a node that matches the pod's required affinity (and the
/// profile's added affinity) appears, or an existing node comes to match, as
/// upstream `isSchedulableAfterNodeChange`.
fn node_change_hint(added: Option<NodeSelector>) -> impl Fn(&Pod, &EventObject) -> QueueingHint + Send + Sync + 'static {
    move |pod, obj| {
        let EventObject::Node { old, new: Some(new) } = obj else { return QueueingHint::Queue };
        let matches = |n: &crate::model::Node| {
            added.as_ref().is_none_or(|a| a.matches(&n.name, &n.labels)) && required_node_affinity_matches(pod, &n.name, &n.labels)
        };
        if matches(new) && !old.as_deref().is_some_and(matches) {
            QueueingHint::Queue
        } else {
            QueueingHint::Skip
        }
    }
}

impl NodeAffinity {
    pub fn plain() -> NodeAffinity {
        NodeAffinity { added_required: None, added_preferred: Vec::new() }
    }
}

#[crate::plugin]
impl Plugin for NodeAffinity {
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
                ClusterEvent::new(EventResource::Node, action::ADD | action::UPDATE_NODE_LABEL, "NodeLabelChange"),
                node_change_hint(self.added_required.clone()),
            ),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::UnscheduledPod, action::UPDATE_POD_OTHER, "PodUpdate")),
        ]
    }
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snap: &Snapshot) -> (Option<PreFilterResult>, Status) {
        let required = pod.pod.affinity.node_affinity.as_ref().and_then(|n| n.required.as_ref());
        if required.is_none() && self.added_required.is_none() && pod.pod.node_selector.is_empty() {
            return (None, Status::skip());
        }
        state.write(PRE_FILTER_KEY, true);
        let Some(required) = required else { return (None, Status::success()) };
        if self.added_required.is_some() {
            return (None, Status::success());
        }
        // Terms naming nodes by metadata.name let us skip all other nodes.
        let mut names: Option<BTreeSet<String>> = None;
        for t in &required.terms {
            let mut term_names: Option<BTreeSet<String>> = None;
            for r in &t.match_fields {
                if r.key == "metadata.name" && r.op == SelectorOp::In {
                    let s: BTreeSet<String> = r.values.iter().cloned().collect();
                    term_names = Some(match term_names {
                        None => s,
                        Some(prev) => prev.intersection(&s).cloned().collect(),
                    });
                }
            }
            match term_names {
                None => return (None, Status::success()),
                Some(tn) => names.get_or_insert_with(BTreeSet::new).extend(tn),
            }
        }
        match names {
            Some(n) if n.is_empty() => (None, Status::unresolvable(ERR_REASON_CONFLICT)),
            Some(n) => (Some(PreFilterResult { node_names: Some(n) }), Status::success()),
            None => (None, Status::success()),
        }
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if let Some(added) = &self.added_required {
            if !added.matches(node.name(), &node.node.labels) {
                return Status::unresolvable(ERR_REASON_ENFORCED);
            }
        }
        if required_node_affinity_matches(&pod.pod, node.name(), &node.node.labels) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[&NodeInfo], _snap: &Snapshot) -> Status {
        let preferred: Vec<PreferredSchedulingTerm> =
            pod.pod.affinity.node_affinity.as_ref().map(|n| n.preferred.clone()).unwrap_or_default();
        if preferred.is_empty() && self.added_preferred.is_empty() {
            return Status::skip();
        }
        state.write(PRE_SCORE_KEY, preferred);
        Status::success()
    }
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let mut count = preferred_score(&self.added_preferred, node);
        match state.read::<Vec<PreferredSchedulingTerm>>(PRE_SCORE_KEY) {
            Some(p) => count += preferred_score(p, node),
            None => {
                if let Some(na) = &pod.pod.affinity.node_affinity {
                    count += preferred_score(&na.preferred, node);
                }
            }
        }
        (count, Status::success())
    }
    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod, node_info};

    fn expr(key: &str, op: SelectorOp, values: &[&str]) -> NodeSelectorTerm {
        NodeSelectorTerm { match_expressions: vec![Requirement::new(key, op, values)], match_fields: vec![] }
    }

    fn run_filter(pl: &NodeAffinity, pod: &Pod, node: crate::model::Node) -> Status {
        let pi = PodInfo::new(pod.clone());
        let mut st = CycleState::new();
        let (res, s) = pl.pre_filter(&mut st, &pi, &Snapshot::default());
        if s.is_skip() {
            return Status::success();
        }
        if !s.is_success() {
            return s;
        }
        if let Some(names) = res.and_then(|r| r.node_names) {
            if !names.contains(&node.name) {
                return Status::unresolvable("filtered by PreFilterResult");
            }
        }
        pl.filter(&st, &pi, &node_info(node, vec![]))
    }

    #[test]
    fn filter() {
        let sel = |terms: Vec<NodeSelectorTerm>| NodeSelector { terms };
        let foo = || make_node("node1").label("foo", "bar");
        // (pod, node, should fit)
        let table: Vec<(&str, Pod, crate::model::Node, bool)> = vec![
            ("no selector", make_pod("p").obj(), make_node("node1").obj(), true),
            ("missing labels", make_pod("p").node_selector("foo", "bar").obj(), make_node("node1").obj(), false),
            ("same labels", make_pod("p").node_selector("foo", "bar").obj(), foo().obj(), true),
            ("node has extra labels", make_pod("p").node_selector("foo", "bar").obj(), foo().label("baz", "blah").obj(), true),
            (
                "In matches",
                make_pod("p").required_node_affinity(sel(vec![expr("foo", SelectorOp::In, &["value1", "bar"])])).obj(),
                foo().obj(),
                true,
            ),
            (
                "Gt matches integer label",
                make_pod("p").required_node_affinity(sel(vec![expr("kernel-version", SelectorOp::Gt, &["0204"])])).obj(),
                make_node("node1").label("kernel-version", "0206").obj(),
                true,
            ),
            (
                "NotIn rejects",
                make_pod("p").required_node_affinity(sel(vec![expr("mem-type", SelectorOp::NotIn, &["DDR", "DDR2"])])).obj(),
                make_node("node1").label("mem-type", "DDR").obj(),
                false,
            ),
            (
                "Exists",
                make_pod("p").required_node_affinity(sel(vec![expr("GPU", SelectorOp::Exists, &[])])).obj(),
                make_node("node1").label("GPU", "NVIDIA-GRID-K1").obj(),
                true,
            ),
            ("empty term list matches nothing", make_pod("p").required_node_affinity(sel(vec![])).obj(), foo().obj(), false),
            (
                "empty term matches nothing",
                make_pod("p").required_node_affinity(sel(vec![NodeSelectorTerm::default()])).obj(),
                foo().obj(),
                false,
            ),
            (
                "terms are ORed",
                make_pod("p")
                    .required_node_affinity(sel(vec![expr("diffkey", SelectorOp::In, &["wrong"]), expr("foo", SelectorOp::In, &["bar"])]))
                    .obj(),
                foo().obj(),
                true,
            ),
            (
                "nodeSelector and affinity must both hold",
                make_pod("p").node_selector("foo", "bar").required_node_affinity(sel(vec![expr("x", SelectorOp::Exists, &[])])).obj(),
                foo().obj(),
                false,
            ),
            (
                "matchFields metadata.name",
                make_pod("p")
                    .required_node_affinity(sel(vec![NodeSelectorTerm {
                        match_expressions: vec![],
                        match_fields: vec![Requirement::new("metadata.name", SelectorOp::In, &["node1"])],
                    }]))
                    .obj(),
                make_node("node1").obj(),
                true,
            ),
            (
                "matchFields other node",
                make_pod("p")
                    .required_node_affinity(sel(vec![NodeSelectorTerm {
                        match_expressions: vec![],
                        match_fields: vec![Requirement::new("metadata.name", SelectorOp::In, &["node2"])],
                    }]))
                    .obj(),
                make_node("node1").obj(),
                false,
            ),
        ];
        let pl = NodeAffinity::plain();
        for (name, pod, node, fits) in table {
            let s = run_filter(&pl, &pod, node);
            assert_eq!(s.is_success(), fits, "{name}: {s}");
            if !fits && s.message() != "filtered by PreFilterResult" {
                assert_eq!(s.code, Code::UnschedulableAndUnresolvable, "{name}");
                assert_eq!(s.message(), ERR_REASON_POD, "{name}");
            }
        }
    }

    #[test]
    fn pre_filter_conflicting_names() {
        let term = |n: &str| NodeSelectorTerm {
            match_expressions: vec![],
            match_fields: vec![Requirement::new("metadata.name", SelectorOp::In, &[n])],
        };
        let both = NodeSelectorTerm {
            match_expressions: vec![],
            match_fields: term("a").match_fields.into_iter().chain(term("b").match_fields).collect(),
        };
        let pod = make_pod("p").required_node_affinity(NodeSelector { terms: vec![both] }).info();
        let (_, s) = NodeAffinity::plain().pre_filter(&mut CycleState::new(), &pod, &Snapshot::default());
        assert_eq!((s.code, s.message()), (Code::UnschedulableAndUnresolvable, ERR_REASON_CONFLICT.to_string()));
    }

    #[test]
    fn added_affinity_from_args() {
        let args = serde_json::json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}});
        let pl = new(Some(&args)).unwrap();
        let pod = make_pod("p").info();
        let mut st = CycleState::new();
        let _ = pl.pre_filter(&mut st, &pod, &Snapshot::default());
        let s = pl.filter(&st, &pod, &node_info(make_node("n").label("zone", "b").obj(), vec![]));
        assert_eq!(s.message(), ERR_REASON_ENFORCED);
        assert!(pl.filter(&st, &pod, &node_info(make_node("n").label("zone", "a").obj(), vec![])).is_success());
        assert!(new(Some(&serde_json::json!({"bogus": 1}))).is_err());
    }

    #[test]
    fn score() {
        let pod = make_pod("p")
            .preferred_node_affinity(2, expr("foo", SelectorOp::In, &["bar"]))
            .preferred_node_affinity(4, expr("key", SelectorOp::In, &["value"]))
            .preferred_node_affinity(5, expr("az", SelectorOp::In, &["az1"]))
            .info();
        let infos = [
            node_info(make_node("n1").label("foo", "bar").obj(), vec![]),
            node_info(make_node("n2").label("key", "value").obj(), vec![]),
            node_info(make_node("n3").label("foo", "bar").label("key", "value").label("az", "az1").obj(), vec![]),
            node_info(make_node("n4").obj(), vec![]),
        ];
        let nodes: Vec<&NodeInfo> = infos.iter().collect();
        let pl = NodeAffinity::plain();
        let mut st = CycleState::new();
        assert!(pl.pre_score(&mut st, &pod, &nodes, &Snapshot::default()).is_success());
        let mut scores: Vec<NodeScore> =
            nodes.iter().enumerate().map(|(index, n)| NodeScore { index, score: pl.score(&st, &pod, n).0 }).collect();
        pl.normalize_score(&st, &pod, &mut scores);
        assert_eq!(scores.iter().map(|s| s.score).collect::<Vec<_>>(), [18, 36, 100, 0]);
        // No preferences: PreScore skips.
        assert!(pl.pre_score(&mut CycleState::new(), &make_pod("q").info(), &nodes, &Snapshot::default()).is_skip());
    }

    // Cases of upstream TestIsSchedulableAfterNodeChange.
    #[test]
    fn node_change_requeues_when_a_node_comes_to_match() {
        let pod = make_pod("p").required_node_affinity(NodeSelector { terms: vec![expr("foo", SelectorOp::In, &["bar"])] }).obj();
        let node = |labels: &[(&str, &str)]| {
            let mut n = make_node("n");
            for (k, v) in labels {
                n = n.label(k, v);
            }
            Arc::new(n.obj())
        };
        let plain = node_change_hint(None);
        let added = node_change_hint(Some(NodeSelector { terms: vec![expr("zone", SelectorOp::In, &["a"])] }));
        type Hint<'a> = &'a dyn Fn(&Pod, &EventObject) -> QueueingHint;
        type N = Arc<crate::model::Node>;
        let table: Vec<(&str, Hint, Option<N>, N, QueueingHint)> = vec![
            ("an added node that matches", &plain, None, node(&[("foo", "bar")]), QueueingHint::Queue),
            ("an added node that does not match", &plain, None, node(&[]), QueueingHint::Skip),
            ("a node updated to match", &plain, Some(node(&[])), node(&[("foo", "bar")]), QueueingHint::Queue),
            ("a node updated and still not matching", &plain, Some(node(&[])), node(&[("foo", "baz")]), QueueingHint::Skip),
            (
                "a node that matched before and after",
                &plain,
                Some(node(&[("foo", "bar")])),
                node(&[("foo", "bar"), ("x", "y")]),
                QueueingHint::Skip,
            ),
            ("the profile's added affinity does not match", &added, None, node(&[("foo", "bar")]), QueueingHint::Skip),
            ("both the pod's and the added affinity match", &added, None, node(&[("foo", "bar"), ("zone", "a")]), QueueingHint::Queue),
        ];
        for (name, hint, old, new, want) in table {
            assert_eq!(hint(&pod, &EventObject::Node { old, new: Some(new) }), want, "{name}");
        }
        // nodeSelector counts as required affinity.
        let by_selector = make_pod("q").node_selector("disk", "ssd").obj();
        assert_eq!(plain(&by_selector, &EventObject::Node { old: None, new: Some(node(&[("disk", "ssd")])) }), QueueingHint::Queue);
        assert_eq!(plain(&by_selector, &EventObject::Node { old: None, new: Some(node(&[("disk", "hdd")])) }), QueueingHint::Skip);
    }
}
