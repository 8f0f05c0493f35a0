use std::sync::Mutex;

use super::*;
use crate::cache::NodeInfo;
use crate::config::KubeSchedulerConfiguration;
use crate::engine::EngineConfig;
use crate::framework::{CycleState, Plugin, PluginArgs, PluginHost, Registry};
use crate::testing::{make_node, make_pod};

fn driver_with(yaml: serde_json::Value, registry: &Registry) -> Driver {
    let cfg = KubeSchedulerConfiguration::from_yaml_value(yaml).unwrap();
    let engine = Engine::new(cfg.build_frameworks_with(registry, &PluginHost::default()).unwrap(), EngineConfig::default());
    Driver::new(engine, Arc::new(Unobserved))
}

fn driver() -> Driver {
    driver_with(serde_json::json!({"profiles": [{"schedulerName": "berth"}]}), &Registry::builtin())
}

/// Binds by remembering where it bound, or refuses.
#[derive(Default)]
struct Recorder {
    bound: Mutex<Vec<(String, String)>>,
    refuse: bool,
}

impl Binder for Recorder {
    fn bind(&self, pod: &Pod, node: &str) -> Result<(), String> {
        self.bound.lock().unwrap().push((pod.key(), node.to_string()));
        if self.refuse {
            Err("conflict".into())
        } else {
            Ok(())
        }
    }
}

fn only_binding(effects: Vec<Effect>) -> Binding {
    let mut bindings: Vec<Binding> = effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Bind(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(bindings.len(), 1);
    bindings.remove(0)
}

fn events(effects: &[Effect]) -> Vec<(&str, &str)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(r) => Some((r.reason.as_str(), r.note.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn binds_then_reports_scheduled() {
    let mut d = driver();
    d.engine_mut().add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
    d.engine_mut().add_pod(make_pod("web").uid("u1").scheduler_name("berth").req(100, 0).obj(), 0);
    // Not ours: left alone.
    d.engine_mut().add_pod(make_pod("other").scheduler_name("default-scheduler").obj(), 0);
    let mut b = only_binding(d.step(0).unwrap());
    assert_eq!(b.node(), "n1");
    assert!(b.only_default_binder(), "the default profile's binding cycle is DefaultBinder alone");
    let binder = Recorder::default();
    let status = b.run(&binder);
    assert!(status.is_success());
    assert_eq!(binder.bound.lock().unwrap().as_slice(), [("default/web".to_string(), "n1".to_string())]);
    let after = d.binding_finished(b, status, 5);
    assert_eq!(events(&after), vec![("Scheduled", "Successfully assigned default/web to n1")]);
    assert!(matches!(after.last(), Some(Effect::Bound { node, attempts: 1, .. }) if node == "n1"));
    assert!(d.step(10).is_none(), "the other scheduler's pod is not ours");
}

#[test]
fn a_refused_binding_frees_the_node_and_requeues() {
    let mut d = driver();
    d.engine_mut().add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
    d.engine_mut().add_pod(make_pod("web").scheduler_name("berth").req(100, 0).obj(), 0);
    let mut b = only_binding(d.step(0).unwrap());
    let status = b.run(&Recorder { refuse: true, ..Default::default() });
    // The answer of a call made before the cycle ran (the live fast path)
    // reads as the call made in it.
    assert_eq!(b.run(&Answered(Err("conflict".into()))), status);
    let after = d.binding_finished(b, status, 1);
    assert!(after.iter().any(|e| matches!(e, Effect::Unschedulable { reason: "SchedulerError", message, write_status: true, .. }
        if message == "running Bind plugin \"DefaultBinder\": conflict")));
    let e = d.engine_mut();
    e.cache.update_snapshot(Arc::make_mut(&mut e.snapshot));
    assert_eq!(e.snapshot.get("n1").unwrap().requested.milli_cpu, 0);
    assert!(e.queue.location("default/web").is_some());
}

#[test]
fn preemption_evicts_and_nominates() {
    let mut d = driver();
    d.engine_mut().add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
    d.engine_mut().add_pod(make_pod("low").uid("ulow").priority(1).req(900, 0).node("n1").obj(), 0);
    d.engine_mut().add_pod(make_pod("high").uid("uhigh").scheduler_name("berth").priority(100).req(500, 0).obj(), 0);
    let effects = d.step(0).unwrap();
    assert!(effects.iter().any(|e| matches!(e, Effect::Evict { victim, preemptor, node }
        if victim.pod.name == "low" && preemptor.pod.name == "high" && node == "n1")));
    assert_eq!(
        events(&effects),
        vec![
            ("Preempted", "Preempted by pod uhigh on node n1"),
            (
                "FailedScheduling",
                "0/1 nodes are available: 1 Insufficient cpu. preemption: found a potential placement for pod on node n1, preempting 1 victims"
            )
        ]
    );
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Unschedulable { reason: "Unschedulable", nominated_node: Some(n), .. } if n == "n1")));
}

