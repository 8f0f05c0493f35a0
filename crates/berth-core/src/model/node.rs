//! The compact node the scheduler works on.

use super::labels::Labels;
use super::pod::Taint;
use super::resource::Resource;

/// An image present on a node (`status.images`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ContainerImage {
    /// `names`: the image's names as the node reports them (tags and digests).
    pub names: Vec<String>,
    /// `sizeBytes`, in bytes; 0 when not reported.
    pub size_bytes: i64,
}

/// One of `status.conditions` of a node: its type and status only (the
/// heartbeat times change every few seconds and decide nothing).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeCondition {
    /// `Ready`, `MemoryPressure`, `DiskPressure`, ...
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
}

/// A node as the scheduler sees it. Converted from the API object; read through
/// [`NodeInfo::node`](crate::cache::NodeInfo::node).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Node {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`: topology keys and `kubernetes.io/hostname` are among them.
    pub labels: Labels,
    /// `metadata.annotations`.
    pub annotations: Labels,
    /// `status.conditions` (type and status).
    pub conditions: Vec<NodeCondition>,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// `status.allocatable` (`status.capacity` when absent): what the node's pods may request in
    /// total.
    pub allocatable: Resource,
    /// `status.images`, for ImageLocality.
    pub images: Vec<ContainerImage>,
    /// `status.declaredFeatures`: the features the node's kubelet says it supports
    /// (NodeDeclaredFeatures).
    pub declared_features: Vec<String>,
}

impl Node {
    /// The status of the condition `kind` (`"True"`, `"False"`, `"Unknown"`), if reported.
    pub fn condition(&self, kind: &str) -> Option<&str> {
        self.conditions.iter().find(|c| c.kind == kind).map(|c| c.status.as_str())
    }
}

/// A PodDisruptionBudget, reduced to what preemption needs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodDisruptionBudget {
    /// `metadata.namespace`: it covers pods of this namespace only.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.selector`: the pods it covers. Absent selects none; empty selects every pod of the
    /// namespace.
    pub selector: super::labels::LabelSelector,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
    /// Pods already counted as disrupted (`status.disruptedPods`).
    pub disrupted_pods: Vec<String>,
}

/// A namespace's labels, for `namespaceSelector` in pod affinity terms.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Namespace {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: Labels,
}
