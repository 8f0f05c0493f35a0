use super::balanced_allocation::{self, balanced_score};
use super::fit::{self, Fit};
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::Pod;
use crate::testing::{make_node, make_pod, node_info};

const GI: i64 = 1 << 30;

fn run_filter(pl: &dyn Plugin, pod: Pod, node: NodeInfo) -> Status {
    let pi = PodInfo::new(pod);
    let mut st = CycleState::new();
    let _ = pl.pre_filter(&mut st, &pi, &Snapshot::default());
    pl.filter(&st, &pi, &node)
}

#[test]
fn fit_filter() {
    let pl = fit::new(None).unwrap();
    let node = |pods: Vec<Pod>| node_info(make_node("n").capacity(10, 20, 32).obj(), pods);
    let ext_node = |pods: Vec<Pod>| {
        node_info(make_node("n").capacity(10, 20, 32).capacity_q(&[("example.com/aaa", "5"), ("hugepages-2Mi", "2")]).obj(), pods)
    };
    // (name, pod, node, expected reasons; empty = fits)
    let table: Vec<(&str, Pod, NodeInfo, Vec<&str>)> = vec![
        ("no resources requested always fits", make_pod("p").obj(), node(vec![make_pod("e").req(10, 20).obj()]), vec![]),
        (
            "too many resources fails",
            make_pod("p").req(1, 1).obj(),
            node(vec![make_pod("e").req(10, 20).obj()]),
            vec!["Insufficient cpu", "Insufficient memory"],
        ),
        ("fits on an empty node", make_pod("p").req(1, 1).obj(), node(vec![make_pod("e").req(5, 5).obj()]), vec![]),
        ("cpu exactly to capacity fits", make_pod("p").req(5, 1).obj(), node(vec![make_pod("e").req(5, 5).obj()]), vec![]),
        ("one resource over", make_pod("p").req(1, 16).obj(), node(vec![make_pod("e").req(5, 5).obj()]), vec!["Insufficient memory"]),
        (
            "init container larger than containers counts",
            make_pod("p").req(1, 1).init_req(&[("cpu", "3m"), ("memory", "1")]).obj(),
            node(vec![make_pod("e").req(8, 19).obj()]),
            vec!["Insufficient cpu"],
        ),
        (
            "sidecar adds to the sum",
            make_pod("p").req(1, 1).sidecar_req(&[("cpu", "1m")]).obj(),
            node(vec![make_pod("e").req(8, 0).obj()]),
            vec![],
        ),
        (
            "sidecar plus container over",
            make_pod("p").req(2, 1).sidecar_req(&[("cpu", "1m")]).obj(),
            node(vec![make_pod("e").req(8, 0).obj()]),
            vec!["Insufficient cpu"],
        ),
        (
            "overhead counts",
            make_pod("p").req(1, 1).overhead(&[("cpu", "3m"), ("memory", "15")]).obj(),
            node(vec![make_pod("e").req(5, 5).obj()]),
            vec!["Insufficient memory"],
        ),
        ("extended resource fits", make_pod("p").req_q(&[("example.com/aaa", "1")]).obj(), ext_node(vec![]), vec![]),
        (
            "extended resource over",
            make_pod("p").req_q(&[("example.com/aaa", "6")]).obj(),
            ext_node(vec![]),
            vec!["Insufficient example.com/aaa"],
        ),
        (
            "extended resource missing on node",
            make_pod("p").req_q(&[("example.com/bbb", "1")]).obj(),
            ext_node(vec![]),
            vec!["Insufficient example.com/bbb"],
        ),
        ("hugepages over", make_pod("p").req_q(&[("hugepages-2Mi", "3")]).obj(), ext_node(vec![]), vec!["Insufficient hugepages-2Mi"]),
        (
            "too many pods",
            make_pod("p").obj(),
            node_info(make_node("n").capacity(10, 20, 1).obj(), vec![make_pod("e").obj()]),
            vec!["Too many pods"],
        ),
        (
            "too many pods and resources",
            make_pod("p").req(1, 1).obj(),
            node_info(make_node("n").capacity(10, 20, 1).obj(), vec![make_pod("e").req(10, 20).obj()]),
            vec!["Too many pods", "Insufficient cpu", "Insufficient memory"],
        ),
        ("huge request never fits", make_pod("p").req(i64::MAX, 0).obj(), node(vec![]), vec!["Insufficient cpu"]),
    ];
    for (name, pod, ni, want) in table {
        let s = run_filter(&*pl, pod, ni);
        if want.is_empty() {
            assert!(s.is_success(), "{name}: {s}");
        } else {
            assert_eq!(s.code, Code::Unschedulable, "{name}");
            assert_eq!(s.reasons.iter().map(|r| r.as_ref()).collect::<Vec<_>>(), want, "{name}");
        }
    }
}

