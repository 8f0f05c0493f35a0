//! NodeResourcesBalancedAllocation: prefer nodes whose resource usage
//! fractions stay close to each other after placing the pod.

use std::sync::Arc;

use serde::Deserialize;

use super::resource_allocation::*;
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;

pub const NAME: &str = "NodeResourcesBalancedAllocation";
const STATE_KEY: &str = "PreScoreNodeResourcesBalancedAllocation";

#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Args {
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
}

impl Default for Args {
    fn default() -> Self {
        Args { resources: default_resources() }
    }
}

pub struct BalancedAllocation {
    resources: Vec<ResourceSpec>,
    kinds: Vec<Kind>,
}

pub fn new(args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    let a: Args = crate::plugins::decode_args(NAME, args)?;
    check_resource_count(&a.resources)?;
    for r in &a.resources {
        if r.weight != 1 {
            return Err(format!("resources[{}].weight: Invalid value: {}: must be 1", r.name, r.weight));
        }
    }
    Ok(Arc::new(BalancedAllocation { kinds: kinds(&a.resources), resources: a.resources }))
}

/// 1 - standard deviation of the usage fractions (each capped at 1), × 100.
pub fn balanced_score(requested: &[i64], allocatable: &[i64]) -> i64 {
    let mut buf = [0f64; MAX_SCORED_RESOURCES];
    let mut len = 0;
    for (r, a) in requested.iter().zip(allocatable) {
        if *a != 0 && len < MAX_SCORED_RESOURCES {
            buf[len] = (*r as f64 / *a as f64).min(1.0);
            len += 1;
        }
    }
    balance_of(&buf[..len])
}

/// 1 - standard deviation of `fractions`, × 100: 100 for one resource or none.
#[inline]
fn balance_of(fractions: &[f64]) -> i64 {
    let std = match fractions.len() {
        0 | 1 => 0.0,
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            (fractions.iter().map(|f| (f - mean) * (f - mean)).sum::<f64>() / n as f64).sqrt()
        }
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// The score since Kubernetes 1.36: how much placing the pod improves the
/// node's balance. Both balances lie in [50, 100], so their difference in
/// [-50, 50]; it is mapped back to [50, 100] (75: no change; towards 100:
/// the pod evens the node out; towards 50: it tilts it), with Go's integer
/// division, as upstream. `with_pod` is the node's requests with the pod's
/// (`pod`) added. It runs for every node of every cycle: with the usual two
/// resources (cpu and memory) it works on registers, not arrays.
#[inline]
pub fn balance_change_score(with_pod: &[i64], pod: &[i64], allocatable: &[i64]) -> i64 {
    let half = MAX_NODE_SCORE / 2;
    let (mut count, mut w, mut o) = (0, [0f64; 2], [0f64; 2]);
    for ((r, p), a) in with_pod.iter().zip(pod).zip(allocatable) {
        if *a != 0 {
            if count < 2 {
                let a = *a as f64;
                w[count] = (*r as f64 / a).min(1.0);
                o[count] = (r.saturating_sub(*p) as f64 / a).min(1.0);
            }
            count += 1;
        }
    }
    if count > 2 {
        let mut without = [0i64; MAX_SCORED_RESOURCES];
        for (o, (r, p)) in without.iter_mut().zip(with_pod.iter().zip(pod)) {
            *o = r.saturating_sub(*p);
        }
        let without = &without[..with_pod.len().min(MAX_SCORED_RESOURCES)];
        return half + (half + balanced_score(with_pod, allocatable) - balanced_score(without, allocatable)) / 2;
    }
    let (with, without) = if count == 2 { (balance_of(&w), balance_of(&o)) } else { (MAX_NODE_SCORE, MAX_NODE_SCORE) };
    half + (half + with - without) / 2
}

#[crate::plugin]
impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
    fn score_is_node_local(&self) -> bool {
        true
    }
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[&NodeInfo], _snap: &Snapshot) -> Status {
        let reqs = pod_requests(pod, &self.resources, true);
        if reqs.iter().all(|r| *r == 0) {
            // A best-effort pod changes no node's balance.
            return Status::skip();
        }
        state.write(STATE_KEY, reqs);
        Status::success()
    }
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let owned;
        let reqs = match state.read::<Vec<i64>>(STATE_KEY) {
            Some(r) => r,
            None => {
                owned = pod_requests(pod, &self.resources, true);
                &owned
            }
        };
        let n = self.resources.len();
        let (alloc, req) = allocatable_and_requested(node, &self.resources, &self.kinds, reqs, true);
        (balance_change_score(&req[..n], &reqs[..n], &alloc[..n]), Status::success())
    }
}
