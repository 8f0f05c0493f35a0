//! One scheduling cycle, as upstream's `schedule_one.go`: PreFilter → Filter
//! (in parallel, stopping at the adaptive number of feasible nodes, from a
//! rotating start index) → Score → select (seeded random among ties); on
//! failure, PostFilter (preemption) and the FailedScheduling message.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;

use crate::cache::{NodeInfo, Snapshot};
use crate::framework::runtime::PARALLEL_THRESHOLD;
use crate::framework::*;
use crate::model::PodDisruptionBudget;

/// Never look at fewer nodes than this (unless there are fewer).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this.
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;

/// How far ahead of the filter loop nodes are prefetched.
const PREFETCH_AHEAD: usize = 6;

/// The nodes a cycle may filter, as snapshot indexes: all of them (no
/// list built, the common case), or those PreFilter named.
#[derive(Clone, Copy)]
enum Candidates<'a> {
    All(usize),
    Some(&'a [usize]),
}

impl Candidates<'_> {
    fn len(self) -> usize {
        match self {
            Candidates::All(n) => n,
            Candidates::Some(c) => c.len(),
        }
    }

    /// The snapshot index of the `i`-th candidate.
    #[inline]
    fn at(self, i: usize) -> usize {
        match self {
            Candidates::All(_) => i,
            Candidates::Some(c) => c[i],
        }
    }
}

/// One node's Filter verdict in a cycle: kept from an earlier pod of the
/// same spec (borrowed, not copied: most nodes of a replica run), computed
/// now on the node as it is, or computed with nominated pods added to it
/// (boxed, with the version it holds for and the copy of the node if one was
/// built now: rare, and it keeps the common cases small).
enum Checked<'a> {
    Kept(&'a Status),
    Fresh(Status),
    Nominated(Box<(Status, NodeVersion, Option<Arc<NodeInfo>>)>),
}

pub const NO_NODE_AVAILABLE_MSG: &str = "0/{} nodes are available";
pub const ERR_NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// How many feasible nodes to find before scoring (upstream `numFeasibleNodesToFind`).
pub fn num_feasible_nodes_to_find(percentage: i32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut pct = percentage as i64;
    if pct <= 0 {
        pct = 50 - num_all_nodes as i64 / 125;
        if pct < MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND {
            pct = MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND;
        }
    }
    let pct = pct.min(100);
    let n = (num_all_nodes as i64 * pct / 100) as usize;
    n.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Why a pod did not fit: per-node statuses and the plugins involved.
#[derive(Clone, Debug, Default)]
pub struct Diagnosis {
    pub node_to_status: NodeToStatus,
    pub unschedulable_plugins: std::collections::BTreeSet<&'static str>,
    pub pending_plugins: std::collections::BTreeSet<&'static str>,
    pub pre_filter_msg: String,
    pub post_filter_msg: String,
}

impl Diagnosis {
    fn add_plugin_status(&mut self, s: &Status) {
        if s.plugin.is_empty() {
            return;
        }
        if s.code == Code::Pending {
            self.pending_plugins.insert(s.plugin);
        } else if s.is_rejected() {
            self.unschedulable_plugins.insert(s.plugin);
        }
    }
}

/// The pod fits no node.
#[derive(Clone, Debug, Default)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub diagnosis: Diagnosis,
}

impl FitError {
    /// The FailedScheduling message, in upstream's exact format.
    pub fn message(&self) -> String {
        fit_error_message(
            self.num_all_nodes,
            &self.diagnosis.node_to_status,
            &self.diagnosis.pre_filter_msg,
            &self.diagnosis.post_filter_msg,
        )
    }
}

/// `0/N nodes are available: <reason histogram>.[ <postfilter msg>.]`
pub fn fit_error_message(num_all_nodes: usize, statuses: &NodeToStatus, pre_filter_msg: &str, post_filter_msg: &str) -> String {
    let mut msg = format!("0/{num_all_nodes} nodes are available:");
    if !pre_filter_msg.is_empty() {
        msg.push_str(&format!(" {pre_filter_msg}."));
    } else {
        let mut hist: BTreeMap<&str, usize> = BTreeMap::new();
        // Runs of one reason (most nodes are rejected by the same few, as
        // the same borrowed text) are counted before the map is touched: a
        // preemptor at 100 000 nodes has a status for every node.
        let mut run: Option<(&str, usize)> = None;
        for r in statuses.statuses.iter().flat_map(|(_, s)| s.reasons.iter()) {
            let r = r.as_ref();
            match &mut run {
                Some((last, n)) if std::ptr::eq(*last, r) => *n += 1,
                _ => {
                    if let Some((last, n)) = run.replace((r, 1)) {
                        *hist.entry(last).or_default() += n;
                    }
                }
            }
        }
        if let Some((last, n)) = run {
            *hist.entry(last).or_default() += n;
        }
        let explicit = statuses.statuses.len();
        if explicit < num_all_nodes {
            if let Some(abs) = &statuses.absent {
                for r in &abs.reasons {
                    *hist.entry(r.as_ref()).or_default() += num_all_nodes - explicit;
                }
            }
        }
        let mut parts: Vec<String> = hist.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        if !parts.is_empty() {
            msg.push_str(&format!(" {}.", parts.join(", ")));
        }
    }
    // Since 1.30 the PostFilter part carries its own punctuation.
    if !post_filter_msg.is_empty() {
        msg.push(' ');
        msg.push_str(post_filter_msg);
    }
    msg
}

