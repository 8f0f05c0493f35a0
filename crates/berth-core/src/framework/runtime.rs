//! A profile's framework: the configured plugins at each extension point and
//! the logic that runs them in upstream's order.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use smallvec::SmallVec;

use super::cycle_state::CycleState;
use super::handle::Handle;
use super::memo::{NodeMemo, NodeVersion};
use super::plugin::*;
use super::status::{Code, Status};
use super::types::PodInfo;
use super::QueuedPodInfo;
use crate::cache::{NodeInfo, Snapshot};
use crate::model::Pod;

/// Below this many nodes, per-node work runs on the calling thread: rayon's
/// fork/join costs more than it saves on small lists.
/// Measured on 2 cores: a 500-node cycle runs faster on one thread than split.
pub const PARALLEL_THRESHOLD: usize = 1024;
/// Smallest batch of nodes a worker takes: finer splitting costs more in
/// synchronisation than it gains in balance.
pub const MIN_PARALLEL_BATCH: usize = 32;

/// A Score plugin with its configured weight.
#[derive(Clone)]
pub struct WeightedPlugin {
    /// The plugin.
    pub plugin: Arc<dyn Plugin>,
    /// Its weight (1..=100): its normalized score is multiplied by it.
    pub weight: i64,
}

fn mask_of(plugins: &[&Arc<dyn Plugin>], skipped: &[&'static str]) -> u64 {
    let mut mask = 0u64;
    for (i, p) in plugins.iter().enumerate().take(64) {
        if skipped.contains(&p.name()) {
            mask |= 1 << i;
        }
    }
    mask
}

/// Whether the `i`-th plugin of a list is skipped: by the mask for the
/// first 64 (the plugin's name, a virtual call, is not even asked for),
/// by name beyond.
#[inline]
fn is_skipped(i: usize, mask: u64, names: &[&'static str], plugin: &dyn Plugin) -> bool {
    if i < 64 {
        mask & (1 << i) != 0
    } else {
        names.contains(&plugin.name())
    }
}

/// One node's raw scores from the plugins [`Framework::kept_scores`] names,
/// in the order of `Framework::score`: what a cycle keeps for the next.
pub type RawScores = SmallVec<[i64; 4]>;

/// Weighted per-plugin scores for the nodes of one cycle.
#[derive(Clone, Debug, Default)]
pub struct ScoreMatrix {
    /// The Score plugins that ran (those not skipped by PreScore), in order: row `p` of
    /// `per_plugin` is `plugins[p]`.
    pub plugins: Vec<&'static str>,
    /// `per_plugin[p][n]`: plugin p's normalized score for node n, times its weight.
    pub per_plugin: Vec<Vec<i64>>,
    /// Each node's final score: the sum of its column. Indexed like the nodes handed to `run_score`.
    pub totals: Vec<i64>,
    /// Each extender that scored: its name and its scaled score for each
    /// node (included in `totals`).
    pub extenders: Vec<(String, Vec<i64>)>,
}

/// A number no other `Framework` value has had, so that what is kept for
/// one profile (`NodeMemo`) is never used with another. A clone gets a new
/// one: its plugin lists may be changed after.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameworkId(u64);

impl Default for FrameworkId {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        FrameworkId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

impl FrameworkId {
    /// The number; never 0.
    pub fn value(&self) -> u64 {
        self.0
    }
}

impl Clone for FrameworkId {
    fn clone(&self) -> Self {
        FrameworkId::default()
    }
}

/// One profile: its name, its plugins at each extension point (in the
/// configured order), and the handle its plugins were built with.
#[derive(Clone, Default)]
pub struct Framework {
    /// Tells this value apart from every other `Framework` (see [`FrameworkId`]).
    pub id: FrameworkId,
    /// The handle this profile's plugins got (events, objects, services).
    pub handle: Handle,
    /// The profile's `schedulerName`: pods with this `spec.schedulerName` are scheduled by it.
    pub profile_name: String,
    /// The QueueSort plugin. The queue is shared, so the first profile's orders every pod;
    /// `None` orders by priority, then time in the queue.
    pub queue_sort: Option<Arc<dyn Plugin>>,
    /// PreEnqueue plugins: the first that does not return Success keeps the pod out of the queue.
    pub pre_enqueue: Vec<Arc<dyn Plugin>>,
    /// PreFilter plugins, run in order; the first rejection ends the attempt.
    pub pre_filter: Vec<Arc<dyn Plugin>>,
    /// Filter plugins, run in order for each node; the first rejection decides the node.
    pub filter: Vec<Arc<dyn Plugin>>,
    /// PostFilter plugins, run in order until one does not reject the pod.
    pub post_filter: Vec<Arc<dyn Plugin>>,
    /// PreScore plugins, run in order.
    pub pre_score: Vec<Arc<dyn Plugin>>,
    /// Score plugins with their weights.
    pub score: Vec<WeightedPlugin>,
    /// Reserve plugins, run in order; Unreserve runs them in reverse.
    pub reserve: Vec<Arc<dyn Plugin>>,
    /// Permit plugins, run in order.
    pub permit: Vec<Arc<dyn Plugin>>,
    /// PreBind plugins, run in order.
    pub pre_bind: Vec<Arc<dyn Plugin>>,
    /// Bind plugins, run in order until one does not return Skip.
    pub bind: Vec<Arc<dyn Plugin>>,
    /// PostBind plugins, run in order.
    pub post_bind: Vec<Arc<dyn Plugin>>,
    /// Profile override of the scheduler-wide percentageOfNodesToScore.
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Whether a pod group that did not fit may preempt (DefaultPreemption
    /// at Kubernetes 1.37's podGroupPostFilter: workload-aware preemption).
    pub group_preemption: bool,
    /// The scheduler's extenders (shared by every profile), in the order
    /// every phase walks them: those that are not ignorable first.
    pub extenders: Vec<Arc<dyn super::Extender>>,
}

/// The message of a panic payload (`panic!` with a string, or a formatted one).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

impl Framework {
    /// A profile with no plugins. Fill the lists yourself (tests), or let
    /// [`KubeSchedulerConfiguration::build_frameworks`](crate::config::KubeSchedulerConfiguration::build_frameworks)
    /// build profiles from a configuration.
    pub fn new(profile_name: &str) -> Framework {
        Framework { profile_name: profile_name.to_string(), ..Default::default() }
    }

    /// A plugin panicked: the observer hears of it, and the attempt fails
    /// with an error that names the plugin.
    fn panicked(&self, plugin: &'static str, point: ExtensionPoint, payload: Box<dyn std::any::Any + Send>) -> Status {
        let msg = panic_message(&*payload);
        self.handle.observer().plugin_panicked(plugin, point, &msg);
        Status::error(format!("plugin {plugin:?} panicked at {}: {msg}", point.label())).with_plugin(plugin)
    }

    /// Runs one plugin call: a panic becomes an error status naming the
    /// plugin, and the call is timed when this cycle records metrics.
    #[inline]
    fn call<R>(
        &self,
        timed: bool,
        p: &dyn Plugin,
        point: ExtensionPoint,
        code: impl Fn(&R) -> Code,
        f: impl FnOnce() -> R,
    ) -> Result<R, Status> {
        let start = timed.then(Instant::now);
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => {
                if let Some(t) = start {
                    self.handle.observer().plugin_duration(p.name(), point, code(&r), t.elapsed().as_secs_f64());
                }
                Ok(r)
            }
            Err(payload) => Err(self.panicked(p.name(), point, payload)),
        }
    }

    /// Every distinct plugin instance in this profile.
    pub fn all_plugins(&self) -> Vec<Arc<dyn Plugin>> {
        let mut out: Vec<Arc<dyn Plugin>> = Vec::new();
        let lists = [
            &self.pre_enqueue,
            &self.pre_filter,
            &self.filter,
            &self.post_filter,
            &self.pre_score,
            &self.reserve,
            &self.permit,
            &self.pre_bind,
            &self.bind,
            &self.post_bind,
        ];
        let mut push = |p: &Arc<dyn Plugin>| {
            if !out.iter().any(|o| o.name() == p.name()) {
                out.push(p.clone());
            }
        };
        if let Some(q) = &self.queue_sort {
            push(q);
        }
        for l in lists {
            for p in l {
                push(p);
            }
        }
        for w in &self.score {
            push(&w.plugin);
        }
        out
    }

    /// Whether any PostFilter plugin is configured.
    pub fn has_post_filter(&self) -> bool {
        !self.post_filter.is_empty()
    }

    /// Whether any Score plugin is configured. Without one, scoring is skipped and every feasible
    /// node ties.
    pub fn has_score(&self) -> bool {
        !self.score.is_empty()
    }

    /// QueueSort. A panicking sort plugin falls back to priority, then
    /// queue time (what PrioritySort does), so the queue stays usable.
    pub fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        let fallback = || (-(a.pod_info.pod.priority as i64), a.timestamp) < (-(b.pod_info.pod.priority as i64), b.timestamp);
        match &self.queue_sort {
            Some(q) => self.call(false, &**q, ExtensionPoint::QueueSort, |_| Code::Success, || q.less(a, b)).unwrap_or_else(|_| fallback()),
            None => fallback(),
        }
    }

    /// First PreEnqueue rejection, if any.
    pub fn run_pre_enqueue(&self, pod: &Pod) -> Status {
        for p in &self.pre_enqueue {
            let s = self.call(false, &**p, ExtensionPoint::PreEnqueue, |s: &Status| s.code, || p.pre_enqueue(pod)).unwrap_or_else(|e| e);
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Runs PreFilter plugins. Returns the merged node restriction (if any),
    /// the status, and the plugins that restricted nodes.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status, Vec<&'static str>) {
        let mut result: Option<PreFilterResult> = None;
        let mut with_nodes: Vec<&'static str> = Vec::new();
        state.skip_filter.clear();
        let timed = state.record_plugin_metrics;
        for p in &self.pre_filter {
            let (r, s) = match self.call(
                timed,
                &**p,
                ExtensionPoint::PreFilter,
                |r: &(_, Status)| r.1.code,
                || p.pre_filter(state, pod, snapshot),
            ) {
                Ok(r) => r,
                Err(e) => return (None, e, with_nodes),
            };
            if s.is_skip() {
                state.skip_filter.push(p.name());
                continue;
            }
            if !s.is_success() {
                let s = s.with_plugin(p.name());
                if s.is_rejected() {
                    return (None, s, with_nodes);
                }
                let msg = format!("running PreFilter plugin {:?}: {}", p.name(), s.message());
                return (None, Status::error(msg).with_plugin(p.name()), with_nodes);
            }
            if r.as_ref().is_some_and(|r| !r.is_all_nodes()) {
                with_nodes.push(p.name());
            }
            let merged = result.take().unwrap_or_default().merge(r);
            if merged.node_names.as_ref().is_some_and(|n| n.is_empty()) {
                let msg = if with_nodes.len() == 1 {
                    format!("node(s) didn't satisfy plugin {}", with_nodes[0])
                } else {
                    format!("node(s) didn't satisfy plugin(s) [{}] simultaneously", with_nodes.join(" "))
                };
                return (Some(merged), Status::unresolvable(msg), with_nodes);
            }
            result = Some(merged);
        }
        state.skip_filter_mask = mask_of(&self.filter.iter().collect::<Vec<_>>(), &state.skip_filter);
        (result, Status::success(), with_nodes)
    }

    /// Runs Filter plugins on one node; the first failure wins. A panic in
    /// a plugin is caught once per node (not per call: this is the hottest
    /// loop) and blamed on the plugin that was running.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let current = Cell::new(0usize);
        let filtered = catch_unwind(AssertUnwindSafe(|| {
            if state.record_plugin_metrics {
                self.filter_node::<true>(state, pod, node, &current)
            } else {
                self.filter_node::<false>(state, pod, node, &current)
            }
        }));
        match filtered {
            Ok(s) => s,
            Err(payload) => self.panicked(self.filter[current.get()].name(), ExtensionPoint::Filter, payload),
        }
    }

    #[inline(always)]
    fn filter_node<const TIMED: bool>(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, current: &Cell<usize>) -> Status {
        let run = |i: usize| -> Option<Status> {
            let p = &self.filter[i];
            current.set(i);
            let s = if TIMED {
                let t = Instant::now();
                let s = p.filter(state, pod, node);
                self.handle.observer().plugin_duration(p.name(), ExtensionPoint::Filter, s.code, t.elapsed().as_secs_f64());
                s
            } else {
                p.filter(state, pod, node)
            };
            if s.is_success() {
                return None;
            }
            let s = if s.is_rejected() { s } else { Status::error(format!("running {:?} filter plugin: {}", p.name(), s.message())) };
            Some(s.with_plugin(p.name()))
        };
        if self.filter.len() <= 64 {
            // Only the plugins PreFilter did not skip: this runs for every
            // node of every cycle, and a profile's skipped plugins (the
            // volume plugins, for most pods) should cost nothing here.
            let all = if self.filter.len() == 64 { u64::MAX } else { (1u64 << self.filter.len()) - 1 };
            let mut active = all & !state.skip_filter_mask;
            while active != 0 {
                let i = active.trailing_zeros() as usize;
                active &= active - 1;
                if let Some(s) = run(i) {
                    return s;
                }
            }
        } else {
            for (i, p) in self.filter.iter().enumerate() {
                if !is_skipped(i, state.skip_filter_mask, &state.skip_filter, &**p) {
                    if let Some(s) = run(i) {
                        return s;
                    }
                }
            }
        }
        Status::success()
    }

    /// Calls `prepare_filter` of the Filter plugins that define it and
    /// were not skipped for `pod`, for a chunk of nodes about to be
    /// filtered. A panic is reported and otherwise ignored: the plugin's
    /// `filter` then answers node by node.
    pub fn run_prepare_filter(&self, state: &CycleState, pod: &PodInfo, nodes: &[&Arc<NodeInfo>]) {
        for (i, p) in self.filter.iter().enumerate() {
            if p.has_prepare_filter() && !is_skipped(i, state.skip_filter_mask, &state.skip_filter, &**p) {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| p.prepare_filter(state, pod, nodes))) {
                    let _ = self.panicked(p.name(), ExtensionPoint::Filter, payload);
                }
            }
        }
    }

    /// Whether some Filter plugin defines `prepare_filter`.
    pub fn has_prepare_filter(&self) -> bool {
        self.filter.iter().any(|p| p.has_prepare_filter())
    }

    /// Whether every Filter plugin that runs for this pod is node-local
    /// (`Plugin::filter_is_node_local`), so that a node's verdict for the
    /// pod holds for any pod with the same filter inputs.
    pub fn filters_are_node_local(&self, state: &CycleState) -> bool {
        self.filter
            .iter()
            .enumerate()
            .all(|(i, p)| p.filter_is_node_local() || is_skipped(i, state.skip_filter_mask, &state.skip_filter, &**p))
    }

    /// Whether some PreFilter plugin, not skipped for this pod, keeps state
    /// that AddPod/RemovePod update.
    pub fn tracks_pod_changes(&self, state: &CycleState) -> bool {
        self.pre_filter.iter().any(|p| p.has_pre_filter_extensions() && !state.skip_filter.contains(&p.name()))
    }

    /// Runs `add_pod` of every PreFilter plugin that defines it and was not skipped for `pod`:
    /// `state` then sees `to_add` on `node`. A failure is returned as an `Error` status.
    pub fn run_add_pod(&self, state: &mut CycleState, pod: &PodInfo, to_add: &Arc<PodInfo>, node: &NodeInfo) -> Status {
        self.run_pod_change(state, pod, to_add, node, true)
    }

    /// Runs `remove_pod` of every PreFilter plugin that defines it and was not skipped for `pod`:
    /// `state` then sees `node` without `to_remove`. A failure is returned as an `Error` status.
    pub fn run_remove_pod(&self, state: &mut CycleState, pod: &PodInfo, to_remove: &Arc<PodInfo>, node: &NodeInfo) -> Status {
        self.run_pod_change(state, pod, to_remove, node, false)
    }

    fn run_pod_change(&self, state: &mut CycleState, pod: &PodInfo, other: &Arc<PodInfo>, node: &NodeInfo, add: bool) -> Status {
        for p in &self.pre_filter {
            if !p.has_pre_filter_extensions() || state.skip_filter.contains(&p.name()) {
                continue;
            }
            let run = || if add { p.add_pod(state, pod, other, node) } else { p.remove_pod(state, pod, other, node) };
            let s = match self.call(false, &**p, ExtensionPoint::PreFilter, |s: &Status| s.code, run) {
                Ok(s) => s,
                Err(e) => return e,
            };
            if !s.is_success() {
                let what = if add { "AddPod" } else { "RemovePod" };
                return Status::error(format!("running {what} on PreFilter plugin {:?}: {}", p.name(), s.message()));
            }
        }
        Status::success()
    }

    /// Filters with nominated pods of equal or higher priority counted on the
    /// node (pass 1) and, if any were added and it passed, without them
    /// (pass 2), as upstream `RunFilterPluginsWithNominatedPods`.
    pub fn run_filter_with_nominated(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, nominated: &dyn NominatedPods) -> Status {
        if nominated.is_empty() {
            return self.run_filter(state, pod, node);
        }
        let relevant: Vec<&Arc<PodInfo>> = nominated.nominated_for(node.name()).iter().filter(|n| n.counts_as_nominated_for(pod)).collect();
        if relevant.is_empty() {
            return self.run_filter(state, pod, node);
        }
        self.run_filter_two_pass(state, pod, node, &node.with_added(&relevant), &relevant)
    }

    /// The two passes of `run_filter_with_nominated`, given the nominated
    /// pods that count for this pod on this node (see `NominatedForPod`) and
    /// the node with them already added (`with`). The state needs a copy
    /// only if a plugin will update it for the added pods.
    pub fn run_filter_two_pass(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        with: &NodeInfo,
        relevant: &[&Arc<PodInfo>],
    ) -> Status {
        let mut copy = self.tracks_pod_changes(state).then(|| state.clone());
        if let Some(st) = copy.as_mut() {
            for n in relevant {
                let s = self.run_add_pod(st, pod, n, with);
                if !s.is_success() {
                    return s;
                }
            }
        }
        let s = self.run_filter(copy.as_ref().unwrap_or(state), pod, with);
        if !s.is_success() {
            return s;
        }
        self.run_filter(state, pod, node)
    }

    /// Runs PostFilter plugins until one succeeds (upstream's order and
    /// rules): rejections' messages accumulate, joined with ", ", and the
    /// first result wins. Returns the result and the post-filter message.
    pub fn run_post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, String) {
        let mut reasons: Vec<String> = Vec::new();
        let mut result: Option<PostFilterResult> = None;
        for p in &self.post_filter {
            let timed = state.record_plugin_metrics;
            let (r, s) = match self.call(
                timed,
                &**p,
                ExtensionPoint::PostFilter,
                |r: &(_, Status)| r.1.code,
                || p.post_filter(ctx, state, pod, statuses),
            ) {
                Ok(r) => r,
                Err(e) => (None, e),
            };
            if s.is_success() || !s.is_rejected() {
                return (r, s.message());
            }
            if !s.message().is_empty() {
                reasons.push(s.message());
            }
            if result.is_none() {
                result = r;
            }
        }
        (result, reasons.join(", "))
    }

    /// Runs PreScore plugins. A plugin that returns Skip has its Score left out for this pod; any
    /// other failure stops the run and is returned as an `Error` status.
    pub fn run_pre_score(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[&NodeInfo], snapshot: &Snapshot) -> Status {
        state.skip_score.clear();
        let timed = state.record_plugin_metrics;
        for p in &self.pre_score {
            let s = match self.call(timed, &**p, ExtensionPoint::PreScore, |s: &Status| s.code, || p.pre_score(state, pod, nodes, snapshot))
            {
                Ok(s) => s,
                Err(e) => return e,
            };
            if s.is_skip() {
                state.skip_score.push(p.name());
                continue;
            }
            if !s.is_success() {
                return Status::error(format!("running PreScore plugin {:?}: {}", p.name(), s.message())).with_plugin(p.name());
            }
        }
        state.skip_score_mask = mask_of(&self.score.iter().map(|w| &w.plugin).collect::<Vec<_>>(), &state.skip_score);
        Status::success()
    }

    /// Scores `nodes` with every Score plugin, normalizes, and applies weights.
    /// Node-major: each node is visited once for all plugins (one pass over
    /// memory, one parallel dispatch), then each plugin's column is normalized.
    pub fn run_score(&self, state: &CycleState, pod: &PodInfo, nodes: &[&NodeInfo]) -> Result<ScoreMatrix, Status> {
        self.run_score_keeping(state, pod, nodes, None)
    }

    /// The Score plugins whose raw scores may be kept from one cycle to the
    /// next for the pod `state` belongs to: those PreScore did not skip that
    /// are node-local (`Plugin::score_is_node_local`), as a mask over
    /// `score`. `None` when there is none, or more than 64 Score plugins.
    /// Read it after `run_pre_score`.
    pub fn kept_scores(&self, state: &CycleState) -> Option<u64> {
        if self.score.len() > 64 {
            return None;
        }
        let mut mask = 0u64;
        for (i, w) in self.score.iter().enumerate() {
            if !is_skipped(i, state.skip_score_mask, &state.skip_score, &*w.plugin) && w.plugin.score_is_node_local() {
                mask |= 1 << i;
            }
        }
        (mask != 0).then_some(mask)
    }

    /// As [`Framework::run_score`], with the raw scores of the plugins in
    /// [`Framework::kept_scores`] read from and kept in a memo: `kept` holds
    /// the snapshot index of each of `nodes`, the snapshot (whose generation column says
    /// whether a node changed), and a memo readied for this pod
    /// with `NodeMemo::begin_run` under the key `kept_scores` gave. A node's
    /// kept row is used only while the node is unchanged; the other plugins
    /// score every node, and every plugin normalizes in every cycle, so the
    /// result is the one `run_score` gives.
    pub fn run_score_keeping(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        kept: Option<(&[usize], &Snapshot, &mut NodeMemo<RawScores>)>,
    ) -> Result<ScoreMatrix, Status> {
        let mut active: Vec<&WeightedPlugin> = Vec::with_capacity(self.score.len());
        let mut local: SmallVec<[bool; 8]> = SmallVec::new();
        for (i, w) in self.score.iter().enumerate() {
            if !is_skipped(i, state.skip_score_mask, &state.skip_score, &*w.plugin) {
                active.push(w);
                local.push(kept.is_some() && w.plugin.score_is_node_local());
            }
        }
        let np = active.len();
        let nn = nodes.len();
        let mut m = ScoreMatrix { totals: vec![0; nn], ..Default::default() };
        if np == 0 || nn == 0 {
            return Ok(m);
        }
        let timed = state.record_plugin_metrics;
        let (indexes, snapshot, memo) = match kept {
            Some((ix, snap, memo)) if ix.len() == nn && local.contains(&true) => (ix, Some(snap), Some(memo)),
            _ => (&[][..], None, None),
        };
        let mut raw = vec![0i64; nn * np];
        let parallel = nn >= PARALLEL_THRESHOLD;
        let fresh: Vec<Option<RawScores>> = {
            let reading = memo.as_deref();
            // A node's scores; with a memo, the kept plugins' raw scores if
            // they were computed here (to keep for the next pod).
            let score_node = |(n, out): (usize, &mut [i64])| -> Result<Option<RawScores>, Status> {
                let current = Cell::new(0usize);
                let node = nodes[n];
                // The generation from the snapshot's column: a node whose row
                // is kept is not read here.
                let row = reading.zip(snapshot).and_then(|(memo, snap)| memo.get_at(indexes[n], snap.generation(indexes[n]), &[]));
                let scored = catch_unwind(AssertUnwindSafe(|| {
                    if timed {
                        self.score_node::<true>(&active, &local, row, state, pod, node, out, &current)
                    } else {
                        self.score_node::<false>(&active, &local, row, state, pod, node, out, &current)
                    }
                }));
                scored.unwrap_or_else(|payload| Err(self.panicked(active[current.get()].plugin.name(), ExtensionPoint::Score, payload)))?;
                Ok((reading.is_some() && row.is_none()).then(|| out.iter().zip(&local).filter(|(_, l)| **l).map(|(v, _)| *v).collect()))
            };
            match (reading.is_some(), parallel) {
                (true, true) => {
                    raw.par_chunks_mut(np).enumerate().with_min_len(MIN_PARALLEL_BATCH).map(score_node).collect::<Result<_, _>>()?
                }
                (true, false) => raw.chunks_mut(np).enumerate().map(score_node).collect::<Result<_, _>>()?,
                (false, true) => {
                    raw.par_chunks_mut(np).enumerate().with_min_len(MIN_PARALLEL_BATCH).try_for_each(|x| score_node(x).map(drop))?;
                    Vec::new()
                }
                (false, false) => {
                    raw.chunks_mut(np).enumerate().try_for_each(|x| score_node(x).map(drop))?;
                    Vec::new()
                }
            }
        };
        if let Some(memo) = memo {
            for (n, row) in fresh.into_iter().enumerate() {
                if let Some(row) = row {
                    memo.put(indexes[n], NodeVersion::of(nodes[n], &[]), row);
                }
            }
        }
        for (j, w) in active.iter().enumerate() {
            let p = &w.plugin;
            let mut scores: Vec<NodeScore> = (0..nn).map(|n| NodeScore { index: n, score: raw[n * np + j] }).collect();
            if p.has_normalize_score() {
                let s =
                    self.call(false, &**p, ExtensionPoint::Score, |s: &Status| s.code, || p.normalize_score(state, pod, &mut scores))?;
                if !s.is_success() {
                    return Err(
                        Status::error(format!("running Normalize on Score plugin {:?}: {}", p.name(), s.message())).with_plugin(p.name())
                    );
                }
            }
            let mut col = vec![0i64; nn];
            for s in &scores {
                if s.score < MIN_NODE_SCORE || s.score > MAX_NODE_SCORE {
                    return Err(Status::error(format!(
                        "plugin {:?} returns an invalid score {}, it should in the range of [{}, {}] after normalizing",
                        p.name(),
                        s.score,
                        MIN_NODE_SCORE,
                        MAX_NODE_SCORE
                    ))
                    .with_plugin(p.name()));
                }
                let v = s.score * w.weight;
                col[s.index] = v;
                m.totals[s.index] += v;
            }
            m.plugins.push(p.name());
            m.per_plugin.push(col);
        }
        Ok(m)
    }

    /// Scores one node with every active plugin into `out`, taking the
    /// plugins marked in `local` from `kept` (in order) when a row was kept;
    /// `TIMED` says whether calls are timed (decided once per node, not per call).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn score_node<const TIMED: bool>(
        &self,
        active: &[&WeightedPlugin],
        local: &[bool],
        kept: Option<&RawScores>,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        out: &mut [i64],
        current: &Cell<usize>,
    ) -> Result<(), Status> {
        let mut kept = kept.map(|k| k.iter());
        for (j, w) in active.iter().enumerate() {
            if local[j] {
                if let Some(v) = kept.as_mut().and_then(|k| k.next()) {
                    out[j] = *v;
                    continue;
                }
            }
            current.set(j);
            let (score, s) = if TIMED {
                let t = Instant::now();
                let r = w.plugin.score(state, pod, node);
                self.handle.observer().plugin_duration(w.plugin.name(), ExtensionPoint::Score, r.1.code, t.elapsed().as_secs_f64());
                r
            } else {
                w.plugin.score(state, pod, node)
            };
            if !s.is_success() {
                return Err(
                    Status::error(format!("running Score plugin {:?}: {}", w.plugin.name(), s.message())).with_plugin(w.plugin.name())
                );
            }
            out[j] = score;
        }
        Ok(())
    }

    /// Runs Reserve plugins until one fails: a rejection is returned as it is, anything else as
    /// `Error`. On failure the caller runs [`Framework::run_unreserve`].
    pub fn run_reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        let timed = state.record_plugin_metrics;
        for p in &self.reserve {
            let s = match self.call(timed, &**p, ExtensionPoint::Reserve, |s: &Status| s.code, || p.reserve(state, pod, node)) {
                Ok(s) => s,
                Err(e) => return e,
            };
            if !s.is_success() {
                let s = if s.is_rejected() { s } else { Status::error(format!("running Reserve plugin {:?}: {}", p.name(), s.message())) };
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Unreserve runs in reverse order, as upstream. A plugin that panics
    /// here is reported to the observer and the others still run.
    pub fn run_unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) {
        for p in self.reserve.iter().rev() {
            let _ = self.call(false, &**p, ExtensionPoint::Reserve, |_| Code::Success, || p.unreserve(state, pod, node));
        }
    }

    /// Runs Permit plugins. Success, a rejection, or Wait with each waiting
    /// plugin's timeout (capped at 15 minutes, as upstream).
    pub fn run_permit(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        node: &str,
        waiting: &mut super::waiting::WaitingPods,
    ) -> (Status, Vec<(&'static str, Duration)>) {
        let mut waits = Vec::new();
        let timed = state.record_plugin_metrics;
        for p in &self.permit {
            let (s, timeout) =
                match self.call(timed, &**p, ExtensionPoint::Permit, |r: &(Status, _)| r.0.code, || p.permit(state, pod, node, waiting)) {
                    Ok(r) => r,
                    Err(e) => return (e, Vec::new()),
                };
            match s.code {
                Code::Success => {}
                Code::Wait => waits.push((p.name(), timeout.min(Duration::from_secs(15 * 60)))),
                _ if s.is_rejected() => return (s.with_plugin(p.name()), Vec::new()),
                _ => {
                    return (
                        Status::error(format!("running Permit plugin {:?}: {}", p.name(), s.message())).with_plugin(p.name()),
                        Vec::new(),
                    )
                }
            }
        }
        if waits.is_empty() {
            (Status::success(), waits)
        } else {
            let names: Vec<&str> = waits.iter().map(|(n, _)| *n).collect();
            (Status::new(Code::Wait, format!("waiting on permit from {}", names.join(", "))), waits)
        }
    }

    /// Runs PreBind plugins, skipping those that return Skip, until one fails: a rejection is
    /// returned as it is, anything else as `Error`.
    pub fn run_pre_bind(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        let timed = state.record_plugin_metrics;
        for p in &self.pre_bind {
            if !self.pre_bind_needed(&**p, state, pod, node) {
                continue;
            }
            let s = match self.call(timed, &**p, ExtensionPoint::PreBind, |s: &Status| s.code, || p.pre_bind(state, pod, node)) {
                Ok(s) => s,
                Err(e) => return e,
            };
            if s.is_skip() {
                continue;
            }
            if !s.is_success() {
                let s = if s.is_rejected() { s } else { Status::error(format!("running PreBind plugin {:?}: {}", p.name(), s.message())) };
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Whether any PreBind plugin has work for this pod (PreBindPreFlight).
    pub fn pre_bind_has_work(&self, state: &CycleState, pod: &PodInfo, node: &str) -> bool {
        self.pre_bind.iter().any(|p| self.pre_bind_needed(&**p, state, pod, node))
    }

    /// One plugin's PreBindPreFlight; a panic counts as work (PreBind then
    /// runs and reports it).
    fn pre_bind_needed(&self, p: &dyn Plugin, state: &CycleState, pod: &PodInfo, node: &str) -> bool {
        catch_unwind(AssertUnwindSafe(|| !p.pre_bind_pre_flight(state, pod, node).is_skip())).unwrap_or(true)
    }

    /// Upstream `extendersBinding`: the first binder extender interested
    /// in the pod binds it instead of the Bind plugins (`None`: none did).
    /// Its error fails the binding, unless it is ignorable: then the next
    /// one, or the Bind plugins, bind.
    pub fn run_extender_bind(&self, pod: &PodInfo, node: &str) -> Option<Status> {
        for e in self.extenders.iter().filter(|e| e.is_binder() && e.is_interested(&pod.pod)) {
            match e.bind(&pod.pod, node) {
                Ok(()) => return Some(Status::success()),
                Err(err) if e.is_ignorable() => self.handle.observer().extender_skipped(e.name(), "bind", &err),
                Err(err) => return Some(Status::error(err.to_string())),
            }
        }
        None
    }

    /// Runs Bind plugins until one does not return Skip, and returns its status (a failure other
    /// than a rejection as `Error`). Skip when there are none or all skipped: the binding cycle then
    /// fails the pod with an error.
    pub fn run_bind(&self, state: &mut CycleState, pod: &PodInfo, node: &str, binder: &dyn Binder) -> Status {
        if self.bind.is_empty() {
            return Status::skip();
        }
        let timed = state.record_plugin_metrics;
        for p in &self.bind {
            let s = match self.call(timed, &**p, ExtensionPoint::Bind, |s: &Status| s.code, || p.bind(state, pod, node, binder)) {
                Ok(s) => s,
                Err(e) => return e,
            };
            if s.is_skip() {
                continue;
            }
            if !s.is_success() {
                let s = if s.is_rejected() { s } else { Status::error(format!("running Bind plugin {:?}: {}", p.name(), s.message())) };
                return s.with_plugin(p.name());
            }
            return s;
        }
        Status::skip()
    }

    /// PostBind is informational: a panic is reported to the observer and
    /// the other plugins still run.
    pub fn run_post_bind(&self, state: &CycleState, pod: &PodInfo, node: &str) {
        let timed = state.record_plugin_metrics;
        for p in &self.post_bind {
            let _ = self.call(timed, &**p, ExtensionPoint::PostBind, |_| Code::Success, || p.post_bind(state, pod, node));
        }
    }
}
