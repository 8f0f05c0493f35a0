//! Why a pod went where it went, or why it is pending: a compact record of
//! a pod's last scheduling attempt, kept by `berth run` for every pending
//! pod and for the pods it scheduled last, and served to `kubectl berth why`.
//!
//! A record holds the nodes' verdicts grouped by plugin and reason (with at
//! most [`NODES_PER_REASON`] node names each), the preemption outcome, and
//! for a scheduled pod the winner's weighted score per plugin and the
//! runners-up: its size depends on how many distinct reasons there were,
//! not on the number of nodes. [`WhyStore`] keeps one record per pending
//! pod (dropped when the pod is bound or deleted) and the last
//! [`RECENT_SCHEDULED`] scheduled ones.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::cache::Snapshot;
use crate::framework::{NodeToStatus, Status};
use crate::scheduler::{FitError, ScheduleResult};

/// Node names kept per (plugin, reason).
pub const NODES_PER_REASON: usize = 10;
/// Runners-up kept for a scheduled pod.
pub const RUNNERS_UP: usize = 3;
/// Scheduled pods whose record is kept.
pub const RECENT_SCHEDULED: usize = 1000;

/// A pod's last scheduling attempt.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Why {
    /// `namespace/name`.
    pub pod: String,
    /// The pod's UID.
    pub uid: String,
    /// The profile (schedulerName) that decided.
    pub profile: String,
    /// `Pending` or `Scheduled`.
    pub outcome: String,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When the attempt ended, ms since the Unix epoch (`berth run`'s clock).
    pub at_ms: i64,
    /// The FailedScheduling message (pending pods).
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(default)]
    pub message: String,
    /// Nodes in the cluster at the time.
    pub nodes: usize,
    /// Nodes whose verdict was computed (the rest were not needed, or ruled
    /// out by PreFilter: see `rejections`).
    pub evaluated_nodes: usize,
    /// Nodes that passed every filter.
    pub feasible_nodes: usize,
    /// The nodes rejected, grouped by plugin and reason, most nodes first.
    pub rejections: Vec<Rejection>,
    /// The node preemption nominated (pending pods).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub nominated_node: Option<String>,
    /// The pods preemption evicts for this one (`namespace/name`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(default)]
    pub victims: Vec<String>,
    /// The node chosen (scheduled pods).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub node: Option<String>,
    /// The chosen node's score per plugin, weighted (scheduled pods).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(default)]
    pub scores: Vec<PluginScore>,
    /// The chosen node's total score.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub total: Option<i64>,
    /// The best of the other feasible nodes, with their totals.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(default)]
    pub runners_up: Vec<NodeTotal>,
}

/// Nodes one plugin rejected for one reason.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// The plugin (empty when none is named).
    pub plugin: String,
    /// Its message, e.g. `Insufficient cpu`.
    pub reason: String,
    /// What the plugin adds for a person asking why (e.g. which claim's
    /// request found no device, and why), when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub detail: Option<String>,
    /// How many nodes.
    pub count: usize,
    /// The first few of them, by name.
    pub nodes: Vec<String>,
}

/// One plugin's weighted score for a node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PluginScore {
    /// The Score plugin.
    pub plugin: String,
    /// Its normalized score times its weight.
    pub score: i64,
}

/// A node with its total score.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeTotal {
    /// The node.
    pub node: String,
    /// Its total.
    pub total: i64,
}

/// Who the record is about and when.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    /// `namespace/name`.
    pub pod: &'a str,
    /// UID.
    pub uid: &'a str,
    /// Profile.
    pub profile: &'a str,
    /// Attempts so far.
    pub attempts: u32,
    /// Now, ms since the epoch.
    pub at_ms: i64,
}

