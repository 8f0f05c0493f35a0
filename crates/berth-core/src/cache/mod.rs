//! The scheduler's cache of cluster state: nodes, bound pods, and pods
//! assumed onto a node while their binding is in flight.

pub mod node_info;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::types::PodInfo;
use crate::model::{Labels, Node, Pod};
pub use node_info::{normalize_image_name, HostPort, NodeInfo};
pub use snapshot::Snapshot;

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// Why the cache refused a pod change. Each variant holds the pod's `namespace/name`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// The pod is already known (for `add_pod`: known as bound, not only assumed).
    #[error("pod {0} is already in the cache")]
    PodExists(String),
    /// The pod is not known (for `forget_pod`: not known as assumed).
    #[error("pod {0} is not in the cache")]
    PodNotFound(String),
    /// A pod added as bound has no `spec.nodeName`.
    #[error("pod {0} has no node name")]
    NoNodeName(String),
}

#[derive(Clone, Debug)]
struct PodState {
    node: String,
    assumed: bool,
    info: Arc<PodInfo>,
}

/// The cluster between cycles: nodes, the pods bound to them, pods assumed onto a node while
/// they bind, and namespace labels (upstream's scheduler cache). The engine owns it; each cycle
/// works on a [`Snapshot`] taken from it with [`Cache::update_snapshot`].
#[derive(Default)]
pub struct Cache {
    slots: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
    dirty: Vec<usize>,
    is_dirty: Vec<bool>,
    structure_changed: bool,
    pods: HashMap<String, PodState>,
    /// Pods bound to nodes we have not seen yet (watch order is not guaranteed).
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    namespaces: Arc<HashMap<String, Labels>>,
    namespaces_changed: bool,
    image_nodes: Arc<HashMap<String, usize>>,
    images_changed: bool,
}

