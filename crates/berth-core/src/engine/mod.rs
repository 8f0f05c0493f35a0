//! The engine: cache + queue + profiles + the cycle runner, fed with cluster
//! changes and asked to schedule one pod at a time. The simulator, the live
//! scheduler and the benchmarks all drive this same type through one
//! [`Driver`](crate::driver::Driver); only what they do with its decisions
//! (bind in memory or through the API) differs.
//!
//! - `mod.rs`: the engine's state and the cluster changes it is fed;
//! - `cycle.rs`: one scheduling cycle, Permit waits, binding results;
//! - `evictions.rs`: preemption victims on their way out.

mod cycle;
mod evictions;
mod groups;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::{Cache, CacheError, Snapshot};
use crate::framework::*;
use crate::model::{Node, Pod, PodDisruptionBudget};
use crate::queue::{QueueConfig, SchedulingQueue};
use crate::scheduler::CycleRunner;

pub use cycle::{Assignment, Failure, GroupAttempt, Outcome};
use evictions::{marked_evicting, Evicting};
pub use groups::ERR_POD_GROUP_UNSCHEDULABLE;

/// How the engine schedules, besides its profiles.
#[derive(Default)]
pub struct EngineConfig {
    /// Backoff and flush timings of the scheduling queue.
    pub queue: QueueConfig,
    /// Scheduler-wide percentageOfNodesToScore (0: adaptive).
    pub percentage_of_nodes_to_score: i32,
    /// Seed for tie-breaking among equally good nodes and preemption's sampling.
    pub seed: u64,
    /// Schedule pods whatever their schedulerName (the simulator); otherwise
    /// only pods naming one of the profiles are ours.
    pub adopt_all_pods: bool,
}

/// Plugin calls are timed in one attempt of this many (upstream's
/// `pluginMetricsSamplePercent` is 10).
const PLUGIN_METRICS_SAMPLE_EVERY: u64 = 10;

/// The scheduler's state and its scheduling cycle. Fields are private:
/// feed it through the methods below, read it through the accessors.
pub struct Engine {
    pub(crate) cache: Cache,
    pub(crate) queue: SchedulingQueue,
    /// Shared with plugins through `Handle::snapshot`; updated in place
    /// (copied only if a plugin still holds the last one).
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) profiles: Vec<Arc<Framework>>,
    pub(crate) pdbs: Vec<PodDisruptionBudget>,
    pub(crate) runner: CycleRunner,
    /// Pods held at Permit, as plugins see them.
    pub(crate) waiting: WaitingPods,
    /// Their assignments, bound once every waiting plugin allows.
    parked: HashMap<String, Box<Assignment>>,
    /// Victims whose eviction is on its way: key -> the pod as last observed.
    /// The cache shows them terminating by preemption until they are gone,
    /// so the next cycle neither preempts again for the same room nor counts
    /// on pods that are leaving.
    evicting: HashMap<String, Evicting>,
    /// Preemptors held in the queue until the eviction of each of their
    /// victims is under way: key -> victims not yet done.
    preempting: HashMap<String, usize>,
    adopt_all_pods: bool,
    /// Scheduling attempts so far (for sampling plugin metrics).
    attempts: u64,
    /// The members of every pod group (shared with plugins through the handle).
    groups: Arc<PodGroups>,
    /// Per profile, the plugins that group pods (`Plugin::pod_group`).
    group_plugins: Vec<Vec<Arc<dyn Plugin>>>,
    /// How each group's last cycle ended, by group key.
    group_results: HashMap<String, GroupResult>,
    /// Cache operations that failed where none should, not yet reported.
    cache_incidents: Vec<CacheIncident>,
    /// How long the last cycle took from pop to a chosen node, when it
    /// chose one (`scheduler_scheduling_algorithm_duration_seconds`).
    algorithm_seconds: Option<f64>,
    /// How many such failures there have been in all.
    cache_errors: u64,
}

/// A cache operation that failed where the engine expected none to (the
/// same pod added twice, a pod removed that was not there): a sign that the
/// events fed to the engine disagree with its state. The engine goes on as
/// upstream's does, and the driver reports each to its observer
/// (logged and counted live).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheIncident {
    /// What the engine was doing: the cache operation and where.
    pub operation: &'static str,
    /// What the cache said.
    pub error: CacheError,
}

/// Incidents kept for the driver at most; beyond, only counted.
const MAX_CACHE_INCIDENTS: usize = 1024;

