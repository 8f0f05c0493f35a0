//! The plugin interface: one trait, one method per extension point.
//!
//! Upstream uses one Go interface per extension point; in Rust a single trait
//! with default methods keeps plugins small (implement what you use) and lets
//! the registry hold plain `Arc<dyn Plugin>`. `extension_points()` says which
//! methods are real, which is what `multiPoint` configuration expands over.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::cycle_state::CycleState;
use super::events::ClusterEventWithHint;
use super::status::{Code, Status};
use super::types::PodInfo;
use crate::cache::{NodeInfo, Snapshot};
use crate::model::{Pod, PodDisruptionBudget};

pub const MAX_NODE_SCORE: i64 = 100;
pub const MIN_NODE_SCORE: i64 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtensionPoint {
    PreEnqueue,
    QueueSort,
    PreFilter,
    Filter,
    PostFilter,
    PreScore,
    Score,
    Reserve,
    Permit,
    PreBind,
    Bind,
    PostBind,
}

impl ExtensionPoint {
    pub const ALL: [ExtensionPoint; 12] = [
        ExtensionPoint::PreEnqueue,
        ExtensionPoint::QueueSort,
        ExtensionPoint::PreFilter,
        ExtensionPoint::Filter,
        ExtensionPoint::PostFilter,
        ExtensionPoint::PreScore,
        ExtensionPoint::Score,
        ExtensionPoint::Reserve,
        ExtensionPoint::Permit,
        ExtensionPoint::PreBind,
        ExtensionPoint::Bind,
        ExtensionPoint::PostBind,
    ];

    /// The field name in KubeSchedulerConfiguration's `plugins`.
    pub fn config_name(&self) -> &'static str {
        match self {
            ExtensionPoint::PreEnqueue => "preEnqueue",
            ExtensionPoint::QueueSort => "queueSort",
            ExtensionPoint::PreFilter => "preFilter",
            ExtensionPoint::Filter => "filter",
            ExtensionPoint::PostFilter => "postFilter",
            ExtensionPoint::PreScore => "preScore",
            ExtensionPoint::Score => "score",
            ExtensionPoint::Reserve => "reserve",
            ExtensionPoint::Permit => "permit",
            ExtensionPoint::PreBind => "preBind",
            ExtensionPoint::Bind => "bind",
            ExtensionPoint::PostBind => "postBind",
        }
    }
}

/// PreFilter may narrow the search to a set of node names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreFilterResult {
    /// `None`: all nodes.
    pub node_names: Option<BTreeSet<String>>,
}

impl PreFilterResult {
    pub fn all_nodes() -> PreFilterResult {
        PreFilterResult { node_names: None }
    }

    pub fn nodes<I: IntoIterator<Item = String>>(names: I) -> PreFilterResult {
        PreFilterResult { node_names: Some(names.into_iter().collect()) }
    }

    pub fn is_all_nodes(&self) -> bool {
        self.node_names.is_none()
    }

    /// Intersection, as upstream's `PreFilterResult.Merge`.
    pub fn merge(self, other: Option<PreFilterResult>) -> PreFilterResult {
        match (self.node_names, other.and_then(|o| o.node_names)) {
            (None, x) => PreFilterResult { node_names: x },
            (x, None) => PreFilterResult { node_names: x },
            (Some(a), Some(b)) => PreFilterResult { node_names: Some(a.intersection(&b).cloned().collect()) },
        }
    }
}

/// One node's score; `index` is the node's position in the list being scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeScore {
    pub index: usize,
    pub score: i64,
}

/// Per-node verdicts of one failed attempt.
#[derive(Clone, Debug, Default)]
pub struct NodeToStatus {
    /// Snapshot index -> status, for nodes that were evaluated and rejected.
    pub statuses: Vec<(usize, Status)>,
    /// Status of every node not listed (e.g. ruled out by a PreFilterResult).
    pub absent: Option<Status>,
}

