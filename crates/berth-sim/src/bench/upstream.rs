//! Upstream kube-scheduler's own scheduler_perf workloads, read from their
//! `performance-config.yaml` files (Kubernetes v1.37.2 layout: one file per
//! topic directory, templates relative to it) and run through the bench's
//! driver loop. The spec is docs/research/scheduler-perf-1.37.md.
//!
//! This is the first slice (§8 row 1 and part of rows 3, 7 and 9): test
//! cases and workloads with `$param` substitution and the label filter;
//! `createNodes` (built-in node or template, `labelNodePrepareStrategy`),
//! `createNamespaces`, `createPods` (rapid: its wait is "scheduled pods in the
//! namespace ≥ count") and `barrier` (a no-op here, as nothing is created
//! without waiting). Any other op, or a field of these ops that changes
//! what runs (steady state, PV/PVC, skipWaitToCompletion, other node
//! strategies, `schedulerConfigPath`), makes the workload "not runnable",
//! with the reason: it is listed, never silently skipped.
//!
//! Reading files is the caller's: [`load`] takes a config's text and
//! [`plan`] a function that reads templates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use berth_core::model::{Namespace, Node, Pod};
use k8s_openapi::api::core::v1 as core;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{bench_driver, bench_host, drain, percentile, BenchOptions, Clock, HOSTNAME};

/// The Kubernetes release whose workloads this reads.
pub const UPSTREAM_VERSION: &str = "v1.37.2";

/// The scheduler_perf directory inside a Go module cache.
pub fn module_cache_dir(gomodcache: &Path) -> PathBuf {
    gomodcache.join(format!("k8s.io/kubernetes@{UPSTREAM_VERSION}/test/integration/scheduler_perf"))
}

/// The `performance-config.yaml` files of a scheduler_perf directory (one
/// per topic subdirectory), sorted; or the file itself when `path` is one.
pub fn find_configs(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let f = entry?.path().join("performance-config.yaml");
        if f.is_file() {
            out.push(f);
        }
    }
    out.sort();
    Ok(out)
}

/// What went wrong reading or running an upstream workload. Each names the
/// file, and where it applies the test case, the workload and the field.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The config file itself does not parse.
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    /// One workload's ops, params or templates are wrong.
    #[error("{file}: test case {test_case}: workload {workload}: {field}: {message}")]
    Workload { file: String, test_case: String, workload: String, field: String, message: String },
    /// The scheduler configuration does not build.
    #[error(transparent)]
    Scheduler(#[from] berth_core::config::ConfigError),
    /// A createPods op's wait did not complete: the run did not do its work.
    #[error("{workload}: workloadTemplate[{op}] (createPods in {namespace}): {scheduled} of {expected} pods scheduled; a benchmark that did not do all its work fails")]
    Incomplete { workload: String, op: usize, namespace: String, scheduled: usize, expected: usize },
}

