//! # berth-sim
//!
//! Drives the engine over an in-memory cluster: `berth simulate` (manifests
//! in, placements with reasons out) and `berth bench` (scheduler_perf-shaped
//! workloads). Binding happens in memory, instantly; everything else — queue
//! order, backoff, event-driven requeueing, preemption — is the same engine
//! the live scheduler runs.

pub mod bench;
mod claims;
pub mod output;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth_convert::manifests::Cluster;
use berth_core::config::KubeSchedulerConfiguration;
use berth_core::driver::{Driver, Effect, Unobserved};
use berth_core::engine::{Engine, EngineConfig};
use berth_core::framework::{Binder, Code, CollectEvents, NodeToStatus, ObjectError, PluginHost, PodInfo, Registry, ScoreMatrix, Status};
use berth_core::model::Pod;
use berth_core::plugins::dynamic_resources::objects::CLAIM_TEMPLATES;
use berth_core::queue::QueueConfig;
use berth_core::scheduler::ScheduleResult;
use serde::Serialize;

/// How to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Seed for tie-breaking among equally good nodes.
    pub seed: u64,
    /// Keep every node's verdict and scores per pod (`--explain`).
    pub explain: bool,
    /// The scheduler configuration.
    pub config: KubeSchedulerConfiguration,
    /// Reuse per-node results between pods of the same spec (on by default,
    /// as in `berth run`); off only to show that reuse changes nothing.
    pub memoize: bool,
    /// The plugins the configuration may name: the built-in ones, and a
    /// custom scheduler's own.
    pub registry: Registry,
    /// How to reach the configuration's extenders (`berth simulate` calls
    /// them over HTTP); `None`: a configuration with extenders is refused.
    pub extenders: Option<berth_core::config::ExtenderConnector>,
    /// How to load WebAssembly plugins (`berth simulate` runs them in
    /// wasmtime); `None`: a configuration naming one is refused.
    pub wasm: Option<berth_core::config::WasmLoader>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 0,
            explain: false,
            config: KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).expect("default config"),
            memoize: true,
            registry: Registry::builtin(),
            extenders: None,
            wasm: None,
        }
    }
}

/// One node's verdict for one pod, for `--explain`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeVerdict {
    pub node: String,
    /// `passed` or `rejected`. Nodes the search did not reach are not listed.
    pub filter: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Weighted score per plugin (feasible nodes that were scored).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<PluginScore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct PluginScore {
    pub plugin: String,
    pub score: i64,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub total_nodes: usize,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
    pub nodes: Vec<NodeVerdict>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodResult {
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    /// The FailedScheduling message, or empty when scheduled.
    pub message: String,
    /// Pods evicted to make room for this one (`ns/name`).
    pub preempted: Vec<String>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nominated_node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Explanation>,
    /// Events plugins recorded about the pod (`Handle::record_event`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<SimEvent>,
}

/// An event a plugin recorded, as `kubectl describe pod` would list it.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SimEvent {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The reason, e.g. `QuotaExceeded`.
    pub reason: String,
    /// The message.
    pub note: String,
    /// The profile that reported it.
    pub reporting_controller: String,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub nodes: usize,
    pub pending_pods: usize,
    pub scheduled: usize,
    pub unschedulable: usize,
    pub preemptions: usize,
    pub evicted: usize,
    pub scheduling_attempts: usize,
    /// Cache operations that failed where none should have (a bug: the
    /// engine was fed events that disagree with its state); shown only when
    /// there were some.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_errors: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How a pod group (a gang) ended: placed whole, or why not.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GroupOutcome {
    /// `namespace/name` of the PodGroup.
    pub name: String,
    /// Members that must be placed at once (`None`: the PodGroup was never seen).
    pub min_count: Option<u32>,
    /// Members in the input (pending and bound).
    pub members: usize,
    /// Members on nodes at the end.
    pub placed: usize,
    /// Whether at least `min_count` members are placed.
    pub scheduled: bool,
    /// The group's last status (e.g. `pod group is unschedulable, minCount (3)
    /// cannot be satisfied: 1 scheduled, 1 remaining`); empty when scheduled.
    pub message: String,
    /// The members that did not fit on their own, with their per-node reasons.
    pub reasons: Vec<(String, String)>,
}

