//! The scheduler's own view of Kubernetes objects: compact, precomputed,
//! converted once at the boundary.

pub mod labels;
pub mod node;
pub mod pod;
pub mod quantity;
pub mod resource;

pub use labels::{LabelSelector, Labels, NodeSelector, NodeSelectorTerm, Requirement, SelectorOp};
pub use node::{ContainerImage, Namespace, Node, NodeCondition, PodDisruptionBudget};
pub use pod::*;
pub use quantity::{Quantity, QuantityError};
pub use resource::{Resource, ResourceName};