// --- The file format (strict: an unknown key is an error, as upstream). ---

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTestCase {
    name: String,
    #[serde(default)]
    feature_gates: BTreeMap<String, bool>,
    #[serde(default)]
    metrics_collector_config: Option<serde_yaml::Value>,
    workload_template: Vec<serde_yaml::Value>,
    workloads: Vec<RawWorkload>,
    #[serde(default)]
    scheduler_config_path: Option<String>,
    #[serde(default)]
    default_pod_template_path: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    default_threshold_metric_selector: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWorkload {
    name: String,
    #[serde(default)]
    params: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    threshold: Option<Threshold>,
    #[serde(default)]
    threshold_metric_selector: Option<serde_yaml::Value>,
    #[serde(default)]
    feature_gates: BTreeMap<String, bool>,
}

/// A workload's throughput floor: one number, or one per topic.
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
enum Threshold {
    One(f64),
    PerTopic(BTreeMap<String, f64>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateNodesOp {
    #[allow(dead_code)]
    opcode: String,
    count: Option<i64>,
    count_param: Option<String>,
    node_template_path: Option<String>,
    template_params: Option<BTreeMap<String, serde_yaml::Value>>,
    label_node_prepare_strategy: Option<LabelStrategy>,
    node_allocatable_strategy: Option<serde_yaml::Value>,
    unique_node_label_strategy: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LabelStrategy {
    label_key: String,
    label_values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateNamespacesOp {
    #[allow(dead_code)]
    opcode: String,
    prefix: String,
    count: Option<i64>,
    count_param: Option<String>,
    namespace_template_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreatePodsOp {
    #[allow(dead_code)]
    opcode: String,
    count: Option<i64>,
    count_param: Option<String>,
    count_multiplier_param: Option<String>,
    namespace: Option<String>,
    pod_template_path: Option<String>,
    template_params: Option<BTreeMap<String, serde_yaml::Value>>,
    #[serde(default)]
    collect_metrics: bool,
    #[serde(default)]
    skip_wait_to_completion: bool,
    #[serde(default)]
    steady_state: bool,
    steady_state_param: Option<String>,
    duration: Option<String>,
    duration_param: Option<String>,
    persistent_volume_template_path: Option<String>,
    persistent_volume_claim_template_path: Option<String>,
    signature_batch_size: Option<i64>,
    signature_batch_size_param: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BarrierOp {
    #[allow(dead_code)]
    opcode: String,
    #[serde(default)]
    namespaces: Vec<String>,
    label_selector: Option<BTreeMap<String, String>>,
    stage_requirement: Option<String>,
}

/// One `performance-config.yaml`.
pub struct Config {
    file: PathBuf,
    /// The topic (directory name), for per-topic thresholds.
    topic: String,
    test_cases: Vec<RawTestCase>,
}

/// Parses a config file's text; `file` is where it was read from (template
/// paths resolve against its directory).
pub fn load(file: &Path, text: &str) -> Result<Config, UpstreamError> {
    let err = |message: String| UpstreamError::Config { file: file.display().to_string(), message };
    let test_cases: Vec<RawTestCase> = serde_yaml::from_str(text).map_err(|e| err(e.to_string()))?;
    if test_cases.is_empty() {
        return Err(err("no test cases".into()));
    }
    let topic = file.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Config { file: file.to_path_buf(), topic, test_cases })
}

/// Whether `labels` pass a comma-separated filter: `x` or `+x` must be
/// present, `-x` absent; an empty filter passes everything.
pub fn labels_match(filter: &str, labels: &[String]) -> bool {
    filter.split(',').map(str::trim).filter(|f| !f.is_empty()).all(|f| match f.strip_prefix('-') {
        Some(absent) => !labels.iter().any(|l| l == absent),
        None => {
            let present = f.strip_prefix('+').unwrap_or(f);
            labels.iter().any(|l| l == present)
        }
    })
}

/// A workload of a config, by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadRef {
    pub test_case: usize,
    pub workload: usize,
}

impl Config {
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The workloads whose labels (the test case's and their own) pass
    /// `filter`, and whose names equal the given ones when given.
    pub fn select(&self, filter: &str, test_case: Option<&str>, workload: Option<&str>) -> Vec<WorkloadRef> {
        let mut out = Vec::new();
        for (ti, tc) in self.test_cases.iter().enumerate() {
            if test_case.is_some_and(|n| n != tc.name) {
                continue;
            }
            for (wi, w) in tc.workloads.iter().enumerate() {
                if workload.is_some_and(|n| n != w.name) {
                    continue;
                }
                let labels: Vec<String> = tc.labels.iter().chain(&w.labels).cloned().collect();
                if labels_match(filter, &labels) {
                    out.push(WorkloadRef { test_case: ti, workload: wi });
                }
            }
        }
        out
    }

    /// `<test case>/<workload>`, as perf-dash names results.
    pub fn name(&self, r: WorkloadRef) -> String {
        let tc = &self.test_cases[r.test_case];
        format!("{}/{}", tc.name, tc.workloads[r.workload].name)
    }
}

// --- Planning: params substituted, templates read and checked. ---

/// A workload that can run, with everything read.
pub struct Plan {
    pub name: String,
    /// Upstream's floor for the average of 1 s throughput samples, if any.
    pub threshold: Option<f64>,
    /// Nodes created, and pods of the op that collects metrics.
    pub nodes: usize,
    pub measured_pods: usize,
    /// Feature gates the workload sets; Berth runs with its defaults.
    pub feature_gates: BTreeMap<String, bool>,
    steps: Vec<Step>,
}

/// A planned workload, or why it cannot run here.
pub enum Planned {
    Runnable(Plan),
    NotRunnable { name: String, reason: String },
}

/// Where objects come from: a template file, or upstream's built-in object.
struct Template {
    path: String,
    ast: Option<Vec<Tmpl>>,
    params: BTreeMap<String, Value>,
}

enum Step {
    Nodes { op: usize, count: usize, template: Template, labels: Option<LabelStrategy> },
    Namespaces { names: Vec<String>, labels: BTreeMap<String, String> },
    Pods { op: usize, count: usize, namespace: String, template: Template, collect: bool, signature_batch: Option<usize> },
    Barrier,
}

struct Ctx<'a> {
    file: &'a str,
    test_case: &'a str,
    workload: &'a str,
    params: &'a BTreeMap<String, serde_yaml::Value>,
    used: BTreeSet<String>,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> UpstreamError {
        UpstreamError::Workload {
            file: self.file.to_string(),
            test_case: self.test_case.to_string(),
            workload: self.workload.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// A `$name` param, marked used.
    fn param(&mut self, field: &str, reference: &str) -> Result<serde_yaml::Value, UpstreamError> {
        let name = reference.strip_prefix('$').ok_or_else(|| self.err(field, format!("{reference:?} must start with $")))?;
        let v = self.params.get(name).cloned().ok_or_else(|| self.err(field, format!("param {name} is not defined")))?;
        self.used.insert(name.to_string());
        Ok(v)
    }

    /// `count` or `countParam` (YAML numbers truncate to integers, as upstream).
    fn count(&mut self, field: &str, count: Option<i64>, param: Option<&str>) -> Result<usize, UpstreamError> {
        let n = match param {
            Some(p) => {
                let f = format!("{field}.countParam");
                let v = self.param(&f, p)?;
                v.as_i64().or_else(|| v.as_f64().map(|x| x as i64)).ok_or_else(|| self.err(&f, format!("param {p} is not a number")))?
            }
            None => count.unwrap_or(0),
        };
        usize::try_from(n).map_err(|_| self.err(format!("{field}.count"), format!("{n} is negative")))
    }

    /// `templateParams`: `$name` is the param, `$name|default` falls back to
    /// the default as YAML; anything else is literal.
    fn template_params(
        &mut self,
        field: &str,
        tp: Option<&BTreeMap<String, serde_yaml::Value>>,
    ) -> Result<BTreeMap<String, Value>, UpstreamError> {
        let mut out = BTreeMap::new();
        for (k, v) in tp.into_iter().flatten() {
            let f = format!("{field}.templateParams.{k}");
            let v = match v.as_str().and_then(|s| s.strip_prefix('$')) {
                Some(r) => match r.split_once('|') {
                    Some((name, default)) => match self.params.get(name) {
                        Some(p) => {
                            self.used.insert(name.to_string());
                            p.clone()
                        }
                        None => serde_yaml::from_str(default).map_err(|e| self.err(&f, e.to_string()))?,
                    },
                    None => self.param(&f, &format!("${r}"))?,
                },
                None => v.clone(),
            };
            out.insert(k.clone(), serde_json::to_value(&v).map_err(|e| self.err(&f, e.to_string()))?);
        }
        Ok(out)
    }
}

/// Reads a workload's ops and templates. `read` reads a file (templates
/// resolve against the config's directory). Errors are the config's
/// faults; what Berth does not model is [`Planned::NotRunnable`].
pub fn plan(config: &Config, r: WorkloadRef, read: &dyn Fn(&Path) -> std::io::Result<String>) -> Result<Planned, UpstreamError> {
    let tc = &config.test_cases[r.test_case];
    let w = &tc.workloads[r.workload];
    let name = config.name(r);
    let file = config.file.display().to_string();
    let dir = config.file.parent().unwrap_or(Path::new("."));
    let mut cx = Ctx { file: &file, test_case: &tc.name, workload: &w.name, params: &w.params, used: BTreeSet::new() };
    let not = |reason: String| Ok(Planned::NotRunnable { name: name.clone(), reason });
    if tc.scheduler_config_path.is_some() {
        return not("schedulerConfigPath is not modelled".into());
    }
    if w.threshold_metric_selector.is_some() || tc.default_threshold_metric_selector.is_some() {
        return not("a custom thresholdMetricSelector is not modelled".into());
    }
    let _ = &tc.metrics_collector_config; // histograms only: Berth measures throughput.
    let read_template = |cx: &Ctx, field: &str, rel: &str, params: BTreeMap<String, Value>| -> Result<Template, UpstreamError> {
        let path = dir.join(rel);
        let text = read(&path).map_err(|e| cx.err(field, format!("cannot read {}: {e}", path.display())))?;
        let ast = parse_template(&text).map_err(|e| cx.err(field, format!("{}: {e}", path.display())))?;
        Ok(Template { path: path.display().to_string(), ast: Some(ast), params })
    };
    let mut steps = Vec::new();
    let (mut nodes, mut measured) = (0, 0);
    let mut collecting = 0;
    for (i, op) in tc.workload_template.iter().enumerate() {
        let field = format!("workloadTemplate[{i}]");
        let opcode = op.get("opcode").and_then(|o| o.as_str()).unwrap_or("").to_string();
        fn strict<T: DeserializeOwned>(cx: &Ctx, field: &str, op: &serde_yaml::Value) -> Result<T, UpstreamError> {
            serde_yaml::from_value(op.clone()).map_err(|e| cx.err(field, e.to_string()))
        }
        match opcode.as_str() {
            "createNodes" => {
                let o: CreateNodesOp = strict(&cx, &field, op)?;
                if o.node_allocatable_strategy.is_some() {
                    return not(format!("{field} (createNodes): nodeAllocatableStrategy is not modelled"));
                }
                if o.unique_node_label_strategy.is_some() {
                    return not(format!("{field} (createNodes): uniqueNodeLabelStrategy is not modelled"));
                }
                let count = cx.count(&field, o.count, o.count_param.as_deref())?;
                let params = cx.template_params(&field, o.template_params.as_ref())?;
                let template = match &o.node_template_path {
                    Some(p) => read_template(&cx, &format!("{field}.nodeTemplatePath"), p, params)?,
                    None => Template { path: "the built-in node".into(), ast: None, params },
                };
                nodes += count;
                steps.push(Step::Nodes { op: i, count, template, labels: o.label_node_prepare_strategy });
            }
            "createNamespaces" => {
                let o: CreateNamespacesOp = strict(&cx, &field, op)?;
                let count = cx.count(&field, o.count, o.count_param.as_deref())?;
                // Namespace templates are plain YAML: only their labels matter here.
                let labels = match &o.namespace_template_path {
                    Some(rel) => {
                        let f = format!("{field}.namespaceTemplatePath");
                        let path = dir.join(rel);
                        let text = read(&path).map_err(|e| cx.err(&f, format!("cannot read {}: {e}", path.display())))?;
                        let ns: core::Namespace = decode(&yaml_to_json(&text).map_err(|e| cx.err(&f, e))?, "Namespace")
                            .map_err(|e| cx.err(&f, format!("{}: {e}", path.display())))?;
                        ns.metadata.labels.unwrap_or_default()
                    }
                    None => BTreeMap::new(),
                };
                steps.push(Step::Namespaces { names: (0..count).map(|n| format!("{}-{n}", o.prefix)).collect(), labels });
            }
            "createPods" => {
                let o: CreatePodsOp = strict(&cx, &field, op)?;
                let unmodelled = [
                    (o.skip_wait_to_completion, "skipWaitToCompletion"),
                    (o.steady_state || o.steady_state_param.is_some(), "steadyState"),
                    (o.duration.is_some() || o.duration_param.is_some(), "duration"),
                    (
                        o.persistent_volume_template_path.is_some() || o.persistent_volume_claim_template_path.is_some(),
                        "persistentVolume(Claim)TemplatePath",
                    ),
                ];
                if let Some((_, what)) = unmodelled.iter().find(|(set, _)| *set) {
                    return not(format!("{field} (createPods): {what} is not modelled"));
                }
                let mut count = cx.count(&field, o.count, o.count_param.as_deref())?;
                if let Some(m) = &o.count_multiplier_param {
                    let f = format!("{field}.countMultiplierParam");
                    let v = cx.param(&f, m)?;
                    let m = v.as_f64().ok_or_else(|| cx.err(&f, format!("param {m} is not a number")))? as usize;
                    count *= m;
                }
                let signature_batch = match (&o.signature_batch_size_param, o.signature_batch_size) {
                    (Some(p), _) => {
                        let f = format!("{field}.signatureBatchSizeParam");
                        let v = cx.param(&f, p)?;
                        v.as_f64().ok_or_else(|| cx.err(&f, format!("param {p} is not a number")))? as usize
                    }
                    (None, n) => n.unwrap_or(0).max(0) as usize,
                };
                let params = cx.template_params(&field, o.template_params.as_ref())?;
                let (template, signature_batch) = match o.pod_template_path.as_ref().or(tc.default_pod_template_path.as_ref()) {
                    Some(p) => {
                        let f = if o.pod_template_path.is_some() {
                            format!("{field}.podTemplatePath")
                        } else {
                            "defaultPodTemplatePath".into()
                        };
                        (read_template(&cx, &f, p, params)?, Some(signature_batch.max(1)))
                    }
                    // Pods of the built-in template get no signature label.
                    None => (Template { path: "the built-in pod".into(), ast: None, params }, None),
                };
                let namespace = o.namespace.clone().unwrap_or_else(|| format!("namespace-{i}"));
                if o.collect_metrics {
                    collecting += 1;
                    measured += count;
                }
                steps.push(Step::Pods { op: i, count, namespace, template, collect: o.collect_metrics, signature_batch });
            }
            "barrier" => {
                let o: BarrierOp = strict(&cx, &field, op)?;
                // Every createPods here waits for its pods, so no counter is
                // left for a barrier: it has nothing to wait for.
                let _ = (o.namespaces, o.label_selector, o.stage_requirement);
                steps.push(Step::Barrier);
            }
            "" => return Err(cx.err(format!("{field}.opcode"), "missing")),
            other => return not(format!("{field}: op {other} is not modelled")),
        }
    }
    if collecting != 1 {
        return not(format!("{collecting} createPods ops collect metrics; this slice measures exactly one"));
    }
    let unused: Vec<&String> = w.params.keys().filter(|k| !cx.used.contains(*k)).collect();
    if let Some(k) = unused.first() {
        // Upstream refuses a param nothing reads; a topic's own Go code
        // (nodedeclaredfeatures) reads some that no op does. Either way this
        // reader cannot run the workload as upstream would.
        return not(format!("params.{k}: no op Berth runs reads it (a typo, or read by the topic's own code): not modelled"));
    }
    let threshold = match &w.threshold {
        Some(Threshold::One(t)) => Some(*t),
        Some(Threshold::PerTopic(m)) => m.get(&config.topic).copied(),
        None => None,
    }
    .filter(|t| *t > 0.0);
    let mut feature_gates = tc.feature_gates.clone();
    feature_gates.extend(w.feature_gates.clone());
    let plan = Plan { name, threshold, nodes, measured_pods: measured, feature_gates, steps };
    // Render each template once: a template Berth cannot read makes the
    // workload fail here, before anything runs.
    let mut names = Names::default();
    for s in &plan.steps {
        match s {
            Step::Nodes { op, count, template, labels } if *count > 0 => {
                make_node(template, *op, 0, *count, labels.as_ref(), &mut names)
                    .map_err(|e| cx.err(format!("workloadTemplate[{op}]"), e))?;
            }
            Step::Pods { op, count, namespace, template, signature_batch, .. } if *count > 0 => {
                make_pod(template, 0, *count, namespace, *signature_batch, &mut names, &mut None)
                    .map_err(|e| cx.err(format!("workloadTemplate[{op}]"), e))?;
            }
            _ => {}
        }
    }
    Ok(Planned::Runnable(plan))
}

// --- Objects from templates. ---

/// generateName suffixes: deterministic, unique per prefix within a run.
#[derive(Default)]
struct Names(BTreeMap<String, usize>);

impl Names {
    fn generate(&mut self, prefix: &str) -> String {
        let n = self.0.entry(prefix.to_string()).or_default();
        *n += 1;
        let mut s = String::new();
        let mut v = *n - 1;
        for _ in 0..5 {
            s.insert(0, char::from_digit((v % 36) as u32, 36).unwrap_or('0'));
            v /= 36;
        }
        format!("{prefix}{s}")
    }
}

fn builtin_node(op: usize) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"generateName": format!("node-{op}-")},
        "status": {"capacity": {"pods": "110", "cpu": "4", "memory": "32Gi"}, "allocatable": {"pods": "110", "cpu": "4", "memory": "32Gi"},
            "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn builtin_pod() -> Value {
    let r = serde_json::json!({"cpu": "100m", "memory": "500Mi"});
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "pod-"},
        "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10.2", "ports": [{"containerPort": 80}],
            "resources": {"limits": r, "requests": r}}]}})
}

