use super::*;
use crate::cache::Snapshot;
use crate::framework::NoNominations;
use crate::model::Pod;
use crate::plugins::node_resources::fit;
use crate::scheduler::{CycleRunner, ScheduleError};
use crate::testing::{make_node, make_pod, snapshot};

fn framework() -> Framework {
    let mut f = Framework::new("default-scheduler");
    let fit = fit::new(None).unwrap();
    f.pre_filter = vec![fit.clone()];
    f.filter = vec![fit];
    f.post_filter = vec![new(None).unwrap()];
    f
}

/// Runs a failing cycle then preemption; returns (nominated node, victims, message).
fn preempt(pod: Pod, snap: &Snapshot, pdbs: &[PodDisruptionBudget]) -> (Option<String>, Vec<String>, String) {
    let f = framework();
    let mut runner = CycleRunner::new(0, 1);
    let pi = Arc::new(PodInfo::new(pod));
    let mut state = CycleState::new();
    match runner.schedule_pod(&f, &mut state, &pi, snap, &NoNominations) {
        Ok(r) => panic!("expected a failure, got {}", r.node),
        Err(ScheduleError::Fit(mut fe)) => {
            let r = runner.run_post_filter(&f, &state, &pi, snap, pdbs, &NoNominations, &mut fe);
            let node = r.as_ref().and_then(|r| r.nominated_node.clone()).filter(|n| !n.is_empty());
            let victims = r.map(|r| r.victims.iter().map(|v| v.pod.name.clone()).collect()).unwrap_or_default();
            (node, victims, fe.message())
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
}

fn node(name: &str) -> crate::model::Node {
    make_node(name).capacity(1000, 1 << 30, 110).obj()
}

#[test]
fn evicts_lowest_priority_minimum() {
    // n1 holds two low pods; n2 holds one medium pod. The pod needs 600m.
    let snap = snapshot(
        vec![node("n1"), node("n2")],
        vec![
            make_pod("low-a").priority(1).req(400, 0).node("n1").obj(),
            make_pod("low-b").priority(1).req(400, 0).node("n1").obj(),
            make_pod("mid").priority(5).req(800, 0).node("n2").obj(),
        ],
    );
    let (node, victims, msg) = preempt(make_pod("p").priority(10).req(600, 0).obj(), &snap, &[]);
    // n1: evicting one 400m pod leaves 600m free; its highest victim priority (1) beats n2's (5).
    assert_eq!(node.as_deref(), Some("n1"));
    assert_eq!(victims.len(), 1);
    // Since 1.37 the message says what preemption found.
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 Insufficient cpu. preemption: found a potential placement for pod on node n1, preempting 1 victims"
    );
}

#[test]
fn never_policy_and_no_victims() {
    let snap = snapshot(vec![node("n1")], vec![make_pod("big").priority(100).req(900, 0).node("n1").obj()]);
    let (node, _, msg) = preempt(make_pod("p").priority(10).req(600, 0).preemption_never().obj(), &snap, &[]);
    assert_eq!(node, None);
    assert_eq!(msg, "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.");
    let (node, _, msg) = preempt(make_pod("p").priority(10).req(600, 0).obj(), &snap, &[]);
    assert_eq!(node, None);
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
}

#[test]
fn unresolvable_nodes_are_not_helpful() {
    let snap = snapshot(vec![make_node("n1").capacity(100, 1 << 30, 110).obj()], vec![]);
    // Requests more than the node has: evicting nothing helps, but the node is only
    // Unschedulable, so it is tried and reported with its filter reason.
    let (_, _, msg) = preempt(make_pod("p").priority(10).req(600, 0).obj(), &snap, &[]);
    assert!(msg.ends_with("preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."), "{msg}");
}

#[test]
fn pdb_violations_are_avoided() {
    let snap = snapshot(
        vec![node("n1"), node("n2")],
        vec![
            make_pod("guarded").priority(1).label("app", "db").req(800, 0).node("n1").obj(),
            make_pod("free").priority(3).req(800, 0).node("n2").obj(),
        ],
    );
    let pdb = PodDisruptionBudget {
        namespace: "default".into(),
        name: "db".into(),
        selector: crate::model::LabelSelector::from_match_labels([("app", "db")]),
        disruptions_allowed: 0,
        disrupted_pods: vec![],
    };
    let (node, victims, _) = preempt(make_pod("p").priority(10).req(600, 0).obj(), &snap, std::slice::from_ref(&pdb));
    assert_eq!((node.as_deref(), victims), (Some("n2"), vec!["free".to_string()]));
    // Without the PDB the lower-priority pod on n1 is the victim.
    let (node, _, _) = preempt(make_pod("p").priority(10).req(600, 0).obj(), &snap, &[]);
    assert_eq!(node.as_deref(), Some("n1"));
}

#[test]
fn pick_one_criteria() {
    let v = |prio: i32, start: i64| Arc::new(make_pod("v").priority(prio).start(start).info());
    let c = |idx: usize, victims: Vec<Arc<PodInfo>>, pdb: usize| Candidate {
        node_index: idx,
        victims: victims.into(),
        num_pdb_violations: pdb,
    };
    // fewest PDB violations first
    assert_eq!(pick_one(&[c(0, vec![v(1, 0)], 1), c(1, vec![v(9, 0)], 0)]), Some(1));
    // lowest highest-priority victim
    assert_eq!(pick_one(&[c(0, vec![v(5, 0)], 0), c(1, vec![v(3, 0), v(3, 0)], 0)]), Some(1));
    // smallest sum of priorities
    assert_eq!(pick_one(&[c(0, vec![v(3, 0), v(2, 0)], 0), c(1, vec![v(3, 0), v(1, 0)], 0)]), Some(1));
    // fewest victims
    assert_eq!(pick_one(&[c(0, vec![v(3, 0), v(3, 0)], 0), c(1, vec![v(3, 0)], 0)]), Some(1));
    // latest start time of the top-priority victims
    assert_eq!(pick_one(&[c(0, vec![v(3, 10)], 0), c(1, vec![v(3, 20)], 0)]), Some(1));
    // full tie: first
    assert_eq!(pick_one(&[c(0, vec![v(3, 10)], 0), c(1, vec![v(3, 10)], 0)]), Some(0));
}

/// Upstream's way, criterion by criterion: keep the best on each in turn.
fn pick_one_by_narrowing(candidates: &[Candidate]) -> Option<usize> {
    let top = |c: &Candidate| c.victims.first().map(|v| v.pod.priority).unwrap_or(0);
    type Criterion<'a> = Box<dyn Fn(&Candidate) -> i64 + 'a>;
    let criteria: [Criterion; 5] = [
        Box::new(|c| -(c.num_pdb_violations as i64)),
        Box::new(move |c| -(top(c) as i64)),
        Box::new(|c| -c.victims.iter().map(|v| v.pod.priority as i64 + i32::MAX as i64 + 1).sum::<i64>()),
        Box::new(|c| -(c.victims.len() as i64)),
        Box::new(move |c| {
            c.victims.iter().filter(|v| v.pod.priority == top(c)).map(|v| v.pod.start_ms.unwrap_or(i64::MAX)).min().unwrap_or(i64::MAX)
        }),
    ];
    let mut pool: Vec<usize> = (0..candidates.len()).collect();
    for f in &criteria {
        let best = pool.iter().map(|&i| f(&candidates[i])).max()?;
        pool.retain(|&i| f(&candidates[i]) == best);
    }
    pool.first().copied()
}

#[test]
fn pick_one_agrees_with_narrowing_criterion_by_criterion() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
    for round in 0..500 {
        let candidates: Vec<Candidate> = (0..rng.random_range(1..12))
            .map(|i| {
                let mut victims: Vec<Arc<PodInfo>> = (0..rng.random_range(1..4))
                    .map(|_| {
                        let mut p = make_pod("v").priority(rng.random_range(0..3));
                        if rng.random_bool(0.8) {
                            p = p.start(rng.random_range(0..3));
                        }
                        Arc::new(p.info())
                    })
                    .collect();
                sort_by_importance(&mut victims);
                Candidate { node_index: i, victims: victims.into(), num_pdb_violations: rng.random_range(0..2) }
            })
            .collect();
        assert_eq!(pick_one(&candidates), pick_one_by_narrowing(&candidates), "round {round}");
    }
    assert_eq!(pick_one(&[]), None);
}

