use super::*;
use crate::model::{LabelSelector, PodAffinityTerm};
use crate::testing::{make_node, make_pod, snapshot};

const HOST: &str = "kubernetes.io/hostname";

fn nodes() -> Vec<Node> {
    vec![
        make_node("n1").label("region", "r1").label("zone", "z1").obj(),
        make_node("n2").label("region", "r1").label("zone", "z2").obj(),
        make_node("n3").label("region", "r2").label("zone", "z3").obj(),
    ]
}

fn filter_all(pod: Pod, snap: &Snapshot) -> Vec<(String, Code, String)> {
    filter_with(&*new(None).unwrap(), pod, snap)
}

fn filter_with(pl: &dyn Plugin, pod: Pod, snap: &Snapshot) -> Vec<(String, Code, String)> {
    let pi = PodInfo::new(pod);
    let mut st = CycleState::new();
    let (_, s) = pl.pre_filter(&mut st, &pi, snap);
    snap.nodes()
        .iter()
        .map(|n| {
            let r = if s.is_skip() { Status::success() } else { pl.filter(&st, &pi, n) };
            (n.name().to_string(), r.code, r.message())
        })
        .collect()
}

fn verdicts(r: &[(String, Code, String)]) -> Vec<&str> {
    r.iter()
        .map(|(_, c, m)| match c {
            Code::Success => "ok",
            _ if m == ERR_REASON_AFFINITY => "affinity",
            _ if m == ERR_REASON_ANTI_AFFINITY => "anti",
            _ if m == ERR_REASON_EXISTING_ANTI_AFFINITY => "existing",
            _ => "other",
        })
        .collect()
}

#[test]
fn filter_table() {
    // (name, incoming pod, existing pods, verdict per node n1..n3)
    let table: Vec<(&str, Pod, Vec<Pod>, [&str; 3])> = vec![
        ("no affinity", make_pod("p").obj(), vec![make_pod("e").label("app", "web").node("n1").obj()], ["ok", "ok", "ok"]),
        (
            "affinity to a region with a matching pod",
            make_pod("p").pod_affinity("service", "securityscan", "region").obj(),
            vec![make_pod("e").label("service", "securityscan").node("n1").obj()],
            ["ok", "ok", "affinity"],
        ),
        (
            "affinity with nothing matching and not matching itself",
            make_pod("p").pod_affinity("service", "securityscan", "region").obj(),
            vec![make_pod("e").label("service", "other").node("n1").obj()],
            ["affinity", "affinity", "affinity"],
        ),
        (
            "first pod of a self-affine group goes anywhere",
            make_pod("p").label("service", "securityscan").pod_affinity("service", "securityscan", "region").obj(),
            vec![],
            ["ok", "ok", "ok"],
        ),
        (
            "affinity needs the topology key on the node",
            make_pod("p").label("service", "securityscan").pod_affinity("service", "securityscan", "rack").obj(),
            vec![],
            ["affinity", "affinity", "affinity"],
        ),
        (
            "anti-affinity on hostname",
            make_pod("p").pod_anti_affinity("app", "web", HOST).obj(),
            vec![make_pod("e").label("app", "web").node("n1").obj()],
            ["anti", "ok", "ok"],
        ),
        (
            "anti-affinity on region",
            make_pod("p").pod_anti_affinity("app", "web", "region").obj(),
            vec![make_pod("e").label("app", "web").node("n1").obj()],
            ["anti", "anti", "ok"],
        ),
        (
            "existing pod's anti-affinity",
            make_pod("p").label("app", "db").obj(),
            vec![make_pod("e").pod_anti_affinity("app", "db", "zone").node("n2").obj()],
            ["ok", "existing", "ok"],
        ),
        (
            "other namespaces do not match by default",
            make_pod("p").pod_anti_affinity("app", "web", "region").obj(),
            vec![make_pod("e").namespace("other").label("app", "web").node("n1").obj()],
            ["ok", "ok", "ok"],
        ),
        (
            "explicit namespaces",
            make_pod("p")
                .pod_affinity_term(
                    true,
                    PodAffinityTerm {
                        label_selector: LabelSelector::from_match_labels([("app", "web")]),
                        namespaces: vec!["other".into()],
                        topology_key: "region".into(),
                        ..Default::default()
                    },
                )
                .obj(),
            vec![make_pod("e").namespace("other").label("app", "web").node("n3").obj()],
            ["ok", "ok", "anti"],
        ),
    ];
    for (name, pod, existing, want) in table {
        let snap = snapshot(nodes(), existing);
        let r = filter_all(pod, &snap);
        assert_eq!(verdicts(&r), want, "{name}: {r:?}");
        for (_, c, m) in &r {
            if m == ERR_REASON_AFFINITY {
                assert_eq!(*c, Code::UnschedulableAndUnresolvable, "{name}");
            } else if *c != Code::Success {
                assert_eq!(*c, Code::Unschedulable, "{name}");
            }
        }
    }
}

