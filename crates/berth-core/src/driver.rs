//! The one loop every runtime runs: take the pods Permit released, run a
//! scheduling cycle, turn its outcome into effects, and take binding results
//! back. `berth run`, `berth simulate` and `berth bench` all drive the
//! engine through a [`Driver`], so a plugin behaves the same in all three;
//! they differ only in how they carry out the [`Effect`]s (API calls, or
//! changes to an in-memory cluster) and where binding cycles run (a worker
//! thread per pod live, inline in the simulator).
//!
//! No I/O here: the driver is tested with plain structs.

use std::sync::Arc;
use std::time::Instant;

use crate::engine::{Assignment, Engine, Failure, Outcome};
use crate::framework::{Binder, EventRecord, EventType, ObjectRef, PodInfo, Status};
use crate::model::Pod;
use crate::queue::QueueCounts;
use crate::scheduler::{FitError, ScheduleResult};

/// How a scheduling attempt ended, as `scheduler_schedule_attempts_total`'s
/// `result` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// Bound.
    Scheduled,
    /// No node fits (or a plugin rejected the pod).
    Unschedulable,
    /// An internal error (a plugin error, a refused binding).
    Error,
}

impl AttemptResult {
    /// The metric label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptResult::Scheduled => "scheduled",
            AttemptResult::Unschedulable => "unschedulable",
            AttemptResult::Error => "error",
        }
    }
}

/// What the driver measures; the live scheduler exports it as
/// kube-scheduler's metrics. Every method defaults to ignoring the value.
#[allow(unused_variables)]
pub trait DriverObserver: Send + Sync {
    /// An attempt ended (`scheduler_schedule_attempts_total`,
    /// `scheduler_scheduling_attempt_duration_seconds`).
    fn attempt(&self, result: AttemptResult, profile: &str, seconds: f64) {}
    /// A pod was bound after `attempts` attempts, `seconds` after it was
    /// first queued (`scheduler_pod_scheduling_sli_duration_seconds`).
    fn scheduled(&self, attempts: u32, seconds: f64) {}
    /// Preemption nominated a node, evicting `victims` pods.
    fn preemption(&self, victims: usize) {}
    /// A pod group's cycle ended (`scheduler_podgroup_schedule_attempts_total`).
    fn group_attempt(&self, result: crate::engine::GroupAttempt) {}
    /// A cycle chose a node for a pod, `seconds` after the pod was popped
    /// (`scheduler_scheduling_algorithm_duration_seconds`).
    fn algorithm(&self, seconds: f64) {}
    /// `count` pods entered `queue` (`active`, `backoff`, `unschedulable`)
    /// on `event` (`scheduler_queue_incoming_pods_total`).
    fn incoming(&self, queue: &str, event: &str, count: u64) {}
    /// The queue's sizes after a step (`scheduler_pending_pods`).
    fn queue(&self, counts: &QueueCounts) {}
    /// The cache's sizes, reported with the queue's (`scheduler_cache_size`):
    /// nodes, pods (bound or assumed) and assumed pods.
    fn cache(&self, nodes: usize, pods: usize, assumed: usize) {}
    /// A cache operation failed where none should have (see
    /// [`CacheIncident`](crate::engine::CacheIncident)); reported after the
    /// step in which it happened, whether or not the observer is active.
    fn cache_error(&self, incident: &crate::engine::CacheIncident) {}
    /// Whether to report at all: counting the queue costs a pass over the
    /// unschedulable pods, worth it only if someone reads the counts.
    fn is_active(&self) -> bool {
        true
    }
}

/// How often the queue's sizes are reported, at most (ms of the engine's clock).
const QUEUE_REPORT_EVERY_MS: i64 = 1000;

/// An observer that ignores everything.
pub struct Unobserved;

impl DriverObserver for Unobserved {
    fn is_active(&self) -> bool {
        false
    }
}

/// A pod's binding cycle (PreBind, Bind, PostBind), ready to run where
/// blocking is allowed. Hand it back with [`Driver::binding_finished`].
pub struct Binding {
    assignment: Box<Assignment>,
    started: Instant,
}

impl Binding {
    /// The pod being bound.
    pub fn pod(&self) -> &Arc<PodInfo> {
        self.assignment.pod()
    }

    /// The node it goes to.
    pub fn node(&self) -> &str {
        &self.assignment.node
    }

    /// The cycle's choice: the nodes' verdicts and scores.
    pub fn result(&self) -> &ScheduleResult {
        &self.assignment.result
    }

    /// Scheduling attempts the pod took.
    pub fn attempts(&self) -> u32 {
        self.assignment.queued.attempts
    }

    /// Runs PreBind, Bind and PostBind. May block on the network: live,
    /// it runs on a worker thread, never on the scheduling thread.
    pub fn run(&mut self, binder: &dyn Binder) -> Status {
        self.assignment.run_binding_cycle(binder)
    }

