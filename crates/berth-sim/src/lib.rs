//! # berth-sim
//!
//! Drives the engine over an in-memory cluster: `berth simulate` (manifests
//! in, placements with reasons out) and `berth bench` (scheduler_perf-shaped
//! workloads). Binding happens in memory, instantly; everything else — queue
//! order, backoff, event-driven requeueing, preemption — is the same engine
//! the live scheduler runs.

pub mod bench;
pub mod output;

use std::collections::HashMap;
use std::sync::Arc;

use berth_convert::manifests::Cluster;
use berth_core::config::KubeSchedulerConfiguration;
use berth_core::engine::{Engine, EngineConfig, Outcome};
use berth_core::framework::{Binder, Code, NodeToStatus, PodInfo, ScoreMatrix, Status};
use berth_core::model::Pod;
use berth_core::queue::QueueConfig;
use berth_core::scheduler::ScheduleResult;
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct SimOptions {
    pub seed: u64,
    pub explain: bool,
    pub config: KubeSchedulerConfiguration,
    /// Reuse per-node results between pods of the same spec (on by default,
    /// as in `berth run`); off only to show that reuse changes nothing.
    pub memoize: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 0,
            explain: false,
            config: KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).expect("default config"),
            memoize: true,
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
}

#[derive(Serialize, Clone, Debug)]
pub struct SimResult {
    pub pods: Vec<PodResult>,
    pub summary: Summary,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Config(String),
}

/// The simulator's "API server": binding always succeeds.
struct MemoryBinder;

impl Binder for MemoryBinder {
    fn bind(&self, _pod: &Pod, _node: &str) -> Result<(), String> {
        Ok(())
    }
}

fn explain_success(engine: &Engine, r: &ScheduleResult) -> Explanation {
    let snap = &engine.snapshot;
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
        out.insert(*idx, rejected(snap.nodes()[*idx].name(), s));
    }
}