/// More cases in the manner of upstream's TestRequiredAffinitySingleNode and
/// TestRequiredAffinityMultipleNodes: selector operators, several terms,
/// affinity with anti-affinity, and existing pods' anti-affinity that does
/// not apply.
#[test]
fn filter_table_more() {
    use crate::model::{Requirement, SelectorOp};
    let term = |reqs: Vec<Requirement>, topology_key: &str| PodAffinityTerm {
        label_selector: LabelSelector { requirements: reqs, nothing: false },
        topology_key: topology_key.into(),
        ..Default::default()
    };
    let table: Vec<(&str, Pod, Vec<Pod>, [&str; 3])> = vec![
        (
            "Exists matches any value",
            make_pod("p").pod_affinity_term(false, term(vec![Requirement::new("service", SelectorOp::Exists, &[])], "region")).obj(),
            vec![make_pod("e").label("service", "anything").node("n1").obj()],
            ["ok", "ok", "affinity"],
        ),
        (
            "NotIn excludes the only candidate and the pod itself",
            make_pod("p")
                .label("service", "securityscan")
                .pod_affinity_term(false, term(vec![Requirement::new("service", SelectorOp::NotIn, &["securityscan", "value2"])], "region"))
                .obj(),
            vec![make_pod("e").label("service", "securityscan").node("n1").obj()],
            ["affinity", "affinity", "affinity"],
        ),
        (
            "In with several values",
            make_pod("p")
                .pod_affinity_term(false, term(vec![Requirement::new("service", SelectorOp::In, &["securityscan", "value2"])], "zone"))
                .obj(),
            vec![make_pod("e").label("service", "value2").node("n3").obj()],
            ["affinity", "affinity", "ok"],
        ),
        (
            "every requirement of a selector must match",
            make_pod("p")
                .pod_affinity_term(
                    false,
                    term(
                        vec![
                            Requirement::new("service", SelectorOp::Exists, &[]),
                            Requirement::new("wrongkey", SelectorOp::DoesNotExist, &[]),
                        ],
                        "region",
                    ),
                )
                .obj(),
            vec![make_pod("e").label("service", "x").label("wrongkey", "y").node("n1").obj()],
            ["affinity", "affinity", "affinity"],
        ),
        (
            // As upstream: a pod counts for the terms only if it matches them all.
            "several terms are met only by one pod matching them all",
            make_pod("p").pod_affinity("app", "web", "region").pod_affinity("tier", "db", "zone").obj(),
            vec![make_pod("w").label("app", "web").node("n1").obj(), make_pod("d").label("tier", "db").node("n2").obj()],
            ["affinity", "affinity", "affinity"],
        ),
        (
            "several terms, each topology checked on the node",
            make_pod("p").pod_affinity("app", "web", "region").pod_affinity("tier", "db", "zone").obj(),
            vec![make_pod("b").label("app", "web").label("tier", "db").node("n2").obj()],
            ["affinity", "ok", "affinity"],
        ),
        (
            "affinity to the region, anti-affinity to the host",
            make_pod("p").pod_affinity("app", "web", "region").pod_anti_affinity("app", "web", HOST).obj(),
            vec![make_pod("w").label("app", "web").node("n1").obj()],
            ["anti", "ok", "affinity"],
        ),
        (
            "a self-affine pod must join its group once the group exists",
            make_pod("p").label("service", "securityscan").pod_affinity("service", "securityscan", "region").obj(),
            vec![make_pod("e").label("service", "securityscan").node("n3").obj()],
            ["affinity", "affinity", "ok"],
        ),
        (
            "an existing pod's anti-affinity that does not select the pod",
            make_pod("p").label("app", "web").obj(),
            vec![make_pod("e").pod_anti_affinity("app", "db", "region").node("n1").obj()],
            ["ok", "ok", "ok"],
        ),
        (
            "an existing pod's anti-affinity covers its own namespace only",
            make_pod("p").label("app", "db").obj(),
            vec![make_pod("e").namespace("other").pod_anti_affinity("app", "db", "region").node("n1").obj()],
            ["ok", "ok", "ok"],
        ),
        (
            "an existing pod's anti-affinity on a key no node has",
            make_pod("p").label("app", "db").obj(),
            vec![make_pod("e").pod_anti_affinity("app", "db", "rack").node("n1").obj()],
            ["ok", "ok", "ok"],
        ),
        (
            "an existing pod's anti-affinity by region",
            make_pod("p").label("app", "db").obj(),
            vec![make_pod("e").pod_anti_affinity("app", "db", "region").node("n1").obj()],
            ["existing", "existing", "ok"],
        ),
        (
            "the pod's own anti-affinity to itself only counts other pods",
            make_pod("p").label("app", "db").pod_anti_affinity("app", "db", HOST).obj(),
            vec![make_pod("e").label("app", "db").node("n2").obj()],
            ["ok", "anti", "ok"],
        ),
    ];
    for (name, pod, existing, want) in table {
        let snap = snapshot(nodes(), existing);
        let r = filter_all(pod, &snap);
        assert_eq!(verdicts(&r), want, "{name}: {r:?}");
    }
}

