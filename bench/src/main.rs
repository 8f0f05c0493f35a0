//! `berth-bench`: Berth, upstream kube-scheduler and a logic-free binder on
//! the same real API server and the same KWOK nodes, one after the other, in
//! one run. Workloads are scheduler_perf's shapes. For each run: throughput
//! (measured pods / time from the first create to the last binding seen),
//! create→bound latency percentiles (client clock: create sent → watch sees
//! spec.nodeName), the scheduler process's CPU seconds and peak RSS, and
//! correctness (every pod bound, no node over-committed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use governor::{Quota, RateLimiter};
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::{Binding, Namespace, Node, ObjectReference, Pod};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod plot;

const WORKLOADS: [&str; 12] = [
    "SchedulingBasic",
    "PodAntiAffinity",
    "TopologySpreading",
    "NodeAffinity",
    "Preemption",
    "Mixed",
    "GangScheduling",
    "GangMixed",
    "SchedulingWithResourceClaimTemplate",
    "SchedulingWithResourceClaim",
    "Partitionable",
    "FirstAvailable",
];
/// Pods per native PodGroup (gang, minCount = size) in the gang workloads.
const GANG_SIZE: usize = 50;
const SCHEDULER_NAME: &str = "bench";
const ZONES: usize = 3;

#[derive(Parser)]
#[command(name = "berth-bench", about = "Berth vs kube-scheduler vs a raw binder on one real API server")]
struct Args {
    /// KWOK nodes (4 CPU, 32Gi, 110 pods each; zones zone-0..2).
    #[arg(long, default_value_t = 500)]
    nodes: usize,
    /// Measured pods per run (PodAntiAffinity needs one node per pod).
    #[arg(long, default_value_t = 500)]
    pods: usize,
    /// Comma-separated workloads, or `all`.
    #[arg(long, default_value = "all")]
    workloads: String,
    /// Comma-separated: berth, kube-scheduler, raw.
    #[arg(long, default_value = "berth,kube-scheduler,raw")]
    schedulers: String,
    /// Comma-separated client settings: default (QPS 50, burst 100), unlimited.
    #[arg(long, default_value = "unlimited,default")]
    limits: String,
    /// Where results.{json,md,png} go.
    #[arg(long, default_value = "target/bench-results")]
    out: PathBuf,
    /// Use this API server instead of starting testenv/.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Rewrite results.md and results.png from the results.json already in
    /// --out, without running anything.
    #[arg(long)]
    report_only: bool,
    /// Create the measured pods at this fixed rate (pods per second) instead
    /// of as fast as 32 concurrent requests go. Under a client limit every
    /// scheduler binds at the limiter's pace, so create->bound latency then
    /// depends on when the pods were created, and a scheduler that takes more
    /// CPU from the harness slows its creates: a fixed pace compares the
    /// schedulers alone.
    #[arg(long, default_value_t = 0.0)]
    create_rate: f64,
    /// Give up on a run after this many seconds without a new binding.
    #[arg(long, default_value_t = 60)]
    stall_seconds: u64,
    /// Instead of the workloads: a backlog of this many pending pods that
    /// fit nowhere; measures each scheduler's memory and CPU while they
    /// wait (kubernetes #114362). Uses --nodes and --schedulers (not raw).
    #[arg(long)]
    backlog: Option<usize>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct RunResult {
    workload: String,
    scheduler: String,
    limits: String,
    pods: usize,
    bound: usize,
    throughput: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    /// When the harness issued its last create, from the run's start: under
    /// a client limit every scheduler binds at the same pace, so the later
    /// the pods are created the lower their create->bound latency.
    #[serde(default)]
    last_created_ms: f64,
    cpu_seconds: Option<f64>,
    cpu_seconds_per_1000_pods: Option<f64>,
    peak_rss_mib: Option<f64>,
    all_bound: bool,
    overcommitted_nodes: usize,
}

impl RunResult {
    /// Whether the run did all its work: every measured pod bound and no
    /// node over-committed. An incomplete run's figures compare nothing.
    fn complete(&self) -> bool {
        self.all_bound && self.overcommitted_nodes == 0
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repo root")
}

fn last_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out).lines().last().unwrap_or_default().trim().to_string()
}

async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    cfg.read_timeout = Some(Duration::from_secs(300));
    Ok(kube::Client::try_from(cfg)?)
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

/// Runs `n` futures produced by `f(i)` with `width` in flight.
async fn for_each_concurrent<F, Fut>(n: usize, width: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    futures::stream::iter(0..n).map(f).buffer_unordered(width).try_collect::<Vec<()>>().await.map(|_| ())
}

