//! NodeResourcesFit: the node must have room for the pod's requests
//! (Filter); among nodes that do, score by a strategy: LeastAllocated
//! (spread), MostAllocated (bin-pack) or RequestedToCapacityRatio (a shape).

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use super::resource_allocation::*;
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::resource::is_extended_resource_name;
use crate::model::Pod;
use crate::model::Resource;
use crate::plugins::dynamic_resources::extended::{pod_asks_extended, Delegated, DELEGATED_KEY};
use crate::plugins::dynamic_resources::objects::CLASSES;

pub const NAME: &str = "NodeResourcesFit";
const PRE_FILTER_KEY: &str = "PreFilterNodeResourcesFit";
const PRE_SCORE_KEY: &str = "PreScoreNodeResourcesFit";
/// Shape scores are 0..10 in config, scaled to 0..100.
const MAX_CUSTOM_PRIORITY_SCORE: i64 = 10;
const MAX_UTILIZATION: i64 = 100;

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StrategyType {
    #[default]
    LeastAllocated,
    MostAllocated,
    RequestedToCapacityRatio,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShapePoint {
    pub utilization: i64,
    pub score: i64,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestedToCapacityRatioParam {
    #[serde(default)]
    pub shape: Vec<ShapePoint>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoringStrategy {
    #[serde(rename = "type", default)]
    pub kind: StrategyType,
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
    #[serde(default)]
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatioParam>,
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        ScoringStrategy { kind: StrategyType::LeastAllocated, resources: default_resources(), requested_to_capacity_ratio: None }
    }
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    pub ignored_resources: Vec<String>,
    #[serde(default)]
    pub ignored_resource_groups: Vec<String>,
    #[serde(default)]
    pub scoring_strategy: Option<ScoringStrategy>,
}

pub struct Fit {
    ignored_resources: HashSet<String>,
    ignored_groups: HashSet<String>,
    strategy: ScoringStrategy,
    kinds: Vec<Kind>,
    /// Shape scaled to 0..100 (RequestedToCapacityRatio only).
    shape: Vec<(i64, i64)>,
}

pub fn new(args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    let a: Args = crate::plugins::decode_args(NAME, args)?;
    Ok(Arc::new(Fit::from_args(a)?))
}

impl Fit {
    pub fn from_args(a: Args) -> Result<Fit, String> {
        let strategy = a.scoring_strategy.unwrap_or_default();
        check_resource_count(&strategy.resources)?;
        if strategy.resources.is_empty() {
            return Err("scoringStrategy.resources: Required value: at least one resource is required".into());
        }
        for r in &strategy.resources {
            if !(1..=100).contains(&r.weight) {
                return Err(format!(
                    "scoringStrategy.resources[{}].weight: Invalid value: {}: must be in the range [1, 100]",
                    r.name, r.weight
                ));
            }
        }
        let mut shape = Vec::new();
        if strategy.kind == StrategyType::RequestedToCapacityRatio {
            let pts = strategy.requested_to_capacity_ratio.as_ref().map(|r| r.shape.clone()).unwrap_or_default();
            if pts.is_empty() {
                return Err("scoringStrategy.requestedToCapacityRatio.shape: Required value: at least one point is required".into());
            }
            for (i, p) in pts.iter().enumerate() {
                if !(0..=100).contains(&p.utilization) {
                    return Err(format!(
                        "scoringStrategy.requestedToCapacityRatio.shape[{i}].utilization: Invalid value: {}: not in valid range [0-100]",
                        p.utilization
                    ));
                }
                if !(0..=MAX_CUSTOM_PRIORITY_SCORE).contains(&p.score) {
                    return Err(format!(
                        "scoringStrategy.requestedToCapacityRatio.shape[{i}].score: Invalid value: {}: not in valid range [0-10]",
                        p.score
                    ));
                }
                if i > 0 && p.utilization <= pts[i - 1].utilization {
                    return Err(format!("scoringStrategy.requestedToCapacityRatio.shape[{i}].utilization: Invalid value: {}: utilization values must be sorted in increasing order", p.utilization));
                }
                shape.push((p.utilization, p.score * (MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE)));
            }
        }
        Ok(Fit {
            ignored_resources: a.ignored_resources.into_iter().collect(),
            ignored_groups: a.ignored_resource_groups.into_iter().collect(),
            kinds: kinds(&strategy.resources),
            strategy,
            shape,
        })
    }

    fn strategy_score(&self, requested: &[i64], allocatable: &[i64]) -> i64 {
        let res = &self.strategy.resources;
        match self.strategy.kind {
            StrategyType::LeastAllocated | StrategyType::MostAllocated => {
                let most = self.strategy.kind == StrategyType::MostAllocated;
                let (mut score, mut weights) = (0i64, 0i64);
                for i in 0..requested.len() {
                    if allocatable[i] == 0 {
                        continue;
                    }
                    let s = if most {
                        most_requested_score(requested[i], allocatable[i])
                    } else {
                        least_requested_score(requested[i], allocatable[i])
                    };
                    score += s * res[i].weight;
                    weights += res[i].weight;
                }
                if weights == 0 {
                    0
                } else {
                    score / weights
                }
            }
            StrategyType::RequestedToCapacityRatio => {
                let (mut score, mut weights) = (0i64, 0i64);
                for i in 0..requested.len() {
                    if allocatable[i] == 0 {
                        continue;
                    }
                    let util = if requested[i] > allocatable[i] {
                        MAX_UTILIZATION
                    } else {
                        scaled_ratio(requested[i], MAX_UTILIZATION, allocatable[i])
                    };
                    let s = broken_linear(&self.shape, util);
                    if s > 0 {
                        score += s * res[i].weight;
                        weights += res[i].weight;
                    }
                }
                if weights == 0 {
                    0
                } else {
                    (score as f64 / weights as f64).round() as i64
                }
            }
        }
    }
}

/// `value * scale / divisor` without overflow, for 0 <= value <= divisor and
/// a small positive `scale`: in 64 bits when the product fits (always, for
/// real clusters), else in 128.
fn scaled_ratio(value: i64, scale: i64, divisor: i64) -> i64 {
    match value.checked_mul(scale) {
        Some(p) => p / divisor,
        None => ((value as i128 * scale as i128) / divisor as i128) as i64,
    }
}

pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    scaled_ratio(capacity - requested, MAX_NODE_SCORE, capacity)
}

pub fn most_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    let requested = requested.min(capacity);
    scaled_ratio(requested, MAX_NODE_SCORE, capacity)
}

