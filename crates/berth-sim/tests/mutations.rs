//! Bad input never panics: a bounded, seeded mutation fuzzer over what a
//! user hands Berth. The corpus is committed: the scenario manifests and
//! configurations of `testdata/scenarios`, and [`FULL_CONFIG`] below, a
//! configuration that sets every field and every plugin's args. Each case
//! takes one input, replaces one to three values anywhere in it (or drops
//! them) with values of another shape (null, a huge number, a string where an
//! object belongs, a quantity or a duration no one can hold, ...), and runs
//! it through what a user's input goes through. An error is fine; a panic
//! fails the test, naming the input, the paths and the values, so the case
//! can be replayed with its seed.
//!
//! Three tests, each with a fixed number of cases so a run is the same on
//! every machine:
//! - the configuration decoder and the scheduler it builds, simulating a
//!   small cluster with pods that do not fit (backoff), gangs (waiting) and
//!   preemption, under the mutated configuration;
//! - manifest reading and pod, node and PDB conversion (cheap: many cases);
//! - whole simulations of mutated scenarios (dear: fewer cases).
//!
//! `BERTH_FUZZ_SCALE` (default 1) multiplies every test's number of cases,
//! `BERTH_FUZZ_SEED` changes the seed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use berth_core::config::KubeSchedulerConfiguration;
use berth_sim::{simulate, SimOptions};
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Value};

/// One scenario's inputs, as JSON documents.
struct Scenario {
    name: String,
    cluster: Vec<Value>,
    config: Option<Value>,
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text).filter_map(|doc| Option::<Value>::deserialize(doc).unwrap()).collect()
}

fn scenarios() -> Vec<Scenario> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let all: Vec<Scenario> = dirs
        .into_iter()
        .map(|d| {
            let cluster = yaml_documents(&std::fs::read_to_string(d.join("cluster.yaml")).unwrap());
            let config = std::fs::read_to_string(d.join("config.yaml")).ok().map(|t| serde_yaml::from_str(&t).unwrap());
            Scenario { name: d.file_name().unwrap().to_string_lossy().into_owned(), cluster, config }
        })
        .collect();
    assert!(all.len() >= 20, "the scenarios are there");
    all
}

/// A configuration that sets every field Berth reads, and every args of
/// the plugins that take some: each is a place a mutation can land.
const FULL_CONFIG: &str = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
parallelism: 16
percentageOfNodesToScore: 50
podInitialBackoffSeconds: 1
podMaxBackoffSeconds: 10
delayCacheUntilActive: false
enableProfiling: true
enableContentionProfiling: false
leaderElection:
  leaderElect: true
  leaseDuration: 15s
  renewDeadline: 10s
  retryPeriod: 2s
  resourceLock: leases
  resourceName: berth
  resourceNamespace: kube-system
clientConnection:
  kubeconfig: ""
  qps: 50
  burst: 100
  acceptContentTypes: ""
  contentType: application/vnd.kubernetes.protobuf
profiles:
- schedulerName: default-scheduler
  percentageOfNodesToScore: 70
  plugins:
    multiPoint:
      enabled: [{name: Coscheduling, weight: 2}]
    queueSort:
      enabled: [{name: Coscheduling}]
      disabled: [{name: "*"}]
    score:
      enabled: [{name: NodeResourcesFit, weight: 3}, {name: InterPodAffinity, weight: 2}]
      disabled: [{name: ImageLocality}]
  pluginConfig:
  - name: Coscheduling
    args: {permitWaitingTimeSeconds: 30, podGroupBackoffSeconds: 5, podGroupRejectPercentage: 10}
  - name: NodeResourcesFit
    args:
      ignoredResources: [example.com/foo]
      ignoredResourceGroups: [example.org]
      scoringStrategy:
        type: RequestedToCapacityRatio
        resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]
        requestedToCapacityRatio:
          shape: [{utilization: 0, score: 0}, {utilization: 100, score: 10}]
  - name: NodeResourcesBalancedAllocation
    args: {resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]}
  - name: InterPodAffinity
    args: {hardPodAffinityWeight: 1, ignorePreferredTermsOfExistingPods: false}
  - name: PodTopologySpread
    args:
      defaultingType: List
      defaultConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}
  - name: DefaultPreemption
    args: {minCandidateNodesPercentage: 10, minCandidateNodesAbsolute: 100}
  - name: VolumeBinding
    args:
      bindTimeoutSeconds: 600
      shape: [{utilization: 0, score: 0}, {utilization: 100, score: 10}]
  - name: NodeAffinity
    args:
      addedAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
          - matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}]
        preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 10
          preference:
            matchExpressions: [{key: topology.kubernetes.io/zone, operator: NotIn, values: [z9]}]
  - name: DynamicResources
    args: {filterTimeout: 10s, bindingTimeout: 10m}
