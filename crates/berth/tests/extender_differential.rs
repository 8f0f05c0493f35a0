//! Scheduler extenders, Berth against kube-scheduler 1.37 on the same API
//! server, configured alike (`KubeSchedulerConfiguration.extenders`).
//!
//! Three extenders written here:
//! - a widget extender that manages `example.com/widget` (ignored by
//!   NodeResourcesFit): it filters (only nodes named `*-keep` pass; the
//!   others fail for good), prioritizes (`*-fav-keep` gets 10, weight 5),
//!   binds the pods it manages, and narrows preemption (never a victim on
//!   `*-fav-keep`);
//! - an ignorable extender for `example.com/gadget` that answers after the
//!   `httpTimeout` with no node at all: it must be skipped;
//! - a non-ignorable extender for `example.com/gizmo` that nobody listens
//!   to: its pods stay pending with the failed call in their event, until
//!   the extender comes up.
//!
//! The same pods are created one at a time for each scheduler, in a
//! namespace and on KWOK nodes of its own; both must place every pod on the
//! same node, preempt the same victim after offering the extender the same
//! candidates, let the extender bind the same pods, and report the dead
//! extender alike.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Map, Value};

/// One call an extender got: its verb, the pod's namespace and name, and the
/// nodes it was offered (filter, prioritize: the nodes; preempt: the
/// candidates; bind: the node).
#[derive(Debug, Clone)]
struct Call {
    verb: String,
    namespace: String,
    pod: String,
    nodes: Vec<String>,
}

type Calls = Arc<Mutex<Vec<Call>>>;

fn names(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|n| n.as_str().map(str::to_string)).collect()
}

/// The widget extender; every call it gets is recorded in `calls`.
fn widget_extender(calls: Calls) -> String {
    serve_json(move |path, body| {
        let pod = &body["Pod"]["metadata"];
        let mut call = Call {
            verb: path.trim_start_matches('/').to_string(),
            namespace: pod["namespace"].as_str().unwrap_or_default().to_string(),
            pod: pod["name"].as_str().unwrap_or_default().to_string(),
            nodes: names(&body["NodeNames"]),
        };
        let reply = match path {
            "/filter" => {
                let (keep, drop): (Vec<String>, Vec<String>) = call.nodes.iter().cloned().partition(|n| n.ends_with("-keep"));
                let failed: Map<String, Value> = drop.into_iter().map(|n| (n, json!("not a widget node"))).collect();
                json!({"NodeNames": keep, "FailedNodes": {}, "FailedAndUnresolvableNodes": failed, "Error": ""})
            }
            "/prioritize" => {
                let scores: Vec<Value> =
                    call.nodes.iter().map(|n| json!({"Host": n, "Score": if n.ends_with("-fav-keep") { 10 } else { 0 }})).collect();
                json!(scores)
            }
            "/preempt" => {
                let offered = body["NodeNameToMetaVictims"].as_object().cloned().unwrap_or_default();
                call.nodes = offered.keys().cloned().collect();
                let kept: Map<String, Value> = offered.into_iter().filter(|(n, _)| !n.ends_with("-fav-keep")).collect();
                json!({"NodeNameToMetaVictims": kept})
            }
            "/bind" => {
                call.namespace = body["PodNamespace"].as_str().unwrap_or_default().to_string();
                call.pod = body["PodName"].as_str().unwrap_or_default().to_string();
                call.nodes = vec![body["Node"].as_str().unwrap_or_default().to_string()];
                let binding = json!({"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": call.pod, "namespace": call.namespace},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": call.nodes[0]}});
                kubectl(&["create", "-f", "-"], Some(&binding.to_string()));
                json!({"Error": ""})
            }
            _ => return (404, String::new()),
        };
        calls.lock().unwrap().push(call);
        (200, reply.to_string())
    })
}

/// An extender that answers each filter after `delay` with no node passing.
fn slow_extender(delay: Duration) -> String {
    serve_json(move |_, _| {
        // A slow peer, not synchronisation: the scheduler must give up first.
        std::thread::sleep(delay);
        (200, json!({"NodeNames": [], "FailedNodes": {}, "Error": ""}).to_string())
    })
}

/// The `extenders` section both schedulers get; `dead` is the URL of the
/// extender nobody listens to (one per scheduler, so it can come up for
/// each in turn).
fn extenders(widget: &str, slow: &str, dead: &str) -> String {
    format!(
        "extenders:
- urlPrefix: {widget}
  filterVerb: filter
  prioritizeVerb: prioritize
  preemptVerb: preempt
  bindVerb: bind
  weight: 5
  nodeCacheCapable: true
  httpTimeout: 10s
  managedResources: [{{name: example.com/widget, ignoredByScheduler: true}}]
- urlPrefix: {slow}
  filterVerb: filter
  nodeCacheCapable: true
  ignorable: true
  httpTimeout: 1s
  managedResources: [{{name: example.com/gadget, ignoredByScheduler: true}}]
- urlPrefix: {dead}
  filterVerb: filter
  nodeCacheCapable: true
  httpTimeout: 2s
  managedResources: [{{name: example.com/gizmo, ignoredByScheduler: true}}]
"
    )
}

/// What one scheduler did.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Each pod and the node (its suffix) it went to, in creation order.
    placed: Vec<(String, String)>,
    /// The pods preemption evicted.
    evicted: Vec<String>,
    /// The nodes offered to the extender's preempt verb.
    offered_to_preempt: Vec<String>,
    /// The pods the widget extender bound, in order.
    bound_by_extender: Vec<String>,
    /// The dead extender's pod: its FailedScheduling message, the URL as `DEAD`.
    dead: String,
}