/// The object for index `index` of `count`: rendered and read as YAML.
fn render_object(t: &Template, index: usize, count: usize, builtin: impl FnOnce() -> Value) -> Result<Value, String> {
    match &t.ast {
        None => Ok(builtin()),
        Some(ast) => {
            let env = Env { index: index as i64, count: count as i64, params: &t.params };
            let mut out = String::new();
            render(ast, &env, &mut out).map_err(|e| format!("{}: {e}", t.path))?;
            yaml_to_json(&out).map_err(|e| format!("{}: {e}", t.path))
        }
    }
}

fn make_node(
    t: &Template,
    op: usize,
    index: usize,
    count: usize,
    labels: Option<&LabelStrategy>,
    names: &mut Names,
) -> Result<Node, String> {
    let v = render_object(t, index, count, || builtin_node(op))?;
    let mut n: core::Node = decode(&v, "Node").map_err(|e| format!("{}: {e}", t.path))?;
    let name = match (&n.metadata.name, &n.metadata.generate_name) {
        (Some(name), _) if !name.is_empty() => name.clone(),
        (_, Some(prefix)) => names.generate(prefix),
        _ => return Err(format!("{}: neither metadata.name nor metadata.generateName is set", t.path)),
    };
    n.metadata.name = Some(name.clone());
    let l = n.metadata.labels.get_or_insert_with(BTreeMap::new);
    // Upstream gives every node its hostname label, over the template's.
    l.insert(HOSTNAME.to_string(), name);
    if let Some(s) = labels.filter(|s| !s.label_values.is_empty()) {
        // Round-robin over this op's nodes.
        l.insert(s.label_key.clone(), s.label_values[index % s.label_values.len()].clone());
    }
    berth_convert::node(&n).map_err(|e| format!("{}: {e}", t.path))
}