- schedulerName: second
  plugins:
    score:
      disabled: [{name: "*"}]
"#;

/// Every path (object keys, array indices) in `v`, the root included.
fn paths(v: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(k.clone());
                paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(i.to_string());
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

/// Values of every shape, and the numbers, quantities and durations that
/// break parsers and arithmetic; `None` (one case in eight) drops the value.
fn odd_value(rng: &mut impl Rng) -> Option<Value> {
    let long = "9".repeat(400);
    let choices = [
        Value::Null,
        json!(""),
        json!("x"),
        json!(-1),
        json!(0),
        json!(1),
        json!(1e308),
        json!(-1e308),
        json!(1e-30),
        json!(f64::MIN_POSITIVE),
        json!(u64::MAX),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(i32::MAX),
        json!(i32::MIN),
        json!(0.5),
        json!(true),
        json!([]),
        json!({}),
        json!({"a": {"b": [1, "c"]}}),
        json!([null, {}, "x"]),
        json!("9999999999999999999999Ei"),
        json!("-5"),
        json!("1e999"),
        json!("0.0000000001m"),
        json!("NaN"),
        json!(long),
        json!("2147483648"),
        json!("1h2m3s"),
        json!("99999999999999999h"),
        json!("2562048h"),
        json!("0s"),
        json!("1ns"),
        json!("-1s"),
        json!("a/b/c"),
        json!("Gt"),
        json!("*"),
        json!("   "),
        json!("\u{0}"),
    ];
    if rng.random_range(0..8) == 0 {
        return None;
    }
    Some(choices[rng.random_range(0..choices.len())].clone())
}

/// Replaces (or removes, for `None`) the value at `path`.
fn mutate(doc: &mut Value, path: &[String], with: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        if let Some(v) = with {
            *doc = v;
        }
        return;
    };
    let mut at = doc;
    for p in parents {
        at = match at {
            Value::Object(m) => m.get_mut(p).unwrap(),
            Value::Array(a) => &mut a[p.parse::<usize>().unwrap()],
            _ => unreachable!("paths come from this document"),
        };
    }
    match (at, with) {
        (Value::Object(m), Some(v)) => {
            m.insert(last.clone(), v);
        }
        (Value::Object(m), None) => {
            m.remove(last);
        }
        (Value::Array(a), Some(v)) => a[last.parse::<usize>().unwrap()] = v,
        (Value::Array(a), None) => {
            a.remove(last.parse::<usize>().unwrap());
        }
        _ => unreachable!("paths come from this document"),
    }
}

