//! Per-node results kept from one scheduling cycle to the next.
//!
//! Pods tend to come in runs of the same spec: a Deployment's replicas, a
//! Job's workers, a wave of preemptors. Between two cycles few nodes change,
//! so when the next pod is the same as the last in everything the checks
//! read, a node's verdict from the last cycle still holds if the node did not
//! change. Upstream's opportunistic batching (KEP-5598) rests on the same
//! observation. The results are exactly those a fresh check would give: an
//! entry is used only when every input of the check is provably the same.

use std::sync::Arc;

use smallvec::SmallVec;

use super::cycle_state::CycleState;
use super::runtime::Framework;
use super::types::PodInfo;
use crate::cache::NodeInfo;

/// What a check of one node depends on besides the pod: the node's contents
/// (its generation, unique to them) and the nominated pods added to it (the
/// same objects, in order). The key holds those pods, so their addresses
/// cannot be reused by other pods while it lives.
#[derive(Clone, Debug)]
pub struct NodeVersion {
    generation: u64,
    added: SmallVec<[Arc<PodInfo>; 2]>,
}

impl NodeVersion {
    /// The version of `node` with the nominated pods `added` counted on it, in that order.
    pub fn of(node: &NodeInfo, added: &[&Arc<PodInfo>]) -> NodeVersion {
        NodeVersion { generation: node.generation, added: added.iter().map(|p| Arc::clone(p)).collect() }
    }

    /// Whether `node` with `added` is what this version was taken of: the same generation and the
    /// same pod objects (by address) in the same order.
    pub fn matches(&self, node: &NodeInfo, added: &[&Arc<PodInfo>]) -> bool {
        self.matches_generation(node.generation, added)
    }

