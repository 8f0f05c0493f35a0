//! `berth run` against a real control plane: etcd, kube-apiserver,
//! kube-controller-manager and KWOK from testenv/ (started once for this test binary, or the one named by
//! `BERTH_TEST_KUBECONFIG`). The scheduler most tests share runs as deployed: under the
//! service account and RBAC of deploy/rbac.yaml, not as admin. Each test works in its own namespace on its own
//! KWOK nodes (labelled `berth-test: <namespace>`; its pods select them), and
//! waits on conditions with deadlines.

mod common;
#[path = "live/dra.rs"]
mod dra;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{json, Value};

/// The scheduler most tests share: two profiles, `berth` and `berth-two`.
/// It runs under a shell that stops it when this test process goes away
/// (its stdin, a pipe from us, closes).
struct Shared {
    http_port: u16,
    _stdin: Mutex<std::process::ChildStdin>,
    _child: Mutex<Child>,
}

fn shared_scheduler() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let identity = env().deployed_identity("deployed.kubeconfig");
        let config = write_temp(
            "shared.yaml",
            "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: true
  resourceName: berth-shared
  resourceNamespace: berth-system
profiles:
- schedulerName: berth
  pluginConfig:
  - name: VolumeBinding
    args: {bindTimeoutSeconds: 5}
- schedulerName: berth-two
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
",
        );
        let http_port = free_port();
        let log = std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("live/shared-berth.log")).unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$@" </dev/null & pid=$!; cat >/dev/null; kill -TERM $pid; wait $pid"#)
            .arg("sh")
            .arg(berth_bin())
            .args(["run", "--kubeconfig"])
            .arg(&identity)
            .arg("--config")
            .arg(&config)
            .args(["--secure-port", "0", "--http-address", &format!("127.0.0.1:{http_port}")])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start berth run");
        let stdin = child.stdin.take().unwrap();
        Shared { http_port, _stdin: Mutex::new(stdin), _child: Mutex::new(child) }
    })
}

#[tokio::test]
async fn binds_a_pod_with_scheduled_event_and_metrics() {
    let s = shared_scheduler();
    let ns = Ns::new("basic").await;
    let node = ns.node("n1", "4", json!({}), json!([])).await;
    ns.pod("web", "berth", "100m", json!({})).await;
    assert_eq!(ns.bound("web").await, node);
    let ev = ns.event("web", "Scheduled").await;
    assert_eq!(ev.note.as_deref(), Some(format!("Successfully assigned {}/web to {node}", ns.name).as_str()));
    assert_eq!(ev.type_.as_deref(), Some("Normal"));
    assert_eq!(ev.reporting_controller.as_deref(), Some("berth"));
    // KWOK runs it, and the API server set PodScheduled=True on binding.
    wait_for("the pod to run", || async { ns.pods().get("web").await.ok()?.status?.phase.filter(|p| p == "Running") }).await;
    assert_eq!(ns.pod_scheduled_condition("web").await.map(|c| c.0), Some("True".into()));

    let (code, _) = wait_for("/readyz", || async { http_get(s.http_port, "/readyz").await.filter(|(c, _)| *c == 200) }).await;
    assert_eq!(code, 200);
    let (_, metrics) = http_get(s.http_port, "/metrics").await.expect("/metrics answers");
    assert!(metrics.contains(r#"scheduler_schedule_attempts_total{result="scheduled",profile="berth"}"#), "{metrics}");
    assert!(metrics.contains("scheduler_pending_pods{queue=\"active\"}"), "{metrics}");
    // client-go's series, which the dashboard and the alerts read: the
    // binding was a POST answered 201, and this instance leads the lease.
    assert!(metrics.contains(r#"rest_client_requests_total{code="201",method="POST",host="127.0.0.1:"#), "{metrics}");
    assert!(metrics.contains(r#"leader_election_master_status{name="berth-shared"} 1"#), "{metrics}");
}

#[tokio::test]
async fn unschedulable_pod_gets_event_and_condition_then_schedules_when_a_node_is_added() {
    shared_scheduler();
    let ns = Ns::new("grow").await;
    ns.node("small", "1", json!({}), json!([])).await;
    ns.pod("big", "berth", "3", json!({})).await;
    // The pods and nodes watches are independent: a first attempt may come
    // before Berth has seen the node (then without it), so wait for the
    // attempt that weighed it.
    let ev = ns.event_noting("big", "FailedScheduling", "1 Insufficient cpu").await;
    let note = ev.note.unwrap_or_default();
    assert!(note.starts_with("0/"), "{note}");
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    let (status, reason, message) = wait_for("PodScheduled=False, weighing the node", || async {
        ns.pod_scheduled_condition("big").await.filter(|c| c.0 == "False" && c.2.contains("Insufficient cpu"))
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Unschedulable"));
    assert!(message.starts_with("0/"), "{message}");
    // The node-add event moves the pod back without waiting for the 5-minute flush.
    let big = ns.node("big", "8", json!({}), json!([])).await;
    assert_eq!(ns.bound("big").await, big);
}

#[tokio::test]
async fn taints_and_tolerations() {
    shared_scheduler();
    let ns = Ns::new("taint").await;
    let gpu = ns.node("gpu", "4", json!({}), json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])).await;
    ns.pod(
        "tolerant",
        "berth",
        "100m",
        json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
    )
    .await;
    assert_eq!(ns.bound("tolerant").await, gpu);
    // Only now is Berth known to have seen the node: the pods and nodes
    // watches are independent, and an attempt before the node arrived would
    // find none of this test's nodes (and say so, correctly).
    ns.pod("plain", "berth", "100m", json!({})).await;
    let note = ns.event("plain", "FailedScheduling").await.note.unwrap_or_default();
    // Other tests' tainted nodes (of earlier runs, on a reused environment)
    // may be counted too: TaintToleration runs before the node selector.
    assert!(note.contains(" node(s) had untolerated taint(s)"), "{note}");
    assert_eq!(ns.node_of("plain").await, None);
}

/// A pod with a value Berth does not know (a toleration operator behind an
/// alpha gate, which the 1.37 test environment turns on): pending, it stays
/// so and says why; on a node, it still takes its room there.
#[tokio::test]
async fn pods_berth_cannot_read_stay_pending_with_a_reason_and_still_count_on_their_node() {
    shared_scheduler();
    let ns = Ns::new("unreadable").await;
    let node = ns.node("n", "2", json!({}), json!([])).await;
    let gt = json!([{"key": "gpu-count", "operator": "Gt", "value": "2", "effect": "NoSchedule"}]);
    match ns.try_pod("old", "berth", "1500m", json!({"nodeName": node, "tolerations": gt})).await {
        Err(kube::Error::Api(e)) if e.code == 422 => {
            // Older API servers refuse the operator: Berth never meets such pods there.
            skip(Lack::Api, &format!("this API server refuses toleration operator Gt ({})", e.message));
            return;
        }
        r => r.map(drop).unwrap(),
    }
    ns.pod("unreadable", "berth", "100m", json!({"tolerations": gt})).await;
    let note = ns.event("unreadable", "FailedScheduling").await.note.unwrap_or_default();
    assert!(note.starts_with("Berth cannot read the pod: Pod "), "{note}");
    assert!(note.contains("spec.tolerations[0].operator: unsupported value \"Gt\""), "{note}");
    let condition = wait_for("the unreadable pod's PodScheduled condition", || async {
        ns.pod_scheduled_condition("unreadable").await.filter(|(status, reason, _)| status == "False" && reason == "SchedulerError")
    })
    .await;
    assert_eq!(condition.2, note);
    // The bound pod's 1.5 cores still count: 1 more does not fit on 2.
    // An attempt before Berth has seen the node would find none of this
    // test's nodes; wait for the one that weighed it.
    ns.pod("big", "berth", "1", json!({})).await;
    ns.event_noting("big", "FailedScheduling", "Insufficient cpu").await;
    assert_eq!(ns.node_of("unreadable").await, None);
    assert_eq!(ns.node_of("big").await, None);
}

/// An event series whose first event is not on the API server (lost while
/// it was away, or dropped from a full queue) starts the event again, with
/// its count, instead of failing on every repeat.
#[tokio::test]
async fn an_event_series_whose_first_event_was_lost_is_written_again() {
    use berth_core::framework::{EventRecord, EventType, ObjectRef};
    use berth_kube::controller::ApiAction;
    let ns = Ns::new("series").await;
    let client = berth_kube::client::ApiClient::connect(Some(&env().kubeconfig), 50.0, 100, Default::default()).await.unwrap();
    let reporter = berth_kube::api::Reporter { instance: "test".into() };
    let record = EventRecord {
        regarding: ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: ns.name.clone(),
            name: "p".into(),
            uid: String::new(),
        },
        reporting_controller: "berth".into(),
        event_type: EventType::Warning,
        reason: "FailedScheduling".into(),
        action: "Scheduling".into(),
        note: "0/1 nodes are available: 1 Insufficient cpu.".into(),
    };
    let series = |count| ApiAction::EventSeries {
        namespace: ns.name.clone(),
        event_name: "p.lost".into(),
        count,
        last_observed_ms: 1_800_000_000_000,
        record: Box::new(record.clone()),
    };
    berth_kube::api::execute(&client, &reporter, &series(2)).await.unwrap();
    let events = Api::<Event>::namespaced(ns.c.clone(), &ns.name);
    let e = events.get("p.lost").await.unwrap();
    assert_eq!((e.reason.as_deref(), e.note.as_deref()), (Some("FailedScheduling"), Some(record.note.as_str())));
    assert_eq!(e.series.map(|s| s.count), Some(2));
    // Later repeats patch the event that is there now.
    berth_kube::api::execute(&client, &reporter, &series(5)).await.unwrap();
    assert_eq!(events.get("p.lost").await.unwrap().series.map(|s| s.count), Some(5));
}

#[tokio::test]
async fn node_affinity_picks_the_matching_zone() {
    shared_scheduler();
    let ns = Ns::new("affinity").await;
    ns.node("a", "4", json!({"topology.kubernetes.io/zone": "a"}), json!([])).await;
    let b = ns.node("b", "4", json!({"topology.kubernetes.io/zone": "b"}), json!([])).await;
    let affinity = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["b"]}]}
    ]}}}});
    for i in 0..3 {
        ns.pod(&format!("p{i}"), "berth", "100m", affinity.clone()).await;
    }
    for i in 0..3 {
        assert_eq!(ns.bound(&format!("p{i}")).await, b);
    }
}