impl NodeToStatus {
    /// One node's status (linear: for single lookups).
    pub fn get(&self, idx: usize) -> Option<&Status> {
        self.statuses.iter().find(|(i, _)| *i == idx).map(|(_, s)| s).or(self.absent.as_ref())
    }

    /// Indexes (of `num_nodes`) whose status has this code, absent nodes included.
    pub fn indexes_with_code(&self, num_nodes: usize, code: Code) -> Vec<usize> {
        let absent = self.absent.as_ref().map(|s| s.code);
        let mut codes: Vec<Option<Code>> = vec![absent; num_nodes];
        for (i, s) in &self.statuses {
            if *i < num_nodes {
                codes[*i] = Some(s.code);
            }
        }
        codes.iter().enumerate().filter(|(_, c)| **c == Some(code)).map(|(i, _)| i).collect()
    }
}

/// What the binding cycle writes to: the API server, or the simulator's cluster.
pub trait Binder: Send + Sync {
    fn bind(&self, pod: &Pod, node: &str) -> Result<(), String>;
}

/// Pods nominated to nodes (by an earlier preemption), which later cycles must
/// treat as if already there when they have equal or higher priority.
pub trait NominatedPods: Sync {
    fn nominated_for(&self, node: &str) -> &[Arc<PodInfo>];
    /// No pod is nominated anywhere (the common case): lets filtering skip lookups.
    fn is_empty(&self) -> bool {
        false
    }
    /// The nominated pods by node index of `snap`, if kept in step with it.
    fn by_index(&self, _snap: &Snapshot) -> Option<&[Vec<Nominated>]> {
        None
    }
}

/// No nominations: for tests and tools.
pub struct NoNominations;

impl NominatedPods for NoNominations {
    fn nominated_for(&self, _node: &str) -> &[Arc<PodInfo>] {
        &[]
    }
    fn is_empty(&self) -> bool {
        true
    }
}

/// A nominated pod with what the per-node checks read kept inline: the
/// pod objects themselves are scattered, and a preemptor checks every node.
#[derive(Clone)]
pub struct Nominated {
    pub priority: i32,
    pub key_hash: u64,
    pub pod: Arc<PodInfo>,
}

impl Nominated {
    pub fn new(pod: &Arc<PodInfo>) -> Nominated {
        Nominated { priority: pod.priority, key_hash: pod.key_hash, pod: pod.clone() }
    }

    /// As `PodInfo::counts_as_nominated_for`, reading the pod only when its hash matches.
    pub fn counts_for(&self, pod: &PodInfo) -> bool {
        self.priority >= pod.priority && (self.key_hash != pod.key_hash || !self.pod.same_pod(pod))
    }
}

/// The nominated pods one pod must respect, by snapshot node index: those of
/// equal or higher priority, other than the pod itself. A preemptor filters
/// every node, so the lookup goes through the nominator's by-index view when
/// it is in step with the snapshot, and by node name otherwise.
pub struct NominatedForPod<'a> {
    pod: &'a PodInfo,
    nominated: &'a dyn NominatedPods,
    snapshot: &'a Snapshot,
    view: Option<&'a [Vec<Nominated>]>,
}

/// The pods `for_node` returns: rarely more than a few.
pub type NominatedList<'a> = smallvec::SmallVec<[&'a Arc<PodInfo>; 4]>;

impl<'a> NominatedForPod<'a> {
    pub fn new(pod: &'a PodInfo, nominated: &'a dyn NominatedPods, snapshot: &'a Snapshot) -> NominatedForPod<'a> {
        let view = if nominated.is_empty() { None } else { nominated.by_index(snapshot) };
        NominatedForPod { pod, nominated, snapshot, view }
    }

    /// The relevant pods nominated to the node at `index` of the snapshot.
    pub fn for_node(&self, index: usize) -> NominatedList<'a> {
        if let Some(view) = self.view {
            return view.get(index).map(|v| v.iter().filter(|n| n.counts_for(self.pod)).map(|n| &n.pod).collect()).unwrap_or_default();
        }
        if self.nominated.is_empty() {
            return NominatedList::new();
        }
        let Some(node) = self.snapshot.nodes().get(index) else { return NominatedList::new() };
        self.nominated.nominated_for(node.name()).iter().filter(|n| n.counts_as_nominated_for(self.pod)).collect()
    }
}