/// A pod's containers: `cpu` and one of `resource` (an extended resource).
fn with(cpu: &str, resource: &str, priority: Option<String>) -> Value {
    let mut spec = json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": cpu, resource: "1"}, "limits": {resource: "1"}}}]});
    if let Some(p) = priority {
        spec["priorityClassName"] = json!(p);
    }
    spec
}

async fn play(scheduler: &str, dead: &str, calls: &Calls) -> Outcome {
    let ns = Ns::new(&format!("extdiff-{}", &scheduler[..4])).await;
    ns.priority_classes().await;
    for (node, cpu) in [("keep", "2"), ("fav-keep", "2"), ("roomy", "16")] {
        ns.node(node, cpu, json!({}), json!([])).await;
    }
    let role = |node: String| node.trim_start_matches(&format!("{}-", ns.name)).to_string();
    let (low, high) = (Some(format!("{}-low", ns.name)), Some(format!("{}-high", ns.name)));
    let pods = [
        ("scored-0", with("100m", "example.com/widget", None)),
        ("scored-1", with("100m", "example.com/widget", None)),
        ("scored-2", with("100m", "example.com/widget", None)),
        ("low-a", with("1700m", "example.com/widget", low.clone())),
        ("low-b", with("1700m", "example.com/widget", low)),
        ("high", with("1000m", "example.com/widget", high)),
        ("gadget", with("100m", "example.com/gadget", None)),
    ];
    let mut placed = Vec::new();
    for (name, spec) in pods {
        ns.pod(name, scheduler, "100m", spec).await;
        placed.push((name.to_string(), role(ns.bound(name).await)));
    }
    let mut evicted = Vec::new();
    for victim in ["low-a", "low-b"] {
        let gone = match ns.pods().get(victim).await {
            Ok(p) => p.metadata.deletion_timestamp.is_some(),
            Err(_) => true,
        };
        if gone {
            evicted.push(victim.to_string());
        }
    }
    ns.pod("gizmo", scheduler, "100m", with("100m", "example.com/gizmo", None)).await;
    let event = ns.event("gizmo", "FailedScheduling").await;
    let dead_message = event.note.unwrap_or_default().replace(dead, "DEAD");
    assert_eq!(ns.node_of("gizmo").await, None, "{scheduler} placed a pod its extender could not filter");
    // The extender comes up: the pod is retried and placed.
    let port: u16 = dead.rsplit(':').next().unwrap().parse().unwrap();
    serve_json_at(port, |_, body| (200, json!({"NodeNames": body["NodeNames"], "FailedNodes": {}, "Error": ""}).to_string()));
    placed.push(("gizmo".into(), role(ns.bound("gizmo").await)));

    let calls: Vec<Call> = calls.lock().unwrap().iter().filter(|c| c.namespace == ns.name).cloned().collect();
    let mut offered_to_preempt: Vec<String> =
        calls.iter().filter(|c| c.verb == "preempt").flat_map(|c| c.nodes.iter().cloned().map(&role)).collect();
    offered_to_preempt.sort();
    offered_to_preempt.dedup();
    let bound_by_extender = calls.iter().filter(|c| c.verb == "bind").map(|c| c.pod.clone()).collect();
    Outcome { placed, evicted, offered_to_preempt, bound_by_extender, dead: dead_message }
}