#[derive(Debug)]
pub enum ScheduleError {
    /// No node passed the filters.
    Fit(Box<FitError>),
    /// The snapshot has no nodes.
    NoNodes,
    /// A plugin failed (not a verdict on nodes): retried with backoff.
    Internal(Status),
}

impl ScheduleError {
    pub fn message(&self) -> String {
        match self {
            ScheduleError::Fit(f) => f.message(),
            ScheduleError::NoNodes => ERR_NO_NODES_AVAILABLE.to_string(),
            ScheduleError::Internal(s) => s.message(),
        }
    }
}

/// A successful cycle's choice, with what `--explain` shows.
#[derive(Debug, Clone, Default)]
pub struct ScheduleResult {
    pub node: String,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
    /// Snapshot indexes of the feasible nodes that were scored.
    pub feasible: Vec<usize>,
    /// Rejected nodes among those evaluated.
    pub rejected: NodeToStatus,
    pub scores: Option<ScoreMatrix>,
}

/// The name kube-scheduler gives extenders among the plugins that rejected
/// a pod (`framework.ExtenderName`).
pub const EXTENDER: &str = "Extender";

/// Upstream `findNodesThatPassExtenders`: each interested extender in turn
/// narrows the feasible nodes, its failures becoming the nodes' statuses. A
/// failing extender fails the attempt unless it is ignorable (then skipped).
fn find_nodes_that_pass_extenders(
    fwk: &Framework,
    pod: &Arc<PodInfo>,
    snapshot: &Snapshot,
    mut feasible: Vec<usize>,
    diagnosis: &mut Diagnosis,
) -> Result<Vec<usize>, ScheduleError> {
    for e in &fwk.extenders {
        if feasible.is_empty() {
            break;
        }
        if !e.is_filter() || !e.is_interested(&pod.pod) {
            continue;
        }
        let nodes = snapshot.nodes_at(&feasible);
        let answer = e.filter(&pod.pod, &nodes).and_then(|r| {
            // Only nodes it was sent may pass (upstream trusts Node objects
            // that come back, and scores them as empty nodes: not Berth).
            let sent: HashSet<usize> = feasible.iter().copied().collect();
            let mut seen = HashSet::with_capacity(r.nodes.len());
            let mut passed = Vec::with_capacity(r.nodes.len());
            for name in &r.nodes {
                let Some(i) = snapshot.index_of(name).filter(|i| sent.contains(i)) else {
                    return Err(crate::framework::ExtenderError::UnknownNode { extender: e.name().to_string(), node: name.clone() });
                };
                if seen.insert(i) {
                    passed.push(i);
                }
            }
            Ok((passed, r))
        });
        let (passed, r) = match answer {
            Ok(a) => a,
            Err(err) if e.is_ignorable() => {
                fwk.handle.observer().extender_skipped(e.name(), "filter", &err);
                continue;
            }
            Err(err) => return Err(ScheduleError::Internal(Status::error(err.to_string()))),
        };
        // Where each node's status is, to replace it (upstream's Set).
        let st = &mut diagnosis.node_to_status.statuses;
        let mut at: HashMap<usize, usize> = st.iter().enumerate().map(|(k, (i, _))| (*i, k)).collect();
        let mut set = |node: &str, status: Status| {
            if let Some(i) = snapshot.index_of(node) {
                match at.get(&i) {
                    Some(&k) => st[k].1 = status,
                    None => {
                        at.insert(i, st.len());
                        st.push((i, status));
                    }
                }
            }
        };
        for (node, msg) in &r.failed_and_unresolvable {
            set(node, Status::unresolvable(msg.clone()));
        }
        for (node, msg) in &r.failed {
            if !r.failed_and_unresolvable.contains_key(node) {
                set(node, Status::unschedulable(msg.clone()));
            }
        }
        feasible = passed;
    }
    Ok(feasible)
}

