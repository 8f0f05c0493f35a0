//! Upstream's extender tests (`extender_test.go` TestSchedulerWithExtenders,
//! TestIsInterested; `schedule_one_test.go` TestFindNodesThatPassExtenders,
//! TestSchedulerBinding, Test_prioritizeNodes; `preemption_test.go`
//! TestCallExtenders), ported as tables over fake extenders.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::cache::Snapshot;
use crate::framework::{CycleState, Framework, NoNominations, Status};
use crate::scheduler::{CycleRunner, ScheduleError, EXTENDER};
use crate::testing::{make_node, make_pod, node_info};

/// Upstream's fake predicates, per node.
#[derive(Clone, Copy)]
enum Predicate {
    True,
    False,
    Error,
    Node1,
    Node2,
    /// Fails node1 as unresolvable, passes the rest.
    Node1Unresolvable,
}

/// Upstream's fake prioritizers: the chosen node 10, the others 1.
#[derive(Clone, Copy)]
enum Prioritizer {
    Error,
    Node1,
    Node2,
}

struct Fake {
    name: String,
    predicates: Vec<Predicate>,
    prioritizers: Vec<(Prioritizer, i64)>,
    weight: i64,
    binder: bool,
    ignorable: bool,
    managed: Vec<String>,
    calls: AtomicUsize,
    bind_error: Option<&'static str>,
    bound: Mutex<Vec<String>>,
}

impl Fake {
    fn new(name: &str) -> Fake {
        Fake {
            name: name.into(),
            predicates: vec![],
            prioritizers: vec![],
            weight: 1,
            binder: false,
            ignorable: false,
            managed: vec![],
            calls: AtomicUsize::new(0),
            bind_error: None,
            bound: Mutex::new(vec![]),
        }
    }
    fn filters(mut self, p: &[Predicate]) -> Fake {
        self.predicates = p.to_vec();
        self
    }
    fn scores(mut self, p: &[(Prioritizer, i64)], weight: i64) -> Fake {
        self.prioritizers = p.to_vec();
        self.weight = weight;
        self
    }
    fn ignorable(mut self) -> Fake {
        self.ignorable = true;
        self
    }
    fn managing(mut self, r: &str) -> Fake {
        self.managed = vec![r.into()];
        self
    }
    fn arc(self) -> Arc<Fake> {
        Arc::new(self)
    }
}

impl Extender for Fake {
    fn name(&self) -> &str {
        &self.name
    }
    fn is_filter(&self) -> bool {
        !self.predicates.is_empty()
    }
    fn is_prioritizer(&self) -> bool {
        !self.prioritizers.is_empty()
    }
    fn weight(&self) -> i64 {
        self.weight
    }
    fn is_binder(&self) -> bool {
        self.binder
    }
    fn is_ignorable(&self) -> bool {
        self.ignorable
    }
    fn is_interested(&self, pod: &Pod) -> bool {
        interested_in(&self.managed, pod)
    }
    fn filter(&self, _pod: &Pod, nodes: &[&NodeInfo]) -> Result<FilterResult, ExtenderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut r = FilterResult::default();
        for n in nodes {
            let name = n.name().to_string();
            let mut fits = true;
            for p in &self.predicates {
                let ok = match p {
                    Predicate::True => true,
                    Predicate::False => false,
                    Predicate::Error => return Err(ExtenderError::Replied("some error".into())),
                    Predicate::Node1 => name == "node1",
                    Predicate::Node2 => name == "node2",
                    Predicate::Node1Unresolvable if name == "node1" => {
                        r.failed_and_unresolvable.insert(name.clone(), format!("FakeExtender: node {name:?} failed and unresolvable"));
                        fits = false;
                        break;
                    }
                    Predicate::Node1Unresolvable => true,
                };
                if !ok {
                    fits = false;
                    r.failed.insert(name.clone(), format!("FakeExtender: node {name:?} failed"));
                    break;
                }
            }
            if fits {
                r.nodes.push(name);
            }
        }
        Ok(r)
    }
    fn prioritize(&self, _pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<(String, i64)>, ExtenderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut total: BTreeMap<String, i64> = BTreeMap::new();
        for (p, w) in &self.prioritizers {
            let favourite = match p {
                Prioritizer::Error => return Err(ExtenderError::Replied("some error".into())),
                Prioritizer::Node1 => "node1",
                Prioritizer::Node2 => "node2",
            };
            for n in nodes {
                *total.entry(n.name().to_string()).or_default() += if n.name() == favourite { 10 } else { 1 } * w;
            }
        }
        Ok(total.into_iter().collect())
    }
    fn bind(&self, pod: &Pod, node: &str) -> Result<(), ExtenderError> {
        if let Some(e) = self.bind_error {
            return Err(ExtenderError::Replied(e.into()));
        }
        self.bound.lock().unwrap().push(format!("{}/{} -> {node}", pod.namespace, pod.name));
        Ok(())
    }
}