#[tokio::test]
async fn pod_anti_affinity_spreads_across_hostnames() {
    shared_scheduler();
    let ns = Ns::new("anti").await;
    for n in ["a", "b", "c"] {
        ns.node(n, "4", json!({}), json!([])).await;
    }
    let anti = json!({"labels": {"app": "db"}, "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}
    ]}}});
    for i in 0..4 {
        ns.pod(&format!("db{i}"), "berth", "100m", anti.clone()).await;
    }
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(ns.bound(&format!("db{i}")).await);
    }
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "one replica per node");
    let note = ns.event("db3", "FailedScheduling").await.note.unwrap_or_default();
    assert!(note.contains("3 node(s) didn't match pod anti-affinity rules"), "{note}");
}

#[tokio::test]
async fn topology_spread_across_zones() {
    shared_scheduler();
    let ns = Ns::new("spread").await;
    let mut last = String::new();
    for (n, z) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")] {
        last = ns.node(n, "4", json!({"topology.kubernetes.io/zone": z}), json!([])).await;
    }
    // Pods and nodes come on separate watches: a spread decided before
    // zone b is seen is a valid one (a single domain), so wait for Berth to
    // see the last node first (a pod without the app label, pinned to it).
    ns.pod("seen", "berth", "100m", json!({"nodeSelector": {"kubernetes.io/hostname": last}})).await;
    ns.bound("seen").await;
    let spread = json!({"labels": {"app": "web"}, "topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}
    }]});
    for i in 0..6 {
        ns.pod(&format!("w{i}"), "berth", "100m", spread.clone()).await;
    }
    let mut per_zone = std::collections::BTreeMap::new();
    for i in 0..6 {
        let node = ns.bound(&format!("w{i}")).await;
        let zone = if node.ends_with("-a1") || node.ends_with("-a2") { "a" } else { "b" };
        *per_zone.entry(zone).or_insert(0) += 1;
    }
    assert_eq!(per_zone.into_iter().collect::<Vec<_>>(), vec![("a", 3), ("b", 3)]);
}

#[tokio::test]
async fn preemption_nominates_and_deletes_the_victim() {
    shared_scheduler();
    let ns = Ns::new("preempt").await;
    ns.priority_classes().await;
    let node = ns.node("only", "1", json!({}), json!([])).await;
    ns.pod("victim", "berth", "800m", json!({"priorityClassName": format!("{}-low", ns.name)})).await;
    assert_eq!(ns.bound("victim").await, node);
    let victim_uid = ns.pods().get("victim").await.unwrap().metadata.uid;
    ns.pod("vip", "berth", "500m", json!({"priorityClassName": format!("{}-high", ns.name)})).await;
    let preempted = ns.event("victim", "Preempted").await;
    let vip_uid = ns.pods().get("vip").await.unwrap().metadata.uid.unwrap();
    assert_eq!(preempted.note.unwrap_or_default(), format!("Preempted by pod {vip_uid} on node {node}"));
    let ev = ns.event("vip", "FailedScheduling").await;
    assert!(ev.note.unwrap_or_default().contains("Insufficient cpu"));
    // The victim goes away (KWOK confirms the deletion as a kubelet would);
    // the preemptor lands on the node it was nominated to.
    wait_for("the victim to be gone", || async {
        match ns.pods().get_opt("victim").await.unwrap() {
            None => Some(()),
            Some(p) if p.metadata.uid != victim_uid => Some(()),
            Some(_) => None,
        }
    })
    .await;
    assert_eq!(ns.bound("vip").await, node);
    let vip = ns.pods().get("vip").await.unwrap();
    let nominated = vip.status.and_then(|s| s.nominated_node_name);
    // Upstream clears the nomination once bound only through the kubelet;
    // either way, if present it names the node.
    assert!(nominated.is_none() || nominated.as_deref() == Some(node.as_str()), "{nominated:?}");
}

#[tokio::test]
async fn two_profiles_in_one_process_and_other_schedulers_pods_left_alone() {
    shared_scheduler();
    let ns = Ns::new("profiles").await;
    ns.node("n", "4", json!({}), json!([])).await;
    ns.pod("theirs", "default-scheduler", "100m", json!({})).await;
    ns.pod("two", "berth-two", "100m", json!({})).await;
    ns.pod("one", "berth", "100m", json!({})).await;
    ns.bound("two").await;
    ns.bound("one").await;
    assert_eq!(ns.event("two", "Scheduled").await.reporting_controller.as_deref(), Some("berth-two"));
    assert_eq!(ns.event("one", "Scheduled").await.reporting_controller.as_deref(), Some("berth"));
    // `theirs` was created first; both later pods are decided, so Berth has seen it and left it.
    assert_eq!(ns.node_of("theirs").await, None);
    assert!(ns.events("theirs", "FailedScheduling").await.is_empty());
    assert!(ns.events("theirs", "Scheduled").await.is_empty());
    assert_eq!(ns.pod_scheduled_condition("theirs").await, None);
}