/// Upstream's extender half of `prioritizeNodes`: each interested
/// prioritizer's scores, times its weight, times 10 (MaxNodeScore over
/// MaxExtenderPriority), unclamped, added to the nodes' totals. A failing
/// prioritizer gives no scores and fails nothing.
fn add_extender_scores(fwk: &Framework, pod: &Arc<PodInfo>, nodes: &[&NodeInfo], matrix: &mut ScoreMatrix) {
    const SCALE: i64 = crate::framework::MAX_NODE_SCORE / MAX_EXTENDER_PRIORITY;
    let interested: Vec<&Arc<dyn crate::framework::Extender>> =
        fwk.extenders.iter().filter(|e| e.is_prioritizer() && e.is_interested(&pod.pod)).collect();
    if interested.is_empty() {
        return;
    }
    // Upstream calls them at once; so does Berth, each on its own thread.
    let answers: Vec<_> = interested.par_iter().map(|e| e.prioritize(&pod.pod, nodes)).collect();
    let position: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name(), i)).collect();
    for (e, answer) in interested.into_iter().zip(answers) {
        let scores = match answer {
            Ok(s) => s,
            Err(err) => {
                fwk.handle.observer().extender_skipped(e.name(), "prioritize", &err);
                continue;
            }
        };
        let mut row = vec![0i64; nodes.len()];
        for (host, score) in scores {
            let Some(&i) = position.get(host.as_str()) else { continue };
            let scaled = score.saturating_mul(e.weight()).saturating_mul(SCALE);
            row[i] = row[i].saturating_add(scaled);
        }
        for (total, s) in matrix.totals.iter_mut().zip(&row) {
            *total = total.saturating_add(*s);
        }
        matrix.extenders.push((e.name().to_string(), row));
    }
}

/// Upstream's `extenderv1.MaxExtenderPriority`.
const MAX_EXTENDER_PRIORITY: i64 = 10;

/// State that persists across cycles: the start index rotation and the RNG.
pub struct CycleRunner {
    pub next_start_node_index: usize,
    pub percentage_of_nodes_to_score: i32,
    rng: Pcg64Mcg,
    /// Nodes with the nominated pods that count for a pod already added,
    /// kept across cycles. Filtering a node that carries nominated pods means
    /// filtering a copy with those pods added (upstream
    /// `RunFilterPluginsWithNominatedPods`); when many pods are nominated (a
    /// wave of preemptors) nearly every node needs that copy in every cycle,
    /// and building it touches every pod on the node. Between two cycles few
    /// nodes and few nominations change, so most copies are reused.
    with_nominated: NodeMemo<Arc<NodeInfo>>,
    /// Filter verdicts of the last pod, for the next if it has the same
    /// filter inputs (`NodeMemo::begin`).
    verdicts: NodeMemo<Status>,
    /// Raw scores of the node-local Score plugins for the last pod, for the
    /// next if it has the same filter inputs (`Framework::kept_scores`).
    scores: NodeMemo<RawScores>,
    /// Whether cycles may reuse results from earlier cycles (`NodeMemo`);
    /// off only to check that reuse changes no decision.
    pub memoize: bool,
}

impl CycleRunner {
    pub fn new(percentage_of_nodes_to_score: i32, seed: u64) -> CycleRunner {
        CycleRunner {
            next_start_node_index: 0,
            percentage_of_nodes_to_score,
            rng: Pcg64Mcg::seed_from_u64(seed),
            with_nominated: NodeMemo::default(),
            verdicts: NodeMemo::default(),
            scores: NodeMemo::default(),
            memoize: true,
        }
    }

    pub fn next_seed(&mut self) -> u64 {
        self.rng.random()
    }

