//! Randomized clusters through the whole simulator: whatever the mix of
//! requests, priorities, taints, affinities and spreading, the result must
//! hold upstream's invariants: every pending pod reported exactly once, no
//! node over-committed, hard constraints of every placed pod satisfied, and
//! preemption only ever evicting lower-priority pods.
//!
//! The oracle is not Berth: the generator writes down, in plain terms, what
//! it asked of each node and pod (a taint, a zone, which zones a pod
//! accepts, whose company it refuses), and the checks compare placements
//! with that record, never calling Berth's own matchers.

use std::collections::{BTreeMap, HashMap};

use berth_convert::manifests::Cluster;
use berth_core::model::*;
use berth_core::testing::{make_node, make_pod};
use berth_sim::{simulate, SimOptions};

/// A small deterministic generator (xorshift), so failures reproduce by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the generator asked of a node, in plain terms.
#[derive(Default)]
struct NodeIntent {
    zone: String,
    /// Tainted `dedicated=x:NoSchedule`.
    dedicated: bool,
    cordoned: bool,
}

/// What the generator asked of a pod, in plain terms.
#[derive(Default)]
struct PodIntent {
    app: String,
    /// Tolerates `dedicated=x:NoSchedule`.
    tolerates_dedicated: bool,
    /// Required node affinity: the zones it accepts (`None`: any).
    zones: Option<Vec<&'static str>>,
    /// Required anti-affinity on `kubernetes.io/hostname` to pods of its own app.
    alone_per_node: bool,
}

#[derive(Default)]
struct Intent {
    nodes: HashMap<String, NodeIntent>,
    pods: HashMap<String, PodIntent>,
}

fn cluster(seed: u64) -> (Cluster, Intent) {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut c = Cluster::default();
    let mut intent = Intent::default();
    let nodes = 3 + r.below(12) as usize;
    for i in 0..nodes {
        let name = format!("n{i}");
        let zone = format!("z{}", r.below(3));
        let mut n = make_node(&name)
            .capacity(1000 * (1 + r.below(4) as i64), (1 + r.below(8) as i64) << 30, 4 + r.below(20) as i64)
            .label("topology.kubernetes.io/zone", &zone);
        let mut ni = NodeIntent { zone, ..Default::default() };
        if r.chance(20) {
            n = n.taint("dedicated", "x", TaintEffect::NoSchedule);
            ni.dedicated = true;
        }
        if r.chance(10) {
            n = n.unschedulable();
            ni.cordoned = true;
        }
        c.nodes.push(n.obj());
        intent.nodes.insert(name, ni);
    }
    let pods = 5 + r.below(40) as usize;
    for i in 0..pods {
        let app = format!("app{}", r.below(3));
        let mut p = make_pod(&format!("p{i}"))
            .label("app", &app)
            .priority(r.below(3) as i32 * 10)
            .creation(i as i64)
            .req(50 * (1 + r.below(20) as i64), (r.below(4) as i64) << 29);
        let mut pi = PodIntent { app: app.clone(), ..Default::default() };
        if r.chance(15) {
            p = p.tolerate("dedicated", "x", TaintEffect::NoSchedule);
            pi.tolerates_dedicated = true;
        }
        if r.chance(15) {
            p = p.node_affinity_in("topology.kubernetes.io/zone", &["z0", "z1"]);
            pi.zones = Some(vec!["z0", "z1"]);
        }
        if r.chance(15) {
            p = p.pod_anti_affinity("app", &app, "kubernetes.io/hostname");
            pi.alone_per_node = true;
        }
        if r.chance(15) {
            p = p.spread(
                1,
                "topology.kubernetes.io/zone",
                UnsatisfiableConstraintAction::DoNotSchedule,
                LabelSelector::from_match_labels([("app", app.as_str())]),
            );
        }
        if r.chance(10) {
            p = p.preemption_never();
        }
        if r.chance(25) {
            // Already running somewhere (may even over-commit: the API allows it).
            p = p.node(&format!("n{}", r.below(nodes as u64)));
        }
        let p = p.obj();
        intent.pods.insert(p.key(), pi);
        c.pods.push(p);
    }
    (c, intent)
}

