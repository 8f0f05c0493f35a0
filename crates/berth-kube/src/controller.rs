//! The live scheduler's side of the driver, without I/O: the driver's
//! effects become API calls (`ApiAction`s) and binding cycles to run, and
//! their results come back in. The network layer (watchers, binding
//! workers, events, status patches) only moves data between the API server
//! and this type, so the decisions, and the messages users read, are tested
//! with plain structs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_core::driver::{Binding, Driver, Effect};
use berth_core::engine::Engine;
use berth_core::framework::{EventRecord, Status};
use berth_core::why::{Subject, Why, WhyStore};

use crate::metrics::Metrics;

/// An API call the network layer should make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiAction {
    /// Create the events.k8s.io/v1 Event `event_name`.
    Event { record: EventRecord, event_name: String },
    /// The same event happened again: merge-patch its `series` (or, if the
    /// first event is not there, create it again from `record` with it).
    EventSeries { namespace: String, event_name: String, count: u32, last_observed_ms: i64, record: Box<EventRecord> },
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

/// What a step asks of the network layer.
#[derive(Default)]
pub struct Work {
    /// API calls, in order.
    pub actions: Vec<ApiAction>,
    /// Binding cycles to run off the scheduling thread; each comes back
    /// through `Controller::binding_finished`.
    pub bindings: Vec<Binding>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.bindings.is_empty()
    }
}

/// `PodScheduled=False`'s reason when scheduling failed for another cause than a verdict.
const REASON_SCHEDULER_ERROR: &str = "SchedulerError";

/// A pending pod Berth could not read: see [`Controller::unreadable_pod`].
#[derive(Clone, Debug)]
pub struct UnreadablePod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// The profile it asks for.
    pub scheduler_name: String,
    /// Why it cannot be read (names the field).
    pub error: berth_convert::ConvertError,
    /// Its `PodScheduled=False` condition (reason, message), if it has one.
    pub condition: Option<(String, String)>,
}

pub struct Controller {
    driver: Driver,
    events: EventSeriesCache,
    /// Why each pending pod is pending, and where the last scheduled ones
    /// went and why (served at `/debug/berth/why/...`).
    why: Arc<Mutex<WhyStore>>,
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

/// An event, compared and hashed as upstream's isomorphic-event key: the
/// regarding object's UID, namespace and name, the reporting controller,
/// the reason, the action and the note. It keeps the whole event, should
/// it have to be created again.
struct EventKey(EventRecord);

impl EventKey {
    fn parts(&self) -> (&str, &str, &str, &str, &str, &str, &str) {
        let r = &self.0;
        (&r.regarding.uid, &r.regarding.namespace, &r.regarding.name, &r.reporting_controller, &r.reason, &r.action, &r.note)
    }
}

impl PartialEq for EventKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for EventKey {}

impl std::hash::Hash for EventKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state)
    }
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
    /// An event to write; pushes the API call it needs, if any.
    fn record(&mut self, record: EventRecord, now_ms: i64, out: &mut Vec<ApiAction>) {
        let key = EventKey(record);
        if let Some(s) = self.seen.get_mut(&key) {
            s.count += 1;
            s.last_ms = now_ms;
            if s.count == 2 {
                s.written_count = 2;
                s.written_ms = now_ms;
                out.push(ApiAction::EventSeries {
                    namespace: event_namespace(&key.0.regarding.namespace),
                    event_name: s.event_name.clone(),
                    count: 2,
                    last_observed_ms: now_ms,
                    record: Box::new(key.0),
                });
            }
            return;
        }
        // Upstream names events `<object>.<unix nanos in hex>`; the sequence
        // keeps names unique within one millisecond.
        self.seq += 1;
        let event_name = format!("{}.{:x}", key.0.regarding.name, now_ms.max(0) as u64 * 1_000_000 + self.seq % 1_000_000);
        out.push(ApiAction::Event { record: key.0.clone(), event_name: event_name.clone() });
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
                    namespace: event_namespace(&key.0.regarding.namespace),
                    event_name: s.event_name.clone(),
                    count: s.count,
                    last_observed_ms: s.last_ms,
                    record: Box::new(key.0.clone()),
                });
            }
            !finished
        });
    }
}

/// Events about cluster-scoped objects go to `default`, as client-go puts them.
pub fn event_namespace(regarding_namespace: &str) -> String {
    if regarding_namespace.is_empty() {
        "default".to_string()
    } else {
        regarding_namespace.to_string()
    }
}