    /// Finds the best node for `pod`, as upstream `schedulePod`.
    pub fn schedule_pod(
        &mut self,
        fwk: &Framework,
        state: &mut CycleState,
        pod: &Arc<PodInfo>,
        snapshot: &Snapshot,
        nominated: &dyn NominatedPods,
    ) -> Result<ScheduleResult, ScheduleError> {
        if snapshot.num_nodes() == 0 {
            return Err(ScheduleError::NoNodes);
        }
        let (feasible, diagnosis) = self.find_nodes_that_fit(fwk, state, pod, snapshot, nominated)?;
        let evaluated = feasible.len() + diagnosis.node_to_status.statuses.len();
        if feasible.is_empty() {
            return Err(ScheduleError::Fit(Box::new(FitError { num_all_nodes: snapshot.num_nodes(), diagnosis })));
        }
        if feasible.len() == 1 {
            return Ok(ScheduleResult {
                node: snapshot.nodes()[feasible[0]].name().to_string(),
                evaluated_nodes: evaluated,
                feasible_nodes: 1,
                feasible,
                rejected: diagnosis.node_to_status,
                scores: None,
            });
        }
        let matrix = self.prioritize_nodes(fwk, state, pod, &feasible, snapshot)?;
        let best = self.select_host(&matrix.totals);
        Ok(ScheduleResult {
            node: snapshot.nodes()[feasible[best]].name().to_string(),
            evaluated_nodes: evaluated,
            feasible_nodes: feasible.len(),
            feasible,
            rejected: diagnosis.node_to_status,
            scores: Some(matrix),
        })
    }

    fn find_nodes_that_fit(
        &mut self,
        fwk: &Framework,
        state: &mut CycleState,
        pod: &Arc<PodInfo>,
        snapshot: &Snapshot,
        nominated: &dyn NominatedPods,
    ) -> Result<(Vec<usize>, Diagnosis), ScheduleError> {
        let mut diagnosis = Diagnosis::default();
        let (pre_res, s, _with_nodes) = fwk.run_pre_filter(state, pod, snapshot);
        if !s.is_success() {
            if !s.is_rejected() {
                return Err(ScheduleError::Internal(s));
            }
            diagnosis.add_plugin_status(&s);
            diagnosis.pre_filter_msg = s.message();
            diagnosis.node_to_status.absent = Some(s);
            return Ok((Vec::new(), diagnosis));
        }

        // A pod nominated by an earlier preemption tries its node first.
        if let Some(nn) = &pod.pod.nominated_node_name {
            if let Some(idx) = snapshot.index_of(nn) {
                let s = fwk.run_filter_with_nominated(state, pod, &snapshot.nodes()[idx], nominated);
                if s.is_success() {
                    // The extenders have their say on it too; what they say
                    // about it counts only if the full pass below rejects it.
                    let passed = find_nodes_that_pass_extenders(fwk, pod, snapshot, vec![idx], &mut Diagnosis::default())?;
                    if !passed.is_empty() {
                        return Ok((passed, diagnosis));
                    }
                } else if !s.is_rejected() {
                    return Err(ScheduleError::Internal(s));
                }
            }
        }

        let named: Vec<usize>;
        let candidates = match pre_res.and_then(|r| r.node_names) {
            None => Candidates::All(snapshot.num_nodes()),
            Some(names) => {
                let unscheduled = _with_nodes.join(" ");
                diagnosis.node_to_status.absent = Some(Status::unresolvable(format!("node(s) didn't satisfy plugin(s) [{unscheduled}]")));
                named = names.iter().filter_map(|n| snapshot.index_of(n)).collect();
                Candidates::Some(&named)
            }
        };
        let feasible = self.find_nodes_that_pass_filters(fwk, state, pod, snapshot, candidates, nominated, &mut diagnosis)?;
        let before = feasible.len();
        let feasible = find_nodes_that_pass_extenders(fwk, pod, snapshot, feasible, &mut diagnosis)?;
        if feasible.len() != before {
            // Extenders register for no event: a pod they rejected is
            // retried on any (upstream's fake plugin name).
            diagnosis.unschedulable_plugins.insert(EXTENDER);
        }
        Ok((feasible, diagnosis))
    }

