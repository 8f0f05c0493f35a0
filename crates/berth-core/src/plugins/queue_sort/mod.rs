//! PrioritySort: higher priority first, then earlier queue timestamp.

use std::sync::Arc;

use crate::framework::{Plugin, QueuedPodInfo};

pub const NAME: &str = "PrioritySort";

pub struct PrioritySort;

pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(PrioritySort))
}

#[crate::plugin]
impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        let (p1, p2) = (a.pod_info.pod.priority, b.pod_info.pod.priority);
        p1 > p2 || (p1 == p2 && a.timestamp < b.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::make_pod;

    #[test]
    fn less() {
        let q = |prio: i32, ts: i64| QueuedPodInfo::new(Arc::new(make_pod("p").priority(prio).info()), ts);
        // (a, b, a before b)
        let table = [
            (q(10, 5), q(1, 0), true),
            (q(1, 0), q(10, 5), false),
            (q(1, 0), q(1, 5), true),
            (q(1, 5), q(1, 0), false),
            (q(1, 5), q(1, 5), false),
        ];
        for (a, b, want) in table {
            assert_eq!(PrioritySort.less(&a, &b), want);
        }
    }
}
