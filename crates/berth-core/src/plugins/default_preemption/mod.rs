//! DefaultPreemption (PostFilter): when a pod fits nowhere, find nodes where
//! evicting lower-priority pods makes it fit, choose victims the way
//! upstream does (reprieve as many as possible, PDB-violating ones first),
//! and pick one node by upstream's criteria in order: fewest PDB
//! violations, lowest highest-priority victim, smallest priority sum,
//! fewest victims, latest start time.
//!
//! The plugin only decides: the engine's caller deletes the victims and
//! records the nomination.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;
use serde::Deserialize;

use crate::cache::NodeInfo;
use crate::framework::*;
use crate::model::{Pod, PodDisruptionBudget, PreemptionPolicy};
use crate::scheduler::fit_error_message;

pub const NAME: &str = "DefaultPreemption";
pub const MSG_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const MSG_NO_VICTIMS: &str = "No preemption victims found for incoming pod";

#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Args {
    #[serde(default = "ten")]
    pub min_candidate_nodes_percentage: i32,
    #[serde(default = "hundred")]
    pub min_candidate_nodes_absolute: i32,
}

fn ten() -> i32 {
    10
}
fn hundred() -> i32 {
    100
}

impl Default for Args {
    fn default() -> Self {
        Args { min_candidate_nodes_percentage: 10, min_candidate_nodes_absolute: 100 }
    }
}

pub struct DefaultPreemption {
    args: Args,
    /// Dry-run results of the last preemptor, for the next if it has the
    /// same filter inputs and the PDBs are the same: a wave of identical
    /// preemptors then dry-runs only the nodes that changed.
    memo: std::sync::Mutex<DryRunMemo>,
}

#[derive(Default)]
struct DryRunMemo {
    pdbs: Vec<PodDisruptionBudget>,
    results: NodeMemo<VictimsOrStatus>,
}

pub fn new(args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    let a: Args = super::decode_args(NAME, args)?;
    if !(0..=100).contains(&a.min_candidate_nodes_percentage) {
        return Err(format!(
            "minCandidateNodesPercentage: Invalid value: {}: not in valid range [0, 100]",
            a.min_candidate_nodes_percentage
        ));
    }
    if a.min_candidate_nodes_absolute < 0 {
        return Err(format!("minCandidateNodesAbsolute: Invalid value: {}: not in valid range [0, inf)", a.min_candidate_nodes_absolute));
    }
    if a.min_candidate_nodes_percentage == 0 && a.min_candidate_nodes_absolute == 0 {
        return Err("minCandidateNodesPercentage and minCandidateNodesAbsolute cannot both be zero".into());
    }
    Ok(Arc::new(DefaultPreemption { args: a, memo: Default::default() }))
}

/// Victims (shared: kept dry runs are handed to every later preemptor of a
/// run) and their PDB violations, or why the node cannot host the pod.
type VictimsOrStatus = Result<(Arc<[Arc<PodInfo>]>, usize), Status>;

/// A node where preemption would work, with its victims (most important first).
#[derive(Clone, Debug)]
pub struct Candidate {
    pub node_index: usize,
    /// Most important first; shared with the dry run that found them.
    pub victims: Arc<[Arc<PodInfo>]>,
    pub num_pdb_violations: usize,
}

/// Most important first: higher priority, then (for equal priority) the pod
/// that started earlier; pods not started yet last. Stable for ties.
fn sort_by_importance<P: AsRef<PodInfo>>(v: &mut [P]) {
    let started = |p: &PodInfo| (p.pod.start_ms.is_none(), p.pod.start_ms.unwrap_or(0));
    v.sort_by(|a, b| {
        let (a, b) = (a.as_ref(), b.as_ref());
        b.priority.cmp(&a.priority).then_with(|| started(a).cmp(&started(b)))
    });
}

