//! The compact node the scheduler works on.

use super::labels::Labels;
use super::pod::Taint;
use super::resource::Resource;

/// An image present on a node (`status.images`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ContainerImage {
    pub names: Vec<String>,
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

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    /// `metadata.annotations`.
    pub annotations: Labels,
    /// `status.conditions` (type and status).
    pub conditions: Vec<NodeCondition>,
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    pub allocatable: Resource,
    pub images: Vec<ContainerImage>,
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
    pub namespace: String,
    pub name: String,
    pub selector: super::labels::LabelSelector,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
    /// Pods already counted as disrupted (`status.disruptedPods`).
    pub disrupted_pods: Vec<String>,
}

/// A namespace's labels, for `namespaceSelector` in pod affinity terms.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
}