fn check(seed: u64) -> Result<(), String> {
    let (c, intent) = cluster(seed);
    let nodes: HashMap<String, Node> = c.nodes.iter().map(|n| (n.name.clone(), n.clone())).collect();
    let all_pods: HashMap<String, Pod> = c.pods.iter().map(|p| (p.key(), p.clone())).collect();
    let pending: Vec<String> = c.pods.iter().filter(|p| p.node_name.is_none()).map(|p| p.key()).collect();
    let running: Vec<Pod> = c.pods.iter().filter(|p| p.node_name.is_some()).cloned().collect();
    let result = simulate(c, &SimOptions { seed, ..Default::default() }).map_err(|e| e.to_string())?;

    // Every pending pod exactly once.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for p in &result.pods {
        *seen.entry(format!("{}/{}", p.namespace, p.name)).or_default() += 1;
    }
    for k in &pending {
        if seen.get(k) != Some(&1) {
            return Err(format!("{k} reported {:?} times", seen.get(k)));
        }
    }
    if seen.len() != pending.len() {
        return Err(format!("{} results for {} pending pods", seen.len(), pending.len()));
    }

    // Final placement: running pods minus evictions, plus placed pending pods.
    let evicted: Vec<&String> = result.pods.iter().flat_map(|p| p.preempted.iter()).collect();
    let mut placed: Vec<(Pod, String)> =
        running.iter().filter(|p| !evicted.contains(&&p.key())).map(|p| (p.clone(), p.node_name.clone().unwrap())).collect();
    for r in &result.pods {
        let key = format!("{}/{}", r.namespace, r.name);
        if let Some(n) = &r.node {
            placed.push((all_pods[&key].clone(), n.clone()));
        } else if r.message.is_empty() {
            return Err(format!("{key}: unscheduled without a message"));
        }
        // Preemption only evicts lower-priority pods.
        for v in &r.preempted {
            if all_pods[v].priority >= all_pods[&key].priority {
                return Err(format!("{key} evicted {v} of equal or higher priority"));
            }
        }
    }

    // No node over-committed by the scheduler: for each resource that the
    // pods already running there did not over-commit to begin with (random
    // pre-placement may; the API allows it), the final total fits.
    for (name, node) in &nodes {
        let before: Vec<&Pod> =
            running.iter().filter(|p| p.node_name.as_deref() == Some(name.as_str()) && !evicted.contains(&&p.key())).collect();
        let after: Vec<&Pod> = placed.iter().filter(|(_, n)| n == name).map(|(p, _)| p).collect();
        let cpu = |ps: &[&Pod]| -> i64 { ps.iter().map(|p| p.requests().milli_cpu).sum() };
        let mem = |ps: &[&Pod]| -> i64 { ps.iter().map(|p| p.requests().memory).sum() };
        for (what, before_sum, after_sum, cap) in
            [("cpu", cpu(&before), cpu(&after), node.allocatable.milli_cpu), ("memory", mem(&before), mem(&after), node.allocatable.memory)]
        {
            if before_sum <= cap && after_sum > cap {
                return Err(format!("{name} over-committed on {what}: {after_sum} > {cap}"));
            }
        }
        if before.len() as i64 <= node.allocatable.allowed_pod_number && after.len() as i64 > node.allocatable.allowed_pod_number {
            return Err(format!("{name} holds {} pods, more than {}", after.len(), node.allocatable.allowed_pod_number));
        }
    }

    // Hard constraints of each pod the scheduler placed, against what the
    // generator asked for.
    for r in &result.pods {
        let Some(n) = &r.node else { continue };
        let key = format!("{}/{}", r.namespace, r.name);
        let (want, node) = (&intent.pods[&key], &intent.nodes[n]);
        if node.cordoned {
            return Err(format!("{key} placed on cordoned {n}"));
        }
        if node.dedicated && !want.tolerates_dedicated {
            return Err(format!("{key} placed on {n} despite its taint"));
        }
        if let Some(zones) = &want.zones {
            if !zones.contains(&node.zone.as_str()) {
                return Err(format!("{key} placed on {n} in zone {}, outside its node affinity {zones:?}", node.zone));
            }
        }
        if want.alone_per_node {
            let clash = placed.iter().any(|(p, pn)| pn == n && p.key() != key && intent.pods[&p.key()].app == want.app);
            if clash {
                return Err(format!("{key} shares {n} with a pod of app {} its anti-affinity excludes", want.app));
            }
        }
    }
    if result.summary.cache_errors != 0 {
        return Err(format!("{} cache operations failed", result.summary.cache_errors));
    }
    Ok(())
}