impl Controller {
    pub fn new(engine: Engine, metrics: Arc<Metrics>) -> Controller {
        Controller::with_why(engine, metrics, Arc::default())
    }

    /// A controller keeping its diagnosis records in `why`.
    pub fn with_why(engine: Engine, metrics: Arc<Metrics>, why: Arc<Mutex<WhyStore>>) -> Controller {
        Controller { driver: Driver::new(engine, metrics), events: EventSeriesCache::default(), why }
    }

    /// The diagnosis records, shared with the HTTP endpoints.
    pub fn why(&self) -> Arc<Mutex<WhyStore>> {
        self.why.clone()
    }

    /// A pod was deleted: the engine forgets it, and so does the diagnosis.
    pub fn delete_pod(&mut self, pod: &berth_core::model::Pod, now_ms: i64) {
        self.driver.engine_mut().delete_pod(pod, now_ms);
        self.why.lock().unwrap_or_else(|e| e.into_inner()).forget(&pod.key());
    }

    pub fn engine(&self) -> &Engine {
        self.driver.engine()
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        self.driver.engine_mut()
    }

    /// Runs one driver step (if a pod is ready) and returns what to do.
    /// `None`: nothing to do now.
    pub fn step(&mut self, now_ms: i64) -> Option<Work> {
        let mut work = Work::default();
        self.events.sweep(now_ms, &mut work.actions);
        match self.driver.step(now_ms) {
            Some(effects) => self.apply(effects, now_ms, &mut work),
            None if work.is_empty() => return None,
            None => {}
        }
        Some(work)
    }

    /// A binding cycle's result.
    pub fn binding_finished(&mut self, binding: Binding, status: Status, now_ms: i64) -> Work {
        let mut work = Work::default();
        let effects = self.driver.binding_finished(binding, status, now_ms);
        self.apply(effects, now_ms, &mut work);
        work
    }