impl Why {
    fn new(s: &Subject<'_>, outcome: &str, nodes: usize) -> Why {
        Why {
            pod: s.pod.to_string(),
            uid: s.uid.to_string(),
            profile: s.profile.to_string(),
            outcome: outcome.to_string(),
            attempts: s.attempts,
            at_ms: s.at_ms,
            message: String::new(),
            nodes,
            evaluated_nodes: 0,
            feasible_nodes: 0,
            rejections: Vec::new(),
            nominated_node: None,
            victims: Vec::new(),
            node: None,
            scores: Vec::new(),
            total: None,
            runners_up: Vec::new(),
        }
    }

    /// A pod that did not fit: `fit` holds the verdicts of the cycle that
    /// ran on `snapshot` (`None` for failures without them: an error, a
    /// group member cut short); `message` is its FailedScheduling message.
    pub fn pending(
        s: &Subject<'_>,
        snapshot: &Snapshot,
        fit: Option<&FitError>,
        message: &str,
        nominated_node: Option<&str>,
        victims: Vec<String>,
    ) -> Why {
        let mut w = Why::new(s, "Pending", snapshot.num_nodes());
        w.message = message.to_string();
        if let Some(fit) = fit {
            w.nodes = fit.num_all_nodes;
            w.evaluated_nodes = fit.diagnosis.node_to_status.statuses.len();
            w.rejections = group(snapshot, &fit.diagnosis.node_to_status);
        }
        w.nominated_node = nominated_node.map(str::to_string);
        w.victims = victims;
        w
    }

    /// A pod placed by the cycle that ran on `snapshot`.
    pub fn scheduled(s: &Subject<'_>, snapshot: &Snapshot, r: &ScheduleResult) -> Why {
        let mut w = Why::new(s, "Scheduled", snapshot.num_nodes());
        w.node = Some(r.node.clone());
        w.evaluated_nodes = r.evaluated_nodes;
        w.feasible_nodes = r.feasible_nodes;
        w.rejections = group(snapshot, &r.rejected);
        if let Some(m) = &r.scores {
            let name = |pos: usize| r.feasible.get(pos).and_then(|&i| snapshot.nodes().get(i)).map(|n| n.name().to_string());
            let chosen = (0..m.totals.len()).find(|&pos| name(pos).as_deref() == Some(r.node.as_str()));
            if let Some(pos) = chosen {
                w.scores =
                    m.plugins.iter().zip(&m.per_plugin).map(|(p, col)| PluginScore { plugin: p.to_string(), score: col[pos] }).collect();
                w.total = Some(m.totals[pos]);
            }
            let mut others: Vec<(i64, String)> =
                (0..m.totals.len()).filter(|&pos| Some(pos) != chosen).filter_map(|pos| Some((m.totals[pos], name(pos)?))).collect();
            others.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            w.runners_up = others.into_iter().take(RUNNERS_UP).map(|(total, node)| NodeTotal { node, total }).collect();
        }
        w
    }

    /// The short answer a person wants first, e.g. `pending: 0/3 nodes are
    /// available: 3 Insufficient cpu.` or `scheduled on node-7 (score 261;
    /// next: node-2 250)`.
    pub fn summary(&self) -> String {
        match &self.node {
            Some(node) => {
                let mut s = format!("scheduled on {node}");
                if let Some(t) = self.total {
                    s.push_str(&format!(" (score {t}"));
                    if let Some(r) = self.runners_up.first() {
                        s.push_str(&format!("; next: {} {}", r.node, r.total));
                    }
                    s.push(')');
                }
                s
            }
            None => {
                let mut s = format!("pending: {}", self.message);
                if let Some(n) = &self.nominated_node {
                    s.push_str(&format!("; preemption nominated {n}, evicting {}", self.victims.len()));
                }
                s
            }
        }
    }
}

