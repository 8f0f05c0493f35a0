use super::*;
use crate::framework::{action, EventResource, Status};
use crate::testing::make_pod;

fn queue() -> SchedulingQueue {
    let less: LessFn = Arc::new(|a: &QueuedPodInfo, b: &QueuedPodInfo| {
        let (pa, pb) = (a.pod_info.pod.priority, b.pod_info.pod.priority);
        pa > pb || (pa == pb && a.timestamp < b.timestamp)
    });
    let gates: PreEnqueueFn = Arc::new(|p: &Pod| {
        if p.scheduling_gates.is_empty() {
            Status::success()
        } else {
            Status::unresolvable("gated").with_plugin("SchedulingGates")
        }
    });
    let mut q = SchedulingQueue::new(QueueConfig::default(), less, gates);
    q.register_events("NodeResourcesFit", vec![ClusterEventWithHint::new(ClusterEvent::new(EventResource::Node, action::ADD, "NodeAdd"))]);
    q
}

fn info(name: &str, prio: i32) -> Arc<PodInfo> {
    Arc::new(make_pod(name).priority(prio).info())
}

#[test]
fn pops_by_priority_then_time() {
    let mut q = queue();
    q.add(info("low", 1), 0);
    q.add(info("high", 10), 1);
    q.add(info("low2", 1), 2);
    let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|p| p.pod_info.pod.name.clone())).collect();
    assert_eq!(order, ["high", "low", "low2"]);
}

#[test]
fn backoff_doubles_to_cap() {
    let q = queue();
    let got: Vec<i64> = (0..7).map(|a| q.backoff_duration(a)).collect();
    assert_eq!(got, [0, 1000, 2000, 4000, 8000, 10000, 10000]);
}

#[test]
fn unschedulable_waits_for_registered_event() {
    let mut q = queue();
    q.add(info("p", 0), 0);
    let mut p = q.pop().unwrap();
    p.unschedulable_plugins.insert("NodeResourcesFit");
    q.add_unschedulable(p, 100);
    assert_eq!(q.location("default/p"), Some(Location::Unschedulable));
    // An unrelated event does nothing.
    let moved = q.on_event(ClusterEvent::new(EventResource::Node, action::DELETE, "NodeDelete"), EventObject::None, 200);
    assert_eq!(moved, 0);
    // A node add moves it to backoff (1s backoff after one attempt), then active.
    let moved = q.on_event(ClusterEvent::new(EventResource::Node, action::ADD, "NodeAdd"), EventObject::None, 300);
    assert_eq!(moved, 1);
    assert_eq!(q.location("default/p"), Some(Location::Backoff));
    // 1 s of backoff from t=0.3 s ends at 1.3 s, truncated to 1 s: the pod is
    // released at the first whole second after that, 2 s.
    assert_eq!(q.next_backoff_expiry(), Some(2000));
    q.flush(1999);
    assert_eq!(q.location("default/p"), Some(Location::Backoff));
    q.flush(2000);
    assert_eq!(q.location("default/p"), Some(Location::Active));
    assert_eq!(q.pop().unwrap().attempts, 2);
}

#[test]
fn pops_from_backoff_when_idle() {
    let mut q = queue();
    q.add(info("rejected", 0), 0);
    q.add(info("errored", 5), 0);
    let errored = q.pop().unwrap();
    let mut rejected = q.pop().unwrap();
    rejected.unschedulable_plugins.insert("NodeResourcesFit");
    q.add_unschedulable(errored, 0);
    q.add_unschedulable(rejected, 0);
    q.on_event(ClusterEvent::new(EventResource::Node, action::ADD, "NodeAdd"), EventObject::None, 10);
    assert_eq!(q.counts().backoff, 2);
    // Nothing active: the plugin-rejected pod is tried before its backoff ends;
    // the one that failed with an error waits.
    assert_eq!(q.pop().unwrap().pod_info.pod.name, "rejected");
    assert!(q.pop().is_none());
}