/// A value of the same kind as `old`, at the edge of what that kind holds:
/// numbers at their limits, durations and quantities no one can hold,
/// strings that break parsers, a list with its first item twice.
fn edge_value(old: &Value, rng: &mut impl Rng) -> Value {
    let pick = |rng: &mut dyn rand::RngCore, choices: Vec<Value>| choices[rng.random_range(0..choices.len())].clone();
    match old {
        Value::Number(_) => pick(
            rng,
            vec![
                json!(0),
                json!(-1),
                json!(0.5),
                json!(1e-30),
                json!(f64::MIN_POSITIVE),
                json!(i64::MAX),
                json!(i64::MIN),
                json!(i32::MAX),
                json!(i32::MIN),
                json!(u64::MAX),
                json!(1e308),
                json!(-1e308),
            ],
        ),
        Value::String(t) if t.ends_with('s') || t.ends_with('m') || t.ends_with('h') => pick(
            rng,
            vec![
                json!("99999999999999999h"),
                json!("2562048h"),
                json!("2562047h"),
                json!("0s"),
                json!("1ns"),
                json!("-1s"),
                json!("1e999s"),
                json!("s"),
                json!(""),
            ],
        ),
        Value::String(t) if t.starts_with(|c: char| c.is_ascii_digit()) => pick(
            rng,
            vec![
                json!("9999999999999999999999Ei"),
                json!("1e999"),
                json!("-5"),
                json!("0.0000000001m"),
                json!("NaN"),
                json!("9".repeat(400)),
                json!("2147483648"),
                json!("1Pi"),
                json!("0"),
            ],
        ),
        Value::String(_) => {
            pick(rng, vec![json!(""), json!("*"), json!("\u{0}"), json!("   "), json!("a/b/c"), json!("x".repeat(300)), json!("Gt")])
        }
        Value::Bool(b) => pick(rng, vec![json!(!b), json!("true"), Value::Null]),
        Value::Array(a) if !a.is_empty() => {
            let mut twice = a.clone();
            twice.push(a[0].clone());
            pick(rng, vec![Value::Array(twice), json!([]), json!([null])])
        }
        _ => pick(rng, vec![json!({}), json!([]), Value::Null]),
    }
}

/// The value at `path`.
fn at<'v>(doc: &'v Value, path: &[String]) -> &'v Value {
    path.iter().fold(doc, |v, p| match v {
        Value::Object(m) => &m[p],
        Value::Array(a) => &a[p.parse::<usize>().unwrap()],
        _ => unreachable!("paths come from this document"),
    })
}

/// Applies one to three mutations at random paths of `doc`; describes them.
/// Half replace a value by one of its own kind at the edge of that kind
/// (where arithmetic overflows); the others by a value of any shape (where
/// decoders break), or drop it.
fn mutate_some(doc: &mut Value, rng: &mut impl Rng) -> String {
    let mut done = Vec::new();
    for _ in 0..rng.random_range(1..=3) {
        let mut all = Vec::new();
        paths(doc, &mut Vec::new(), &mut all);
        let path = all[rng.random_range(0..all.len())].clone();
        let with = if rng.random_bool(0.5) { Some(edge_value(at(doc, &path), rng)) } else { odd_value(rng) };
        done.push(format!(
            "/{} <- {}",
            path.join("/"),
            with.as_ref().map_or("(removed)".to_string(), |v| v.to_string().chars().take(40).collect())
        ));
        mutate(doc, &path, with);
    }
    done.join(", ")
}

fn load(cluster: &[Value]) -> Option<berth_convert::manifests::Cluster> {
    let text: Vec<String> = cluster.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect();
    berth_convert::manifests::load(&[("cluster.yaml".into(), text.join("---\n"))]).ok()
}

fn options(config: Option<&Value>) -> Option<SimOptions> {
    match config {
        Some(c) => KubeSchedulerConfiguration::from_yaml_value(c.clone()).ok().map(|config| SimOptions { config, ..Default::default() }),
        None => Some(SimOptions::default()),
    }
}

/// Runs `cases` cases of `one` (which mutates and runs an input, returning
/// what it did), collecting the panics; fails naming each.
fn fuzz(name: &str, cases: usize, mut one: impl FnMut(&mut rand_pcg::Pcg64) -> (String, Box<dyn FnOnce()>)) {
    let scale: usize = std::env::var("BERTH_FUZZ_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let seed: u64 = std::env::var("BERTH_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261203);
    let cases = cases * scale;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    // Panics are what this test looks for: keep them for the report, not stderr.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics = Vec::new();
    for case in 0..cases {
        let (what, run) = one(&mut rng);
        if let Err(p) = catch_unwind(AssertUnwindSafe(run)) {
            let message =
                p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            panics.push(format!("case {case}: {what} -> panic: {message}"));
        }
    }
    std::panic::set_hook(previous);
    assert!(panics.is_empty(), "{name}: {} of {cases} mutations panicked (seed {seed}):\n{}", panics.len(), panics.join("\n"));
}

