//! NodeDeclaredFeatures (a default Filter since Kubernetes 1.36; GA in 1.37):
//! some pod specs only work on a kubelet new enough to support them, and
//! kubelets list what they support in `status.declaredFeatures`. A pod that
//! needs a feature fits only nodes that declare it. Which features a pod
//! needs is inferred from its spec when it is converted
//! ([`Pod::required_features`]), with upstream's rules (the registry of
//! `k8s.io/component-helpers/nodedeclaredfeatures`):
//!
//! - [`RESTART_ALL_CONTAINERS_ON_CONTAINER_EXITS`]: a container or init
//!   container with a `restartPolicyRules` action `RestartAllContainers`;
//! - [`USER_NAMESPACES_HOST_NETWORK_SUPPORT`]: `hostNetwork: true` with
//!   `hostUsers: false`;
//! - [`VOLUME_BIND_MOUNT_OPTIONS`]: a volume mount with `bindMountOptions`.
//!
//! The registry's other features matter only to pod updates (in-place
//! resize), never to placement.

use std::sync::Arc;

use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::Pod;

/// The plugin's name in a profile.
pub const NAME: &str = "NodeDeclaredFeatures";
/// Upstream's reason, for every node that lacks a feature the pod needs.
pub const ERR_REASON: &str = "node(s) didn't match Pod's required features";

/// Needed by a pod whose containers may restart all of the pod's containers on exit.
pub const RESTART_ALL_CONTAINERS_ON_CONTAINER_EXITS: &str = "RestartAllContainersOnContainerExits";
/// Needed by a pod in a user namespace on the host's network.
pub const USER_NAMESPACES_HOST_NETWORK_SUPPORT: &str = "UserNamespacesHostNetworkSupport";
/// Needed by a pod that sets options on its volumes' bind mounts.
pub const VOLUME_BIND_MOUNT_OPTIONS: &str = "VolumeBindMountOptions";

/// The plugin: PreFilter (Skip for pods that need no feature) and Filter.
pub struct NodeDeclaredFeatures;

/// The plugin; it takes no args.
pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(NodeDeclaredFeatures))
}

/// Whether `node` declares every feature `pod` needs.
fn declares_all(pod: &Pod, declared: &[String]) -> bool {
    pod.required_features.iter().all(|f| declared.iter().any(|d| d == f))
}

/// Retry when a node that now declares everything the pod needs appears
/// (added, or its declared features changed), as upstream's hint.
fn node_change_hint(pod: &Pod, obj: &EventObject) -> QueueingHint {
    let EventObject::Node { old, new: Some(new) } = obj else { return QueueingHint::Queue };
    let before = old.as_ref().is_some_and(|o| declares_all(pod, &o.declared_features));
    if !before && declares_all(pod, &new.declared_features) {
        QueueingHint::Queue
    } else {
        QueueingHint::Skip
    }
}

#[crate::plugin]
impl Plugin for NodeDeclaredFeatures {
    fn name(&self) -> &'static str {
        NAME
    }
    fn filter_is_node_local(&self) -> bool {
        true
    }
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![ClusterEventWithHint::with_hint(
            ClusterEvent::new(EventResource::Node, action::ADD | action::UPDATE_NODE_DECLARED_FEATURE, "NodeDeclaredFeatureChange"),
            node_change_hint,
        )]
    }
    /// Pods that need no feature skip the Filter.
    fn pre_filter(&self, _state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        if pod.pod.required_features.is_empty() {
            (None, Status::skip())
        } else {
            (None, Status::success())
        }
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if declares_all(&pod.pod, &node.node.declared_features) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod, node_info};

    fn needing(features: &[&'static str]) -> PodInfo {
        let mut pod = make_pod("p").obj();
        pod.required_features = features.to_vec();
        PodInfo::new(pod)
    }

    // Cases of upstream's TestNodeDeclaredFeaturesFilter.
    #[test]
    fn a_node_must_declare_every_feature_the_pod_needs() {
        let both = make_node("n").declared_feature(VOLUME_BIND_MOUNT_OPTIONS).declared_feature(RESTART_ALL_CONTAINERS_ON_CONTAINER_EXITS);
        let one = make_node("n").declared_feature(VOLUME_BIND_MOUNT_OPTIONS);
        let table = [
            ("needs nothing", needing(&[]), make_node("n"), true),
            ("declares it", needing(&[VOLUME_BIND_MOUNT_OPTIONS]), one, true),
            ("declares nothing", needing(&[VOLUME_BIND_MOUNT_OPTIONS]), make_node("n"), false),
            ("declares one of two", needing(&[VOLUME_BIND_MOUNT_OPTIONS, USER_NAMESPACES_HOST_NETWORK_SUPPORT]), both, false),
        ];
        for (name, pod, node, fits) in table {
            let s = NodeDeclaredFeatures.filter(&CycleState::default(), &pod, &node_info(node.obj(), vec![]));
            assert_eq!(s.is_success(), fits, "{name}: {s:?}");
            if !fits {
                assert_eq!((s.code, s.message().as_str()), (Code::UnschedulableAndUnresolvable, ERR_REASON), "{name}");
            }
        }
        let (_, s) = NodeDeclaredFeatures.pre_filter(&mut CycleState::default(), &needing(&[]), &Snapshot::default());
        assert_eq!(s.code, Code::Skip);
    }

    #[test]
    fn a_node_that_comes_to_declare_the_feature_requeues_the_pod() {
        let pod = needing(&[VOLUME_BIND_MOUNT_OPTIONS]).pod;
        let bare = Arc::new(make_node("n").obj());
        let declaring = Arc::new(make_node("n").declared_feature(VOLUME_BIND_MOUNT_OPTIONS).obj());
        let update = |old: &Arc<crate::model::Node>, new: &Arc<crate::model::Node>| EventObject::Node {
            old: Some(old.clone()),
            new: Some(new.clone()),
        };
        assert_eq!(node_change_hint(&pod, &update(&bare, &declaring)), QueueingHint::Queue);
        assert_eq!(node_change_hint(&pod, &update(&declaring, &declaring)), QueueingHint::Skip);
        assert_eq!(node_change_hint(&pod, &update(&declaring, &bare)), QueueingHint::Skip);
        assert_eq!(node_change_hint(&pod, &EventObject::Node { old: None, new: Some(bare) }), QueueingHint::Skip);
    }
}