#[test]
fn namespace_selector() {
    let term = PodAffinityTerm {
        label_selector: LabelSelector::from_match_labels([("app", "web")]),
        namespace_selector: Some(LabelSelector::from_match_labels([("team", "a")])),
        topology_key: "region".into(),
        ..Default::default()
    };
    let pod = make_pod("p").pod_affinity_term(true, term).obj();
    let existing = vec![
        make_pod("e1").namespace("team-a").label("app", "web").node("n1").obj(),
        make_pod("e2").namespace("team-b").label("app", "web").node("n3").obj(),
    ];
    let mut nsmap = HashMap::new();
    nsmap.insert("team-a".to_string(), [("team".to_string(), "a".to_string())].into_iter().collect());
    nsmap.insert("team-b".to_string(), [("team".to_string(), "b".to_string())].into_iter().collect());
    let snap = snapshot(nodes(), existing).with_namespaces(nsmap);
    assert_eq!(verdicts(&filter_all(pod, &snap)), ["anti", "anti", "ok"]);
}

fn normalized(pod: Pod, snap: &Snapshot, args: Option<serde_json::Value>) -> Vec<i64> {
    normalized_with(&*new(args.as_ref()).unwrap(), pod, snap)
}

fn normalized_with(pl: &dyn Plugin, pod: Pod, snap: &Snapshot) -> Vec<i64> {
    let pi = PodInfo::new(pod);
    let mut st = CycleState::new();
    if pl.pre_score(&mut st, &pi, &snap.node_refs(), snap).is_skip() {
        return vec![];
    }
    let mut scores: Vec<NodeScore> =
        snap.nodes().iter().enumerate().map(|(index, n)| NodeScore { index, score: pl.score(&st, &pi, n).0 }).collect();
    pl.normalize_score(&st, &pi, &mut scores);
    scores.iter().map(|s| s.score).collect()
}