fn make_pod(
    t: &Template,
    index: usize,
    count: usize,
    namespace: &str,
    signature_batch: Option<usize>,
    names: &mut Names,
    memo: &mut Option<(Value, core::Pod)>,
) -> Result<Pod, String> {
    let v = render_object(t, index, count, builtin_pod)?;
    // Most templates render the same object for every index: decode it once.
    let mut p = match memo {
        Some((prev, p)) if *prev == v => p.clone(),
        _ => {
            let p: core::Pod = decode(&v, "Pod").map_err(|e| format!("{}: {e}", t.path))?;
            *memo = Some((v, p.clone()));
            p
        }
    };
    let name = match (&p.metadata.name, &p.metadata.generate_name) {
        (Some(name), _) if !name.is_empty() => name.clone(),
        (_, Some(prefix)) => names.generate(&format!("{namespace}/{prefix}"))[namespace.len() + 1..].to_string(),
        _ => return Err(format!("{}: neither metadata.name nor metadata.generateName is set", t.path)),
    };
    p.metadata.name = Some(name);
    p.metadata.namespace = Some(namespace.to_string());
    if let Some(batch) = signature_batch {
        p.metadata.labels.get_or_insert_with(BTreeMap::new).insert("signature".into(), format!("signature-label-{}", index / batch));
    }
    berth_convert::pod(&p, &berth_convert::PriorityClasses::new()).map_err(|e| format!("{}: {e}", t.path))
}

