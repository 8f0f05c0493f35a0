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

/// The highest score a Score plugin may return after `normalize_score` (upstream `MaxNodeScore`).
/// A score outside [`MIN_NODE_SCORE`]`..=MAX_NODE_SCORE` fails the pod's attempt with an error.
pub const MAX_NODE_SCORE: i64 = 100;
/// The lowest score a Score plugin may return after `normalize_score` (upstream `MinNodeScore`).
pub const MIN_NODE_SCORE: i64 = 0;

/// A place in the scheduling or binding cycle where plugins run (upstream's extension
/// points). Variants are in the order the framework runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtensionPoint {
    /// Before a pod enters the active queue: may keep it out ([`Plugin::pre_enqueue`]).
    PreEnqueue,
    /// Orders the active queue ([`Plugin::less`]).
    QueueSort,
    /// Once per attempt, before any Filter ([`Plugin::pre_filter`], and `add_pod`/`remove_pod`).
    PreFilter,
    /// For each node: whether the pod fits there ([`Plugin::filter`]).
    Filter,
    /// When no node passed Filter: preemption ([`Plugin::post_filter`]).
    PostFilter,
    /// Once per attempt, before Score, with the feasible nodes ([`Plugin::pre_score`]).
    PreScore,
    /// For each feasible node: ranks the nodes ([`Plugin::score`], [`Plugin::normalize_score`]).
    Score,
    /// The pod was assumed on the chosen node ([`Plugin::reserve`], [`Plugin::unreserve`]).
    Reserve,
    /// Last step of the scheduling cycle: allow, reject or hold the pod ([`Plugin::permit`]).
    Permit,
    /// Binding cycle, before Bind ([`Plugin::pre_bind`]).
    PreBind,
    /// Binding cycle: binds the pod to its node ([`Plugin::bind`]).
    Bind,
    /// After a successful Bind, informational ([`Plugin::post_bind`]).
    PostBind,
}

impl ExtensionPoint {
    /// Every extension point, in the order the framework runs them.
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
    /// No restriction: Filter looks at every node (the same as returning `None`).
    pub fn all_nodes() -> PreFilterResult {
        PreFilterResult { node_names: None }
    }

    /// Restricts Filter to the nodes with these names; names not in the snapshot are ignored.
    /// An empty set rejects the pod on every node (`UnschedulableAndUnresolvable`, naming the plugin).
    pub fn nodes<I: IntoIterator<Item = String>>(names: I) -> PreFilterResult {
        PreFilterResult { node_names: Some(names.into_iter().collect()) }
    }

    /// Whether every node stays in.
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
    /// Position of the node in the `nodes` slice handed to PreScore, not its snapshot index.
    pub index: usize,
    /// The plugin's raw score; after normalization it must be in `0..=100`.
    pub score: i64,
}

/// How many rejected nodes per attempt the framework asks for
/// [`Plugin::rejection_detail`] (the count of each rejection stays exact).
pub const DETAILED_REJECTIONS: usize = 32;

/// Per-node verdicts of one failed attempt.
#[derive(Clone, Debug, Default)]
pub struct NodeToStatus {
    /// Snapshot index -> status, for nodes that were evaluated and rejected.
    pub statuses: Vec<(usize, Status)>,
    /// Status of every node not listed (e.g. ruled out by a PreFilterResult).
    pub absent: Option<Status>,
    /// Snapshot index -> what the rejecting plugin says beyond its reasons
    /// ([`Plugin::rejection_detail`]), for some of the rejected nodes: for a
    /// person asking why, never part of the FailedScheduling message.
    pub details: Vec<(usize, std::sync::Arc<String>)>,
}

impl NodeToStatus {
    /// One node's status (linear: for single lookups).
    pub fn get(&self, idx: usize) -> Option<&Status> {
        self.statuses.iter().find(|(i, _)| *i == idx).map(|(_, s)| s).or(self.absent.as_ref())
    }

    /// Indexes (of `num_nodes`) whose status has this code, absent nodes included.
    pub fn indexes_with_code(&self, num_nodes: usize, code: Code) -> Vec<usize> {
        let mut has: Vec<bool> = vec![self.absent.as_ref().is_some_and(|s| s.code == code); num_nodes];
        for (i, s) in &self.statuses {
            if let Some(h) = has.get_mut(*i) {
                *h = s.code == code;
            }
        }
        has.iter().enumerate().filter(|(_, h)| **h).map(|(i, _)| i).collect()
    }
}

