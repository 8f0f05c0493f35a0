//! InterPodAffinity: required pod affinity / anti-affinity of the incoming
//! pod, and existing pods' required anti-affinity against it (Filter);
//! preferred terms of both sides (Score). Counts per topology pair are
//! built once in PreFilter/PreScore; Filter and Score only look them up.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::domain_memo::{Positives, Tally, Totals};
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::{Labels, Node, Pod};

pub const NAME: &str = "InterPodAffinity";
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
const PRE_FILTER_KEY: &str = "PreFilterInterPodAffinity";
const PRE_SCORE_KEY: &str = "PreScoreInterPodAffinity";

#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Args {
    #[serde(default = "one")]
    pub hard_pod_affinity_weight: i32,
    #[serde(default)]
    pub ignore_preferred_terms_of_existing_pods: bool,
}

fn one() -> i32 {
    1
}

impl Default for Args {
    fn default() -> Self {
        Args { hard_pod_affinity_weight: 1, ignore_preferred_terms_of_existing_pods: false }
    }
}

pub struct InterPodAffinity {
    args: Args,
    memos: super::domain_memo::DomainMemos,
}

pub fn new(args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    let a: Args = super::decode_args(NAME, args)?;
    if !(0..=100).contains(&a.hard_pod_affinity_weight) {
        return Err(format!("hardPodAffinityWeight: Invalid value: {}: not in valid range [0-100]", a.hard_pod_affinity_weight));
    }
    Ok(Arc::new(InterPodAffinity { args: a, memos: Default::default() }))
}

/// Counts per topology pair, keyed "topology key \0 value". Shared with the
/// memo that built it (no copy per cycle); copied only if preemption edits it.
#[derive(Clone, Debug, Default)]
struct TopologyCounts {
    map: Arc<Totals>,
    /// The entries with a positive count (upstream drops entries that reach
    /// 0), and their topology keys: Filter looks up only the node's labels of these.
    positives: Positives,
}

/// Runs `f` on "key\0value" built in a per-thread buffer: Filter looks pairs
/// up for every node and must not allocate.
fn with_pair<R>(key: &str, value: &str, f: impl FnOnce(&str) -> R) -> R {
    thread_local!(static BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) });
    BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        b.push_str(key);
        b.push('\0');
        b.push_str(value);
        f(&b)
    })
}

impl TopologyCounts {
    fn from_memo(t: Tally) -> TopologyCounts {
        TopologyCounts { map: t.totals, positives: t.positives }
    }

    fn get(&self, key: &str, value: &str) -> i64 {
        if self.positives.count == 0 {
            return 0;
        }
        with_pair(key, value, |k| self.map.get(k).map(|e| e.0).unwrap_or(0))
    }

    fn is_empty(&self) -> bool {
        self.positives.count == 0
    }
}

fn bump(m: &mut TopologyCounts, node: &Node, key: &str, delta: i64) {
    let Some(v) = node.labels.get(key) else { return };
    let map = Arc::make_mut(&mut m.map);
    let pair = format!("{key}\0{v}");
    let e = map.entry(pair.clone()).or_default();
    let before = e.0;
    e.0 += delta;
    let after = e.0;
    if after == 0 {
        map.remove(&pair);
    }
    m.positives.change(&pair, before > 0, after > 0);
}

fn domain(node: &Node, key: &str) -> Option<String> {
    node.labels.get(key).map(|v| format!("{key}\0{v}"))
}

fn ns_labels<'a>(snap_ns: &'a HashMap<String, Labels>, ns: &str) -> Option<&'a Labels> {
    snap_ns.get(ns)
}

fn matches_all(terms: &[AffinityTerm], pod: &Pod, nsl: Option<&Labels>) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, nsl))
}

#[derive(Clone, Debug, Default)]
struct PreFilterState {
    /// Existing pods' required anti-affinity terms matching the incoming pod.
    existing_anti: TopologyCounts,
    /// Existing pods matching all of the incoming pod's required affinity terms.
    affinity: TopologyCounts,
    /// Existing pods matching the incoming pod's required anti-affinity terms.
    anti: TopologyCounts,
    namespaces: Arc<HashMap<String, Labels>>,
}

