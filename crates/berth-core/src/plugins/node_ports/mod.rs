//! NodePorts: a pod's host ports must be free on the node. `0.0.0.0` (or an
//! empty host IP) conflicts with every IP for the same protocol and port.

use std::sync::Arc;

use crate::cache::{HostPort, NodeInfo, Snapshot};
use crate::framework::*;

pub const NAME: &str = "NodePorts";
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";
const STATE_KEY: &str = "PreFilterNodePorts";

pub struct NodePorts;

pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(NodePorts))
}

fn wanted(pod: &PodInfo) -> Vec<HostPort> {
    pod.host_ports.iter().map(|p| HostPort::new(&p.host_ip, p.protocol, p.host_port)).collect()
}

/// Whether none of `want` conflicts with the node's used ports.
pub fn fits_ports(want: &[HostPort], node: &NodeInfo) -> bool {
    !want.iter().any(|w| node.used_ports.iter().any(|u| u.conflicts(w)))
}

#[crate::plugin]
impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn filter_is_node_local(&self) -> bool {
        true
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::with_hint(
                ClusterEvent::new(EventResource::AssignedPod, action::DELETE, "AssignedPodDelete"),
                |pod, obj| {
                    // Only a deleted pod that held one of our host ports helps.
                    let EventObject::Pod { old: Some(old), .. } = obj else { return QueueingHint::Queue };
                    let mine = PodInfo::new(pod.clone());
                    let theirs = PodInfo::new((**old).clone());
                    let clash = wanted(&mine).iter().any(|w| wanted(&theirs).iter().any(|t| t.conflicts(w)));
                    if clash {
                        QueueingHint::Queue
                    } else {
                        QueueingHint::Skip
                    }
                },
            ),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::Node, action::ADD | action::UPDATE, "NodeChange")),
        ]
    }
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snap: &Snapshot) -> (Option<PreFilterResult>, Status) {
        let w = wanted(pod);
        if w.is_empty() {
            return (None, Status::skip());
        }
        state.write(STATE_KEY, w);
        (None, Status::success())
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let owned;
        let want = match state.read::<Vec<HostPort>>(STATE_KEY) {
            Some(w) => w,
            None => {
                owned = wanted(pod);
                &owned
            }
        };
        if fits_ports(want, node) {
            Status::success()
        } else {
            Status::unschedulable(ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use crate::testing::{make_node, make_pod, node_info};

    #[test]
    fn filter() {
        let p = |ip: &str, proto: Protocol, port: i32| make_pod("x").host_port_full(ip, proto, port).obj();
        // (incoming pod, existing pods, expected)
        let table = vec![
            (make_pod("p").obj(), vec![], Code::Success),
            (p("127.0.0.1", Protocol::Udp, 8080), vec![p("127.0.0.1", Protocol::Udp, 9090)], Code::Success),
            (p("127.0.0.1", Protocol::Udp, 8080), vec![p("127.0.0.1", Protocol::Udp, 8080)], Code::Unschedulable),
            (p("127.0.0.2", Protocol::Tcp, 8080), vec![p("127.0.0.1", Protocol::Tcp, 8080)], Code::Success),
            (p("127.0.0.1", Protocol::Tcp, 8080), vec![p("127.0.0.1", Protocol::Udp, 8080)], Code::Success),
            (p("0.0.0.0", Protocol::Tcp, 8080), vec![p("127.0.0.1", Protocol::Tcp, 8080)], Code::Unschedulable),
            (p("127.0.0.1", Protocol::Tcp, 8080), vec![p("", Protocol::Tcp, 8080)], Code::Unschedulable),
            (p("0.0.0.0", Protocol::Udp, 8080), vec![p("127.0.0.1", Protocol::Tcp, 8080)], Code::Success),
            // Pods with several ports (upstream's "second ... port conflict" cases).
            (
                make_pod("p").host_port_full("127.0.0.1", Protocol::Udp, 8080).host_port_full("127.0.0.2", Protocol::Udp, 8080).obj(),
                vec![p("127.0.0.2", Protocol::Udp, 8080)],
                Code::Unschedulable,
            ),
            (
                make_pod("p").host_port_full("10.0.10.10", Protocol::Tcp, 8001).host_port_full("0.0.0.0", Protocol::Tcp, 8001).obj(),
                vec![p("10.0.10.10", Protocol::Tcp, 8001)],
                Code::Unschedulable,
            ),
            (
                make_pod("p").host_port_full("10.0.10.10", Protocol::Tcp, 8001).host_port_full("0.0.0.0", Protocol::Tcp, 8001).obj(),
                vec![p("127.0.0.1", Protocol::Tcp, 8001)],
                Code::Unschedulable,
            ),
            (
                make_pod("p").host_port_full("0.0.0.0", Protocol::Tcp, 8001).host_port_full("0.0.0.0", Protocol::Udp, 8001).obj(),
                vec![p("10.0.10.10", Protocol::Tcp, 8001)],
                Code::Unschedulable,
            ),
            (
                p("0.0.0.0", Protocol::Udp, 8001),
                vec![make_pod("y")
                    .host_port_full("10.0.10.10", Protocol::Tcp, 8001)
                    .host_port_full("10.0.10.10", Protocol::Udp, 8001)
                    .obj()],
                Code::Unschedulable,
            ),
            (
                p("0.0.0.0", Protocol::Sctp, 8001),
                vec![make_pod("y")
                    .host_port_full("10.0.10.10", Protocol::Tcp, 8001)
                    .host_port_full("10.0.10.10", Protocol::Udp, 8001)
                    .obj()],
                Code::Success,
            ),
        ];
        for (i, (pod, existing, code)) in table.into_iter().enumerate() {
            let ni = node_info(make_node("n").obj(), existing);
            let pi = PodInfo::new(pod);
            let mut st = CycleState::new();
            let (_, pre) = NodePorts.pre_filter(&mut st, &pi, &Snapshot::default());
            let s = if pre.is_skip() { Status::success() } else { NodePorts.filter(&st, &pi, &ni) };
            assert_eq!(s.code, code, "case {i}");
            if code != Code::Success {
                assert_eq!(s.message(), ERR_REASON);
            }
        }
    }

    #[test]
    fn a_deleted_pod_requeues_only_if_it_held_a_wanted_port() {
        let events = NodePorts.events_to_register();
        let hint = events.iter().find(|e| e.event.resource == EventResource::AssignedPod).and_then(|e| e.hint.clone()).unwrap();
        let pod = make_pod("p").host_port_full("", Protocol::Tcp, 8080).obj();
        let deleted = |ip: &str, proto, port| EventObject::Pod {
            old: Some(Arc::new(make_pod("x").host_port_full(ip, proto, port).obj())),
            new: None,
        };
        assert_eq!(hint(&pod, &deleted("10.0.0.1", Protocol::Tcp, 8080)), QueueingHint::Queue);
        assert_eq!(hint(&pod, &deleted("10.0.0.1", Protocol::Tcp, 8081)), QueueingHint::Skip);
        assert_eq!(hint(&pod, &deleted("10.0.0.1", Protocol::Udp, 8080)), QueueingHint::Skip);
        assert_eq!(hint(&pod, &EventObject::Pod { old: Some(Arc::new(make_pod("x").obj())), new: None }), QueueingHint::Skip);
    }
}