#[test]
fn an_unchanged_failure_writes_no_status() {
    let mut d = driver();
    d.engine_mut().add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
    let big = make_pod("big").scheduler_name("berth").req(5000, 0).obj();
    d.engine_mut().add_pod(big.clone(), 0);
    let first = d.step(0).unwrap();
    let Some(Effect::Unschedulable { message, write_status: true, .. }) = first.last() else { panic!("a status write") };
    // The watch brings the write back; the next attempt changes nothing.
    let mut written = big.clone();
    written.unschedulable_condition = Some(("Unschedulable".into(), message.clone()));
    d.engine_mut().update_pod(Some(&big), written, 10);
    d.engine_mut().queue.flush(301_000);
    let second = d.step(301_000).unwrap();
    assert!(matches!(second.last(), Some(Effect::Unschedulable { write_status: false, .. })));
}

/// Fails when asked about nodes whose name ends in "boom", by panicking.
struct Fragile;

#[crate::plugin]
impl Plugin for Fragile {
    fn name(&self) -> &'static str {
        "Fragile"
    }
    fn filter(&self, _s: &CycleState, pod: &PodInfo, _node: &NodeInfo) -> Status {
        if pod.pod.name.ends_with("boom") {
            panic!("cannot handle {}", pod.pod.name);
        }
        Status::success()
    }
}

#[test]
fn a_panicking_plugin_fails_the_attempt_and_scheduling_goes_on() {
    let mut reg = Registry::builtin();
    reg.register("Fragile", |_: &PluginArgs, _: &_| Ok(Fragile)).unwrap();
    let cfg = serde_json::json!({"profiles": [{"schedulerName": "berth", "plugins": {"multiPoint": {"enabled": [{"name": "Fragile"}]}}}]});
    let mut d = driver_with(cfg, &reg);
    d.engine_mut().add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
    d.engine_mut().add_pod(make_pod("a-boom").scheduler_name("berth").creation(1).obj(), 0);
    d.engine_mut().add_pod(make_pod("b-fine").scheduler_name("berth").creation(2).obj(), 0);
    let first = d.step(0).unwrap();
    assert!(
        first.iter().any(|e| matches!(e, Effect::Unschedulable { pod, reason: "SchedulerError", message, .. }
            if pod.pod.name == "a-boom" && message == "plugin \"Fragile\" panicked at Filter: cannot handle a-boom")),
        "{:?}",
        events(&first)
    );
    let b = only_binding(d.step(1).unwrap());
    assert_eq!(b.pod().pod.name, "b-fine");
}

/// A Bind plugin that records where it bound, and a PreBind plugin that
/// records that it ran first (or refuses pods labelled `refuse`).
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

struct Stamp(Arc<Log>);
struct OwnBinder(Arc<Log>);

#[crate::plugin]
impl Plugin for Stamp {
    fn name(&self) -> &'static str {
        "Stamp"
    }
    fn pre_bind(&self, _s: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        if pod.pod.labels.contains_key("refuse") {
            return Status::unschedulable("stamp refused");
        }
        self.0 .0.lock().unwrap().push(format!("prebind {} {node}", pod.pod.name));
        Status::success()
    }
}

#[crate::plugin]
impl Plugin for OwnBinder {
    fn name(&self) -> &'static str {
        "OwnBinder"
    }
    fn bind(&self, _s: &mut CycleState, pod: &PodInfo, node: &str, _b: &dyn Binder) -> Status {
        self.0 .0.lock().unwrap().push(format!("bind {} {node}", pod.pod.name));
        Status::success()
    }
}

