use std::time::Duration;

use super::*;
use crate::testing::{make_node, make_pod};

/// A tiny gang plugin: pods labelled `gang` wait at Permit until `size` of
/// them are waiting, then the last one allows them all.
struct Gang {
    size: usize,
}

#[crate::plugin]
impl Plugin for Gang {
    fn name(&self) -> &'static str {
        "Gang"
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
    e.cache.update_snapshot(Arc::make_mut(&mut e.snapshot));
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
fn a_pod_whose_nomination_a_higher_preemptor_takes_is_retried_and_preempts_elsewhere() {
    use crate::queue::Location;
    let mut e = engine(1);
    // Two low pods fill n1: 2000m each of 4000m.
    for (name, started) in [("low-a", 1), ("low-b", 2)] {
        e.add_pod(make_pod(name).priority(1).req(2000, 0).node("n1").start(started).obj(), 0);
    }
    // The medium pod preempts the later-started low pod and waits for it.
    e.add_pod(make_pod("medium").priority(50).req(2000, 0).obj(), 0);
    let Some(Outcome::Failed(f)) = e.schedule_one(0) else { panic!("medium preempts") };
    assert_eq!(f.victims.iter().map(|v| v.pod.name.as_str()).collect::<Vec<_>>(), ["low-b"]);
    e.eviction_done("default/low-b", 0);
    e.queue.flush(400_000);
    let Some(Outcome::Failed(f)) = e.schedule_one(400_000) else { panic!("medium waits") };
    assert!(f.message.contains("not eligible due to a terminating pod on the nominated node"), "{}", f.message);
    assert_eq!(e.queue.location("default/medium"), Some(Location::Unschedulable));
    // A high pod takes n1 with the same victim, and clears medium's nomination.
    e.add_pod(make_pod("high").priority(100).req(2000, 0).obj(), 400_000);
    let Some(Outcome::Failed(f)) = e.schedule_one(400_000) else { panic!("high preempts") };
    assert_eq!(f.nominated_node.as_deref(), Some("n1"));
    assert_eq!(f.cleared_nominations.iter().map(|p| p.pod.name.as_str()).collect::<Vec<_>>(), ["medium"]);
    // Medium is retried at once, without its nomination, and so may preempt
    // again: it picks the low pod nobody chose yet, rather than waiting a
    // whole grace period for low-b to go.
    assert_ne!(e.queue.location("default/medium"), Some(Location::Unschedulable));
    e.queue.flush(800_000);
    let f = std::iter::from_fn(|| e.schedule_one(800_000))
        .find_map(|o| match o {
            Outcome::Failed(f) if f.pod.pod.name == "medium" => Some(f),
            _ => None,
        })
        .expect("medium is tried again");
    assert!(f.pod.pod.nominated_node_name.is_none());
    assert!(f.victims.iter().any(|v| v.pod.name == "low-a"), "{:?} {}", f.victims, f.message);
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
    e.cache.update_snapshot(Arc::make_mut(&mut e.snapshot));
    assert_eq!(e.snapshot.get("n1").unwrap().requested.milli_cpu, 0, "forgotten");
    assert!(e.queue.location("default/lonely").is_some(), "requeued");
}

/// Rejects every node whose name starts with `n`, and names no events.
struct NoNNodes;

#[crate::plugin]
impl Plugin for NoNNodes {
    fn name(&self) -> &'static str {
        "NoNNodes"
    }
    fn filter(&self, _s: &CycleState, _pod: &PodInfo, node: &crate::cache::NodeInfo) -> Status {
        if node.name().starts_with('n') {
            Status::unschedulable("node(s) start with n")
        } else {
            Status::success()
        }
    }
}

#[test]
fn a_plugin_that_names_no_events_is_retried_on_any() {
    use crate::queue::Location;
    let cfg = crate::config::KubeSchedulerConfiguration::default();
    let mut fwk = cfg.build_frameworks().unwrap().remove(0);
    fwk.filter.push(Arc::new(NoNNodes));
    let mut e = Engine::new(vec![fwk], EngineConfig { adopt_all_pods: true, ..Default::default() });
    e.add_node(make_node("n1").capacity(4000, 8 << 30, 110).obj(), 0);
    e.add_pod(make_pod("p").obj(), 0);
    assert!(matches!(e.schedule_one(0), Some(Outcome::Failed(_))));
    assert_eq!(e.queue.location("default/p"), Some(Location::Unschedulable));
    e.add_node(make_node("m1").capacity(4000, 8 << 30, 110).obj(), 10);
    assert_ne!(e.queue.location("default/p"), Some(Location::Unschedulable), "a node add wakes it");
}
