//! The live scheduler's logic, without I/O: cluster changes go in, the API
//! calls to make come out as `ApiAction`s, and their results come back in.
//! The network layer (watchers, the binding subresource, events, status
//! patches) only moves data between the API server and this type, so the
//! decisions, and the messages users read, are tested with plain structs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use berth_core::engine::{Assignment, Engine, Failure, Outcome};
use berth_core::framework::Status;
use berth_core::model::Pod;

use crate::metrics::Metrics;

/// An API call the network layer should make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiAction {
    /// POST pods/binding. Report the result with `Controller::binding_result`.
    Bind { id: u64, namespace: String, name: String, uid: String, node: String },
    /// Create the events.k8s.io/v1 Event `event_name` about a pod, reported by profile `by`.
    Event {
        namespace: String,
        name: String,
        uid: String,
        by: String,
        warning: bool,
        reason: String,
        action: String,
        note: String,
        event_name: String,
    },
    /// The same event happened again: merge-patch its `series`.
    EventSeries { namespace: String, event_name: String, count: u32, last_observed_ms: i64 },
    /// Patch `PodScheduled=False` with this reason and message (status
    /// subresource), and with preemption's nomination when there is one, in
    /// one write as upstream does.
    MarkUnschedulable { namespace: String, name: String, reason: String, message: String, nominated_node: Option<String> },
    /// Set (or with `None`, clear) `status.nominatedNodeName`.
    Nominate { namespace: String, name: String, node: Option<String> },
    /// Add the `DisruptionTarget` condition, then delete the pod; `by` is
    /// the preemptor's schedulerName.
    Evict { namespace: String, name: String, uid: String, preemptor_uid: String, by: String, node: String },
}

pub struct Controller {
    pub engine: Engine,
    metrics: Arc<Metrics>,
    next_id: u64,
    /// Bindings in flight: id -> (assignment, when its cycle started).
    in_flight: HashMap<u64, (Box<Assignment>, Instant)>,
    events: EventSeriesCache,
}

/// How client-go's events.k8s.io broadcaster keeps repeats cheap: the first
/// occurrence of an event is created, the second turns it into a series
/// (one patch), later ones only count and are written when the series ends
/// (6 minutes without a repeat) or every 30 minutes while it goes on.
#[derive(Default)]
struct EventSeriesCache {
    seen: HashMap<EventKey, Seen>,
    next_sweep_ms: i64,
    seq: u64,
}

/// Upstream's isomorphic-event key.
#[derive(Clone, PartialEq, Eq, Hash)]
struct EventKey {
    uid: String,
    namespace: String,
    name: String,
    by: String,
    reason: String,
    action: String,
    note: String,
}

struct Seen {
    event_name: String,
    count: u32,
    written_count: u32,
    last_ms: i64,
    written_ms: i64,
}

const SERIES_FINISH_MS: i64 = 6 * 60 * 1000;
const SERIES_REFRESH_MS: i64 = 30 * 60 * 1000;
const SWEEP_EVERY_MS: i64 = 10 * 1000;

impl EventSeriesCache {
    /// An event about `pod`, reported by the profile of `by` (the pod
    /// scheduled, or the preemptor for its victims), as each upstream profile
    /// has its recorder. Pushes the API call it needs, if any.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        pod: &Pod,
        by: &Pod,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
        now_ms: i64,
        out: &mut Vec<ApiAction>,
    ) {
        let key = EventKey {
            uid: pod.uid.clone(),
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            by: by.scheduler_name.clone(),
            reason: reason.into(),
            action: action.into(),
            note,
        };
        if let Some(s) = self.seen.get_mut(&key) {
            s.count += 1;
            s.last_ms = now_ms;
            if s.count == 2 {
                s.written_count = 2;
                s.written_ms = now_ms;
                out.push(ApiAction::EventSeries {
                    namespace: key.namespace,
                    event_name: s.event_name.clone(),
                    count: 2,
                    last_observed_ms: now_ms,
                });
            }
            return;
        }
        // Upstream names events `<object>.<unix nanos in hex>`; the sequence
        // keeps names unique within one millisecond.
        self.seq += 1;
        let event_name = format!("{}.{:x}", pod.name, now_ms.max(0) as u64 * 1_000_000 + self.seq % 1_000_000);
        out.push(ApiAction::Event {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            uid: key.uid.clone(),
            by: key.by.clone(),
            warning,
            reason: key.reason.clone(),
            action: key.action.clone(),
            note: key.note.clone(),
            event_name: event_name.clone(),
        });
        self.seen.insert(key, Seen { event_name, count: 1, written_count: 1, last_ms: now_ms, written_ms: now_ms });
    }

    /// Ends quiet series (writing their final count) and refreshes long ones.
    fn sweep(&mut self, now_ms: i64, out: &mut Vec<ApiAction>) {
        if now_ms < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now_ms + SWEEP_EVERY_MS;
        self.seen.retain(|key, s| {
            let finished = now_ms - s.last_ms >= SERIES_FINISH_MS;
            let stale = now_ms - s.written_ms >= SERIES_REFRESH_MS;
            if s.count > s.written_count && (finished || stale) {
                s.written_count = s.count;
                s.written_ms = now_ms;
                out.push(ApiAction::EventSeries {
                    namespace: key.namespace.clone(),
                    event_name: s.event_name.clone(),
                    count: s.count,
                    last_observed_ms: s.last_ms,
                });
            }
            !finished
        });
    }
}