fn zone_key(n: &Node) -> String {
    let region = n.labels.get(REGION_LABEL).map(|s| s.as_str()).unwrap_or("");
    let zone = n.labels.get(ZONE_LABEL).map(|s| s.as_str()).unwrap_or("");
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\x00:{zone}")
    }
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache { structure_changed: true, ..Default::default() }
    }

    /// How many nodes it holds.
    pub fn node_count(&self) -> usize {
        self.slots.len()
    }

    /// How many pods it knows, bound or assumed, including pods on nodes it has not seen yet.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The node named `name`, with its pods.
    pub fn node(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|&i| &self.slots[i])
    }

    /// Every node, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<NodeInfo>> {
        self.slots.iter()
    }

    fn mark(&mut self, i: usize) {
        if !self.is_dirty[i] {
            self.is_dirty[i] = true;
            self.dirty.push(i);
        }
    }

    fn slot_mut(&mut self, i: usize) -> &mut NodeInfo {
        self.mark(i);
        Arc::make_mut(&mut self.slots[i])
    }

    fn count_images(&mut self, node: &Node, delta: isize) {
        if node.images.is_empty() {
            return;
        }
        let map = Arc::make_mut(&mut self.image_nodes);
        let mut names: Vec<String> = node.images.iter().flat_map(|i| i.names.iter().cloned()).collect();
        names.sort();
        names.dedup();
        for n in names {
            let e = map.entry(n.clone()).or_default();
            *e = (*e as isize + delta).max(0) as usize;
            if *e == 0 {
                map.remove(&n);
            }
        }
        self.images_changed = true;
    }

    /// Adds a node, with the pods already seen bound to it; a node already known is updated
    /// instead.
    pub fn add_node(&mut self, node: Node) {
        if self.index.contains_key(&node.name) {
            self.update_node(node);
            return;
        }
        let node = Arc::new(node);
        self.count_images(&node, 1);
        let mut ni = NodeInfo::new(node.clone());
        if let Some(pods) = self.orphans.remove(&node.name) {
            for p in pods {
                ni.add_pod(p);
            }
        }
        let i = self.slots.len();
        self.index.insert(node.name.clone(), i);
        self.slots.push(Arc::new(ni));
        self.is_dirty.push(false);
        self.structure_changed = true;
    }

    /// Replaces a node's object, keeping its pods; an unknown node is added.
    pub fn update_node(&mut self, node: Node) {
        let Some(&i) = self.index.get(&node.name) else {
            self.add_node(node);
            return;
        };
        let old = self.slots[i].node.clone();
        self.count_images(&old, -1);
        self.count_images(&node, 1);
        let zone_moved = zone_key(&old) != zone_key(&node);
        self.slot_mut(i).set_node(Arc::new(node));
        if zone_moved {
            self.structure_changed = true;
        }
    }

    /// Removes a node. Its pods stay known (they will be deleted by the API).
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else { return };
        let ni = self.slots.swap_remove(i);
        self.is_dirty.swap_remove(i);
        if i < self.slots.len() {
            let moved = self.slots[i].node.name.clone();
            self.index.insert(moved, i);
        }
        self.dirty.retain(|&d| d < self.slots.len());
        self.count_images(&ni.node, -1);
        if !ni.pods.is_empty() {
            self.orphans.insert(name.to_string(), ni.pods.clone());
        }
        self.structure_changed = true;
    }

    /// Sets a namespace's labels, adding it if unknown.
    pub fn set_namespace(&mut self, name: &str, labels: Labels) {
        Arc::make_mut(&mut self.namespaces).insert(name.to_string(), labels);
        self.namespaces_changed = true;
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        Arc::make_mut(&mut self.namespaces).remove(name);
        self.namespaces_changed = true;
    }

    fn place(&mut self, node: &str, info: Arc<PodInfo>) {
        match self.index.get(node).copied() {
            Some(i) => {
                self.slot_mut(i).add_pod(info);
            }
            None => self.orphans.entry(node.to_string()).or_default().push(info),
        }
    }

    fn unplace(&mut self, node: &str, pod: &Pod) {
        match self.index.get(node).copied() {
            Some(i) => {
                self.slot_mut(i).remove_pod(pod);
            }
            None => {
                if let Some(v) = self.orphans.get_mut(node) {
                    v.retain(|p| !(p.pod.namespace == pod.namespace && p.pod.name == pod.name));
                }
            }
        }
    }

    /// Optimistically places a pod on the node chosen for it, before binding.
    pub fn assume_pod(&mut self, info: Arc<PodInfo>, node: &str) -> Result<(), CacheError> {
        let key = info.key();
        if self.pods.contains_key(&key) {
            return Err(CacheError::PodExists(key));
        }
        self.place(node, info.clone());
        self.pods.insert(key, PodState { node: node.to_string(), assumed: true, info });
        Ok(())
    }

    /// Undoes `assume_pod` after a failed binding.
    pub fn forget_pod(&mut self, key: &str) -> Result<(), CacheError> {
        let st = self.pods.get(key).ok_or_else(|| CacheError::PodNotFound(key.to_string()))?;
        if !st.assumed {
            return Err(CacheError::PodNotFound(key.to_string()));
        }
        let st = self.pods.remove(key).expect("present");
        self.unplace(&st.node, &st.info.pod);
        Ok(())
    }

    /// The binding of an assumed pod was observed exactly as assumed: keep
    /// the assumed entry as the real one (no recomputation).
    pub fn confirm_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let st = self.pods.get_mut(key)?;
        st.assumed = false;
        Some(st.info.clone())
    }

    /// How many pods are assumed (placed by the scheduler, binding not yet observed).
    pub fn assumed_count(&self) -> usize {
        self.pods.values().filter(|s| s.assumed).count()
    }

    /// Every bound pod (not the assumed ones), in no particular order.
    pub fn bound_pods(&self) -> impl Iterator<Item = &Arc<PodInfo>> {
        self.pods.values().filter(|s| !s.assumed).map(|s| &s.info)
    }

    /// Whether the pod with this key is assumed: placed by the scheduler, binding not yet observed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed)
    }

    /// Node a known pod is (or is assumed to be) on.
    pub fn pod_node(&self, key: &str) -> Option<&str> {
        self.pods.get(key).map(|s| s.node.as_str())
    }

    /// A bound pod was observed (informer add). Confirms an assumed pod.
    pub fn add_pod(&mut self, pod: Arc<Pod>) -> Result<(), CacheError> {
        let key = pod.key();
        let node = pod.node_name.clone().ok_or_else(|| CacheError::NoNodeName(key.clone()))?;
        if let Some(st) = self.pods.get(&key).cloned() {
            if st.assumed && st.node == node {
                // Replace the assumed copy with the observed object.
                self.unplace(&st.node, &st.info.pod);
            } else if st.assumed {
                self.unplace(&st.node, &st.info.pod);
            } else {
                return Err(CacheError::PodExists(key));
            }
        }
        let info = Arc::new(PodInfo::from_arc(pod));
        self.place(&node, info.clone());
        self.pods.insert(key, PodState { node, assumed: false, info });
        Ok(())
    }

    /// Replaces the pod with `pod`'s key, bound or assumed, by `pod`; adds it if unknown. `pod`
    /// must have a node name.
    pub fn update_pod(&mut self, pod: Arc<Pod>) -> Result<(), CacheError> {
        let key = pod.key();
        if self.pods.contains_key(&key) {
            self.remove_pod(&pod)?;
        }
        self.add_pod(pod)
    }

    /// Removes the pod with `pod`'s key, bound or assumed.
    pub fn remove_pod(&mut self, pod: &Pod) -> Result<(), CacheError> {
        let key = pod.key();
        let st = self.pods.remove(&key).ok_or(CacheError::PodNotFound(key))?;
        self.unplace(&st.node, &st.info.pod);
        Ok(())
    }

    /// The known pod with this key, bound or assumed.
    pub fn pod_info(&self, key: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(key).map(|s| &s.info)
    }

    /// Brings `snap` up to date, copying only what changed since the last call.
    pub fn update_snapshot(&mut self, snap: &mut Snapshot) {
        if self.structure_changed || snap.node_infos.len() != self.slots.len() {
            snap.node_infos = self.tree_order();
            snap.reindex();
            self.structure_changed = false;
            for &i in &self.dirty {
                self.is_dirty[i] = false;
            }
            self.dirty.clear();
        } else {
            snap.start_journal();
            for &i in &self.dirty {
                self.is_dirty[i] = false;
                let ni = &self.slots[i];
                let pos = snap.index[&ni.node.name];
                snap.set_node_info(pos, ni.clone());
            }
            self.dirty.clear();
        }
        if self.namespaces_changed || !Arc::ptr_eq(&snap.namespaces, &self.namespaces) {
            snap.namespaces = self.namespaces.clone();
            snap.namespaces_version = node_info::next_generation();
            self.namespaces_changed = false;
        }
        if self.images_changed || !Arc::ptr_eq(&snap.image_nodes, &self.image_nodes) {
            snap.image_nodes = self.image_nodes.clone();
            self.images_changed = false;
        }
    }

    /// Nodes interleaved across zones, as upstream's node tree lists them, so
    /// that a partial search (percentageOfNodesToScore) still sees every zone.
    fn tree_order(&self) -> Vec<Arc<NodeInfo>> {
        let mut zones: Vec<(String, Vec<usize>)> = Vec::new();
        let mut zone_idx: HashMap<String, usize> = HashMap::new();
        for (i, n) in self.slots.iter().enumerate() {
            let z = zone_key(&n.node);
            let zi = *zone_idx.entry(z.clone()).or_insert_with(|| {
                zones.push((z, Vec::new()));
                zones.len() - 1
            });
            zones[zi].1.push(i);
        }
        if zones.len() <= 1 {
            return self.slots.clone();
        }
        let mut out = Vec::with_capacity(self.slots.len());
        let mut round = 0;
        while out.len() < self.slots.len() {
            for (_, members) in &zones {
                if let Some(&i) = members.get(round) {
                    out.push(self.slots[i].clone());
                }
            }
            round += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn assume_forget_confirm() {
        let mut c = Cache::new();
        c.add_node(make_node("n1").capacity(1000, 1 << 30, 10).obj());
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        assert_eq!(snap.num_nodes(), 1);

        let p = make_pod("p").req(100, 0).obj();
        c.assume_pod(Arc::new(PodInfo::new(p.clone())), "n1").unwrap();
        assert!(c.is_assumed("default/p"));
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 100);

        c.forget_pod("default/p").unwrap();
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 0);

        // Assume, then the informer confirms the binding.
        c.assume_pod(Arc::new(PodInfo::new(p.clone())), "n1").unwrap();
        let mut bound = p.clone();
        bound.node_name = Some("n1".into());
        c.add_pod(Arc::new(bound.clone())).unwrap();
        assert!(!c.is_assumed("default/p"));
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().pods.len(), 1);
        assert_eq!(c.forget_pod("default/p"), Err(CacheError::PodNotFound("default/p".into())));
        c.remove_pod(&bound).unwrap();
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().pods.len(), 0);
    }

    #[test]
    fn pods_before_their_node() {
        let mut c = Cache::new();
        let mut p = make_pod("p").req(100, 0).obj();
        p.node_name = Some("late".into());
        c.add_pod(Arc::new(p)).unwrap();
        c.add_node(make_node("late").obj());
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("late").unwrap().requested.milli_cpu, 100);
    }

    #[test]
    fn snapshot_is_isolated_from_later_changes() {
        let mut c = Cache::new();
        c.add_node(make_node("n1").obj());
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        let before = snap.clone();
        c.assume_pod(Arc::new(PodInfo::new(make_pod("p").req(5, 0).obj())), "n1").unwrap();
        assert_eq!(before.get("n1").unwrap().requested.milli_cpu, 0);
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 5);
        assert_eq!(before.get("n1").unwrap().requested.milli_cpu, 0);
    }

    /// The snapshot's generation column (read by cycles instead of the nodes) and its lists of
    /// nodes with affinity pods (kept up per changed node, not rebuilt) follow every change:
    /// pods placed and removed, nodes added, updated and removed, entries replaced.
    #[test]
    fn generation_column_and_affinity_lists_follow_the_nodes() {
        fn in_step(snap: &Snapshot) {
            assert_eq!(snap.generations.len(), snap.num_nodes());
            for (i, n) in snap.nodes().iter().enumerate() {
                assert_eq!(snap.generation(i), n.generation, "node {} at {i}", n.name());
            }
            let mut rebuilt = snap.clone();
            rebuilt.refresh_affinity_lists();
            assert_eq!(snap.have_pods_with_affinity, rebuilt.have_pods_with_affinity);
            assert_eq!(snap.have_pods_with_required_anti_affinity, rebuilt.have_pods_with_required_anti_affinity);
        }
        let mut c = Cache::new();
        let mut snap = Snapshot::default();
        for n in ["n1", "n2", "n3"] {
            c.add_node(make_node(n).capacity(1000, 1 << 30, 10).obj());
        }
        c.update_snapshot(&mut snap);
        in_step(&snap);
        let before = snap.generation(snap.index_of("n2").unwrap());
        let first = snap.epoch();
        c.assume_pod(Arc::new(PodInfo::new(make_pod("p").req(100, 0).obj())), "n2").unwrap();
        c.update_snapshot(&mut snap);
        in_step(&snap);
        // The journal names what changed since each earlier epoch.
        let n2 = snap.index_of("n2").unwrap();
        assert_eq!(snap.changed_since(first), Some(&[n2][..]));
        assert_eq!(snap.changed_since(snap.epoch()), Some(&[][..]));
        let second = snap.epoch();
        c.assume_pod(Arc::new(PodInfo::new(make_pod("p2").req(100, 0).obj())), "n1").unwrap();
        c.update_snapshot(&mut snap);
        let n1 = snap.index_of("n1").unwrap();
        assert_eq!(snap.changed_since(first), Some(&[n2, n1][..]));
        assert_eq!(snap.changed_since(second), Some(&[n1][..]));
        c.forget_pod("default/p2").unwrap();
        c.update_snapshot(&mut snap);
        assert_ne!(snap.generation(snap.index_of("n2").unwrap()), before, "a placed pod changes the node");
        c.update_node(make_node("n1").capacity(2000, 1 << 30, 10).obj());
        c.forget_pod("default/p").unwrap();
        c.update_snapshot(&mut snap);
        in_step(&snap);
        // Pods with affinity come to nodes on both sides of one already listed, and go.
        let anti = make_pod("anti").label("app", "db").pod_anti_affinity("app", "db", "kubernetes.io/hostname");
        c.assume_pod(Arc::new(PodInfo::new(anti.obj())), "n2").unwrap();
        c.update_snapshot(&mut snap);
        in_step(&snap);
        assert_eq!(snap.have_pods_with_required_anti_affinity().count(), 1);
        c.assume_pod(Arc::new(PodInfo::new(make_pod("near").pod_affinity("app", "db", "zone").obj())), "n3").unwrap();
        c.assume_pod(Arc::new(PodInfo::new(make_pod("far").pod_affinity("app", "db", "zone").obj())), "n1").unwrap();
        c.update_snapshot(&mut snap);
        in_step(&snap);
        assert_eq!(snap.have_pods_with_affinity().count(), 3);
        c.forget_pod("default/anti").unwrap();
        c.forget_pod("default/far").unwrap();
        c.update_snapshot(&mut snap);
        in_step(&snap);
        assert_eq!(snap.have_pods_with_affinity().map(|n| n.name()).collect::<Vec<_>>(), ["n3"]);
        let before_rebuild = snap.epoch();
        c.remove_node("n3");
        c.add_node(make_node("n4").obj());
        c.update_snapshot(&mut snap);
        in_step(&snap);
        assert_eq!(snap.changed_since(before_rebuild), None, "a rebuild forgets the journal");
        assert_eq!(snap.changed_since(first), None);
        let added = Arc::new(PodInfo::new(make_pod("q").req(10, 0).obj()));
        let copy = Arc::new(snap.nodes()[0].with_added(&[&added]));
        assert_ne!(copy.generation, snap.generation(0));
        snap.set_node_info(0, copy);
        in_step(&snap);
        in_step(&Snapshot::from_node_infos(vec![NodeInfo::new(Arc::new(make_node("m").obj()))]));
    }

    #[test]
    fn zones_are_interleaved() {
        let mut c = Cache::new();
        for (n, z) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")] {
            c.add_node(make_node(n).label(ZONE_LABEL, z).obj());
        }
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        let order: Vec<&str> = snap.nodes().iter().map(|n| n.name()).collect();
        assert_eq!(order, ["a1", "b1", "a2", "b2"]);
        c.remove_node("a1");
        c.update_snapshot(&mut snap);
        assert_eq!(snap.num_nodes(), 3);
        assert!(snap.get("a1").is_none());
    }
}
