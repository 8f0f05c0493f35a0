//! Rendering simulation results: JSON for programs, an aligned table for people.

use std::fmt::Write;

use crate::SimResult;

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonOut<'a> {
    #[serde(flatten)]
    result: &'a SimResult,
    elapsed_seconds: f64,
    load_seconds: f64,
}

/// `elapsed_secs`: the whole run; `load_secs`: reading and converting input.
pub fn json(r: &SimResult, elapsed_secs: f64, load_secs: f64) -> String {
    serde_json::to_string_pretty(&JsonOut { result: r, elapsed_seconds: elapsed_secs, load_seconds: load_secs }).expect("serializable")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// One row per pod: POD, NODE, PREEMPTED, REASON; then a summary line.
/// With `explain`, each pod is followed by its per-node verdicts.
pub fn table(r: &SimResult, elapsed_secs: f64, explain: bool) -> String {
    let rows: Vec<[String; 4]> = r
        .pods
        .iter()
        .map(|p| {
            [
                format!("{}/{}", p.namespace, p.name),
                p.node.clone().unwrap_or_else(|| match &p.nominated_node {
                    Some(n) => format!("<pending, nominated {n}>"),
                    None => "<pending>".into(),
                }),
                if p.preempted.is_empty() { "-".into() } else { p.preempted.join(",") },
                if p.message.is_empty() { "-".into() } else { p.message.clone() },
            ]
        })
        .collect();
    let header = ["POD", "NODE", "PREEMPTED", "REASON"];
    let mut widths = header.map(|h| h.len());
    for row in &rows {
        for (i, c) in row.iter().enumerate().take(3) {
            widths[i] = widths[i].max(c.chars().count().min(60));
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            truncate(cells[0], 60),
            truncate(cells[1], 60),
            truncate(cells[2], 60),
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    };
    line(&mut out, header);
    for (row, pod) in rows.iter().zip(&r.pods) {
        line(&mut out, [&row[0], &row[1], &row[2], &row[3]]);
        if explain {
            if let Some(e) = &pod.explain {
                let _ = writeln!(out, "    evaluated {} of {} node(s), {} feasible", e.evaluated_nodes, e.total_nodes, e.feasible_nodes);
                for n in &e.nodes {
                    let detail = match (&n.plugin, &n.reason) {
                        (Some(p), Some(reason)) => format!("{p}: {reason}"),
                        (None, Some(reason)) => reason.clone(),
                        _ => String::new(),
                    };
                    let scores: Vec<String> = n.scores.iter().map(|s| format!("{}={}", s.plugin, s.score)).collect();
                    let total = n.total.map(|t| format!(" total={t}")).unwrap_or_default();
                    let _ = writeln!(out, "    {:<20} {:<9} {}{}{}", n.node, n.filter, detail, scores.join(" "), total);
                }
            }
        }
    }
    if !r.groups.is_empty() {
        let _ = writeln!(out, "\nPOD GROUP  PLACED  OUTCOME");
        for g in &r.groups {
            let min = g.min_count.map_or("?".to_string(), |m| m.to_string());
            let outcome = if g.scheduled { "scheduled".to_string() } else { g.message.clone() };
            let _ = writeln!(out, "{}  {}/{} (minCount {min})  {outcome}", g.name, g.placed, g.members);
            for (pod, why) in &g.reasons {
                let _ = writeln!(out, "    {pod}: {why}");
            }
        }
    }
    let s = &r.summary;
    let _ = writeln!(
        out,
        "\n{} pending pod(s) on {} node(s): {} scheduled, {} unschedulable, {} preemption(s) evicting {} pod(s); {} attempt(s) in {:.3}s",
        s.pending_pods, s.nodes, s.scheduled, s.unschedulable, s.preemptions, s.evicted, s.scheduling_attempts, elapsed_secs
    );
    out
}