impl Controller {
    pub fn new(engine: Engine, metrics: Arc<Metrics>) -> Controller {
        Controller { engine, metrics, next_id: 0, in_flight: HashMap::new(), events: EventSeriesCache::default() }
    }

    /// Bindings waiting for their API result.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Runs one scheduling cycle (if a pod is ready) and returns what to do.
    /// `None`: nothing to schedule now.
    pub fn step(&mut self, now_ms: i64) -> Option<Vec<ApiAction>> {
        let start = Instant::now();
        let mut actions = Vec::new();
        self.events.sweep(now_ms, &mut actions);
        let mut outcomes = Vec::new();
        let (ready, rejected) = self.engine.take_permitted(now_ms);
        outcomes.extend(ready.into_iter().map(Outcome::Assigned));
        outcomes.extend(rejected.into_iter().map(|f| Outcome::Failed(Box::new(f))));
        if outcomes.is_empty() {
            match self.engine.schedule_one(now_ms) {
                Some(o) => outcomes.push(o),
                None if actions.is_empty() => {
                    self.metrics.set_queue(&self.engine.queue.counts());
                    return None;
                }
                None => {}
            }
        }
        for o in outcomes {
            match o {
                Outcome::Skipped(_) | Outcome::Waiting(_) => {}
                Outcome::Assigned(mut a) => {
                    // PreBind runs here, Bind is the API call (DefaultBinder's
                    // job), PostBind runs once the API accepted it.
                    let s = a.framework.run_pre_bind(&mut a.state, &a.queued.pod_info, &a.node);
                    if !s.is_success() {
                        self.fail_binding(*a, s, now_ms, start, &mut actions);
                        continue;
                    }
                    self.next_id += 1;
                    let pod = &a.queued.pod_info.pod;
                    actions.push(ApiAction::Bind {
                        id: self.next_id,
                        namespace: pod.namespace.clone(),
                        name: pod.name.clone(),
                        uid: pod.uid.clone(),
                        node: a.node.clone(),
                    });
                    self.in_flight.insert(self.next_id, (a, start));
                }
                Outcome::Failed(f) => self.report_failure(&f, start, now_ms, &mut actions),
            }
        }
        self.metrics.set_queue(&self.engine.queue.counts());
        Some(actions)
    }

    fn profile_of(&self, pod: &Pod) -> String {
        self.engine.profile_for(&pod.scheduler_name).map(|f| f.profile_name.clone()).unwrap_or_default()
    }