#[test]
fn score_table() {
    let existing = || vec![make_pod("e").label("security", "S1").node("n1").obj()];
    // (name, pod, existing, normalized scores n1..n3)
    let table: Vec<(&str, Pod, Vec<Pod>, Vec<i64>)> = vec![
        ("no preferences, no existing affinity: skipped", make_pod("p").obj(), existing(), vec![]),
        (
            "preferred affinity by region",
            make_pod("p").preferred_pod_affinity(5, "security", "S1", "region").obj(),
            existing(),
            vec![100, 100, 0],
        ),
        (
            "preferred anti-affinity by region",
            make_pod("p").preferred_pod_anti_affinity(5, "security", "S1", "region").obj(),
            existing(),
            vec![0, 0, 100],
        ),
        (
            "affinity and anti-affinity combine",
            make_pod("p")
                .preferred_pod_affinity(8, "security", "S1", "region")
                .preferred_pod_anti_affinity(5, "security", "S1", "zone")
                .obj(),
            existing(),
            // n1: 8-5 = 3, n2: 8, n3: 0 -> (x-0)/8
            vec![37, 100, 0],
        ),
        (
            "existing pod's required affinity attracts (hardPodAffinityWeight 1)",
            make_pod("p").label("app", "db").obj(),
            vec![make_pod("e").pod_affinity("app", "db", "zone").node("n2").obj()],
            vec![0, 100, 0],
        ),
        (
            "existing pod's preferred anti-affinity repels",
            make_pod("p").label("app", "db").obj(),
            vec![make_pod("e").preferred_pod_anti_affinity(10, "app", "db", "region").node("n3").obj()],
            vec![100, 100, 0],
        ),
    ];
    for (name, pod, existing, want) in table {
        let snap = snapshot(nodes(), existing);
        assert_eq!(normalized(pod, &snap, None), want, "{name}");
    }
    // ignorePreferredTermsOfExistingPods turns the last case off.
    let snap = snapshot(nodes(), vec![make_pod("e").preferred_pod_anti_affinity(10, "app", "db", "region").node("n3").obj()]);
    assert!(normalized(
        make_pod("p").label("app", "db").obj(),
        &snap,
        Some(serde_json::json!({"ignorePreferredTermsOfExistingPods": true}))
    )
    .is_empty());
    assert!(new(Some(&serde_json::json!({"hardPodAffinityWeight": 101}))).is_err());
}

#[test]
fn preemption_extensions() {
    let snap = snapshot(nodes(), vec![make_pod("e").label("app", "web").node("n1").obj()]);
    let pl = new(None).unwrap();
    let pi = PodInfo::new(make_pod("p").pod_anti_affinity("app", "web", HOST).obj());
    let mut st = CycleState::new();
    let _ = pl.pre_filter(&mut st, &pi, &snap);
    let n1 = snap.get("n1").unwrap().clone();
    assert!(!pl.filter(&st, &pi, &n1).is_success());
    pl.remove_pod(&mut st, &pi, &n1.pods[0].clone(), &n1);
    assert!(pl.filter(&st, &pi, &n1).is_success());
    pl.add_pod(&mut st, &pi, &n1.pods[0].clone(), &n1);
    assert!(!pl.filter(&st, &pi, &n1).is_success());
}