fn framework(extenders: Vec<Arc<Fake>>) -> Framework {
    let cfg = crate::config::KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).unwrap();
    let mut fwk = cfg.build_frameworks().unwrap().remove(0);
    fwk.extenders = extenders.into_iter().map(|e| e as Arc<dyn Extender>).collect();
    fwk
}

fn two_nodes() -> Snapshot {
    let node = |n: &str| node_info(make_node(n).capacity(4000, 8 << 30, 110).obj(), vec![]);
    Snapshot::from_node_infos(vec![node("node1"), node("node2")])
}

fn schedule(fwk: &Framework, snapshot: &Snapshot) -> Result<crate::scheduler::ScheduleResult, ScheduleError> {
    let pod = Arc::new(make_pod("p").uid("p").req(100, 0).info());
    CycleRunner::new(0, 1).schedule_pod(fwk, &mut CycleState::new(), &pod, snapshot, &NoNominations)
}

#[test]
fn scheduler_with_extenders() {
    use Predicate::*;
    use Prioritizer as P;
    // (name, extenders, Ok(node) or Err(fit?))
    type Case = (&'static str, Vec<Fake>, Result<&'static str, bool>);
    let cases: Vec<Case> = vec![
        (
            "a filter error of a later extender fails the attempt",
            vec![Fake::new("a").filters(&[True]), Fake::new("b").filters(&[Error])],
            Err(false),
        ),
        ("a false predicate rejects every node", vec![Fake::new("a").filters(&[True]), Fake::new("b").filters(&[False])], Err(true)),
        ("true, then node1 only: node1", vec![Fake::new("a").filters(&[True]), Fake::new("b").filters(&[Node1])], Ok("node1")),
        ("node2, then node1: no node", vec![Fake::new("a").filters(&[Node2]), Fake::new("b").filters(&[Node1])], Err(true)),
        (
            "a prioritize error is ignored",
            vec![Fake::new("a").filters(&[True]).scores(&[(P::Error, 1)], 1), Fake::new("b").filters(&[Node1])],
            Ok("node1"),
        ),
        (
            "the heavier extender wins",
            vec![Fake::new("a").filters(&[True]).scores(&[(P::Node1, 1)], 1), Fake::new("b").filters(&[True]).scores(&[(P::Node2, 1)], 5)],
            Ok("node2"),
        ),
        (
            "an ignorable extender's error is skipped",
            vec![Fake::new("a").filters(&[Error]).ignorable(), Fake::new("b").filters(&[Node1])],
            Ok("node1"),
        ),
    ];
    for (name, fakes, want) in cases {
        let fwk = framework(fakes.into_iter().map(Fake::arc).collect());
        match (schedule(&fwk, &two_nodes()), want) {
            (Ok(r), Ok(node)) => assert_eq!(r.node, node, "{name}"),
            (Err(ScheduleError::Fit(f)), Err(true)) => {
                assert!(f.diagnosis.unschedulable_plugins.contains(EXTENDER), "{name}: {:?}", f.diagnosis.unschedulable_plugins)
            }
            (Err(ScheduleError::Internal(s)), Err(false)) => assert_eq!(s.message(), "some error", "{name}"),
            (got, _) => panic!("{name}: got {:?}", got.map(|r| r.node).map_err(|e| e.message())),
        }
    }
}

