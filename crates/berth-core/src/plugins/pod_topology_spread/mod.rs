//! PodTopologySpread: keep matching pods evenly spread over topology domains.
//! DoNotSchedule constraints filter (`matchNum + selfMatch - globalMin >
//! maxSkew` rejects); ScheduleAnyway constraints score. Counts are computed
//! once per cycle in PreFilter/PreScore, per domain, so Filter and Score are
//! O(constraints) per node.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use super::domain_memo::Counts;
use super::node_affinity::required_node_affinity_matches;
use super::taint_toleration::find_untolerated_taint;
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::{LabelSelector, Labels, NodeInclusionPolicy, Pod, Requirement, SelectorOp, UnsatisfiableConstraintAction};

pub const NAME: &str = "PodTopologySpread";
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints (missing required label)";
const PRE_FILTER_KEY: &str = "PreFilterPodTopologySpread";
const PRE_SCORE_KEY: &str = "PreScorePodTopologySpread";
const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    pub when_unsatisfiable: String,
    #[serde(default)]
    pub label_selector: Option<serde_json::Value>,
    #[serde(default)]
    pub min_domains: Option<i32>,
    #[serde(default)]
    pub node_affinity_policy: Option<String>,
    #[serde(default)]
    pub node_taints_policy: Option<String>,
    #[serde(default)]
    pub match_label_keys: Vec<String>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    pub default_constraints: Vec<ApiConstraint>,
    /// `System` (default) or `List`.
    #[serde(default)]
    pub defaulting_type: Option<String>,
}

/// A constraint with its selector resolved for the pod being scheduled.
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i32,
    topology_key: String,
    selector: LabelSelector,
    min_domains: i32,
    node_affinity_policy: NodeInclusionPolicy,
    node_taints_policy: NodeInclusionPolicy,
}

/// Default constraints: `(maxSkew, topologyKey, action)` with no selector.
type DefaultConstraint = (i32, String, UnsatisfiableConstraintAction, Option<i32>, Vec<String>);

pub struct PodTopologySpread {
    defaults: Vec<DefaultConstraint>,
    system_defaulted: bool,
    memos: super::domain_memo::DomainMemos,
}

pub fn new(args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    let a: Args = super::decode_args(NAME, args)?;
    let list = match a.defaulting_type.as_deref() {
        None | Some("System") => false,
        Some("List") => true,
        Some(o) => return Err(format!("defaultingType: Unsupported value: {o:?}: supported values: \"List\", \"System\"")),
    };
    if !list && !a.default_constraints.is_empty() {
        return Err("defaultConstraints: Invalid value: when .defaultingType is \"System\", .defaultConstraints must be empty".into());
    }
    let defaults = if list {
        let mut out = Vec::new();
        for (i, c) in a.default_constraints.iter().enumerate() {
            if c.label_selector.is_some() {
                return Err(format!(
                    "defaultConstraints[{i}].labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod"
                ));
            }
            if c.max_skew <= 0 {
                return Err(format!("defaultConstraints[{i}].maxSkew: Invalid value: {}: must be greater than zero", c.max_skew));
            }
            let action = match c.when_unsatisfiable.as_str() {
                "DoNotSchedule" => UnsatisfiableConstraintAction::DoNotSchedule,
                "ScheduleAnyway" => UnsatisfiableConstraintAction::ScheduleAnyway,
                o => return Err(format!("defaultConstraints[{i}].whenUnsatisfiable: Unsupported value: {o:?}")),
            };
            out.push((c.max_skew, c.topology_key.clone(), action, c.min_domains, c.match_label_keys.clone()));
        }
        out
    } else {
        vec![
            (3, HOSTNAME.to_string(), UnsatisfiableConstraintAction::ScheduleAnyway, None, vec![]),
            (5, ZONE.to_string(), UnsatisfiableConstraintAction::ScheduleAnyway, None, vec![]),
        ]
    };
    Ok(Arc::new(PodTopologySpread { defaults, system_defaulted: !list, memos: Default::default() }))
}

