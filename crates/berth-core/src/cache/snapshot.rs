//! The read-only view one scheduling cycle works on.
//!
//! Node entries are `Arc`s shared with the cache: taking a snapshot copies only
//! the entries that changed since the last one (see `Cache::update_snapshot`),
//! so a cycle costs O(changes), not O(nodes).

use std::collections::HashMap;
use std::sync::Arc;

use super::node_info::NodeInfo;
use crate::model::Labels;

/// The cluster as one scheduling cycle sees it: every node with its pods (assumed ones
/// included) in a fixed order, and namespace labels. Read-only during the cycle; node indexes
/// (in [`NodeToStatus`](crate::framework::NodeToStatus), for instance) are positions in
/// [`Snapshot::nodes`].
#[derive(Clone, Default)]
pub struct Snapshot {
    pub(crate) node_infos: Vec<Arc<NodeInfo>>,
    /// `node_infos[i].generation` at every `i`, kept beside them so that a
    /// pass checking kept results reads one dense column, not each node.
    pub(crate) generations: Vec<u64>,
    pub(crate) index: rustc_hash::FxHashMap<String, usize>,
    /// Changes whenever node indices do (nodes added, removed, reordered).
    pub(crate) layout: u64,
    /// Changes whenever any node entry does: equal values mean the same
    /// nodes (clones included), so a memo synced at one needs no pass.
    pub(crate) epoch: u64,
    /// The entries replaced since recent epochs, while few: a memo synced
    /// at one of them visits those instead of every node.
    pub(crate) journal: Journal,
    pub(crate) have_pods_with_affinity: Vec<usize>,
    pub(crate) have_pods_with_required_anti_affinity: Vec<usize>,
    pub(crate) namespaces: Arc<HashMap<String, Labels>>,
    /// Changes whenever `namespaces` does (for memos keyed on namespace labels).
    pub(crate) namespaces_version: u64,
    pub(crate) image_nodes: Arc<HashMap<String, usize>>,
}

impl Snapshot {
    /// A snapshot straight from node infos (tests, tools).
    pub fn from_node_infos(nodes: Vec<NodeInfo>) -> Snapshot {
        let mut s = Snapshot::default();
        let mut images: HashMap<String, usize> = HashMap::new();
        for n in &nodes {
            for name in n.image_sizes.keys() {
                *images.entry(name.clone()).or_default() += 1;
            }
        }
        s.node_infos = nodes.into_iter().map(Arc::new).collect();
        s.image_nodes = Arc::new(images);
        s.reindex();
        s
    }

    /// The same snapshot with these namespace labels (tests, tools).
    pub fn with_namespaces(mut self, ns: HashMap<String, Labels>) -> Snapshot {
        self.namespaces = Arc::new(ns);
        self.namespaces_version = super::node_info::next_generation();
        self
    }

    pub(crate) fn reindex(&mut self) {
        self.generations = self.node_infos.iter().map(|n| n.generation).collect();
        self.index = self.node_infos.iter().enumerate().map(|(i, n)| (n.node.name.clone(), i)).collect();
        self.layout = super::node_info::next_generation();
        self.epoch = super::node_info::next_generation();
        self.journal = Journal::default();
        self.refresh_affinity_lists();
    }

    /// Starts recording the entries [`Snapshot::set_node_info`] replaces from
    /// here (the cache calls it before bringing changes in).
    pub(crate) fn start_journal(&mut self) {
        let j = &mut self.journal;
        if j.marks.last().is_some_and(|m| m.0 == self.epoch) {
            return;
        }
        if j.marks.len() >= JOURNAL_MARKS {
            j.marks.clear();
            j.changed.clear();
        }
        j.marks.push((self.epoch, j.changed.len()));
    }

    /// The current epoch (see [`Snapshot::changed_since`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The indexes whose entries were replaced since `epoch` (an earlier
    /// [`Snapshot::epoch`] of this snapshot or of the one it was cloned from),
    /// maybe repeated: `Some(&[])` when nothing changed, `None` when this
    /// snapshot no longer knows (then every index may have changed).
    pub fn changed_since(&self, epoch: u64) -> Option<&[usize]> {
        if epoch == self.epoch {
            return Some(&[]);
        }
        let j = &self.journal;
        j.marks.iter().rev().find(|m| m.0 == epoch).map(|m| &j.changed[m.1..])
    }

