//! Batch: pods labelled `example.berth.dev/batch: NAME` and annotated
//! `example.berth.dev/batch-size: "N"` start together. Each one, once placed,
//! waits at Permit (reserved on its node, not blocking other pods) until N of
//! its batch are waiting; the last to arrive lets them all go on to binding.
//! A pod still waiting after `timeoutSeconds` (args, default 30) is rejected:
//! its reservation is released and it goes back to the queue.
//!
//! This shows the Permit extension point and [`WaitingPods`]. For gangs in
//! production, Berth's GangScheduling and Coscheduling plugins place a whole
//! group in one cycle and never hold capacity while waiting.
use std::time::Duration;

use berth::framework::WaitingPods;
use berth::prelude::*;

pub const NAME: &str = "Batch";
pub const BATCH: &str = "example.berth.dev/batch";
pub const SIZE: &str = "example.berth.dev/batch-size";

/// `pluginConfig` args.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Args {
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    30
}

impl Default for Args {
    fn default() -> Args {
        Args { timeout_seconds: default_timeout() }
    }
}

pub struct Batch {
    timeout: Duration,
}

impl Batch {
    pub fn new(args: &PluginArgs, _handle: &Handle) -> Result<Batch, PluginError> {
        let args: Args = args.decode()?;
        Ok(Batch { timeout: Duration::from_secs(args.timeout_seconds) })
    }
}

/// The pod's batch and its size; a size that is not a positive number is 1.
fn batch_of(pod: &PodInfo) -> Option<(&str, usize)> {
    let name = pod.pod.labels.get(BATCH)?;
    let size = pod.pod.annotations.get(SIZE).and_then(|s| s.parse().ok()).filter(|n| *n > 0).unwrap_or(1);
    Some((name, size))
}

#[berth::plugin]
impl Plugin for Batch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn permit(&self, _state: &mut CycleState, pod: &PodInfo, _node: &str, waiting: &mut WaitingPods) -> (Status, Duration) {
        let Some((batch, size)) = batch_of(pod) else {
            return (Status::success(), Duration::ZERO);
        };
        let ns = &pod.pod.namespace;
        let siblings: Vec<String> = waiting
            .iter()
            .filter(|(_, w)| w.pending.contains_key(NAME) && &w.pod.pod.namespace == ns && batch_of(&w.pod).map(|b| b.0) == Some(batch))
            .map(|(key, _)| key.clone())
            .collect();
        if siblings.len() + 1 < size {
            return (Status::code_only(Code::Wait), self.timeout);
        }
        for key in siblings {
            waiting.allow(&key, NAME);
        }
        (Status::success(), Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth::framework::WaitingPod;
    use berth::testing::make_pod;
    use std::sync::Arc;

    fn member(name: &str, batch: &str) -> PodInfo {
        make_pod(name).label(BATCH, batch).annotation(SIZE, "3").info()
    }

    /// Holds `pod` as the framework does when Permit answers Wait.
    fn hold(waiting: &mut WaitingPods, pod: PodInfo) {
        let key = pod.pod.key();
        waiting.insert(key, WaitingPod { pod: Arc::new(pod), node: "n".into(), pending: [(NAME, (0, 0))].into(), rejected: None });
    }

    #[test]
    fn the_last_of_a_batch_lets_the_others_go() {
        let args = serde_json::json!({"timeoutSeconds": 5});
        let pl = Batch::new(&PluginArgs::new(NAME, Some(&args)), &Handle::default()).unwrap();
        let (mut state, mut waiting) = (CycleState::new(), WaitingPods::default());
        // Alone: through at once.
        assert!(pl.permit(&mut state, &make_pod("solo").info(), "n", &mut waiting).0.is_success());
        for name in ["a", "b"] {
            let (status, timeout) = pl.permit(&mut state, &member(name, "x"), "n", &mut waiting);
            assert_eq!((status.code, timeout), (Code::Wait, Duration::from_secs(5)));
            hold(&mut waiting, member(name, "x"));
        }
        // Another batch's pod waits too, and is not let go by batch x.
        hold(&mut waiting, member("other", "y"));
        assert!(pl.permit(&mut state, &member("c", "x"), "n", &mut waiting).0.is_success());
        let still: Vec<_> = waiting.iter().filter(|(_, w)| !w.pending.is_empty()).map(|(k, _)| k.clone()).collect();
        assert_eq!(still, vec!["default/other".to_string()]);
    }
}