impl Why {
    /// The record as a person reads it: the short answer, then the
    /// details. `now_ms` says how long ago the attempt was.
    pub fn render(&self, now_ms: i64) -> String {
        use std::fmt::Write;
        let mut out = format!("{}: {}\n", self.pod, self.summary());
        let ago = (now_ms - self.at_ms).max(0) / 1000;
        let _ = writeln!(out, "  profile {}, {} attempt(s), the last {ago}s ago", self.profile, self.attempts);
        let _ = write!(out, "  {} node(s): {} evaluated", self.nodes, self.evaluated_nodes);
        if self.node.is_some() {
            let _ = write!(out, ", {} feasible", self.feasible_nodes);
        }
        out.push('\n');
        if !self.scores.is_empty() {
            let s: Vec<String> = self.scores.iter().map(|p| format!("{} {}", p.plugin, p.score)).collect();
            let _ = writeln!(out, "  scores on {}: {}", self.node.as_deref().unwrap_or_default(), s.join(", "));
        }
        if !self.runners_up.is_empty() {
            let r: Vec<String> = self.runners_up.iter().map(|n| format!("{} {}", n.node, n.total)).collect();
            let _ = writeln!(out, "  runners-up: {}", r.join(", "));
        }
        if !self.rejections.is_empty() {
            out.push_str("  rejected:\n");
            for r in &self.rejections {
                let plugin = if r.plugin.is_empty() { String::new() } else { format!("{}: ", r.plugin) };
                let more = if r.count > r.nodes.len() { ", ..." } else { "" };
                let names = if r.nodes.is_empty() { String::new() } else { format!(" ({}{more})", r.nodes.join(", ")) };
                let _ = writeln!(out, "    {:>5} node(s)  {plugin}{}{names}", r.count, r.reason);
                if let Some(d) = &r.detail {
                    let _ = writeln!(out, "             {d}");
                }
            }
        }
        if let Some(n) = &self.nominated_node {
            let _ = writeln!(
                out,
                "  preemption: nominated {n}, evicting {}",
                if self.victims.is_empty() { "-".to_string() } else { self.victims.join(", ") }
            );
        }
        out
    }
}

/// Rejected nodes grouped by (plugin, reason), most nodes first; nodes
/// ruled out as a whole (PreFilter) count as one group over the rest.
fn group(snapshot: &Snapshot, st: &NodeToStatus) -> Vec<Rejection> {
    // (plugin, reason, detail) -> (nodes, some of their names)
    type Key = (String, String, Option<String>);
    let mut groups: BTreeMap<Key, (usize, Vec<String>)> = BTreeMap::new();
    let mut add = |s: &Status, node: Option<&str>, detail: Option<&String>, n: usize| {
        for reason in &s.reasons {
            let g = groups.entry((s.plugin.to_string(), reason.to_string(), detail.cloned())).or_default();
            g.0 += n;
            if let Some(node) = node.filter(|_| g.1.len() < NODES_PER_REASON) {
                g.1.push(node.to_string());
            }
        }
    };
    for (idx, s) in &st.statuses {
        let detail = st.details.iter().find(|(i, _)| i == idx).map(|(_, d)| &**d);
        add(s, snapshot.nodes().get(*idx).map(|n| n.name()), detail, 1);
    }
    if let Some(abs) = &st.absent {
        let listed = st.statuses.len();
        add(abs, None, None, snapshot.num_nodes().saturating_sub(listed));
    }
    let mut out: Vec<Rejection> =
        groups.into_iter().map(|((plugin, reason, detail), (count, nodes))| Rejection { plugin, reason, detail, count, nodes }).collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    out
}

/// The records `berth run` keeps: one per pending pod, and the last
/// [`RECENT_SCHEDULED`] scheduled pods.
#[derive(Default, Debug)]
pub struct WhyStore {
    pending: HashMap<String, Why>,
    scheduled: HashMap<String, Why>,
    order: VecDeque<String>,
}

impl WhyStore {
    /// Keeps `w`, replacing the pod's earlier record.
    pub fn record(&mut self, w: Why) {
        let key = w.pod.clone();
        if w.node.is_some() {
            self.pending.remove(&key);
            if self.scheduled.insert(key.clone(), w).is_none() {
                self.order.push_back(key);
            }
            while self.order.len() > RECENT_SCHEDULED {
                if let Some(old) = self.order.pop_front() {
                    self.scheduled.remove(&old);
                }
            }
        } else {
            self.pending.insert(key, w);
        }
    }