fn yaml_to_json(text: &str) -> Result<Value, String> {
    let y: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let mut v = serde_json::to_value(y).map_err(|e| e.to_string())?;
    quantities_as_strings(&mut v, false);
    Ok(v)
}

/// Go reads `cpu: 4` as a quantity; k8s-openapi wants a string.
fn quantities_as_strings(v: &mut Value, in_list: bool) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let list = matches!(k.as_str(), "capacity" | "allocatable" | "requests" | "limits" | "overhead");
                if in_list {
                    if let Value::Number(n) = x {
                        *x = Value::String(n.to_string());
                        continue;
                    }
                }
                quantities_as_strings(x, list);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| quantities_as_strings(x, false)),
        _ => {}
    }
}

/// Decodes into a k8s-openapi type without losing fields. Upstream's
/// decoder matches keys case-insensitively (`NodeTaintsPolicy` is
/// `nodeTaintsPolicy`); k8s-openapi drops a key it does not know. So each
/// key that does not survive a round trip is tried in lower camel case,
/// and refused if that does not survive either.
fn decode<T: DeserializeOwned + Serialize>(v: &Value, kind: &str) -> Result<T, String> {
    let mut v = v.clone();
    loop {
        let t: T = serde_json::from_value(v.clone()).map_err(|e| format!("not a {kind}: {e}"))?;
        let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
        let Some((path, key)) = first_dropped(&v, &back, &mut Vec::new()) else { return Ok(t) };
        let mut lower = key.clone();
        if let Some(first) = lower.get_mut(0..1) {
            first.make_ascii_lowercase();
        }
        let shown = path.iter().map(|s| s.to_string()).chain([key.clone()]).collect::<Vec<_>>().join(".");
        if lower == key {
            return Err(format!("{shown}: not a field of {kind} (it would be dropped)"));
        }
        let Some(Value::Object(m)) = path.iter().try_fold(&mut v, |v, s| match s {
            Seg::Key(k) => v.get_mut(k),
            Seg::Index(i) => v.get_mut(*i),
        }) else {
            return Err(format!("{shown}: cannot rename"));
        };
        if m.contains_key(&lower) {
            return Err(format!("{shown}: set twice, also as {lower}"));
        }
        let x = m.remove(&key).unwrap_or(Value::Null);
        m.insert(lower, x);
    }
}

