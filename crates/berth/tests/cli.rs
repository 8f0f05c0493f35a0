//! The `berth` command as a user runs it: exit codes, output shapes, errors.

use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth")).args(args).output().expect("run berth")
}

fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path).display().to_string()
}

fn tmp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("berth-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn simulate_example_json() {
    let out = berth(&["simulate", &repo("examples/cluster/cluster.yaml"), "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let pods = v["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 14, "every pending pod exactly once");
    for p in pods {
        for k in ["namespace", "name", "node", "message", "preempted"] {
            assert!(p.get(k).is_some(), "missing {k} in {p}");
        }
        // Scheduled pods carry no message; unscheduled ones always say why.
        assert_eq!(p["node"].is_string(), p["message"].as_str().unwrap().is_empty(), "{p}");
    }
    let checkout = pods.iter().find(|p| p["name"] == "checkout-0").unwrap();
    assert_eq!(checkout["preempted"].as_array().unwrap().len(), 1);
    let huge = pods.iter().find(|p| p["name"] == "huge-0").unwrap();
    assert!(huge["node"].is_null());
    assert!(huge["message"].as_str().unwrap().starts_with("0/6 nodes are available:"));
}

#[test]
fn simulate_table_and_explain() {
    let out = berth(&["simulate", &repo("examples/cluster/cluster.yaml"), "--explain", "--seed", "3"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("POD"), "{text}");
    assert!(text.contains("TaintToleration: node(s) had untolerated taint(s)"), "{text}");
    assert!(text.contains("NodeResourcesFit="), "per-plugin scores: {text}");
    assert!(text.contains("14 pending pod(s) on 6 node(s): 11 scheduled, 3 unschedulable"), "{text}");
}

#[test]
fn simulate_reads_stdin_and_lists() {
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"Node","metadata":{"name":"n"},"status":{"allocatable":{"cpu":"1","memory":"1Gi","pods":"10"}}},
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"c","image":"x"}]}},
        {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"}}]}"#;
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["simulate", "-", "--output", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(list.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pods"][0]["node"], "n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one warning line: {err}");
    assert!(err.contains("ConfigMap"));
}

#[test]
fn bad_input_is_one_line_error() {
    let cases = [
        (
            "kind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, resources: {requests: {cpu: lots}}}]\n",
            "Pod default/p: spec.containers[0].resources.requests.cpu",
        ),
        ("kind: Node\nmetadata: {name: n}\nstatus: {allocatable: {memory: 1Qi}}\n", "Node n: status.allocatable.memory"),
        ("{not yaml: [", "document 1"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = tmp(&format!("bad{i}.yaml"), text);
        let out = berth(&["simulate", &f]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(&f) || err.contains("bad"), "names the file: {err}");
        assert!(err.contains(want), "{err} should contain {want}");
    }
    let out = berth(&["simulate", "/nonexistent/file.yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_config_is_refused() {
    let cluster = repo("examples/cluster/cluster.yaml");
    let cases = [
        ("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles: [{schedulerName: a, plugins: {score: {enabled: [{name: Nope}]}}}]\n", "does not exist"),
        ("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\npercentageOfNodesToScore: 150\n", "percentageOfNodesToScore"),
        ("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles: [{pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy: {type: Nope}}}]}]\n", "NodeResourcesFit"),
        ("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\ntypo: 1\n", "unknown field"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = tmp(&format!("config{i}.yaml"), text);
        let out = berth(&["simulate", &cluster, "--config", &f]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err} should contain {want}");
    }
}

#[test]
fn bench_runs_small() {
    let out = berth(&["bench", "--workload", "SchedulingBasic", "--nodes", "50", "--pods", "100", "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["scheduled"], 100);
    let out = berth(&["bench", "--workload", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    // One node holds far fewer than 200 pods: a run that binds fewer than
    // the workload's pods did not do the work it would time, and fails saying so.
    let out = berth(&["bench", "--workload", "SchedulingBasic", "--nodes", "1", "--pods", "200"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an incomplete run must fail");
    assert!(
        err.contains("SchedulingBasic: bound ") && err.contains(" of 200 pods on 1 nodes, where the workload expects 200 bound"),
        "{err}"
    );
}

/// The 100 000-node path (issue 23), bounded and not timed: 100 000 nodes
/// in three zones, and pods (plain, then spread across the zones) that each
/// cycle places after scoring its 5 % share of the nodes. Read through the
/// scheduler_perf reader, as upstream's own 100k-scale cases would be; the
/// built-in workloads' init pods (a fifth of the nodes) would take minutes
/// in a debug build. Speed at this size is measured in BENCHMARKS.md.
#[test]
fn bench_smoke_at_100000_nodes() {
    let dir = std::env::temp_dir().join(format!("berth-cli-100k-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("smoke")).unwrap();
    let spread = "apiVersion: v1
kind: Pod
metadata:
  generateName: spread-
  labels: {app: spread}
spec:
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: DoNotSchedule
    labelSelector:
      matchLabels: {app: spread}
  containers:
  - name: pause
    image: pause
    resources:
      requests: {cpu: 100m}
";
    std::fs::write(dir.join("spread.yaml"), spread).unwrap();
    let config = "- name: Smoke
  workloadTemplate:
  - opcode: createNodes
    count: 100000
    labelNodePrepareStrategy:
      labelKey: topology.kubernetes.io/zone
      labelValues: [a, b, c]
  - opcode: createPods
    count: 30
  - opcode: createPods
    count: 30
    podTemplatePath: ../spread.yaml
    collectMetrics: true
  workloads:
  - name: 100000Nodes
    labels: [performance]
";
    std::fs::write(dir.join("smoke/performance-config.yaml"), config).unwrap();
    let out = berth(&["bench", "--upstream", &dir.display().to_string(), "--output", "json"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v[0]["nodes"].as_u64(), v[0]["scheduled"].as_u64()), (Some(100_000), Some(30)), "{v}");
}

/// `bench --upstream` reads upstream's own scheduler_perf files: a
/// directory of topics, each workload run or listed as skipped with why.
#[test]
fn bench_runs_upstreams_own_workloads() {
    let dir = std::env::temp_dir().join(format!("berth-cli-upstream-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("basic")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: pod-\nspec:\n  containers:\n  - name: pause\n    image: pause\n    resources:\n      requests:\n        cpu: 100m\n";
    std::fs::write(dir.join("templates/pod.yaml"), pod).unwrap();
    let config = "- name: Basic
  defaultPodTemplatePath: ../templates/pod.yaml
  workloadTemplate:
  - opcode: createNodes
    countParam: $nodes
  - opcode: createPods
    countParam: $pods
    collectMetrics: true
  workloads:
  - name: Small
    labels: [performance]
    params: {nodes: 20, pods: 60}
  - name: Churned
    labels: [performance]
    params: {nodes: 20, pods: 60, churn: 1}
  - name: Tiny
    labels: [integration-test]
    params: {nodes: 2, pods: 2}
";
    std::fs::write(dir.join("basic/performance-config.yaml"), config).unwrap();
    let d = dir.display().to_string();
    let out = berth(&["bench", "--upstream", &d, "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(2), "the performance-labelled workloads: {v}");
    assert_eq!(v[0]["workload"], "Basic/Small");
    assert_eq!((v[0]["nodes"].as_u64(), v[0]["scheduled"].as_u64()), (Some(20), Some(60)));
    assert_eq!(v[1]["workload"], "Basic/Churned");
    assert!(v[1]["skipped"].as_str().is_some_and(|s| s.starts_with("params.churn: ")), "{v}");
    // One node of 4 CPUs holds 40 pods of 100m (the built-in node's 110 pods
    // aside): the run did not do its work, and fails saying so.
    let one = config.replace("params: {nodes: 20, pods: 60}", "params: {nodes: 1, pods: 60}");
    std::fs::write(dir.join("basic/performance-config.yaml"), one).unwrap();
    let out = berth(&["bench", "--upstream", &d, "--workload", "Basic/Small"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an incomplete run must fail");
    assert!(err.contains("Basic/Small: workloadTemplate[1] (createPods in namespace-1): 40 of 60 pods scheduled"), "{err}");
    let out = berth(&["bench", "--upstream", &d, "--workload", "Nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no workload under"), "a selection of nothing is an error");
    std::fs::remove_dir_all(&dir).unwrap();
    // Upstream's own files, when the Go module cache has them (testenv/build).
    let cache = Command::new("go").args(["env", "GOMODCACHE"]).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(perf) = cache
        .map(|c| format!("{c}/k8s.io/kubernetes@v1.37.2/test/integration/scheduler_perf"))
        .filter(|p| std::path::Path::new(p).is_dir())
    else {
        common::skip(common::Lack::Host, "upstream's scheduler_perf files are not in the Go module cache (run testenv/build)");
        return;
    };
    let out = berth(&["bench", "--upstream", &perf, "--label-filter", "integration-test,short", "--workload", "SchedulingBasic/5Nodes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("SchedulingBasic/5Nodes ") && text.contains("nodes=5 ") && text.contains("pods=10 "), "{text}");
}

/// The chart's ClusterRole and deploy/rbac.yaml grant the same: one list of
/// rules would drift otherwise.
#[test]
fn the_chart_and_deploy_grant_berth_the_same_rules() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let chart: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo.join("deploy/helm/berth/files/clusterrole-rules.yaml")).unwrap()).unwrap();
    let text = std::fs::read_to_string(repo.join("deploy/rbac.yaml")).unwrap();
    let role = text.split("\n---").find(|d| d.contains("kind: ClusterRole\n")).expect("the ClusterRole");
    let role: serde_json::Value = serde_yaml::from_str(role).unwrap();
    assert_eq!(role["rules"], chart);
}

/// An extender (filter only) on a local port that keeps `node-b` for every
/// pod; returns its URL and how many calls it got.
fn keep_node_b() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let url = common::serve_json(move |_, _| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (200, r#"{"NodeNames": ["node-b"], "FailedNodes": {"node-a": "the extender says no"}}"#.into())
    });
    (url, calls)
}

/// The stock binary loads NodePool as a Rust guest and as a Go guest, from
/// a path relative to the configuration file; a module that is not there
/// is a configuration error naming the field and the file.
#[test]
fn simulate_loads_webassembly_guests_next_to_the_configuration() {
    let guests = common::wasm_guests();
    let dir = std::env::temp_dir().join(format!("berth-cli-wasm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = dir.join("cluster.yaml");
    std::fs::write(
        &cluster,
        "apiVersion: v1\nkind: Node\nmetadata: {name: gold-1, labels: {example.berth.dev/pool: gold}}\nstatus: {allocatable: {cpu: '8', memory: 8Gi, pods: '10'}}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata: {name: iron-1, labels: {example.berth.dev/pool: iron}}\nstatus: {allocatable: {cpu: '8', memory: 8Gi, pods: '10'}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: gold, namespace: default, annotations: {example.berth.dev/pool: gold}}\nspec: {containers: [{name: c, image: i}]}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: plain, namespace: default}\nspec: {containers: [{name: c, image: i}]}\n",
    )
    .unwrap();
    for guest in ["node_pool_rs.wasm", "node_pool_go.wasm"] {
        std::fs::copy(guests.join(guest), dir.join(guest)).unwrap();
        let config = dir.join(format!("{guest}.yaml"));
        std::fs::write(
            &config,
            format!(
                "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n\
                 - plugins: {{multiPoint: {{enabled: [{{name: NodePool}}]}}}}\n  \
                 pluginConfig: [{{name: NodePool, args: {{defaultPool: iron, wasm: {{path: {guest}}}}}}}]\n"
            ),
        )
        .unwrap();
        let out = berth(&["simulate", cluster.to_str().unwrap(), "--config", config.to_str().unwrap(), "--output", "json"]);
        assert!(out.status.success(), "{guest}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let node = |pod: &str| v["pods"].as_array().unwrap().iter().find(|p| p["name"] == pod).map(|p| p["node"].clone());
        assert_eq!((node("gold"), node("plain")), (Some("gold-1".into()), Some("iron-1".into())), "{guest}: {v}");
    }
    let missing = dir.join("missing.yaml");
    std::fs::write(
        &missing,
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n\
         - plugins: {multiPoint: {enabled: [{name: NodePool}]}}\n  pluginConfig: [{name: NodePool, args: {wasm: {path: gone.wasm}}}]\n",
    )
    .unwrap();
    let out = berth(&["simulate", cluster.to_str().unwrap(), "--config", missing.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("plugin \"NodePool\": args.wasm.path: reading ") && stderr.contains("gone.wasm"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn simulate_calls_the_configured_extenders() {
    let (url, calls) = keep_node_b();
    let cluster = tmp(
        "extender-cluster.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nstatus: {allocatable: {cpu: '8', memory: 8Gi, pods: '10'}}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata: {name: node-b}\nstatus: {allocatable: {cpu: '1', memory: 1Gi, pods: '10'}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default}\nspec: {containers: [{name: c, image: i, resources: {requests: {cpu: 100m}}}]}\n",
    );
    let config = tmp(
        "extender-config.yaml",
        &format!(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nextenders:\n- {{urlPrefix: '{url}', filterVerb: filter, nodeCacheCapable: true}}\n"
        ),
    );
    let out = berth(&["simulate", &cluster, "--config", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // node-a has more room and would win the scores: the extender decided.
    assert_eq!(v["pods"][0]["node"], "node-b", "{v}");
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // An extender that is not there: the attempt fails with the call's error.
    let gone = tmp(
        "extender-gone.yaml",
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nextenders:\n- {urlPrefix: 'http://127.0.0.1:9', filterVerb: filter}\n",
    );
    let out = berth(&["simulate", &cluster, "--config", &gone, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(v["pods"][0]["node"].is_null(), "{v}");
    assert!(v["pods"][0]["message"].as_str().unwrap_or_default().contains("127.0.0.1:9/filter"), "{v}");
}

/// A pod naming a scheduler no profile has is placed by the first profile in
/// `simulate` (which has no other scheduler to leave it to), and simulate
/// says so: a plugin of the user's profile did not run for it.
#[test]
fn simulate_warns_about_pods_no_profile_schedules() {
    let cluster = tmp(
        "adopted.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {allocatable: {cpu: '8', memory: 8Gi, pods: '10'}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: mine, namespace: default}\nspec: {containers: [{name: c, image: i}]}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: theirs, namespace: default}\nspec: {schedulerName: other-scheduler, containers: [{name: c, image: i}]}\n",
    );
    let out = berth(&["simulate", &cluster]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "warning: 1 pod(s) name schedulerName \"other-scheduler\", which no profile of the configuration has: simulate placed them with the profile \"default-scheduler\", where `berth run` would leave them to another scheduler"
    );
}