    /// A pending pod of a profile of ours that Berth cannot read (a value
    /// it does not know in its spec): it is never placed, and says why as a
    /// pod that fits nowhere does, with a FailedScheduling event and
    /// `PodScheduled=False` (reason `SchedulerError`), the condition
    /// written only when it says something else already.
    pub fn unreadable_pod(&mut self, pod: &UnreadablePod, now_ms: i64) -> Vec<ApiAction> {
        let mut out = Vec::new();
        let note = format!("Berth cannot read the pod: {}", pod.error);
        let record = EventRecord {
            regarding: berth_core::framework::ObjectRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                uid: pod.uid.clone(),
            },
            reporting_controller: pod.scheduler_name.clone(),
            event_type: berth_core::framework::EventType::Warning,
            reason: "FailedScheduling".into(),
            action: "Scheduling".into(),
            note: note.clone(),
        };
        self.events.record(record, now_ms, &mut out);
        if pod.condition.as_ref().is_none_or(|(reason, message)| reason != REASON_SCHEDULER_ERROR || *message != note) {
            out.push(ApiAction::MarkUnschedulable {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                reason: REASON_SCHEDULER_ERROR.into(),
                message: note,
                nominated_node: None,
            });
        }
        out
    }

    /// An event a plugin recorded (`Handle::record_event`).
    pub fn plugin_event(&mut self, record: EventRecord, now_ms: i64) -> Vec<ApiAction> {
        let mut out = Vec::new();
        self.events.record(record, now_ms, &mut out);
        out
    }

    fn apply(&mut self, effects: Vec<Effect>, now_ms: i64, work: &mut Work) {
        // Preemption's victims come before their preemptor's Unschedulable.
        let mut victims: HashMap<String, Vec<String>> = HashMap::new();
        for e in effects {
            match e {
                Effect::Bind(b) => {
                    // Recorded now, on the snapshot the choice was made on.
                    let (pod, attempts) = (b.pod().clone(), b.attempts());
                    let key = pod.key();
                    let s = Subject { pod: &key, uid: &pod.pod.uid, profile: &pod.pod.scheduler_name, attempts, at_ms: now_ms };
                    let why = Why::scheduled(&s, self.driver.engine().snapshot(), b.result());
                    self.why.lock().unwrap_or_else(|e| e.into_inner()).record(why);
                    work.bindings.push(b)
                }
                // The pod's watch event confirms the binding.
                Effect::Bound { .. } => {}
                Effect::Unschedulable { pod, reason, message, nominated_node, write_status, attempts, fit } => {
                    let key = pod.key();
                    let s = Subject { pod: &key, uid: &pod.pod.uid, profile: &pod.pod.scheduler_name, attempts, at_ms: now_ms };
                    let v = victims.remove(&key).unwrap_or_default();
                    let why = Why::pending(&s, self.driver.engine().snapshot(), fit.as_deref(), &message, nominated_node.as_deref(), v);
                    self.why.lock().unwrap_or_else(|e| e.into_inner()).record(why);
                    if write_status {
                        work.actions.push(ApiAction::MarkUnschedulable {
                            namespace: pod.pod.namespace.clone(),
                            name: pod.pod.name.clone(),
                            reason: reason.into(),
                            message,
                            nominated_node,
                        });
                    }
                }
                Effect::Evict { victim, preemptor, node } => {
                    victims.entry(preemptor.key()).or_default().push(victim.key());
                    work.actions.push(ApiAction::Evict {
                        namespace: victim.pod.namespace.clone(),
                        name: victim.pod.name.clone(),
                        uid: victim.pod.uid.clone(),
                        preemptor_uid: preemptor.pod.uid.clone(),
                        by: preemptor.pod.scheduler_name.clone(),
                        node,
                    })
                }
                Effect::ClearNomination { pod } => {
                    work.actions.push(ApiAction::Nominate { namespace: pod.pod.namespace.clone(), name: pod.pod.name.clone(), node: None })
                }
                Effect::Event(record) => self.events.record(record, now_ms, &mut work.actions),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::config::KubeSchedulerConfiguration;
    use berth_core::engine::EngineConfig;
    use berth_core::framework::Binder;
    use berth_core::model::Pod;
    use berth_core::testing::{make_node, make_pod};

    fn controller() -> (Controller, Arc<Metrics>) {
        let cfg = KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({"profiles": [{"schedulerName": "berth"}]})).unwrap();
        let engine = Engine::new(cfg.build_frameworks().unwrap(), EngineConfig::default());
        let metrics = Arc::new(Metrics::new());
        (Controller::new(engine, metrics.clone()), metrics)
    }

    struct Accept;
    impl Binder for Accept {
        fn bind(&self, _pod: &Pod, _node: &str) -> Result<(), String> {
            Ok(())
        }
    }

    fn reason_note(a: &ApiAction) -> Option<(&str, &str, bool)> {
        match a {
            ApiAction::Event { record, .. } => {
                Some((record.reason.as_str(), record.note.as_str(), record.event_type == berth_core::framework::EventType::Warning))
            }
            _ => None,
        }
    }

    #[test]
    fn a_pod_berth_cannot_read_gets_failed_scheduling_and_its_condition_once() {
        let (mut c, _) = controller();
        let error = berth_convert::ConvertError {
            object: "Pod default/p".into(),
            field: "spec.tolerations[0].operator".into(),
            message: "unsupported value \"Gt\"".into(),
        };
        let mut pod = UnreadablePod {
            namespace: "default".into(),
            name: "p".into(),
            uid: "u".into(),
            scheduler_name: "berth".into(),
            error,
            condition: None,
        };
        let note = "Berth cannot read the pod: Pod default/p: spec.tolerations[0].operator: unsupported value \"Gt\"";
        let actions = c.unreadable_pod(&pod, 0);
        assert!(actions.iter().filter_map(reason_note).any(|e| e == ("FailedScheduling", note, true)), "{actions:?}");
        let marked = |actions: &[ApiAction]| {
            actions
                .iter()
                .any(|a| matches!(a, ApiAction::MarkUnschedulable { reason, message, .. } if reason == "SchedulerError" && message == note))
        };
        assert!(marked(&actions));
        // Once the condition says so, an update of the pod writes no status again.
        pod.condition = Some(("SchedulerError".into(), note.into()));
        assert!(!marked(&c.unreadable_pod(&pod, 1)));
    }

    #[test]
    fn binds_then_reports_scheduled() {
        let (mut c, metrics) = controller();
        c.engine_mut().add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
        c.engine_mut().add_pod(make_pod("web").uid("u1").scheduler_name("berth").req(100, 0).obj(), 0);
        let mut work = c.step(0).unwrap();
        assert!(work.actions.is_empty());
        let mut b = work.bindings.pop().expect("a binding cycle to run");
        assert_eq!(b.node(), "n1");
        let status = b.run(&Accept);
        let after = c.binding_finished(b, status, 5);
        assert_eq!(
            after.actions.iter().filter_map(reason_note).collect::<Vec<_>>(),
            vec![("Scheduled", "Successfully assigned default/web to n1", false)]
        );
        assert!(metrics.render().contains(r#"scheduler_schedule_attempts_total{result="scheduled",profile="berth"} 1"#));
    }

    #[test]
    fn unschedulable_and_preemption_actions() {
        let (mut c, metrics) = controller();
        c.engine_mut().add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
        c.engine_mut().add_pod(make_pod("low").uid("ulow").priority(1).req(900, 0).node("n1").obj(), 0);
        c.engine_mut().add_pod(make_pod("high").uid("uhigh").scheduler_name("berth").priority(100).req(500, 0).obj(), 0);
        let actions = c.step(0).unwrap().actions;
        assert!(actions.contains(&ApiAction::Evict {
            namespace: "default".into(),
            name: "low".into(),
            uid: "ulow".into(),
            preemptor_uid: "uhigh".into(),
            by: "berth".into(),
            node: "n1".into()
        }));
        assert!(actions.iter().filter_map(reason_note).any(|e| e == (
            "FailedScheduling",
            "0/1 nodes are available: 1 Insufficient cpu. preemption: found a potential placement for pod on node n1, preempting 1 victims",
            true
        )));
        assert!(actions.iter().any(|a| matches!(a, ApiAction::MarkUnschedulable { reason, nominated_node: Some(n), .. }
            if reason == "Unschedulable" && n == "n1")));
        assert!(metrics.render().contains("scheduler_preemption_attempts_total 1"));
    }

    #[test]
    fn repeated_failures_write_nothing_new() {
        let (mut c, _) = controller();
        c.engine_mut().add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
        let big = make_pod("big").uid("ubig").scheduler_name("berth").req(5000, 0).obj();
        c.engine_mut().add_pod(big.clone(), 0);
        let first = c.step(0).unwrap().actions;
        let created = first.iter().find_map(|a| match a {
            ApiAction::Event { event_name, record } if record.reason == "FailedScheduling" => Some(event_name.clone()),
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
        c.engine_mut().update_pod(Some(&big), written, 10);
        // The next attempts (after the 5-minute flush) change nothing: no
        // status write; the event becomes a series once, then only counts.
        let second = c.step(301_000).unwrap().actions;
        assert!(
            matches!(&second[..], [ApiAction::EventSeries { namespace, event_name, count: 2, last_observed_ms: 301_000, record }]
                if namespace == "default" && *event_name == created && record.reason == "FailedScheduling"),
            "{second:?}"
        );
        assert_eq!(c.step(602_000).unwrap().actions, vec![], "a third failure is only counted");
        // Six quiet minutes end the series with its final count.
        let later = 602_000 + SERIES_FINISH_MS;
        let swept = c.step(later).map(|w| w.actions).unwrap_or_default();
        assert!(
            swept.iter().any(|a| matches!(a, ApiAction::EventSeries { event_name, count: 3, last_observed_ms: 602_000, .. }
                if *event_name == created)),
            "{swept:?}"
        );
        // The pod's own retry at that moment starts a new event.
        assert!(matches!(swept.last(), Some(ApiAction::Event { record, .. }) if record.reason == "FailedScheduling"), "{swept:?}");
        assert_eq!(c.events.seen.len(), 1);
    }

    #[test]
    fn events_about_cluster_scoped_objects_go_to_default() {
        let (mut c, _) = controller();
        let record = EventRecord {
            regarding: berth_core::framework::ObjectRef {
                api_version: "example.berth.dev/v1".into(),
                kind: "Team".into(),
                namespace: String::new(),
                name: "blue".into(),
                uid: String::new(),
            },
            reporting_controller: "berth".into(),
            event_type: berth_core::framework::EventType::Normal,
            reason: "Checked".into(),
            action: "Scheduling".into(),
            note: "n".into(),
        };
        let out = c.plugin_event(record.clone(), 0);
        assert!(matches!(&out[..], [ApiAction::Event { event_name, .. }] if event_name.starts_with("blue.")));
        let ApiAction::Event { event_name: first, .. } = &out[0] else { unreachable!() };
        assert_eq!(
            c.plugin_event(record.clone(), 1),
            vec![ApiAction::EventSeries {
                namespace: "default".into(),
                event_name: first.clone(),
                count: 2,
                last_observed_ms: 1,
                record: Box::new(record)
            }]
        );
    }
}