#[derive(Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seg::Key(k) => f.write_str(k),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

fn first_dropped(input: &Value, output: &Value, path: &mut Vec<Seg>) -> Option<(Vec<Seg>, String)> {
    match input {
        Value::Object(m) => {
            for (k, x) in m {
                if x.is_null() {
                    continue;
                }
                match output.get(k) {
                    None => return Some((path.clone(), k.clone())),
                    Some(o) => {
                        path.push(Seg::Key(k.clone()));
                        let r = first_dropped(x, o, path);
                        path.pop();
                        if r.is_some() {
                            return r;
                        }
                    }
                }
            }
            None
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let o = output.get(i)?;
                path.push(Seg::Index(i));
                let r = first_dropped(x, o, path);
                path.pop();
                if r.is_some() {
                    return r;
                }
            }
            None
        }
        _ => None,
    }
}

// --- The Go text/template subset the node and pod templates use. ---

/// Parsed template: text, `{{expr}}`, and `{{if}}…{{else}}…{{end}}`.
enum Tmpl {
    Text(String),
    Print(Expr),
    If(Expr, Vec<Tmpl>, Vec<Tmpl>),
}

enum Expr {
    Int(i64),
    Str(String),
    /// `.Index`, `.Count` or a templateParam.
    Field(String),
    Call(String, Vec<Expr>),
}

const FUNCS: [&str; 8] = ["AddInt", "SubtractInt", "MultiplyInt", "DivideInt", "Mod", "eq", "ge", "ne"];

fn parse_template(text: &str) -> Result<Vec<Tmpl>, String> {
    let mut tokens = Vec::new(); // (is_action, text)
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        tokens.push((false, rest[..start].to_string()));
        let end = rest[start..].find("}}").ok_or("unclosed {{")? + start;
        tokens.push((true, rest[start + 2..end].to_string()));
        rest = &rest[end + 2..];
    }
    tokens.push((false, rest.to_string()));
    let mut it = tokens.into_iter().peekable();
    let (body, end) = parse_block(&mut it)?;
    match end {
        None => Ok(body),
        Some(e) => Err(format!("{{{{{e}}}}} without {{{{if}}}}")),
    }
}

type Tokens = std::iter::Peekable<std::vec::IntoIter<(bool, String)>>;

/// Parses until `{{else}}` or `{{end}}` (returned) or the end.
fn parse_block(it: &mut Tokens) -> Result<(Vec<Tmpl>, Option<String>), String> {
    let mut out = Vec::new();
    while let Some((action, text)) = it.next() {
        if !action {
            out.push(Tmpl::Text(text));
            continue;
        }
        let a = text.trim();
        if text.starts_with('-') || text.ends_with('-') {
            return Err(format!("{{{{{text}}}}}: whitespace trimming is not supported"));
        }
        if a == "else" || a == "end" {
            return Ok((out, Some(a.to_string())));
        }
        if let Some(cond) = a.strip_prefix("if ") {
            let cond = parse_expr(cond)?;
            let (then, end) = parse_block(it)?;
            let otherwise = match end.as_deref() {
                Some("end") => Vec::new(),
                Some("else") => match parse_block(it)? {
                    (b, Some(e)) if e == "end" => b,
                    _ => return Err("{{else}} without {{end}}".into()),
                },
                _ => return Err("{{if}} without {{end}}".into()),
            };
            out.push(Tmpl::If(cond, then, otherwise));
            continue;
        }
        out.push(Tmpl::Print(parse_expr(a)?));
    }
    Ok((out, None))
}

fn parse_expr(s: &str) -> Result<Expr, String> {
    let toks = lex(s)?;
    let mut pos = 0;
    let e = parse_call(&toks, &mut pos, s)?;
    if pos != toks.len() {
        return Err(format!("{{{{{s}}}}}: unexpected {:?}", toks[pos]));
    }
    Ok(e)
}

fn lex(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            chars.next();
        } else if c == '"' {
            let mut t = String::from('"');
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => return Err(format!("{{{{{s}}}}}: escapes in strings are not supported")),
                    Some(x) => t.push(x),
                    None => return Err(format!("{{{{{s}}}}}: unclosed string")),
                }
            }
            out.push(t);
        } else {
            let mut t = String::new();
            while let Some(&x) = chars.peek() {
                if x.is_whitespace() || x == '(' || x == ')' {
                    break;
                }
                t.push(x);
                chars.next();
            }
            out.push(t);
        }
    }
    Ok(out)
}

