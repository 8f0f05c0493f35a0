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

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    pub allocatable: Resource,
    pub images: Vec<ContainerImage>,
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