/// The cluster the configuration cases simulate: pods that fit, pods that
/// never fit (backoff), a gang of which part fits (waiting), and a
/// high-priority pod that preempts.
fn small_cluster() -> Vec<Value> {
    let mut docs =
        vec![json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}, "value": 1000})];
    for i in 0..3 {
        docs.push(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("n{i}"),
            "labels": {"kubernetes.io/os": "linux", "topology.kubernetes.io/zone": format!("z{}", i % 2), "kubernetes.io/hostname": format!("n{i}")}},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"}}}));
    }
    let pod = |name: &str, cpu: &str, extra: Value| {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}]}});
        if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
            for (k, v) in extra {
                p.insert(k, v);
            }
        }
        p
    };
    for i in 0..4 {
        docs.push(pod(&format!("fits-{i}"), "500m", json!({})));
    }
    docs.push(pod("never-fits", "64", json!({})));
    docs.push(json!({"apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup", "metadata": {"name": "g", "namespace": "default"},
        "spec": {"minMember": 3}}));
    for i in 0..3 {
        let mut p = pod(&format!("gang-{i}"), "1500m", json!({}));
        p["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"] = json!("g");
        docs.push(p);
    }
    let mut high = pod("urgent", "1500m", json!({}));
    high["spec"]["priorityClassName"] = json!("high");
    docs.push(high);
    docs
}

#[test]
fn no_mutation_of_a_configuration_makes_berth_panic() {
    let full: Value = serde_yaml::from_str(FULL_CONFIG).unwrap();
    assert!(KubeSchedulerConfiguration::from_yaml_value(full.clone()).is_ok(), "the unmutated configuration is valid");
    let scenario_configs: Vec<Value> = scenarios().into_iter().filter_map(|s| s.config).collect();
    let cluster = small_cluster();
    assert!(load(&cluster).is_some(), "the small cluster loads");
    fuzz("configuration", 1200, |rng| {
        let mut config =
            if rng.random_range(0..4) == 0 { scenario_configs[rng.random_range(0..scenario_configs.len())].clone() } else { full.clone() };
        let what = format!("config: {}", mutate_some(&mut config, rng));
        let cluster = cluster.clone();
        (
            what,
            Box::new(move || {
                if let Some(options) = options(Some(&config)) {
                    let _ = simulate(load(&cluster).unwrap(), &options);
                }
            }),
        )
    });
}

#[test]
fn no_mutation_of_the_manifests_makes_reading_them_panic() {
    let all = scenarios();
    fuzz("manifests", 6000, |rng| {
        let s = &all[rng.random_range(0..all.len())];
        let mut cluster = s.cluster.clone();
        let i = rng.random_range(0..cluster.len());
        let what = format!("{}/cluster.yaml document {i}: {}", s.name, mutate_some(&mut cluster[i], rng));
        (
            what,
            Box::new(move || {
                let _ = load(&cluster);
            }),
        )
    });
}

#[test]
fn no_mutation_of_the_scenarios_makes_a_simulation_panic() {
    let all = scenarios();
    fuzz("simulations", 600, |rng| {
        let s = &all[rng.random_range(0..all.len())];
        let (mut cluster, mut config) = (s.cluster.clone(), s.config.clone());
        // The configuration gets one case in five where there is one.
        let what = match config.as_mut() {
            Some(c) if rng.random_range(0..5) == 0 => format!("{}/config.yaml: {}", s.name, mutate_some(c, rng)),
            _ => {
                let i = rng.random_range(0..cluster.len());
                format!("{}/cluster.yaml document {i}: {}", s.name, mutate_some(&mut cluster[i], rng))
            }
        };
        (
            what,
            Box::new(move || {
                if let (Some(cluster), Some(options)) = (load(&cluster), options(config.as_ref())) {
                    let _ = simulate(cluster, &options);
                }
            }),
        )
    });
}
