//! The HTTP extender against an extender server written here: the wire
//! format both ways, errors, deadlines, and the scheduling core calling it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use berth_core::framework::{CycleState, NoNominations};
use berth_core::scheduler::{CycleRunner, ScheduleError};
use berth_core::testing::{make_node, make_pod, node_info};

use super::*;

/// A request the server received: path and JSON body.
type Seen = (String, Value);

/// Serves HTTP/1.1 on a local port: each request's path and body go to the
/// returned channel, and `answer` gives the status and body of the reply.
fn serve(answer: fn(&str, &Value) -> (u16, String)) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let (code, reply) = answer(&path, &body);
                let _ = tx.send((path, body));
                let out = format!("HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}", reply.len());
                if conn.write_all(out.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (url, rx)
}

fn nodes() -> berth_core::cache::Snapshot {
    berth_core::cache::Snapshot::from_node_infos(
        ["node1", "node2"].iter().map(|n| node_info(make_node(n).capacity(4000, 8 << 30, 110).obj(), vec![])).collect(),
    )
}

fn pod() -> Pod {
    make_pod("p").uid("uid-p").req_q(&[("cpu", "500m"), ("example.com/gpu", "1")]).obj()
}

fn extender(url: &str, verbs: &[(&str, &str)], extra: Value) -> HttpExtender {
    let mut c = serde_json::to_value(config(url, verbs)).unwrap();
    for (k, v) in extra.as_object().into_iter().flatten() {
        c[k] = v.clone();
    }
    HttpExtender::new(&serde_json::from_value(c).unwrap()).unwrap()
}