    /// The pod `namespace/name` is gone: its pending record goes (a
    /// scheduled one stays until newer ones push it out).
    pub fn forget(&mut self, key: &str) {
        self.pending.remove(key);
    }

    /// The record of `namespace/name`, if any.
    pub fn get(&self, key: &str) -> Option<&Why> {
        self.pending.get(key).or_else(|| self.scheduled.get(key))
    }

    /// How many records are kept (pending, scheduled).
    pub fn len(&self) -> (usize, usize) {
        (self.pending.len(), self.scheduled.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, snapshot};

    fn subject(pod: &str) -> Subject<'_> {
        Subject { pod, uid: "u", profile: "berth", attempts: 1, at_ms: 5 }
    }

    #[test]
    fn verdicts_are_grouped_by_plugin_and_reason_with_a_few_names() {
        let nodes: Vec<_> = (0..15).map(|i| make_node(&format!("n{i:02}")).obj()).collect();
        let snap = snapshot(nodes, vec![]);
        let mut st = NodeToStatus::default();
        for i in 0..12 {
            st.statuses.push((i, Status::unschedulable("Insufficient cpu").with_plugin("NodeResourcesFit")));
        }
        st.statuses.push((12, Status::unresolvable("node(s) had untolerated taint(s)").with_plugin("TaintToleration")));
        let fit = FitError { num_all_nodes: 15, diagnosis: crate::scheduler::Diagnosis { node_to_status: st, ..Default::default() } };
        let w = Why::pending(&subject("ns/p"), &snap, Some(&fit), "0/15 nodes are available", None, vec![]);
        assert_eq!(w.rejections.len(), 2);
        assert_eq!((w.rejections[0].reason.as_str(), w.rejections[0].count), ("Insufficient cpu", 12));
        assert_eq!(w.rejections[0].nodes.len(), NODES_PER_REASON);
        assert_eq!(w.rejections[1].plugin, "TaintToleration");
        assert_eq!(w.summary(), "pending: 0/15 nodes are available");
        let text = w.render(5005);
        assert!(text.contains("the last 5s ago"), "{text}");
        assert!(text.contains("   12 node(s)  NodeResourcesFit: Insufficient cpu (n00, n01,"), "{text}");
        assert!(text.contains("..."), "{text}");
        let back: Why = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back, w, "what the endpoint serves, kubectl berth reads");
    }

    #[test]
    fn the_store_keeps_pending_pods_until_placed_and_a_bounded_number_of_placed_ones() {
        let snap = snapshot(vec![make_node("n0").obj()], vec![]);
        let mut store = WhyStore::default();
        store.record(Why::pending(&subject("ns/p"), &snap, None, "m", None, vec![]));
        assert_eq!(store.get("ns/p").unwrap().outcome, "Pending");
        let r = ScheduleResult {
            node: "n0".into(),
            evaluated_nodes: 1,
            feasible_nodes: 1,
            feasible: vec![0],
            rejected: NodeToStatus::default(),
            scores: None,
        };
        store.record(Why::scheduled(&subject("ns/p"), &snap, &r));
        assert_eq!(store.len(), (0, 1));
        assert_eq!(store.get("ns/p").unwrap().summary(), "scheduled on n0");
        for i in 0..RECENT_SCHEDULED + 5 {
            store.record(Why::scheduled(&subject(&format!("ns/q{i}")), &snap, &r));
        }
        assert_eq!(store.len(), (0, RECENT_SCHEDULED));
        assert!(store.get("ns/p").is_none(), "the oldest went first");
        store.record(Why::pending(&subject("ns/gone"), &snap, None, "m", None, vec![]));
        store.forget("ns/gone");
        assert_eq!(store.len().0, 0);
    }
}