    pub(crate) fn refresh_affinity_lists(&mut self) {
        self.have_pods_with_affinity.clear();
        self.have_pods_with_required_anti_affinity.clear();
        for (i, n) in self.node_infos.iter().enumerate() {
            if !n.pods_with_affinity.is_empty() {
                self.have_pods_with_affinity.push(i);
            }
            if !n.pods_with_required_anti_affinity.is_empty() {
                self.have_pods_with_required_anti_affinity.push(i);
            }
        }
    }

    /// Every node. From the cache, zones are interleaved as in upstream's node tree, so that a
    /// partial search (`percentageOfNodesToScore`) still sees every zone.
    pub fn nodes(&self) -> &[Arc<NodeInfo>] {
        &self.node_infos
    }

    /// The nodes at `indexes`, in that order, borrowed: the form PreScore,
    /// Score and extenders take node lists in. Borrowing touches no node (a
    /// shared count written on each of 5 000 nodes a cycle is cache misses).
    pub fn nodes_at(&self, indexes: &[usize]) -> Vec<&NodeInfo> {
        indexes.iter().map(|&i| &*self.node_infos[i]).collect()
    }

    /// Every node, borrowed ([`Snapshot::nodes_at`] of every index): what a
    /// test hands PreScore to score every node.
    pub fn node_refs(&self) -> Vec<&NodeInfo> {
        self.node_infos.iter().map(|n| &**n).collect()
    }

    /// The generation of the node at index `idx` (as `nodes()[idx].generation`, without
    /// touching the node).
    #[inline]
    pub fn generation(&self, idx: usize) -> u64 {
        self.generations[idx]
    }

    /// Equal values mean the same node at every index.
    pub fn layout(&self) -> u64 {
        self.layout
    }

    /// How many nodes there are.
    pub fn num_nodes(&self) -> usize {
        self.node_infos.len()
    }

    /// The node named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|&i| &self.node_infos[i])
    }

    /// The index in [`Snapshot::nodes`] of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Nodes hosting at least one pod with (anti-)affinity terms.
    pub fn have_pods_with_affinity(&self) -> impl Iterator<Item = &Arc<NodeInfo>> {
        self.have_pods_with_affinity.iter().map(|&i| &self.node_infos[i])
    }

    /// Nodes hosting at least one pod with required anti-affinity terms.
    pub fn have_pods_with_required_anti_affinity(&self) -> impl Iterator<Item = &Arc<NodeInfo>> {
        self.have_pods_with_required_anti_affinity.iter().map(|&i| &self.node_infos[i])
    }

    /// The labels of namespace `ns` (for `namespaceSelector`); `None` when the namespace is unknown.
    pub fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces.get(ns)
    }

    /// How many nodes have this (normalized) image.
    pub fn image_num_nodes(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// Replaces one node entry in place (the cache brings changed nodes in),
    /// keeping the generation column and the affinity lists in step: a
    /// change costs the node it changes, not a pass over every node.
    pub fn set_node_info(&mut self, idx: usize, ni: Arc<NodeInfo>) {
        self.epoch = super::node_info::next_generation();
        // Recorded only while some epoch is marked (the cache's snapshot).
        let j = &mut self.journal;
        if !j.marks.is_empty() {
            if j.changed.len() < JOURNAL_LIMIT {
                j.changed.push(idx);
            } else {
                *j = Journal::default();
            }
        }
        self.generations[idx] = ni.generation;
        keep_listed(&mut self.have_pods_with_affinity, idx, !ni.pods_with_affinity.is_empty());
        keep_listed(&mut self.have_pods_with_required_anti_affinity, idx, !ni.pods_with_required_anti_affinity.is_empty());
        self.node_infos[idx] = ni;
    }
}

/// Past this many replaced entries a journal is dropped (a pass over every
/// node then costs about as much as visiting the changes).
const JOURNAL_LIMIT: usize = 4096;
/// Past this many epochs marked, a journal starts over.
const JOURNAL_MARKS: usize = 64;

/// Which entries were replaced since which epochs.
#[derive(Clone, Default)]
pub(crate) struct Journal {
    /// (epoch, how much of `changed` came before it), oldest first.
    marks: Vec<(u64, usize)>,
    /// Replaced indexes in replacement order, maybe repeated.
    changed: Vec<usize>,
}

/// Puts `idx` in the sorted `list` or takes it out, as `listed` says.
fn keep_listed(list: &mut Vec<usize>, idx: usize, listed: bool) {
    match (list.binary_search(&idx), listed) {
        (Err(at), true) => list.insert(at, idx),
        (Ok(at), false) => {
            list.remove(at);
        }
        _ => {}
    }
}