#[tokio::test]
async fn leader_election_one_schedules_and_the_other_takes_over() {
    let ns = Ns::new("leader").await;
    ns.node("n", "8", json!({}), json!([])).await;
    let lease_name = format!("{}-lease", ns.name);
    let config = write_temp(
        &format!("{}.yaml", ns.name),
        &format!(
            "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: true
  resourceNamespace: {ns}
  resourceName: {lease_name}
  leaseDuration: 4s
  renewDeadline: 3s
  retryPeriod: 500ms
profiles:
- schedulerName: {ns}
",
            ns = ns.name
        ),
    );
    let mut procs = vec![spawn_berth(&config, &format!("{}-a.log", ns.name)), spawn_berth(&config, &format!("{}-b.log", ns.name))];
    let leases = Api::<Lease>::namespaced(ns.c.clone(), &ns.name);
    let holder = || async { leases.get_opt(&lease_name).await.ok().flatten()?.spec?.holder_identity.filter(|h| !h.is_empty()) };
    let first = wait_for("a leader", holder).await;
    for i in 0..5 {
        ns.pod(&format!("p{i}"), &ns.name, "100m", json!({})).await;
    }
    for i in 0..5 {
        ns.bound(&format!("p{i}")).await;
    }
    let instances = |evs: Vec<Event>| evs.into_iter().filter_map(|e| e.reporting_instance).collect::<Vec<_>>();
    for i in 0..5 {
        ns.event(&format!("p{i}"), "Scheduled").await;
        let got = instances(ns.events(&format!("p{i}"), "Scheduled").await);
        assert_eq!(got, vec![format!("{}-{first}", ns.name)], "exactly one scheduler (the leader) bound p{i}");
    }
    // Kill the leader (no chance to release the lease); the standby takes over.
    let leader_idx =
        procs.iter().position(|p| first.ends_with(&format!("{:04x}", p.0.id() & 0xffff))).expect("the lease holder is one of ours");
    let killed = procs.remove(leader_idx);
    drop(killed);
    let second = wait_for("the standby to take over", || async { holder().await.filter(|h| *h != first) }).await;
    ns.pod("after", &ns.name, "100m", json!({})).await;
    ns.bound("after").await;
    ns.event("after", "Scheduled").await;
    assert_eq!(instances(ns.events("after", "Scheduled").await), vec![format!("{}-{second}", ns.name)]);
}

fn run_with_config(text: &str, name: &str) -> (i32, String) {
    let config = write_temp(name, text);
    let out = Command::new(berth_bin())
        .args(["run", "--kubeconfig"])
        .arg(&env().kubeconfig)
        .arg("--config")
        .arg(&config)
        .args(["--secure-port", "0", "--http-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn bad_configuration_is_refused_at_start_up() {
    let cases = [
        ("unknown-field.yaml", "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofilez: []\n", "profilez"),
        (
            "bad-percentage.yaml",
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\npercentageOfNodesToScore: 150\n",
            "percentageOfNodesToScore",
        ),
        (
            "unknown-plugin.yaml",
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: x\n  plugins:\n    filter:\n      enabled: [{name: NoSuchPlugin}]\n",
            "NoSuchPlugin",
        ),
        ("not-yaml.yaml", "profiles: [\n", "not YAML"),
    ];
    for (name, text, needle) in cases {
        let (code, stderr) = run_with_config(text, name);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.starts_with("berth: error:") && stderr.contains(needle), "{name}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: one line: {stderr}");
    }
}

#[tokio::test]
async fn deploy_manifests_are_accepted_by_the_api_server() {
    let e = env();
    // A server-side dry run checks namespaced objects against a namespace
    // that exists: create the one the manifests use (the rest stays a dry run).
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "berth-system"}})).unwrap();
    match Api::<Namespace>::all(client().await).create(&PostParams::default(), &ns).await {
        Ok(_) | Err(kube::Error::Api(_)) => {}
        Err(other) => panic!("{other}"),
    }
    let out = Command::new(controlplane())
        .args(["kubectl", "--kubeconfig"])
        .arg(&e.kubeconfig)
        .args(["apply", "--dry-run=server", "-f"])
        .arg(repo().join("deploy"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, String::from_utf8_lossy(&out.stderr));
    for kind in [
        "clusterrole.rbac.authorization.k8s.io/berth-scheduler",
        "deployment.apps/berth",
        "configmap/berth-config",
        "customresourcedefinition.apiextensions.k8s.io/podgroups.scheduling.x-k8s.io",
    ] {
        assert!(stdout.contains(kind), "{kind} missing: {stdout}");
    }
    // The ConfigMap's configuration is one `berth run` accepts.
    let cm: Value = serde_yaml::from_str(&std::fs::read_to_string(repo().join("deploy/config.yaml")).unwrap()).unwrap();
    let text = cm["data"]["config.yaml"].as_str().expect("config.yaml key");
    let p = write_temp("deploy-config.yaml", text);
    let out = Command::new(berth_bin()).args(["simulate", "--config"]).arg(&p).arg(repo().join("examples/cluster")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_custom_scheduler_runs_its_own_filter_score_pre_bind_and_bind_plugins() {
    let ns = Ns::new("custom").await;
    // The Team kind TeamQuota reads, and this test's team.
    kubectl(&["apply", "-f", &repo().join("examples/custom-scheduler/deploy/team-crd.yaml").display().to_string()], None);
    kubectl(&["wait", "--for", "condition=Established", "--timeout=60s", "crd/teams.example.berth.dev"], None);
    let team = ns.name.clone();
    kubectl(
        &["apply", "-f", "-"],
        Some(&format!("apiVersion: example.berth.dev/v1\nkind: Team\nmetadata: {{name: {team}}}\nspec: {{maxPods: 2}}\n")),
    );
    let pool = |p: &str| json!({"example.berth.dev/pool": p});
    let gold1 = ns.node("gold-1", "4", pool("gold"), json!([])).await;
    let gold3 = ns.node("gold-3", "4", pool("gold"), json!([])).await;
    let general = ns.node("general", "4", pool("general"), json!([])).await;
    ns.annotate_node(&gold1, json!({"example.berth.dev/cost": "1"})).await;
    ns.annotate_node(&gold3, json!({"example.berth.dev/cost": "3"})).await;
    let config = std::fs::read_to_string(repo().join("examples/custom-scheduler/deploy/config.yaml")).unwrap();
    let config = write_temp(
        &format!("{}.yaml", ns.name),
        &config.replace("schedulerName: custom-scheduler", &format!("schedulerName: {}", ns.name)),
    );
    let _scheduler = spawn_scheduler(&custom_scheduler_bin(), &config, &format!("{}.log", ns.name));

    // NodePool: the cheapest node of the pod's pool (the default pool without the annotation).
    ns.pod("train", &ns.name, "100m", json!({"annotations": {"example.berth.dev/pool": "gold"}})).await;
    assert_eq!(ns.bound("train").await, gold1);
    ns.pod("web", &ns.name, "100m", json!({})).await;
    assert_eq!(ns.bound("web").await, general);
    ns.pod("odd", &ns.name, "100m", json!({"annotations": {"example.berth.dev/pool": "silver"}})).await;
    let note = ns.event("odd", "FailedScheduling").await.note.unwrap_or_default();
    assert!(note.contains("3 node(s) are not in pool silver"), "{note}");

    // TeamQuota reads the Team object; two of its pods are admitted.
    let team_pod = json!({"labels": {"example.berth.dev/team": team}});
    for i in 0..3 {
        ns.pod(&format!("t{i}"), &ns.name, "100m", team_pod.clone()).await;
        if i < 2 {
            ns.bound(&format!("t{i}")).await;
        }
    }
    let note = ns.event("t2", "FailedScheduling").await.note.unwrap_or_default();
    assert!(note.contains(&format!("team {team} is at its quota of 2 pod(s)")), "{note}");
    assert_eq!(ns.node_of("t2").await, None);

    // PreBind stamped the admitted pods and recorded an event; StampedBinder
    // bound every pod (the annotation only a Binding of its own carries).
    for (pod, admitted) in [("t0", true), ("t1", true), ("train", false), ("web", false)] {
        let p = ns.pods().get(pod).await.unwrap();
        let a = p.metadata.annotations.unwrap_or_default();
        assert_eq!(a.get("example.berth.dev/bound-by").map(String::as_str), Some("StampedBinder"), "{pod}: {a:?}");
        assert_eq!(a.contains_key("example.berth.dev/admitted"), admitted, "{pod}: {a:?}");
    }
    let admitted = ns.event("t0", "Admitted").await;
    assert_eq!(admitted.reporting_controller.as_deref(), Some(ns.name.as_str()));
    assert!(admitted.note.unwrap_or_default().starts_with(&format!("team {team}: pod ")));

    // A new quota is an event TeamQuota registered for: the waiting pod goes.
    kubectl(
        &["apply", "-f", "-"],
        Some(&format!("apiVersion: example.berth.dev/v1\nkind: Team\nmetadata: {{name: {team}}}\nspec: {{maxPods: 3}}\n")),
    );
    ns.bound("t2").await;
}

impl Ns {
    /// Applies manifests (YAML); `NS` in them is replaced by this test's namespace.
    fn apply(&self, yaml: &str) {
        kubectl(&["apply", "-n", &self.name, "-f", "-"], Some(&yaml.replace("NS", &self.name)));
    }

    async fn claim(&self, name: &str) -> PersistentVolumeClaim {
        Api::<PersistentVolumeClaim>::namespaced(self.c.clone(), &self.name).get(name).await.unwrap()
    }

    /// Waits for the PV controller to bind claim `name`.
    async fn claim_bound(&self, name: &str) {
        wait_for(&format!("claim {}/{name} to be bound", self.name), || async {
            let c = self.claim(name).await;
            (c.status.and_then(|s| s.phase).as_deref() == Some("Bound")).then_some(())
        })
        .await
    }

    async fn failed_note(&self, pod: &str) -> String {
        self.event(pod, "FailedScheduling").await.note.unwrap_or_default()
    }
}

#[tokio::test]
async fn persistent_volume_claims_are_placed_and_bound_as_upstream_does() {
    shared_scheduler();
    let ns = Ns::new("volumes").await;
    let z1 = ns.node("z1", "8", json!({"topology.kubernetes.io/zone": "z1"}), json!([])).await;
    let z2 = ns.node("z2", "8", json!({"topology.kubernetes.io/zone": "z2"}), json!([])).await;
    let with_claim = |claim: &str| json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]});
    ns.apply(&format!(
        r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: NS-local}}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: NS-immediate}}
