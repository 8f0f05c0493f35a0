//! The engine: cache + queue + profiles + the cycle runner, fed with cluster
//! changes and asked to schedule one pod at a time. The simulator, the live
//! scheduler and the benchmarks all drive this same type; only what they do
//! with its decisions (bind in memory or through the API) differs.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::{Cache, Snapshot};
use crate::framework::*;
use crate::model::{Node, Pod, PodDisruptionBudget};
use crate::queue::{QueueConfig, SchedulingQueue};
use crate::scheduler::{CycleRunner, FitError, ScheduleError, ScheduleResult};

#[derive(Default)]
pub struct EngineConfig {
    pub queue: QueueConfig,
    /// Scheduler-wide percentageOfNodesToScore (0: adaptive).
    pub percentage_of_nodes_to_score: i32,
    pub seed: u64,
    /// Schedule pods whatever their schedulerName (the simulator); otherwise
    /// only pods naming one of the profiles are ours.
    pub adopt_all_pods: bool,
}

/// A pod placed (assumed) on a node; the caller runs the binding cycle.
pub struct Assignment {
    pub queued: QueuedPodInfo,
    pub node: String,
    pub state: CycleState,
    pub framework: Arc<Framework>,
    pub result: ScheduleResult,
}

impl Assignment {
    pub fn pod(&self) -> &Arc<PodInfo> {
        &self.queued.pod_info
    }

    /// PreBind → Bind → PostBind. Pure with respect to the engine, so it can
    /// run on another thread; report the outcome with `Engine::binding_done`.
    pub fn run_binding_cycle(&mut self, binder: &dyn Binder) -> Status {
        let pod = self.queued.pod_info.clone();
        let s = self.framework.run_pre_bind(&mut self.state, &pod, &self.node);
        if !s.is_success() {
            return s;
        }
        let s = self.framework.run_bind(&mut self.state, &pod, &self.node, binder);
        if s.is_skip() {
            return Status::error("no bind plugin handled the pod");
        }
        if !s.is_success() {
            return s;
        }
        self.framework.run_post_bind(&self.state, &pod, &self.node);
        Status::success()
    }
}

/// A failed attempt: what to report and what to do about it.
#[derive(Debug)]
pub struct Failure {
    pub pod: Arc<PodInfo>,
    /// `Unschedulable` or `SchedulerError` (the PodScheduled condition reason).
    pub reason: &'static str,
    pub message: String,
    pub fit: Option<Box<FitError>>,
    /// Preemption's nomination: the pod should get this nominatedNodeName.
    pub nominated_node: Option<String>,
    /// Pods to delete so the preemptor fits.
    pub victims: Vec<Arc<PodInfo>>,
    /// Lower-priority pods whose nomination to `nominated_node` must be cleared.
    pub cleared_nominations: Vec<Arc<PodInfo>>,
    pub attempts: u32,
}

pub enum Outcome {
    Assigned(Box<Assignment>),
    Failed(Box<Failure>),
    /// The popped pod was no longer ours to schedule (deleted, bound, skipped).
    Skipped(String),
    /// Reserved on a node, held at Permit: see `Engine::take_permitted`.
    Waiting(String),
}

pub struct Engine {
    pub cache: Cache,
    pub queue: SchedulingQueue,
    pub snapshot: Snapshot,
    pub profiles: Vec<Arc<Framework>>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub runner: CycleRunner,
    /// Pods held at Permit, as plugins see them.
    pub waiting: WaitingPods,
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
}

fn marked_evicting(mut pod: Pod) -> Pod {
    pod.terminating = true;
    pod.terminating_by_preemption = true;
    pod
}

