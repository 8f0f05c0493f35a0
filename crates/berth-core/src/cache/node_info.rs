//! Per-node aggregate state, as upstream's `NodeInfo`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::types::PodInfo;
use crate::model::{Node, Protocol, Resource};

/// A host port in use: (hostIP, protocol, port). Empty IP means 0.0.0.0.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host IP; `0.0.0.0` stands for every address.
    pub ip: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The host port number.
    pub port: i32,
}

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const REGION_LABEL: &str = "topology.kubernetes.io/region";
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// The values of a node's well-known topology labels. Zones and regions are
/// few, so their values are shared between nodes (see [`intern`]) and stay in
/// cache; a hostname is one allocation per node object, shared by its copies.
#[derive(Clone, Debug, Default)]
struct TopologyLabels {
    zone: Option<Arc<str>>,
    region: Option<Arc<str>>,
    hostname: Option<Arc<str>>,
}

impl TopologyLabels {
    fn of(node: &Node) -> TopologyLabels {
        let get = |k: &str| node.labels.get(k).map(String::as_str);
        TopologyLabels {
            zone: get(ZONE_LABEL).map(intern),
            region: get(REGION_LABEL).map(intern),
            hostname: get(HOSTNAME_LABEL).map(Arc::from),
        }
    }
}

/// One shared copy per distinct value, for the first [`INTERNED_VALUES`]
/// values seen (zone and region names); beyond them (a cluster labelling
/// zones oddly) each value gets its own copy, so the table stays bounded.
fn intern(v: &str) -> Arc<str> {
    static VALUES: std::sync::LazyLock<std::sync::Mutex<rustc_hash::FxHashSet<Arc<str>>>> = std::sync::LazyLock::new(Default::default);
    let mut values = VALUES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(kept) = values.get(v) {
        return kept.clone();
    }
    let fresh: Arc<str> = Arc::from(v);
    if values.len() < INTERNED_VALUES {
        values.insert(fresh.clone());
    }
    fresh
}

/// How many distinct topology values [`intern`] shares.
const INTERNED_VALUES: usize = 4096;

/// The host IP that means every address: it conflicts with any IP on the same port and protocol.
pub const DEFAULT_BIND_ALL_HOST_IP: &str = "0.0.0.0";

impl HostPort {
    /// A host port; an empty `ip` becomes `0.0.0.0`.
    pub fn new(ip: &str, protocol: Protocol, port: i32) -> HostPort {
        let ip = if ip.is_empty() { DEFAULT_BIND_ALL_HOST_IP } else { ip };
        HostPort { ip: ip.to_string(), protocol, port }
    }

    /// Upstream `HostPortInfo.CheckConflict`: 0.0.0.0 conflicts with every IP.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == DEFAULT_BIND_ALL_HOST_IP || other.ip == DEFAULT_BIND_ALL_HOST_IP)
    }
}

