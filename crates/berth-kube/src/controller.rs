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
    /// An events.k8s.io/v1 Event about a pod, reported by profile `by`.
    Event { namespace: String, name: String, uid: String, by: String, warning: bool, reason: String, action: String, note: String },
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
}

/// An event about `pod`, reported by the profile of `by` (the pod scheduled,
/// or the preemptor for its victims), as each upstream profile has its recorder.
fn event(pod: &Pod, by: &Pod, warning: bool, reason: &str, action: &str, note: String) -> ApiAction {
    ApiAction::Event {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        by: by.scheduler_name.clone(),
        warning,
        reason: reason.into(),
        action: action.into(),
        note,
    }
}

impl Controller {
    pub fn new(engine: Engine, metrics: Arc<Metrics>) -> Controller {
        Controller { engine, metrics, next_id: 0, in_flight: HashMap::new() }
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
        let mut outcomes = Vec::new();
        let (ready, rejected) = self.engine.take_permitted(now_ms);
        outcomes.extend(ready.into_iter().map(Outcome::Assigned));
        outcomes.extend(rejected.into_iter().map(|f| Outcome::Failed(Box::new(f))));
        if outcomes.is_empty() {
            match self.engine.schedule_one(now_ms) {
                Some(o) => outcomes.push(o),
                None => {
                    self.metrics.set_queue(&self.engine.queue.counts());
                    return None;
                }
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
                Outcome::Failed(f) => self.report_failure(&f, start, &mut actions),
            }
        }
        self.metrics.set_queue(&self.engine.queue.counts());
        Some(actions)
    }

    fn profile_of(&self, pod: &Pod) -> String {
        self.engine.profile_for(&pod.scheduler_name).map(|f| f.profile_name.clone()).unwrap_or_default()
    }

    fn report_failure(&mut self, f: &Failure, start: Instant, actions: &mut Vec<ApiAction>) {
        let pod = &f.pod.pod;
        let result = if f.reason == "SchedulerError" { "error" } else { "unschedulable" };
        self.metrics.observe_attempt(result, &self.profile_of(pod), start.elapsed().as_secs_f64());
        if let Some(node) = &f.nominated_node {
            self.metrics.preemption_attempts.inc();
            self.metrics.preemption_victims.observe(f.victims.len() as f64);
            for v in &f.victims {
                actions.push(ApiAction::Evict {
                    namespace: v.pod.namespace.clone(),
                    name: v.pod.name.clone(),
                    uid: v.pod.uid.clone(),
                    preemptor_uid: pod.uid.clone(),
                    by: pod.scheduler_name.clone(),
                    node: node.clone(),
                });
                actions.push(event(&v.pod, pod, false, "Preempted", "Preempting", format!("Preempted by pod {} on node {node}", pod.uid)));
            }
            for c in &f.cleared_nominations {
                actions.push(ApiAction::Nominate { namespace: c.pod.namespace.clone(), name: c.pod.name.clone(), node: None });
            }
        }
        actions.push(event(pod, pod, true, "FailedScheduling", "Scheduling", f.message.clone()));
        actions.push(ApiAction::MarkUnschedulable {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            reason: f.reason.into(),
            message: f.message.clone(),
            nominated_node: f.nominated_node.clone(),
        });
    }

    fn fail_binding(&mut self, a: Assignment, s: Status, now_ms: i64, start: Instant, actions: &mut Vec<ApiAction>) {
        if let Some(f) = self.engine.binding_done(a, s, now_ms) {
            self.report_failure(&f, start, actions);
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
                actions.push(event(
                    &pod,
                    &pod,
                    false,
                    "Scheduled",
                    "Binding",
                    format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name),
                ));
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
}