struct Evicting {
    observed: Arc<Pod>,
    preemptor: String,
}

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
                queue.register_events(p.name(), p.events_to_register());
            }
        }
        Engine {
            cache: Cache::new(),
            queue,
            snapshot: Snapshot::default(),
            profiles,
            pdbs: Vec::new(),
            runner: CycleRunner::new(cfg.percentage_of_nodes_to_score, cfg.seed),
            waiting: WaitingPods::default(),
            parked: HashMap::new(),
            evicting: HashMap::new(),
            preempting: HashMap::new(),
            adopt_all_pods: cfg.adopt_all_pods,
        }
    }

    pub fn profile_for(&self, scheduler_name: &str) -> Option<&Arc<Framework>> {
        profile_index(&self.profiles, scheduler_name, self.adopt_all_pods).map(|i| &self.profiles[i])
    }

    /// Whether this engine schedules pods with this schedulerName.
    pub fn owns(&self, scheduler_name: &str) -> bool {
        self.profile_for(scheduler_name).is_some()
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
        let mut bits = 0;
        if let Some(o) = &old {
            if o.allocatable != node.allocatable {
                bits |= action::UPDATE_NODE_ALLOCATABLE;
            }
            if o.labels != node.labels {
                bits |= action::UPDATE_NODE_LABEL;
            }
            if o.taints != node.taints {
                bits |= action::UPDATE_NODE_TAINT;
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
    pub fn add_pod(&mut self, pod: Pod, now_ms: i64) {
        let pod = Arc::new(pod);
        if pod.node_name.is_some() {
            let key = pod.key();
            self.queue.delete(&key);
            let _ = self.cache.add_pod(pod.clone());
            self.queue.on_event(
                ClusterEvent::new(EventResource::AssignedPod, action::ADD, "AssignedPodAdd"),
                EventObject::Pod { old: None, new: Some(pod) },
                now_ms,
            );
        } else if self.owns(&pod.scheduler_name) && !pod.terminating {
            self.queue.add(Arc::new(PodInfo::from_arc(pod)), now_ms);
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

    pub fn update_pod(&mut self, old: Option<&Pod>, pod: Pod, now_ms: i64) {
        let key = pod.key();
        let pod = match self.evicting.get_mut(&key) {
            Some(e) => {
                e.observed = Arc::new(pod.clone());
                Arc::new(marked_evicting(pod))
            }
            None => Arc::new(pod),
        };
        if pod.node_name.is_some() {
            let was_known = self.cache.pod_info(&key).is_some_and(|p| !self.cache.is_assumed(&key) || p.pod.node_name.is_some());
            self.queue.delete(&key);
            if was_known && !self.cache.is_assumed(&key) {
                let _ = self.cache.update_pod(pod.clone());
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
                self.add_pod((*pod).clone(), now_ms);
            }
        } else if pod.terminating {
            self.queue.delete(&key);
        } else if self.owns(&pod.scheduler_name) {
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
        if self.waiting.remove(&key).is_some() {
            if let Some(mut a) = self.parked.remove(&key) {
                let pi = a.queued.pod_info.clone();
                a.framework.run_unreserve(&mut a.state, &pi, &a.node);
            }
        }
        let assigned = self.cache.pod_info(&key).cloned();
        if let Some(pi) = assigned {
            let _ = self.cache.remove_pod(&pi.pod);
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

    // ---- scheduling --------------------------------------------------------

    /// Pops the next pod and runs one scheduling cycle for it.
    pub fn schedule_one(&mut self, now_ms: i64) -> Option<Outcome> {
        self.queue.flush(now_ms);
        let qpi = self.queue.pop()?;
        let key = qpi.key();
        let Some(fwk) = self.profile_for(&qpi.pod_info.pod.scheduler_name).cloned() else {
            self.queue.done(&key);
            return Some(Outcome::Skipped(key));
        };
        if qpi.pod_info.pod.terminating || self.cache.pod_info(&key).is_some() {
            self.queue.done(&key);
            return Some(Outcome::Skipped(key));
        }
        self.cache.update_snapshot(&mut self.snapshot);
        self.queue.nominator.sync(&self.snapshot);
        let mut state = CycleState::new();
        let pod = qpi.pod_info.clone();
        let res = self.runner.schedule_pod(&fwk, &mut state, &pod, &self.snapshot, &self.queue.nominator);
        match res {
            Ok(result) => Some(self.assume_and_reserve(fwk, qpi, state, result, now_ms)),
            Err(e) => Some(Outcome::Failed(Box::new(self.handle_failure(&fwk, qpi, &state, e, now_ms)))),
        }
    }

    fn assume_and_reserve(
        &mut self,
        fwk: Arc<Framework>,
        qpi: QueuedPodInfo,
        mut state: CycleState,
        result: ScheduleResult,
        now_ms: i64,
    ) -> Outcome {
        let node = result.node.clone();
        let assumed = Arc::new(qpi.pod_info.on_node(&node));
        if let Err(e) = self.cache.assume_pod(assumed, &node) {
            let f = self.fail_with_status(qpi, Status::error(e.to_string()), now_ms);
            return Outcome::Failed(Box::new(f));
        }
        let pod = qpi.pod_info.clone();
        let s = fwk.run_reserve(&mut state, &pod, &node);
        if !s.is_success() {
            fwk.run_unreserve(&mut state, &pod, &node);
            let _ = self.cache.forget_pod(&pod.key());
            let f = self.fail_with_status(qpi, s, now_ms);
            return Outcome::Failed(Box::new(f));
        }
        let (s, waits) = fwk.run_permit(&mut state, &pod, &node, &mut self.waiting);
        if !s.is_success() && s.code != Code::Wait {
            fwk.run_unreserve(&mut state, &pod, &node);
            let _ = self.cache.forget_pod(&pod.key());
            let f = self.fail_with_status(qpi, s, now_ms);
            return Outcome::Failed(Box::new(f));
        }
        // The scheduling cycle ends here. What only Filter and Score read goes
        // now, not when the binding finishes: with many bindings in flight,
        // their copies of per-domain counts added up to tens of MiB.
        state.end_scheduling_cycle();
        // The pod no longer needs its nomination: it has a node.
        let key = pod.key();
        self.queue.nominator.remove(&key);
        let a = Box::new(Assignment { queued: qpi, node: node.clone(), state, framework: fwk, result });
        if waits.is_empty() {
            return Outcome::Assigned(a);
        }
        let pending = waits
            .into_iter()
            .map(|(p, d)| {
                let ms = d.as_millis() as i64;
                (p, (now_ms + ms, ms))
            })
            .collect();
        self.waiting.insert(key.clone(), WaitingPod { pod, node, pending, rejected: None });
        self.parked.insert(key.clone(), a);
        Outcome::Waiting(key)
    }

    /// Pods held at Permit that can move on: those every plugin allowed (to
    /// bind now), and those rejected or timed out (back to the queue, with
    /// the failure to report).
    pub fn take_permitted(&mut self, now_ms: i64) -> (Vec<Box<Assignment>>, Vec<Failure>) {
        let mut ready = Vec::new();
        let mut failed = Vec::new();
        let keys: Vec<String> = self.waiting.iter().map(|(k, _)| k.clone()).collect();
        for key in keys {
            let w = self.waiting.get(&key).expect("listed");
            let verdict = if let Some((plugin, msg)) = &w.rejected {
                Some(Status::unschedulable(msg.clone()).with_plugin(plugin))
            } else if let Some((plugin, (_, timeout))) = w.pending.iter().find(|(_, (d, _))| *d <= now_ms) {
                Some(
                    Status::unschedulable(format!("rejected due to timeout after waiting {} at plugin {plugin}", go_duration(*timeout)))
                        .with_plugin(plugin),
                )
            } else if w.pending.is_empty() {
                None
            } else {
                continue;
            };
            self.waiting.remove(&key);
            let Some(mut a) = self.parked.remove(&key) else { continue };
            match verdict {
                None => ready.push(a),
                Some(s) => {
                    let pod = a.queued.pod_info.clone();
                    a.framework.run_unreserve(&mut a.state, &pod, &a.node);
                    let _ = self.cache.forget_pod(&key);
                    failed.push(self.fail_with_status(a.queued, s, now_ms));
                }
            }
        }
        (ready, failed)
    }

    /// Reports the binding cycle's result. On failure the assumed pod is
    /// forgotten and requeued; on success the caller later confirms the pod
    /// with `add_pod`/`update_pod` (the informer, or the simulator directly).
    pub fn binding_done(&mut self, mut a: Assignment, status: Status, now_ms: i64) -> Option<Failure> {
        let key = a.queued.key();
        if status.is_success() {
            self.queue.done(&key);
            return None;
        }
        let pod = a.queued.pod_info.clone();
        a.framework.run_unreserve(&mut a.state, &pod, &a.node);
        let _ = self.cache.forget_pod(&key);
        // The freed room may help others.
        self.queue.on_event(ClusterEvent::new(EventResource::AssignedPod, action::DELETE, "AssignedPodDelete"), EventObject::None, now_ms);
        Some(self.fail_with_status(a.queued, status, now_ms))
    }

    /// Shows a chosen victim as terminating by preemption until its deletion
    /// is observed, so later cycles neither preempt again for the same room
    /// nor count on pods that are leaving. Returns whether an eviction is
    /// needed (a victim already terminating needs none, as upstream).
    fn mark_evicting(&mut self, victim: &PodInfo, preemptor: &str) -> bool {
        let key = victim.pod.key();
        if victim.pod.terminating || self.cache.is_assumed(&key) || self.evicting.contains_key(&key) {
            return false;
        }
        if self.cache.update_pod(Arc::new(marked_evicting((*victim.pod).clone()))).is_err() {
            return false;
        }
        self.evicting.insert(key, Evicting { observed: victim.pod.clone(), preemptor: preemptor.to_string() });
        true
    }

    /// The eviction of `victim` is under way (or the victim is gone): its
    /// preemptor is retried once all of its victims are.
    pub fn eviction_done(&mut self, victim: &str, now_ms: i64) {
        let Some(e) = self.evicting.get_mut(victim) else { return };
        let preemptor = std::mem::take(&mut e.preemptor);
        if let Some(n) = self.preempting.get_mut(&preemptor) {
            *n -= 1;
            if *n == 0 {
                self.preempting.remove(&preemptor);
                self.queue.release(&preemptor, now_ms);
            }
        }
    }

    /// The API refused to evict `victim` (other than "already gone"): the
    /// pod stays, as last observed, and counts again.
    pub fn eviction_failed(&mut self, victim: &str, now_ms: i64) {
        self.eviction_done(victim, now_ms);
        if let Some(e) = self.evicting.remove(victim) {
            if self.cache.pod_info(victim).is_some() {
                let _ = self.cache.update_pod(e.observed);
            }
        }
    }

    /// Victims chosen whose deletion has not been observed yet.
    pub fn evicting(&self) -> usize {
        self.evicting.len()
    }

    fn fail_with_status(&mut self, mut qpi: QueuedPodInfo, s: Status, now_ms: i64) -> Failure {
        let reason = if s.is_rejected() { "Unschedulable" } else { "SchedulerError" };
        qpi.unschedulable_plugins.clear();
        if s.is_rejected() && !s.plugin.is_empty() {
            qpi.unschedulable_plugins.insert(s.plugin);
        }
        let pod = qpi.pod_info.clone();
        let attempts = qpi.attempts;
        self.queue.add_unschedulable(qpi, now_ms);
        Failure {
            pod,
            reason,
            message: s.message(),
            fit: None,
            nominated_node: None,
            victims: Vec::new(),
            cleared_nominations: Vec::new(),
            attempts,
        }
    }

    fn handle_failure(&mut self, fwk: &Framework, mut qpi: QueuedPodInfo, state: &CycleState, e: ScheduleError, now_ms: i64) -> Failure {
        let pod = qpi.pod_info.clone();
        let mut out = Failure {
            pod: pod.clone(),
            reason: "Unschedulable",
            message: String::new(),
            fit: None,
            nominated_node: None,
            victims: Vec::new(),
            cleared_nominations: Vec::new(),
            attempts: qpi.attempts,
        };
        qpi.unschedulable_plugins.clear();
        qpi.pending_plugins.clear();
        match e {
            ScheduleError::Fit(mut fit) => {
                let pf = self.runner.run_post_filter(fwk, state, &pod, &self.snapshot, &self.pdbs, &self.queue.nominator, &mut fit);
                if let Some(r) = pf {
                    if let Some(node) = r.nominated_node.filter(|n| !n.is_empty()) {
                        // Lower-priority pods nominated to the same node lose it.
                        out.cleared_nominations = self
                            .queue
                            .nominator
                            .nominated_for_node(&node)
                            .into_iter()
                            .filter(|p| p.pod.priority < pod.pod.priority)
                            .collect();
                        for p in &out.cleared_nominations {
                            self.queue.nominator.remove(&p.key());
                        }
                        let mut nominated = (*pod.pod).clone();
                        nominated.nominated_node_name = Some(node.clone());
                        let npi = Arc::new(PodInfo::from_arc(Arc::new(nominated)));
                        self.queue.nominator.add(npi.clone(), &node);
                        qpi.pod_info = npi;
                        out.nominated_node = Some(node);
                        let key = pod.pod.key();
                        let pending = r.victims.iter().filter(|v| self.mark_evicting(v, &key)).count();
                        if pending > 0 {
                            self.preempting.insert(key, pending);
                        }
                        out.victims = r.victims;
                    }
                }
                qpi.unschedulable_plugins = fit.diagnosis.unschedulable_plugins.clone();
                qpi.pending_plugins = fit.diagnosis.pending_plugins.clone();
                out.message = fit.message();
                out.fit = Some(fit);
            }
            ScheduleError::NoNodes => {
                // No plugin to blame: retried after backoff, as upstream.
                out.message = crate::scheduler::ERR_NO_NODES_AVAILABLE.to_string();
            }
            ScheduleError::Internal(s) => {
                out.reason = "SchedulerError";
                out.message = s.message();
            }
        }
        let key = qpi.key();
        self.queue.add_unschedulable(qpi, now_ms);
        if self.preempting.contains_key(&key) {
            self.queue.hold(&key);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::{make_node, make_pod};

    /// A tiny gang plugin: pods labelled `gang` wait at Permit until `size` of
    /// them are waiting, then the last one allows them all.
    struct Gang {
        size: usize,
    }

    impl Plugin for Gang {
        fn name(&self) -> &'static str {
            "Gang"
        }
        fn extension_points(&self) -> &'static [ExtensionPoint] {
            &[ExtensionPoint::Permit]
        }
        fn permit(&self, _s: &mut CycleState, pod: &PodInfo, _node: &str, waiting: &mut WaitingPods) -> (Status, Duration) {
            if !pod.pod.labels.contains_key("gang") {
                return (Status::success(), Duration::ZERO);
            }
            let others: Vec<String> = waiting.iter().map(|(k, _)| k.clone()).collect();
            if others.len() + 1 >= self.size {
                for k in others {
                    waiting.allow(&k, "Gang");
                }
                return (Status::success(), Duration::ZERO);
            }
            (Status::code_only(Code::Wait), Duration::from_secs(10))
        }
    }

    fn engine(size: usize) -> Engine {
        let cfg = crate::config::KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).unwrap();
        let mut fwk = cfg.build_frameworks().unwrap().remove(0);
        fwk.permit.push(Arc::new(Gang { size }));
        let mut e = Engine::new(vec![fwk], EngineConfig { adopt_all_pods: true, ..Default::default() });
        e.add_node(make_node("n1").capacity(4000, 8 << 30, 110).obj(), 0);
        e
    }

    #[test]
    fn permit_waits_then_allows_the_group() {
        let mut e = engine(3);
        for i in 0..3 {
            e.add_pod(make_pod(&format!("g{i}")).label("gang", "a").req(100, 0).obj(), 0);
        }
        assert!(matches!(e.schedule_one(0), Some(Outcome::Waiting(_))));
        assert!(matches!(e.schedule_one(0), Some(Outcome::Waiting(_))));
        assert_eq!(e.waiting.len(), 2);
        // Reserved while waiting: the node already counts their requests.
        e.cache.update_snapshot(&mut e.snapshot);
        assert_eq!(e.snapshot.get("n1").unwrap().requested.milli_cpu, 200);
        // The third completes the gang and is assigned at once; the others are released.
        assert!(matches!(e.schedule_one(0), Some(Outcome::Assigned(_))));
        let (ready, failed) = e.take_permitted(0);
        assert_eq!((ready.len(), failed.len()), (2, 0));
        assert!(e.waiting.is_empty());
    }

    #[test]
    fn a_scan_of_every_node_reports_every_node() {
        // Past the first chunk the scan doubles its chunks and goes parallel;
        // every node's verdict must still be counted, and the one node that
        // fits must still be found.
        let mut e = engine(1);
        for i in 2..=3000 {
            e.add_node(make_node(&format!("n{i}")).capacity(1000, 8 << 30, 110).obj(), 0);
        }
        e.add_pod(make_pod("big").req(8000, 0).obj(), 0);
        let Some(Outcome::Failed(f)) = e.schedule_one(0) else { panic!("fits nowhere") };
        assert!(f.message.starts_with("0/3000 nodes are available: 3000 Insufficient cpu."), "{}", f.message);
        e.add_pod(make_pod("mid").req(2000, 0).obj(), 0);
        let Some(Outcome::Assigned(a)) = e.schedule_one(0) else { panic!("fits on n1") };
        assert_eq!(a.node, "n1");
    }

    #[test]
    fn a_pod_waiting_for_its_binding_keeps_no_filter_data() {
        let mut e = engine(1);
        e.add_pod(make_pod("a").label("app", "x").pod_anti_affinity("app", "x", "kubernetes.io/hostname").req(100, 0).obj(), 0);
        let Some(Outcome::Assigned(a)) = e.schedule_one(0) else { panic!("expected an assignment") };
        assert!(!a.state.contains("PreFilterInterPodAffinity"));
        assert!(a.state.contains("PreFilterNodeResourcesFit"), "data for the binding cycle stays");
    }

    #[test]
    fn victims_count_as_leaving_until_their_deletion_is_seen() {
        let mut e = engine(1);
        let low = make_pod("low").priority(1).req(3900, 0).node("n1").obj();
        e.add_pod(low.clone(), 0);
        e.add_pod(make_pod("high").priority(100).req(500, 0).obj(), 0);
        let Some(Outcome::Failed(f)) = e.schedule_one(0) else { panic!("expected a preemption") };
        assert_eq!(f.victims.len(), 1);
        assert_eq!(f.nominated_node.as_deref(), Some("n1"));
        let cached = e.cache.pod_info("default/low").unwrap().pod.clone();
        assert!(cached.terminating && cached.terminating_by_preemption);
        // A watch update before the deletion (say, the DisruptionTarget
        // condition) keeps the mark.
        e.update_pod(Some(&low), low.clone(), 1);
        assert!(e.cache.pod_info("default/low").unwrap().pod.terminating_by_preemption);
        // The preemptor is held until the eviction is under way...
        e.queue.flush(400_000);
        assert!(e.schedule_one(400_000).is_none());
        e.eviction_done("default/low", 400_000);
        // ...and its next attempt waits for the victim instead of preempting again.
        let Some(Outcome::Failed(again)) = e.schedule_one(400_000) else { panic!("still does not fit") };
        assert!(again.victims.is_empty(), "{:?}", again.victims);
        assert!(again.message.contains("not eligible due to a terminating pod on the nominated node"), "{}", again.message);
        // A refused eviction puts the pod back as observed.
        e.eviction_failed("default/low", 400_001);
        assert!(!e.cache.pod_info("default/low").unwrap().pod.terminating);
        assert_eq!(e.evicting(), 0);
    }

    #[test]
    fn status_only_updates_leave_an_unschedulable_pod_where_it_is() {
        use crate::queue::Location;
        let mut e = engine(1);
        let big = make_pod("big").req(8000, 0).obj();
        e.add_pod(big.clone(), 0);
        assert!(matches!(e.schedule_one(0), Some(Outcome::Failed(_))));
        assert_eq!(e.queue.location("default/big"), Some(Location::Unschedulable));
        // Our own status patch (nomination, PodScheduled) comes back as an update.
        let mut patched = big.clone();
        patched.nominated_node_name = Some("n1".into());
        e.update_pod(Some(&big), patched.clone(), 10);
        assert_eq!(e.queue.location("default/big"), Some(Location::Unschedulable));
        // A real change to the pod is worth another attempt.
        let mut smaller = patched.clone();
        smaller.labels.insert("resized".into(), "yes".into());
        e.update_pod(Some(&patched), smaller, 20);
        assert_ne!(e.queue.location("default/big"), Some(Location::Unschedulable));
    }

    #[test]
    fn node_events_requeue_only_the_pods_they_can_help() {
        use crate::model::TaintEffect::NoSchedule;
        use crate::queue::Location;
        let mut e = engine(1);
        let node = |name: &str| make_node(name).capacity(4000, 8 << 30, 110);
        e.update_node(node("n1").taint("dedicated", "gpu", NoSchedule).obj(), 0);
        e.add_pod(make_pod("p").req(100, 0).obj(), 0);
        assert!(matches!(e.schedule_one(0), Some(Outcome::Failed(_))));
        assert_eq!(e.queue.location("default/p"), Some(Location::Unschedulable));
        // Another node the pod cannot tolerate: TaintToleration's hint skips it.
        e.add_node(node("n2").taint("dedicated", "db", NoSchedule).obj(), 10);
        assert_eq!(e.queue.location("default/p"), Some(Location::Unschedulable));
        // The taint goes: now the pod is worth another attempt.
        e.update_node(node("n2").obj(), 20);
        assert_ne!(e.queue.location("default/p"), Some(Location::Unschedulable));
    }

    #[test]
    fn permit_times_out_and_unreserves() {
        let mut e = engine(3);
        e.add_pod(make_pod("lonely").label("gang", "a").req(100, 0).obj(), 0);
        assert!(matches!(e.schedule_one(0), Some(Outcome::Waiting(_))));
        let (ready, failed) = e.take_permitted(9_999);
        assert!(ready.is_empty() && failed.is_empty());
        let (_, failed) = e.take_permitted(10_000);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].message, "rejected due to timeout after waiting 10s at plugin Gang");
        assert_eq!(failed[0].reason, "Unschedulable");
        e.cache.update_snapshot(&mut e.snapshot);
        assert_eq!(e.snapshot.get("n1").unwrap().requested.milli_cpu, 0, "forgotten");
        assert!(e.queue.location("default/lonely").is_some(), "requeued");
    }
}
