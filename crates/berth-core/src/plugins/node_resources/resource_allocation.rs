//! The part of resource scoring both plugins share: per-resource (requested,
//! allocatable) vectors for a pod on a node, fed to a strategy function.

use serde::Deserialize;

use crate::cache::NodeInfo;
use crate::framework::PodInfo;
use crate::model::resource::{is_scalar_resource_name, CPU, EPHEMERAL_STORAGE, MEMORY};

#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceSpec {
    pub name: String,
    #[serde(default = "one")]
    pub weight: i64,
}

/// A scored resource, classified once so the per-node loop does not compare names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Cpu,
    Memory,
    EphemeralStorage,
    /// Extended/hugepages/other: looked up by name.
    Other {
        scalar: bool,
    },
}

pub fn kinds(resources: &[ResourceSpec]) -> Vec<Kind> {
    resources
        .iter()
        .map(|r| match r.name.as_str() {
            CPU => Kind::Cpu,
            MEMORY => Kind::Memory,
            EPHEMERAL_STORAGE => Kind::EphemeralStorage,
            n => Kind::Other { scalar: is_scalar_resource_name(n) },
        })
        .collect()
}

fn one() -> i64 {
    1
}

pub fn default_resources() -> Vec<ResourceSpec> {
    vec![ResourceSpec { name: CPU.into(), weight: 1 }, ResourceSpec { name: MEMORY.into(), weight: 1 }]
}

/// The pod's request for each scored resource. Fit scoring uses requests
/// with the non-zero defaults; BalancedAllocation uses the plain requests.
pub fn pod_requests(pod: &PodInfo, resources: &[ResourceSpec], use_requested: bool) -> Vec<i64> {
    let r = if use_requested { &pod.requests } else { &pod.non_zero_requests };
    resources
        .iter()
        .map(|s| match s.name.as_str() {
            // Non-zero defaults only apply to cpu and memory.
            CPU | MEMORY => r.get(&s.name),
            _ => pod.requests.get(&s.name),
        })
        .collect()
}

/// At most this many resources can be scored (keeps per-node work on the stack).
pub const MAX_SCORED_RESOURCES: usize = 16;

pub fn check_resource_count(resources: &[ResourceSpec]) -> Result<(), String> {
    if resources.len() > MAX_SCORED_RESOURCES {
        return Err(format!("resources: Too many: {}: must have at most {MAX_SCORED_RESOURCES} items", resources.len()));
    }
    Ok(())
}

/// (allocatable, requested-after-placing-the-pod) per resource; (0, 0) for
/// resources the node lacks or extended resources the pod does not ask for.
pub fn allocatable_and_requested(
    node: &NodeInfo,
    resources: &[ResourceSpec],
    kinds: &[Kind],
    pod_requests: &[i64],
    use_requested: bool,
) -> ([i64; MAX_SCORED_RESOURCES], [i64; MAX_SCORED_RESOURCES]) {
    let mut alloc = [0i64; MAX_SCORED_RESOURCES];
    let mut req = [0i64; MAX_SCORED_RESOURCES];
    let requested = if use_requested { &node.requested } else { &node.non_zero_requested };
    let a = node.allocatable();
    for (i, s) in resources.iter().enumerate() {
        let pr = pod_requests[i];
        let name = s.name.as_str();
        let (al, rq) = if pr == 0 && kinds[i] == (Kind::Other { scalar: true }) {
            (0, 0)
        } else {
            match kinds[i] {
                Kind::Cpu => (a.milli_cpu, requested.milli_cpu.saturating_add(pr)),
                Kind::Memory => (a.memory, requested.memory.saturating_add(pr)),
                Kind::EphemeralStorage => (a.ephemeral_storage, node.requested.ephemeral_storage.saturating_add(pr)),
                Kind::Other { .. } => {
                    if a.scalar.iter().any(|(n, _)| &**n == name) {
                        (a.scalar(name), node.requested.scalar(name).saturating_add(pr))
                    } else {
                        (0, 0)
                    }
                }
            }
        };
        if al == 0 {
            continue;
        }
        alloc[i] = al;
        req[i] = rq;
    }
    (alloc, req)
}