    fn report_failure(&mut self, f: &Failure, start: Instant, now_ms: i64, actions: &mut Vec<ApiAction>) {
        let pod = &f.pod.pod;
        let result = if f.reason == "SchedulerError" { "error" } else { "unschedulable" };
        self.metrics.observe_attempt(result, &self.profile_of(pod), start.elapsed().as_secs_f64());
        if let Some(node) = &f.nominated_node {
            self.metrics.preemption_attempts.inc();
            self.metrics.preemption_victims.observe(f.victims.len() as f64);
            // A victim already terminating needs no second deletion.
            for v in f.victims.iter().filter(|v| !v.pod.terminating) {
                actions.push(ApiAction::Evict {
                    namespace: v.pod.namespace.clone(),
                    name: v.pod.name.clone(),
                    uid: v.pod.uid.clone(),
                    preemptor_uid: pod.uid.clone(),
                    by: pod.scheduler_name.clone(),
                    node: node.clone(),
                });
                let note = format!("Preempted by pod {} on node {node}", pod.uid);
                self.events.record(&v.pod, pod, false, "Preempted", "Preempting", note, now_ms, actions);
            }
            for c in &f.cleared_nominations {
                actions.push(ApiAction::Nominate { namespace: c.pod.namespace.clone(), name: c.pod.name.clone(), node: None });
            }
        }
        self.events.record(pod, pod, true, "FailedScheduling", "Scheduling", f.message.clone(), now_ms, actions);
        // As upstream's updatePod: no write when neither the condition nor
        // the nomination would change.
        let condition_changes = pod.unschedulable_condition.as_ref().is_none_or(|(r, m)| r != f.reason || *m != f.message);
        let nomination_changes = f.nominated_node.is_some() && f.nominated_node != pod.nominated_node_name;
        if condition_changes || nomination_changes {
            actions.push(ApiAction::MarkUnschedulable {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                reason: f.reason.into(),
                message: f.message.clone(),
                nominated_node: f.nominated_node.clone(),
            });
        }
    }

    fn fail_binding(&mut self, a: Assignment, s: Status, now_ms: i64, start: Instant, actions: &mut Vec<ApiAction>) {
        if let Some(f) = self.engine.binding_done(a, s, now_ms) {
            self.report_failure(&f, start, now_ms, actions);
        }
    }

    /// The API's answer to a `Bind` action.
    pub fn binding_result(&mut self, id: u64, result: Result<(), String>, now_ms: i64) -> Vec<ApiAction> {
        let mut actions = Vec::new();
        let Some((a, start)) = self.in_flight.remove(&id) else { return actions };
        match result {
            Ok(()) => {
                let pod = a.queued.pod_info.pod.clone();
                let node = a.node.clone();
                let attempts = a.queued.attempts;
                let since_queued_ms = (now_ms - a.queued.initial_attempt_timestamp).max(0);
                let profile = a.framework.profile_name.clone();
                a.framework.run_post_bind(&a.state, &a.queued.pod_info, &node);
                let _ = self.engine.binding_done(*a, Status::success(), now_ms);
                // The pod's watch event confirms it later; until then it stays assumed.
                self.metrics.observe_attempt("scheduled", &profile, start.elapsed().as_secs_f64());
                self.metrics.observe_scheduled(attempts, since_queued_ms as f64 / 1000.0);
                let note = format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name);
                self.events.record(&pod, &pod, false, "Scheduled", "Binding", note, now_ms, &mut actions);
            }
            Err(e) => self.fail_binding(*a, Status::error(format!("binding rejected: {e}")), now_ms, start, &mut actions),
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::config::KubeSchedulerConfiguration;
    use berth_core::engine::EngineConfig;
    use berth_core::testing::{make_node, make_pod};

    fn controller() -> Controller {
        let cfg = KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({"profiles": [{"schedulerName": "berth"}]})).unwrap();
        let engine = Engine::new(cfg.build_frameworks().unwrap(), EngineConfig::default());
        Controller::new(engine, Arc::new(Metrics::new()))
    }

    #[test]
    fn binds_then_reports_scheduled() {
        let mut c = controller();
        c.engine.add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
        c.engine.add_pod(make_pod("web").uid("u1").scheduler_name("berth").req(100, 0).obj(), 0);
        // Not ours: left alone.
        c.engine.add_pod(make_pod("other").scheduler_name("default-scheduler").obj(), 0);
        let actions = c.step(0).unwrap();
        let ApiAction::Bind { id, node, .. } = &actions[0] else { panic!("{actions:?}") };
        assert_eq!(node, "n1");
        assert_eq!(c.in_flight(), 1);
        let after = c.binding_result(*id, Ok(()), 5);
        assert!(matches!(&after[0], ApiAction::Event { reason, note, warning: false, .. }
            if reason == "Scheduled" && note == "Successfully assigned default/web to n1"));
        assert!(c.step(10).is_none(), "the other scheduler's pod is not ours");
    }