provisioner: example.com/nobody
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: NS-dynamic}}
provisioner: example.com/nobody
volumeBindingMode: WaitForFirstConsumer
---
# WaitForFirstConsumer, static: the only volume is on z2.
apiVersion: v1
kind: PersistentVolume
metadata: {{name: NS-local}}
spec:
  capacity: {{storage: 5Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: NS-local
  local: {{path: /mnt/disk}}
  nodeAffinity: {{required: {{nodeSelectorTerms: [{{matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [{z2}]}}]}}]}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: logs}}
spec: {{accessModes: [ReadWriteOnce], storageClassName: NS-local, resources: {{requests: {{storage: 1Gi}}}}}}
---
# Pre-bound to a volume in zone z1: the PV controller binds it.
apiVersion: v1
kind: PersistentVolume
metadata: {{name: NS-zonal}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  hostPath: {{path: /tmp/zonal}}
  claimRef: {{namespace: NS, name: db}}
  nodeAffinity: {{required: {{nodeSelectorTerms: [{{matchExpressions: [{{key: topology.kubernetes.io/zone, operator: In, values: [z1]}}]}}]}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: db}}
spec: {{accessModes: [ReadWriteOnce], storageClassName: "", volumeName: NS-zonal, resources: {{requests: {{storage: 1Gi}}}}}}
---
# Immediate, and nobody provisions it.
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: shared}}
spec: {{accessModes: [ReadWriteOnce], storageClassName: NS-immediate, resources: {{requests: {{storage: 1Gi}}}}}}
---
# WaitForFirstConsumer, to be provisioned (by nobody here).
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: dynamic}}
spec: {{accessModes: [ReadWriteOnce], storageClassName: NS-dynamic, resources: {{requests: {{storage: 1Gi}}}}}}
---
# ReadWriteOncePod.
apiVersion: v1
kind: PersistentVolume
metadata: {{name: NS-exclusive}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOncePod]
  storageClassName: ""
  hostPath: {{path: /tmp/exclusive}}
  claimRef: {{namespace: NS, name: exclusive}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: exclusive}}
spec: {{accessModes: [ReadWriteOncePod], storageClassName: "", volumeName: NS-exclusive, resources: {{requests: {{storage: 1Gi}}}}}}
"#
    ));

    // Static WaitForFirstConsumer: Berth picks the volume's node and binds
    // the volume to the claim; the PV controller completes the binding.
    ns.pod("logger", "berth", "100m", with_claim("logs")).await;
    assert_eq!(ns.bound("logger").await, z2);
    let claims = Api::<PersistentVolumeClaim>::namespaced(ns.c.clone(), &ns.name);
    let logs = wait_for("claim logs to be bound", || async {
        claims.get("logs").await.ok().filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
    })
    .await;
    assert_eq!(logs.spec.and_then(|s| s.volume_name), Some(format!("{}-local", ns.name)));
    assert_eq!(logs.metadata.annotations.unwrap_or_default().get("pv.kubernetes.io/bind-completed").map(String::as_str), Some("yes"));
    let pv = Api::<PersistentVolume>::all(ns.c.clone()).get(&format!("{}-local", ns.name)).await.unwrap();
    let claim_ref = pv.spec.and_then(|s| s.claim_ref).unwrap();
    assert_eq!((claim_ref.namespace.as_deref(), claim_ref.name.as_deref()), (Some(ns.name.as_str()), Some("logs")));
    assert_eq!(pv.metadata.annotations.unwrap_or_default().get("pv.kubernetes.io/bound-by-controller").map(String::as_str), Some("yes"));

    // A bound volume's node affinity: zone z1 only.
    ns.pod("db", "berth", "100m", with_claim("db")).await;
    assert_eq!(ns.bound("db").await, z1);

    // An Immediate claim nobody binds: pending with upstream's message.
    ns.pod("immediate", "berth", "100m", with_claim("shared")).await;
    let note = ns.failed_note("immediate").await;
    assert!(note.contains("pod has unbound immediate PersistentVolumeClaims"), "{note}");

    // To be provisioned: Berth selects a node on the claim, and the binding
    // waits (bindTimeoutSeconds: 5) for a provisioner this cluster lacks.
    ns.pod("dynamic", "berth", "100m", with_claim("dynamic")).await;
    let selected = wait_for("the claim's selected-node annotation", || async {
        ns.claim("dynamic").await.metadata.annotations.unwrap_or_default().get("volume.kubernetes.io/selected-node").cloned()
    })
    .await;
    assert!(selected == z1 || selected == z2, "{selected}");
    let note = ns.failed_note("dynamic").await;
    assert!(note.contains("binding volumes: context deadline exceeded"), "{note}");
    assert_eq!(ns.node_of("dynamic").await, None);

    // ReadWriteOncePod: the second pod waits for the first.
    ns.claim_bound("exclusive").await;
    ns.pod("holder", "berth", "100m", with_claim("exclusive")).await;
    ns.bound("holder").await;
    ns.pod("second", "berth", "100m", with_claim("exclusive")).await;
    let note = ns.failed_note("second").await;
    assert!(
        note.contains("unavailable due to PersistentVolumeClaim with ReadWriteOncePod access mode already in-use by another pod"),
        "{note}"
    );
    ns.pods().delete("holder", &Default::default()).await.unwrap();
    ns.bound("second").await;
}

#[tokio::test]
async fn csi_attach_limits_keep_pods_pending() {
    shared_scheduler();
    let ns = Ns::new("limits").await;
    let node = ns.node("n", "8", json!({}), json!([])).await;
    let mut manifests = format!(
        r#"
apiVersion: storage.k8s.io/v1
kind: CSINode
metadata: {{name: {node}}}
spec:
  drivers: [{{name: NS.csi.example.com, nodeID: {node}, allocatable: {{count: 1}}}}]
"#
    );
    for i in 1..=2 {
        manifests += &format!(
            r#"---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: NS-v{i}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  csi: {{driver: NS.csi.example.com, volumeHandle: v{i}}}
  claimRef: {{namespace: NS, name: v{i}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: v{i}}}
spec: {{accessModes: [ReadWriteOnce], storageClassName: "", volumeName: NS-v{i}, resources: {{requests: {{storage: 1Gi}}}}}}
"#
        );
    }
    ns.apply(&manifests);
    // Pre-bound claims are Immediate: until the PV controller has bound
    // them, their pods are (rightly) refused for that reason instead.
    ns.claim_bound("v1").await;
    ns.claim_bound("v2").await;
    let with_claim = |claim: &str| json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]});
    ns.pod("first", "berth", "100m", with_claim("v1")).await;
    assert_eq!(ns.bound("first").await, node);
    ns.pod("second", "berth", "100m", with_claim("v2")).await;
    let note = ns.failed_note("second").await;
    assert!(note.contains("1 node(s) exceed max volume count"), "{note}");
    assert_eq!(ns.node_of("second").await, None);
}