fn merge_match_label_keys(mut sel: LabelSelector, keys: &[String], labels: &Labels) -> LabelSelector {
    if sel.nothing {
        return sel;
    }
    for k in keys {
        if let Some(v) = labels.get(k) {
            sel.requirements.push(Requirement::new(k, SelectorOp::In, &[v]));
        }
    }
    sel
}

/// The selector default constraints use: the pod's controller selects it.
/// Berth does not watch Services or ReplicaSets, so a pod owned by a
/// ReplicaSet, StatefulSet or ReplicationController is taken to be selected
/// by its own labels (which is what such controllers' selectors match).
fn default_selector(pod: &Pod) -> Option<LabelSelector> {
    let owned = pod.controller_ref().is_some_and(|o| matches!(o.kind.as_str(), "ReplicaSet" | "StatefulSet" | "ReplicationController"));
    if !owned || pod.labels.is_empty() {
        return None;
    }
    Some(LabelSelector::from_match_labels(pod.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
}

impl PodTopologySpread {
    fn constraints(&self, pod: &Pod, action: UnsatisfiableConstraintAction) -> Vec<Constraint> {
        if !pod.topology_spread_constraints.is_empty() {
            return pod
                .topology_spread_constraints
                .iter()
                .filter(|c| c.when_unsatisfiable == action)
                .map(|c| Constraint {
                    max_skew: c.max_skew,
                    topology_key: c.topology_key.clone(),
                    selector: merge_match_label_keys(c.label_selector.clone(), &c.match_label_keys, &pod.labels),
                    min_domains: c.min_domains.unwrap_or(1),
                    node_affinity_policy: c.node_affinity_policy.unwrap_or(NodeInclusionPolicy::Honor),
                    node_taints_policy: c.node_taints_policy.unwrap_or(NodeInclusionPolicy::Ignore),
                })
                .collect();
        }
        let Some(sel) = default_selector(pod) else { return Vec::new() };
        self.defaults
            .iter()
            .filter(|d| d.2 == action)
            .map(|(skew, key, _, min_domains, keys)| Constraint {
                max_skew: *skew,
                topology_key: key.clone(),
                selector: merge_match_label_keys(sel.clone(), keys, &pod.labels),
                min_domains: min_domains.unwrap_or(1),
                node_affinity_policy: NodeInclusionPolicy::Honor,
                node_taints_policy: NodeInclusionPolicy::Ignore,
            })
            .collect()
    }
}

/// Everything a constraint's per-domain counts depend on, besides the nodes.
fn signature(phase: &str, pod: &Pod, c: &Constraint, all: &[Constraint], require_all: bool) -> String {
    let keys: Vec<&str> = all.iter().map(|c| c.topology_key.as_str()).collect();
    let mut s =
        format!("{phase}|{}|{}|{:?}|{:?}|{require_all}|{keys:?}", pod.namespace, c.topology_key, c.selector, c.node_affinity_policy);
    if c.node_affinity_policy == NodeInclusionPolicy::Honor {
        s.push_str(&format!("|{:?}|{:?}", pod.node_selector, pod.affinity.node_affinity.as_ref().map(|n| &n.required)));
    }
    if c.node_taints_policy == NodeInclusionPolicy::Honor {
        s.push_str(&format!("|taints|{:?}", pod.tolerations));
    }
    s
}

fn node_has_all_keys(node: &NodeInfo, cs: &[Constraint]) -> bool {
    cs.iter().all(|c| node.label(&c.topology_key).is_some())
}

fn matches_inclusion_policies(c: &Constraint, pod: &Pod, node: &NodeInfo) -> bool {
    if c.node_affinity_policy == NodeInclusionPolicy::Honor && !required_node_affinity_matches(pod, node.name(), &node.node.labels) {
        return false;
    }
    if c.node_taints_policy == NodeInclusionPolicy::Honor && find_untolerated_taint(&node.taints, &pod.tolerations).is_some() {
        return false;
    }
    true
}

/// Matching pods on a node, skipping terminating pods and other namespaces.
fn count_matching(node: &NodeInfo, selector: &LabelSelector, ns: &str) -> i64 {
    if selector.nothing || selector.requirements.is_empty() {
        return 0;
    }
    node.pods.iter().filter(|p| !p.pod.terminating && p.pod.namespace == ns && selector.matches(&p.pod.labels)).count() as i64
}

#[derive(Clone, Debug, Default)]
struct PreFilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: domain value -> matching pods.
    counts: Vec<Counts>,
    /// Per constraint: the smallest count over eligible domains.
    min: Vec<i64>,
    /// Per constraint: 1 if its selector matches the incoming pod itself
    /// (upstream's `selfMatchNum`), worked out once rather than per node.
    self_match: Vec<i64>,
}

impl PreFilterState {
    fn recompute_min(&mut self, i: usize) {
        self.min[i] = self.counts[i].values().copied().min().unwrap_or(i32::MAX as i64);
    }

    fn update(&mut self, updated: &Pod, preemptor: &Pod, node: &NodeInfo, delta: i64) {
        if updated.namespace != preemptor.namespace || !node_has_all_keys(node, &self.constraints) {
            return;
        }
        for i in 0..self.constraints.len() {
            let c = &self.constraints[i];
            if !c.selector.matches(&updated.labels) || !matches_inclusion_policies(c, preemptor, node) {
                continue;
            }
            let Some(v) = node.label(&c.topology_key) else { continue };
            *self.counts[i].entry(v.to_string()).or_default() += delta;
            self.recompute_min(i);
        }
    }
}

#[derive(Clone, Debug, Default)]
struct PreScoreState {
    constraints: Vec<Constraint>,
    ignored: HashSet<String>,
    ignored_pos: Vec<bool>,
    /// Per constraint: domain -> matching pods (not used for hostname).
    counts: Vec<Counts>,
    weights: Vec<f64>,
}

#[crate::plugin]
impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::AssignedPod,
                action::ADD | action::DELETE | action::UPDATE_POD_LABEL,
                "AssignedPodChange",
            )),
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::Node,
                action::ADD | action::DELETE | action::UPDATE_NODE_LABEL | action::UPDATE_NODE_TAINT,
                "NodeChange",
            )),
        ]
    }
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snap: &Snapshot) -> (Option<PreFilterResult>, Status) {
        let p = &pod.pod;
        let constraints = self.constraints(p, UnsatisfiableConstraintAction::DoNotSchedule);
        if constraints.is_empty() {
            return (None, Status::skip());
        }
        let counts: Vec<Counts> = constraints
            .iter()
            .map(|c| {
                self.memos.counts(&signature("filter", p, c, &constraints, true), snap, |node| {
                    if !node_has_all_keys(node, &constraints) || !matches_inclusion_policies(c, p, node) {
                        return None;
                    }
                    Some((node.label(&c.topology_key)?.to_string(), count_matching(node, &c.selector, &p.namespace)))
                })
            })
            .collect();
        let self_match = constraints.iter().map(|c| i64::from(c.selector.matches(&p.labels))).collect();
        let mut s = PreFilterState { min: vec![0; constraints.len()], constraints, counts, self_match };
        for i in 0..s.constraints.len() {
            s.recompute_min(i);
        }
        state.write_scheduling_only(PRE_FILTER_KEY, s);
        (None, Status::success())
    }
    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, to_add: &Arc<PodInfo>, node: &NodeInfo) -> Status {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update(&to_add.pod, &pod.pod, node, 1);
        }
        Status::success()
    }
    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, to_remove: &Arc<PodInfo>, node: &NodeInfo) -> Status {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update(&to_remove.pod, &pod.pod, node, -1);
        }
        Status::success()
    }
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_KEY) else {
            return Status::error("reading PreFilter state of PodTopologySpread");
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.label(&c.topology_key) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let mut min = s.min[i];
            if (s.counts[i].len() as i32) < c.min_domains {
                min = 0;
            }
            let match_num = s.counts[i].get(value).copied().unwrap_or(0);
            if match_num + s.self_match[i] - min > c.max_skew as i64 {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[&NodeInfo], snap: &Snapshot) -> Status {
        let p = &pod.pod;
        if nodes.is_empty() || snap.num_nodes() == 0 {
            return Status::skip();
        }
        let constraints = self.constraints(p, UnsatisfiableConstraintAction::ScheduleAnyway);
        if constraints.is_empty() {
            return Status::skip();
        }
        let require_all = !p.topology_spread_constraints.is_empty() || !self.system_defaulted;
        let mut s = PreScoreState {
            counts: vec![Counts::default(); constraints.len()],
            ignored_pos: vec![false; nodes.len()],
            ..Default::default()
        };
        let mut topo_size = vec![0usize; constraints.len()];
        for (pos, n) in nodes.iter().enumerate() {
            if require_all && !node_has_all_keys(n, &constraints) {
                s.ignored.insert(n.name().to_string());
                s.ignored_pos[pos] = true;
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == HOSTNAME {
                    continue;
                }
                let v = n.label(&c.topology_key).unwrap_or("");
                if !s.counts[i].contains_key(v) {
                    s.counts[i].insert(v.to_string(), 0);
                    topo_size[i] += 1;
                }
            }
        }
        s.weights = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == HOSTNAME { nodes.len() - s.ignored.len() } else { topo_size[i] };
                ((size + 2) as f64).ln()
            })
            .collect();
        for (i, c) in constraints.iter().enumerate() {
            if c.topology_key == HOSTNAME {
                continue;
            }
            let totals = self.memos.counts(&signature("score", p, c, &constraints, require_all), snap, |n| {
                if (require_all && !node_has_all_keys(n, &constraints)) || !matches_inclusion_policies(c, p, n) {
                    return None;
                }
                let v = n.label(&c.topology_key).unwrap_or_default().to_string();
                Some((v, count_matching(n, &c.selector, &p.namespace)))
            });
            for (v, cnt) in s.counts[i].iter_mut() {
                *cnt = totals.get(v).copied().unwrap_or(0);
            }
        }
        s.constraints = constraints;
        state.write_scheduling_only(PRE_SCORE_KEY, s);
        Status::success()
    }
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return (0, Status::error("reading PreScore state of PodTopologySpread"));
        };
        if s.ignored.contains(node.name()) {
            return (0, Status::success());
        }
        let mut score = 0f64;
        for (i, c) in s.constraints.iter().enumerate() {
            if let Some(v) = node.label(&c.topology_key) {
                let cnt = if c.topology_key == HOSTNAME {
                    count_matching(node, &c.selector, &pod.pod.namespace)
                } else {
                    s.counts[i].get(v).copied().unwrap_or(0)
                };
                score += cnt as f64 * s.weights[i] + (c.max_skew - 1) as f64;
            }
        }
        (score.round() as i64, Status::success())
    }
    fn normalize_score(&self, state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else { return Status::success() };
        let ignored = |i: usize| s.ignored_pos.get(i).copied().unwrap_or(false);
        let mut min = i64::MAX;
        let mut max = 0i64;
        for sc in scores.iter() {
            if ignored(sc.index) {
                continue;
            }
            min = min.min(sc.score);
            max = max.max(sc.score);
        }
        for sc in scores.iter_mut() {
            if ignored(sc.index) {
                sc.score = 0;
            } else if max == 0 {
                sc.score = MAX_NODE_SCORE;
            } else {
                sc.score = MAX_NODE_SCORE * (max + min - sc.score) / max;
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests;