impl PreFilterState {
    fn update(&mut self, incoming: &PodInfo, other: &PodInfo, node: &Node, delta: i64) {
        let own_ns = self.namespaces.get(&incoming.pod.namespace).cloned();
        for t in &other.required_anti_affinity_terms {
            if t.matches(&incoming.pod, own_ns.as_ref()) {
                bump(&mut self.existing_anti, node, &t.topology_key, delta);
            }
        }
        let other_ns = self.namespaces.get(&other.pod.namespace).cloned();
        if matches_all(&incoming.required_affinity_terms, &other.pod, other_ns.as_ref()) {
            for t in &incoming.required_affinity_terms {
                bump(&mut self.affinity, node, &t.topology_key, delta);
            }
        }
        for t in &incoming.required_anti_affinity_terms {
            if t.matches(&other.pod, other_ns.as_ref()) {
                bump(&mut self.anti, node, &t.topology_key, delta);
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
struct PreScoreState {
    /// "topology key \0 value" -> (score, nodes that add to it), shared with
    /// the memo that built it.
    topology_score: Arc<Totals>,
    /// The topology keys of `topology_score`.
    keys: Vec<String>,
}

impl InterPodAffinity {
    fn process_term(
        score: &mut HashMap<String, HashMap<String, i64>>,
        term: &AffinityTerm,
        weight: i64,
        pod: &Pod,
        nsl: Option<&Labels>,
        node: &Node,
    ) {
        if term.matches(pod, nsl) {
            if let Some(v) = node.labels.get(&term.topology_key) {
                let inner = match score.get_mut(term.topology_key.as_str()) {
                    Some(i) => i,
                    None => score.entry(term.topology_key.clone()).or_default(),
                };
                super::bump_count(inner, v, weight);
            }
        }
    }

    /// `pod`'s labels restricted to the keys that the selectors of existing
    /// pods' `terms` name (each key with its value, or absent), the keys
    /// themselves included: two pods with the same projection are matched by
    /// exactly the same existing terms. The key set is memoized per node
    /// (under `question`) like the counts.
    fn projected_labels(
        &self,
        question: &str,
        pod: &Pod,
        snap: &Snapshot,
        pods: fn(&NodeInfo) -> &[Arc<PodInfo>],
        terms: impl Fn(&PodInfo) -> Vec<&AffinityTerm>,
    ) -> String {
        let keys = self.memos.counts_multi(question, snap, |node| {
            let mut out: Vec<(String, i64)> = Vec::new();
            for existing in pods(node) {
                for t in terms(existing) {
                    for r in &t.selector.requirements {
                        if !out.iter().any(|(k, _)| *k == r.key) {
                            out.push((r.key.clone(), 1));
                        }
                    }
                }
            }
            out
        });
        let mut keys: Vec<&String> = keys.keys().collect();
        keys.sort_unstable();
        let mut s = String::new();
        for k in keys {
            s.push_str(&format!("{k:?}={:?};", pod.labels.get(k.as_str())));
        }
        s
    }

    fn process_existing_pod(
        &self,
        incoming: &PodInfo,
        incoming_ns: Option<&Labels>,
        existing: &PodInfo,
        existing_ns: Option<&Labels>,
        node: &Node,
        score: &mut HashMap<String, HashMap<String, i64>>,
    ) {
        if node.labels.is_empty() {
            return;
        }
        for t in &incoming.preferred_affinity_terms {
            Self::process_term(score, &t.term, t.weight as i64, &existing.pod, existing_ns, node);
        }
        for t in &incoming.preferred_anti_affinity_terms {
            Self::process_term(score, &t.term, -(t.weight as i64), &existing.pod, existing_ns, node);
        }
        if self.args.hard_pod_affinity_weight > 0 {
            for t in &existing.required_affinity_terms {
                Self::process_term(score, t, self.args.hard_pod_affinity_weight as i64, &incoming.pod, incoming_ns, node);
            }
        }
        for t in &existing.preferred_affinity_terms {
            Self::process_term(score, &t.term, t.weight as i64, &incoming.pod, incoming_ns, node);
        }
        for t in &existing.preferred_anti_affinity_terms {
            Self::process_term(score, &t.term, -(t.weight as i64), &incoming.pod, incoming_ns, node);
        }
    }
}

#[crate::plugin]
impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::AssignedPod,
                action::ADD | action::UPDATE_POD_LABEL | action::DELETE,
                "AssignedPodChange",
            )),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::Node, action::ADD | action::UPDATE_NODE_LABEL, "NodeLabelChange")),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::Namespace, action::ADD | action::UPDATE, "NamespaceChange")),
        ]
    }
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snap: &Snapshot) -> (Option<PreFilterResult>, Status) {
        let namespaces = snap.namespaces.clone();
        let own_ns = ns_labels(&namespaces, &pod.pod.namespace).cloned();
        let mut s = PreFilterState { namespaces: namespaces.clone(), ..Default::default() };
        // The counts are memoized across cycles per question (see domain_memo):
        // pods of one workload ask the same one, and few nodes change between.
        let p = &pod.pod;
        let any_anti = snap.have_pods_with_required_anti_affinity().next().is_some();
        if any_anti {
            // Only the labels existing terms select on can change the answer:
            // keying by all of them would make every pod of a workload whose
            // pods carry a label of their own (a name, an index) a new question.
            let sig = format!(
                "existing-anti|{}|{}|{:?}|{}",
                p.namespace,
                self.projected_labels(
                    "existing-anti-keys",
                    p,
                    snap,
                    |n| &n.pods_with_required_anti_affinity,
                    |e| e.required_anti_affinity_terms.iter().collect()
                ),
                own_ns,
                snap.namespaces_version
            );
            s.existing_anti = TopologyCounts::from_memo(self.memos.tally(&sig, snap, |node| {
                let mut out = Vec::new();
                for existing in &node.pods_with_required_anti_affinity {
                    for t in &existing.required_anti_affinity_terms {
                        if t.matches(p, own_ns.as_ref()) {
                            out.extend(domain(&node.node, &t.topology_key).map(|d| (d, 1)));
                        }
                    }
                }
                out
            }));
        }
        if !pod.required_affinity_terms.is_empty() {
            let sig = format!("affinity|{:?}|{}", pod.required_affinity_terms, snap.namespaces_version);
            s.affinity = TopologyCounts::from_memo(self.memos.tally(&sig, snap, |node| {
                let mut out = Vec::new();
                for existing in &node.pods {
                    let nsl = ns_labels(&namespaces, &existing.pod.namespace);
                    if matches_all(&pod.required_affinity_terms, &existing.pod, nsl) {
                        for t in &pod.required_affinity_terms {
                            out.extend(domain(&node.node, &t.topology_key).map(|d| (d, 1)));
                        }
                    }
                }
                out
            }));
        }
        if !pod.required_anti_affinity_terms.is_empty() {
            let sig = format!("anti|{:?}|{}", pod.required_anti_affinity_terms, snap.namespaces_version);
            s.anti = TopologyCounts::from_memo(self.memos.tally(&sig, snap, |node| {
                let mut out = Vec::new();
                for existing in &node.pods {
                    let nsl = ns_labels(&namespaces, &existing.pod.namespace);
                    for t in &pod.required_anti_affinity_terms {
                        if t.matches(&existing.pod, nsl) {
                            out.extend(domain(&node.node, &t.topology_key).map(|d| (d, 1)));
                        }
                    }
                }
                out
            }));
        }
        if s.existing_anti.is_empty() && pod.required_affinity_terms.is_empty() && pod.required_anti_affinity_terms.is_empty() {
            return (None, Status::skip());
        }
        state.write_scheduling_only(PRE_FILTER_KEY, s);
        (None, Status::success())
    }
    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, to_add: &Arc<PodInfo>, node: &NodeInfo) -> Status {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update(pod, to_add, &node.node, 1);
        }
        Status::success()
    }
    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, to_remove: &Arc<PodInfo>, node: &NodeInfo) -> Status {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update(pod, to_remove, &node.node, -1);
        }
        Status::success()
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_KEY) else {
            return Status::error("reading PreFilter state of InterPodAffinity");
        };
        // The incoming pod's required affinity.
        let mut pods_exist = true;
        for t in &pod.required_affinity_terms {
            match node.label(&t.topology_key) {
                Some(v) => {
                    if s.affinity.get(&t.topology_key, v) <= 0 {
                        pods_exist = false;
                    }
                }
                None => return Status::unresolvable(ERR_REASON_AFFINITY),
            }
        }
        if !pods_exist {
            // The first pod of a group with affinity to itself may go anywhere
            // its topology keys exist, if nothing else matches yet.
            let own_ns = s.namespaces.get(&pod.pod.namespace);
            if !(s.affinity.is_empty() && matches_all(&pod.required_affinity_terms, &pod.pod, own_ns)) {
                return Status::unresolvable(ERR_REASON_AFFINITY);
            }
        }
        // The incoming pod's required anti-affinity.
        if !s.anti.is_empty() {
            for t in &pod.required_anti_affinity_terms {
                if let Some(v) = node.label(&t.topology_key) {
                    if s.anti.get(&t.topology_key, v) > 0 {
                        return Status::unschedulable(ERR_REASON_ANTI_AFFINITY);
                    }
                }
            }
        }
        // Existing pods' required anti-affinity.
        if !s.existing_anti.is_empty() {
            for k in &s.existing_anti.positives.keys {
                if node.label(k).is_some_and(|v| s.existing_anti.get(k, v) > 0) {
                    return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY);
                }
            }
        }
        Status::success()
    }
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[&NodeInfo], snap: &Snapshot) -> Status {
        if nodes.is_empty() {
            return Status::skip();
        }
        let has_constraints = !pod.preferred_affinity_terms.is_empty() || !pod.preferred_anti_affinity_terms.is_empty();
        if self.args.ignore_preferred_terms_of_existing_pods && !has_constraints {
            return Status::skip();
        }
        let namespaces = snap.namespaces.clone();
        let own_ns = ns_labels(&namespaces, &pod.pod.namespace).cloned();
        // One node's part of the topology scores, "key\0value" -> weight.
        let contribution = |node: &NodeInfo| -> Vec<(String, i64)> {
            let pods = if has_constraints { &node.pods } else { &node.pods_with_affinity };
            let mut score: HashMap<String, HashMap<String, i64>> = HashMap::new();
            for existing in pods {
                // Without preferences of its own, the incoming pod is only
                // scored by existing pods' affinity terms (required anti-affinity
                // does not score): skip pods that have none.
                if !has_constraints
                    && existing.required_affinity_terms.is_empty()
                    && existing.preferred_affinity_terms.is_empty()
                    && existing.preferred_anti_affinity_terms.is_empty()
                {
                    continue;
                }
                let ens = ns_labels(&namespaces, &existing.pod.namespace);
                self.process_existing_pod(pod, own_ns.as_ref(), existing, ens, &node.node, &mut score);
            }
            score.into_iter().flat_map(|(k, values)| values.into_iter().map(move |(v, w)| (format!("{k}\0{v}"), w))).collect()
        };
        // Without preferences of its own, only nodes with affinity pods
        // count: where they are few, visiting them beats the memo's pass
        // over every node (and a cluster with none skips at once).
        let totals = if !has_constraints && snap.have_pods_with_affinity().count() * 4 < snap.nodes().len() {
            let mut totals = Totals::default();
            for node in snap.have_pods_with_affinity() {
                for (pair, w) in contribution(node) {
                    let e = totals.entry(pair).or_default();
                    e.0 += w;
                    e.1 += 1;
                }
            }
            Arc::new(totals)
        } else {
            // Memoized per node across cycles, as PreFilter's counts: the
            // question is the incoming pod's own preferences and what of it
            // existing pods' terms can select (its namespace, the labels
            // they name, its namespace's labels).
            let hard = self.args.hard_pod_affinity_weight > 0;
            let projected = self.projected_labels(
                "score-keys",
                &pod.pod,
                snap,
                |n| &n.pods_with_affinity,
                |e| {
                    let mut terms: Vec<&AffinityTerm> = Vec::new();
                    if hard {
                        terms.extend(&e.required_affinity_terms);
                    }
                    terms.extend(e.preferred_affinity_terms.iter().map(|w| &w.term));
                    terms.extend(e.preferred_anti_affinity_terms.iter().map(|w| &w.term));
                    terms
                },
            );
            let sig = format!(
                "score|{has_constraints}|{:?}|{:?}|{}|{projected}|{own_ns:?}|{}",
                pod.preferred_affinity_terms, pod.preferred_anti_affinity_terms, pod.pod.namespace, snap.namespaces_version
            );
            self.memos.counts_multi(&sig, snap, contribution)
        };
        if totals.is_empty() {
            return Status::skip();
        }
        let mut keys: Vec<String> = totals.keys().filter_map(|p| p.split_once('\0')).map(|(k, _)| k.to_string()).collect();
        keys.sort_unstable();
        keys.dedup();
        state.write_scheduling_only(PRE_SCORE_KEY, PreScoreState { topology_score: totals, keys });
        Status::success()
    }
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return (0, Status::error("reading PreScore state of InterPodAffinity"));
        };
        let mut total = 0;
        for key in &s.keys {
            if let Some(v) = node.label(key) {
                total += with_pair(key, v, |pair| s.topology_score.get(pair).map_or(0, |e| e.0));
            }
        }
        (total, Status::success())
    }
    fn normalize_score(&self, state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else { return Status::success() };
        if s.topology_score.is_empty() || scores.is_empty() {
            return Status::success();
        }
        let min = scores.iter().map(|s| s.score).min().unwrap_or(0);
        let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
        let diff = max - min;
        for sc in scores.iter_mut() {
            sc.score = if diff > 0 { (MAX_NODE_SCORE as f64 * ((sc.score - min) as f64 / diff as f64)) as i64 } else { 0 };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests;