// ---- gangs -------------------------------------------------------------------

/// The PodGroup kind of API group `group` at `version`.
fn pod_groups(group: &str, version: &str) -> kube::core::ApiResource {
    kube::core::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: "PodGroup".into(),
        plural: "podgroups".into(),
    }
}

fn native_pod_groups() -> kube::core::ApiResource {
    pod_groups("scheduling.k8s.io", "v1beta1")
}

impl Ns {
    /// The native PodGroups of this namespace, or `None` where the API
    /// server does not serve them (before Kubernetes 1.37, or without the
    /// GenericWorkload gate): gang tests then have nothing to test.
    async fn native_groups(&self) -> Option<Api<kube::core::DynamicObject>> {
        let api = Api::namespaced_with(self.c.clone(), &self.name, &native_pod_groups());
        match api.list(&ListParams::default()).await {
            Ok(_) => Some(api),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                skip(Lack::Api, "scheduling.k8s.io/v1beta1 PodGroups are not served here");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// A native PodGroup `name` with `spec`.
    async fn group(&self, api: &Api<kube::core::DynamicObject>, name: &str, spec: Value) {
        let o: kube::core::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup", "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        api.create(&PostParams::default(), &o).await.unwrap();
    }

    /// The PodGroupInitiallyScheduled condition of a native PodGroup: (status, reason, message).
    async fn group_condition(&self, api: &Api<kube::core::DynamicObject>, name: &str) -> Option<(String, String, String)> {
        let o = api.get(name).await.ok()?;
        let cs = o.data.get("status")?.get("conditions")?.as_array()?.clone();
        let c = cs.into_iter().find(|c| c["type"] == "PodGroupInitiallyScheduled")?;
        let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
        Some((s("status"), s("reason"), s("message")))
    }

    /// A pod of this test in the native PodGroup `group`.
    async fn member(&self, name: &str, group: &str, cpu: &str, extra: Value) -> Pod {
        let mut spec = json!({"schedulingGroup": {"podGroupName": group}});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            spec[k] = v;
        }
        self.pod(name, "berth", cpu, spec).await
    }

    async fn delete_pod_now(&self, name: &str) {
        let dp = kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
        self.pods().delete(name, &dp).await.unwrap();
    }
}

/// A gang test's namespace, with the shared scheduler running and `nodes`
/// nodes of 4 CPUs (`n0`, `n1`, ...), and its native PodGroups; `None` (the
/// test has nothing to test) where the API server does not serve them.
async fn gang_namespace(prefix: &str, nodes: usize) -> Option<(Ns, Api<kube::core::DynamicObject>)> {
    shared_scheduler();
    let ns = Ns::new(prefix).await;
    let groups = ns.native_groups().await?;
    for i in 0..nodes {
        ns.node(&format!("n{i}"), "4", json!({}), json!([])).await;
    }
    Some((ns, groups))
}

/// Kubernetes 1.37's native gang: members wait until `minCount` of them
/// exist, then all are placed at once, and the PodGroup says so.
#[tokio::test]
async fn a_native_gang_is_placed_whole_once_min_count_members_exist() {
    let Some((ns, groups)) = gang_namespace("gang", 3).await else { return };
    ns.group(&groups, "train", json!({"schedulingPolicy": {"gang": {"minCount": 3}}})).await;
    ns.member("w0", "train", "3", json!({})).await;
    ns.member("w1", "train", "3", json!({})).await;
    ns.member("w2", "train", "3", json!({})).await;
    let mut nodes = Vec::new();
    for w in ["w0", "w1", "w2"] {
        nodes.push(ns.bound(w).await);
    }
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "3 CPUs each: one per node");
    let (status, reason, _) =
        wait_for("PodGroupInitiallyScheduled=True", || async { ns.group_condition(&groups, "train").await.filter(|c| c.0 == "True") })
            .await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Scheduled"));
    // Members held for quorum get no event, as upstream.
    assert!(ns.events("w0", "FailedScheduling").await.is_empty());
}

/// A gang that cannot fit binds nothing, and its pods and PodGroup say why.
#[tokio::test]
async fn a_native_gang_that_cannot_fit_binds_nothing_and_reports_why() {
    let Some((ns, groups)) = gang_namespace("gangbig", 2).await else { return };
    ns.group(&groups, "big", json!({"schedulingPolicy": {"gang": {"minCount": 3}}})).await;
    for w in ["w0", "w1", "w2"] {
        ns.member(w, "big", "3", json!({})).await;
    }
    let mut notes = Vec::new();
    for w in ["w0", "w1", "w2"] {
        notes.push(ns.event(w, "FailedScheduling").await.note.unwrap_or_default());
    }
    assert!(notes.iter().any(|n| n.contains("Insufficient cpu")), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("pod group is unschedulable, minCount (3) cannot be satisfied: 2 scheduled")), "{notes:?}");
    let (_, reason, message) =
        wait_for("PodGroupInitiallyScheduled=False", || async { ns.group_condition(&groups, "big").await.filter(|c| c.0 == "False") })
            .await;
    assert_eq!(reason, "Unschedulable");
    assert!(message.starts_with("pod group is unschedulable, minCount (3) cannot be satisfied"), "{message}");
    for w in ["w0", "w1", "w2"] {
        assert_eq!(ns.node_of(w).await, None, "{w} must not be bound");
    }
    // Nothing is held: a plain pod takes the room.
    ns.pod("small", "berth", "3", json!({})).await;
    ns.bound("small").await;
}

/// Two gangs that fit alone but not together: one is placed whole, the
/// other waits whole and is placed when the first is gone.
#[tokio::test]
async fn two_native_gangs_that_fit_alone_but_not_together_take_turns() {
    let Some((ns, groups)) = gang_namespace("gangs2", 2).await else { return };
    for g in ["a", "b"] {
        ns.group(&groups, g, json!({"schedulingPolicy": {"gang": {"minCount": 2}}})).await;
    }
    for (p, g) in [("a0", "a"), ("b0", "b"), ("a1", "a"), ("b1", "b")] {
        ns.member(p, g, "3", json!({})).await;
    }
    let first = wait_for("one gang bound whole", || async {
        for g in ["a", "b"] {
            if ns.node_of(&format!("{g}0")).await.is_some() && ns.node_of(&format!("{g}1")).await.is_some() {
                return Some(g);
            }
        }
        None
    })
    .await;
    let other = if first == "a" { "b" } else { "a" };
    ns.event(&format!("{other}0"), "FailedScheduling").await;
    assert_eq!(ns.node_of(&format!("{other}0")).await, None);
    assert_eq!(ns.node_of(&format!("{other}1")).await, None);
    for i in 0..2 {
        ns.delete_pod_now(&format!("{first}{i}")).await;
    }
    ns.bound(&format!("{other}0")).await;
    ns.bound(&format!("{other}1")).await;
}