    #[allow(clippy::too_many_arguments)]
    fn find_nodes_that_pass_filters(
        &mut self,
        fwk: &Framework,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        snapshot: &Snapshot,
        candidates: Candidates<'_>,
        nominated: &dyn NominatedPods,
        diagnosis: &mut Diagnosis,
    ) -> Result<Vec<usize>, ScheduleError> {
        let n = candidates.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let pct = fwk.percentage_of_nodes_to_score.unwrap_or(self.percentage_of_nodes_to_score);
        // With nothing to score and no extender to filter, the first node
        // that fits is as good as any (upstream).
        let scoring = fwk.has_score() || fwk.extenders.iter().any(|e| e.is_prioritizer());
        let to_find = if scoring || fwk.extenders.iter().any(|e| e.is_filter()) { num_feasible_nodes_to_find(pct, n) } else { 1 };
        let start = self.next_start_node_index % n;
        let nodes = snapshot.nodes();

        if fwk.filter.is_empty() {
            let feasible: Vec<usize> = (0..to_find).map(|i| candidates.at((start + i) % n)).collect();
            self.next_start_node_index = (start + feasible.len()) % n;
            return Ok(feasible);
        }

        let noms = NominatedForPod::new(pod, nominated, snapshot);
        if nominated.is_empty() {
            self.with_nominated.clear();
        } else {
            self.with_nominated.resize(nodes.len());
        }
        let memoize = self.memoize && self.verdicts.begin(fwk, state, pod, nodes.len());
        let (cache, verdicts) = (&self.with_nominated, &self.verdicts);
        let check = |i: usize| -> (usize, Checked<'_>) {
            // Start loading a node a few steps ahead: nodes are cold in cache.
            // A node whose verdict is kept is not read at all (its generation
            // comes from the snapshot's column), so it is not loaded either.
            let ahead = candidates.at((start + i + PREFETCH_AHEAD) % n);
            if !(memoize && verdicts.likely_has(ahead, snapshot.generation(ahead))) {
                crate::cache::node_info::prefetch(&nodes[ahead]);
            }
            let idx = candidates.at((start + i) % n);
            let node = &nodes[idx];
            debug_assert_eq!(snapshot.generation(idx), node.generation, "the snapshot's generation column is stale at {idx}");
            let relevant = &noms.for_node(idx)[..];
            if memoize {
                if let Some(s) = verdicts.get_at(idx, snapshot.generation(idx), relevant) {
                    return (idx, Checked::Kept(s));
                }
            }
            if relevant.is_empty() {
                (idx, Checked::Fresh(fwk.run_filter(state, pod, node)))
            } else if let Some(with) = cache.get(idx, node, relevant) {
                let s = fwk.run_filter_two_pass(state, pod, node, with, relevant);
                (idx, Checked::Nominated(Box::new((s, NodeVersion::of(node, relevant), None))))
            } else {
                let with = Arc::new(node.with_added(relevant));
                let s = fwk.run_filter_two_pass(state, pod, node, &with, relevant);
                (idx, Checked::Nominated(Box::new((s, NodeVersion::of(node, relevant), Some(with)))))
            }
        };
        let mut built: Vec<(usize, NodeVersion, Arc<NodeInfo>)> = Vec::new();
        let mut computed: Vec<(usize, NodeVersion, Status)> = Vec::new();

        let mut feasible = Vec::with_capacity(to_find.min(n));
        let mut processed = 0usize;
        // Evaluate in chunks (in parallel within a chunk) and stop at the first
        // chunk that completes the quota: results stay in index order, so a
        // seeded run is reproducible regardless of thread timing. The next
        // chunk is sized from the share of feasible nodes seen so far, and
        // doubles while there are none: a pod that fits nowhere (a preemptor
        // scanning every node) is then checked in parallel.
        let mut chunk = to_find.max(64);
        let mut pos = 0;
        let prepare = fwk.has_prepare_filter();
        let mut last_rejection: Option<(&'static str, Code)> = None;
        // One buffer for every chunk's results.
        let mut results: Vec<(usize, Checked)> = Vec::new();
        'outer: while pos < n {
            let end = (pos + chunk).min(n);
            if prepare {
                let chunk_nodes: Vec<&Arc<NodeInfo>> = (pos..end).map(|i| &nodes[candidates.at((start + i) % n)]).collect();
                fwk.run_prepare_filter(state, pod, &chunk_nodes);
            }
            results.clear();
            if end - pos >= PARALLEL_THRESHOLD {
                results.par_extend((pos..end).into_par_iter().with_min_len(crate::framework::runtime::MIN_PARALLEL_BATCH).map(check));
            } else {
                results.extend((pos..end).map(check));
            }
            for (offset, (idx, checked)) in results.drain(..).enumerate() {
                let keep = |s: &Status| memoize && (s.is_success() || s.is_rejected());
                let s = match checked {
                    Checked::Kept(s) => Cow::Borrowed(s),
                    Checked::Fresh(s) => {
                        if keep(&s) {
                            computed.push((idx, NodeVersion::of(&nodes[idx], &[]), s.clone()));
                        }
                        Cow::Owned(s)
                    }
                    Checked::Nominated(b) => {
                        let (s, version, with) = *b;
                        if keep(&s) {
                            computed.push((idx, version.clone(), s.clone()));
                        }
                        if let Some(with) = with {
                            built.push((idx, version, with));
                        }
                        Cow::Owned(s)
                    }
                };
                if s.is_success() {
                    feasible.push(idx);
                    if feasible.len() >= to_find {
                        processed = pos + offset + 1;
                        break 'outer;
                    }
                } else if s.is_rejected() {
                    let s = s.into_owned();
                    // Most rejections repeat the last one's plugin and code:
                    // the plugin sets need no lookup for those.
                    if last_rejection != Some((s.plugin, s.code)) {
                        diagnosis.add_plugin_status(&s);
                        last_rejection = Some((s.plugin, s.code));
                    }
                    diagnosis.node_to_status.statuses.push((idx, s));
                } else {
                    return Err(ScheduleError::Internal(s.into_owned()));
                }
            }
            pos = end;
            processed = end;
            chunk = match feasible.len() {
                0 => {
                    // Likely a pod that fits nowhere (a preemptor): room for
                    // a status per node at once, rather than doubling up to it.
                    diagnosis.node_to_status.statuses.reserve(n - pos);
                    chunk * 2
                }
                found => ((to_find - found) * pos / found * 5 / 4).max(64),
            };
        }
        // What the rejecting plugins say beyond their reasons, for a sample.
        let explainers: smallvec::SmallVec<[&Arc<dyn Plugin>; 2]> = fwk.filter.iter().filter(|p| p.has_rejection_detail()).collect();
        if !explainers.is_empty() {
            let st = &mut diagnosis.node_to_status;
            for (idx, s) in st.statuses.iter().take(DETAILED_REJECTIONS) {
                let Some(p) = explainers.iter().find(|p| p.name() == s.plugin) else { continue };
                if let Some(d) = p.rejection_detail(state, pod, &nodes[*idx], s) {
                    st.details.push((*idx, Arc::new(d)));
                }
            }
        }
        drop(results);
        for (idx, v, with) in built {
            self.with_nominated.put(idx, v, with);
        }
        for (idx, v, s) in computed {
            self.verdicts.put(idx, v, s);
        }
        self.next_start_node_index = (start + processed) % n;
        Ok(feasible)
    }