/// Piecewise-linear interpolation over (utilization, score) points.
pub fn broken_linear(shape: &[(i64, i64)], p: i64) -> i64 {
    for i in 0..shape.len() {
        if p <= shape[i].0 {
            if i == 0 {
                return shape[0].1;
            }
            let (u0, s0) = shape[i - 1];
            let (u1, s1) = shape[i];
            return s0 + (s1 - s0) * (p - u0) / (u1 - u0);
        }
    }
    shape.last().map(|s| s.1).unwrap_or(0)
}

/// The reasons the node cannot take the request: `Too many pods`,
/// `Insufficient <resource>`, in upstream's order.
///
/// `delegated` are the pod's extended resources a DeviceClass backs (what
/// DynamicResources' PreFilter found): on a node whose allocatable has none
/// of such a resource, DynamicResources allocates devices for it instead.
pub fn insufficient_resources(
    req: &Resource,
    node: &NodeInfo,
    ignored: &HashSet<String>,
    ignored_groups: &HashSet<String>,
    delegated: &[String],
) -> Reasons {
    let mut out = Reasons::new();
    let alloc = node.allocatable();
    if node.pods.len() as i64 + 1 > alloc.allowed_pod_number {
        out.push("Too many pods".into());
    }
    if req.milli_cpu == 0 && req.memory == 0 && req.ephemeral_storage == 0 && req.scalar.is_empty() {
        return out;
    }
    let used = &node.requested;
    if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu.saturating_sub(used.milli_cpu) {
        out.push("Insufficient cpu".into());
    }
    if req.memory > 0 && req.memory > alloc.memory.saturating_sub(used.memory) {
        out.push("Insufficient memory".into());
    }
    if req.ephemeral_storage > 0 && req.ephemeral_storage > alloc.ephemeral_storage.saturating_sub(used.ephemeral_storage) {
        out.push("Insufficient ephemeral-storage".into());
    }
    for (name, q) in &req.scalar {
        if *q == 0 {
            continue;
        }
        if is_extended_resource_name(name) {
            let group = name.split('/').next().unwrap_or("");
            if ignored.contains(&**name) || ignored_groups.contains(group) {
                continue;
            }
        }
        if alloc.scalar(name) <= 0 && delegated.iter().any(|d| **d == **name) {
            continue;
        }
        if *q > alloc.scalar(name).saturating_sub(used.scalar(name)) {
            out.push(format!("Insufficient {name}").into());
        }
    }
    out
}

