use super::*;
use crate::model::TopologySpreadConstraint;
use crate::testing::{make_node, make_pod, snapshot};

fn foo_selector() -> LabelSelector {
    LabelSelector { requirements: vec![Requirement::new("foo", SelectorOp::Exists, &[])], nothing: false }
}

fn nodes() -> Vec<crate::model::Node> {
    vec![
        make_node("node-a").label("zone", "zone1").obj(),
        make_node("node-b").label("zone", "zone1").obj(),
        make_node("node-x").label("zone", "zone2").obj(),
        make_node("node-y").label("zone", "zone2").obj(),
    ]
}

fn on(name: &str, node: &str) -> Pod {
    make_pod(name).label("foo", "").node(node).obj()
}

/// Names of the nodes the pod passes Filter on; `Err` carries the failure messages.
fn filter_all(pod: Pod, snap: &Snapshot) -> Vec<(String, Code, String)> {
    let pl = new(None).unwrap();
    let pi = PodInfo::new(pod);
    let mut st = CycleState::new();
    let (_, s) = pl.pre_filter(&mut st, &pi, snap);
    assert!(s.is_success() || s.is_skip(), "{s}");
    snap.nodes()
        .iter()
        .map(|n| {
            let s = if s.is_skip() { Status::success() } else { pl.filter(&st, &pi, n) };
            (n.name().to_string(), s.code, s.message())
        })
        .collect()
}

fn passing(r: &[(String, Code, String)]) -> Vec<&str> {
    r.iter().filter(|(_, c, _)| *c == Code::Success).map(|(n, _, _)| n.as_str()).collect()
}

#[test]
fn filter_table() {
    let hard = |skew: i32, key: &str| {
        make_pod("p").label("foo", "").spread(skew, key, UnsatisfiableConstraintAction::DoNotSchedule, foo_selector())
    };
    // (name, pod, existing pods, passing nodes)
    let table: Vec<(&str, Pod, Vec<Pod>, Vec<&str>)> = vec![
        ("no existing pods", hard(1, "zone").obj(), vec![], vec!["node-a", "node-b", "node-x", "node-y"]),
        (
            "zone2 has more",
            hard(1, "zone").obj(),
            vec![on("a1", "node-a"), on("b1", "node-b"), on("y1", "node-y"), on("y2", "node-y"), on("y3", "node-y")],
            vec!["node-a", "node-b"],
        ),
        (
            "maxSkew 2 tolerates it",
            hard(2, "zone").obj(),
            vec![on("a1", "node-a"), on("b1", "node-b"), on("y1", "node-y"), on("y2", "node-y"), on("y3", "node-y")],
            vec!["node-a", "node-b", "node-x", "node-y"],
        ),
        (
            "pods of other namespaces do not count",
            hard(1, "zone").obj(),
            vec![
                make_pod("y1").namespace("other").label("foo", "").node("node-y").obj(),
                make_pod("y2").namespace("other").label("foo", "").node("node-y").obj(),
            ],
            vec!["node-a", "node-b", "node-x", "node-y"],
        ),
        (
            "terminating pods do not count",
            hard(1, "zone").obj(),
            vec![
                make_pod("y1").label("foo", "").terminating().node("node-y").obj(),
                make_pod("y2").label("foo", "").terminating().node("node-y").obj(),
            ],
            vec!["node-a", "node-b", "node-x", "node-y"],
        ),
        (
            "hostname spreading",
            hard(1, "kubernetes.io/hostname").obj(),
            vec![on("a1", "node-a"), on("b1", "node-b"), on("x1", "node-x")],
            vec!["node-y"],
        ),
        (
            "incoming pod not matching its own selector",
            make_pod("p").spread(1, "zone", UnsatisfiableConstraintAction::DoNotSchedule, foo_selector()).obj(),
            vec![on("a1", "node-a"), on("y1", "node-y"), on("y2", "node-y"), on("y3", "node-y")],
            vec!["node-a", "node-b"],
        ),
        (
            "two constraints must both hold",
            hard(1, "zone").spread(1, "kubernetes.io/hostname", UnsatisfiableConstraintAction::DoNotSchedule, foo_selector()).obj(),
            vec![on("a1", "node-a"), on("y1", "node-y")],
            vec!["node-b", "node-x"],
        ),
        (
            // zone2 is outside the pod's node selector, so its 0 is not the
            // global minimum: zone1 (2 pods) is the only domain.
            "node affinity narrows the domains (nodeAffinityPolicy Honor)",
            hard(1, "zone").node_selector("zone", "zone1").obj(),
            vec![on("a1", "node-a"), on("a2", "node-a")],
            vec!["node-a", "node-b", "node-x", "node-y"],
        ),
        (
            "without the node selector the empty zone is the minimum",
            hard(1, "zone").obj(),
            vec![on("a1", "node-a"), on("a2", "node-a")],
            vec!["node-x", "node-y"],
        ),
        (
            "ScheduleAnyway never filters",
            make_pod("p").label("foo", "").spread(1, "zone", UnsatisfiableConstraintAction::ScheduleAnyway, foo_selector()).obj(),
            vec![on("y1", "node-y"), on("y2", "node-y")],
            vec!["node-a", "node-b", "node-x", "node-y"],
        ),
    ];
    for (name, pod, existing, want) in table {
        let snap = snapshot(nodes(), existing);
        let r = filter_all(pod, &snap);
        assert_eq!(passing(&r), want, "{name}: {r:?}");
        for (_, code, msg) in r.iter().filter(|(_, c, _)| *c != Code::Success) {
            assert_eq!((*code, msg.as_str()), (Code::Unschedulable, ERR_REASON_CONSTRAINTS_NOT_MATCH), "{name}");
        }
    }
}