    fn prioritize_nodes(
        &mut self,
        fwk: &Framework,
        state: &mut CycleState,
        pod: &Arc<PodInfo>,
        indexes: &[usize],
        snapshot: &Snapshot,
    ) -> Result<ScoreMatrix, ScheduleError> {
        let nodes = snapshot.nodes_at(indexes);
        if !fwk.has_score() && fwk.extenders.is_empty() {
            return Ok(ScoreMatrix { totals: vec![0; nodes.len()], ..Default::default() });
        }
        let s = fwk.run_pre_score(state, pod, &nodes, snapshot);
        if !s.is_success() {
            return Err(ScheduleError::Internal(s));
        }
        let keep = self.memoize && self.scores.begin_run(fwk, pod, fwk.kept_scores(state), snapshot.num_nodes());
        let kept = keep.then_some((indexes, snapshot, &mut self.scores));
        let mut matrix = fwk.run_score_keeping(state, pod, &nodes, kept).map_err(ScheduleError::Internal)?;
        add_extender_scores(fwk, pod, &nodes, &mut matrix);
        Ok(matrix)
    }

    /// Highest total wins; ties are broken uniformly at random (reservoir sampling).
    fn select_host(&mut self, totals: &[i64]) -> usize {
        let mut best = 0;
        let mut ties = 0u64;
        let max = totals.iter().copied().max().unwrap_or(0);
        for (i, &t) in totals.iter().enumerate() {
            if t == max {
                ties += 1;
                if ties == 1 || self.rng.random_range(0..ties) == 0 {
                    best = i;
                }
            }
        }
        best
    }

