//! In-memory benchmark workloads shaped like upstream scheduler_perf's
//! (test/integration/scheduler_perf/<topic>/performance-config.yaml since
//! Kubernetes 1.31; `misc/` holds SchedulingBasic): the same node and pod
//! templates, run through the engine with instant binding, so the figures
//! measure the scheduler alone. [`upstream`] reads and runs upstream's own
//! workload files through the same driver loop.

use std::time::Instant;

mod dra;
pub mod upstream;

use berth_core::config::KubeSchedulerConfiguration;
use berth_core::driver::{Driver, Effect, Unobserved};
use berth_core::engine::{Engine, EngineConfig};
use berth_core::framework::{PluginHost, PodInfo, Registry};
use berth_core::model::{LabelSelector, Node, Pod, UnsatisfiableConstraintAction};
use berth_core::testing::{make_node, make_pod};
use serde::Serialize;

pub const ZONE: &str = "topology.kubernetes.io/zone";
pub const HOSTNAME: &str = "kubernetes.io/hostname";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    SchedulingBasic,
    PodAntiAffinity,
    TopologySpreading,
    PreferredTopologySpreading,
    NodeAffinity,
    Preemption,
    Mixed,
    /// Native gangs of `GANG_SIZE` pods (minCount = size), scheduler_perf's
    /// GangScheduling shape (100m / 100Mi pods).
    GangScheduling,
    /// The same, but every other gang has a member no node can hold: those
    /// gangs are tried and bind nothing.
    GangMixed,
    /// DRA: each pod gets a device through a claim made from a template
    /// (scheduler_perf's SchedulingWithResourceClaimTemplate).
    DraClaimTemplate,
    /// DRA: five pods share each claim (SchedulingWithResourceClaim).
    DraSharedClaim,
    /// DRA: two partitionable devices per node share one counter set; each
    /// claim wants two devices (Partitionable).
    DraPartitionable,
    /// DRA: a prioritized list whose first alternative matches no device
    /// (FirstAvailable).
    DraFirstAvailable,
    /// SchedulingBasic's nodes in two pools (`example.berth.dev/pool`: gold,
    /// iron) with a cost annotation, and pods half of which ask for gold:
    /// for the example NodePool plugin, native or as a WebAssembly guest
    /// (`--config` enables it). Not in `all`.
    NodePool,
}

/// Pods per gang in the gang workloads.
pub const GANG_SIZE: usize = 50;

impl Workload {
    pub const ALL: [Workload; 13] = [
        Workload::SchedulingBasic,
        Workload::PodAntiAffinity,
        Workload::TopologySpreading,
        Workload::PreferredTopologySpreading,
        Workload::NodeAffinity,
        Workload::Preemption,
        Workload::Mixed,
        Workload::GangScheduling,
        Workload::GangMixed,
        Workload::DraClaimTemplate,
        Workload::DraSharedClaim,
        Workload::DraPartitionable,
        Workload::DraFirstAvailable,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Workload::SchedulingBasic => "SchedulingBasic",
            Workload::PodAntiAffinity => "PodAntiAffinity",
            Workload::TopologySpreading => "TopologySpreading",
            Workload::PreferredTopologySpreading => "PreferredTopologySpreading",
            Workload::NodeAffinity => "NodeAffinity",
            Workload::Preemption => "Preemption",
            Workload::Mixed => "Mixed",
            Workload::GangScheduling => "GangScheduling",
            Workload::GangMixed => "GangMixed",
            Workload::DraClaimTemplate => "SchedulingWithResourceClaimTemplate",
            Workload::DraSharedClaim => "SchedulingWithResourceClaim",
            Workload::DraPartitionable => "Partitionable",
            Workload::DraFirstAvailable => "FirstAvailable",
            Workload::NodePool => "NodePool",
        }
    }

    /// Whether pods of this workload claim devices.
    pub fn is_dra(&self) -> bool {
        matches!(self, Workload::DraClaimTemplate | Workload::DraSharedClaim | Workload::DraPartitionable | Workload::DraFirstAvailable)
    }

    /// How many of `pods` measured pods can be bound on `nodes` nodes.
    pub fn placeable(&self, nodes: usize, pods: usize) -> usize {
        match self {
            // Odd gangs never fit; a last partial gang counts with its parity.
            Workload::GangMixed => (0..pods).filter(|i| (i / GANG_SIZE) % 2 == 0).count(),
            w if w.is_dra() => dra::placeable(*w, nodes, dra_init(*w, nodes), pods),
            // Each preemptor takes the room of one of the four pods per node.
            Workload::Preemption => pods.min(nodes * 4),
            _ => pods,
        }
    }

    /// Workloads run only when named: they need a plugin the configuration enables.
    pub const NAMED_ONLY: [Workload; 1] = [Workload::NodePool];

    pub fn parse(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().chain(Workload::NAMED_ONLY).find(|w| w.name().eq_ignore_ascii_case(s))
    }
}