/// The existing-anti-affinity counts are memoized per question, keyed by
/// the incoming pod's labels projected onto the keys existing terms select
/// on. Pods that differ only in other labels (upstream's scheduler_perf
/// gives each pod a `signature` of its own) share the answer; pods that
/// differ in a selected label do not. One plugin across a sequence of pods
/// must answer as a fresh plugin does for each.
#[test]
fn memoized_existing_anti_affinity_answers_as_a_fresh_computation() {
    let existing = vec![
        make_pod("e1").label("app", "web").pod_anti_affinity("app", "web", HOST).node("n1").obj(),
        make_pod("e2").label("tier", "db").pod_anti_affinity("tier", "db", "region").node("n2").obj(),
    ];
    let snap = snapshot(nodes(), existing);
    let incoming = [
        make_pod("p1").label("app", "web").label("signature", "1").obj(),
        make_pod("p2").label("app", "web").label("signature", "2").obj(),
        make_pod("p3").label("app", "api").label("signature", "3").obj(),
        make_pod("p4").label("tier", "db").label("signature", "4").obj(),
        make_pod("p5").label("signature", "5").obj(),
        make_pod("p6").label("app", "web").label("tier", "db").obj(),
    ];
    let expected: [[&str; 3]; 6] = [
        ["existing", "ok", "ok"],
        ["existing", "ok", "ok"],
        ["ok", "ok", "ok"],
        ["existing", "existing", "ok"],
        ["ok", "ok", "ok"],
        ["existing", "existing", "ok"],
    ];
    let pl = new(None).unwrap();
    for (pod, want) in incoming.into_iter().zip(expected) {
        let name = pod.name.clone();
        let fresh = filter_all(pod.clone(), &snap);
        let shared = filter_with(&*pl, pod, &snap);
        assert_eq!(verdicts(&shared), want, "{name}, one plugin for all pods");
        assert_eq!(verdicts(&fresh), want, "{name}, a fresh plugin");
    }
}

/// PreScore's topology scores are memoized per node across cycles, keyed by
/// the incoming pod's preferences and its labels projected onto the keys
/// existing terms select on. One plugin across a sequence of pods, and
/// across a change of the cluster, must score as a fresh plugin does.
#[test]
fn memoized_scores_answer_as_a_fresh_computation() {
    let mut existing = vec![
        make_pod("e1").label("app", "web").pod_affinity("app", "db", "zone").node("n1").obj(),
        make_pod("e2").label("app", "db").preferred_pod_anti_affinity(10, "app", "db", "region").node("n3").obj(),
        make_pod("e3").label("tier", "cache").preferred_pod_affinity(7, "tier", "cache", "zone").node("n2").obj(),
    ];
    let incoming = || {
        vec![
            make_pod("p1").label("app", "db").label("signature", "1").obj(),
            make_pod("p2").label("app", "db").label("signature", "2").obj(),
            make_pod("p3").label("tier", "cache").label("signature", "3").obj(),
            make_pod("p4").label("signature", "4").obj(),
            make_pod("p5").label("app", "db").preferred_pod_affinity(5, "app", "web", "region").obj(),
            make_pod("p6").label("app", "db").label("tier", "cache").preferred_pod_anti_affinity(3, "app", "web", "zone").obj(),
        ]
    };
    let pl = new(None).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..2 {
        let snap = snapshot(nodes(), existing.clone());
        for pod in incoming() {
            let name = pod.name.clone();
            let fresh = normalized(pod.clone(), &snap, None);
            assert_eq!(normalized_with(&*pl, pod, &snap), fresh, "{name} in round {round}");
            seen.insert(fresh);
        }
        existing.push(make_pod("e4").label("app", "db").pod_affinity("tier", "cache", "region").node("n3").obj());
    }
    assert!(seen.len() >= 4, "the pods were scored alike: {seen:?}");
}

/// With few nodes holding pods with affinity, PreScore visits only those
/// (no memo pass over every node); a cluster with none skips Score.
#[test]
fn few_nodes_with_affinity_pods_are_scored_directly() {
    let mut many: Vec<Node> = nodes();
    for i in 4..=12 {
        many.push(make_node(&format!("n{i}")).label("region", "r3").label("zone", &format!("z{i}")).obj());
    }
    let snap = snapshot(many.clone(), vec![make_pod("e").pod_affinity("app", "db", "zone").node("n2").obj()]);
    let scores = normalized(make_pod("p").label("app", "db").obj(), &snap, None);
    let want: Vec<i64> = (1..=12).map(|i| if i == 2 { 100 } else { 0 }).collect();
    assert_eq!(scores, want);
    // The existing pod's affinity does not select this pod: nothing to score.
    assert!(normalized(make_pod("p").label("app", "web").obj(), &snap, None).is_empty());
    let none = snapshot(many, vec![make_pod("e").label("app", "db").node("n2").obj()]);
    assert!(normalized(make_pod("p").label("app", "db").obj(), &none, None).is_empty());
}