/// What the binding cycle writes to: the API server, or the simulator's cluster.
pub trait Binder: Send + Sync {
    /// Binds `pod` to `node` (in `berth run`, a `pods/binding` write with the pod's UID as a
    /// precondition). Called by Bind plugins, off the scheduling thread; it may block. DefaultBinder
    /// turns an `Err` message into an `Error` status: the pod is unreserved, forgotten and retried
    /// with backoff.
    fn bind(&self, pod: &Pod, node: &str) -> Result<(), String>;
}

/// Pods nominated to nodes (by an earlier preemption), which later cycles must
/// treat as if already there when they have equal or higher priority.
pub trait NominatedPods: Sync {
    /// The pods nominated to the node named `node`, of any priority (the pod being scheduled may
    /// be among them): filter with [`PodInfo::counts_as_nominated_for`]. Empty when there are none.
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
    /// `pod.priority`, copied.
    pub priority: i32,
    /// `pod.key_hash`, copied: settles most identity checks without reading the pod.
    pub key_hash: u64,
    /// The nominated pod.
    pub pod: Arc<PodInfo>,
}

impl Nominated {
    /// Copies what the per-node checks read out of `pod`.
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
    /// The nominated pods `pod` must respect on the nodes of `snapshot`.
    pub fn new(pod: &'a PodInfo, nominated: &'a dyn NominatedPods, snapshot: &'a Snapshot) -> NominatedForPod<'a> {
        let view = if nominated.is_empty() { None } else { nominated.by_index(snapshot) };
        NominatedForPod { pod, nominated, snapshot, view }
    }

    /// The relevant pods nominated to the node at `index` of the snapshot.
    #[inline]
    pub fn for_node(&self, index: usize) -> NominatedList<'a> {
        if let Some(view) = self.view {
            // A plain loop: a preemptor asks this for every node, and
            // SmallVec's `collect` (size hints, reserve) cost more than the check.
            let mut out = NominatedList::new();
            for n in view.get(index).map(|v| &v[..]).unwrap_or_default() {
                if n.counts_for(self.pod) {
                    out.push(&n.pod);
                }
            }
            return out;
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
    /// The pod's profile: preemption dry runs run its Filter plugins and PreFilter extensions.
    pub framework: &'a super::runtime::Framework,
    /// The snapshot the cycle filtered against; the indexes in [`NodeToStatus`] refer to it.
    pub snapshot: &'a Snapshot,
    /// Every PodDisruptionBudget the scheduler knows, for picking victims whose eviction
    /// violates as few as possible.
    pub pdbs: &'a [PodDisruptionBudget],
    /// Pods nominated to nodes by earlier preemptions: a dry run counts those of equal or higher
    /// priority as already on their node (see [`NominatedForPod`]).
    pub nominated: &'a dyn NominatedPods,
    /// Seed for sampling candidates; reproducible in the simulator.
    pub seed: u64,
    /// Whether the plugin may reuse per-node results of earlier cycles
    /// (`NodeMemo`).
    pub memoize: bool,
}

/// What a PostFilter plugin proposes. The framework acts on it only when `nominated_node` is
/// set: the pod is nominated there, lower-priority pods nominated to that node lose their
/// nomination, and `victims` are evicted. The pod itself still goes back to the queue.
#[derive(Clone, Debug, Default)]
pub struct PostFilterResult {
    /// The node the pod will wait for (upstream `status.nominatedNodeName`); `None` or empty:
    /// no nomination, and `victims` is ignored.
    pub nominated_node: Option<String>,
    /// Pods to evict so the preemptor fits on `nominated_node`.
    pub victims: Vec<Arc<PodInfo>>,
}

/// The extension points one plugin implements, as a set.
///
/// Generated by [`#[plugin]`](crate::plugin) from the methods a plugin
/// defines: read it with [`dyn Plugin::extension_points`](trait.Plugin.html#method.extension_points).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtensionPoints(u32);

/// `add_pod` or `remove_pod` defined (PreFilter extensions).
const PRE_FILTER_EXTENSIONS: u32 = 1 << 16;
/// `normalize_score` defined.
const NORMALIZE_SCORE: u32 = 1 << 17;
/// Bit of `pod_group` (and `pod_group_result`).
const POD_GROUP: u32 = 1 << 18;
/// `rejection_detail` defined.
const REJECTION_DETAIL: u32 = 1 << 19;
/// `prepare_filter` defined.
const PREPARE_FILTER: u32 = 1 << 20;
/// Set by `#[plugin]` (and [`ExtensionPoints::of`]): the list was generated.
const MARKED: u32 = 1 << 31;

impl ExtensionPoints {
    /// Whether the set holds `point`.
    pub fn contains(&self, point: ExtensionPoint) -> bool {
        self.0 & point.bit() != 0
    }

    /// The points in the set, in the order the framework runs them.
    pub fn iter(&self) -> impl Iterator<Item = ExtensionPoint> + '_ {
        ExtensionPoint::ALL.into_iter().filter(|p| self.contains(*p))
    }

    /// Whether the set is empty: the plugin takes part in nothing.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The set of `points`, for a plugin that implements
    /// `__extension_points` by hand because its points are known only at
    /// run time (a WebAssembly guest); `#[plugin]` does this for every
    /// other plugin. With `Score`, the plugin's `normalize_score` runs too.
    pub fn of(points: &[ExtensionPoint]) -> ExtensionPoints {
        let mut bits = points.iter().fold(MARKED, |b, p| b | p.bit());
        if bits & ExtensionPoint::Score.bit() != 0 {
            bits |= NORMALIZE_SCORE;
        }
        ExtensionPoints(bits)
    }

    /// The same set, with the plugin's `prepare_filter` called (it must
    /// take part in Filter).
    pub fn with_prepare_filter(self) -> ExtensionPoints {
        ExtensionPoints(self.0 | PREPARE_FILTER)
    }

    /// The bits `__extension_points` returns for this set.
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl ExtensionPoint {
    /// This point's bit in [`ExtensionPoints`]; `berth-macros` uses the same values.
    pub const fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// The name upstream's metrics use for this point (`extension_point` label).
    pub fn label(&self) -> &'static str {
        match self {
            ExtensionPoint::PreEnqueue => "PreEnqueue",
            ExtensionPoint::QueueSort => "QueueSort",
            ExtensionPoint::PreFilter => "PreFilter",
            ExtensionPoint::Filter => "Filter",
            ExtensionPoint::PostFilter => "PostFilter",
            ExtensionPoint::PreScore => "PreScore",
            ExtensionPoint::Score => "Score",
            ExtensionPoint::Reserve => "Reserve",
            ExtensionPoint::Permit => "Permit",
            ExtensionPoint::PreBind => "PreBind",
            ExtensionPoint::Bind => "Bind",
            ExtensionPoint::PostBind => "PostBind",
        }
    }
}

/// A scheduling plugin: one type, one method per extension point it takes
/// part in. This is upstream's `framework.Plugin` and its per-point
/// interfaces (`pkg/scheduler/framework/interface.go`) as a single trait.
///
/// Put [`#[plugin]`](crate::plugin) on the impl block: it sees which
/// methods you define and registers the plugin at exactly those points, so
/// a method you write is never silently left out, and one you do not write
/// costs nothing. Every method has a default that does nothing; define only
/// the ones you need.
///
/// ```
/// # use berth_core as berth; // in your crate, `berth` is the dependency itself
/// use berth::cache::NodeInfo;
/// use berth::framework::{CycleState, PodInfo, Plugin, Status};
///
/// struct OnlyEvenNodes;
///
/// #[berth::plugin]
/// impl Plugin for OnlyEvenNodes {
///     fn name(&self) -> &'static str {
///         "OnlyEvenNodes"
///     }
///     fn filter(&self, _state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
///         if node.name().ends_with(|c: char| c.is_ascii_digit() && (c as u8 - b'0') % 2 == 0) {
///             Status::success()
///         } else {
///             Status::unschedulable("node(s) are odd")
///         }
///     }
/// }
/// ```
///
/// # Threads and state
/// One instance serves every pod of a profile. Filter and Score run for many
/// nodes at once on worker threads, so they take `&self` and a read-only
/// [`CycleState`]; keep per-pod data in the cycle state (write it in
/// PreFilter or PreScore) and cross-pod data behind your own lock. The
/// binding cycle (PreBind, Bind, PostBind) of `berth run` runs on its own
/// thread per pod, off the scheduling thread, and may block on the network.
///
/// # Statuses
/// A [`Status`] code says what the framework does next: `Success` goes on;
/// `Unschedulable` rejects the node (or pod) but lets preemption try;
/// `UnschedulableAndUnresolvable` rejects it and preemption will not help;
/// `Error` fails the pod's attempt (it is retried with backoff); `Skip`
/// (PreFilter, PreScore, Bind) says the plugin has nothing to do for this pod;
/// `Wait` (Permit) holds the pod; `Pending` (PreEnqueue, Filter) says the pod
/// waits for something outside the scheduler. A message becomes part of the
/// pod's FailedScheduling event, so write it for the person reading `kubectl
/// describe pod`: upstream's style is `node(s) didn't match ...`.
///
/// # Panics
/// A plugin that panics fails that pod's attempt with an error naming the
/// plugin; Berth goes on scheduling. (This needs the default `panic =
/// "unwind"`; a binary built with `panic = "abort"` stops instead.)
#[allow(unused_variables)]
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name, as configurations name it (`profiles[].plugins`,
    /// `pluginConfig[].name`). It must be the name it is registered under.
    fn name(&self) -> &'static str;

    #[doc(hidden)]
    /// Generated by `#[plugin]`: which of the methods below this plugin
    /// defines. Without the attribute, 0: the configuration then refuses
    /// the plugin, saying to add it.
    fn __extension_points(&self) -> u32 {
        0
    }

    /// Cluster events that may make a pod this plugin rejected schedulable
    /// (upstream `EnqueueExtensions.EventsToRegister`). A pod this plugin
    /// rejected waits in the unschedulable queue until one of these happens
    /// (or five minutes pass), so list every change that can help, with a
    /// queueing hint to skip the ones that cannot. Empty (the default): any
    /// event requeues such a pod.
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        Vec::new()
    }