/// scheduler_perf's node-default.yaml: 4 CPU, 32Gi, 110 pods; spread over 3 zones.
pub fn bench_node(i: usize) -> Node {
    make_node(&format!("node-{i}"))
        .capacity(4000, 32 << 30, 110)
        .label(ZONE, &format!("zone-{}", i % 3))
        .label("node-group", &format!("group-{}", i % 10))
        .obj()
}

/// The pool label and annotation of the NodePool workload.
const POOL: &str = "example.berth.dev/pool";

/// A node of `w`: scheduler_perf's, with a pool and a cost in NodePool.
fn workload_node(w: Workload, i: usize) -> Node {
    let mut n = bench_node(i);
    if w == Workload::NodePool {
        n.labels.insert(POOL.into(), if i % 2 == 0 { "gold" } else { "iron" }.into());
        n.annotations.insert("example.berth.dev/cost".into(), (i % 10).to_string());
    }
    n
}

/// scheduler_perf's pod-default.yaml: 100m CPU, 500Mi.
fn basic_pod(name: &str, ms: i64) -> Pod {
    make_pod(name).namespace("bench").req(100, 500 << 20).creation(ms).obj()
}

/// Anti-affinity groups: pods repel others of their group per host, so a
/// group can hold at most one pod per node; enough groups keep every pod
/// placeable (scheduler_perf's workload has one group sized to the nodes).
fn anti_affinity_groups(nodes: usize, pods: usize) -> usize {
    (2 * pods).div_ceil(nodes.max(1)).max(1)
}

/// Pods a DRA workload schedules before measuring (upstream's `init`
/// counts: half the devices taken).
fn dra_init(w: Workload, nodes: usize) -> usize {
    match w {
        Workload::DraClaimTemplate | Workload::DraFirstAvailable | Workload::DraSharedClaim => nodes * 5,
        Workload::DraPartitionable => nodes / 2,
        _ => 0,
    }
}