/// `f a b …` or a single operand.
fn parse_call(toks: &[String], pos: &mut usize, src: &str) -> Result<Expr, String> {
    let first = toks.get(*pos).ok_or_else(|| format!("{{{{{src}}}}}: empty"))?;
    if FUNCS.contains(&first.as_str()) {
        let f = first.clone();
        *pos += 1;
        let mut args = Vec::new();
        while *pos < toks.len() && toks[*pos] != ")" {
            args.push(parse_operand(toks, pos, src)?);
        }
        if args.len() != 2 {
            return Err(format!("{{{{{src}}}}}: {f} takes two arguments"));
        }
        return Ok(Expr::Call(f, args));
    }
    parse_operand(toks, pos, src)
}

fn parse_operand(toks: &[String], pos: &mut usize, src: &str) -> Result<Expr, String> {
    let t = toks.get(*pos).ok_or_else(|| format!("{{{{{src}}}}}: missing operand"))?.clone();
    *pos += 1;
    if t == "(" {
        let e = parse_call(toks, pos, src)?;
        if toks.get(*pos).map(String::as_str) != Some(")") {
            return Err(format!("{{{{{src}}}}}: missing )"));
        }
        *pos += 1;
        return Ok(e);
    }
    if let Some(s) = t.strip_prefix('"') {
        return Ok(Expr::Str(s.to_string()));
    }
    if let Some(f) = t.strip_prefix('.') {
        if !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(Expr::Field(f.to_string()));
        }
    }
    if let Ok(n) = t.parse::<i64>() {
        return Ok(Expr::Int(n));
    }
    Err(format!(
        "{{{{{src}}}}}: {t:?} is not supported (this reader knows fields, integers, strings, parentheses and {})",
        FUNCS.join(", ")
    ))
}

struct Env<'a> {
    index: i64,
    count: i64,
    params: &'a BTreeMap<String, Value>,
}

fn eval(e: &Expr, env: &Env) -> Result<Value, String> {
    Ok(match e {
        Expr::Int(n) => Value::from(*n),
        Expr::Str(s) => Value::from(s.clone()),
        Expr::Field(f) => match f.as_str() {
            "Index" => Value::from(env.index),
            "Count" => Value::from(env.count),
            _ => env.params.get(f).cloned().unwrap_or(Value::Null),
        },
        Expr::Call(f, args) => {
            let a = eval(&args[0], env)?;
            let b = eval(&args[1], env)?;
            let int = |v: &Value| v.as_i64().or_else(|| v.as_f64().map(|x| x as i64)).ok_or_else(|| format!("{f}: {v} is not a number"));
            match f.as_str() {
                "eq" => Value::Bool(a == b || (a.is_number() && b.is_number() && a.as_f64() == b.as_f64())),
                "ne" => Value::Bool(!(a == b || (a.is_number() && b.is_number() && a.as_f64() == b.as_f64()))),
                "ge" => {
                    Value::Bool(a.as_f64().zip(b.as_f64()).map(|(x, y)| x >= y).ok_or_else(|| format!("ge: {a} and {b} are not numbers"))?)
                }
                _ => {
                    let (x, y) = (int(&a)?, int(&b)?);
                    let r = match f.as_str() {
                        "AddInt" => x.checked_add(y),
                        "SubtractInt" => x.checked_sub(y),
                        "MultiplyInt" => x.checked_mul(y),
                        "DivideInt" => x.checked_div(y),
                        _ => x.checked_rem(y),
                    };
                    Value::from(r.ok_or_else(|| format!("{f} {x} {y}: overflow or division by zero"))?)
                }
            }
        }
    })
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn render(t: &[Tmpl], env: &Env, out: &mut String) -> Result<(), String> {
    for n in t {
        match n {
            Tmpl::Text(s) => out.push_str(s),
            Tmpl::Print(e) => match eval(e, env)? {
                Value::Null => {
                    let Expr::Field(f) = e else { return Err("no value".into()) };
                    return Err(format!(".{f} has no value (not a templateParam)"));
                }
                Value::String(s) => out.push_str(&s),
                Value::Number(n) => match n.as_f64() {
                    Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => out.push_str(&(x as i64).to_string()),
                    _ => out.push_str(&n.to_string()),
                },
                v => out.push_str(&v.to_string()),
            },
            Tmpl::If(c, a, b) => render(if truthy(&eval(c, env)?) { a } else { b }, env, out)?,
        }
    }
    Ok(())
}

// --- Running. ---

/// One upstream workload's result. The figure is pods bound per second of
/// the measured op's drain (as the hand-made workloads report); upstream
/// reports the average of 1 s samples, given too when the run was long
/// enough to have any.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamReport {
    pub workload: String,
    pub nodes: usize,
    /// Pods of the op that collects metrics, and how many were scheduled.
    pub pods: usize,
    pub scheduled: usize,
    pub seconds: f64,
    pub pods_per_second: f64,
    /// Upstream's figure: the average of 1 s throughput samples (its rules:
    /// the first non-empty tick is the baseline, an empty tick shares the
    /// next one's rate, trailing empty ticks are dropped). None under ~2 s.
    pub sampled_average: Option<f64>,
    pub samples: usize,
    /// Upstream's floor for its sampled average (6-core CI, real API server):
    /// a reference, not a pass mark.
    pub threshold: Option<f64>,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
}