/// A high-priority gang preempts lower-priority pods, all the room it needs
/// at once, and is then placed whole.
#[tokio::test]
async fn a_high_priority_native_gang_preempts_and_is_placed_whole() {
    let Some((ns, groups)) = gang_namespace("gangpre", 2).await else { return };
    ns.priority_classes().await;
    for v in ["low0", "low1"] {
        ns.pod(v, "berth", "3", json!({"priorityClassName": format!("{}-low", ns.name)})).await;
        ns.bound(v).await;
    }
    let high = format!("{}-high", ns.name);
    ns.group(&groups, "vip", json!({"schedulingPolicy": {"gang": {"minCount": 2}}, "priorityClassName": high})).await;
    for w in ["w0", "w1"] {
        ns.member(w, "vip", "3", json!({"priorityClassName": high})).await;
    }
    for v in ["low0", "low1"] {
        let note = ns.event(v, "Preempted").await.note.unwrap_or_default();
        assert!(note.starts_with("Preempted by pod "), "{note}");
    }
    ns.bound("w0").await;
    ns.bound("w1").await;
}

/// scheduler-plugins' PodGroup (the CRD in deploy/) with Coscheduling: a
/// group of minMember pods is placed whole; one short of members waits
/// with Coscheduling's message.
#[tokio::test]
async fn scheduler_plugins_pod_groups_are_placed_whole_with_coscheduling() {
    let crd = repo().join("deploy/crd-podgroups.scheduling.x-k8s.io.yaml");
    kubectl(&["apply", "-f", crd.to_str().unwrap()], None);
    kubectl(&["wait", "--for", "condition=established", "--timeout=60s", "crd/podgroups.scheduling.x-k8s.io"], None);
    let config = write_temp(
        "coscheduling.yaml",
        "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: false
profiles:
- schedulerName: berth-cosched
  plugins:
    multiPoint:
      enabled: [{name: Coscheduling}]
    queueSort:
      enabled: [{name: Coscheduling}]
      disabled: [{name: \"*\"}]
",
    );
    let _berth = spawn_berth(&config, "coscheduling.log");
    let ns = Ns::new("cosched").await;
    ns.node("n0", "4", json!({}), json!([])).await;
    ns.node("n1", "4", json!({}), json!([])).await;
    let groups: Api<kube::core::DynamicObject> =
        Api::namespaced_with(ns.c.clone(), &ns.name, &pod_groups("scheduling.x-k8s.io", "v1alpha1"));
    for (name, min) in [("job", 2), ("short", 3)] {
        let o: kube::core::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup", "metadata": {"name": name},
            "spec": {"minMember": min, "scheduleTimeoutSeconds": 10},
        }))
        .unwrap();
        groups.create(&PostParams::default(), &o).await.unwrap();
    }
    for (p, g) in [("job-0", "job"), ("job-1", "job"), ("short-0", "short")] {
        ns.pod(p, "berth-cosched", "3", json!({"labels": {"scheduling.x-k8s.io/pod-group": g}})).await;
    }
    let a = ns.bound("job-0").await;
    let b = ns.bound("job-1").await;
    assert_ne!(a, b);
    let note = ns.event("short-0", "FailedScheduling").await.note.unwrap_or_default();
    assert!(note.contains("cannot find enough sibling pods, current pods number: 1, minMember of group: 3"), "{note}");
    assert_eq!(ns.node_of("short-0").await, None);
}