#[test]
fn fit_ignored_resources() {
    let args = serde_json::json!({"ignoredResources": ["example.com/aaa"], "ignoredResourceGroups": ["example.org"]});
    let pl = fit::new(Some(&args)).unwrap();
    let ni = || node_info(make_node("n").capacity(10, 20, 32).obj(), vec![]);
    assert!(run_filter(&*pl, make_pod("p").req_q(&[("example.com/aaa", "1")]).obj(), ni()).is_success());
    assert!(run_filter(&*pl, make_pod("p").req_q(&[("example.org/x", "1")]).obj(), ni()).is_success());
    assert!(!run_filter(&*pl, make_pod("p").req_q(&[("example.net/y", "1")]).obj(), ni()).is_success());
}

fn scores(pl: &dyn Plugin, pod: Pod, nodes: Vec<NodeInfo>) -> Vec<i64> {
    let pi = PodInfo::new(pod);
    let nodes: Vec<&NodeInfo> = nodes.iter().collect();
    let mut st = CycleState::new();
    let s = pl.pre_score(&mut st, &pi, &nodes, &Snapshot::default());
    if s.is_skip() {
        return vec![];
    }
    nodes.iter().map(|n| pl.score(&st, &pi, n).0).collect()
}

/// Two nodes of 4 CPU / 8Gi: one half used by a (1 CPU, 2Gi) pod, one with 3 CPU used.
fn two_nodes() -> Vec<NodeInfo> {
    vec![
        node_info(make_node("n1").capacity(4000, 8 * GI, 110).obj(), vec![make_pod("a").req(1000, 2 * GI).obj()]),
        node_info(make_node("n2").capacity(4000, 8 * GI, 110).obj(), vec![make_pod("b").req(3000, 0).obj()]),
    ]
}

#[test]
fn fit_scoring_strategies() {
    let pod = || make_pod("p").req(1000, 2 * GI).obj();
    let least = fit::new(None).unwrap();
    // n1: cpu (4000-2000)/4000=50, mem (8-4)/8=50 -> 50
    // n2: cpu (4000-4000)=0; mem: node non-zero usage is 200Mi (the pod asked no memory) + 2Gi
    //     -> (8192-2248)*100/8192 = 72 -> (0+72)/2 = 36
    assert_eq!(scores(&*least, pod(), two_nodes()), [50, 36]);
    let most = fit::new(Some(&serde_json::json!({"scoringStrategy": {"type": "MostAllocated"}}))).unwrap();
    // n2: cpu 100, mem 2248*100/8192 = 27 -> 63
    assert_eq!(scores(&*most, pod(), two_nodes()), [50, 63]);
    let weighted = fit::new(Some(&serde_json::json!({"scoringStrategy": {"type": "MostAllocated",
        "resources": [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}]}})))
    .unwrap();
    // n2: (100*3 + 27)/4 = 81
    assert_eq!(scores(&*weighted, pod(), two_nodes()), [50, 81]);
    let packing = fit::new(Some(&serde_json::json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}})))
    .unwrap();
    // n2: cpu util 100 -> 100; mem util 27 -> 27; round(127/2) = 64
    assert_eq!(scores(&*packing, pod(), two_nodes()), [50, 64]);
    let spreading = fit::new(Some(&serde_json::json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]}}})))
    .unwrap();
    // n2: cpu 0 (dropped: zero scores do not count), mem 73 -> 73
    assert_eq!(scores(&*spreading, pod(), two_nodes()), [50, 73]);
    // A best-effort pod is scored with the 100m / 200Mi defaults.
    // n1: cpu (4000-1100)*100/4000 = 72, mem (8192-2248)*100/8192 = 72
    assert_eq!(scores(&*least, make_pod("be").req(0, 0).obj(), two_nodes())[0], 72);
}