#[test]
fn errors_go_to_backoff_and_timeouts_flush() {
    let mut q = queue();
    q.add(info("err", 0), 0);
    let p = q.pop().unwrap();
    q.add_unschedulable(p, 0);
    assert_eq!(q.location("default/err"), Some(Location::Backoff));

    q.add(info("stuck", 0), 0);
    let mut p = q.pop().unwrap();
    p.unschedulable_plugins.insert("NodeResourcesFit");
    q.add_unschedulable(p, 0);
    q.add(info("late", 0), 1000);
    let mut p = q.pop().unwrap();
    p.unschedulable_plugins.insert("NodeResourcesFit");
    q.add_unschedulable(p, 1000);
    q.flush(DEFAULT_MAX_IN_UNSCHEDULABLE_MS);
    assert_eq!(q.location("default/stuck"), Some(Location::Unschedulable));
    q.flush(DEFAULT_MAX_IN_UNSCHEDULABLE_MS + 1);
    assert_ne!(q.location("default/stuck"), Some(Location::Unschedulable));
    // The pass that moved it noted when the next one is due, to the millisecond.
    q.flush(DEFAULT_MAX_IN_UNSCHEDULABLE_MS + 1000);
    assert_eq!(q.location("default/late"), Some(Location::Unschedulable));
    q.flush(DEFAULT_MAX_IN_UNSCHEDULABLE_MS + 1001);
    assert_ne!(q.location("default/late"), Some(Location::Unschedulable));
}

#[test]
fn event_during_flight_requeues() {
    let mut q = queue();
    q.add(info("p", 0), 0);
    let mut p = q.pop().unwrap();
    q.on_event(ClusterEvent::new(EventResource::Node, action::ADD, "NodeAdd"), EventObject::None, 10);
    p.unschedulable_plugins.insert("NodeResourcesFit");
    q.add_unschedulable(p, 20);
    assert_eq!(q.location("default/p"), Some(Location::Backoff));
}

#[test]
fn gated_pods_wait_for_gate_removal() {
    let mut q = queue();
    let gated = Arc::new(make_pod("g").scheduling_gate("example.com/wait").info());
    q.add(gated, 0);
    assert!(q.pop().is_none());
    assert_eq!(q.counts().gated, 1);
    q.on_event(ClusterEvent::wildcard(), EventObject::None, 1);
    assert!(q.pop().is_none(), "gated pods only move when their gates go");
    q.update(info("g", 0), 2);
    assert_eq!(q.pop().unwrap().pod_info.pod.name, "g");
}

#[test]
fn delete_removes_everywhere() {
    let mut q = queue();
    q.add(info("a", 0), 0);
    q.delete("default/a");
    assert!(q.pop().is_none());
    assert!(q.is_empty());
}

/// A gated pod runs PreEnqueue again on an event its gating plugin
/// registered (GangScheduling: another member arrived), not on others; a
/// preemptor held by `hold` stays held whatever happens.
#[test]
fn gated_pods_retry_pre_enqueue_on_their_plugins_events_and_held_pods_wait_for_release() {
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let o = open.clone();
    let less: LessFn = Arc::new(|a: &QueuedPodInfo, b: &QueuedPodInfo| a.timestamp < b.timestamp);
    let gate: PreEnqueueFn = Arc::new(move |_p: &Pod| {
        if o.load(std::sync::atomic::Ordering::SeqCst) {
            Status::success()
        } else {
            Status::unresolvable("waiting for minCount pods").with_plugin("Gang")
        }
    });
    let mut q = SchedulingQueue::new(QueueConfig::default(), less, gate);
    let pod_add = ClusterEvent::new(EventResource::UnscheduledPod, action::ADD, "UnscheduledPodAdd");
    q.register_events("Gang", vec![ClusterEventWithHint::new(pod_add)]);
    q.add(info("m0", 0), 0);
    assert_eq!(q.counts().gated, 1);
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    q.on_event(ClusterEvent::new(EventResource::Node, action::ADD, "NodeAdd"), EventObject::None, 1);
    q.on_event(ClusterEvent::wildcard(), EventObject::None, 1);
    assert_eq!(q.counts().gated, 1, "neither an unrelated event nor a flush runs PreEnqueue again");
    q.on_event(pod_add, EventObject::None, 1);
    assert_eq!((q.counts().gated, q.counts().active), (0, 1));
    // A held preemptor is gated too, but only `release` lets it go.
    let p = q.pop().unwrap();
    let mut p = p;
    p.unschedulable_plugins.insert("Gang");
    q.add_unschedulable(p, 2);
    q.hold("default/m0");
    q.on_event(pod_add, EventObject::None, 3);
    assert_eq!(q.counts().gated, 1, "held");
    assert!(q.take(&["default/m0".to_string()]).is_empty(), "a held pod is not taken with its group");
    q.release("default/m0", 20_000);
    assert_eq!(q.take(&["default/m0".to_string(), "default/none".to_string()]).len(), 1);
    assert_eq!(q.location("default/m0"), Some(Location::InFlight));
}