/// A scheduler extender written here, configured as kube-scheduler's users
/// configure theirs: it manages `example.com/widget` (no node has it, and
/// NodeResourcesFit ignores it), keeps only nodes named `*-keep`, and binds
/// the pods it manages itself. A pod without a widget never reaches it.
#[tokio::test]
async fn an_extender_filters_and_binds_the_pods_it_manages() {
    let binds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = binds.clone();
    let url = serve_json(move |path, body| match path {
        "/filter" => {
            let names: Vec<Value> = body["NodeNames"].as_array().cloned().unwrap_or_default();
            let (keep, drop): (Vec<Value>, Vec<Value>) = names.into_iter().partition(|n| n.as_str().is_some_and(|n| n.ends_with("-keep")));
            let failed: serde_json::Map<String, Value> =
                drop.iter().filter_map(|n| Some((n.as_str()?.to_string(), json!("not a widget node")))).collect();
            (200, json!({"NodeNames": keep, "FailedNodes": failed, "Error": ""}).to_string())
        }
        "/bind" => {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let binding = json!({"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": body["PodName"], "namespace": body["PodNamespace"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": body["Node"]}});
            kubectl(&["create", "-f", "-"], Some(&binding.to_string()));
            (200, json!({"Error": ""}).to_string())
        }
        _ => (404, String::new()),
    });
    let config = write_temp(
        "extender.yaml",
        &format!(
            "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection: {{leaderElect: false}}
profiles:
- schedulerName: berth-extended
extenders:
- urlPrefix: {url}
  filterVerb: filter
  bindVerb: bind
  nodeCacheCapable: true
  httpTimeout: 10s
  managedResources: [{{name: example.com/widget, ignoredByScheduler: true}}]
"
        ),
    );
    let _berth = spawn_berth(&config, "extender.log");
    let ns = Ns::new("extender").await;
    let keep = ns.node("keep", "2", json!({}), json!([])).await;
    ns.node("roomy", "16", json!({}), json!([])).await;
    let widget = json!({"containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "100m", "example.com/widget": "1"}, "limits": {"example.com/widget": "1"}}}]});
    ns.pod("with-widget", "berth-extended", "100m", widget).await;
    assert_eq!(ns.bound("with-widget").await, keep, "the extender kept only {keep}");
    assert_eq!(binds.load(std::sync::atomic::Ordering::SeqCst), 1, "the extender bound it, not DefaultBinder");
    ns.pod("plain", "berth-extended", "100m", json!({})).await;
    ns.bound("plain").await;
    assert_eq!(binds.load(std::sync::atomic::Ordering::SeqCst), 1, "a pod without a widget never reaches the extender");
}

/// NodePool as WebAssembly guests, in Rust and in Go, loaded by the stock
/// `berth run` from its configuration (one profile each): pods go to their
/// pool, pods without one to the default pool, and a pod whose pool no node
/// is in gets NodePool's message in its FailedScheduling event.
#[tokio::test]
async fn webassembly_guests_place_pods_in_their_pool() {
    let dir = wasm_guests();
    let profile = |name: &str, guest: &str| {
        format!(
            "- schedulerName: {name}
  plugins: {{multiPoint: {{enabled: [{{name: NodePool}}]}}}}
  pluginConfig:
  - name: NodePool
    args: {{defaultPool: iron, wasm: {{path: \"{}\"}}}}
",
            dir.join(guest).display()
        )
    };
    let config = write_temp(
        "wasm.yaml",
        &format!(
            "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection: {{leaderElect: false}}
profiles:
{}{}",
            profile("berth-wasm-rs", "node_pool_rs.wasm"),
            profile("berth-wasm-go", "node_pool_go.wasm")
        ),
    );
    let _berth = spawn_berth(&config, "wasm.log");
    let ns = Ns::new("wasm").await;
    let gold = ns.node("gold", "4", json!({"example.berth.dev/pool": "gold"}), json!([])).await;
    let iron = ns.node("iron", "4", json!({"example.berth.dev/pool": "iron"}), json!([])).await;
    for (scheduler, lang) in [("berth-wasm-rs", "rs"), ("berth-wasm-go", "go")] {
        let pool = |p: &str| json!({"annotations": {"example.berth.dev/pool": p}});
        ns.pod(&format!("gold-{lang}"), scheduler, "100m", pool("gold")).await;
        ns.pod(&format!("plain-{lang}"), scheduler, "100m", json!({})).await;
        ns.pod(&format!("silver-{lang}"), scheduler, "100m", pool("silver")).await;
        assert_eq!(ns.bound(&format!("gold-{lang}")).await, gold, "{scheduler}");
        assert_eq!(ns.bound(&format!("plain-{lang}")).await, iron, "{scheduler}: the default pool");
        let note = ns.event(&format!("silver-{lang}"), "FailedScheduling").await.note.unwrap_or_default();
        assert!(note.contains("2 node(s) are not in pool silver"), "{scheduler}: {note}");
        assert_eq!(ns.node_of(&format!("silver-{lang}")).await, None);
    }
}

// ---- kubectl berth ------------------------------------------------------------

/// This machine's address on its first non-loopback interface: the API
/// server proxies to it (it refuses loopback endpoints).
fn host_ip() -> Option<std::net::IpAddr> {
    // The source address of the default route (connecting a UDP socket
    // sends nothing); machines without one fall back to `hostname -I`.
    let routed = std::net::UdpSocket::bind("0.0.0.0:0").ok().and_then(|s| {
        s.connect("203.0.113.1:9").ok()?;
        Some(s.local_addr().ok()?.ip())
    });
    let listed = || {
        let out = Command::new("hostname").arg("-I").output().ok()?;
        String::from_utf8_lossy(&out.stdout).split_whitespace().find_map(|a| a.parse::<std::net::IpAddr>().ok())
    };
    routed.or_else(listed).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

/// A kubeconfig for the service account `sa` of `namespace`, with a token
/// the API server issues: a user with only what RBAC grants it.
/// A new service account's token.
async fn service_account_token(c: &kube::Client, namespace: &str, sa: &str) -> String {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sas = Api::<ServiceAccount>::namespaced(c.clone(), namespace);
    sas.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": sa}})).unwrap()).await.unwrap();
    let tr: TokenRequest = serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    sas.create_token_request(sa, &PostParams::default(), &tr).await.unwrap().status.unwrap().token.unwrap()
}

async fn service_account_kubeconfig(c: &kube::Client, namespace: &str, sa: &str) -> PathBuf {
    let token = service_account_token(c, namespace, sa).await;
    let mut kc: Value = serde_yaml::from_str(&std::fs::read_to_string(&env().kubeconfig).unwrap()).unwrap();
    for u in kc["users"].as_array_mut().unwrap() {
        u["user"] = json!({"token": token});
    }
    write_temp(&format!("{namespace}-{sa}.kubeconfig"), &serde_yaml::to_string(&kc).unwrap())
}

/// `kubectl berth why` asks the live Berth through the API server's service
/// proxy, as a user granted only deploy/rbac-why.yaml's Role: it explains a
/// pending pod and a scheduled one, and a user without the Role is refused.
#[tokio::test]
async fn kubectl_berth_why_answers_through_the_api_server_for_a_granted_user_only() {
    let Some(ip) = host_ip() else {
        skip(Lack::Host, "no non-loopback address for the API server to reach Berth on");
        return;
    };
    let port = free_port();
    let config = write_temp(
        "why.yaml",
        "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: false
profiles:
- schedulerName: berth-why
",
    );
    // Served as deploy/deployment.yaml serves it: HTTPS, the diagnosis let
    // through (the API server's proxy has checked the user's RBAC).
    let serving = [
        "--bind-address",
        &ip.to_string(),
        "--secure-port",
        &port.to_string(),
        "--authorization-always-allow-paths",
        "/healthz,/readyz,/livez,/debug/berth/why/*",
    ];
    let _berth = spawn_run(&env().kubeconfig, Path::new(berth_bin()), &config, "why.log", &serving);
    let ns = Ns::new("why").await;
    let node = ns.node("n", "2", json!({}), json!([])).await;
    ns.pod("fits", "berth-why", "100m", json!({})).await;
    ns.pod("big", "berth-why", "8", json!({})).await;
    assert_eq!(ns.bound("fits").await, node);
    ns.event("big", "FailedScheduling").await;

    // Berth's Service, as deploy/service.yaml makes it, with this process
    // as its endpoint. The API server proxies only to pods: a Pod object
    // stands for Berth's, with this machine's address as its IP (it names
    // a scheduler nobody runs, so it stays as made).
    let home = Ns::new("berth-home").await;
    let stand_in: Pod = serde_json::from_value(json!({"metadata": {"name": "berth-0"},
        "spec": {"schedulerName": "nobody", "containers": [{"name": "berth", "image": "berth"}]}}))
    .unwrap();
    let home_pods = Api::<Pod>::namespaced(home.c.clone(), &home.name);
    home_pods.create(&PostParams::default(), &stand_in).await.unwrap();
    let ips = json!({"status": {"podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}]}});
    home_pods.patch_status("berth-0", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&ips)).await.unwrap();
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"name": "berth"}, "spec": {"ports": [{"name": "https", "port": 10259, "targetPort": port}]}}))
    .unwrap();
    Api::namespaced(home.c.clone(), &home.name).create(&PostParams::default(), &svc).await.unwrap();
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "berth-1", "labels": {"kubernetes.io/service-name": "berth"}},
        "addressType": if ip.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true},
            "targetRef": {"kind": "Pod", "namespace": home.name, "name": "berth-0"}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}))
    .unwrap();
    Api::namespaced(home.c.clone(), &home.name).create(&PostParams::default(), &slice).await.unwrap();
    // API servers before 1.37 read the (deprecated) Endpoints instead.
    let eps: k8s_openapi::api::core::v1::Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "berth"},
        "subsets": [{"addresses": [{"ip": ip.to_string(), "targetRef": {"kind": "Pod", "namespace": home.name, "name": "berth-0"}}],
            "ports": [{"name": "https", "port": port}]}]}))
    .unwrap();
    Api::namespaced(home.c.clone(), &home.name).create(&PostParams::default(), &eps).await.unwrap();
    // The Role users get (deploy/rbac-why.yaml), bound to one service account.
    let role = std::fs::read_to_string(repo().join("deploy/rbac-why.yaml"))
        .unwrap()
        .replace("namespace: berth-system", &format!("namespace: {}", home.name));
    kubectl(&["apply", "-f", "-"], Some(&role));
    let granted = service_account_kubeconfig(&home.c, &home.name, "granted").await;
    let stranger = service_account_kubeconfig(&home.c, &home.name, "stranger").await;
    kubectl(
        &["-n", &home.name, "create", "rolebinding", "why", "--role", "berth-why", &format!("--serviceaccount={}:granted", home.name)],
        None,
    );

    let ask = |kubeconfig: &Path, pod: &str| {
        Command::new(env!("CARGO_BIN_EXE_kubectl-berth"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--berth-namespace", &home.name, "why", pod, "-n", &ns.name])
            .output()
            .unwrap()
    };
    // RBAC caches and the proxy's endpoints take a moment to see the new objects.
    let out = wait_for("kubectl berth why to answer", || async {
        let o = ask(&granted, "big");
        o.status.success().then_some(o)
    })
    .await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with(&format!("{}/big: pending: 0/", ns.name)), "{text}");
    assert!(text.contains("NodeResourcesFit: Insufficient cpu"), "{text}");
    let out = ask(&granted, "fits");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with(&format!("{}/fits: scheduled on {node}", ns.name)), "{text}");
    let out = ask(&stranger, "big");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("forbidden") && err.contains("services/proxy"), "{err}");
}