fn measured_pod(w: Workload, i: usize, groups: usize, nodes: usize) -> Pod {
    let name = format!("pod-{i}");
    let ms = i as i64;
    match w {
        w if w.is_dra() => dra::pod(w, &name, dra_init(w, nodes) + i, ms),
        Workload::SchedulingBasic => basic_pod(&name, ms),
        Workload::NodePool => {
            let mut p = basic_pod(&name, ms);
            if i % 2 == 0 {
                p.annotations.insert(POOL.into(), "gold".into());
            }
            p
        }
        Workload::PodAntiAffinity => {
            let color = format!("color-{}", i % groups);
            make_pod(&name)
                .namespace("bench")
                .req(100, 500 << 20)
                .creation(ms)
                .label("color", &color)
                .pod_anti_affinity("color", &color, HOSTNAME)
                .obj()
        }
        Workload::TopologySpreading | Workload::PreferredTopologySpreading => {
            let action = if w == Workload::TopologySpreading {
                UnsatisfiableConstraintAction::DoNotSchedule
            } else {
                UnsatisfiableConstraintAction::ScheduleAnyway
            };
            make_pod(&name)
                .namespace("bench")
                .req(100, 500 << 20)
                .creation(ms)
                .label("app", "spread")
                .spread(1, ZONE, action, LabelSelector::from_match_labels([("app", "spread")]))
                .obj()
        }
        Workload::NodeAffinity => make_pod(&name)
            .namespace("bench")
            .req(100, 500 << 20)
            .creation(ms)
            .node_affinity_in("node-group", &["group-1", "group-2", "group-3", "group-4", "group-5"])
            .obj(),
        Workload::GangScheduling | Workload::GangMixed => {
            let gang = i / GANG_SIZE;
            // In GangMixed, each odd gang's first member asks for more than a node has.
            let cpu = if w == Workload::GangMixed && gang % 2 == 1 && i % GANG_SIZE == 0 { 5000 } else { 100 };
            make_pod(&name).namespace("bench").req(cpu, 100 << 20).creation(ms).group(&format!("gang-{gang}")).obj()
        }
        // Each takes the room of one low-priority pod.
        Workload::Preemption => make_pod(&name).namespace("bench").req(1000, 500 << 20).priority(10).creation(ms).obj(),
        Workload::Mixed => {
            let shapes = [
                Workload::SchedulingBasic,
                Workload::PreferredTopologySpreading,
                Workload::NodeAffinity,
                Workload::TopologySpreading,
                Workload::SchedulingBasic,
            ];
            measured_pod(shapes[i % shapes.len()], i, groups, nodes)
        }
        _ => unreachable!("DRA workloads are handled above"),
    }
}

/// Pods that fill the cluster before measuring.
fn init_pods(w: Workload, nodes: usize) -> Vec<Pod> {
    match w {
        // Four low-priority 1-CPU pods fill every node; each measured pod must preempt one.
        Workload::Preemption => (0..nodes * 4)
            .map(|i| {
                make_pod(&format!("low-{i}")).namespace("bench").req(1000, 500 << 20).priority(1).node(&format!("node-{}", i / 4)).obj()
            })
            .collect(),
        w if w.is_dra() => (0..dra_init(w, nodes)).map(|i| dra::pod(w, &format!("init-{i}"), i, -1)).collect(),
        _ => (0..nodes / 5).map(|i| basic_pod(&format!("init-{i}"), -1)).collect(),
    }
}

#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct BenchReport {
    pub workload: String,
    pub nodes: usize,
    pub pods: usize,
    pub scheduled: usize,
    /// How many of the pods can be bound: a run that binds fewer did not do its work.
    pub placeable: usize,
    pub seconds: f64,
    pub pods_per_second: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// What a benchmark schedules with: the default configuration and the
/// built-in plugins, or a custom scheduler's.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Profiles and plugin args; the workloads' pods use the first profile.
    pub config: KubeSchedulerConfiguration,
    /// The plugins the configuration may name.
    pub registry: Registry,
    /// Seed for tie-breaking.
    pub seed: u64,
    /// How to load WebAssembly plugins the configuration names.
    pub wasm: Option<berth_core::config::WasmLoader>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            config: KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).expect("default config"),
            registry: Registry::builtin(),
            seed: 0,
            wasm: None,
        }
    }
}