#[test]
fn a_custom_bind_plugin_replaces_the_default_binder_after_pre_bind() {
    let log = Arc::new(Log::default());
    let mut reg = Registry::builtin();
    let (l1, l2) = (log.clone(), log.clone());
    reg.register("Stamp", move |_: &PluginArgs, _: &_| Ok(Stamp(l1.clone()))).unwrap();
    reg.register("OwnBinder", move |_: &PluginArgs, _: &_| Ok(OwnBinder(l2.clone()))).unwrap();
    let cfg = serde_json::json!({"profiles": [{"schedulerName": "berth", "plugins": {
        "preBind": {"enabled": [{"name": "Stamp"}]},
        "bind": {"enabled": [{"name": "OwnBinder"}], "disabled": [{"name": "*"}]}}}]});
    let mut d = driver_with(cfg, &reg);
    d.engine_mut().add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj(), 0);
    d.engine_mut().add_pod(make_pod("p").scheduler_name("berth").obj(), 0);
    let mut b = only_binding(d.step(0).unwrap());
    assert!(!b.only_default_binder());
    let runtime_binder = Recorder::default();
    let status = b.run(&runtime_binder);
    assert!(status.is_success(), "{status:?}");
    assert!(runtime_binder.bound.lock().unwrap().is_empty(), "DefaultBinder is not in the profile");
    assert_eq!(*log.0.lock().unwrap(), vec!["prebind p n1".to_string(), "bind p n1".to_string()]);
    // A PreBind rejection unreserves and requeues with the plugin's message.
    d.engine_mut().add_pod(make_pod("q").scheduler_name("berth").label("refuse", "yes").obj(), 1);
    let mut b = only_binding(d.step(1).unwrap());
    let status = b.run(&runtime_binder);
    let after = d.binding_finished(b, status, 2);
    assert!(after
        .iter()
        .any(|e| matches!(e, Effect::Unschedulable { reason: "Unschedulable", message, .. } if message == "stamp refused")));
    assert!(d.engine().queue().location("default/q").is_some());
}

/// Records, at Permit, how many nodes the handle's snapshot shows.
struct SeesSnapshot {
    handle: crate::framework::Handle,
    seen: Arc<Mutex<Vec<usize>>>,
}

#[crate::plugin]
impl Plugin for SeesSnapshot {
    fn name(&self) -> &'static str {
        "SeesSnapshot"
    }
    fn permit(
        &self,
        _s: &mut CycleState,
        _pod: &PodInfo,
        _node: &str,
        _w: &mut crate::framework::WaitingPods,
    ) -> (Status, std::time::Duration) {
        self.seen.lock().unwrap().push(self.handle.snapshot().map_or(0, |s| s.num_nodes()));
        (Status::success(), std::time::Duration::ZERO)
    }
}

#[test]
fn the_handle_shows_the_cycles_snapshot() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut reg = Registry::builtin();
    let s = seen.clone();
    reg.register("SeesSnapshot", move |_: &PluginArgs, h: &crate::framework::Handle| {
        Ok(SeesSnapshot { handle: h.clone(), seen: s.clone() })
    })
    .unwrap();
    let cfg = serde_json::json!({"profiles": [{"schedulerName": "berth", "plugins": {"permit": {"enabled": [{"name": "SeesSnapshot"}]}}}]});
    let mut d = driver_with(cfg, &reg);
    for n in ["n1", "n2"] {
        d.engine_mut().add_node(make_node(n).capacity(1000, 1 << 30, 10).obj(), 0);
    }
    d.engine_mut().add_pod(make_pod("p").scheduler_name("berth").obj(), 0);
    only_binding(d.step(0).unwrap());
    d.engine_mut().add_node(make_node("n3").capacity(1000, 1 << 30, 10).obj(), 1);
    d.engine_mut().add_pod(make_pod("q").scheduler_name("berth").obj(), 1);
    only_binding(d.step(1).unwrap());
    assert_eq!(*seen.lock().unwrap(), vec![2, 3]);
}