#[test]
fn eligibility_with_nominated_node() {
    // A lower-priority pod on the nominated node that is terminating because of
    // an earlier preemption: wait for it instead of preempting again.
    let snap = snapshot(vec![node("n1")], vec![make_pod("victim").priority(1).req(900, 0).preempted().node("n1").obj()]);
    let (chosen, _, msg) = preempt(make_pod("p").priority(10).req(600, 0).nominated("n1").obj(), &snap, &[]);
    assert_eq!(chosen, None);
    assert!(msg.ends_with("preemption: not eligible due to a terminating pod on the nominated node."), "{msg}");
    // Terminating for another reason: preemption goes ahead.
    let snap = snapshot(vec![node("n1")], vec![make_pod("other").priority(1).req(900, 0).terminating().node("n1").obj()]);
    let (chosen, _, _) = preempt(make_pod("p").priority(10).req(600, 0).nominated("n1").obj(), &snap, &[]);
    assert_eq!(chosen.as_deref(), Some("n1"));
}

#[test]
fn missing_start_time_counts_as_now() {
    let v = |start: Option<i64>| {
        let mut p = make_pod("v").priority(3);
        if let Some(s) = start {
            p = p.start(s);
        }
        Arc::new(p.info())
    };
    let c = |idx: usize, victims: Vec<Arc<PodInfo>>| Candidate { node_index: idx, victims: victims.into(), num_pdb_violations: 0 };
    // A victim that never started is "latest": that node wins.
    assert_eq!(pick_one(&[c(0, vec![v(Some(10))]), c(1, vec![v(None)])]), Some(1));
}