    /// **PreEnqueue**: called before a pod enters the active queue. Anything
    /// but Success keeps the pod out of scheduling (it is "gated") until an
    /// event from `events_to_register` lets it try again. Runs on the
    /// scheduling thread for every pod add and update: keep it cheap.
    fn pre_enqueue(&self, pod: &Pod) -> Status {
        Status::success()
    }

    /// **QueueSort**: whether `a` should be scheduled before `b`. Only one
    /// queue-sort plugin may be enabled, and every profile must use the same.
    fn less(&self, a: &super::QueuedPodInfo, b: &super::QueuedPodInfo) -> bool {
        false
    }

    /// **PreFilter**: called once per scheduling attempt, before any Filter.
    /// Compute what Filter needs for every node and store it in `state`.
    /// Return a [`PreFilterResult`] to restrict the nodes Filter looks at
    /// (results of several plugins intersect), `Skip` to have this plugin's
    /// Filter not run for this pod, or a rejection to make the pod
    /// unschedulable on every node.
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        (None, Status::success())
    }

    /// **PreFilter extension, AddPod**: preemption asks "what if `to_add`
    /// were on `node`?" Update the PreFilter data in `state` accordingly.
    /// Define it (with `remove_pod`) when PreFilter stores data that depends
    /// on other pods, as InterPodAffinity and PodTopologySpread do.
    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, to_add: &Arc<PodInfo>, node: &NodeInfo) -> Status {
        Status::success()
    }

    /// **PreFilter extension, RemovePod**: the counterpart of `add_pod`,
    /// for a victim preemption considers evicting from `node`.
    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, to_remove: &Arc<PodInfo>, node: &NodeInfo) -> Status {
        Status::success()
    }

    /// **Filter**: whether `pod` fits on `node`. Called for many nodes in
    /// parallel; return Success, `Unschedulable` (preemption may help),
    /// `UnschedulableAndUnresolvable` (it will not), or `Error`. The first
    /// rejecting plugin decides a node's verdict.
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        Status::success()
    }

    /// Whether this plugin's Filter verdict (and its PreFilter's) depends
    /// on nothing but the node and the pod fields `Pod::same_filter_inputs`
    /// compares: no other node, no other pod, no clock, no object of the
    /// handle. A node's verdict can then be kept for the next pod with the
    /// same filter inputs while the node is unchanged. The default, false,
    /// is always safe; say true only when all of that holds.
    fn filter_is_node_local(&self) -> bool {
        false
    }

    /// Whether this plugin's raw Score (before `normalize_score`) depends on
    /// nothing but the node and the pod fields `Pod::same_filter_inputs`
    /// compares, and whether its PreScore (skipping included) depends on
    /// those pod fields alone: no other node, no other pod, no count of
    /// nodes, no clock, no object of the handle. A node's raw score can then
    /// be kept for the next pod with the same filter inputs while the node is
    /// unchanged; normalization still runs in every cycle. The default,
    /// false, is always safe; say true only when all of that holds.
    fn score_is_node_local(&self) -> bool {
        false
    }

    /// **Filter, in bulk**: called once for each chunk of nodes the
    /// framework is about to filter for `pod` (a few hundred to a few
    /// thousand, on the scheduling thread), before `filter` runs for each
    /// of them. A plugin whose per-call cost is high (a WebAssembly guest,
    /// a remote service) computes the chunk's verdicts here, keeps them in
    /// its slot of `state` (behind a lock: `state` is shared), and answers
    /// `filter` from them. `filter` must still answer for a node that was
    /// not prepared (preemption's dry runs, a node with nominated pods).
    /// Define it only when that pays: most plugins should not.
    fn prepare_filter(&self, state: &CycleState, pod: &PodInfo, nodes: &[&Arc<NodeInfo>]) {
        let _ = (state, pod, nodes);
    }

    /// More than a Filter rejection's reasons say, for a person asking why
    /// (`--explain`, `kubectl berth why`), asked after Filter for a sample
    /// of the nodes this plugin rejected in the attempt (at most
    /// [`DETAILED_REJECTIONS`]): `state` is the attempt's, `status` what
    /// Filter returned for `node`. Upstream's FailedScheduling messages keep
    /// only the reasons, so a plugin may explain here what its reasons
    /// cannot (DynamicResources says which claim fell short and how far the
    /// node's devices got). The default has nothing to add.
    fn rejection_detail(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, status: &Status) -> Option<String> {
        let _ = (state, pod, node, status);
        None
    }

    /// **PostFilter**: called when no node passed Filter. Preemption lives
    /// here: return the node to nominate and the pods to evict. `statuses`
    /// holds each node's Filter verdict. Return `Unschedulable` when you
    /// could not help.
    fn post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, Status) {
        (None, Status::code_only(super::status::Code::Unschedulable))
    }

    /// **PreScore**: called once with the nodes that passed Filter, before
    /// Score; store what Score needs in `state`. `Skip` leaves this plugin's
    /// Score out for this pod. Neither PreScore nor Score runs when only one
    /// node passed Filter, as upstream.
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[&NodeInfo], snapshot: &Snapshot) -> Status {
        Status::success()
    }

    /// **Score**: how well `pod` fits `node`, called for every feasible node
    /// (in parallel). After `normalize_score`, each score must be in
    /// `0..=100` ([`MIN_NODE_SCORE`]..=[`MAX_NODE_SCORE`]); the framework
    /// multiplies it by the plugin's configured weight and sums over plugins.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        (0, Status::success())
    }

    /// **Score extension, NormalizeScore**: rescale the raw scores of all
    /// feasible nodes into `0..=100` (see `helper::default_normalize_score`).
    /// Define it when your raw scores are not already in that range.
    fn normalize_score(&self, state: &CycleState, pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        Status::success()
    }

    /// **Reserve**: the pod has been assumed on `node` (the cache counts it
    /// there). Update any state of your own that must see the pod as placed
    /// before the binding completes. A failure unreserves and fails the
    /// attempt.
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        Status::success()
    }

    /// **Reserve, Unreserve**: undo `reserve`, when a later step (Permit,
    /// PreBind, Bind) fails or the pod is deleted while waiting. Runs in
    /// reverse plugin order; must be idempotent and must not fail.
    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) {}

    /// **Permit**: the last step of the scheduling cycle. Success lets the
    /// binding start; a rejection unreserves and requeues the pod; `Wait`
    /// holds it (reserved on the node) for at most the returned duration
    /// (capped at 15 minutes) without blocking other pods. `waiting` holds
    /// the pods other cycles left at Permit: allow or reject them (a gang
    /// plugin allows the whole group when its last member arrives).
    fn permit(&self, state: &mut CycleState, pod: &PodInfo, node: &str, waiting: &mut super::waiting::WaitingPods) -> (Status, Duration) {
        (Status::success(), Duration::ZERO)
    }

    /// **PreBind**: runs in the binding cycle, before Bind, off the
    /// scheduling thread: the place for API writes the pod needs before it
    /// is bound (volume bindings, annotations). It may block on I/O. A
    /// failure unreserves, forgets the assumed pod and requeues it with
    /// your message. `Skip` means nothing to do.
    fn pre_bind(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        Status::success()
    }

    /// **PreBindPreFlight**: whether [`pre_bind`](Plugin::pre_bind) has
    /// anything to do for this pod on `node`, asked before the binding
    /// cycle starts. Return `Skip` when it has not (e.g. VolumeBinding for
    /// a pod whose claims are all bound): PreBind is then not called, and a
    /// binding cycle left with nothing but DefaultBinder makes its API call
    /// without holding a worker thread. Must be cheap and must not block.
    /// The default, success, always runs PreBind.
    fn pre_bind_pre_flight(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        Status::success()
    }

    /// **Bind**: bind the pod to `node`. Bind plugins run in order until
    /// one does not return `Skip`; DefaultBinder writes `pods/binding`
    /// through `binder`. A custom Bind plugin replaces it (disable
    /// DefaultBinder in the profile) and may use the handle's client.
    fn bind(&self, state: &mut CycleState, pod: &PodInfo, node: &str, binder: &dyn Binder) -> Status {
        Status::skip()
    }

    /// **PostBind**: informational, after a successful Bind (clean-up,
    /// notifications). Cannot fail.
    fn post_bind(&self, state: &CycleState, pod: &PodInfo, node: &str) {}

    /// **PodGroup**: the group `pod` belongs to, if this plugin groups pods
    /// (see [`group`](super::group)). Members of a group are scheduled in
    /// one cycle and placed all together (at least `min_count` of them) or
    /// not at all. Called whenever a pod arrives or changes, and when a
    /// member leaves the queue: read only the pod and your stores, keep it
    /// cheap. The first plugin of a profile that answers decides.
    fn pod_group(&self, pod: &Pod) -> Option<super::GroupMembership> {
        None
    }

    /// **PodGroup, result**: a scheduling cycle of one of the groups this
    /// plugin answered for has ended. Write the group's status here. Runs
    /// on the scheduling thread: a write that may block (live, a network
    /// call) belongs on another thread, e.g. the `tokio::runtime::Handle`
    /// service of [`Handle::get`](super::Handle::get).
    fn pod_group_result(&self, result: &super::GroupResult) {}
}