/// Splits victims into those whose eviction would exceed a PDB's budget and the rest.
pub fn split_by_pdb_violation<P: AsRef<PodInfo> + Clone>(victims: &[P], pdbs: &[PodDisruptionBudget]) -> (Vec<P>, Vec<P>) {
    if pdbs.is_empty() {
        return (Vec::new(), victims.to_vec());
    }
    let mut allowed: Vec<i32> = pdbs.iter().map(|p| p.disruptions_allowed).collect();
    let (mut violating, mut ok) = (Vec::new(), Vec::new());
    for v in victims {
        let pod = &v.as_ref().pod;
        let mut violated = false;
        if !pod.labels.is_empty() {
            for (i, pdb) in pdbs.iter().enumerate() {
                // Here a nil or empty selector matches nothing.
                if pdb.namespace != pod.namespace || pdb.selector.nothing || pdb.selector.requirements.is_empty() {
                    continue;
                }
                if !pdb.selector.matches(&pod.labels) || pdb.disrupted_pods.iter().any(|n| *n == pod.name) {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(v.clone());
        } else {
            ok.push(v.clone());
        }
    }
    (violating, ok)
}

impl DefaultPreemption {
    fn num_candidates(&self, num_nodes: usize) -> usize {
        let mut n = num_nodes * self.args.min_candidate_nodes_percentage as usize / 100;
        n = n.max(self.args.min_candidate_nodes_absolute as usize);
        n.min(num_nodes)
    }

    /// Upstream `SelectVictimsOnNode`: on a copy of the node, remove every
    /// lower-priority pod, check the pod fits, then add back (reprieve) as
    /// many as possible, PDB-violating ones first, most important first.
    /// The copy is built from the pods that stay rather than cloned and
    /// emptied, and the cycle state is copied only if a plugin tracks pod
    /// additions and removals.
    pub fn select_victims_on_node(
        &self,
        fwk: &Framework,
        state: &CycleState,
        pod: &PodInfo,
        original: &NodeInfo,
        pdbs: &[PodDisruptionBudget],
        noms: &[&Arc<PodInfo>],
    ) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
        let lower = |p: &PodInfo| p.priority < pod.priority;
        let mut potential: Vec<&Arc<PodInfo>> = original.pods.iter().filter(|p| lower(p)).collect();
        if potential.is_empty() {
            return Err(Status::unresolvable(MSG_NO_VICTIMS));
        }
        let mut node = original.with_pods_where(|p| !lower(p));
        let mut copy = fwk.tracks_pod_changes(state).then(|| state.clone());
        if let Some(st) = copy.as_mut() {
            for p in &potential {
                let s = fwk.run_remove_pod(st, pod, p, &node);
                if !s.is_success() {
                    return Err(s);
                }
            }
        }
        // The node with the nominated pods added, kept in step with `node`
        // (rather than copied for every check).
        let mut with = (!noms.is_empty()).then(|| node.with_added(noms));
        let filter = |st: &CycleState, node: &NodeInfo, with: &Option<NodeInfo>| match with {
            Some(w) => fwk.run_filter_two_pass(st, pod, node, w, noms),
            None => fwk.run_filter(st, pod, node),
        };
        let s = filter(copy.as_ref().unwrap_or(state), &node, &with);
        if !s.is_success() {
            return Err(s);
        }
        sort_by_importance(&mut potential);
        let (violating, non_violating) = split_by_pdb_violation(&potential, pdbs);
        let mut victims = Vec::new();
        let mut num_violating = 0;
        let mut reprieve = |p: &Arc<PodInfo>, copy: &mut Option<CycleState>, node: &mut NodeInfo| -> Result<bool, Status> {
            node.add_pod(p.clone());
            if let Some(w) = with.as_mut() {
                w.add_pod(p.clone());
            }
            if let Some(st) = copy.as_mut() {
                let s = fwk.run_add_pod(st, pod, p, node);
                if !s.is_success() {
                    return Err(s);
                }
            }
            let fits = filter(copy.as_ref().unwrap_or(state), node, &with).is_success();
            if !fits {
                node.remove_pod(&p.pod);
                if let Some(w) = with.as_mut() {
                    w.remove_pod(&p.pod);
                }
                if let Some(st) = copy.as_mut() {
                    let s = fwk.run_remove_pod(st, pod, p, node);
                    if !s.is_success() {
                        return Err(s);
                    }
                }
                victims.push(p.clone());
            }
            Ok(fits)
        };
        for p in &violating {
            if !reprieve(p, &mut copy, &mut node)? {
                num_violating += 1;
            }
        }
        for p in &non_violating {
            reprieve(p, &mut copy, &mut node)?;
        }
        if !violating.is_empty() && !non_violating.is_empty() {
            sort_by_importance(&mut victims);
        }
        Ok((victims, num_violating))
    }
}

/// Upstream `callExtenders`: each extender that takes part in preemption
/// and is interested in the pod narrows the candidates in turn (the nodes
/// it keeps, with the victims it names). An extender's error, or a node
/// left without victims, fails preemption unless the extender is ignorable
/// (then it is skipped, or the node dropped). Candidates keep their order.
fn call_extenders(ctx: &PostFilterContext<'_>, pod: &Pod, candidates: Vec<Candidate>) -> Result<Vec<Candidate>, String> {
    let extenders: Vec<_> = ctx.framework.extenders.iter().filter(|e| e.supports_preemption() && e.is_interested(pod)).collect();
    if extenders.is_empty() {
        return Ok(candidates);
    }
    let snap = ctx.snapshot;
    let name = |c: &Candidate| snap.nodes()[c.node_index].name().to_string();
    let mut map: BTreeMap<String, Victims> = candidates
        .iter()
        .map(|c| (name(c), Victims { pods: c.victims.to_vec(), num_pdb_violations: c.num_pdb_violations as i64 }))
        .collect();
    let lookup = |node: &str| snap.get(node).cloned();
    for e in extenders {
        let mut answer = match e.process_preemption(pod, &map, &lookup) {
            Ok(a) => a,
            Err(err) if e.is_ignorable() => {
                ctx.framework.handle.observer().extender_skipped(e.name(), "preempt", &err);
                continue;
            }
            Err(err) => return Err(err.to_string()),
        };
        let empty: Vec<String> = answer.iter().filter(|(_, v)| v.pods.is_empty()).map(|(n, _)| n.clone()).collect();
        if let Some(node) = empty.first() {
            if !e.is_ignorable() {
                return Err(format!("expected at least one victim pod on node {node:?}"));
            }
            for n in &empty {
                answer.remove(n);
            }
        }
        map = answer;
        if map.is_empty() {
            break;
        }
    }
    Ok(candidates
        .into_iter()
        .filter_map(|c| {
            let v = map.remove(&name(&c))?;
            Some(Candidate { node_index: c.node_index, victims: v.pods.into(), num_pdb_violations: v.num_pdb_violations.max(0) as usize })
        })
        .collect())
}

/// Upstream `pickOneNodeForPreemption`, criteria in order; ties go to the first.
/// Upstream narrows the candidates criterion by criterion; keeping the
/// greatest tuple of all criteria, first on ties, picks the same node in one
/// pass (a preemptor at 100 000 nodes weighs 10 000 candidates).
pub fn pick_one(candidates: &[Candidate]) -> Option<usize> {
    let key = |c: &Candidate| -> [i64; 5] {
        let top = c.victims.first().map(|v| v.pod.priority).unwrap_or(0);
        // A victim that has not started counts as starting now (the latest).
        let earliest_start_of_top =
            c.victims.iter().filter(|v| v.pod.priority == top).map(|v| v.pod.start_ms.unwrap_or(i64::MAX)).min().unwrap_or(i64::MAX);
        [
            -(c.num_pdb_violations as i64),
            -(top as i64),
            -c.victims.iter().map(|v| v.pod.priority as i64 + i32::MAX as i64 + 1).sum::<i64>(),
            -(c.victims.len() as i64),
            earliest_start_of_top,
        ]
    };
    let mut best: Option<(usize, [i64; 5])> = None;
    for (i, c) in candidates.iter().enumerate() {
        let k = key(c);
        if best.as_ref().is_none_or(|(_, b)| k > *b) {
            best = Some((i, k));
        }
    }
    best.map(|(i, _)| i)
}

#[crate::plugin]
impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
    fn post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, Status) {
        let p = &pod.pod;
        let snap = ctx.snapshot;
        if p.preemption_policy == PreemptionPolicy::Never {
            return (None, Status::unschedulable("preemption: not eligible due to preemptionPolicy=Never."));
        }
        if let Some(nn) = &p.nominated_node_name {
            let unresolvable =
                snap.index_of(nn).and_then(|i| statuses.get(i)).is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable);
            if !unresolvable {
                if let Some(ni) = snap.get(nn) {
                    if ni.pods.iter().any(|q| q.pod.priority < p.priority && q.pod.terminating_by_preemption) {
                        return (None, Status::unschedulable("preemption: not eligible due to a terminating pod on the nominated node."));
                    }
                }
            }
        }
        let all = snap.num_nodes();
        let potential = statuses.indexes_with_code(all, Code::Unschedulable);
        let mut node_statuses =
            NodeToStatus { statuses: Vec::new(), absent: Some(Status::unresolvable(MSG_NOT_HELPFUL)), details: Vec::new() };
        let no_candidates = |ns: &NodeToStatus| {
            let msg = fit_error_message(all, ns, "", "");
            (
                Some(PostFilterResult { nominated_node: Some(String::new()), victims: vec![] }),
                Status::unschedulable(format!("preemption: {msg}")),
            )
        };
        if potential.is_empty() {
            return no_candidates(&node_statuses);
        }
        let mut rng = Pcg64Mcg::seed_from_u64(ctx.seed);
        let offset = rng.random_range(0..potential.len());
        let want = self.num_candidates(potential.len());
        let (mut non_violating, mut violating): (Vec<Candidate>, Vec<Candidate>) = (Vec::new(), Vec::new());
        // Dry runs are independent per node: evaluate a batch in parallel,
        // then consume results in order, so the outcome does not depend on
        // thread timing.
        let noms = NominatedForPod::new(pod, ctx.nominated, snap);
        // A poisoned lock only means a panic elsewhere left the memo half
        // written: start it afresh.
        let mut memo = self.memo.lock().unwrap_or_else(|e| {
            let mut m = e.into_inner();
            *m = DryRunMemo::default();
            m
        });
        if memo.pdbs[..] != ctx.pdbs[..] {
            memo.results.clear();
            memo.pdbs = ctx.pdbs.to_vec();
        }
        let memoize = ctx.memoize && memo.results.begin(ctx.framework, state, pod, snap.num_nodes());
        // A node's result, and the version to keep it under if it was computed.
        let dry_run = |results: &NodeMemo<VictimsOrStatus>, i: usize| -> (usize, VictimsOrStatus, Option<NodeVersion>) {
            let idx = potential[(offset + i) % potential.len()];
            let node = &snap.nodes()[idx];
            let relevant = noms.for_node(idx);
            if memoize {
                if let Some(r) = results.get(idx, node, &relevant) {
                    return (idx, r.clone(), None);
                }
            }
            let r = self.select_victims_on_node(ctx.framework, state, pod, node, ctx.pdbs, &relevant).map(|(v, n)| (Arc::from(v), n));
            (idx, r, memoize.then(|| NodeVersion::of(node, &relevant)))
        };
        let batch = want.max(16);
        let mut results: Vec<(usize, VictimsOrStatus, Option<NodeVersion>)> = Vec::new();
        let mut next = 0;
        let mut done = false;
        while !done && next < potential.len() {
            let end = (next + batch).min(potential.len());
            results.clear();
            let m = &memo.results;
            if end - next >= 64 {
                results.par_extend((next..end).into_par_iter().with_min_len(8).map(|i| dry_run(m, i)));
            } else {
                results.extend((next..end).map(|i| dry_run(m, i)));
            }
            next = end;
            for (idx, r, version) in results.drain(..) {
                if let Some(v) = version {
                    memo.results.put(idx, v, r.clone());
                }
                if done {
                    continue;
                }
                match r {
                    Ok((victims, n)) if !victims.is_empty() => {
                        let c = Candidate { node_index: idx, victims, num_pdb_violations: n };
                        if n == 0 {
                            non_violating.push(c);
                        } else {
                            violating.push(c);
                        }
                        if !non_violating.is_empty() && non_violating.len() + violating.len() >= want {
                            done = true;
                        }
                    }
                    Ok(_) => node_statuses
                        .statuses
                        .push((idx, Status::error(format!("expected at least one victim pod on node {:?}", snap.nodes()[idx].name())))),
                    Err(s) => node_statuses.statuses.push((idx, s)),
                }
            }
        }
        drop(memo);
        let mut candidates = non_violating;
        candidates.append(&mut violating);
        if candidates.is_empty() {
            node_statuses.statuses.sort_by_key(|(i, _)| *i);
            return no_candidates(&node_statuses);
        }
        let candidates = match call_extenders(ctx, p, candidates) {
            Ok(c) => c,
            Err(e) => return (None, Status::error(format!("preemption: {e}"))),
        };
        let Some(best) = pick_one(&candidates) else {
            return (None, Status::unschedulable("preemption: no candidate node for preemption"));
        };
        let c = &candidates[best];
        let node = snap.nodes()[c.node_index].name().to_string();
        // Since 1.37 the FailedScheduling message ends with what preemption found.
        let found = format!("preemption: found a potential placement for pod on node {node}, preempting {} victims", c.victims.len());
        (Some(PostFilterResult { nominated_node: Some(node), victims: c.victims.to_vec() }), Status::new(Code::Success, found))
    }
}

#[cfg(test)]
mod tests;
