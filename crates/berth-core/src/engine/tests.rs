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
fn a_binding_refused_for_a_pod_deleted_or_bound_elsewhere_meanwhile_is_not_retried() {
    let mut e = engine(1);
    for name in ["gone", "taken", "plain"] {
        e.add_pod(make_pod(name).req(1000, 0).obj(), 0);
    }
    let mut assigned = Vec::new();
    while let Some(o) = e.schedule_one(0) {
        let Outcome::Assigned(a) = o else { panic!("all fit") };
        assigned.push(a);
    }
    assert_eq!(assigned.len(), 3);
    // While they bind: one is deleted, another is bound by someone else.
    e.delete_pod(&make_pod("gone").req(1000, 0).obj(), 1);
    let bound = make_pod("taken").req(1000, 0).node("n1").obj();
    e.update_pod(Some(&make_pod("taken").req(1000, 0).obj()), bound, 1);
    for a in assigned {
        let key = a.queued.key();
        let failure = e.binding_done(*a, Status::error("binding rejected"), 2);
        // Only the pod still waiting for its binding is reported and retried.
        assert_eq!(failure.is_some(), key == "default/plain", "{key}");
    }
    let c = e.queue.counts();
    assert_eq!(c.active + c.backoff + c.unschedulable + c.gated, 1, "plain is queued again; gone and taken are not");
    // taken counts on its node as bound; gone and plain's assumptions are undone.
    e.cache.update_snapshot(Arc::make_mut(&mut e.snapshot));
    assert_eq!(e.snapshot.get("n1").unwrap().requested.milli_cpu, 1000);
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

// ---- pod groups ------------------------------------------------------------

mod groups {
    use super::*;
    use crate::plugins::gang_scheduling::POD_GROUP;

    /// The default profile (GangScheduling included) on `nodes` nodes of 4 CPUs.
    fn engine(nodes: usize) -> Engine {
        let cfg = crate::config::KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).unwrap();
        let fwk = cfg.build_frameworks().unwrap().remove(0);
        let mut e = Engine::new(vec![fwk], EngineConfig { adopt_all_pods: true, ..Default::default() });
        for i in 0..nodes {
            e.add_node(make_node(&format!("n{i}")).capacity(4000, 8 << 30, 110).obj(), 0);
        }
        e
    }

    fn gang(e: &mut Engine, name: &str, min_count: i32) {
        let host = e.profiles[0].handle.host();
        let policy = if min_count == 0 { serde_json::json!({"basic": {}}) } else { serde_json::json!({"gang": {"minCount": min_count}}) };
        host.apply_object(
            &POD_GROUP,
            &serde_json::json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"schedulingPolicy": policy}}),
        )
        .unwrap();
        e.object_changed(POD_GROUP, Some(ObjectKey::new(&POD_GROUP, "default", name)), action::ADD, 0);
    }

    /// Runs cycles until none is left, binding what is assigned; returns the
    /// pods bound (key -> node) and the last failure message per pod.
    fn run(e: &mut Engine, now: i64) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let mut bound = BTreeMap::new();
        let mut failed = BTreeMap::new();
        let mut outcomes: Vec<Outcome> = std::iter::from_fn(|| e.schedule_one(now)).collect();
        while let Some(o) = outcomes.pop() {
            match o {
                Outcome::Group(_, members) => outcomes.extend(members),
                Outcome::Assigned(a) => {
                    let key = a.queued.key();
                    bound.insert(key.clone(), a.node.clone());
                    failed.remove(&key);
                    e.binding_done(*a, Status::success(), now);
                    e.confirm_binding(&key, now);
                }
                Outcome::Failed(f) => {
                    failed.insert(f.pod.key(), f.message);
                }
                Outcome::Waiting(_) | Outcome::Skipped(_) => {}
            }
        }
        (bound, failed)
    }

    use std::collections::BTreeMap;

    /// Runs every cycle there is at `now` without binding; returns the
    /// failures, and how many pods were assigned.
    pub(super) fn cycles(e: &mut Engine, now: i64) -> (Vec<Failure>, usize) {
        let mut outcomes: Vec<Outcome> = std::iter::from_fn(|| e.schedule_one(now)).collect();
        let (mut failed, mut assigned) = (Vec::new(), 0);
        while let Some(o) = outcomes.pop() {
            match o {
                Outcome::Group(_, m) => outcomes.extend(m),
                Outcome::Failed(f) => failed.push(*f),
                Outcome::Assigned(_) => assigned += 1,
                Outcome::Waiting(_) | Outcome::Skipped(_) => {}
            }
        }
        (failed, assigned)
    }

    #[test]
    fn a_gang_waits_for_its_group_and_min_count_then_is_placed_whole() {
        let mut e = engine(2);
        for i in 0..3 {
            e.add_pod(make_pod(&format!("w{i}")).group("train").req(1000, 0).obj(), 0);
        }
        assert_eq!(e.queue.counts().gated, 3, "no PodGroup yet");
        gang(&mut e, "train", 4);
        assert_eq!(e.queue.counts().gated, 3, "3 of minCount 4");
        let (bound, _) = run(&mut e, 0);
        assert!(bound.is_empty());
        e.add_pod(make_pod("w3").group("train").req(1000, 0).obj(), 0);
        assert_eq!(e.queue.counts().gated, 0, "the fourth member releases the others");
        let (bound, failed) = run(&mut e, 0);
        assert_eq!(bound.len(), 4, "{failed:?}");
        assert_eq!(e.attempts(), 4, "one cycle tried each member once");
    }

    /// A member that fits but is refused at Reserve fails with that
    /// plugin's reason, and its group with it, even when it is the only one.
    #[test]
    fn a_member_refused_at_reserve_fails_its_group_cleanly() {
        struct RefuseReserve;
        #[crate::plugin]
        impl Plugin for RefuseReserve {
            fn name(&self) -> &'static str {
                "RefuseReserve"
            }
            fn reserve(&self, _s: &mut CycleState, _pod: &PodInfo, _node: &str) -> Status {
                Status::unschedulable("no room in the ledger")
            }
        }
        let cfg = crate::config::KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).unwrap();
        let mut fwk = cfg.build_frameworks().unwrap().remove(0);
        fwk.reserve.push(Arc::new(RefuseReserve));
        let mut e = Engine::new(vec![fwk], EngineConfig { adopt_all_pods: true, ..Default::default() });
        e.add_node(make_node("n0").capacity(4000, 8 << 30, 110).obj(), 0);
        gang(&mut e, "solo", 1);
        e.add_pod(make_pod("s0").group("solo").req(100, 0).obj(), 0);
        let (failed, assigned) = cycles(&mut e, 0);
        assert_eq!(assigned, 0);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].message, "no room in the ledger");
        assert_eq!(e.cache.assumed_count(), 0);
    }

    /// Members of one group with different priorities are not placed: Berth
    /// would not know which priority the group has (upstream refuses too).
    #[test]
    fn a_group_whose_members_disagree_on_priority_stays_pending_and_says_why() {
        let mut e = engine(1);
        gang(&mut e, "mixed", 2);
        e.add_pod(make_pod("m0").group("mixed").priority(100).req(100, 0).obj(), 0);
        e.add_pod(make_pod("m1").group("mixed").req(100, 0).obj(), 0);
        let (failed, assigned) = cycles(&mut e, 0);
        assert_eq!((failed.len(), assigned), (2, 0));
        for f in &failed {
            assert_eq!(f.reason, "SchedulerError");
            assert_eq!(f.message, "all pods in a single pod group should have the same priority, got 100 and 0");
        }
    }

    /// Each group cycle says how it ended (the podgroup attempts metric).
    #[test]
    fn group_cycles_are_labelled_by_their_result() {
        let mut e = engine(1);
        gang(&mut e, "fits", 2);
        gang(&mut e, "big", 2);
        for (p, g, cpu) in [("f0", "fits", 1000), ("f1", "fits", 1000), ("b0", "big", 3000), ("b1", "big", 3000)] {
            e.add_pod(make_pod(p).group(g).req(cpu, 0).creation(if g == "fits" { 0 } else { 1 }).obj(), 0);
        }
        let results: Vec<GroupAttempt> = std::iter::from_fn(|| e.schedule_one(0))
            .filter_map(|o| match o {
                Outcome::Group(r, _) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(results, [GroupAttempt::Scheduled, GroupAttempt::Unschedulable]);
    }

    #[test]
    fn a_gang_that_cannot_fit_keeps_nothing_and_says_why() {
        let mut e = engine(2);
        gang(&mut e, "big", 3);
        for i in 0..3 {
            e.add_pod(make_pod(&format!("w{i}")).group("big").req(3000, 0).obj(), 0);
        }
        let (bound, failed) = run(&mut e, 0);
        assert!(bound.is_empty(), "{bound:?}");
        assert_eq!(e.cache.assumed_count(), 0, "nothing left assumed");
        let msgs: Vec<&str> = failed.values().map(String::as_str).collect();
        assert!(msgs.contains(&"0/2 nodes are available: 2 Insufficient cpu."), "{msgs:?}");
        assert_eq!(
            msgs.iter()
                .filter(|m| **m
                    == "pod group is unschedulable, minCount (3) cannot be satisfied: 2 scheduled, 0 remaining, pod group preemption: No preemption victims found for incoming preemptor")
                .count(),
            2,
            "{msgs:?}"
        );
        e.cache.update_snapshot(Arc::make_mut(&mut e.snapshot));
        assert_eq!(e.snapshot().get("n0").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn two_gangs_that_fit_alone_but_not_together_take_turns_whole() {
        let mut e = engine(2);
        gang(&mut e, "a", 2);
        gang(&mut e, "b", 2);
        for g in ["a", "b"] {
            for i in 0..2 {
                e.add_pod(make_pod(&format!("{g}{i}")).group(g).req(3000, 0).obj(), 0);
            }
        }
        let (bound, failed) = run(&mut e, 0);
        assert_eq!(bound.len(), 2, "{bound:?} {failed:?}");
        let first: std::collections::BTreeSet<char> = bound.keys().map(|k| k.chars().nth(8).unwrap()).collect();
        assert_eq!(first.len(), 1, "one whole gang: {bound:?}");
        assert_eq!(e.cache.assumed_count(), 0);
        // The placed gang finishes: the other one is retried and placed whole.
        for (k, _) in bound {
            let pod = e.cache.pod_info(&k).unwrap().pod.clone();
            e.delete_pod(&pod, 1000);
        }
        let (bound, failed) = run(&mut e, 20_000);
        assert_eq!(bound.len(), 2, "{bound:?} {failed:?}");
    }

    #[test]
    fn a_basic_group_places_what_fits_and_extra_gang_members_fail_alone() {
        let mut e = engine(1);
        gang(&mut e, "basic", 0);
        for i in 0..3 {
            e.add_pod(make_pod(&format!("b{i}")).group("basic").req(1500, 0).obj(), 0);
        }
        let (bound, failed) = run(&mut e, 0);
        assert_eq!((bound.len(), failed.len()), (2, 1), "{failed:?}");
        assert_eq!(failed.values().next().unwrap(), "0/1 nodes are available: 1 Insufficient cpu.");
    }

    #[test]
    fn a_gang_preempts_lower_priority_pods_only_when_the_whole_gang_then_fits() {
        let mut e = engine(3);
        // Low-priority pods fill n0 and n1; n2 has a low pod too, but room left.
        for (name, node) in [("low-0", "n0"), ("low-1", "n1"), ("low-2", "n2")] {
            e.add_pod(make_pod(name).priority(1).req(3000, 0).node(node).start(1).obj(), 0);
        }
        // A gang of three 3-CPU pods at priority 100 fits only if low-0 and
        // low-1 go... and one more: so all three go.
        gang(&mut e, "hi", 3);
        for i in 0..3 {
            e.add_pod(make_pod(&format!("h{i}")).group("hi").priority(100).req(3000, 0).obj(), 0);
        }
        let (failed, assigned) = cycles(&mut e, 0);
        assert_eq!(assigned, 0, "nothing binds before the victims are gone");
        let mut victims: Vec<String> = failed.iter().flat_map(|f| f.victims.iter().map(|v| v.key())).collect();
        let mut nominated: Vec<String> = failed.iter().filter_map(|f| f.nominated_node.clone()).collect();
        for f in &failed {
            assert!(f.message.ends_with("pod group preemption: found a placement for podgroup, preempting 3 victims"), "{}", f.message);
        }
        victims.sort();
        nominated.sort();
        assert_eq!(victims, ["default/low-0", "default/low-1", "default/low-2"]);
        assert_eq!(nominated, ["n0", "n1", "n2"]);
        assert_eq!(e.cache.assumed_count(), 0);
        // The victims go; the gang is placed whole on the room they left.
        for v in ["low-0", "low-1", "low-2"] {
            let pod = e.cache.pod_info(&format!("default/{v}")).unwrap().pod.clone();
            e.delete_pod(&pod, 1000);
        }
        let (bound, failed) = run(&mut e, 30_000);
        assert_eq!(bound.len(), 3, "{failed:?}");
    }

    #[test]
    fn a_gang_that_would_not_fit_even_after_preemption_evicts_nothing() {
        let mut e = engine(2);
        e.add_pod(make_pod("low").priority(1).req(3000, 0).node("n0").obj(), 0);
        gang(&mut e, "hi", 3);
        for i in 0..3 {
            e.add_pod(make_pod(&format!("h{i}")).group("hi").priority(100).req(3000, 0).obj(), 0);
        }
        let (bound, failed) = run(&mut e, 0);
        assert!(bound.is_empty());
        assert!(
            failed.values().any(|m| m
                .ends_with("pod group preemption: pod group is unschedulable, minCount (3) cannot be satisfied: 2 scheduled, 1 remaining")),
            "{failed:?}"
        );
        assert!(!e.cache.pod_info("default/low").unwrap().pod.terminating, "the low pod stays");
        assert_eq!(e.evicting(), 0);
    }

    #[test]
    fn a_gang_spares_victims_it_does_not_need() {
        let mut e = engine(3);
        for (name, node) in [("low-0", "n0"), ("low-1", "n1"), ("low-2", "n2")] {
            e.add_pod(make_pod(name).priority(1).req(3000, 0).node(node).start(1).obj(), 0);
        }
        gang(&mut e, "hi", 2);
        for i in 0..2 {
            e.add_pod(make_pod(&format!("h{i}")).group("hi").priority(100).req(3000, 0).obj(), 0);
        }
        let victims: Vec<String> = cycles(&mut e, 0).0.iter().flat_map(|f| f.victims.iter().map(|v| v.key())).collect();
        assert_eq!(victims.len(), 2, "two of the three low pods: {victims:?}");
    }
}

mod disruption {
    use super::*;
    use crate::plugins::gang_scheduling::POD_GROUP;

    /// Victims in a `disruptionMode: all` group go together or not at all;
    /// in a `single` group, only as many as needed.
    #[test]
    fn a_group_evicted_whole_loses_all_its_members_and_a_single_one_only_what_is_needed() {
        for (mode, want) in [("all", 2), ("single", 1)] {
            let cfg = crate::config::KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).unwrap();
            let fwk = cfg.build_frameworks().unwrap().remove(0);
            let mut e = Engine::new(vec![fwk], EngineConfig { adopt_all_pods: true, ..Default::default() });
            e.add_node(make_node("n0").capacity(4000, 8 << 30, 110).obj(), 0);
            let host = e.profiles[0].handle.host();
            for (name, min, m) in [("victims", 2, mode), ("vip", 1, "single")] {
                let g = serde_json::json!({"metadata": {"name": name, "namespace": "default"},
                    "spec": {"schedulingPolicy": {"gang": {"minCount": min}}, "disruptionMode": {m: {}}}});
                host.apply_object(&POD_GROUP, &g).unwrap();
            }
            for i in 0..2 {
                e.add_pod(make_pod(&format!("v{i}")).group("victims").priority(1).req(2000, 0).node("n0").start(i).obj(), 0);
            }
            e.add_pod(make_pod("hp").group("vip").priority(100).req(2000, 0).obj(), 0);
            let failed = super::groups::cycles(&mut e, 0).0;
            let victims: Vec<String> = failed.iter().flat_map(|f| f.victims.iter().map(|v| v.key())).collect();
            assert_eq!(victims.len(), want, "{mode}: {victims:?}");
            // The evictions are under way, the victims not gone yet: a retry
            // of the preemptor waits for them and picks no one else.
            for v in &victims {
                e.eviction_done(v, 1);
            }
            let (failed, _) = super::groups::cycles(&mut e, 400_000);
            let more: Vec<String> = failed.iter().flat_map(|f| f.victims.iter().map(|v| v.key())).collect();
            let messages: Vec<&str> = failed.iter().map(|f| f.message.as_str()).collect();
            assert!(more.is_empty(), "{mode}: {more:?}");
            assert_eq!(messages, ["0/1 nodes are available: 1 Insufficient cpu."], "the member's own reasons, as upstream");
            let group = e.last_group_result("scheduling.k8s.io/default/vip").unwrap();
            assert!(group.message.ends_with("pod group preemption: ongoing preemption on nominated nodes"), "{}", group.message);
        }
    }
}

#[test]
fn a_cache_operation_that_fails_is_counted_and_the_driver_reports_it_once() {
    use crate::driver::{Driver, DriverObserver};
    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<CacheIncident>>);
    impl DriverObserver for Seen {
        fn cache_error(&self, incident: &CacheIncident) {
            self.0.lock().unwrap().push(incident.clone());
        }
    }
    let mut e = engine(1);
    let bound = make_pod("b").uid("ub").req(100, 0).node("n1").obj();
    e.add_pod(bound.clone(), 0);
    assert_eq!(e.cache_errors(), 0);
    // Events that disagree with the cache (the same bound pod added twice):
    // counted and kept for the driver, and the engine goes on.
    e.add_pod(bound.clone(), 0);
    assert_eq!(e.cache_errors(), 1);
    let seen = Arc::new(Seen::default());
    let mut d = Driver::new(e, seen.clone());
    assert!(d.step(0).is_none(), "nothing to schedule");
    d.step(1);
    let got = seen.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "reported once: {got:?}");
    assert_eq!(got[0].operation, "add_pod (bound pod added)");
    assert_eq!(got[0].error, crate::cache::CacheError::PodExists(bound.key()));
    assert_eq!(d.engine().cache_errors(), 1);
}