impl dyn Plugin {
    /// The extension points this plugin takes part in: the ones whose
    /// method it defines.
    pub fn extension_points(&self) -> ExtensionPoints {
        ExtensionPoints(self.__extension_points())
    }

    /// Whether `add_pod`/`remove_pod` keep PreFilter state current (preemption).
    pub fn has_pre_filter_extensions(&self) -> bool {
        self.__extension_points() & PRE_FILTER_EXTENSIONS != 0
    }

    /// Whether `#[plugin]` listed this plugin's points (false: the attribute
    /// is missing from its `impl Plugin` block).
    pub fn has_generated_points(&self) -> bool {
        self.__extension_points() & MARKED != 0
    }

    /// Whether the plugin groups pods (`pod_group`).
    pub fn has_pod_group(&self) -> bool {
        self.__extension_points() & POD_GROUP != 0
    }

    /// Whether the plugin explains its Filter rejections (`rejection_detail`).
    pub fn has_rejection_detail(&self) -> bool {
        self.__extension_points() & REJECTION_DETAIL != 0
    }

    /// Whether the framework calls `prepare_filter` before filtering a chunk of nodes.
    pub fn has_prepare_filter(&self) -> bool {
        self.__extension_points() & PREPARE_FILTER != 0
    }

    /// Whether Score results go through `normalize_score`.
    pub fn has_normalize_score(&self) -> bool {
        self.__extension_points() & NORMALIZE_SCORE != 0
    }
}