    /// As [`NodeVersion::matches`], for a node of this `generation`.
    #[inline]
    pub fn matches_generation(&self, generation: u64, added: &[&Arc<PodInfo>]) -> bool {
        self.generation == generation && self.added.len() == added.len() && self.added.iter().zip(added).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// Results by snapshot node index, each with the `NodeVersion` it was
/// computed for. Used through `begin`, they also belong to one profile and one
/// run of pods with the same filter inputs: an entry from before the run
/// began is never returned.
pub struct NodeMemo<T> {
    /// `FrameworkId::value` of the last pod's profile; 0 for none.
    framework: u64,
    /// The last pod `begin` saw.
    pod: Option<Arc<PodInfo>>,
    /// Counts runs; entries of earlier runs are stale.
    run: u64,
    /// Pods seen in this run so far.
    seen: u32,
    /// The caller's key of this run (`begin_run`); `None`: no run.
    key: Option<u64>,
    entries: Vec<Option<(u64, NodeVersion, T)>>,
}

impl<T> Default for NodeMemo<T> {
    fn default() -> Self {
        NodeMemo { framework: 0, pod: None, run: 0, seen: 0, key: None, entries: Vec::new() }
    }
}

impl<T> NodeMemo<T> {
    /// Readies the memo for a check of `pod` under `fwk` across `num_nodes`
    /// nodes; returns whether it may be used (read and written). It may when
    /// every Filter plugin that runs for the pod is node-local and the pod
    /// has the same filter inputs as the last two: the first two pods of a
    /// run neither read nor write, so pods of alternating specs, or pairs,
    /// pay nothing for results no later pod would use.
    pub fn begin(&mut self, fwk: &Framework, state: &CycleState, pod: &Arc<PodInfo>, num_nodes: usize) -> bool {
        self.begin_run(fwk, pod, fwk.filters_are_node_local(state).then_some(0), num_nodes)
    }

    /// As [`NodeMemo::begin`], for results whose eligibility the caller
    /// decides: `key` is `None` when they may not be kept for this pod, and
    /// otherwise tells apart what they were computed with (a run continues
    /// only while the key, the profile and the pod's filter inputs stay the
    /// same).
    pub fn begin_run(&mut self, fwk: &Framework, pod: &Arc<PodInfo>, key: Option<u64>, num_nodes: usize) -> bool {
        let same = key.is_some()
            && key == self.key
            && self.framework == fwk.id.value()
            && self.pod.as_ref().is_some_and(|p| p.pod.same_filter_inputs(&pod.pod));
        if !same {
            self.run += 1;
            self.seen = 1;
            self.framework = fwk.id.value();
            self.key = key;
            self.pod = key.is_some().then(|| pod.clone());
            return false;
        }
        self.seen = self.seen.saturating_add(1);
        if self.seen < 3 {
            return false;
        }
        self.resize(num_nodes);
        true
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        *self = NodeMemo { run: self.run + 1, ..NodeMemo::default() };
    }

    /// Makes room for `num_nodes` entries, dropping all if the count changed.
    pub fn resize(&mut self, num_nodes: usize) {
        if self.entries.len() != num_nodes {
            self.entries = (0..num_nodes).map(|_| None).collect();
        }
    }

    /// The result for the node at snapshot `index`, if one was stored in this run for the same
    /// [`NodeVersion`] of `node` and `added`.
    pub fn get(&self, index: usize, node: &NodeInfo, added: &[&Arc<PodInfo>]) -> Option<&T> {
        self.get_at(index, node.generation, added)
    }

    /// As [`NodeMemo::get`], for a node of this `generation` (`Snapshot::generation`: the
    /// node itself is not read).
    #[inline]
    pub fn get_at(&self, index: usize, generation: u64, added: &[&Arc<PodInfo>]) -> Option<&T> {
        match self.entries.get(index)? {
            Some((run, v, t)) if *run == self.run && v.matches_generation(generation, added) => Some(t),
            _ => None,
        }
    }

    /// Whether a result of this run may be kept for the node at `index` as of `generation`
    /// (ignoring nominated pods): a hint that the node need not be loaded.
    #[inline]
    pub fn likely_has(&self, index: usize, generation: u64) -> bool {
        matches!(self.entries.get(index), Some(Some((run, v, _))) if *run == self.run && v.generation == generation)
    }

    /// Stores `value` for the node at snapshot `index`, computed for `version`. Ignored when
    /// `index` is beyond the size set by `begin` or `resize`.
    pub fn put(&mut self, index: usize, version: NodeVersion, value: T) {
        if let Some(e) = self.entries.get_mut(index) {
            *e = Some((self.run, version, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{inter_pod_affinity, node_resources::fit};
    use crate::testing::{make_node, make_pod};

    fn framework(with_affinity: bool) -> Framework {
        let mut f = Framework::new("p");
        let fit = fit::new(None).unwrap();
        f.pre_filter = vec![fit.clone()];
        f.filter = vec![fit];
        if with_affinity {
            let ipa = inter_pod_affinity::new(None).unwrap();
            f.pre_filter.push(ipa.clone());
            f.filter.push(ipa);
        }
        f
    }

    fn pod(name: &str, cpu: i64) -> Arc<PodInfo> {
        Arc::new(make_pod(name).req(cpu, 0).info())
    }

    #[test]
    fn entries_hold_for_the_same_node_and_an_equal_pod_only() {
        let f = framework(false);
        let mut node = NodeInfo::new(Arc::new(make_node("n").capacity(4000, 0, 10).obj()));
        let nominated = pod("nominated", 100);
        let mut memo: NodeMemo<&str> = NodeMemo::default();
        let state = CycleState::new();
        // The first two pods of a run neither read nor write.
        assert!(!memo.begin(&f, &state, &pod("a", 100), 1));
        assert!(!memo.begin(&f, &state, &pod("a1", 100), 1));
        assert!(memo.begin(&f, &state, &pod("a2", 100), 1));
        memo.put(0, NodeVersion::of(&node, &[&nominated]), "verdict");
        // A replica (same spec, other name) finds it; the same node with
        // other nominated pods, or after a change, does not.
        assert!(memo.begin(&f, &state, &pod("b", 100), 1));
        assert_eq!(memo.get(0, &node, &[&nominated]), Some(&"verdict"));
        assert_eq!(memo.get(0, &node, &[]), None);
        assert_eq!(memo.get(0, &node, &[&pod("nominated", 100)]), None, "another object with the same name");
        node.add_pod(pod("x", 1));
        assert_eq!(memo.get(0, &node, &[&nominated]), None);
        // A pod of another spec, or another profile, starts afresh.
        memo.put(0, NodeVersion::of(&node, &[]), "verdict");
        assert!(!memo.begin(&f, &state, &pod("c", 200), 1));
        assert!(!memo.begin(&f, &state, &pod("c1", 200), 1));
        assert!(memo.begin(&f, &state, &pod("c2", 200), 1));
        assert_eq!(memo.get(0, &node, &[]), None);
        memo.put(0, NodeVersion::of(&node, &[]), "verdict");
        let other = f.clone();
        assert!(!memo.begin(&other, &state, &pod("d", 200), 1));
        assert!(!memo.begin(&other, &state, &pod("d1", 200), 1));
        assert!(memo.begin(&other, &state, &pod("d2", 200), 1));
        assert_eq!(memo.get(0, &node, &[]), None);
    }

    #[test]
    fn not_used_when_a_filter_looks_beyond_the_node() {
        let f = framework(true);
        let p = pod("a", 100);
        let mut state = CycleState::new();
        let snap = crate::testing::snapshot(vec![make_node("n").obj()], vec![]);
        // A pod without affinity: InterPodAffinity skips itself, so the
        // filters that run are node-local.
        let _ = f.run_pre_filter(&mut state, &p, &snap);
        let mut memo: NodeMemo<()> = NodeMemo::default();
        assert!(!memo.begin(&f, &state, &p, 1));
        assert!(!memo.begin(&f, &state, &p, 1));
        assert!(memo.begin(&f, &state, &p, 1));
        let q: Arc<PodInfo> = Arc::new(make_pod("b").req(100, 0).pod_anti_affinity("app", "x", "zone").info());
        let mut state = CycleState::new();
        let _ = f.run_pre_filter(&mut state, &q, &snap);
        for _ in 0..3 {
            assert!(!memo.begin(&f, &state, &q, 1));
        }
    }
}