/// One node with the pods on it and their totals, as upstream's `NodeInfo`:
/// what Filter and Score judge. Plugins get it read-only; the cache and
/// preemption dry runs change copies (every change gets a new `generation`).
///
/// `repr(C)` so the fields every filter and score reads come first, together
/// (about four cache lines): a cycle touches hundreds of nodes that are cold
/// in cache, and memory latency per node is what a cycle costs.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct NodeInfo {
    // Hot fields, inline (copied from `node`).
    /// `spec.unschedulable` (cordoned), copied from `node`.
    pub unschedulable: bool,
    /// What the node's pods may request in total, copied from `node`.
    pub allocatable: Resource,
    /// Sum of the pods' requests.
    pub requested: Resource,
    /// Sum of the pods' requests with non-zero defaults, for scoring: CPU and
    /// memory only, the other amounts stay 0.
    pub non_zero_requested: Resource,
    /// The pods on the node, bound and assumed, in no particular order. Copies made for a check
    /// may have pods added (nominated ones) or left out (preemption victims).
    pub pods: Vec<Arc<PodInfo>>,
    /// The node's taints, copied from `node`.
    pub taints: Vec<crate::model::Taint>,
    /// Host ports the pods use, one entry per container port with a host port.
    pub used_ports: Vec<HostPort>,
    /// The values of the well-known topology labels, copied from `node`
    /// ([`NodeInfo::label`] reads them).
    topology: TopologyLabels,
    // Colder fields.
    /// The node object. Replace it through [`NodeInfo::set_node`], which
    /// also refreshes the copies taken from it (allocatable, taints, the
    /// topology labels [`NodeInfo::label`] reads).
    pub node: Arc<Node>,
    /// The pods of `pods` with pod affinity or anti-affinity ([`PodInfo::has_affinity`]).
    pub pods_with_affinity: Vec<Arc<PodInfo>>,
    /// The pods of `pods` with required anti-affinity terms.
    pub pods_with_required_anti_affinity: Vec<Arc<PodInfo>>,
    /// Image name (as the node reports it) -> size in bytes, for ImageLocality.
    /// Shared: it only changes with the node object, and copies of a
    /// NodeInfo (snapshots, preemption dry runs) should not copy it.
    pub image_sizes: Arc<HashMap<String, i64>>,
    /// Unique across all NodeInfos and all time (a global counter): equal
    /// generations mean identical contents, which lets plugins memoize
    /// per-node work across cycles. Passes over many nodes read it from
    /// `Snapshot::generation` instead, so that unchanged nodes are not loaded.
    pub generation: u64,
}

/// Upstream's image name normalization for pod images: add `:latest` when
/// the last `:` does not come after the last `/` (no tag).
pub fn normalize_image_name(name: &str) -> String {
    let colon = name.rfind(':').map(|i| i as isize).unwrap_or(-1);
    let slash = name.rfind('/').map(|i| i as isize).unwrap_or(-1);
    if colon <= slash {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Generations a thread takes from the global counter at once.
const GENERATION_BLOCK: u64 = 4096;

thread_local! {
    /// This thread's block: (next, end).
    static LOCAL_GENERATIONS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// A number no other call returns, on any thread. Threads take blocks from
/// the global counter: preemption dry runs add and remove pods on two
/// threads at once, and one shared counter made them fight over its cache
/// line (a fifth of a dry run's time).
pub(crate) fn next_generation() -> u64 {
    LOCAL_GENERATIONS.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = GENERATION.fetch_add(GENERATION_BLOCK, std::sync::atomic::Ordering::Relaxed);
            end = next + GENERATION_BLOCK;
        }
        c.set((next + 1, end));
        next
    })
}

/// Asks the CPU to start loading a node's hot fields (a hint; no effect on results).
#[inline(always)]
pub fn prefetch(ni: &NodeInfo) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch instructions never fault and do not read memory
    // architecturally; the pointers are to a live NodeInfo.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = ni as *const NodeInfo as *const i8;
        _mm_prefetch(p, _MM_HINT_T0);
        _mm_prefetch(p.add(64), _MM_HINT_T0);
        _mm_prefetch(p.add(128), _MM_HINT_T0);
        _mm_prefetch(p.add(192), _MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ni;
}

impl NodeInfo {
    /// A node with no pods.
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let mut image_sizes = HashMap::new();
        for img in &node.images {
            for n in &img.names {
                image_sizes.insert(n.clone(), img.size_bytes);
            }
        }
        NodeInfo {
            unschedulable: node.unschedulable,
            allocatable: node.allocatable.clone(),
            taints: node.taints.clone(),
            topology: TopologyLabels::of(&node),
            node,
            pods: Vec::new(),
            pods_with_affinity: Vec::new(),
            pods_with_required_anti_affinity: Vec::new(),
            used_ports: Vec::new(),
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            image_sizes: Arc::new(image_sizes),
            generation: next_generation(),
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// The value of the node's label `key`, as `node.labels.get(key)`. The
    /// well-known topology keys (zone, region, hostname) are answered from a
    /// copy kept with the hot fields: passes over thousands of nodes
    /// (PodTopologySpread, InterPodAffinity) then skip the search of the label
    /// map, whose keys are separate heap strings, a cache miss per comparison.
    pub fn label(&self, key: &str) -> Option<&str> {
        let kept = match key {
            ZONE_LABEL => &self.topology.zone,
            REGION_LABEL => &self.topology.region,
            HOSTNAME_LABEL => &self.topology.hostname,
            _ => return self.node.labels.get(key).map(String::as_str),
        };
        let v = kept.as_deref();
        debug_assert_eq!(v, self.node.labels.get(key).map(String::as_str), "the kept {key} label follows the node");
        v
    }

    /// The `allocatable` field.
    pub fn allocatable(&self) -> &Resource {
        &self.allocatable
    }

    /// Replaces the node object, keeping its pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let pods = std::mem::take(&mut self.pods);
        *self = NodeInfo::new(node);
        for p in pods {
            self.add_pod(p);
        }
    }