async fn create_nodes(c: &kube::Client, n: usize) -> Result<()> {
    let api = Api::<Node>::all(c.clone());
    let existing = api.list(&ListParams::default().labels("berth-bench=node")).await?.items.len();
    for_each_concurrent(n.saturating_sub(existing), 32, |i| {
        let api = api.clone();
        let i = i + existing;
        async move {
            let name = format!("bench-node-{i:05}");
            let node: Node = from_json(json!({
                "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {"berth-bench": "node", "kubernetes.io/hostname": name, "topology.kubernetes.io/zone": format!("zone-{}", i % ZONES)}},
                "status": {"allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"}, "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"}}
            }));
            api.create(&PostParams::default(), &node).await?;
            Ok(())
        }
    })
    .await?;
    // Wait for KWOK to mark them Ready, so its status writes are not part of a run.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let nodes = api.list(&ListParams::default().labels("berth-bench=node")).await?.items;
        let ready = nodes
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        if ready >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {ready}/{n} nodes became Ready");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The measured pod `i` of a workload.
fn pod_spec(workload: &str, i: usize) -> Value {
    let shape =
        if workload == "Mixed" { ["SchedulingBasic", "PodAntiAffinity", "TopologySpreading", "NodeAffinity"][i % 4] } else { workload };
    let mut spec = json!({
        "schedulerName": SCHEDULER_NAME,
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}],
    });
    let mut labels = json!({"workload": workload});
    match shape {
        "PodAntiAffinity" => {
            // One pod per node: in groups of 40 (Mixed), or all of them (the workload itself).
            let group = if workload == "Mixed" { format!("g{}", i / 40) } else { "all".into() };
            labels["anti"] = json!(group);
            spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"anti": group}}, "topologyKey": "kubernetes.io/hostname"}]}});
        }
        "TopologySpreading" => {
            labels["spread"] = json!("yes");
            spec["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"spread": "yes"}}}]);
        }
        "NodeAffinity" => {
            spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-0"]}]}]}}});
        }
        "Preemption" => {
            spec["priorityClassName"] = json!("bench-high");
            spec["containers"][0]["resources"]["requests"] = json!({"cpu": "1", "memory": "1Gi"});
        }
        "SchedulingWithResourceClaimTemplate" | "Partitionable" | "FirstAvailable" => {
            // scheduler_perf's pod-with-claim-template.yaml.
            spec["resourceClaims"] = json!([{"name": "resource", "resourceClaimTemplateName": "test-claim-template"}]);
            spec["containers"][0]["resources"]["claims"] = json!([{"name": "resource"}]);
        }
        "SchedulingWithResourceClaim" => {
            // pod-with-claim-ref.yaml: five pods share each claim.
            spec["resourceClaims"] = json!([{"name": "resource", "resourceClaimName": format!("test-claim-{}", i / 5)}]);
            spec["containers"][0]["resources"]["claims"] = json!([{"name": "resource"}]);
        }
        "GangScheduling" | "GangMixed" => {
            // scheduler_perf's gang pods: 100m / 100Mi. In GangMixed each odd
            // gang's first member asks for more than a node has.
            let gang = i / GANG_SIZE;
            spec["schedulingGroup"] = json!({"podGroupName": format!("gang-{gang}")});
            let cpu = if workload == "GangMixed" && gang % 2 == 1 && i % GANG_SIZE == 0 { "5" } else { "100m" };
            spec["containers"][0]["resources"]["requests"] = json!({"cpu": cpu, "memory": "100Mi"});
        }
        _ => {}
    }
    json!({"metadata": {"name": format!("p-{i:06}"), "labels": labels}, "spec": spec})
}

/// Whether a workload's pods claim devices (DRA).
fn is_dra(workload: &str) -> bool {
    matches!(workload, "SchedulingWithResourceClaimTemplate" | "SchedulingWithResourceClaim" | "Partitionable" | "FirstAvailable")
}

/// A short name for a workload, for namespaces (at most 63 characters).
fn short(workload: &str) -> String {
    match workload {
        "SchedulingWithResourceClaimTemplate" => "dra-template".into(),
        "SchedulingWithResourceClaim" => "dra-shared".into(),
        "Partitionable" => "dra-partitionable".into(),
        "FirstAvailable" => "dra-firstavailable".into(),
        w => w.to_lowercase(),
    }
}