#[test]
fn missing_label_and_min_domains() {
    let mut ns = nodes();
    ns.push(make_node("node-nolabel").obj());
    let snap = snapshot(ns, vec![on("a1", "node-a")]);
    let pod = make_pod("p").label("foo", "").spread(1, "zone", UnsatisfiableConstraintAction::DoNotSchedule, foo_selector()).obj();
    let r = filter_all(pod, &snap);
    let last = r.iter().find(|(n, _, _)| n == "node-nolabel").unwrap();
    assert_eq!((last.1, last.2.as_str()), (Code::UnschedulableAndUnresolvable, ERR_REASON_NODE_LABEL_NOT_MATCH));

    // Two zones but minDomains 3: the global minimum is taken as 0.
    let snap = snapshot(nodes(), vec![on("a1", "node-a"), on("x1", "node-x")]);
    let c = TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "zone".into(),
        when_unsatisfiable: UnsatisfiableConstraintAction::DoNotSchedule,
        label_selector: foo_selector(),
        min_domains: Some(3),
        ..Default::default()
    };
    let r = filter_all(make_pod("p").label("foo", "").spread_constraint(c).obj(), &snap);
    assert!(passing(&r).is_empty(), "{r:?}");
}

#[test]
fn score_prefers_emptier_domains() {
    let ns = vec![
        make_node("node-a").label("zone", "zone1").obj(),
        make_node("node-b").label("zone", "zone1").obj(),
        make_node("node-x").label("zone", "zone2").obj(),
    ];
    let snap = snapshot(ns, vec![on("a1", "node-a"), on("a2", "node-a"), on("x1", "node-x")]);
    let pl = new(None).unwrap();
    let pi =
        PodInfo::new(make_pod("p").label("foo", "").spread(1, "zone", UnsatisfiableConstraintAction::ScheduleAnyway, foo_selector()).obj());
    let mut st = CycleState::new();
    assert!(pl.pre_score(&mut st, &pi, &snap.node_refs(), &snap).is_success());
    let mut scores: Vec<NodeScore> =
        snap.nodes().iter().enumerate().map(|(index, n)| NodeScore { index, score: pl.score(&st, &pi, n).0 }).collect();
    // zone1 has 2 matching pods, zone2 has 1; weight ln(2+2): raw 3, 3, 1.
    assert_eq!(scores.iter().map(|s| s.score).collect::<Vec<_>>(), [3, 3, 1]);
    pl.normalize_score(&st, &pi, &mut scores);
    assert_eq!(scores.iter().map(|s| s.score).collect::<Vec<_>>(), [33, 33, 100]);
    // No soft constraints: skipped.
    assert!(pl.pre_score(&mut CycleState::new(), &make_pod("q").info(), &snap.node_refs(), &snap).is_skip());
}

#[test]
fn system_defaults_apply_to_controlled_pods() {
    let ns = vec![make_node("node-a").label(ZONE, "z1").obj(), make_node("node-b").label(ZONE, "z2").obj()];
    let existing = vec![make_pod("r1").label("app", "web").owner("ReplicaSet", "web").node("node-a").obj()];
    let snap = snapshot(ns, existing);
    let pl = new(None).unwrap();
    let pi = PodInfo::new(make_pod("r2").label("app", "web").owner("ReplicaSet", "web").obj());
    let mut st = CycleState::new();
    assert!(pl.pre_score(&mut st, &pi, &snap.node_refs(), &snap).is_success());
    let mut scores: Vec<NodeScore> =
        snap.nodes().iter().enumerate().map(|(index, n)| NodeScore { index, score: pl.score(&st, &pi, n).0 }).collect();
    pl.normalize_score(&st, &pi, &mut scores);
    assert!(scores[1].score > scores[0].score, "{scores:?}");
    // Args validation.
    assert!(new(Some(&serde_json::json!({"defaultingType": "System", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}))).is_err());
    assert!(new(Some(&serde_json::json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}))).is_ok());
}

#[test]
fn preemption_updates_counts() {
    let snap = snapshot(nodes(), vec![on("y1", "node-y"), on("y2", "node-y")]);
    let pl = new(None).unwrap();
    let pi =
        PodInfo::new(make_pod("p").label("foo", "").spread(1, "zone", UnsatisfiableConstraintAction::DoNotSchedule, foo_selector()).obj());
    let mut st = CycleState::new();
    let _ = pl.pre_filter(&mut st, &pi, &snap);
    let y = snap.get("node-y").unwrap().clone();
    assert!(!pl.filter(&st, &pi, &y).is_success());
    for p in y.pods.clone() {
        pl.remove_pod(&mut st, &pi, &p, &y);
    }
    assert!(pl.filter(&st, &pi, &y).is_success());
}