    /// Counts `pi` on this node: its requests, host ports and affinity. Duplicates are not
    /// checked. The node gets a new generation.
    pub fn add_pod(&mut self, pi: Arc<PodInfo>) {
        self.requested.add(&pi.requests);
        self.non_zero_requested.milli_cpu = self.non_zero_requested.milli_cpu.saturating_add(pi.non_zero_requests.milli_cpu);
        self.non_zero_requested.memory = self.non_zero_requested.memory.saturating_add(pi.non_zero_requests.memory);
        for p in &pi.host_ports {
            self.used_ports.push(HostPort::new(&p.host_ip, p.protocol, p.host_port));
        }
        if pi.has_affinity() {
            self.pods_with_affinity.push(pi.clone());
        }
        if pi.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity.push(pi.clone());
        }
        self.pods.push(pi);
        self.generation = next_generation();
    }

    /// A copy with only the pods `keep` accepts (a preemption dry run's node
    /// without its candidate victims). The node's own fields are shared, and
    /// the totals are summed from the pods that stay.
    pub fn with_pods_where(&self, keep: impl Fn(&PodInfo) -> bool) -> NodeInfo {
        let mut ni = NodeInfo {
            unschedulable: self.unschedulable,
            allocatable: self.allocatable.clone(),
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            pods: Vec::with_capacity(self.pods.len()),
            taints: self.taints.clone(),
            used_ports: Vec::new(),
            topology: self.topology.clone(),
            node: self.node.clone(),
            pods_with_affinity: Vec::new(),
            pods_with_required_anti_affinity: Vec::new(),
            image_sizes: self.image_sizes.clone(),
            generation: next_generation(),
        };
        for p in self.pods.iter().filter(|p| keep(p)) {
            ni.add_pod(p.clone());
        }
        ni
    }

    /// A copy with `pods` added (a node with the pods nominated to it).
    pub fn with_added(&self, pods: &[&Arc<PodInfo>]) -> NodeInfo {
        let mut ni = self.clone();
        for p in pods {
            ni.add_pod(Arc::clone(p));
        }
        ni
    }

    /// Removes the pod with this namespace/name; returns whether it was there.
    pub fn remove_pod(&mut self, pod: &crate::model::Pod) -> bool {
        // The same object (preemption dry runs) is found without comparing names.
        let same = |p: &Arc<PodInfo>| std::ptr::eq(&*p.pod, pod) || (p.pod.name == pod.name && p.pod.namespace == pod.namespace);
        let by_pointer = self.pods.iter().position(|p| std::ptr::eq(&*p.pod, pod));
        let Some(i) = by_pointer.or_else(|| self.pods.iter().position(same)) else { return false };
        let pi = self.pods.swap_remove(i);
        if pi.has_affinity() {
            self.pods_with_affinity.retain(|p| !same(p));
        }
        if pi.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity.retain(|p| !same(p));
        }
        self.requested.sub(&pi.requests);
        self.non_zero_requested.milli_cpu -= pi.non_zero_requests.milli_cpu;
        self.non_zero_requested.memory -= pi.non_zero_requests.memory;
        for p in &pi.host_ports {
            let hp = HostPort::new(&p.host_ip, p.protocol, p.host_port);
            if let Some(j) = self.used_ports.iter().position(|u| *u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        self.generation = next_generation();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn add_remove_keeps_totals() {
        let mut ni = NodeInfo::new(Arc::new(make_node("n1").capacity(4000, 8 << 30, 110).obj()));
        let p1 = Arc::new(PodInfo::new(make_pod("a").req(100, 1 << 20).host_port(80).obj()));
        let p2 = Arc::new(PodInfo::new(make_pod("b").req(0, 0).obj()));
        ni.add_pod(p1);
        ni.add_pod(p2.clone());
        assert_eq!(ni.requested.milli_cpu, 100);
        assert_eq!(ni.non_zero_requested.milli_cpu, 200);
        assert_eq!(ni.used_ports.len(), 1);
        assert!(ni.remove_pod(&make_pod("a").obj()));
        assert!(!ni.remove_pod(&make_pod("zzz").obj()));
        assert_eq!(ni.requested.milli_cpu, 0);
        assert_eq!(ni.non_zero_requested.milli_cpu, 100);
        assert!(ni.used_ports.is_empty());
        assert_eq!(ni.pods.len(), 1);
    }

    #[test]
    fn kept_topology_labels_answer_as_the_node_does() {
        let node = |zone: &str, host: Option<&str>| {
            let mut n = make_node("n1").label(ZONE_LABEL, zone).label("rack", "r1").obj();
            match host {
                Some(h) => n.labels.insert(HOSTNAME_LABEL.into(), h.into()),
                None => n.labels.remove(HOSTNAME_LABEL),
            };
            Arc::new(n)
        };
        let mut ni = NodeInfo::new(node("zone-a", Some("host-1")));
        ni.add_pod(Arc::new(PodInfo::new(make_pod("a").obj())));
        for key in [ZONE_LABEL, REGION_LABEL, HOSTNAME_LABEL, "rack", "missing"] {
            assert_eq!(ni.label(key), ni.node.labels.get(key).map(String::as_str), "{key}");
        }
        assert_eq!(ni.label(ZONE_LABEL), Some("zone-a"));
        assert_eq!(ni.label(REGION_LABEL), None);
        assert_eq!(ni.label("rack"), Some("r1"));
        // A new node object (labels changed) replaces the kept values, also in
        // the copies a dry run makes.
        ni.set_node(node("zone-b", None));
        let copy = ni.with_pods_where(|_| true);
        for n in [&ni, &copy] {
            assert_eq!(n.label(ZONE_LABEL), Some("zone-b"));
            assert_eq!(n.label(HOSTNAME_LABEL), None);
            assert_eq!(n.pods.len(), 1);
        }
        // Nodes of one zone share one copy of its name.
        let other = NodeInfo::new(node("zone-b", Some("host-2")));
        assert!(Arc::ptr_eq(ni.topology.zone.as_ref().unwrap(), other.topology.zone.as_ref().unwrap()));
    }

    #[test]
    fn host_port_conflicts() {
        let any = HostPort::new("", Protocol::Tcp, 80);
        let one = HostPort::new("10.0.0.1", Protocol::Tcp, 80);
        let two = HostPort::new("10.0.0.2", Protocol::Tcp, 80);
        let udp = HostPort::new("10.0.0.1", Protocol::Udp, 80);
        assert!(any.conflicts(&one));
        assert!(one.conflicts(&any));
        assert!(!one.conflicts(&two));
        assert!(!one.conflicts(&udp));
    }

    #[test]
    fn image_names_normalized() {
        assert_eq!(normalize_image_name("nginx"), "nginx:latest");
        assert_eq!(normalize_image_name("nginx:1.2"), "nginx:1.2");
        assert_eq!(normalize_image_name("localhost:5000/nginx"), "localhost:5000/nginx:latest");
        assert_eq!(normalize_image_name("nginx@sha256:abc"), "nginx@sha256:abc");
    }
}