fn rejected(node: &str, s: &Status) -> NodeVerdict {
    NodeVerdict {
        node: node.to_string(),
        filter: "rejected".into(),
        plugin: Some(s.plugin.to_string()).filter(|p| !p.is_empty()),
        reason: Some(s.message()),
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
    Explanation { total_nodes: engine.snapshot.num_nodes(), evaluated_nodes: evaluated, feasible_nodes: feasible, nodes }
}

fn explain_failure(engine: &Engine, st: &NodeToStatus) -> Explanation {
    let snap = &engine.snapshot;
    let mut verdicts = HashMap::new();
    add_rejections(snap, st, &mut verdicts);
    if let Some(abs) = &st.absent {
        for (idx, n) in snap.nodes().iter().enumerate() {
            verdicts.entry(idx).or_insert_with(|| rejected(n.name(), abs));
        }
    }
    let evaluated = verdicts.len();
    finish_explanation(engine, verdicts, evaluated, 0)
}

/// Runs the cluster's pending pods through the scheduler until nothing moves.
pub fn simulate(cluster: Cluster, opts: &SimOptions) -> Result<SimResult, SimError> {
    let cfg = &opts.config;
    let frameworks = cfg.build_frameworks().map_err(|e| SimError::Config(e.to_string()))?;
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
    engine.runner.memoize = opts.memoize;
    let mut now: i64 = 0;
    let node_count = cluster.nodes.len();
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
        });
    }
    let pending_count = pending.len();
    for p in pending {
        engine.add_pod(p, now);
    }

    // Decision order: a pod's entry moves to the end each time it is decided.
    let mut order: Vec<usize> = Vec::new();
    let mut decided_at: Vec<Option<usize>> = vec![None; results.len()];
    let mut version: u64 = 0;
    let mut failed_at_version: HashMap<String, u64> = HashMap::new();
    let mut summary = Summary { nodes: node_count, pending_pods: pending_count, ..Default::default() };

    loop {
        // Pods released or rejected at Permit first, then the next pod.
        let (ready, rejected) = engine.take_permitted(now);
        let mut outcomes: Vec<Outcome> = ready.into_iter().map(Outcome::Assigned).collect();
        outcomes.extend(rejected.into_iter().map(|f| Outcome::Failed(Box::new(f))));
        if outcomes.is_empty() {
            match engine.schedule_one(now) {
                Some(o) => {
                    summary.scheduling_attempts += 1;
                    outcomes.push(o);
                }
                None => {
                    // Nothing active. Pods that failed before the cluster last
                    // changed may fit now: wait for their backoff (or, if only an
                    // unschedulable-timeout flush would retry them, for that).
                    // Pods that already failed against the current cluster would
                    // fail the same way again: then nothing can move and we stop.
                    let stale: Vec<&String> = failed_at_version
                        .iter()
                        .filter(|(k, v)| **v != version && engine.queue.location(k).is_some())
                        .map(|(k, _)| k)
                        .collect();
                    if stale.is_empty() {
                        // Pods held at Permit end when allowed or when they time out.
                        match engine.waiting.next_deadline() {
                            Some(t) => {
                                now = now.max(t);
                                continue;
                            }
                            None => break,
                        }
                    }
                    let in_backoff = stale.iter().any(|k| engine.queue.location(k) == Some(berth_core::queue::Location::Backoff));
                    let next = if in_backoff { engine.queue.next_backoff_expiry() } else { engine.queue.next_unschedulable_timeout() };
                    match next {
                        Some(t) if t > now => now = t,
                        Some(_) => now += 1,
                        None => break,
                    }
                    continue;
                }
            }
        }
        for outcome in outcomes {
            match outcome {
                Outcome::Waiting(_) => {}
                Outcome::Skipped(_) => {}
                Outcome::Assigned(mut a) => {
                    let status = a.run_binding_cycle(&MemoryBinder);
                    let key = a.pod().key();
                    let node = a.node.clone();
                    let attempts = a.queued.attempts;
                    let explanation = opts.explain.then(|| explain_success(&engine, &a.result));
                    match engine.binding_done(*a, status, now) {
                        None => {
                            engine.confirm_binding(&key, now);
                            version += 1;
                            failed_at_version.remove(&key);
                            if let Some(&i) = index.get(&key) {
                                let r = &mut results[i];
                                r.node = Some(node);
                                r.message.clear();
                                r.attempts = attempts;
                                r.nominated_node = None;
                                r.explain = explanation;
                                decided_at[i] = Some(order.len());
                                order.push(i);
                            }
                        }
                        Some(f) => {
                            failed_at_version.insert(key.clone(), version);
                            if let Some(&i) = index.get(&key) {
                                results[i].message = f.message;
                                results[i].attempts = f.attempts;
                            }
                        }
                    }
                }
                Outcome::Failed(f) => {
                    let key = f.pod.key();
                    failed_at_version.insert(key.clone(), version);
                    let mut preempted = Vec::new();
                    if f.nominated_node.is_some() && !f.victims.is_empty() {
                        summary.preemptions += 1;
                    }
                    for v in &f.victims {
                        preempted.push(v.key());
                        summary.evicted += 1;
                        engine.delete_pod(&v.pod, now);
                        version += 1;
                        if let Some(&vi) = index.get(&v.key()) {
                            // A pod we placed earlier in this run was evicted.
                            let r = &mut results[vi];
                            r.node = None;
                            r.message = format!("preempted by {key} on node {}", f.nominated_node.as_deref().unwrap_or(""));
                            decided_at[vi] = Some(order.len());
                            order.push(vi);
                        }
                    }
                    for c in &f.cleared_nominations {
                        let mut p = (*c.pod).clone();
                        p.nominated_node_name = None;
                        engine.update_pod(Some(&c.pod), p, now);
                    }
                    if let Some(&i) = index.get(&key) {
                        let r = &mut results[i];
                        r.message = f.message.clone();
                        r.attempts = f.attempts;
                        r.preempted.extend(preempted);
                        if f.nominated_node.is_some() {
                            r.nominated_node = f.nominated_node.clone();
                        }
                        if opts.explain {
                            r.explain = f.fit.as_ref().map(|fit| explain_failure(&engine, &fit.diagnosis.node_to_status));
                        }
                        decided_at[i] = Some(order.len());
                        order.push(i);
                    }
                }
            }
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
                r.message = gated_message(&engine, &format!("{}/{}", r.namespace, r.name));
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
    Ok(SimResult { pods, summary })
}

fn gated_message(engine: &Engine, key: &str) -> String {
    match engine.queue.unschedulable_pod(key) {
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