    #[test]
    fn failed_binding_is_retried() {
        let mut c = controller();
        c.engine.add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
        c.engine.add_pod(make_pod("web").scheduler_name("berth").req(100, 0).obj(), 0);
        let actions = c.step(0).unwrap();
        let ApiAction::Bind { id, .. } = &actions[0] else { panic!() };
        let after = c.binding_result(*id, Err("conflict".into()), 1);
        assert!(after.iter().any(|a| matches!(a, ApiAction::MarkUnschedulable { reason, .. } if reason == "SchedulerError")));
        // Forgotten: the node's room is free again, and the pod is back in the queue.
        c.engine.cache.update_snapshot(&mut c.engine.snapshot);
        assert_eq!(c.engine.snapshot.get("n1").unwrap().requested.milli_cpu, 0);
        assert!(c.engine.queue.location("default/web").is_some());
    }

    #[test]
    fn unschedulable_and_preemption_actions() {
        let mut c = controller();
        c.engine.add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
        c.engine.add_pod(make_pod("low").uid("ulow").priority(1).req(900, 0).node("n1").obj(), 0);
        c.engine.add_pod(make_pod("high").uid("uhigh").scheduler_name("berth").priority(100).req(500, 0).obj(), 0);
        let actions = c.step(0).unwrap();
        assert!(actions.contains(&ApiAction::Evict {
            namespace: "default".into(),
            name: "low".into(),
            uid: "ulow".into(),
            preemptor_uid: "uhigh".into(),
            by: "berth".into(),
            node: "n1".into()
        }));
        assert!(actions.iter().any(|a| matches!(a, ApiAction::Event { reason, note, warning: true, .. }
            if reason == "FailedScheduling" && note == "0/1 nodes are available: 1 Insufficient cpu.")));
        assert!(actions.iter().any(|a| matches!(a, ApiAction::MarkUnschedulable { reason, nominated_node: Some(n), .. }
            if reason == "Unschedulable" && n == "n1")));
        let metrics = c.metrics.render();
        assert!(metrics.contains("scheduler_preemption_attempts_total 1"), "{metrics}");
    }

    #[test]
    fn repeated_failures_write_nothing_new() {
        let mut c = controller();
        c.engine.add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
        let big = make_pod("big").uid("ubig").scheduler_name("berth").req(5000, 0).obj();
        c.engine.add_pod(big.clone(), 0);
        let first = c.step(0).unwrap();
        let created = first.iter().find_map(|a| match a {
            ApiAction::Event { event_name, reason, .. } if reason == "FailedScheduling" => Some(event_name.clone()),
            _ => None,
        });
        let created = created.expect("the first failure creates an event");
        let Some(ApiAction::MarkUnschedulable { message, .. }) = first.iter().find(|a| matches!(a, ApiAction::MarkUnschedulable { .. }))
        else {
            panic!("{first:?}")
        };
        // The watch brings our status write back.
        let mut written = big.clone();
        written.unschedulable_condition = Some(("Unschedulable".into(), message.clone()));
        c.engine.update_pod(Some(&big), written, 10);
        // The next attempts (after the 5-minute flush) change nothing: no
        // status write; the event becomes a series once, then only counts.
        c.engine.queue.flush(301_000);
        let second = c.step(301_000).unwrap();
        assert_eq!(
            second,
            vec![ApiAction::EventSeries { namespace: "default".into(), event_name: created.clone(), count: 2, last_observed_ms: 301_000 }]
        );
        c.engine.queue.flush(602_000);
        assert_eq!(c.step(602_000).unwrap(), vec![], "a third failure is only counted");
        // Six quiet minutes end the series with its final count.
        let later = 602_000 + SERIES_FINISH_MS;
        let swept = c.step(later).unwrap_or_default();
        assert!(
            swept.contains(&ApiAction::EventSeries {
                namespace: "default".into(),
                event_name: created,
                count: 3,
                last_observed_ms: 602_000
            }),
            "{swept:?}"
        );
        // The pod's own retry at that moment starts a new event.
        assert!(matches!(swept.last(), Some(ApiAction::Event { reason, .. }) if reason == "FailedScheduling"), "{swept:?}");
        assert_eq!(c.events.seen.len(), 1);
    }
}