    /// Whether the binding cycle is DefaultBinder alone (no PreBind with
    /// work for this pod, no PostBind, no other Bind plugin): its only work is the runtime
    /// binder's call. The live scheduler then makes that call on its async
    /// runtime first and runs the cycle with the answer (see [`Answered`]),
    /// instead of holding a worker thread for the round trip.
    pub fn only_default_binder(&self) -> bool {
        let a = &self.assignment;
        let f = &a.framework;
        f.post_bind.is_empty()
            && !f.extenders.iter().any(|e| e.is_binder())
            && f.bind.len() == 1
            && f.bind[0].name() == crate::plugins::default_binder::NAME
            && !f.pre_bind_has_work(&a.state, a.pod(), &a.node)
    }
}

/// A binder whose answer is already known: the call was made before the
/// binding cycle ran (see [`Binding::only_default_binder`]).
pub struct Answered(pub Result<(), String>);

impl Binder for Answered {
    fn bind(&self, _pod: &Pod, _node: &str) -> Result<(), String> {
        self.0.clone()
    }
}

/// Something the runtime must do or know after a step.
pub enum Effect {
    /// Run this pod's binding cycle, then report with `binding_finished`.
    Bind(Binding),
    /// The pod was bound. Live, the pod's watch event confirms it; the
    /// simulator confirms it at once (`Engine::confirm_binding`).
    Bound {
        /// The pod.
        pod: Arc<PodInfo>,
        /// Its node.
        node: String,
        /// Scheduling attempts it took.
        attempts: u32,
        /// The cycle's choice, with what `--explain` shows.
        result: ScheduleResult,
    },
    /// The attempt failed: the pod is back in the queue.
    Unschedulable {
        /// The pod.
        pod: Arc<PodInfo>,
        /// `Unschedulable` or `SchedulerError`: the PodScheduled condition's reason.
        reason: &'static str,
        /// The FailedScheduling message.
        message: String,
        /// Preemption's nomination for the pod.
        nominated_node: Option<String>,
        /// Whether the pod's status needs a write: the condition or the
        /// nomination differs from what the pod shows (upstream's `updatePod`).
        write_status: bool,
        /// Attempts so far.
        attempts: u32,
        /// Per-node verdicts, when no node fit.
        fit: Option<Box<FitError>>,
    },
    /// Evict `victim` (preemption for `preemptor` on `node`). Report with
    /// `Engine::eviction_done` / `eviction_failed`, or delete the pod.
    Evict {
        /// The pod to evict.
        victim: Arc<PodInfo>,
        /// The pod it makes room for.
        preemptor: Arc<PodInfo>,
        /// The node.
        node: String,
    },
    /// Clear this pod's `status.nominatedNodeName` (a higher-priority pod took its place).
    ClearNomination {
        /// The pod.
        pod: Arc<PodInfo>,
    },
    /// Write this event (Scheduled, FailedScheduling, Preempted).
    Event(EventRecord),
}

/// Drives an [`Engine`]: see the [module documentation](self).
pub struct Driver {
    engine: Engine,
    observer: Arc<dyn DriverObserver>,
    /// When the queue's sizes were last reported (engine clock).
    queue_reported_ms: Option<i64>,
    /// Whether the driver writes its own events (Scheduled,
    /// FailedScheduling, Preempted): live, yes; the simulator reports the
    /// same facts in its results.
    record_events: bool,
}

impl Driver {
    /// A driver of `engine`, reporting to `observer`.
    pub fn new(engine: Engine, observer: Arc<dyn DriverObserver>) -> Driver {
        Driver { engine, observer, record_events: true, queue_reported_ms: None }
    }

