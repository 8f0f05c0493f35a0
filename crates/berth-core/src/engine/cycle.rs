//! One scheduling cycle and what follows it: assume, Reserve, Permit (and
//! the pods it holds), the binding's result, and failures with preemption.

use std::sync::Arc;

use super::*;
use crate::scheduler::{FitError, ScheduleError, ScheduleResult};

/// A pod assumed and reserved on a node, not yet through Permit.
pub(super) struct Placed {
    pub qpi: QueuedPodInfo,
    pub state: CycleState,
    pub result: ScheduleResult,
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
        let s = match self.framework.run_extender_bind(&pod, &self.node) {
            Some(s) => s,
            None => self.framework.run_bind(&mut self.state, &pod, &self.node, binder),
        };
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
    /// A group's cycle: how it ended (`scheduler_podgroup_schedule_attempts_total`'s
    /// `result`), and one outcome per member tried.
    Group(GroupAttempt, Vec<Outcome>),
}

/// How a pod group's scheduling cycle ended, as upstream's
/// `scheduler_podgroup_schedule_attempts_total` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupAttempt {
    /// At least minCount members are placed.
    Scheduled,
    /// Not placed; nothing to preempt, or preemption would not help.
    Unschedulable,
    /// Not placed yet: preemption chose victims and nominated the members.
    WaitingOnPreemption,
    /// A plugin failed.
    Error,
}

impl GroupAttempt {
    /// The metric label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            GroupAttempt::Scheduled => "scheduled",
            GroupAttempt::Unschedulable => "unschedulable",
            GroupAttempt::WaitingOnPreemption => "waiting_on_preemption",
            GroupAttempt::Error => "error",
        }
    }
}

impl Engine {
    /// Pops the next pod and runs one scheduling cycle for it (or for its
    /// whole group: see [`group`](crate::framework::group)).
    pub fn schedule_one(&mut self, now_ms: i64) -> Option<Outcome> {
        self.queue.flush(now_ms);
        let qpi = self.queue.pop()?;
        let popped = std::time::Instant::now();
        let key = qpi.key();
        let Some(fwk) = self.profile_for(&qpi.pod_info.pod.scheduler_name).cloned() else {
            self.queue.done(&key);
            return Some(Outcome::Skipped(key));
        };
        if qpi.pod_info.pod.terminating || self.cache.pod_info(&key).is_some() {
            self.queue.done(&key);
            return Some(Outcome::Skipped(key));
        }
        if let Some((plugin, group)) = self.membership(&qpi.pod_info.pod) {
            return Some(self.schedule_group(plugin, group, qpi, now_ms));
        }
        self.refresh_snapshot(&fwk);
        let mut state = self.new_cycle_state(&fwk);
        let pod = qpi.pod_info.clone();
        let res = self.runner.schedule_pod(&fwk, &mut state, &pod, &self.snapshot, &self.queue.nominator);
        if res.is_ok() {
            // Upstream observes from the pop to SchedulePod's success.
            self.algorithm_seconds = Some(popped.elapsed().as_secs_f64());
        }
        match res {
            Ok(result) => Some(match self.assume_and_reserve(&fwk, qpi, state, result, now_ms) {
                Ok(placed) => self.permit(placed, fwk, now_ms),
                Err(f) => Outcome::Failed(f),
            }),
            Err(e) => Some(Outcome::Failed(Box::new(self.handle_failure(&fwk, qpi, &state, e, now_ms)))),
        }
    }

    /// Brings the snapshot up to date with the cache (in place, unless a
    /// plugin still holds it) and publishes it to plugins.
    pub(super) fn refresh_snapshot(&mut self, fwk: &Framework) {
        // Plugins may hold the last snapshot (`Handle::snapshot`); taking it
        // back first lets the update happen in place.
        let host = fwk.handle.host();
        host.publish_snapshot(None);
        self.cache.update_snapshot(Arc::make_mut(&mut self.snapshot));
        host.publish_snapshot(Some(self.snapshot.clone()));
        self.queue.nominator.sync(&self.snapshot);
    }

    pub(super) fn new_cycle_state(&mut self, fwk: &Framework) -> CycleState {
        let mut state = CycleState::new();
        self.attempts += 1;
        state.record_plugin_metrics =
            self.attempts % super::PLUGIN_METRICS_SAMPLE_EVERY == 1 && fwk.handle.host().observer().times_plugins();
        state
    }

    /// Assumes the pod on the node it was given and runs Reserve; on a
    /// failure nothing is left assumed or reserved.
    pub(super) fn assume_and_reserve(
        &mut self,
        fwk: &Framework,
        qpi: QueuedPodInfo,
        mut state: CycleState,
        result: ScheduleResult,
        now_ms: i64,
    ) -> Result<Placed, Box<Failure>> {
        let node = result.node.clone();
        let assumed = Arc::new(qpi.pod_info.on_node(&node));
        if let Err(e) = self.assume(assumed, &node) {
            return Err(Box::new(self.fail_with_status(qpi, Status::error(e.to_string()), now_ms)));
        }
        let pod = qpi.pod_info.clone();
        let s = fwk.run_reserve(&mut state, &pod, &node);
        if !s.is_success() {
            fwk.run_unreserve(&mut state, &pod, &node);
            self.forget(&pod.key());
            return Err(Box::new(self.fail_with_status(qpi, s, now_ms)));
        }
        Ok(Placed { qpi, state, result })
    }