#[test]
fn filter_sends_whole_nodes_and_reads_replies_whatever_their_keys_case() {
    let (url, seen) = serve(|_, _| {
        (200, r#"{"nodes": {"items": [{"metadata": {"name": "node1"}}]}, "failedNodes": {"node2": "no room"}, "Error": ""}"#.into())
    });
    let e = extender(&url, &[("filterVerb", "filter")], json!({}));
    let r = e.filter(&pod(), &nodes().node_refs()).unwrap();
    assert_eq!(r.nodes, ["node1"]);
    assert_eq!(r.failed, BTreeMap::from([("node2".to_string(), "no room".to_string())]));
    let (path, body) = seen.recv().unwrap();
    assert_eq!(path, "/filter");
    assert_eq!(body["Pod"]["metadata"]["name"], "p");
    assert_eq!(body["Pod"]["spec"]["containers"][0]["resources"]["limits"], json!({"example.com/gpu": "1"}));
    assert_eq!(body["Pod"]["spec"]["containers"][0]["resources"]["requests"]["cpu"], "500m");
    assert_eq!(body["Nodes"]["items"][1]["metadata"]["name"], "node2");
    assert_eq!(body["Nodes"]["items"][0]["status"]["allocatable"]["cpu"], "4000m");
    assert_eq!(body["NodeNames"], Value::Null, "Go sends null, never leaves it out");
}

#[test]
fn a_node_cache_capable_extender_gets_and_gives_names() {
    let (url, seen) = serve(|_, _| (200, r#"{"NodeNames": ["node2"], "FailedAndUnresolvableNodes": {"node1": "gone"}}"#.into()));
    let e = extender(&url, &[("filterVerb", "x/filter")], json!({"nodeCacheCapable": true}));
    let r = e.filter(&pod(), &nodes().node_refs()).unwrap();
    assert_eq!((r.nodes, r.failed_and_unresolvable.len()), (vec!["node2".to_string()], 1));
    let (path, body) = seen.recv().unwrap();
    assert_eq!((path.as_str(), &body["NodeNames"], &body["Nodes"]), ("/x/filter", &json!(["node1", "node2"]), &Value::Null));
}

#[test]
fn prioritize_reads_a_bare_list() {
    let (url, _seen) = serve(|_, _| (200, r#"[{"Host": "node1", "Score": 3}, {"host": "node2", "score": 7}]"#.into()));
    let e = extender(&(url + "/"), &[("prioritizeVerb", "prioritize")], json!({"weight": 2}));
    assert_eq!(e.prioritize(&pod(), &nodes().node_refs()).unwrap(), vec![("node1".to_string(), 3), ("node2".to_string(), 7)]);
    assert_eq!(e.weight(), 2);
}

#[test]
fn errors_say_what_upstream_says() {
    let (url, _seen) = serve(|path, _| match path {
        "/filter" => (500, "{}".into()),
        _ => (200, r#"{"Error": "no GPU left"}"#.into()),
    });
    let e = extender(&url, &[("filterVerb", "filter"), ("bindVerb", "bind")], json!({}));
    assert_eq!(
        e.filter(&pod(), &nodes().node_refs()).unwrap_err().to_string(),
        format!("failed filter with extender at URL {url}/filter, code 500")
    );
    assert_eq!(e.bind(&pod(), "node1").unwrap_err(), ExtenderError::Replied("no GPU left".into()));
}

#[test]
fn bind_sends_the_pod_and_node_as_upstream_names_them() {
    let (url, seen) = serve(|_, _| (200, r#"{"Error": ""}"#.into()));
    let e = extender(&url, &[("bindVerb", "bind")], json!({}));
    e.bind(&pod(), "node2").unwrap();
    let (_, body) = seen.recv().unwrap();
    assert_eq!(body, json!({"PodName": "p", "PodNamespace": "default", "PodUID": "uid-p", "Node": "node2"}));
}

#[test]
fn an_extender_that_does_not_answer_fails_within_its_timeout() {
    // Accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || listener.accept().map(|(c, _)| c));
    let e = extender(&url, &[("filterVerb", "filter")], json!({"httpTimeout": "1s"}));
    let err = e.filter(&pod(), &nodes().node_refs()).unwrap_err();
    assert!(matches!(err, ExtenderError::Call(_)), "{err}");
    drop(held.join());
}

#[test]
fn preempt_sends_victims_and_resolves_the_answers_uids() {
    let (url, seen) = serve(|_, body| {
        // Keeps node1's victims only, by UID.
        let uid = body["NodeNameToMetaVictims"]["node1"]["Pods"][0]["UID"].as_str().unwrap_or("?").to_string();
        (200, json!({"NodeNameToMetaVictims": {"node1": {"Pods": [{"UID": uid}], "NumPDBViolations": 1}}}).to_string())
    });
    let e = extender(&url, &[("preemptVerb", "preempt")], json!({"nodeCacheCapable": true}));
    let victim = make_pod("low").uid("uid-low").req(100, 0).node("node1").obj();
    let node1 = Arc::new(node_info(make_node("node1").capacity(4000, 8 << 30, 110).obj(), vec![victim.clone()]));
    let candidates = BTreeMap::from([
        ("node1".to_string(), Victims { pods: node1.pods.clone(), num_pdb_violations: 0 }),
        ("node2".to_string(), Victims { pods: node1.pods.clone(), num_pdb_violations: 0 }),
    ]);
    let lookup = |n: &str| (n == "node1").then(|| node1.clone());
    let out = e.process_preemption(&pod(), &candidates, &lookup).unwrap();
    assert_eq!(out.keys().collect::<Vec<_>>(), ["node1"]);
    assert_eq!((out["node1"].pods[0].pod.name.as_str(), out["node1"].num_pdb_violations), ("low", 1));
    let (_, body) = seen.recv().unwrap();
    assert_eq!(body["NodeNameToVictims"], Value::Null);
    // A UID not on the node is upstream's error.
    let (url, _seen) = serve(|_, _| (200, r#"{"NodeNameToMetaVictims": {"node1": {"Pods": [{"UID": "nobody"}]}}}"#.into()));
    let e = extender(&url, &[("preemptVerb", "preempt")], json!({}));
    let err = e.process_preemption(&pod(), &candidates, &lookup).unwrap_err().to_string();
    assert!(err.contains("claims to preempt pod (UID: nobody) on node: node1, but the pod is not found on that node"), "{err}");
}

#[test]
fn the_core_calls_configured_extenders_over_http() {
    // Filter keeps node2; prioritize is never reached with one node left.
    let (url, seen) = serve(|path, _| match path {
        "/filter" => (200, r#"{"NodeNames": ["node2"], "FailedNodes": {"node1": "busy"}}"#.into()),
        _ => (404, "".into()),
    });
    let cfg = berth_core::config::KubeSchedulerConfiguration::from_yaml_value(json!({
        "extenders": [{"urlPrefix": url, "filterVerb": "filter", "nodeCacheCapable": true,
                       "managedResources": [{"name": "example.com/gpu", "ignoredByScheduler": true}]}]
    }))
    .unwrap();
    let host = berth_core::framework::PluginHost::default().with_service(HttpExtender::connector());
    let fwk = cfg.build_frameworks_with(&berth_core::framework::Registry::builtin(), &host).unwrap().remove(0);
    let snapshot = nodes();
    let pi = Arc::new(berth_core::framework::PodInfo::new(pod()));
    let mut runner = CycleRunner::new(0, 1);
    // The nodes have no example.com/gpu: NodeResourcesFit ignores it, as the extender manages it.
    let r = runner.schedule_pod(&fwk, &mut CycleState::new(), &pi, &snapshot, &NoNominations).unwrap();
    assert_eq!(r.node, "node2");
    assert_eq!(seen.recv().unwrap().0, "/filter");
    // Without the connector, the configuration is refused, saying why.
    let err = cfg.build_frameworks().err().expect("refused").to_string();
    assert!(err.contains("cannot call scheduler extenders"), "{err}");
    // A pod the extender does not manage never reaches it.
    let plain = Arc::new(berth_core::framework::PodInfo::new(make_pod("q").req(100, 0).obj()));
    let r = runner.schedule_pod(&fwk, &mut CycleState::new(), &plain, &snapshot, &NoNominations);
    assert!(!matches!(r, Err(ScheduleError::Internal(_))));
    assert!(seen.try_recv().is_err(), "not interested: not called");
}