fn resource_api(kind: &str, plural: &str) -> kube::core::ApiResource {
    kube::core::ApiResource {
        group: "resource.k8s.io".into(),
        version: "v1".into(),
        api_version: "resource.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The devices, class and claims of a DRA workload, as scheduler_perf's
/// templates make them (test/integration/scheduler_perf/dra/templates), for
/// a driver of the run's own (`<ns>.dra.bench`): runs do not share devices
/// a previous run's claims may still hold. Returns the objects to delete after.
async fn dra_setup(
    c: &kube::Client,
    ns: &str,
    workload: &str,
    nodes: usize,
    pods: usize,
) -> Result<Vec<(kube::core::ApiResource, String)>> {
    let driver = format!("{ns}.dra.bench");
    let mut cleanup = Vec::new();
    let class_api: Api<kube::core::DynamicObject> = Api::all_with(c.clone(), &resource_api("DeviceClass", "deviceclasses"));
    let class = |name: &str, driver: &str| -> kube::core::DynamicObject {
        from_json(json!({"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": name},
            "spec": {"selectors": [{"cel": {"expression": format!("device.driver == \"{driver}\"")}}]}}))
    };
    for (name, d) in [(format!("{ns}-test-class"), driver.clone()), (format!("{ns}-no-devices"), "no-such-driver.dra.bench".to_string())] {
        let _ = class_api.delete(&name, &Default::default()).await;
        class_api
            .create(&PostParams::default(), &class(&name, &d))
            .await
            .context("creating a DeviceClass (does the API server serve resource.k8s.io/v1?)")?;
        cleanup.push((resource_api("DeviceClass", "deviceclasses"), name));
    }
    let slices: Api<kube::core::DynamicObject> = Api::all_with(c.clone(), &resource_api("ResourceSlice", "resourceslices"));
    let names = Arc::new(Mutex::new(Vec::new()));
    for_each_concurrent(nodes, 32, |i| {
        let (slices, driver, names) = (slices.clone(), driver.clone(), names.clone());
        let ns = ns.to_string();
        let workload = workload.to_string();
        async move {
            let node = format!("bench-node-{i:05}");
            let pool = json!({"name": format!("{ns}-{i}"), "generation": 1, "resourceSliceCount": if workload == "Partitionable" { 2 } else { 1 }});
            let mut objects = Vec::new();
            if workload == "Partitionable" {
                // resourceslice-partitionable-{countersets,devices}.yaml.
                let ones = |names: &[&str]| -> Value { names.iter().map(|n| (n.to_string(), json!({"value": "1"}))).collect::<serde_json::Map<_, _>>().into() };
                objects.push(json!({"metadata": {"name": format!("{ns}-counters-{i}")}, "spec": {"driver": driver, "nodeName": node, "pool": pool,
                    "sharedCounters": [{"name": "counter-set", "counters": ones(&["counter1", "counter2", "counter3", "counter4"])}]}}));
                objects.push(json!({"metadata": {"name": format!("{ns}-devices-{i}")}, "spec": {"driver": driver, "nodeName": node, "pool": pool,
                    "devices": [
                        {"name": "device-1", "consumesCounters": [{"counterSet": "counter-set", "counters": ones(&["counter1", "counter2"])}]},
                        {"name": "device-2", "consumesCounters": [{"counterSet": "counter-set", "counters": ones(&["counter3", "counter4"])}]}]}}));
            } else {
                // resourceslice-basic-devices.yaml (two devices for shared claims).
                let count = if workload == "SchedulingWithResourceClaim" { 2 } else { 10 };
                let devices: Vec<Value> = (0..count).map(|d| json!({"name": format!("basic-device-{d}"), "attributes": {
                    "driverVersion": {"version": "1.2.3"}, "model": {"string": "B60"}, "type": {"string": "gpu"},
                    "resource.kubernetes.io/pciRoot": {"string": format!("pci0000:0{}", d % 2)}},
                    "capacity": {"memory": {"value": "24480Mi"}, "millicores": {"value": "1k"}}})).collect();
                objects.push(json!({"metadata": {"name": format!("{ns}-{i}")}, "spec": {"driver": driver, "nodeName": node, "pool": pool, "devices": devices}}));
            }
            for mut o in objects {
                o["apiVersion"] = json!("resource.k8s.io/v1");
                o["kind"] = json!("ResourceSlice");
                let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
                slices.create(&PostParams::default(), &from_json(o)).await?;
                names.lock().unwrap().push(name);
            }
            Ok(())
        }
    })
    .await?;
    for name in names.lock().unwrap().drain(..) {
        cleanup.push((resource_api("ResourceSlice", "resourceslices"), name));
    }
    let class = format!("{ns}-test-class");
    match workload {
        "SchedulingWithResourceClaim" => {
            let claims: Api<kube::core::DynamicObject> =
                Api::namespaced_with(c.clone(), ns, &resource_api("ResourceClaim", "resourceclaims"));
            for_each_concurrent(pods.div_ceil(5), 32, |k| {
                let (claims, class) = (claims.clone(), class.clone());
                async move {
                    let o = json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": format!("test-claim-{k}")},
                        "spec": {"devices": {"requests": [{"name": "req-0", "exactly": {"deviceClassName": class}}]}}});
                    claims.create(&PostParams::default(), &from_json(o)).await?;
                    Ok(())
                }
            })
            .await?;
        }
        _ => {
            let request = match workload {
                "Partitionable" => {
                    json!({"name": "req-0", "exactly": {"deviceClassName": class, "allocationMode": "ExactCount", "count": 2}})
                }
                "FirstAvailable" => json!({"name": "req-0", "firstAvailable": [
                    {"name": "sub-0", "deviceClassName": format!("{ns}-no-devices")}, {"name": "sub-1", "deviceClassName": class}]}),
                _ => json!({"name": "req-0", "exactly": {"deviceClassName": class}}),
            };
            let templates: Api<kube::core::DynamicObject> =
                Api::namespaced_with(c.clone(), ns, &resource_api("ResourceClaimTemplate", "resourceclaimtemplates"));
            let o = json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate", "metadata": {"name": "test-claim-template"},
                "spec": {"spec": {"devices": {"requests": [request]}}}});
            templates.create(&PostParams::default(), &from_json(o)).await?;
        }
    }
    Ok(cleanup)
}

/// How many of `pods` measured pods a correct scheduler binds.
fn placeable(workload: &str, nodes: usize, pods: usize) -> usize {
    match workload {
        "GangMixed" => (0..pods).filter(|i| (i / GANG_SIZE) % 2 == 0).count(),
        // Two partitionable devices per node, two per claim.
        "Partitionable" => pods.min(nodes),
        // Ten devices per node (two for shared claims, each shared by five pods).
        "SchedulingWithResourceClaimTemplate" | "FirstAvailable" => pods.min(nodes * 10),
        "SchedulingWithResourceClaim" => pods.min(nodes * 10),
        _ => pods,
    }
}

/// The native PodGroups of the gang workloads (minCount = the gang's size),
/// made before their pods as the Job controller does.
async fn pod_groups(c: &kube::Client, ns: &str, pods: usize) -> Result<()> {
    let ar = kube::core::ApiResource {
        group: "scheduling.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "scheduling.k8s.io/v1beta1".into(),
        kind: "PodGroup".into(),
        plural: "podgroups".into(),
    };
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(c.clone(), ns, &ar);
    for_each_concurrent(pods.div_ceil(GANG_SIZE), 32, |g| {
        let api = api.clone();
        async move {
            let size = GANG_SIZE.min(pods - g * GANG_SIZE);
            let o: kube::core::DynamicObject = from_json(json!({"apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup",
                "metadata": {"name": format!("gang-{g}")}, "spec": {"schedulingPolicy": {"gang": {"minCount": size}}}}));
            match api.create(&PostParams::default(), &o).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()), // from an earlier run
                Err(e) => Err(e).context("creating PodGroups (does the API server serve scheduling.k8s.io/v1beta1?)"),
            }
        }
    })
    .await
}