#[test]
fn random_clusters_keep_invariants() {
    let mut failures = Vec::new();
    for seed in 1..=300u64 {
        if let Err(e) = check(seed) {
            failures.push(format!("seed {seed}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} of 300 random clusters broke an invariant:\n{}", failures.len(), failures.join("\n"));
}

/// Pending pods in runs of one spec (a Deployment's replicas, a wave of
/// preemptors) over partly full nodes, where runs of equal pods let the
/// scheduler reuse per-node results between cycles.
fn replica_cluster(seed: u64) -> Cluster {
    let mut r = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let mut c = Cluster::default();
    let nodes = 4 + r.below(20) as usize;
    for i in 0..nodes {
        let mut n = make_node(&format!("n{i}"))
            .capacity(1000 * (1 + r.below(4) as i64), (1 + r.below(4) as i64) << 30, 3 + r.below(8) as i64)
            .label("topology.kubernetes.io/zone", &format!("z{}", r.below(3)));
        if r.chance(15) {
            n = n.taint("dedicated", "x", TaintEffect::NoSchedule);
        }
        if r.chance(5) {
            n = n.unschedulable();
        }
        // Scored, not filtered: TaintToleration's kept raw score.
        if r.chance(25) {
            n = n.taint("spot", "yes", TaintEffect::PreferNoSchedule);
        }
        c.nodes.push(n.obj());
    }
    // Low-priority pods already running, some under a PDB.
    for i in 0..r.below(3 * nodes as u64) {
        let p = make_pod(&format!("low{i}"))
            .label("app", if r.chance(50) { "guarded" } else { "free" })
            .priority(r.below(2) as i32)
            .start(r.below(100) as i64)
            .req(250 * (1 + r.below(4) as i64), (r.below(3) as i64) << 28)
            .node(&format!("n{}", r.below(nodes as u64)));
        c.pods.push(p.obj());
    }
    if r.chance(50) {
        c.pdbs.push(PodDisruptionBudget {
            namespace: "default".into(),
            name: "guard".into(),
            selector: LabelSelector::from_match_labels([("app", "guarded")]),
            disruptions_allowed: r.below(3) as i32,
            disrupted_pods: Vec::new(),
        });
    }
    let mut created = 0i64;
    for run in 0..2 + r.below(4) {
        let mut t = make_pod("template")
            .label("app", &format!("run{run}"))
            .priority(r.below(3) as i32 * 10)
            .req(250 * (1 + r.below(6) as i64), (r.below(3) as i64) << 28);
        if r.chance(25) {
            t = t.tolerate("dedicated", "x", TaintEffect::NoSchedule);
        }
        if r.chance(25) {
            t = t.node_affinity_in("topology.kubernetes.io/zone", &["z0", "z2"]);
        }
        if r.chance(20) {
            t = t.host_port(8080);
        }
        if r.chance(30) {
            let zone = format!("z{}", r.below(3));
            let term = NodeSelectorTerm {
                match_expressions: vec![Requirement::new("topology.kubernetes.io/zone", SelectorOp::In, &[zone.as_str()])],
                match_fields: vec![],
            };
            t = t.preferred_node_affinity(1 + r.below(100) as i32, term);
        }
        if r.chance(25) {
            t = t.tolerate("spot", "yes", TaintEffect::PreferNoSchedule);
        }
        // Checks that depend on other nodes' pods: reuse must stay off.
        let topology = if r.chance(50) { "kubernetes.io/hostname" } else { "topology.kubernetes.io/zone" };
        if r.chance(15) {
            t = t.pod_anti_affinity("app", &format!("run{run}"), topology);
        }
        if r.chance(15) {
            let selector = LabelSelector::from_match_labels([("app", format!("run{run}").as_str())]);
            t = t.spread(1, "topology.kubernetes.io/zone", UnsatisfiableConstraintAction::DoNotSchedule, selector);
        }
        if r.chance(10) {
            t = t.preemption_never();
        }
        let template = t.obj();
        for i in 0..2 + r.below(12) {
            let mut p = template.clone();
            p.name = format!("run{run}-{i}");
            p.uid = p.name.clone();
            p.creation_ms = 1000 + created;
            created += 1;
            c.pods.push(p);
        }
    }
    c
}

#[test]
fn reusing_results_between_equal_pods_changes_nothing() {
    let mut failures = Vec::new();
    let mut waves = 0;
    for seed in 1..=300u64 {
        let c = replica_cluster(seed);
        let fresh = SimOptions { seed, explain: true, memoize: false, ..Default::default() };
        let plain = simulate(c.clone(), &fresh).expect("simulate");
        let memo = simulate(c, &SimOptions { memoize: true, ..fresh }).expect("simulate");
        if memo.pods != plain.pods {
            let first = memo.pods.iter().zip(&plain.pods).find(|(a, b)| a != b);
            failures.push(format!("seed {seed}: first difference {first:#?}"));
        }
        waves += usize::from(plain.summary.preemptions > 1);
    }
    assert!(failures.is_empty(), "{} of 300 clusters decided differently with reuse:\n{}", failures.len(), failures.join("\n"));
    // The clusters must exercise preemption waves, not just placement.
    assert!(waves > 30, "only {waves} clusters had more than one preemption");
}