#[test]
fn victims_sort_most_important_first() {
    let pod = |name: &str, prio: i32, start: Option<i64>| {
        let p = make_pod(name).priority(prio);
        Arc::new(
            match start {
                Some(ms) => p.start(ms),
                None => p,
            }
            .info(),
        )
    };
    let mut v = vec![
        pod("late", 5, Some(300)),
        pod("unstarted", 5, None),
        pod("high", 9, Some(900)),
        pod("early", 5, Some(100)),
        pod("low", 1, Some(0)),
        pod("early-too", 5, Some(100)),
    ];
    sort_by_importance(&mut v);
    let names: Vec<&str> = v.iter().map(|p| p.pod.name.as_str()).collect();
    // Ties keep their order: the sort is stable (upstream sorts such short lists by insertion, also stable).
    assert_eq!(names, ["high", "early", "early-too", "late", "unstarted", "low"]);
}

/// Upstream TestCallExtenders and TestPreempt's extender cases: n1 and n2
/// each need one victim; without extenders n1 is chosen (its victim is the
/// least important).
mod extenders {
    use super::*;
    use crate::framework::{Extender, ExtenderError, Victims};

    type Answer = fn(&BTreeMap<String, Victims>) -> Result<BTreeMap<String, Victims>, ExtenderError>;

    struct Narrow {
        answer: Answer,
        ignorable: bool,
    }
    impl Extender for Narrow {
        fn name(&self) -> &str {
            "http://narrow"
        }
        fn supports_preemption(&self) -> bool {
            true
        }
        fn is_ignorable(&self) -> bool {
            self.ignorable
        }
        fn process_preemption(
            &self,
            _: &Pod,
            candidates: &BTreeMap<String, Victims>,
            _: &dyn Fn(&str) -> Option<Arc<crate::cache::NodeInfo>>,
        ) -> Result<BTreeMap<String, Victims>, ExtenderError> {
            (self.answer)(candidates)
        }
    }

    fn run(extenders: Vec<(Answer, bool)>) -> (Option<String>, String) {
        let snap = snapshot(
            vec![node("n1"), node("n2")],
            vec![make_pod("low").priority(1).req(800, 0).node("n1").obj(), make_pod("mid").priority(5).req(800, 0).node("n2").obj()],
        );
        let mut f = framework();
        f.extenders =
            extenders.into_iter().map(|(answer, ignorable)| Arc::new(Narrow { answer, ignorable }) as Arc<dyn Extender>).collect();
        let mut runner = CycleRunner::new(0, 1);
        let pi = Arc::new(PodInfo::new(make_pod("p").priority(10).req(600, 0).obj()));
        let mut state = CycleState::new();
        let Err(ScheduleError::Fit(mut fe)) = runner.schedule_pod(&f, &mut state, &pi, &snap, &NoNominations) else {
            panic!("fits nowhere")
        };
        let r = runner.run_post_filter(&f, &state, &pi, &snap, &[], &NoNominations, &mut fe);
        (r.and_then(|r| r.nominated_node).filter(|n| !n.is_empty()), fe.diagnosis.post_filter_msg)
    }

    fn only_n2(c: &BTreeMap<String, Victims>) -> Result<BTreeMap<String, Victims>, ExtenderError> {
        Ok(c.iter().filter(|(n, _)| *n == "n2").map(|(n, v)| (n.clone(), v.clone())).collect())
    }
    fn none(_: &BTreeMap<String, Victims>) -> Result<BTreeMap<String, Victims>, ExtenderError> {
        Ok(BTreeMap::new())
    }
    fn fails(_: &BTreeMap<String, Victims>) -> Result<BTreeMap<String, Victims>, ExtenderError> {
        Err(ExtenderError::Replied("preempt failed".into()))
    }
    fn no_victims(c: &BTreeMap<String, Victims>) -> Result<BTreeMap<String, Victims>, ExtenderError> {
        Ok(c.keys().map(|n| (n.clone(), Victims::default())).collect())
    }

    #[test]
    fn extenders_narrow_preemptions_candidates() {
        assert_eq!(run(vec![]).0.as_deref(), Some("n1"), "without extenders");
        let (node, msg) = run(vec![(only_n2, false)]);
        assert_eq!(node.as_deref(), Some("n2"), "an extender allows only n2, otherwise n1 would have been chosen");
        assert_eq!(msg, "preemption: found a potential placement for pod on node n2, preempting 1 victims");
        assert_eq!(run(vec![(none, false)]), (None, "preemption: no candidate node for preemption".into()), "no preemption allowed");
        assert_eq!(run(vec![(fails, false)]), (None, "preemption: preempt failed".into()), "an error that is not ignorable");
        assert_eq!(run(vec![(fails, true), (only_n2, false)]).0.as_deref(), Some("n2"), "an ignorable error is skipped");
        assert_eq!(
            run(vec![(no_victims, false)]),
            (None, "preemption: expected at least one victim pod on node \"n1\"".into()),
            "a node without victims"
        );
        assert_eq!(run(vec![(no_victims, true)]).1, "preemption: no candidate node for preemption", "ignorable: its nodes dropped");
    }
}