/// Upstream's throughput samples from the times (seconds after the
/// collection started, ascending) at which measured pods were bound, with a
/// tick each second up to the last bind.
pub fn throughput_samples(times: &[f64]) -> Vec<f64> {
    let Some(last) = times.last() else { return Vec::new() };
    let ticks = last.ceil().max(1.0) as usize;
    let (mut samples, mut baseline, mut skipped, mut seen) = (Vec::new(), None::<usize>, 0usize, 0usize);
    for k in 1..=ticks {
        while seen < times.len() && times[seen] <= k as f64 {
            seen += 1;
        }
        match baseline {
            None if seen > 0 => baseline = Some(seen),
            None => {}
            Some(b) if seen == b => skipped += 1,
            Some(b) => {
                let rate = (seen - b) as f64 / (skipped + 1) as f64;
                samples.extend(std::iter::repeat_n(rate, skipped + 1));
                skipped = 0;
                baseline = Some(seen);
            }
        }
    }
    samples
}

/// Runs a planned workload; `progress` is called with (done, total) of the
/// measured op now and then.
pub fn run(plan: &Plan, opts: &BenchOptions, mut progress: impl FnMut(usize, usize)) -> Result<UpstreamReport, UpstreamError> {
    let (host, writer) = bench_host(opts);
    let result = run_with(plan, opts, &host, &writer, &mut progress);
    writer.detach();
    result
}

fn run_with(
    plan: &Plan,
    opts: &BenchOptions,
    host: &berth_core::framework::PluginHost,
    writer: &crate::writer::MemoryWriter,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<UpstreamReport, UpstreamError> {
    let mut driver = bench_driver(opts, host)?;
    let mut clock = Clock::new();
    let mut names = Names::default();
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    let mut scheduled_in: BTreeMap<String, usize> = BTreeMap::new();
    let mut report = None;
    let object_err = |op: usize, message: String| UpstreamError::Workload {
        file: String::new(),
        test_case: plan.name.clone(),
        workload: String::new(),
        field: format!("workloadTemplate[{op}]"),
        message,
    };
    for step in &plan.steps {
        match step {
            Step::Nodes { op, count, template, labels } => {
                for i in 0..*count {
                    let n = make_node(template, *op, i, *count, labels.as_ref(), &mut names).map_err(|e| object_err(*op, e))?;
                    driver.engine_mut().add_node(n, clock.now());
                }
            }
            Step::Namespaces { names: ns, labels } => {
                for n in ns {
                    let model = Namespace { name: n.clone(), labels: labels.clone() };
                    driver.engine_mut().set_namespace(&model.name, model.labels, clock.now());
                    namespaces.insert(n.clone());
                }
            }
            Step::Barrier => {
                drain(&mut driver, &mut clock, usize::MAX, &mut Vec::new(), &mut |_, _| {}, &mut |_| {}, writer);
            }
            Step::Pods { op, count, namespace, template, collect, signature_batch } => {
                if namespaces.insert(namespace.clone()) {
                    driver.engine_mut().set_namespace(namespace, BTreeMap::new(), clock.now());
                }
                let mut memo = None;
                for i in 0..*count {
                    let p = make_pod(template, i, *count, namespace, *signature_batch, &mut names, &mut memo)
                        .map_err(|e| object_err(*op, e))?;
                    driver.engine_mut().add_pod(p, clock.now());
                }
                let mut lat = Vec::new();
                let mut times = Vec::new();
                let start = Instant::now();
                let mut on_bound = |p: &berth_core::framework::PodInfo| {
                    *scheduled_in.entry(p.pod.namespace.clone()).or_default() += 1;
                    if *collect && p.pod.namespace == *namespace {
                        times.push(start.elapsed().as_secs_f64());
                    }
                };
                let mut quiet = |_: usize, _: usize| {};
                let prog: &mut dyn FnMut(usize, usize) = if *collect { progress } else { &mut quiet };
                drain(&mut driver, &mut clock, *count, &mut lat, prog, &mut on_bound, writer);
                let secs = start.elapsed().as_secs_f64();
                // Upstream's wait: scheduled pods in the namespace (all, not only this op's) ≥ count.
                let scheduled = scheduled_in.get(namespace).copied().unwrap_or(0);
                if scheduled < *count {
                    return Err(UpstreamError::Incomplete {
                        workload: plan.name.clone(),
                        op: *op,
                        namespace: namespace.clone(),
                        scheduled,
                        expected: *count,
                    });
                }
                if *collect {
                    lat.sort_by(f64::total_cmp);
                    let samples = throughput_samples(&times);
                    report = Some(UpstreamReport {
                        workload: plan.name.clone(),
                        nodes: plan.nodes,
                        pods: *count,
                        scheduled: times.len(),
                        seconds: secs,
                        pods_per_second: if secs > 0.0 { times.len() as f64 / secs } else { 0.0 },
                        sampled_average: (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64),
                        samples: samples.len(),
                        threshold: plan.threshold,
                        p50_us: percentile(&lat, 0.50),
                        p90_us: percentile(&lat, 0.90),
                        p99_us: percentile(&lat, 0.99),
                    });
                }
            }
        }
    }
    // plan() refuses workloads without exactly one measured op.
    report.ok_or_else(|| object_err(0, "no op collected metrics".into()))
}

#[cfg(test)]
mod tests;