#[derive(Serialize, Clone, Debug)]
pub struct SimResult {
    pub pods: Vec<PodResult>,
    /// Pod groups, by name (empty when the input has none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupOutcome>,
    pub summary: Summary,
    /// Kinds in the input that nothing reads (neither Berth nor a plugin),
    /// with how many objects of each: the CLI warns about them.
    #[serde(skip)]
    pub skipped: BTreeMap<String, usize>,
    /// Pending pods whose schedulerName no profile has, by that name: the
    /// simulator places them with the first profile, where `berth run`
    /// would leave them to another scheduler. The CLI warns about them.
    #[serde(skip)]
    pub adopted: BTreeMap<String, usize>,
    /// The first profile's schedulerName, which placed the adopted pods.
    #[serde(skip)]
    pub first_profile: String,
}

impl SimResult {
    /// One warning per kind in `skipped`, for the commands that read manifests to print.
    pub fn skipped_warnings(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|(kind, n)| {
                format!(
                    "warning: skipped {n} object(s) of kind {kind}: simulate reads Node, Pod, PriorityClass, PodDisruptionBudget, Namespace and the kinds plugins declare"
                )
            })
            .chain(self.adopted.iter().map(|(name, n)| {
                format!(
                    "warning: {n} pod(s) name schedulerName {name:?}, which no profile of the configuration has: simulate placed them with the profile {:?}, where `berth run` would leave them to another scheduler",
                    self.first_profile
                )
            }))
            .collect()
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration does not build (unknown plugin, bad args).
    #[error(transparent)]
    Config(#[from] berth_core::config::ConfigError),
    /// An object of a kind a plugin reads is malformed.
    #[error("{file}: {source}")]
    Object { file: String, source: berth_core::framework::ObjectError },
}

/// The simulator's "API server": binding always succeeds.
struct MemoryBinder;

impl Binder for MemoryBinder {
    fn bind(&self, _pod: &Pod, _node: &str) -> Result<(), String> {
        Ok(())
    }
}

fn explain_success(engine: &Engine, r: &ScheduleResult) -> Explanation {
    let snap = engine.snapshot();
    let mut verdicts: HashMap<usize, NodeVerdict> = HashMap::new();
    add_rejections(snap, &r.rejected, &mut verdicts);
    for (pos, &idx) in r.feasible.iter().enumerate() {
        let mut v = NodeVerdict {
            node: snap.nodes()[idx].name().to_string(),
            filter: "passed".into(),
            plugin: None,
            reason: None,
            scores: vec![],
            total: None,
        };
        if let Some(m) = &r.scores {
            v.scores = scores_of(m, pos);
            v.total = Some(m.totals[pos]);
        }
        verdicts.insert(idx, v);
    }
    finish_explanation(engine, verdicts, r.evaluated_nodes, r.feasible_nodes)
}

fn scores_of(m: &ScoreMatrix, pos: usize) -> Vec<PluginScore> {
    m.plugins.iter().zip(m.per_plugin.iter()).map(|(p, col)| PluginScore { plugin: p.to_string(), score: col[pos] }).collect()
}

fn add_rejections(snap: &berth_core::cache::Snapshot, st: &NodeToStatus, out: &mut HashMap<usize, NodeVerdict>) {
    for (idx, s) in &st.statuses {
        let detail = st.details.iter().find(|(i, _)| i == idx).map(|(_, d)| d.as_str());
        out.insert(*idx, rejected(snap.nodes()[*idx].name(), s, detail));
    }
}

fn rejected(node: &str, s: &Status, detail: Option<&str>) -> NodeVerdict {
    NodeVerdict {
        node: node.to_string(),
        filter: "rejected".into(),
        plugin: Some(s.plugin.to_string()).filter(|p| !p.is_empty()),
        reason: Some(match detail {
            Some(d) => format!("{} ({d})", s.message()),
            None => s.message(),
        }),
        scores: vec![],
        total: None,
    }
}

/// Only nodes the cycle looked at are listed: on a large cluster the search
/// stops early (percentageOfNodesToScore), and listing every other node as
/// "not evaluated" would make the output grow with nodes × pods.
fn finish_explanation(engine: &Engine, verdicts: HashMap<usize, NodeVerdict>, evaluated: usize, feasible: usize) -> Explanation {
    let mut nodes: Vec<NodeVerdict> = verdicts.into_values().collect();
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    Explanation { total_nodes: engine.snapshot().num_nodes(), evaluated_nodes: evaluated, feasible_nodes: feasible, nodes }
}

fn explain_failure(engine: &Engine, st: &NodeToStatus) -> Explanation {
    let snap = engine.snapshot();
    let mut verdicts = HashMap::new();
    add_rejections(snap, st, &mut verdicts);
    if let Some(abs) = &st.absent {
        for (idx, n) in snap.nodes().iter().enumerate() {
            verdicts.entry(idx).or_insert_with(|| rejected(n.name(), abs, None));
        }
    }
    let evaluated = verdicts.len();
    finish_explanation(engine, verdicts, evaluated, 0)
}

/// Carries out a step's effects on the in-memory cluster, where binding is
/// instant and the API never refuses: binding cycles run at once (what
/// they lead to is handled in turn), bound pods are confirmed, victims
/// deleted, nominations cleared. `seen` gets each effect once applied.
pub(crate) fn apply(driver: &mut Driver, effects: Vec<Effect>, now: i64, mut seen: impl FnMut(&Driver, Effect)) {
    let mut todo: std::collections::VecDeque<Effect> = effects.into();
    while let Some(effect) = todo.pop_front() {
        match &effect {
            Effect::Bind(_) => {
                let Effect::Bind(mut b) = effect else { unreachable!() };
                let status = b.run(&MemoryBinder);
                for e in driver.binding_finished(b, status, now).into_iter().rev() {
                    todo.push_front(e);
                }
                continue;
            }
            Effect::Bound { pod, .. } => driver.engine_mut().confirm_binding(&pod.key(), now),
            Effect::Evict { victim, .. } => driver.engine_mut().delete_pod(&victim.pod, now),
            Effect::ClearNomination { pod } => {
                let mut p = (*pod.pod).clone();
                p.nominated_node_name = None;
                driver.engine_mut().update_pod(Some(&pod.pod), p, now);
            }
            Effect::Unschedulable { .. } | Effect::Event(_) => {}
        }
        seen(driver, effect);
    }
}

/// Runs the cluster's pending pods through the scheduler until nothing moves.
pub fn simulate(cluster: Cluster, opts: &SimOptions) -> Result<SimResult, SimError> {
    let events = Arc::new(CollectEvents::default());
    let writer = Arc::new(writer::MemoryWriter::default());
    let mut host = PluginHost::new(events.clone()).with_writer(writer.clone());
    if let Some(c) = &opts.extenders {
        host = host.with_service(c.clone());
    }
    if let Some(w) = &opts.wasm {
        host = host.with_service(w.clone());
    }
    writer.attach(host.clone());
    let result = run(cluster, opts, &host, &events, &writer);
    writer.detach();
    result
}

fn run(
    cluster: Cluster,
    opts: &SimOptions,
    host: &PluginHost,
    events: &CollectEvents,
    writer: &writer::MemoryWriter,
) -> Result<SimResult, SimError> {
    let cfg = &opts.config;
    let frameworks = cfg.build_frameworks_with(&opts.registry, host)?;
    let profiles: Vec<String> = frameworks.iter().map(|f| f.profile_name.to_string()).collect();
    let mut adopted: BTreeMap<String, usize> = BTreeMap::new();
    for p in cluster.pods.iter().filter(|p| p.node_name.is_none() && !profiles.contains(&p.scheduler_name)) {
        *adopted.entry(p.scheduler_name.clone()).or_default() += 1;
    }
    let (initial, max) = cfg.backoff_ms();
    let mut engine = Engine::new(
        frameworks,
        EngineConfig {
            queue: QueueConfig { pod_initial_backoff_ms: initial, pod_max_backoff_ms: max, ..Default::default() },
            percentage_of_nodes_to_score: cfg.percentage_of_nodes_to_score.unwrap_or(0),
            seed: opts.seed,
            adopt_all_pods: true,
        },
    );
    engine.set_memoize(opts.memoize);
    let mut now: i64 = 0;
    let node_count = cluster.nodes.len();
    // The resourceclaim controller makes the claims pods name by template.
    let mut cluster = cluster;
    let made = claims::claims_from_templates(&mut cluster.pods, &cluster.objects);
    // Objects of kinds plugins read go to their stores; the rest are reported.
    let mut skipped = cluster.skipped.clone();
    for (file, object) in cluster.objects.iter().chain(made.iter()) {
        let api_version = object.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("");
        let kind = object.get("kind").and_then(|v| v.as_str()).unwrap_or("");
        match host.kind_of(api_version, kind) {
            Some(k) => {
                // As the API server would, put namespaced objects that name
                // none in `default`, and give each a UID (a volume's claimRef
                // names its claim's).
                let mut object = object.clone();
                if !object["metadata"].is_object() {
                    let name = object["metadata"]["name"].as_str().unwrap_or("").to_string();
                    let source = ObjectError::Decode { kind: k.to_string(), key: name, message: "metadata: expected an object".into() };
                    return Err(SimError::Object { file: file.clone(), source });
                }
                let meta = &mut object["metadata"];
                if k.namespaced && meta["namespace"].as_str().is_none_or(str::is_empty) {
                    meta["namespace"] = serde_json::json!("default");
                }
                if meta["uid"].as_str().is_none_or(str::is_empty) {
                    let uid = format!("{}-{}-{}", k.plural, meta["namespace"].as_str().unwrap_or(""), meta["name"].as_str().unwrap_or(""));
                    meta["uid"] = serde_json::json!(uid);
                }
                host.apply_object(&k, &object).map_err(|source| SimError::Object { file: file.clone(), source })?;
                writer.load(&k, &object);
            }
            // Read by the resourceclaim controller above.
            None if api_version == CLAIM_TEMPLATES.api_version() && kind == CLAIM_TEMPLATES.kind => {}
            None => *skipped.entry(kind.to_string()).or_default() += 1,
        }
    }
    for ns in &cluster.namespaces {
        engine.set_namespace(&ns.name, ns.labels.clone(), now);
    }
    for n in cluster.nodes {
        engine.add_node(n, now);
    }
    engine.set_pdbs(cluster.pdbs);

    let mut pending: Vec<Pod> = Vec::new();
    for p in cluster.pods {
        if p.node_name.is_some() {
            engine.add_pod(p, now);
        } else {
            pending.push(p);
        }
    }
    // Queue order among equal priorities follows creation time (stable for ties).
    pending.sort_by_key(|p| p.creation_ms);
    let mut results: Vec<PodResult> = Vec::with_capacity(pending.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(pending.len());
    for p in &pending {
        index.insert(p.key(), results.len());
        results.push(PodResult {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            node: None,
            message: String::new(),
            preempted: vec![],
            attempts: 0,
            nominated_node: None,
            explain: None,
            events: vec![],
        });
    }
    let pending_count = pending.len();
    // Each pending member's group, for the report.
    let mut group_of: HashMap<String, berth_core::framework::GroupMembership> = HashMap::new();
    for p in pending {
        if let Some(m) = engine.pod_group(&p) {
            group_of.insert(p.key(), m);
        }
        engine.add_pod(p, now);
    }

    // Decision order: a pod's entry moves to the end each time it is decided.
    let mut order: Vec<usize> = Vec::new();
    let mut decided_at: Vec<Option<usize>> = vec![None; results.len()];
    let mut version: u64 = 0;
    let mut failed_at_version: HashMap<String, u64> = HashMap::new();
    let mut summary = Summary { nodes: node_count, pending_pods: pending_count, ..Default::default() };
    let mut driver = Driver::new(engine, Arc::new(Unobserved)).with_events(false);

    loop {
        let Some(effects) = driver.step(now) else {
            // Nothing active. Pods that failed before the cluster last
            // changed may fit now: wait for their backoff (or, if only an
            // unschedulable-timeout flush would retry them, for that).
            // Pods that already failed against the current cluster would
            // fail the same way again: then nothing can move and we stop.
            let engine = driver.engine();
            let queue = engine.queue();
            let stale: Vec<&String> =
                failed_at_version.iter().filter(|(k, v)| **v != version && queue.location(k).is_some()).map(|(k, _)| k).collect();
            if stale.is_empty() {
                // Pods held at Permit end when allowed or when they time out.
                match engine.waiting().next_deadline() {
                    Some(t) => {
                        now = now.max(t);
                        continue;
                    }
                    None => break,
                }
            }
            let in_backoff = stale.iter().any(|k| queue.location(k) == Some(berth_core::queue::Location::Backoff));
            let next = if in_backoff { queue.next_backoff_expiry() } else { queue.next_unschedulable_timeout() };
            match next {
                Some(t) if t > now => now = t,
                Some(_) => now += 1,
                None => break,
            }
            continue;
        };
        let mut victims = 0;
        apply(&mut driver, effects, now, |driver, effect| match effect {
            Effect::Bind(_) | Effect::Event(_) | Effect::ClearNomination { .. } => {}
            Effect::Bound { pod, node, attempts, result } => {
                let key = pod.key();
                version += 1;
                failed_at_version.remove(&key);
                if let Some(&i) = index.get(&key) {
                    let r = &mut results[i];
                    r.node = Some(node);
                    r.message.clear();
                    r.attempts = attempts;
                    r.nominated_node = None;
                    r.explain = opts.explain.then(|| explain_success(driver.engine(), &result));
                    decided_at[i] = Some(order.len());
                    order.push(i);
                }
            }
            Effect::Evict { victim, preemptor, node } => {
                writer.pod_gone(&victim.pod.uid);
                summary.evicted += 1;
                victims += 1;
                version += 1;
                if let Some(&vi) = index.get(&victim.key()) {
                    // A pod we placed earlier in this run was evicted.
                    let r = &mut results[vi];
                    r.node = None;
                    r.message = format!("preempted by {} on node {node}", preemptor.key());
                    decided_at[vi] = Some(order.len());
                    order.push(vi);
                }
                if let Some(&pi) = index.get(&preemptor.key()) {
                    results[pi].preempted.push(victim.key());
                }
            }
            Effect::Unschedulable { pod, message, nominated_node, attempts, fit, .. } => {
                let key = pod.key();
                failed_at_version.insert(key.clone(), version);
                if nominated_node.is_some() && victims > 0 {
                    summary.preemptions += 1;
                    victims = 0;
                }
                if let Some(&i) = index.get(&key) {
                    let r = &mut results[i];
                    r.message = message;
                    r.attempts = attempts;
                    if nominated_node.is_some() {
                        r.nominated_node = nominated_node;
                    }
                    if opts.explain {
                        r.explain = fit.as_ref().map(|fit| explain_failure(driver.engine(), &fit.diagnosis.node_to_status));
                    }
                    decided_at[i] = Some(order.len());
                    order.push(i);
                }
            }
        });
        // What plugins wrote (and the controllers answered) reaches the
        // queue as a watch would deliver it. Writes come from binding
        // cycles, which count as a change of the cluster when they succeed
        // (the pod is bound); a failed one's writes do not make its pod's
        // retry worth waiting for, or a failing PreBind would loop forever.
        for (kind, key, action) in writer.take_changes() {
            driver.engine_mut().object_changed(kind, key, action, now);
        }
    }
    summary.scheduling_attempts = driver.engine().attempts() as usize;
    summary.cache_errors = driver.engine().cache_errors();
    let engine = driver.engine();

    // Events plugins recorded, with the pods they are about.
    for e in events.take() {
        if e.regarding.kind != "Pod" {
            continue;
        }
        if let Some(&i) = index.get(&format!("{}/{}", e.regarding.namespace, e.regarding.name)) {
            results[i].events.push(SimEvent {
                event_type: e.event_type.as_str().to_string(),
                reason: e.reason,
                note: e.note,
                reporting_controller: e.reporting_controller,
            });
        }
    }

    // Each pod once, at its last decision.
    let mut final_order: Vec<(usize, usize)> = decided_at.iter().enumerate().filter_map(|(i, d)| d.map(|d| (d, i))).collect();
    final_order.sort();
    let mut seen = vec![false; results.len()];
    let mut pods = Vec::with_capacity(results.len());
    for (_, i) in final_order {
        seen[i] = true;
        pods.push(results[i].clone());
    }
    for (i, r) in results.iter().enumerate() {
        if !seen[i] {
            // Never attempted (e.g. gated): report why.
            let mut r = r.clone();
            if r.message.is_empty() {
                r.message = gated_message(engine, &format!("{}/{}", r.namespace, r.name));
            }
            pods.push(r);
        }
    }
    for r in &pods {
        if r.node.is_some() {
            summary.scheduled += 1;
        } else {
            summary.unschedulable += 1;
        }
    }
    let groups = group_outcomes(engine, &group_of, &pods);
    let first_profile = profiles.into_iter().next().unwrap_or_default();
    Ok(SimResult { pods, groups, summary, skipped, adopted, first_profile })
}

/// Each group's outcome, from its members' results.
fn group_outcomes(
    engine: &Engine,
    group_of: &HashMap<String, berth_core::framework::GroupMembership>,
    pods: &[PodResult],
) -> Vec<GroupOutcome> {
    let mut by_key: BTreeMap<String, GroupOutcome> = BTreeMap::new();
    for p in pods {
        let key = format!("{}/{}", p.namespace, p.name);
        let Some(m) = group_of.get(&key) else { continue };
        let counts = engine.pod_group_counts(&m.key);
        // PodGroups are loaded before pods: the policy seen then is the one used.
        let min_count = m.min_count;
        let g = by_key.entry(m.name.clone()).or_insert_with(|| GroupOutcome {
            name: m.name.clone(),
            min_count,
            members: counts.all,
            placed: counts.placed,
            scheduled: false,
            message: String::new(),
            reasons: Vec::new(),
        });
        g.scheduled = g.min_count.is_some_and(|min| g.placed >= min as usize);
        if let Some(last) = engine.last_group_result(&m.key) {
            g.message = last.message.clone();
        }
        if p.node.is_none() && !p.message.is_empty() {
            if p.message.starts_with(berth_core::engine::ERR_POD_GROUP_UNSCHEDULABLE) {
                // The group's count, which `message` already says.
            } else if g.message.is_empty() && p.message.starts_with("waiting for") {
                g.message = p.message.clone(); // never tried: held in PreEnqueue
            } else {
                g.reasons.push((key, p.message.clone()));
            }
        }
    }
    let mut out: Vec<GroupOutcome> = by_key.into_values().collect();
    for g in &mut out {
        if g.scheduled {
            g.message.clear();
        }
    }
    out
}

fn gated_message(engine: &Engine, key: &str) -> String {
    match engine.queue().unschedulable_pod(key) {
        Some(q) if q.gated => {
            let pod = &q.pod_info.pod;
            match engine.profile_for(&pod.scheduler_name) {
                Some(f) => {
                    let s = f.run_pre_enqueue(pod);
                    if s.code == Code::Success {
                        String::new()
                    } else {
                        s.message()
                    }
                }
                None => String::new(),
            }
        }
        _ => String::new(),
    }
}

/// Helper for tests and tools: the engine's view of a pod.
pub fn pod_info(p: Pod) -> Arc<PodInfo> {
    Arc::new(PodInfo::new(p))
}
