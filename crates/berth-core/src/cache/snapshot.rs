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
        self.refresh_affinity_lists();
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

    /// Replaces one node entry in place (preemption dry runs work on copies;
    /// the cache brings changed nodes in), keeping the generation column in step.
    pub fn set_node_info(&mut self, idx: usize, ni: Arc<NodeInfo>) {
        self.generations[idx] = ni.generation;
        self.node_infos[idx] = ni;
    }
}