    /// Whether to emit `Effect::Event`s for the driver's own events.
    pub fn with_events(mut self, on: bool) -> Driver {
        self.record_events = on;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to feed it cluster changes.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// One step: the pods Permit released or rejected, or else one
    /// scheduling cycle. `None` when there is nothing to do now (the queue
    /// has no active pod and no Permit wait ended).
    pub fn step(&mut self, now_ms: i64) -> Option<Vec<Effect>> {
        let start = Instant::now();
        let (ready, rejected) = self.engine.take_permitted(now_ms);
        let mut outcomes: Vec<Outcome> = ready.into_iter().map(Outcome::Assigned).collect();
        outcomes.extend(rejected.into_iter().map(|f| Outcome::Failed(Box::new(f))));
        // Taken from the back below: reversed, they keep their order.
        outcomes.reverse();
        if outcomes.is_empty() {
            match self.engine.schedule_one(now_ms) {
                Some(o) => outcomes.push(o),
                None => {
                    self.report_queue(now_ms);
                    return None;
                }
            }
            if let Some(s) = self.engine.take_algorithm_seconds() {
                self.observer.algorithm(s);
            }
        }
        let mut effects = Vec::with_capacity(outcomes.len());
        while let Some(o) = outcomes.pop() {
            match o {
                Outcome::Skipped(_) | Outcome::Waiting(_) => {}
                Outcome::Assigned(assignment) => effects.push(Effect::Bind(Binding { assignment, started: start })),
                Outcome::Failed(f) => self.failed(*f, start, &mut effects),
                // A group's members, in the order they were decided.
                Outcome::Group(attempt, members) => {
                    self.observer.group_attempt(attempt);
                    outcomes.extend(members.into_iter().rev())
                }
            }
        }
        self.report_queue(now_ms);
        Some(effects)
    }

    /// Reports the cache incidents of the step, and the queue's sizes, at
    /// most once a second of the engine's
    /// clock: counting walks every pending pod, and with a large backlog
    /// doing it on every step (a node's heartbeat is one) cost more than
    /// anything else while idle. Metrics are scraped every 15 s or more.
    fn report_queue(&mut self, now_ms: i64) {
        for incident in self.engine.take_cache_incidents() {
            self.observer.cache_error(&incident);
        }
        if self.observer.is_active() {
            for (queue, event, n) in self.engine.queue.take_incoming() {
                self.observer.incoming(queue, event, n);
            }
        }
        if self.observer.is_active() && self.queue_reported_ms.is_none_or(|t| now_ms - t >= QUEUE_REPORT_EVERY_MS || now_ms < t) {
            self.queue_reported_ms = Some(now_ms);
            self.observer.queue(&self.engine.queue.counts());
            let cache = &self.engine.cache;
            self.observer.cache(cache.node_count(), cache.pod_count(), cache.assumed_count());
        }
    }

    /// A binding cycle ended with `status` (Success: the pod is bound).
    pub fn binding_finished(&mut self, binding: Binding, status: Status, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Binding { assignment, started } = binding;
        if !status.is_success() {
            if let Some(f) = self.engine.binding_done(*assignment, status, now_ms) {
                self.failed(f, started, &mut effects);
            }
            return effects;
        }
        let mut assignment = *assignment;
        let pod = assignment.queued.pod_info.clone();
        let node = assignment.node.clone();
        let attempts = assignment.queued.attempts;
        let since_queued_ms = (now_ms - assignment.queued.initial_attempt_timestamp).max(0);
        let profile = assignment.framework.profile_name.clone();
        let result = std::mem::take(&mut assignment.result);
        // Until the pod's own update arrives, it stays assumed on the node.
        let _ = self.engine.binding_done(assignment, Status::success(), now_ms);
        self.observer.attempt(AttemptResult::Scheduled, &profile, started.elapsed().as_secs_f64());
        self.observer.scheduled(attempts, since_queued_ms as f64 / 1000.0);
        if self.record_events {
            let note = format!("Successfully assigned {}/{} to {node}", pod.pod.namespace, pod.pod.name);
            effects.push(Effect::Event(event(&pod.pod, &pod.pod, EventType::Normal, "Scheduled", "Binding", note)));
        }
        effects.push(Effect::Bound { pod, node, attempts, result });
        effects
    }

    fn profile_of(&self, pod: &Pod) -> String {
        self.engine.profile_for(&pod.scheduler_name).map(|f| f.profile_name.clone()).unwrap_or_default()
    }

    fn failed(&mut self, f: Failure, start: Instant, effects: &mut Vec<Effect>) {
        let pod = f.pod.pod.clone();
        let result = if f.reason == "SchedulerError" { AttemptResult::Error } else { AttemptResult::Unschedulable };
        self.observer.attempt(result, &self.profile_of(&pod), start.elapsed().as_secs_f64());
        if let Some(node) = &f.nominated_node {
            self.observer.preemption(f.victims.len());
            for v in &f.victims {
                // A victim already terminating needs no second eviction.
                if !v.pod.terminating {
                    effects.push(Effect::Evict { victim: v.clone(), preemptor: f.pod.clone(), node: node.clone() });
                    if self.record_events {
                        let note = format!("Preempted by pod {} on node {node}", pod.uid);
                        effects.push(Effect::Event(event(&v.pod, &pod, EventType::Normal, "Preempted", "Preempting", note)));
                    }
                }
            }
            for c in &f.cleared_nominations {
                effects.push(Effect::ClearNomination { pod: c.clone() });
            }
        }
        if self.record_events {
            effects.push(Effect::Event(event(&pod, &pod, EventType::Warning, "FailedScheduling", "Scheduling", f.message.clone())));
        }
        // As upstream's updatePod: no write when neither the condition nor
        // the nomination would change.
        let condition_changes = pod.unschedulable_condition.as_ref().is_none_or(|(r, m)| r != f.reason || *m != f.message);
        let nomination_changes = f.nominated_node.is_some() && f.nominated_node != pod.nominated_node_name;
        effects.push(Effect::Unschedulable {
            pod: f.pod,
            reason: f.reason,
            message: f.message,
            nominated_node: f.nominated_node,
            write_status: condition_changes || nomination_changes,
            attempts: f.attempts,
            fit: f.fit,
        });
    }
}

/// An event about `regarding`, reported by the profile of `by` (the pod
/// scheduled, or the preemptor for its victims), as each upstream profile
/// has its own recorder.
fn event(regarding: &Pod, by: &Pod, event_type: EventType, reason: &str, action: &str, note: String) -> EventRecord {
    EventRecord {
        regarding: ObjectRef::from(regarding),
        reporting_controller: by.scheduler_name.clone(),
        event_type,
        reason: reason.into(),
        action: action.into(),
        note,
    }
}

#[cfg(test)]
mod tests;