/// What a PostFilter plugin (preemption) may look at.
pub struct PostFilterContext<'a> {
    pub framework: &'a super::runtime::Framework,
    pub snapshot: &'a Snapshot,
    pub pdbs: &'a [PodDisruptionBudget],
    pub nominated: &'a dyn NominatedPods,
    /// Seed for sampling candidates; reproducible in the simulator.
    pub seed: u64,
    /// Whether the plugin may reuse per-node results of earlier cycles
    /// (`NodeMemo`).
    pub memoize: bool,
}

#[derive(Clone, Debug, Default)]
pub struct PostFilterResult {
    pub nominated_node: Option<String>,
    /// Pods to evict so the preemptor fits on `nominated_node`.
    pub victims: Vec<Arc<PodInfo>>,
}

#[allow(unused_variables)]
pub trait Plugin: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// The extension points this plugin implements.
    fn extension_points(&self) -> &'static [ExtensionPoint];

    /// Cluster events that may make a pod this plugin rejected schedulable.
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        Vec::new()
    }

    fn pre_enqueue(&self, pod: &Pod) -> Status {
        Status::success()
    }

    /// QueueSort: whether `a` should be scheduled before `b`.
    fn less(&self, a: &super::QueuedPodInfo, b: &super::QueuedPodInfo) -> bool {
        false
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        (None, Status::success())
    }

    /// Whether `add_pod`/`remove_pod` keep PreFilter state current (preemption).
    fn has_pre_filter_extensions(&self) -> bool {
        false
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, to_add: &Arc<PodInfo>, node: &NodeInfo) -> Status {
        Status::success()
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, to_remove: &Arc<PodInfo>, node: &NodeInfo) -> Status {
        Status::success()
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        Status::success()
    }

    /// Whether this plugin's Filter verdict (and its PreFilter's) depends on
    /// nothing but the node and the pod fields `Pod::same_filter_inputs`
    /// compares: no other node, no other pod, no clock. A node's verdict can
    /// then be kept for the next pod that is the same in those fields while
    /// the node is unchanged. The default, false, is always safe.
    fn filter_is_node_local(&self) -> bool {
        false
    }

    fn post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, Status) {
        (None, Status::code_only(super::status::Code::Unschedulable))
    }

    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[Arc<NodeInfo>], snapshot: &Snapshot) -> Status {
        Status::success()
    }

    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        (0, Status::success())
    }

    fn has_normalize_score(&self) -> bool {
        false
    }

    fn normalize_score(&self, state: &CycleState, pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        Status::success()
    }

    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        Status::success()
    }

    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) {}

    /// Success, Wait (with the longest it may wait), or a rejection. `waiting`
    /// holds pods other cycles left at Permit: a plugin may allow or reject them
    /// (e.g. a gang plugin allows the whole group when its last member arrives).
    fn permit(&self, state: &mut CycleState, pod: &PodInfo, node: &str, waiting: &mut super::waiting::WaitingPods) -> (Status, Duration) {
        (Status::success(), Duration::ZERO)
    }

    fn pre_bind(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        Status::success()
    }

    /// Skip lets the next bind plugin handle the pod.
    fn bind(&self, state: &mut CycleState, pod: &PodInfo, node: &str, binder: &dyn Binder) -> Status {
        Status::skip()
    }

    fn post_bind(&self, state: &CycleState, pod: &PodInfo, node: &str) {}
}
