//! NodePool: a pod annotated `example.berth.dev/pool: X` fits only nodes
//! labelled `example.berth.dev/pool=X`; nodes with a lower
//! `example.berth.dev/cost` annotation score higher.
use berth::prelude::*;

pub const NAME: &str = "NodePool";
pub const POOL: &str = "example.berth.dev/pool";
pub const COST: &str = "example.berth.dev/cost";

/// `pluginConfig` args: a pod without the annotation asks for `defaultPool`.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Args {
    default_pool: Option<String>,
}

pub struct NodePool {
    default_pool: Option<String>,
}

impl NodePool {
    pub fn new(args: &PluginArgs, _handle: &Handle) -> Result<NodePool, PluginError> {
        Ok(NodePool { default_pool: args.decode::<Args>()?.default_pool })
    }
}

#[berth::plugin]
impl Plugin for NodePool {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.pod.annotations.get(POOL).or(self.default_pool.as_ref()) {
            // Evicting pods cannot move a node into a pool: unresolvable.
            Some(want) if node.node.labels.get(POOL) != Some(want) => Status::unresolvable(format!("node(s) are not in pool {want}")),
            _ => Status::success(),
        }
    }

    /// The raw score is the node's cost, or -1 when it has none.
    fn score(&self, _state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let cost = node.node.annotations.get(COST).and_then(|c| c.parse::<i64>().ok()).filter(|c| *c >= 0);
        (cost.unwrap_or(-1), Status::success())
    }

    /// Cheapest 100, dearest 0 (100 when all costs are equal); no cost: 0.
    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        let costs = || scores.iter().map(|s| s.score).filter(|c| *c >= 0);
        let (min, max) = (costs().min().unwrap_or(0), costs().max().unwrap_or(0));
        for s in scores.iter_mut() {
            s.score = match s.score {
                c if c < 0 => 0,
                _ if max == min => MAX_NODE_SCORE,
                c => MAX_NODE_SCORE * (max - c) / (max - min),
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth::testing::{make_node, make_pod, node_info};

    #[test]
    fn filter_and_score() {
        let args = serde_json::json!({"defaultPool": "iron"});
        let pl = NodePool::new(&PluginArgs::new(NAME, Some(&args)), &Handle::default()).unwrap();
        let (state, gold, plain) = (CycleState::new(), make_pod("g").annotation(POOL, "gold").info(), make_pod("p").info());
        // (node's pool, its cost, gold pod's verdict, plain pod's verdict, score)
        let table = [
            ("gold", "1", "", "node(s) are not in pool iron", 100),
            ("gold", "3", "", "node(s) are not in pool iron", 0),
            ("iron", "2", "node(s) are not in pool gold", "", 50),
            ("iron", "none", "node(s) are not in pool gold", "", 0),
        ];
        let mut scores = Vec::new();
        for (i, (pool, cost, for_gold, for_plain, _)) in table.iter().enumerate() {
            let node = node_info(make_node("n").label(POOL, pool).annotation(COST, cost).obj(), vec![]);
            assert_eq!(pl.filter(&state, &gold, &node).message(), *for_gold);
            assert_eq!(pl.filter(&state, &plain, &node).message(), *for_plain);
            scores.push(NodeScore { index: i, score: pl.score(&state, &gold, &node).0 });
        }
        assert!(pl.normalize_score(&state, &gold, &mut scores).is_success());
        assert_eq!(scores.iter().map(|s| s.score).collect::<Vec<_>>(), table.map(|t| t.4));
    }
}