/// The driver reports what upstream's queue and cycle metrics count: pods
/// entering each queue by event, and the algorithm's time of cycles that
/// chose a node (none for a cycle that did not).
#[test]
fn the_driver_reports_incoming_pods_by_queue_and_event_and_the_algorithms_time() {
    use crate::driver::{Driver, DriverObserver};
    use std::collections::BTreeMap;
    #[derive(Default)]
    struct Seen {
        incoming: std::sync::Mutex<BTreeMap<(String, String), u64>>,
        algorithm: std::sync::Mutex<Vec<f64>>,
    }
    impl DriverObserver for Seen {
        fn algorithm(&self, seconds: f64) {
            self.algorithm.lock().unwrap().push(seconds);
        }
        fn incoming(&self, queue: &str, event: &str, count: u64) {
            *self.incoming.lock().unwrap().entry((queue.into(), event.into())).or_default() += count;
        }
    }
    let mut e = engine(1);
    e.add_pod(make_pod("fits").uid("u1").req(100, 0).obj(), 0);
    e.add_pod(make_pod("big").uid("u2").req(6000, 0).obj(), 0);
    let seen = Arc::new(Seen::default());
    let mut d = Driver::new(e, seen.clone());
    let mut now = 0;
    while let Some(effects) = d.step(now) {
        for fx in effects {
            if let crate::driver::Effect::Bind(b) = fx {
                d.binding_finished(b, Status::success(), now);
            }
        }
        now += 1;
    }
    assert_eq!(seen.algorithm.lock().unwrap().len(), 1, "one cycle chose a node, the other failed");
    // A node that fits the big pod moves it out of the unschedulable pods.
    d.engine_mut().add_node(make_node("n2").capacity(8000, 8 << 30, 110).obj(), now);
    d.step(now + 5_000);
    let got = seen.incoming.lock().unwrap().clone();
    let want: BTreeMap<(String, String), u64> = [
        (("active", "UnscheduledPodAdd"), 2),
        (("unschedulable", "ScheduleAttemptFailure"), 1),
        // Still in its 1 s backoff when the node came, it waited that out.
        (("backoff", "NodeAdd"), 1),
        (("active", "BackoffComplete"), 1),
    ]
    .into_iter()
    .map(|((q, e), n)| ((q.to_string(), e.to_string()), n))
    .collect();
    assert_eq!(got, want);
    assert_eq!(seen.algorithm.lock().unwrap().len(), 2, "the big pod's second cycle chose n2");
}