    /// Undoes `assume_and_reserve` (a group that did not fit).
    pub(super) fn unreserve(&mut self, fwk: &Framework, placed: &mut Placed) {
        let pod = placed.qpi.pod_info.clone();
        fwk.run_unreserve(&mut placed.state, &pod, &placed.result.node);
        self.forget(&pod.key());
    }

    /// Runs Permit for a reserved pod: it goes on to binding, waits, or is
    /// unreserved and requeued.
    pub(super) fn permit(&mut self, placed: Placed, fwk: Arc<Framework>, now_ms: i64) -> Outcome {
        let Placed { qpi, mut state, result } = placed;
        let node = result.node.clone();
        let pod = qpi.pod_info.clone();
        let (s, waits) = fwk.run_permit(&mut state, &pod, &node, &mut self.waiting);
        if !s.is_success() && s.code != Code::Wait {
            fwk.run_unreserve(&mut state, &pod, &node);
            self.forget(&pod.key());
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

    /// Nominates the queued pod to `node` (preemption chose room there):
    /// its copy carries `nominatedNodeName`, and the nominator makes other
    /// pods leave that room to it.
    pub(super) fn nominate(&mut self, qpi: &mut QueuedPodInfo, node: &str) {
        let mut nominated = (*qpi.pod_info.pod).clone();
        nominated.nominated_node_name = Some(node.to_string());
        let npi = Arc::new(PodInfo::from_arc(Arc::new(nominated)));
        self.queue.nominator.add(npi.clone(), node);
        qpi.pod_info = npi;
    }

    /// Assumes a pod on a node in the cache (and counts it placed in its group).
    fn assume(&mut self, info: Arc<PodInfo>, node: &str) -> Result<(), crate::cache::CacheError> {
        let key = info.key();
        self.cache.assume_pod(info, node)?;
        self.groups.set_placed(&key, true);
        Ok(())
    }

    /// Forgets an assumed pod (and counts it no longer placed in its group).
    pub(super) fn forget(&mut self, key: &str) {
        if self.cache.forget_pod(key).is_ok() {
            self.groups.set_placed(key, false);
        }
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
                    self.forget(&key);
                    failed.push(self.fail_with_status(a.queued, s, now_ms));
                }
            }
        }
        (ready, failed)
    }

    /// Reports the binding cycle's result. On failure the assumed pod is
    /// forgotten and requeued, unless it was deleted or bound by someone
    /// else meanwhile (it left the queue: nothing to retry or report, as
    /// upstream checks its informer before requeueing); on success the caller
    /// later confirms the pod with `add_pod`/`update_pod` (the informer, or
    /// the simulator directly).
    pub fn binding_done(&mut self, mut a: Assignment, status: Status, now_ms: i64) -> Option<Failure> {
        let key = a.queued.key();
        if status.is_success() {
            self.queue.done(&key);
            return None;
        }
        let pod = a.queued.pod_info.clone();
        a.framework.run_unreserve(&mut a.state, &pod, &a.node);
        self.forget(&key);
        // The freed room may help others.
        self.queue.on_event(ClusterEvent::new(EventResource::AssignedPod, action::DELETE, "AssignedPodDelete"), EventObject::None, now_ms);
        if !self.queue.is_in_flight(&key) {
            return None;
        }
        Some(self.fail_with_status(a.queued, status, now_ms))
    }

    pub(super) fn fail_with_status(&mut self, mut qpi: QueuedPodInfo, s: Status, now_ms: i64) -> Failure {
        qpi.unschedulable_plugins.clear();
        if s.is_rejected() && !s.plugin.is_empty() {
            qpi.unschedulable_plugins.insert(s.plugin);
        }
        self.requeue_failed(qpi, &s, now_ms)
    }

    /// Requeues a pod whose attempt failed with `status`, with the plugins
    /// already set on it (they decide what retries it), and returns the
    /// failure to report.
    pub(super) fn requeue_failed(&mut self, qpi: QueuedPodInfo, status: &Status, now_ms: i64) -> Failure {
        let reason = if status.is_rejected() { "Unschedulable" } else { "SchedulerError" };
        let pod = qpi.pod_info.clone();
        let attempts = qpi.attempts;
        self.queue.add_unschedulable(qpi, now_ms);
        Failure {
            pod,
            reason,
            message: status.message(),
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
                            self.queue.nomination_lost(&p.key(), now_ms);
                        }
                        self.nominate(&mut qpi, &node);
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