/// The Helm chart, rendered by the real helm (`testenv/build-helm`), is
/// accepted by the API server (server-side dry run), and its configuration
/// is one `berth run` accepts.
#[tokio::test]
async fn kubectl_berth_what_if_places_new_pods_and_a_drained_nodes_pods_changing_nothing() {
    let ns = Ns::new("whatif").await;
    let a = ns.node("a", "4", json!({}), json!([])).await;
    let b = ns.node("b", "2", json!({}), json!([])).await;
    // Bound without a scheduler: 3 of a's 4 cpu, 1 of b's 2.
    ns.pod("x", "nobody", "3", json!({"nodeName": a})).await;
    ns.pod("y", "nobody", "1", json!({"nodeName": b})).await;
    let what_if = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-berth"))
            .arg("--kubeconfig")
            .arg(&env().kubeconfig)
            .args(["what-if", "-o", "json", "-n", &ns.name])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "what-if {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["pods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_string(), p.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // New pods: one of 1 cpu fits (1 left on each node); one of 2 fits nowhere.
    let manifests = write_temp(
        &format!("{}-new.yaml", ns.name),
        &[("small", "1"), ("large", "2")]
            .map(|(name, cpu)| {
                format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeSelector: {{berth-test: {ns}}}\n  containers: [{{name: c, image: i, resources: {{requests: {{cpu: '{cpu}'}}}}}}]\n",
                    ns = ns.name
                )
            })
            .join("---\n"),
    );
    let got = what_if(&["-f", manifests.to_str().unwrap()]);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["large", "small"]);
    assert!([&a, &b].map(|n| json!(n)).contains(&got["small"]["node"]), "{:?}", got["small"]);
    assert_eq!(got["large"]["node"], Value::Null);
    assert!(got["large"]["message"].as_str().unwrap().starts_with("0/"), "{:?}", got["large"]);
    assert!(got["large"]["message"].as_str().unwrap().contains("Insufficient cpu"), "{:?}", got["large"]);
    // Draining b moves y to a; draining a leaves x nowhere to go (b has 1 cpu free).
    let got = what_if(&["--drain", &b]);
    assert_eq!(got["y"]["node"], json!(a));
    let got = what_if(&["--drain", &a]);
    assert_eq!(got["x"]["node"], Value::Null);
    assert!(got["x"]["message"].as_str().unwrap().contains("Insufficient cpu"), "{:?}", got["x"]);
    // What it does not place, it says so about.
    let deployment = write_temp(&format!("{}-deployment.yaml", ns.name), "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n");
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-berth"))
        .arg("--kubeconfig")
        .arg(&env().kubeconfig)
        .args(["what-if", "-f", deployment.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("warning: skipped 1 object(s) of kind Deployment"), "{stderr}");
    // Nothing changed.
    assert_eq!((ns.node_of("x").await, ns.node_of("y").await), (Some(a.clone()), Some(b.clone())));
    assert!(ns.pods().get_opt("small").await.unwrap().is_none());
    let nodes = Api::<Node>::all(ns.c.clone());
    assert_eq!(nodes.get(&a).await.unwrap().spec.and_then(|s| s.unschedulable), None);
}

/// Secure serving as kube-scheduler's: HTTPS with a self-signed certificate;
/// /healthz and /readyz for anyone; /metrics and the diagnosis only for
/// callers the API server authenticates (TokenReview) and authorizes
/// (SubjectAccessReview), Berth running under deploy/rbac.yaml's rights.
#[tokio::test]
async fn https_endpoints_are_authenticated_and_authorized_by_the_api_server() {
    let ns = Ns::new("secure").await;
    let config = write_temp(
        &format!("{}.yaml", ns.name),
        &format!(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nleaderElection: {{leaderElect: false}}\nprofiles:\n- schedulerName: {}\n",
            ns.name
        ),
    );
    let identity = env().deployed_identity(&format!("{}-berth.kubeconfig", ns.name));
    let port = free_port();
    let serving = ["--bind-address", "127.0.0.1", "--secure-port", &port.to_string()];
    let _berth = spawn_run(&identity, Path::new(berth_bin()), &config, &format!("{}.log", ns.name), &serving);
    let reader = service_account_token(&ns.c, &ns.name, "reader").await;
    let stranger = service_account_token(&ns.c, &ns.name, "stranger").await;
    kubectl(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {ns}-reader}}
rules:
- nonResourceURLs: [/metrics, /debug/berth/why/*]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {ns}-reader}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {ns}-reader}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {ns}}}]
",
            ns = ns.name
        )),
    );
    let code = |path: &str, token: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"]);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let out = c.arg(format!("https://127.0.0.1:{port}{path}")).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for("Berth to be ready over HTTPS, to anyone", || async { (code("/readyz", None) == "200").then_some(()) }).await;
    assert_eq!(code("/healthz", None), "200");
    assert_eq!(code("/metrics", None), "403", "anonymous");
    assert_eq!(code("/metrics", Some("not-a-token")), "401");
    // RBAC takes a moment to see the new binding (and Berth caches a denial for 10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while code("/metrics", Some(&reader)) != "200" {
        assert!(std::time::Instant::now() < deadline, "the reader was never let in");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(code("/metrics", Some(&stranger)), "403");
    assert_eq!(code(&format!("/debug/berth/why/{}/nope", ns.name), Some(&stranger)), "403");
    // The reader reaches the diagnosis: Berth's own answer, no such attempt.
    assert_eq!(code(&format!("/debug/berth/why/{}/nope", ns.name), Some(&reader)), "404");
    kubectl(&["delete", "clusterrole,clusterrolebinding", &format!("{}-reader", ns.name)], None);
}

#[tokio::test]
async fn the_helm_chart_is_accepted_by_the_api_server() {
    let build = Command::new(repo().join("testenv/build-helm")).stderr(Stdio::inherit()).output().expect("run testenv/build-helm");
    assert!(build.status.success(), "testenv/build-helm failed");
    let helm = PathBuf::from(last_line(&build.stdout)).join("helm");
    let ns = Ns::new("helm").await;
    let chart = repo().join("deploy/helm/berth");
    let render = |extra: &[&str]| {
        let out =
            Command::new(&helm).args(["template", "berth", chart.to_str().unwrap(), "--namespace", &ns.name]).args(extra).output().unwrap();
        assert!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let manifests = render(&[]);
    let applied = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&manifests));
    for kind in [
        "serviceaccount/berth",
        "clusterrole.rbac.authorization.k8s.io/berth",
        "role.rbac.authorization.k8s.io/berth-leader-election",
        "role.rbac.authorization.k8s.io/berth-why",
        "configmap/berth-config",
        "deployment.apps/berth",
        "service/berth",
    ] {
        assert!(applied.contains(kind), "{kind} missing: {applied}");
    }
    // Values reach the configuration, which Berth accepts.
    let custom = render(&["--set", "profiles[0].schedulerName=gpu", "--set", "extraConfig.percentageOfNodesToScore=30"]);
    let cm = custom.split("\n---").find(|d| d.contains("kind: ConfigMap")).expect("a ConfigMap");
    let cm: Value = serde_yaml::from_str(cm).unwrap();
    let text = cm["data"]["config.yaml"].as_str().expect("config.yaml");
    assert!(text.contains("schedulerName: gpu") && text.contains("percentageOfNodesToScore: 30"), "{text}");
    assert!(text.contains(&format!("resourceNamespace: {}", ns.name)), "{text}");
    let p = write_temp("helm-config.yaml", text);
    let out = Command::new(berth_bin()).args(["simulate", "--config"]).arg(&p).arg(repo().join("examples/cluster")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Monitoring: the dashboard's ConfigMap is accepted and carries the
    // dashboard as it is in deploy/; the PrometheusRule (its CRD is not
    // served here) holds the alerts of deploy/, for this release's job.
    let files = repo().join("deploy/helm/berth/files");
    let monitoring = render(&["--set", "grafanaDashboard.enabled=true", "--set", "prometheusRule.enabled=true"]);
    let doc = |kind: &str| -> Value {
        let d = monitoring.split("\n---").find(|d| d.contains(&format!("\nkind: {kind}\n"))).unwrap_or_else(|| panic!("no {kind}"));
        serde_yaml::from_str(d).unwrap()
    };
    let dashboard_cm = doc("ConfigMap\nmetadata:\n  name: berth-dashboard");
    let applied = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&serde_json::to_string(&dashboard_cm).unwrap()));
    assert!(applied.contains("configmap/berth-dashboard"), "{applied}");
    assert_eq!(dashboard_cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: Value = serde_json::from_str(dashboard_cm["data"]["berth-dashboard.json"].as_str().unwrap()).unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(files.join("berth-dashboard.json")).unwrap()).unwrap();
    assert_eq!(shipped, file);
    let rule = doc("PrometheusRule");
    let file: Value = serde_yaml::from_str(&std::fs::read_to_string(files.join("berth.rules.yaml")).unwrap()).unwrap();
    assert_eq!(rule["spec"]["groups"], serde_json::to_value(&file["groups"]).unwrap());
    // Another release's rules select its own scrape job.
    let out = Command::new(&helm)
        .args([
            "template",
            "edge",
            chart.to_str().unwrap(),
            "--set",
            "prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ])
        .output()
        .unwrap();
    let edge = String::from_utf8_lossy(&out.stdout);
    assert!(edge.contains("job=\"edge-berth\"") && !edge.contains("job=\"berth\""), "{edge}");
}