/// Pods present before the measured ones: for Preemption, every node full of
/// low-priority pods (4 × 1 CPU), so each measured pod needs one victim. For
/// the gang workloads, their PodGroups.
async fn init_pods(c: &kube::Client, ns: &str, workload: &str, nodes: usize, pods: usize) -> Result<()> {
    if workload.starts_with("Gang") {
        return pod_groups(c, ns, pods).await;
    }
    if workload != "Preemption" {
        return Ok(());
    }
    let api = Api::<Pod>::namespaced(c.clone(), ns);
    for_each_concurrent(nodes * 4, 32, |i| {
        let api = api.clone();
        async move {
            let pod: Pod = from_json(json!({"metadata": {"name": format!("low-{i:06}")}, "spec": {
                "nodeName": format!("bench-node-{:05}", i / 4), "priorityClassName": "bench-low",
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}));
            api.create(&PostParams::default(), &pod).await?;
            Ok(())
        }
    })
    .await
}

fn config_yaml(kubeconfig: &Path, unlimited: bool) -> String {
    let (qps, burst) = if unlimited { (100000, 100000) } else { (50, 100) };
    format!(
        "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {}
  qps: {qps}
  burst: {burst}
leaderElection:
  leaderElect: false
profiles:
- schedulerName: {SCHEDULER_NAME}
",
        kubeconfig.display()
    )
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first, so both schedulers shut down as they would in production.
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds (user + system) and peak RSS (MiB) of a process, from /proc.
fn proc_usage(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((ticks / 100.0, hwm_kb / 1024.0))
}

/// Resident memory now (VmRSS), MiB.
fn rss_now(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[derive(Serialize, Debug)]
struct BacklogResult {
    scheduler: String,
    pods: usize,
    /// Pods with PodScheduled=False when measured.
    attempted: usize,
    /// From the first create to the last pod marked unschedulable.
    seconds_to_attempt_all: f64,
    cpu_seconds_to_attempt_all: f64,
    peak_rss_mib: f64,
    /// RSS after the idle wait.
    rss_waiting_mib: f64,
    /// CPU seconds used during the idle wait, per minute.
    cpu_seconds_per_minute_waiting: f64,
}

/// A backlog of `n` pods that fit nowhere (5 CPUs on 4-CPU nodes): how much
/// the scheduler holds and burns while they wait.
/// How long the backlog's waiting is let settle before it is measured.
const SETTLE: Duration = Duration::from_secs(30);

async fn backlog_run(c: &kube::Client, args: &Args, bin: &Path, kubeconfig: &Path, scheduler: &str, n: usize) -> Result<BacklogResult> {
    let ns = format!("bench-backlog-{scheduler}");
    let pods = empty_namespace(c, &ns).await?;
    std::fs::create_dir_all(&args.out)?;
    let config = args.out.join("config-unlimited.yaml");
    std::fs::write(&config, config_yaml(kubeconfig, true))?;
    let unschedulable: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watch = {
        let (seen, pods) = (unschedulable.clone(), pods.clone());
        tokio::spawn(async move {
            let mut s = std::pin::pin!(watcher::watcher(pods, watcher::Config::default()));
            while let Some(e) = s.next().await {
                if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = e {
                    let marked = p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                        cs.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
                    });
                    if marked {
                        seen.lock().unwrap().entry(p.metadata.name.unwrap_or_default()).or_insert_with(Instant::now);
                    }
                }
            }
        })
    };
    let proc_ = start_scheduler(scheduler, bin, &config, &args.out.join(format!("{ns}.log")))?;
    let pid = proc_.0.id();
    // Ready when it has marked a first unschedulable pod.
    let warm = {
        let mut v = pod_spec("SchedulingBasic", 0);
        v["metadata"]["name"] = json!("warmup");
        v["spec"]["containers"][0]["resources"]["requests"] = json!({"cpu": "5", "memory": "100Mi"});
        v
    };
    pods.create(&PostParams::default(), &from_json(warm)).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !unschedulable.lock().unwrap().contains_key("warmup") {
        if Instant::now() > deadline {
            bail!("{scheduler} did not mark the warm-up pod unschedulable");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu0 = proc_usage(pid).map(|u| u.0).unwrap_or(0.0);
    let start = Instant::now();
    for_each_concurrent(n, 64, |i| {
        let pods = pods.clone();
        async move {
            let mut v = pod_spec("SchedulingBasic", i);
            v["spec"]["containers"][0]["resources"]["requests"] = json!({"cpu": "5", "memory": "100Mi"});
            pods.create(&PostParams::default(), &from_json(v)).await?;
            Ok(())
        }
    })
    .await?;
    let mut last = (0usize, Instant::now());
    loop {
        let seen = unschedulable.lock().unwrap().len().saturating_sub(1);
        if seen >= n {
            break;
        }
        if seen > last.0 {
            last = (seen, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(args.stall_seconds) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let attempted = unschedulable.lock().unwrap().len().saturating_sub(1);
    let all_at = unschedulable.lock().unwrap().values().max().copied().unwrap_or(start);
    let (cpu1, peak) = proc_usage(pid).unwrap_or((cpu0, 0.0));
    // Writes still on their way when the last pod was seen marked (events,
    // conditions behind the API server) are not the waiting: let them drain.
    tokio::time::sleep(SETTLE).await;
    let (settled, _) = proc_usage(pid).unwrap_or((cpu1, 0.0));
    // The wait itself: a minute with nothing to do but hold the backlog.
    let idle = Duration::from_secs(60);
    tokio::time::sleep(idle).await;
    let (cpu2, _) = proc_usage(pid).unwrap_or((settled, 0.0));
    let rss = rss_now(pid).unwrap_or(0.0);
    drop(proc_);
    watch.abort();
    // Clean-up only: 50 000 deletions may outlast the API server's request
    // timeout. The API server goes on deleting, so a run after this one on
    // the same API server is slowed: run the schedulers one at a time.
    if let Err(e) =
        pods.delete_collection(&DeleteParams { grace_period_seconds: Some(0), ..Default::default() }, &ListParams::default()).await
    {
        eprintln!("warning: deleting the backlog's pods: {e}");
    }
    Ok(BacklogResult {
        scheduler: scheduler.into(),
        pods: n,
        attempted,
        seconds_to_attempt_all: all_at.saturating_duration_since(start).as_secs_f64(),
        cpu_seconds_to_attempt_all: cpu1 - cpu0,
        peak_rss_mib: peak,
        rss_waiting_mib: rss,
        cpu_seconds_per_minute_waiting: (cpu2 - settled) * 60.0 / idle.as_secs_f64(),
    })
}

fn start_scheduler(which: &str, bin: &Path, config: &Path, log: &Path) -> Result<Proc> {
    let log = std::fs::File::create(log)?;
    let mut cmd = match which {
        "berth" => {
            let mut c = Command::new(repo().join("target/release/berth"));
            c.args(["run", "--config"]).arg(config).args(["--secure-port", "0", "--http-address", "127.0.0.1:0"]);
            c
        }
        "kube-scheduler" => {
            let mut c = Command::new(bin.join("controlplane"));
            c.args(["kube-scheduler", "--config"]).arg(config).args(["--secure-port", "0", "-v", "0"]);
            // The API server's gates (GenericWorkload on 1.37: native gangs).
            let gates = feature_gates();
            if !gates.is_empty() {
                c.arg(format!("--feature-gates={gates}"));
            }
            c
        }
        other => bail!("unknown scheduler {other}"),
    };
    Ok(Proc(cmd.stdout(log.try_clone()?).stderr(log).spawn().with_context(|| format!("starting {which}"))?))
}

/// The feature gates the test environment's components run with (testenv/versions.sh).
fn feature_gates() -> String {
    let out = Command::new("bash").arg("-c").arg(". testenv/versions.sh && printf %s \"$KUBE_FEATURE_GATES\"").current_dir(repo()).output();
    out.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// The physical limit: binds every pending pod of the namespace to the next
/// node, round-robin, with no logic at all, as fast as the client allows.
fn raw_binder(c: kube::Client, ns: String, nodes: usize, unlimited: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let limiter = (!unlimited)
            .then(|| Arc::new(RateLimiter::direct(Quota::per_second(50u32.try_into().unwrap()).allow_burst(100u32.try_into().unwrap()))));
        let api = Api::<Pod>::namespaced(c, &ns);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stream = watcher::watcher(api.clone(), watcher::Config::default()).filter_map(|e| async move {
            match e {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => Some(p),
                _ => None,
            }
        });
        stream
            .filter(|p| {
                futures::future::ready(
                    p.spec.as_ref().is_some_and(|s| s.node_name.is_none() && s.scheduler_name.as_deref() == Some(SCHEDULER_NAME)),
                )
            })
            .for_each_concurrent(64, |p| {
                let (api, limiter, next) = (api.clone(), limiter.clone(), next.clone());
                async move {
                    if let Some(l) = &limiter {
                        l.until_ready().await;
                    }
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % nodes;
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let binding = Binding {
                        metadata: ObjectMeta { name: Some(name.clone()), uid: p.metadata.uid.clone(), ..Default::default() },
                        target: ObjectReference {
                            kind: Some("Node".into()),
                            api_version: Some("v1".into()),
                            name: Some(format!("bench-node-{i:05}")),
                            ..Default::default()
                        },
                    };
                    let _ = api.create_subresource::<_, Value>("binding", &name, &PostParams::default(), &binding).await;
                }
            })
            .await;
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Requests per node (cpu milli, memory bytes, pods) over all pods, against 4 CPU / 32Gi / 110.
fn overcommitted(pods: &[Pod]) -> usize {
    let mut per: HashMap<String, (i64, i64, i64)> = HashMap::new();
    for p in pods {
        let Some(spec) = &p.spec else { continue };
        let Some(node) = &spec.node_name else { continue };
        let e = per.entry(node.clone()).or_default();
        e.2 += 1;
        for c in &spec.containers {
            let r = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            if let Some(q) = r.and_then(|r| r.get("cpu")) {
                e.0 += cpu_milli(&q.0);
            }
            if let Some(q) = r.and_then(|r| r.get("memory")) {
                e.1 += mem_bytes(&q.0);
            }
        }
    }
    per.values().filter(|(c, m, n)| *c > 4000 || *m > 32 << 30 || *n > 110).count()
}

fn cpu_milli(s: &str) -> i64 {
    s.strip_suffix('m').map(|v| v.parse().unwrap_or(0)).unwrap_or_else(|| s.parse::<i64>().unwrap_or(0) * 1000)
}

fn mem_bytes(s: &str) -> i64 {
    for (suf, mul) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if let Some(v) = s.strip_suffix(suf) {
            return v.parse::<i64>().unwrap_or(0) * mul;
        }
    }
    s.parse().unwrap_or(0)
}

/// The namespace `ns` (made if missing) once the pods of an earlier run are gone.
async fn empty_namespace(c: &kube::Client, ns: &str) -> Result<Api<Pod>> {
    let nss = Api::<Namespace>::all(c.clone());
    if nss.get_opt(ns).await?.is_none() {
        nss.create(&PostParams::default(), &from_json(json!({"metadata": {"name": ns}}))).await?;
    }
    let pods = Api::<Pod>::namespaced(c.clone(), ns);
    wait_no_pods(&pods).await?;
    Ok(pods)
}

async fn wait_no_pods(api: &Api<Pod>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !api.list(&ListParams::default().limit(1)).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("pods of the previous run did not go away");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn one_run(
    c: &kube::Client,
    args: &Args,
    bin: &Path,
    kubeconfig: &Path,
    workload: &str,
    scheduler: &str,
    limits: &str,
    bar: &ProgressBar,
) -> Result<RunResult> {
    let ns = format!("bench-{}-{scheduler}-{limits}", short(workload));
    let pods = empty_namespace(c, &ns).await?;
    init_pods(c, &ns, workload, args.nodes, args.pods).await?;
    let dra_objects = if is_dra(workload) { dra_setup(c, &ns, workload, args.nodes, args.pods).await? } else { Vec::new() };
    let expected = placeable(workload, args.nodes, args.pods);
    let unlimited = limits == "unlimited";
    std::fs::create_dir_all(&args.out)?;
    let config = args.out.join(format!("config-{limits}.yaml"));
    std::fs::write(&config, config_yaml(kubeconfig, unlimited))?;

    // Watch first, so no binding is missed.
    let bound_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watch = {
        let (bound_at, pods) = (bound_at.clone(), pods.clone());
        tokio::spawn(async move {
            let mut s = std::pin::pin!(watcher::watcher(pods, watcher::Config::default()));
            while let Some(e) = s.next().await {
                if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = e {
                    if p.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
                        let name = p.metadata.name.unwrap_or_default();
                        bound_at.lock().unwrap().entry(name).or_insert_with(Instant::now);
                    }
                }
            }
        })
    };
    let (proc_, raw) = if scheduler == "raw" {
        (None, Some(raw_binder(c.clone(), ns.clone(), args.nodes, unlimited)))
    } else {
        (Some(start_scheduler(scheduler, bin, &config, &args.out.join(format!("{ns}.log")))?), None)
    };
    // Warm-up: one pod, bound, before measuring (the scheduler has listed the cluster).
    let warm = {
        let mut v = pod_spec("SchedulingBasic", 0);
        v["metadata"]["name"] = json!("warmup");
        if workload == "Preemption" {
            v["spec"]["priorityClassName"] = json!("bench-high");
        }
        v
    };
    pods.create(&PostParams::default(), &from_json(warm)).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !bound_at.lock().unwrap().contains_key("warmup") {
        if Instant::now() > deadline {
            bail!("{scheduler} did not bind the warm-up pod in {ns}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = proc_.as_ref().map(|p| p.0.id());
    let cpu0 = pid.and_then(proc_usage).map(|u| u.0);

    let created_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    let creator = {
        let (pods, created_at, workload) = (pods.clone(), created_at.clone(), workload.to_string());
        let (n, rate) = (args.pods, args.create_rate);
        tokio::spawn(async move {
            for_each_concurrent(n, 32, |i| {
                let (pods, created_at) = (pods.clone(), created_at.clone());
                let v = pod_spec(&workload, i);
                async move {
                    if rate > 0.0 {
                        tokio::time::sleep_until(tokio::time::Instant::from_std(start + Duration::from_secs_f64(i as f64 / rate))).await;
                    }
                    let name = v["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    created_at.lock().unwrap().insert(name, Instant::now());
                    pods.create(&PostParams::default(), &from_json(v)).await?;
                    Ok(())
                }
            })
            .await
        })
    };
    let mut last_progress = (0usize, Instant::now());
    let measured = |m: &HashMap<String, Instant>| m.keys().filter(|k| k.starts_with("p-")).count();
    loop {
        let n = measured(&bound_at.lock().unwrap());
        bar.set_message(format!("{workload} / {scheduler} / {limits}: {n}/{expected}"));
        if n >= expected {
            break;
        }
        if n > last_progress.0 {
            last_progress = (n, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(args.stall_seconds) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    creator.await??;
    let usage = pid.and_then(proc_usage);
    drop(proc_);
    if let Some(r) = raw {
        r.abort();
    }
    watch.abort();
    bar.inc(1);

    let bound = bound_at.lock().unwrap().clone();
    let created = created_at.lock().unwrap().clone();
    let mut lat: Vec<f64> =
        created.iter().filter_map(|(k, t0)| bound.get(k).map(|t1| t1.saturating_duration_since(*t0).as_secs_f64() * 1000.0)).collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let last = created.keys().filter_map(|k| bound.get(k)).max().copied().unwrap_or(start);
    let n_bound = lat.len();
    let elapsed = last.saturating_duration_since(start).as_secs_f64();
    let all = pods.list(&ListParams::default()).await?.items;
    let over = overcommitted(&all);
    let cpu = match (cpu0, usage) {
        (Some(a), Some((b, _))) => Some(b - a),
        _ => None,
    };
    // Clean up for the next run: delete now, without grace (KWOK's pods have no kubelet).
    pods.delete_collection(&DeleteParams { grace_period_seconds: Some(0), ..Default::default() }, &ListParams::default()).await?;
    for (ar, name) in dra_objects {
        let _ = Api::<kube::core::DynamicObject>::all_with(c.clone(), &ar).delete(&name, &Default::default()).await;
    }
    Ok(RunResult {
        workload: workload.into(),
        scheduler: scheduler.into(),
        limits: limits.into(),
        pods: args.pods,
        bound: n_bound,
        throughput: if elapsed > 0.0 { n_bound as f64 / elapsed } else { 0.0 },
        p50_ms: percentile(&lat, 50.0),
        p90_ms: percentile(&lat, 90.0),
        p99_ms: percentile(&lat, 99.0),
        last_created_ms: created.values().max().map_or(0.0, |t| t.saturating_duration_since(start).as_secs_f64() * 1000.0),
        cpu_seconds: cpu,
        cpu_seconds_per_1000_pods: cpu.map(|c| c * 1000.0 / args.pods as f64),
        peak_rss_mib: usage.map(|u| u.1),
        // The raw binder binds what a scheduler must not (a gang that cannot fit).
        all_bound: n_bound == expected || (scheduler == "raw" && n_bound >= expected),
        overcommitted_nodes: if scheduler == "raw" { 0 } else { over },
    })
}

/// Fails naming every run that did not do all its work: its figures are
/// written (for a look at what went wrong) but compare nothing.
fn incomplete(runs: impl Iterator<Item = String>) -> Result<()> {
    let runs: Vec<String> = runs.collect();
    if runs.is_empty() {
        return Ok(());
    }
    bail!("{} run(s) did not do all their work:\n  {}", runs.len(), runs.join("\n  "))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

fn markdown(results: &[RunResult]) -> String {
    let mut s = String::from(
        "| workload | limits | scheduler | pods/s | p50 ms | p90 ms | p99 ms | CPU s/1000 pods | peak RSS MiB | all bound | over-committed nodes |\n|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|\n",
    );
    for r in results {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into());
        s += &format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |\n",
            r.workload,
            r.limits,
            r.scheduler,
            r.throughput,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            opt(r.cpu_seconds_per_1000_pods),
            opt(r.peak_rss_mib),
            if r.all_bound { "yes" } else { "NO" },
            r.overcommitted_nodes
        );
    }
    s += "\nRatios (Berth / kube-scheduler; Berth / raw binder):\n\n| workload | limits | throughput B/K | throughput B/raw | p99 B/K | CPU B/K | RSS B/K |\n|---|---|---:|---:|---:|---:|---:|\n";
    let find = |w: &str, l: &str, s: &str| results.iter().find(|r| r.workload == w && r.limits == l && r.scheduler == s);
    let mut seen = Vec::new();
    for r in results {
        let key = (r.workload.clone(), r.limits.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let (b, k, raw) =
            (find(&r.workload, &r.limits, "berth"), find(&r.workload, &r.limits, "kube-scheduler"), find(&r.workload, &r.limits, "raw"));
        let Some(b) = b.filter(|r| r.complete()) else { continue };
        let (k, raw) = (k.filter(|r| r.complete()), raw.filter(|r| r.complete()));
        let nan = f64::NAN;
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.workload,
            r.limits,
            k.map(|k| ratio(b.throughput, k.throughput)).unwrap_or("–".into()),
            raw.map(|x| ratio(b.throughput, x.throughput)).unwrap_or("–".into()),
            k.map(|k| ratio(b.p99_ms, k.p99_ms)).unwrap_or("–".into()),
            k.map(|k| ratio(b.cpu_seconds.unwrap_or(nan), k.cpu_seconds.unwrap_or(nan))).unwrap_or("–".into()),
            k.map(|k| ratio(b.peak_rss_mib.unwrap_or(nan), k.peak_rss_mib.unwrap_or(nan))).unwrap_or("–".into()),
        );
    }
    s
}

/// results.md and results.png in `out`; returns the Markdown.
fn write_report(results: &[RunResult], out: &Path) -> Result<String> {
    let md = markdown(results);
    std::fs::write(out.join("results.md"), &md)?;
    if let Err(e) = plot::draw(results, &out.join("results.png")) {
        eprintln!("warning: no plot: {e}");
    }
    Ok(md)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let list = |s: &str, all: &[&str]| -> Vec<String> {
        if s == "all" {
            all.iter().map(|s| s.to_string()).collect()
        } else {
            s.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
        }
    };
    if args.report_only {
        let saved: Value = serde_json::from_slice(&std::fs::read(args.out.join("results.json")).context("reading results.json")?)?;
        let results: Vec<RunResult> = serde_json::from_value(saved["runs"].clone()).context("results.json: runs")?;
        let md = write_report(&results, &args.out)?;
        println!("{md}");
        return Ok(());
    }
    let workloads = list(&args.workloads, &WORKLOADS);
    for w in &workloads {
        if !WORKLOADS.contains(&w.as_str()) {
            bail!("unknown workload {w}; known: {}", WORKLOADS.join(", "));
        }
    }
    let schedulers = list(&args.schedulers, &["berth", "kube-scheduler", "raw"]);
    let limits = list(&args.limits, &["unlimited", "default"]);
    if workloads.iter().any(|w| w == "PodAntiAffinity") && args.pods > args.nodes {
        bail!("PodAntiAffinity puts one pod per node: --pods must not exceed --nodes");
    }
    if !repo().join("target/release/berth").exists() {
        bail!("build Berth first: cargo build --release -p berth (bench/run does)");
    }
    let build = Command::new(repo().join("testenv/build")).stderr(Stdio::inherit()).output()?;
    if !build.status.success() {
        bail!("testenv/build failed");
    }
    let bin = PathBuf::from(last_line(&build.stdout));
    let kubeconfig = match &args.kubeconfig {
        Some(k) => k.clone(),
        None => {
            let up = Command::new(repo().join("testenv/up"))
                .env("BERTH_TESTENV_DIR", repo().join("target/testenv-bench"))
                .env("BERTH_TESTENV_OWNER_PID", std::process::id().to_string())
                // No controller manager, but for DRA workloads its
                // resourceclaim controller (claims from pods' templates, as
                // scheduler_perf runs it): its informers share the two cores
                // with the schedulers measured (the figures before issue 13
                // ran without it). With any controller, PodGroups get a
                // finalizer only podgroup-protection removes.
                .env(
                    "BERTH_TESTENV_CONTROLLERS",
                    if workloads.iter().any(|w| is_dra(w)) { "resourceclaim-controller,podgroup-protection-controller" } else { "" },
                )
                .stderr(Stdio::inherit())
                .output()?;
            if !up.status.success() {
                bail!("testenv/up failed");
            }
            PathBuf::from(last_line(&up.stdout))
        }
    };
    let c = client(&kubeconfig).await?;
    eprintln!("creating {} KWOK nodes...", args.nodes);
    create_nodes(&c, args.nodes).await?;
    let pcs = Api::<PriorityClass>::all(c.clone());
    for (name, value) in [("bench-low", 0), ("bench-high", 1000)] {
        if pcs.get_opt(name).await?.is_none() {
            pcs.create(&PostParams::default(), &from_json(json!({"metadata": {"name": name}, "value": value}))).await?;
        }
    }
    if let Some(n) = args.backlog {
        let mut out = Vec::new();
        for s in schedulers.iter().filter(|s| *s != "raw") {
            eprintln!("backlog of {n} pods: {s}...");
            let r = backlog_run(&c, &args, &bin, &kubeconfig, s, n).await.with_context(|| format!("backlog / {s}"))?;
            eprintln!("{r:?}");
            out.push(r);
        }
        std::fs::create_dir_all(&args.out)?;
        std::fs::write(args.out.join("backlog.json"), serde_json::to_string_pretty(&out)?)?;
        println!("| scheduler | pods | marked unschedulable | seconds to mark all | CPU s to mark all | peak RSS MiB | RSS waiting MiB | CPU s/min waiting |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &out {
            println!(
                "| {} | {} | {} | {:.0} | {:.1} | {:.0} | {:.0} | {:.2} |",
                r.scheduler,
                r.pods,
                r.attempted,
                r.seconds_to_attempt_all,
                r.cpu_seconds_to_attempt_all,
                r.peak_rss_mib,
                r.rss_waiting_mib,
                r.cpu_seconds_per_minute_waiting
            );
        }
        return incomplete(
            out.iter()
                .filter(|r| r.attempted < r.pods)
                .map(|r| format!("backlog / {}: {} of {} pods marked unschedulable", r.scheduler, r.attempted, r.pods)),
        );
    }
    let total = (workloads.len() * schedulers.len() * limits.len()) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} runs  {msg}").expect("template"));
    let mut results = Vec::new();
    for w in &workloads {
        for l in &limits {
            for s in &schedulers {
                let r = one_run(&c, &args, &bin, &kubeconfig, w, s, l, &bar).await.with_context(|| format!("{w} / {s} / {l}"))?;
                // suspend+eprintln: shown above the bar on a terminal, and in logs too.
                let line = format!(
                    "{w:18} {l:9} {s:14} {:8.0} pods/s  p99 {:6.0} ms  last created {:6.0} ms  cpu {:>6}  rss {:>6}  bound {}/{}",
                    r.throughput,
                    r.p99_ms,
                    r.last_created_ms,
                    r.cpu_seconds.map(|c| format!("{c:.2}s")).unwrap_or("–".into()),
                    r.peak_rss_mib.map(|m| format!("{m:.0}M")).unwrap_or("–".into()),
                    r.bound,
                    r.pods
                );
                bar.suspend(|| eprintln!("{line}"));
                results.push(r);
                // Partial results survive an interrupted run.
                std::fs::create_dir_all(&args.out)?;
                std::fs::write(args.out.join("results.partial.json"), serde_json::to_string_pretty(&results)?)?;
            }
        }
    }
    bar.finish_and_clear();
    std::fs::create_dir_all(&args.out)?;
    // testenv/build puts the binaries in testenv/.build/<release>/bin.
    let release = bin.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let meta = json!({"nodes": args.nodes, "pods": args.pods, "kubernetes": release, "runs": results});
    std::fs::write(args.out.join("results.json"), serde_json::to_string_pretty(&meta)?)?;
    let md = write_report(&results, &args.out)?;
    println!("{md}");
    eprintln!("results in {}", args.out.display());
    incomplete(results.iter().filter(|r| !r.complete()).map(|r| {
        format!(
            "{} / {} / {}: bound {} of {}, {} node(s) over-committed",
            r.workload, r.scheduler, r.limits, r.bound, r.pods, r.overcommitted_nodes
        )
    }))
}
