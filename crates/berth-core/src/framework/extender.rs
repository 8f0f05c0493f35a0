//! Scheduler extenders as the scheduling core sees them: services outside
//! the scheduler that filter and score nodes, bind pods and narrow
//! preemption, configured in `KubeSchedulerConfiguration.extenders`. The
//! core decides when each is called and what its answer does, exactly as
//! kube-scheduler does (`docs/research/extenders-1.37.md`); how a call
//! reaches the extender (HTTP, with its deadline) is the runtime's
//! [`Extender`] implementation, so the core does no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::types::PodInfo;
use crate::cache::NodeInfo;
use crate::model::Pod;

/// Why an extender's call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtenderError {
    /// The call did not complete or its reply could not be read: refused,
    /// timed out, a status other than 200, a body that is not the reply.
    /// The text is the runtime's (upstream's where it can be: `failed filter
    /// with extender at URL http://x/filter, code 500`).
    #[error("{0}")]
    Call(String),
    /// The extender answered with an error of its own (its `Error` field),
    /// kept verbatim.
    #[error("{0}")]
    Replied(String),
    /// A filter reply named a node that was not among those sent.
    #[error("extender {extender:?} claims a filtered node {node:?} which is not found in the input node list")]
    UnknownNode {
        /// The extender (its URL prefix).
        extender: String,
        /// The node it named.
        node: String,
    },
}

/// An extender's filter answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterResult {
    /// The nodes that pass, by name; each must be one of those sent.
    pub nodes: Vec<String>,
    /// Nodes that fail, with why; preemption may help them.
    pub failed: BTreeMap<String, String>,
    /// Nodes that fail, with why; preemption cannot help them.
    pub failed_and_unresolvable: BTreeMap<String, String>,
}

/// The pods preemption would evict on one node.
#[derive(Debug, Clone, Default)]
pub struct Victims {
    /// The victims, most important first.
    pub pods: Vec<Arc<PodInfo>>,
    /// How many PodDisruptionBudgets evicting them violates.
    pub num_pdb_violations: i64,
}

/// A scheduler extender, as the runtime reaches it. Every call blocks the
/// scheduling (or binding) cycle that makes it, so an implementation must
/// end each call within the extender's `httpTimeout`. An extender says what
/// it does with the `is_*` methods (all `false` by default); the core calls
/// only the methods of what it does.
pub trait Extender: Send + Sync {
    /// The extender's name: its URL prefix, as configured.
    fn name(&self) -> &str;
    /// Whether it filters (has a `filterVerb`).
    fn is_filter(&self) -> bool {
        false
    }
    /// Whether it scores (has a `prioritizeVerb`).
    fn is_prioritizer(&self) -> bool {
        false
    }
    /// Its scores' weight.
    fn weight(&self) -> i64 {
        1
    }
    /// Whether it binds (has a `bindVerb`).
    fn is_binder(&self) -> bool {
        false
    }
    /// Whether it takes part in preemption (has a `preemptVerb`).
    fn supports_preemption(&self) -> bool {
        false
    }
    /// Whether a failure of this extender is skipped rather than failing the attempt.
    fn is_ignorable(&self) -> bool {
        false
    }
    /// Whether it wants to hear about `pod` (see [`interested_in`]); by default, every pod.
    fn is_interested(&self, pod: &Pod) -> bool {
        let _ = pod;
        true
    }
    /// Which of `nodes` `pod` may go to.
    fn filter(&self, pod: &Pod, nodes: &[&NodeInfo]) -> Result<FilterResult, ExtenderError> {
        let _ = (pod, nodes);
        Err(self.cannot("filter"))
    }
    /// Scores (0-10, not enforced) for some of `nodes`, by node name.
    fn prioritize(&self, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<(String, i64)>, ExtenderError> {
        let _ = (pod, nodes);
        Err(self.cannot("prioritize"))
    }
    /// Binds `pod` to `node` (the extender creates the Binding).
    fn bind(&self, pod: &Pod, node: &str) -> Result<(), ExtenderError> {
        let _ = (pod, node);
        Err(self.cannot("bind"))
    }
    /// Narrows preemption's candidates: the nodes (a subset of
    /// `candidates`' keys) and victims it accepts. `nodes` resolves the
    /// victims it names to the pods on each node.
    fn process_preemption(
        &self,
        pod: &Pod,
        candidates: &BTreeMap<String, Victims>,
        nodes: &dyn Fn(&str) -> Option<Arc<NodeInfo>>,
    ) -> Result<BTreeMap<String, Victims>, ExtenderError> {
        let _ = (pod, candidates, nodes);
        Err(self.cannot("preempt"))
    }
    /// The error of a call the extender does not take.
    #[doc(hidden)]
    fn cannot(&self, call: &str) -> ExtenderError {
        ExtenderError::Call(format!("extender {:?} does not {call}", self.name()))
    }
}

/// Upstream `IsInterested`: with no managed resources, every pod; else the
/// pods whose containers or init containers request (or limit) one of them.
pub fn interested_in(managed: &[String], pod: &Pod) -> bool {
    managed.is_empty()
        || pod
            .containers
            .iter()
            .chain(&pod.init_containers)
            .any(|c| c.requests.scalar.iter().any(|(name, _)| managed.iter().any(|m| m.as_str() == &**name)))
}

#[cfg(test)]
mod tests;