#[tokio::test]
async fn berth_calls_extenders_as_kube_scheduler_does() {
    let calls: Calls = Arc::default();
    let widget = widget_extender(calls.clone());
    let slow = slow_extender(Duration::from_secs(4));
    let dead = |_| format!("http://127.0.0.1:{}", free_port());
    let (kube_dead, berth_dead) = (dead(()), dead(()));
    let _kube =
        spawn_kube_scheduler("kube-ext", &format!("profiles: [{{schedulerName: kube-ext}}]\n{}", extenders(&widget, &slow, &kube_dead)));
    let config = write_temp(
        "berth-ext.yaml",
        &format!(
            "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection: {{leaderElect: false}}
profiles: [{{schedulerName: berth-ext}}]
{}",
            extenders(&widget, &slow, &berth_dead)
        ),
    );
    let _berth = spawn_berth(&config, "berth-ext.log");

    let want = play("kube-ext", &kube_dead, &calls).await;
    let got = play("berth-ext", &berth_dead, &calls).await;
    eprintln!("kube-scheduler: {want:?}\nberth:          {got:?}");

    // What the extenders were written to make happen, so that agreeing on
    // something else cannot pass.
    let placed: Vec<(&str, &str)> = got.placed.iter().map(|(p, n)| (p.as_str(), n.as_str())).collect();
    assert_eq!(&placed[..3], [("scored-0", "fav-keep"), ("scored-1", "fav-keep"), ("scored-2", "fav-keep")], "prioritize decides");
    assert_eq!(placed[5], ("high", "keep"), "the extender kept no victim on fav-keep");
    assert_eq!(placed[6], ("gadget", "roomy"), "the slow extender (no node passes) was given up on and skipped");
    assert_eq!(placed[7], ("gizmo", "roomy"), "the dead extender came up");
    assert_eq!(got.evicted, ["low-b"]);
    assert_eq!(got.offered_to_preempt, ["fav-keep", "keep"], "roomy failed the filter for good");
    assert_eq!(got.bound_by_extender, ["scored-0", "scored-1", "scored-2", "low-a", "low-b", "high"], "only widget pods");
    assert!(got.dead.starts_with("Post \"DEAD/filter\": "), "{}", got.dead);

    // And kube-scheduler did the same. Its HTTP client words a refused
    // connection its own way: the event is compared up to the URL.
    let url_part = |m: &str| m.split_once(": ").map(|(u, _)| u.to_string()).unwrap_or_default();
    assert_eq!(url_part(&want.dead), url_part(&got.dead), "dead extender: kube-scheduler said {:?}, Berth {:?}", want.dead, got.dead);
    assert_eq!(Outcome { dead: String::new(), ..want }, Outcome { dead: String::new(), ..got });
}