    /// Runs PostFilter plugins (preemption) after a FitError; fills the
    /// diagnosis' post-filter message. Returns the nomination/victims, if any.
    #[allow(clippy::too_many_arguments)]
    pub fn run_post_filter(
        &mut self,
        fwk: &Framework,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        snapshot: &Snapshot,
        pdbs: &[PodDisruptionBudget],
        nominated: &dyn NominatedPods,
        fit: &mut FitError,
    ) -> Option<PostFilterResult> {
        if fwk.post_filter.is_empty() {
            return None;
        }
        let ctx = PostFilterContext { framework: fwk, snapshot, pdbs, nominated, seed: self.next_seed(), memoize: self.memoize };
        let (result, msg) = fwk.run_post_filter(&ctx, state, pod, &fit.diagnosis.node_to_status);
        fit.diagnosis.post_filter_msg = msg;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feasible_nodes_to_find() {
        let table = [
            (0, 10, 10),
            (0, 99, 99),
            (0, 100, 100),
            (0, 1000, 420),
            (0, 5000, 500),
            (0, 6000, 300),
            (0, 100_000, 5000),
            (50, 1000, 500),
            (1, 1000, 100),
            (100, 5000, 5000),
        ];
        for (pct, nodes, want) in table {
            assert_eq!(num_feasible_nodes_to_find(pct, nodes), want, "pct={pct} nodes={nodes}");
        }
    }

    #[test]
    fn message_format() {
        let statuses = NodeToStatus {
            statuses: vec![
                (0, Status::unschedulable("Insufficient cpu")),
                (1, Status::unresolvable("node(s) had untolerated taint(s)")),
                (2, Status::unresolvable("node(s) had untolerated taint(s)")),
            ],
            absent: None,
            details: Vec::new(),
        };
        assert_eq!(
            fit_error_message(3, &statuses, "", "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint(s). preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        assert_eq!(
            fit_error_message(2, &NodeToStatus::default(), "waiting for scheduling gates: [a]", ""),
            "0/2 nodes are available: waiting for scheduling gates: [a]."
        );
        let multi = NodeToStatus {
            statuses: vec![(0, Status::with_reasons(Code::Unschedulable, vec!["Insufficient cpu".into(), "Insufficient memory".into()]))],
            absent: Some(Status::unresolvable("node(s) didn't satisfy plugin(s) [NodeAffinity]")),
            details: Vec::new(),
        };
        assert_eq!(
            fit_error_message(3, &multi, "", ""),
            "0/3 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]."
        );
        // Runs of one borrowed text are counted together with the same text
        // from elsewhere (owned, or another copy), wherever they interleave.
        let owned = || Status::unschedulable(String::from("Insufficient cpu"));
        let runs = NodeToStatus {
            statuses: vec![
                (0, Status::unschedulable("Insufficient cpu")),
                (1, Status::unschedulable("Insufficient cpu")),
                (2, owned()),
                (3, Status::unschedulable("Too many pods")),
                (4, Status::unschedulable("Insufficient cpu")),
                (5, owned()),
                (6, owned()),
            ],
            absent: None,
            details: Vec::new(),
        };
        assert_eq!(fit_error_message(7, &runs, "", ""), "0/7 nodes are available: 1 Too many pods, 6 Insufficient cpu.");
    }

    /// The copies of nodes with nominated pods added are reused across
    /// cycles; each change of nominations or of the node must be seen, both
    /// through the nominator's by-index view (synced, as the engine does)
    /// and through name lookups (not synced).
    #[test]
    fn nominated_pods_count_after_every_change() {
        use crate::queue::Nominator;
        use crate::testing::{make_node, make_pod, node_info};
        let cfg = crate::config::KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).unwrap();
        let fwk = cfg.build_frameworks().unwrap().remove(0);
        let node = |name: &str| make_node(name).capacity(4000, 8 << 30, 110).obj();
        let snap =
            |pods: Vec<crate::model::Pod>| Snapshot::from_node_infos(vec![node_info(node("n0"), vec![]), node_info(node("n1"), pods)]);
        let nominated =
            |name: &str, prio: i32, cpu: i64| Arc::new(PodInfo::new(make_pod(name).priority(prio).req(cpu, 0).nominated("n1").obj()));
        // Allowed on n1 only (node affinity to its name), which is index 1.
        let pod = Arc::new(
            make_pod("b")
                .priority(10)
                .req(2000, 0)
                .required_node_affinity(crate::model::NodeSelector {
                    terms: vec![crate::model::NodeSelectorTerm {
                        match_expressions: vec![],
                        match_fields: vec![crate::model::Requirement::new("metadata.name", crate::model::SelectorOp::In, &["n1"])],
                    }],
                })
                .info(),
        );
        for synced in [false, true] {
            let mut runner = CycleRunner::new(100, 1);
            let mut fits = |snapshot: &Snapshot, noms: &mut Nominator| {
                if synced {
                    noms.sync(snapshot);
                }
                assert_eq!(noms.by_index(snapshot).is_some(), synced);
                runner.schedule_pod(&fwk, &mut CycleState::new(), &pod, snapshot, noms).is_ok()
            };
            let empty = snap(vec![]);
            let mut noms = Nominator::default();
            noms.add(nominated("a", 10, 3000), "n1");
            assert!(!fits(&empty, &mut noms), "a's 3000m leave too little");
            assert!(!fits(&empty, &mut noms), "the same answer from the reused copy");
            noms.remove("default/a");
            noms.add(nominated("c", 10, 1000), "n1");
            assert!(fits(&empty, &mut noms), "c's 1000m leave room");
            let busy = snap(vec![make_pod("d").req(2000, 0).node("n1").obj()]);
            assert!(!fits(&busy, &mut noms), "a pod bound to the node changes it");
            noms.remove("default/c");
            noms.add(nominated("e", 1, 3000), "n1");
            assert!(fits(&empty, &mut noms), "a lower-priority nomination does not count");
            noms.add(nominated("f", 10, 2500), "n1");
            assert!(!fits(&empty, &mut noms), "an added nomination counts");
            // The pod's own nomination never counts against it.
            noms.remove("default/f");
            noms.add(Arc::new(PodInfo::new(make_pod("b").priority(10).req(2000, 0).nominated("n1").obj())), "n1");
            assert!(fits(&empty, &mut noms), "its own nomination");
        }
    }

    /// Raw scores kept from one cycle for the next pod of the same spec give
    /// the scores (and so the node) a fresh cycle gives, on nodes that
    /// change between cycles, and spare the node-local plugins the nodes
    /// that did not change. 1 500 nodes: the parallel path.
    #[test]
    fn kept_scores_give_what_a_fresh_cycle_gives() {
        use crate::model::{NodeSelectorTerm, Requirement, SelectorOp, TaintEffect};
        use crate::testing::{make_node, make_pod, node_info};
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Counting(AtomicUsize);
        #[crate::plugin]
        impl Plugin for Counting {
            fn name(&self) -> &'static str {
                "Counting"
            }
            fn score_is_node_local(&self) -> bool {
                true
            }
            fn score(&self, _state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
                self.0.fetch_add(1, Ordering::Relaxed);
                ((node.requested.milli_cpu / 100).min(MAX_NODE_SCORE), Status::success())
            }
        }
        let cfg = crate::config::KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).unwrap();
        let profile = || {
            let mut fwk = cfg.build_frameworks().unwrap().remove(0);
            let counting = Arc::new(Counting(AtomicUsize::new(0)));
            fwk.score.push(WeightedPlugin { plugin: counting.clone(), weight: 3 });
            (fwk, counting)
        };
        let (kept_fwk, calls) = profile();
        let (fresh_fwk, _) = profile();
        let mut infos: Vec<NodeInfo> = (0..1500)
            .map(|i| {
                let mut n = make_node(&format!("n{i}"))
                    .capacity(2000 + 1000 * (i % 7), (4 + i % 5) << 30, 110)
                    .label("zone", &format!("z{}", i % 3));
                if i % 4 == 0 {
                    n = n.taint("spot", "yes", TaintEffect::PreferNoSchedule);
                }
                node_info(n.obj(), vec![make_pod(&format!("base{i}")).req(100 * (i % 9), 0).node(&format!("n{i}")).obj()])
            })
            .collect();
        let term = NodeSelectorTerm { match_expressions: vec![Requirement::new("zone", SelectorOp::In, &["z1"])], match_fields: vec![] };
        let mut kept = CycleRunner::new(100, 7);
        let mut fresh = CycleRunner::new(100, 7);
        fresh.memoize = false;
        let mut spared = 0;
        for round in 0..8 {
            let pod = Arc::new(make_pod(&format!("p{round}")).req(300, 1 << 28).preferred_node_affinity(5, term.clone()).info());
            let snapshot = Snapshot::from_node_infos(infos.clone());
            let before = calls.0.load(Ordering::Relaxed);
            let a = kept.schedule_pod(&kept_fwk, &mut CycleState::new(), &pod, &snapshot, &crate::queue::Nominator::default()).unwrap();
            let b = fresh.schedule_pod(&fresh_fwk, &mut CycleState::new(), &pod, &snapshot, &crate::queue::Nominator::default()).unwrap();
            let (sa, sb) = (a.scores.unwrap(), b.scores.unwrap());
            assert_eq!(sa.plugins, sb.plugins, "round {round}");
            assert!(sa.plugins.contains(&"TaintToleration") && sa.plugins.contains(&"NodeAffinity"), "{:?}", sa.plugins);
            assert_eq!(sa.per_plugin, sb.per_plugin, "round {round}");
            assert_eq!(sa.totals, sb.totals, "round {round}");
            assert_eq!(a.node, b.node, "round {round}");
            // The chosen node gets the pod; another node changes too.
            let chosen = snapshot.index_of(&a.node).unwrap();
            infos[chosen].add_pod(pod.clone());
            let other = (chosen + 500) % infos.len();
            let name = infos[other].name().to_string();
            infos[other].add_pod(Arc::new(make_pod(&format!("x{round}")).req(700, 0).node(&name).info()));
            if calls.0.load(Ordering::Relaxed) - before <= 2 {
                spared += 1;
            }
        }
        // The first three pods compute every node; from the fourth on only
        // the two nodes changed since the last pod are scored afresh.
        assert_eq!(spared, 5, "pods whose node-local scores were mostly kept");
    }
}
