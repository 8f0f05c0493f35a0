//! Pod data precomputed once per pod and shared by every cycle and node.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::model::{
    ContainerPort, LabelSelector, Labels, Pod, PodAffinityTerm, Requirement, Resource, SelectorOp, WeightedPodAffinityTerm,
};

/// A pod affinity term with its namespaces and selectors resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AffinityTerm {
    /// Namespaces whose pods the term selects: the term's `namespaces`, or the owner's own
    /// namespace when the term has neither `namespaces` nor a `namespaceSelector`.
    pub namespaces: BTreeSet<String>,
    /// The term's `labelSelector`, with `matchLabelKeys` (`In`) and `mismatchLabelKeys` (`NotIn`)
    /// added using the owner pod's label values.
    pub selector: LabelSelector,
    /// The node label whose value names a topology domain, e.g. `topology.kubernetes.io/zone`.
    pub topology_key: String,
    /// Nothing when the term had no namespaceSelector.
    pub namespace_selector: LabelSelector,
}

impl AffinityTerm {
    fn new(owner: &Pod, t: &PodAffinityTerm) -> AffinityTerm {
        let mut selector = t.label_selector.clone();
        // matchLabelKeys / mismatchLabelKeys are merged using the owner's labels.
        if !selector.nothing {
            for k in &t.match_label_keys {
                if let Some(v) = owner.labels.get(k) {
                    selector.requirements.push(Requirement::new(k, SelectorOp::In, &[v]));
                }
            }
            for k in &t.mismatch_label_keys {
                if let Some(v) = owner.labels.get(k) {
                    selector.requirements.push(Requirement::new(k, SelectorOp::NotIn, &[v]));
                }
            }
        }
        let mut namespaces: BTreeSet<String> = t.namespaces.iter().cloned().collect();
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.insert(owner.namespace.clone());
        }
        AffinityTerm {
            namespaces,
            selector,
            topology_key: t.topology_key.clone(),
            namespace_selector: t.namespace_selector.clone().unwrap_or_else(LabelSelector::nothing),
        }
    }

    /// Whether `pod` (whose namespace has labels `ns_labels`) is selected by this term.
    pub fn matches(&self, pod: &Pod, ns_labels: Option<&Labels>) -> bool {
        static EMPTY: Labels = Labels::new();
        let ns_ok = self.namespaces.contains(&pod.namespace) || self.namespace_selector.matches(ns_labels.unwrap_or(&EMPTY));
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// A preferred pod (anti-)affinity term, resolved, with its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedAffinityTerm {
    /// `weight` from the spec (1..=100 in the API).
    pub weight: i32,
    /// The resolved term.
    pub term: AffinityTerm,
}

/// A pod plus everything the plugins would otherwise recompute per node.
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// The pod object.
    pub pod: Arc<Pod>,
    /// Effective requests ([`Pod::requests`]), what fit is checked with: milli-CPU, bytes of memory
    /// and ephemeral storage, and scalar resources in their own units.
    pub requests: Resource,
    /// Requests with the 100m / 200Mi defaults, for scoring.
    pub non_zero_requests: Resource,
    /// Required pod affinity (`podAffinity.requiredDuringSchedulingIgnoredDuringExecution`).
    pub required_affinity_terms: Vec<AffinityTerm>,
    /// Required pod anti-affinity (`podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution`).
    pub required_anti_affinity_terms: Vec<AffinityTerm>,
    /// Preferred pod affinity (`podAffinity.preferredDuringSchedulingIgnoredDuringExecution`).
    pub preferred_affinity_terms: Vec<WeightedAffinityTerm>,
    /// Preferred pod anti-affinity (`podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution`).
    pub preferred_anti_affinity_terms: Vec<WeightedAffinityTerm>,
    /// Container ports with a host port, from containers and init containers.
    pub host_ports: Vec<ContainerPort>,
    /// Hash of namespace and name, for cheap identity checks.
    pub key_hash: u64,
    /// `pod.priority`, here so that priority checks over many pods
    /// (nominations, preemption victims) read one object per pod, not two.
    pub priority: i32,
}

fn key_hash(namespace: &str, name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    namespace.hash(&mut h);
    name.hash(&mut h);
    h.finish()
}

fn weighted(owner: &Pod, terms: &[WeightedPodAffinityTerm]) -> Vec<WeightedAffinityTerm> {
    terms.iter().map(|w| WeightedAffinityTerm { weight: w.weight, term: AffinityTerm::new(owner, &w.term) }).collect()
}

impl PodInfo {
    /// Precomputes everything above from `pod`.
    pub fn new(pod: Pod) -> PodInfo {
        PodInfo::from_arc(Arc::new(pod))
    }

    /// As [`PodInfo::new`], for a pod that is already shared.
    pub fn from_arc(pod: Arc<Pod>) -> PodInfo {
        let aff = &pod.affinity;
        let required_affinity_terms =
            aff.pod_affinity.as_ref().map(|a| a.required.iter().map(|t| AffinityTerm::new(&pod, t)).collect()).unwrap_or_default();
        let required_anti_affinity_terms =
            aff.pod_anti_affinity.as_ref().map(|a| a.required.iter().map(|t| AffinityTerm::new(&pod, t)).collect()).unwrap_or_default();
        let preferred_affinity_terms = aff.pod_affinity.as_ref().map(|a| weighted(&pod, &a.preferred)).unwrap_or_default();
        let preferred_anti_affinity_terms = aff.pod_anti_affinity.as_ref().map(|a| weighted(&pod, &a.preferred)).unwrap_or_default();
        let host_ports = pod
            .init_containers
            .iter()
            .chain(pod.containers.iter())
            .flat_map(|c| c.ports.iter())
            .filter(|p| p.host_port > 0)
            .cloned()
            .collect();
        PodInfo {
            requests: pod.requests(),
            non_zero_requests: pod.non_zero_requests(),
            required_affinity_terms,
            required_anti_affinity_terms,
            preferred_affinity_terms,
            preferred_anti_affinity_terms,
            host_ports,
            key_hash: key_hash(&pod.namespace, &pod.name),
            priority: pod.priority,
            pod,
        }
    }

    /// Whether this pod, nominated to a node, must be counted there when
    /// filtering `pod`: it has equal or higher priority and is another pod.
    pub fn counts_as_nominated_for(&self, pod: &PodInfo) -> bool {
        self.priority >= pod.priority && !self.same_pod(pod)
    }

    /// Same namespace and name (the hash settles almost every comparison).
    pub fn same_pod(&self, other: &PodInfo) -> bool {
        Arc::ptr_eq(&self.pod, &other.pod)
            || (self.key_hash == other.key_hash && self.pod.name == other.pod.name && self.pod.namespace == other.pod.namespace)
    }

    /// This pod as bound to `node`, reusing everything already computed.
    pub fn on_node(&self, node: &str) -> PodInfo {
        let mut pod = (*self.pod).clone();
        pod.node_name = Some(node.to_string());
        pod.nominated_node_name = None;
        PodInfo { pod: Arc::new(pod), ..self.clone() }
    }

    /// Whether the spec has a `podAffinity` or `podAntiAffinity` section (required or preferred).
    pub fn has_affinity(&self) -> bool {
        let a = &self.pod.affinity;
        a.pod_affinity.is_some() || a.pod_anti_affinity.is_some()
    }

    /// Whether the pod has required anti-affinity terms, which can keep other pods off its domain.
    pub fn has_required_anti_affinity(&self) -> bool {
        !self.required_anti_affinity_terms.is_empty()
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        self.pod.key()
    }
}
