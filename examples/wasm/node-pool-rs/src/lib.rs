//! NodePool as a WebAssembly guest: a pod annotated
//! `example.berth.dev/pool: X` fits only nodes labelled
//! `example.berth.dev/pool=X`; nodes with a lower `example.berth.dev/cost`
//! annotation score higher. The same behaviour and messages as the native
//! plugin of `examples/custom-scheduler/src/node_pool.rs`.
//!
//! Build: `cargo build --release --target wasm32-unknown-unknown`.
use berth_guest::{Args, Filter, Node, NodeScore, Plugin, Pod, Score, Status};

pub const POOL: &str = "example.berth.dev/pool";
pub const COST: &str = "example.berth.dev/cost";

/// `pluginConfig` args: a pod without the annotation asks for `defaultPool`.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NodePoolArgs {
    default_pool: Option<String>,
}

pub struct NodePool {
    default_pool: Option<String>,
}

impl Plugin for NodePool {
    const NAME: &'static str = "NodePool";

    fn new(args: &Args) -> Result<Self, String> {
        Ok(NodePool { default_pool: args.decode::<NodePoolArgs>()?.default_pool })
    }
}

impl Filter for NodePool {
    fn filter(&self, pod: &Pod, node: &Node) -> Status {
        match pod.annotations.get(POOL).or(self.default_pool.as_ref()) {
            // Evicting pods cannot move a node into a pool: unresolvable.
            Some(want) if node.labels.get(POOL) != Some(want) => Status::unresolvable(format!("node(s) are not in pool {want}")),
            _ => Status::success(),
        }
    }
}

impl Score for NodePool {
    /// The raw score is the node's cost, or -1 when it has none.
    fn score(&self, _pod: &Pod, node: &Node) -> (i64, Status) {
        let cost = node.annotations.get(COST).and_then(|c| c.parse::<i64>().ok()).filter(|c| *c >= 0);
        (cost.unwrap_or(-1), Status::success())
    }

    /// Cheapest 100, dearest 0 (100 when all costs are equal); no cost: 0.
    fn normalize_score(&self, _pod: &Pod, scores: &mut [NodeScore<'_>]) -> Status {
        let costs = || scores.iter().map(|s| s.score).filter(|c| *c >= 0);
        let (min, max) = (costs().min().unwrap_or(0), costs().max().unwrap_or(0));
        for s in scores.iter_mut() {
            s.score = match s.score {
                c if c < 0 => 0,
                _ if max == min => 100,
                c => 100 * (max - c) / (max - min),
            };
        }
        Status::success()
    }
}

berth_guest::export!(NodePool);