/// Runs one workload; `progress` is called with (done, total) now and then.
/// Fails only when the configuration's profiles do not build.
pub fn run(
    w: Workload,
    nodes: usize,
    pods: usize,
    opts: &BenchOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<BenchReport, berth_core::config::ConfigError> {
    // Plugins' writes (DRA claims) go to memory, and the controllers a
    // cluster runs answer them, as in `berth simulate`.
    let (host, writer) = bench_host(opts);
    let result = run_with(w, nodes, pods, opts, &host, &writer, &mut progress);
    writer.detach();
    result
}

/// The plugin host every benchmark runs with: plugins' writes (DRA claims)
/// go to memory, answered as a cluster's controllers would. The caller
/// detaches the writer when done.
fn bench_host(opts: &BenchOptions) -> (PluginHost, std::sync::Arc<crate::writer::MemoryWriter>) {
    let writer = std::sync::Arc::new(crate::writer::MemoryWriter::default());
    let mut host = PluginHost::new(std::sync::Arc::new(berth_core::framework::NoEvents)).with_writer(writer.clone());
    if let Some(w) = &opts.wasm {
        host = host.with_service(w.clone());
    }
    writer.attach(host.clone());
    (host, writer)
}

/// The engine and driver every benchmark runs: the options' profiles,
/// every pod adopted, no events.
fn bench_driver(opts: &BenchOptions, host: &PluginHost) -> Result<Driver, berth_core::config::ConfigError> {
    let frameworks = opts.config.build_frameworks_with(&opts.registry, host)?;
    let engine = Engine::new(
        frameworks,
        EngineConfig {
            percentage_of_nodes_to_score: opts.config.percentage_of_nodes_to_score.unwrap_or(0),
            seed: opts.seed,
            adopt_all_pods: true,
            ..Default::default()
        },
    );
    Ok(Driver::new(engine, std::sync::Arc::new(Unobserved)).with_events(false))
}

/// Loads objects of kinds plugins read into their stores and the writer.
fn load_objects(host: &PluginHost, writer: &crate::writer::MemoryWriter, objects: &[serde_json::Value]) {
    for o in objects {
        let api_version = o["apiVersion"].as_str().unwrap_or_default();
        let kind = o["kind"].as_str().unwrap_or_default();
        if let Some(k) = host.kind_of(api_version, kind) {
            // A profile without the plugin that reads a kind ignores it.
            if host.apply_object(&k, o).is_ok() {
                writer.load(&k, o);
            }
        }
    }
}

/// The claims the resourceclaim controller makes for `pods` (from templates among `objects`).
fn claims_for(pods: &mut [Pod], objects: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let tagged: Vec<(String, serde_json::Value)> = objects.iter().map(|o| (String::new(), o.clone())).collect();
    crate::claims::claims_from_templates(pods, &tagged).into_iter().map(|(_, c)| c).collect()
}

fn run_with(
    w: Workload,
    nodes: usize,
    pods: usize,
    opts: &BenchOptions,
    host: &PluginHost,
    writer: &std::sync::Arc<crate::writer::MemoryWriter>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BenchReport, berth_core::config::ConfigError> {
    let mut driver = bench_driver(opts, host)?;
    for i in 0..nodes {
        driver.engine_mut().add_node(workload_node(w, i), 0);
    }
    let dra_objects = if w.is_dra() { dra::objects(w, nodes, (dra_init(w, nodes) + pods).div_ceil(5)) } else { Vec::new() };
    load_objects(host, writer, &dra_objects);
    // Initial pods: bound ones straight into the cache, others scheduled unmeasured.
    let mut init = init_pods(w, nodes);
    load_objects(host, writer, &claims_for(&mut init, &dra_objects));
    for p in init {
        driver.engine_mut().add_pod(p, 0);
    }
    let mut clock = Clock::new();
    drain(&mut driver, &mut clock, usize::MAX, &mut Vec::new(), &mut |_, _| {}, &mut |_| {}, writer);
    let groups = anti_affinity_groups(nodes, pods);
    if matches!(w, Workload::GangScheduling | Workload::GangMixed) {
        // The PodGroups exist before their pods, as the Job controller makes them.
        let kind = berth_core::plugins::gang_scheduling::POD_GROUP;
        for g in 0..pods.div_ceil(GANG_SIZE) {
            let size = GANG_SIZE.min(pods - g * GANG_SIZE);
            let group = serde_json::json!({"metadata": {"name": format!("gang-{g}"), "namespace": "bench"},
                "spec": {"schedulingPolicy": {"gang": {"minCount": size}}}});
            // The built-in GangScheduling declared the kind; a profile without it ignores groups.
            let _ = host.apply_object(&kind, &group);
        }
    }
    let mut measured: Vec<Pod> = (0..pods).map(|i| measured_pod(w, i, groups, nodes)).collect();
    // The controller makes the claims as the pods are created; that is not
    // the scheduler's time.
    load_objects(host, writer, &claims_for(&mut measured, &dra_objects));
    for p in measured {
        driver.engine_mut().add_pod(p, clock.now());
    }
    let mut lat = Vec::with_capacity(pods);
    let start = Instant::now();
    let scheduled = drain(&mut driver, &mut clock, pods, &mut lat, progress, &mut |_| {}, writer);
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    Ok(BenchReport {
        workload: w.name().to_string(),
        nodes,
        pods,
        scheduled,
        placeable: w.placeable(nodes, pods),
        seconds: secs,
        // Pods bound per second: time spent on pods that cannot fit counts,
        // the pods themselves do not.
        pods_per_second: if secs > 0.0 { scheduled as f64 / secs } else { 0.0 },
        p50_us: percentile(&lat, 0.50),
        p90_us: percentile(&lat, 0.90),
        p99_us: percentile(&lat, 0.99),
    })
}

/// The engine's clock in the benchmark: real time while it works, as in
/// `berth run`, so backoff (1 s for a preemptor) expires while other pods
/// are scheduled, as it would live. When only backing-off pods are left,
/// the clock jumps to the next expiry instead of waiting for it.
struct Clock {
    start: Instant,
    skipped_ms: i64,
}

impl Clock {
    fn new() -> Clock {
        Clock { start: Instant::now(), skipped_ms: 0 }
    }
    fn now(&self) -> i64 {
        self.start.elapsed().as_millis() as i64 + self.skipped_ms
    }
    fn skip_to(&mut self, t: i64) {
        self.skipped_ms += (t - self.now()).max(0);
    }
}

/// Schedules until the queue has nothing active; returns how many were
/// bound, and tells `bound_pod` of each. The one drain loop: the hand-made
/// workloads and upstream's go through it.
fn drain(
    driver: &mut Driver,
    clock: &mut Clock,
    total: usize,
    lat: &mut Vec<f64>,
    progress: &mut dyn FnMut(usize, usize),
    bound_pod: &mut dyn FnMut(&PodInfo),
    writer: &crate::writer::MemoryWriter,
) -> usize {
    let mut bound = 0;
    let mut attempts = 0usize;
    loop {
        let t0 = Instant::now();
        let now = clock.now();
        let Some(effects) = driver.step(now) else {
            match driver.engine().next_timer() {
                Some(t) => {
                    clock.skip_to(t.max(now + 1));
                    continue;
                }
                None => break,
            }
        };
        attempts += 1;
        crate::apply(driver, effects, now, |_, e| {
            if let Effect::Bound { pod, .. } = &e {
                bound += 1;
                bound_pod(pod);
            }
        });
        // What plugins wrote reaches the queue as a watch would deliver it.
        for (kind, key, action) in writer.take_changes() {
            driver.engine_mut().object_changed(kind, key, action, now);
        }
        lat.push(t0.elapsed().as_secs_f64() * 1e6);
        if attempts % 256 == 0 {
            progress(bound.min(total), total);
        }
    }
    progress(bound.min(total), total);
    bound
}

/// For tests: pod info of a measured pod.
pub fn sample_pod(w: Workload, i: usize) -> PodInfo {
    PodInfo::new(measured_pod(w, i, 2, 100))
}

/// Manifests for timing `berth simulate` end to end, parsing included:
/// scheduler_perf's nodes (4 CPU / 32Gi / 110 pods over three zones) and
/// `pods` pending 100m / 500Mi pods of workload `w`. SchedulingBasic's pods
/// are plain; PodAntiAffinity's carry the workload's color label and required
/// anti-affinity to their color on the hostname, as `berth bench` makes them.
/// `None` for the workloads it cannot write.
pub fn cluster_yaml(w: Workload, nodes: usize, pods: usize) -> Option<String> {
    use std::fmt::Write;
    if !matches!(w, Workload::SchedulingBasic | Workload::PodAntiAffinity) {
        return None;
    }
    let groups = anti_affinity_groups(nodes, pods);
    let mut out = String::with_capacity(nodes * 300 + pods * 600);
    for i in 0..nodes {
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: node-{i}\n  labels:\n    kubernetes.io/hostname: node-{i}\n    topology.kubernetes.io/zone: zone-{}\nstatus:\n  allocatable:\n    cpu: \"4\"\n    memory: 32Gi\n    pods: \"110\"\n",
            i % 3
        );
    }
    for i in 0..pods {
        let _ = write!(out, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{i}\n  namespace: bench\n");
        if w == Workload::PodAntiAffinity {
            let color = format!("color-{}", i % groups);
            let _ = write!(
                out,
                "  labels:\n    color: {color}\nspec:\n  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          matchLabels:\n            color: {color}\n        topologyKey: {HOSTNAME}\n"
            );
        } else {
            out.push_str("spec:\n");
        }
        out.push_str("  containers:\n  - name: pause\n    image: registry.k8s.io/pause:3.10\n    resources:\n      requests:\n        cpu: 100m\n        memory: 500Mi\n");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gangs that fit are placed whole; in GangMixed the ones that cannot
    /// fit bind nothing (and take nothing from the others).
    #[test]
    fn gang_workloads_place_whole_gangs_only() {
        let opts = BenchOptions::default();
        let r = run(Workload::GangScheduling, 20, 4 * GANG_SIZE, &opts, |_, _| {}).unwrap();
        assert_eq!(r.scheduled, 4 * GANG_SIZE);
        let r = run(Workload::GangMixed, 20, 4 * GANG_SIZE + 10, &opts, |_, _| {}).unwrap();
        assert_eq!(Workload::GangMixed.placeable(20, 4 * GANG_SIZE + 10), 2 * GANG_SIZE + 10);
        assert_eq!(r.scheduled, 2 * GANG_SIZE + 10);
    }

    /// The emitted PodAntiAffinity cluster, simulated, keeps each color to
    /// one pod per node and places every pod; SchedulingBasic's pods have no
    /// constraint to keep them apart.
    #[test]
    fn emitted_clusters_simulate_as_their_workload() {
        let simulate = |yaml: String| {
            let cluster = berth_convert::manifests::load(&[("cluster.yaml".to_string(), yaml)]).expect("manifests load");
            crate::simulate(cluster, &crate::SimOptions::default()).expect("simulates")
        };
        let load = |w: Workload, nodes: usize, pods: usize| simulate(cluster_yaml(w, nodes, pods).expect("a workload it writes"));
        let r = load(Workload::PodAntiAffinity, 6, 12);
        assert_eq!(r.summary.scheduled, 12, "{:?}", r.pods);
        let groups = anti_affinity_groups(6, 12);
        let mut seen = std::collections::HashSet::new();
        for p in &r.pods {
            let i: usize = p.name.trim_start_matches("pod-").parse().unwrap();
            let node = p.node.clone().expect("placed");
            assert!(seen.insert((i % groups, node.clone())), "two pods of color {} on {node}", i % groups);
        }
        // Three pods of one color on two nodes: the anti-affinity written
        // keeps one pending; without it all three fit.
        assert_eq!(anti_affinity_groups(2, 4), 4);
        let one_color = |w: Workload| cluster_yaml(w, 2, 4).unwrap().replace("color-2", "color-0").replace("color-3", "color-0");
        let r = simulate(one_color(Workload::PodAntiAffinity));
        assert_eq!((r.summary.scheduled, r.summary.unschedulable), (3, 1), "{:?}", r.pods);
        let r = load(Workload::SchedulingBasic, 2, 4);
        assert_eq!(r.summary.scheduled, 4);
        assert!(cluster_yaml(Workload::Preemption, 2, 2).is_none());
    }
}