/// A duration as Go's `%v` prints whole seconds or milliseconds.
fn go_duration(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn profile_index(profiles: &[Arc<Framework>], scheduler_name: &str, adopt_all: bool) -> Option<usize> {
    match profiles.iter().position(|p| p.profile_name == scheduler_name) {
        Some(i) => Some(i),
        None if adopt_all && !profiles.is_empty() => Some(0),
        None => None,
    }
}

impl Engine {
    /// An engine with these profiles (at least one; the first one's queue
    /// sort orders the queue for all, as upstream requires one for all).
    pub fn new(profiles: Vec<Framework>, cfg: EngineConfig) -> Engine {
        assert!(!profiles.is_empty(), "at least one profile");
        let profiles: Vec<Arc<Framework>> = profiles.into_iter().map(Arc::new).collect();
        let first = profiles[0].clone();
        let less = Arc::new(move |a: &QueuedPodInfo, b: &QueuedPodInfo| first.less(a, b));
        let pe_profiles = profiles.clone();
        let adopt = cfg.adopt_all_pods;
        let pre_enqueue = Arc::new(move |p: &Pod| match profile_index(&pe_profiles, &p.scheduler_name, adopt) {
            Some(i) => pe_profiles[i].run_pre_enqueue(p),
            None => Status::success(),
        });
        let mut queue = SchedulingQueue::new(cfg.queue, less, pre_enqueue);
        for prof in &profiles {
            for p in prof.all_plugins() {
                // A plugin that names no events is retried on any event, as
                // upstream treats plugins without EnqueueExtensions.
                let events = p.events_to_register();
                let events = if events.is_empty() { vec![ClusterEventWithHint::new(ClusterEvent::wildcard())] } else { events };
                queue.register_events(p.name(), events);
            }
        }
        // Pods extenders rejected are retried on any event (upstream's
        // default enqueue extension for its fake plugin "Extender").
        queue.register_events(crate::scheduler::EXTENDER, vec![ClusterEventWithHint::new(ClusterEvent::wildcard())]);
        let groups = profiles[0].handle.host().pod_groups().clone();
        let group_plugins = profiles.iter().map(|p| p.all_plugins().into_iter().filter(|p| p.has_pod_group()).collect()).collect();
        Engine {
            groups,
            group_plugins,
            group_results: HashMap::new(),
            cache: Cache::new(),
            queue,
            snapshot: Arc::new(Snapshot::default()),
            profiles,
            pdbs: Vec::new(),
            runner: CycleRunner::new(cfg.percentage_of_nodes_to_score, cfg.seed),
            waiting: WaitingPods::default(),
            parked: HashMap::new(),
            evicting: HashMap::new(),
            preempting: HashMap::new(),
            adopt_all_pods: cfg.adopt_all_pods,
            attempts: 0,
            cache_incidents: Vec::new(),
            algorithm_seconds: None,
            cache_errors: 0,
        }
    }

    /// Keeps a failed cache operation for the driver to report.
    pub(crate) fn noted(&mut self, operation: &'static str, result: Result<(), CacheError>) {
        if let Err(error) = result {
            self.cache_errors += 1;
            if self.cache_incidents.len() < MAX_CACHE_INCIDENTS {
                self.cache_incidents.push(CacheIncident { operation, error });
            }
        }
    }

    /// The cache operations that failed since the last call (at most
    /// 1024 are kept between calls; [`Engine::cache_errors`] counts all).
    /// How long the last scheduling cycle took from popping the pod to
    /// choosing its node, if a cycle chose one since the last call.
    pub fn take_algorithm_seconds(&mut self) -> Option<f64> {
        self.algorithm_seconds.take()
    }

    pub fn take_cache_incidents(&mut self) -> Vec<CacheIncident> {
        std::mem::take(&mut self.cache_incidents)
    }

    /// How many cache operations have failed where none should, in all.
    pub fn cache_errors(&self) -> u64 {
        self.cache_errors
    }

    /// The profile that schedules pods with this schedulerName.
    pub fn profile_for(&self, scheduler_name: &str) -> Option<&Arc<Framework>> {
        profile_index(&self.profiles, scheduler_name, self.adopt_all_pods).map(|i| &self.profiles[i])
    }

    /// Whether this engine schedules pods with this schedulerName.
    pub fn owns(&self, scheduler_name: &str) -> bool {
        self.profile_for(scheduler_name).is_some()
    }

    /// The profiles, in configuration order.
    pub fn profiles(&self) -> &[Arc<Framework>] {
        &self.profiles
    }

    /// The cache: nodes, bound and assumed pods.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The scheduling queue (read-only).
    pub fn queue(&self) -> &SchedulingQueue {
        &self.queue
    }

    /// The snapshot the last cycle ran on.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Pods held at Permit.
    pub fn waiting(&self) -> &WaitingPods {
        &self.waiting
    }

    /// Scheduling cycles run so far.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// Whether cycles may reuse per-node results of earlier ones (on by
    /// default); off only to show that reuse changes no decision.
    pub fn set_memoize(&mut self, on: bool) {
        self.runner.memoize = on;
    }

    /// The earliest time something held will move by itself: a backoff
    /// expiring, or a Permit wait timing out.
    pub fn next_timer(&self) -> Option<i64> {
        [self.queue.next_backoff_expiry(), self.waiting.next_deadline()].into_iter().flatten().min()
    }

    // ---- cluster changes -------------------------------------------------

    pub fn add_node(&mut self, node: Node, now_ms: i64) {
        let n = Arc::new(node.clone());
        self.cache.add_node(node);
        self.queue.on_event(
            ClusterEvent::new(EventResource::Node, action::ADD, "NodeAdd"),
            EventObject::Node { old: None, new: Some(n) },
            now_ms,
        );
    }

    pub fn update_node(&mut self, node: Node, now_ms: i64) {
        let old = self.cache.node(&node.name).map(|n| n.node.clone());
        // Heartbeats and the like arrive as updates that change nothing we
        // keep: the node's entry (and what cycles reuse for it) stays.
        if old.as_deref() == Some(&node) {
            return;
        }
        let mut bits = 0;
        if let Some(o) = &old {
            if o.annotations != node.annotations {
                bits |= action::UPDATE_NODE_ANNOTATION;
            }
            if o.conditions != node.conditions {
                bits |= action::UPDATE_NODE_CONDITION;
            }
            if o.allocatable != node.allocatable {
                bits |= action::UPDATE_NODE_ALLOCATABLE;
            }
            if o.labels != node.labels {
                bits |= action::UPDATE_NODE_LABEL;
            }
            if o.taints != node.taints {
                bits |= action::UPDATE_NODE_TAINT;
            }
            if o.declared_features != node.declared_features {
                bits |= action::UPDATE_NODE_DECLARED_FEATURE;
            }
            if o.unschedulable != node.unschedulable {
                bits |= action::UPDATE_NODE_TAINT | action::UPDATE_NODE_SCHEDULABLE;
            }
        } else {
            bits = action::ADD;
        }
        let new = Arc::new(node.clone());
        self.cache.update_node(node);
        if bits != 0 {
            self.queue.on_event(
                ClusterEvent::new(EventResource::Node, bits, "NodeUpdate"),
                EventObject::Node { old, new: Some(new) },
                now_ms,
            );
        }
    }

    pub fn remove_node(&mut self, name: &str, now_ms: i64) {
        let old = self.cache.node(name).map(|n| n.node.clone());
        self.cache.remove_node(name);
        self.queue.on_event(
            ClusterEvent::new(EventResource::Node, action::DELETE, "NodeDelete"),
            EventObject::Node { old, new: None },
            now_ms,
        );
    }

    pub fn set_namespace(&mut self, name: &str, labels: crate::model::Labels, now_ms: i64) {
        self.cache.set_namespace(name, labels);
        self.queue.on_event(
            ClusterEvent::new(EventResource::Namespace, action::ADD | action::UPDATE, "NamespaceChange"),
            EventObject::None,
            now_ms,
        );
    }

    pub fn set_pdbs(&mut self, pdbs: Vec<PodDisruptionBudget>) {
        self.pdbs = pdbs;
    }

    /// A pod appeared: bound pods go to the cache, our pending pods to the queue.
    /// (`pod` may be an `Arc` the caller keeps too: the engine shares it.)
    pub fn add_pod(&mut self, pod: impl Into<Arc<Pod>>, now_ms: i64) {
        let pod: Arc<Pod> = pod.into();
        if pod.node_name.is_some() {
            let key = pod.key();
            self.queue.delete(&key);
            self.track_group(&pod, true);
            let r = self.cache.add_pod(pod.clone());
            self.noted("add_pod (bound pod added)", r);
            self.queue.on_event(
                ClusterEvent::new(EventResource::AssignedPod, action::ADD, "AssignedPodAdd"),
                EventObject::Pod { old: None, new: Some(pod) },
                now_ms,
            );
        } else if self.owns(&pod.scheduler_name) && !pod.terminating {
            let member = self.track_group(&pod, false);
            self.queue.add(Arc::new(PodInfo::from_arc(pod.clone())), now_ms);
            if member {
                // Gated members of its group may now have enough company.
                self.queue.on_event(
                    ClusterEvent::new(EventResource::UnscheduledPod, action::ADD, "UnscheduledPodAdd"),
                    EventObject::Pod { old: None, new: Some(pod) },
                    now_ms,
                );
            }
        }
    }

    /// The simulator's (and benchmark's) shortcut for "the binding we just made
    /// was observed": the assumed pod becomes a bound one as it is.
    pub fn confirm_binding(&mut self, key: &str, now_ms: i64) {
        if let Some(info) = self.cache.confirm_pod(key) {
            self.queue.on_event(
                ClusterEvent::new(EventResource::AssignedPod, action::ADD, "AssignedPodAdd"),
                EventObject::Pod { old: None, new: Some(info.pod.clone()) },
                now_ms,
            );
        }
    }

    pub fn update_pod(&mut self, old: Option<&Pod>, pod: impl Into<Arc<Pod>>, now_ms: i64) {
        let pod: Arc<Pod> = pod.into();
        let key = pod.key();
        let pod = match self.evicting.get_mut(&key) {
            Some(e) => {
                e.observed = pod.clone();
                Arc::new(marked_evicting((*pod).clone()))
            }
            None => pod,
        };
        if pod.node_name.is_some() {
            let was_known = self.cache.pod_info(&key).is_some_and(|p| !self.cache.is_assumed(&key) || p.pod.node_name.is_some());
            self.queue.delete(&key);
            if was_known && !self.cache.is_assumed(&key) {
                self.track_group(&pod, true);
                let r = self.cache.update_pod(pod.clone());
                self.noted("update_pod (bound pod updated)", r);
                let mut bits = action::UPDATE_POD_OTHER;
                if let Some(o) = old {
                    if o.labels != pod.labels {
                        bits |= action::UPDATE_POD_LABEL;
                    }
                    if o.requests() != pod.requests() {
                        bits |= action::UPDATE_POD_SCALE_DOWN;
                    }
                }
                self.queue.on_event(
                    ClusterEvent::new(EventResource::AssignedPod, bits, "AssignedPodUpdate"),
                    EventObject::Pod { old: old.map(|o| Arc::new(o.clone())), new: Some(pod) },
                    now_ms,
                );
            } else {
                self.add_pod(pod.clone(), now_ms);
            }
        } else if pod.terminating {
            self.queue.delete(&key);
            self.groups.remove(&key);
        } else if self.owns(&pod.scheduler_name) {
            self.track_group(&pod, false);
            let info = Arc::new(PodInfo::from_arc(pod.clone()));
            match old {
                Some(o) if !o.differs_beyond_status(&pod) => self.queue.update_status_only(info, now_ms),
                _ => self.queue.update(info, now_ms),
            }
        }
    }

    pub fn delete_pod(&mut self, pod: &Pod, now_ms: i64) {
        let key = pod.key();
        self.eviction_done(&key, now_ms);
        self.evicting.remove(&key);
        self.preempting.remove(&key);
        self.queue.delete(&key);
        self.groups.remove(&key);
        if self.waiting.remove(&key).is_some() {
            if let Some(mut a) = self.parked.remove(&key) {
                let pi = a.queued.pod_info.clone();
                a.framework.run_unreserve(&mut a.state, &pi, &a.node);
            }
        }
        let assigned = self.cache.pod_info(&key).cloned();
        if let Some(pi) = assigned {
            let r = self.cache.remove_pod(&pi.pod);
            self.noted("remove_pod (pod deleted)", r);
            self.queue.on_event(
                ClusterEvent::new(EventResource::AssignedPod, action::DELETE, "AssignedPodDelete"),
                EventObject::Pod { old: Some(pi.pod.clone()), new: None },
                now_ms,
            );
        } else {
            self.queue.on_event(
                ClusterEvent::new(EventResource::UnscheduledPod, action::DELETE, "UnscheduledPodDelete"),
                EventObject::Pod { old: Some(Arc::new(pod.clone())), new: None },
                now_ms,
            );
        }
    }

    /// An object of a kind a plugin declared (`Handle::objects`) was added,
    /// updated (`action::UPDATE`) or deleted (`key` names it, when known): pods rejected by plugins that
    /// registered for it may be retried. The caller has already fed it to the
    /// stores (`PluginHost::apply_object`).
    pub fn object_changed(&mut self, kind: ObjectKind, key: Option<ObjectKey>, action: u32, now_ms: i64) {
        let obj = key.map_or(EventObject::None, EventObject::Object);
        self.queue.on_event(ClusterEvent::new(EventResource::Object(kind), action, kind.kind), obj, now_ms);
    }
}