#[test]
fn fit_args_validation() {
    let bad = [
        serde_json::json!({"scoringStrategy": {"type": "Sideways"}}),
        serde_json::json!({"scoringStrategy": {"resources": [{"name": "cpu", "weight": 0}]}}),
        serde_json::json!({"scoringStrategy": {"type": "RequestedToCapacityRatio"}}),
        serde_json::json!({"scoringStrategy": {"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": [{"utilization": 50, "score": 11}]}}}),
        serde_json::json!({"scoringStrategy": {"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": [{"utilization": 50, "score": 1}, {"utilization": 40, "score": 2}]}}}),
        serde_json::json!({"unknown": 1}),
    ];
    for b in bad {
        assert!(fit::new(Some(&b)).is_err(), "{b}");
    }
    let _ = Fit::from_args(fit::Args::default()).unwrap();
}

#[test]
fn balanced_allocation() {
    let pl = balanced_allocation::new(None).unwrap();
    // The change in balance the pod makes (1.36+). n1 holds cpu 0.25 / mem 0.25
    // (balance 100); the pod takes it to 0.5/0.75 (87): 50 + (50 + 87 - 100) / 2 = 68.
    // n2 holds cpu 0.75 / mem 0 (62); the pod evens it to 1.0/0.5 (75): 81.
    // The 1.34 formula (balance after the pod alone) ranked them the other way: 87, 75.
    assert_eq!(scores(&*pl, make_pod("p").req(1000, 4 * GI).obj(), two_nodes()), [68, 81]);
    // A pod that leaves both balances as they were scores 75 on both.
    assert_eq!(scores(&*pl, make_pod("p").req(1000, 2 * GI).obj(), two_nodes()), [75, 75]);
    // Best-effort pods are skipped.
    assert!(scores(&*pl, make_pod("p").req(0, 0).obj(), two_nodes()).is_empty());
    assert_eq!(balanced_score(&[1, 2, 3], &[4, 4, 4]), 79);
    assert_eq!(balanced_score(&[5], &[4]), 100);
    // Upstream's TestNodeResourcesBalancedAllocation (1.37), as (with the pod,
    // without it, allocatable) of cpu and memory, and the expected score.
    type Case = ([i64; 2], [i64; 2], [i64; 2], i64);
    let cases: [Case; 9] = [
        ([3000, 5000], [0, 0], [4000, 10000], 68),
        ([3000, 5000], [0, 0], [6000, 10000], 75),
        ([6000, 5000], [3000, 0], [10000, 20000], 73),
        ([6000, 10000], [3000, 5000], [10000, 20000], 74),
        ([6000, 10000], [3000, 5000], [10000, 50000], 70),
        ([3000, 5000], [3000, 0], [3000, 5000], 100),
        ([0, 5000], [0, 0], [3000, 5000], 50),
        ([6000, 0], [3000, 0], [6000, 10000], 62),
        ([6000, 5000], [3000, 5000], [6000, 10000], 62),
    ];
    for (with, without, alloc, want) in cases {
        let pod = [with[0] - without[0], with[1] - without[1]];
        assert_eq!(balanced_allocation::balance_change_score(&with, &pod, &alloc), want, "{with:?} {without:?} {alloc:?}");
    }
    // Three resources take the general path: cpu 0.5 → 0.75, memory 0.5 → 0.5, gpu 0 → 0.5.
    let three = balanced_allocation::balance_change_score(&[3, 2, 1], &[1, 0, 1], &[4, 4, 2]);
    let (with, without) = (balanced_score(&[3, 2, 1], &[4, 4, 2]), balanced_score(&[2, 2, 0], &[4, 4, 2]));
    assert_eq!(three, 50 + (50 + with - without) / 2);
    assert!(with < 100 && without < 100 && with != without);
    assert!(balanced_allocation::new(Some(&serde_json::json!({"resources": [{"name": "cpu", "weight": 2}]}))).is_err());
}

#[test]
fn scores_of_huge_quantities_do_not_overflow() {
    let exact = |num: i64, den: i64| ((num as i128 * 100) / den as i128) as i64;
    for (requested, capacity) in [(0, i64::MAX), (i64::MAX / 3, i64::MAX), (i64::MAX - 1, i64::MAX), (1, 3), (5 * GI, 32 * GI)] {
        assert_eq!(fit::least_requested_score(requested, capacity), exact(capacity - requested, capacity), "{requested}/{capacity}");
        assert_eq!(fit::most_requested_score(requested, capacity), exact(requested, capacity), "{requested}/{capacity}");
    }
    assert_eq!(fit::least_requested_score(i64::MAX, 1), 0);
    assert_eq!(fit::most_requested_score(i64::MAX, 1), 100);
}