#[test]
fn an_extender_not_interested_in_the_pod_is_never_called() {
    let uninterested =
        Fake::new("gpu").filters(&[Predicate::Error]).scores(&[(Prioritizer::Error, 1)], 1).managing("example.com/gpu").arc();
    let fwk = framework(vec![uninterested.clone()]);
    assert!(schedule(&fwk, &two_nodes()).is_ok());
    assert_eq!(uninterested.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn is_interested_looks_at_containers_and_init_containers() {
    let managed = vec!["example.com/gpu".to_string()];
    assert!(interested_in(&[], &make_pod("p").obj()), "no managed resources: every pod");
    assert!(!interested_in(&managed, &make_pod("p").req(100, 0).obj()));
    assert!(interested_in(&managed, &make_pod("p").req_q(&[("example.com/gpu", "1")]).obj()));
    assert!(interested_in(&managed, &make_pod("p").init_req(&[("example.com/gpu", "1")]).obj()));
}

#[test]
fn extender_failures_become_the_nodes_statuses() {
    let fwk =
        framework(vec![Fake::new("a").filters(&[Predicate::Node1Unresolvable]).arc(), Fake::new("b").filters(&[Predicate::False]).arc()]);
    let Err(ScheduleError::Fit(f)) = schedule(&fwk, &two_nodes()) else { panic!("no node fits") };
    let st = &f.diagnosis.node_to_status;
    let s1 = st.get(0).expect("node1 has a status");
    assert_eq!(
        (s1.code, s1.message()),
        (crate::framework::Code::UnschedulableAndUnresolvable, "FakeExtender: node \"node1\" failed and unresolvable".into())
    );
    let s2 = st.get(1).expect("node2 has a status");
    assert_eq!((s2.code, s2.message()), (crate::framework::Code::Unschedulable, "FakeExtender: node \"node2\" failed".into()));
    assert_eq!(
        f.message(),
        "0/2 nodes are available: 1 FakeExtender: node \"node1\" failed and unresolvable, 1 FakeExtender: node \"node2\" failed."
    );
}

#[test]
fn a_filter_reply_naming_a_node_not_sent_is_an_error() {
    struct Liar;
    impl Extender for Liar {
        fn name(&self) -> &str {
            "http://liar"
        }
        fn is_filter(&self) -> bool {
            true
        }
        fn filter(&self, _: &Pod, _: &[&NodeInfo]) -> Result<FilterResult, ExtenderError> {
            Ok(FilterResult { nodes: vec!["node9".into()], ..Default::default() })
        }
    }
    let mut fwk = framework(vec![]);
    fwk.extenders = vec![Arc::new(Liar)];
    let Err(ScheduleError::Internal(s)) = schedule(&fwk, &two_nodes()) else { panic!("an error") };
    assert_eq!(s.message(), "extender \"http://liar\" claims a filtered node \"node9\" which is not found in the input node list");
}

#[test]
fn extender_scores_are_scaled_by_weight_and_ten_and_added() {
    // Upstream Test_prioritizeNodes: ext1 30/3, ext2 2/20, both weight 1.
    struct Fixed(&'static str, [i64; 2]);
    impl Extender for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn is_prioritizer(&self) -> bool {
            true
        }
        fn prioritize(&self, _: &Pod, _: &[&NodeInfo]) -> Result<Vec<(String, i64)>, ExtenderError> {
            Ok(vec![("node1".into(), self.1[0]), ("node2".into(), self.1[1]), ("elsewhere".into(), 1000)])
        }
    }
    let mut fwk = framework(vec![]);
    fwk.extenders = vec![Arc::new(Fixed("ext1", [30, 3])), Arc::new(Fixed("ext2", [2, 20]))];
    let r = schedule(&fwk, &two_nodes()).unwrap();
    let m = r.scores.expect("scored");
    assert_eq!(m.extenders, vec![("ext1".to_string(), vec![300, 30]), ("ext2".to_string(), vec![20, 200])]);
    // The plugins score the two identical nodes alike: the extenders decide.
    assert_eq!(m.totals[0] - m.totals[1], 320 - 230);
    assert_eq!(r.node, "node1");
}

#[test]
fn with_nothing_to_score_and_no_extender_filter_the_first_fit_is_taken() {
    let cfg = crate::config::KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({
        "profiles": [{"plugins": {"score": {"disabled": [{"name": "*"}]}}}]
    }))
    .unwrap();
    let fwk = cfg.build_frameworks().unwrap().remove(0);
    let r = schedule(&fwk, &two_nodes()).unwrap();
    assert_eq!((r.evaluated_nodes, r.feasible_nodes), (1, 1), "upstream's numNodesToFind = 1");
    // A filtering extender makes every node count again.
    let mut fwk = fwk;
    fwk.extenders = vec![Fake::new("a").filters(&[Predicate::True]).arc()];
    let r = schedule(&fwk, &two_nodes()).unwrap();
    assert_eq!(r.feasible_nodes, 2);
}

#[test]
fn the_first_interested_binder_binds_and_an_ignorable_failure_falls_through() {
    let pod = make_pod("p").uid("p").req_q(&[("example.com/gpu", "1")]).info();
    let mut b = Fake::new("binder").managing("example.com/gpu");
    b.binder = true;
    let b = b.arc();
    let fwk = framework(vec![b.clone()]);
    assert_eq!(fwk.run_extender_bind(&pod, "node1"), Some(Status::success()));
    assert_eq!(b.bound.lock().unwrap().clone(), ["default/p -> node1"]);
    // Not interested: DefaultBinder's turn.
    let other = make_pod("q").req(100, 0).info();
    assert_eq!(fwk.run_extender_bind(&other, "node1"), None);
    // A failure fails the binding; an ignorable one lets the plugins bind.
    let mut failing = Fake::new("binder");
    failing.binder = true;
    failing.bind_error = Some("no room");
    let fwk = framework(vec![failing.arc()]);
    assert_eq!(fwk.run_extender_bind(&pod, "node1").map(|s| s.message()), Some("no room".into()));
    let mut failing = Fake::new("binder").ignorable();
    failing.binder = true;
    failing.bind_error = Some("no room");
    let fwk = framework(vec![failing.arc()]);
    assert_eq!(fwk.run_extender_bind(&pod, "node1"), None);
}