#[crate::plugin]
impl Plugin for Fit {
    fn name(&self) -> &'static str {
        NAME
    }
    fn filter_is_node_local(&self) -> bool {
        true
    }
    fn score_is_node_local(&self) -> bool {
        true
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::AssignedPod,
                action::DELETE | action::UPDATE_POD_SCALE_DOWN,
                "AssignedPodDeleteOrScaleDown",
            )),
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::Node,
                action::ADD | action::UPDATE_NODE_ALLOCATABLE | action::UPDATE_NODE_TAINT | action::UPDATE_NODE_LABEL,
                "NodeChange",
            )),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::UnscheduledPod, action::UPDATE_POD_SCALE_DOWN, "PodScaleDown")),
            // A DeviceClass that starts backing an extended resource turns
            // `Insufficient example.com/gpu` into a request DynamicResources
            // may allocate (upstream's `isSchedulableAfterDeviceClassEvent`,
            // which also skips updates that keep the class's name: Berth
            // queues pods asking for such resources on every class event).
            ClusterEventWithHint::with_hint(
                ClusterEvent::new(EventResource::Object(CLASSES), action::ADD | action::UPDATE, "DeviceClassChange"),
                |pod: &Pod, _: &EventObject| {
                    if pod_asks_extended(pod) {
                        QueueingHint::Queue
                    } else {
                        QueueingHint::Skip
                    }
                },
            ),
        ]
    }
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snap: &Snapshot) -> (Option<PreFilterResult>, Status) {
        state.write(PRE_FILTER_KEY, pod.requests.clone());
        (None, Status::success())
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let req = state.read::<Resource>(PRE_FILTER_KEY).unwrap_or(&pod.requests);
        // Only extended resources are ever delegated: most pods ask for none.
        let delegated = match req.scalar.is_empty() {
            true => &[][..],
            false => state.read::<Delegated>(DELEGATED_KEY).map_or(&[][..], |d| &d.0[..]),
        };
        let reasons = insufficient_resources(req, node, &self.ignored_resources, &self.ignored_groups, delegated);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status::with_reasons(Code::Unschedulable, reasons)
        }
    }
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[&NodeInfo], _snap: &Snapshot) -> Status {
        state.write(PRE_SCORE_KEY, pod_requests(pod, &self.strategy.resources, false));
        Status::success()
    }
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let owned;
        let reqs = match state.read::<Vec<i64>>(PRE_SCORE_KEY) {
            Some(r) => r,
            None => {
                owned = pod_requests(pod, &self.strategy.resources, false);
                &owned
            }
        };
        let n = self.strategy.resources.len();
        let (alloc, req) = allocatable_and_requested(node, &self.strategy.resources, &self.kinds, reqs, false);
        (self.strategy_score(&req[..n], &alloc[..n]), Status::success())
    }
}
