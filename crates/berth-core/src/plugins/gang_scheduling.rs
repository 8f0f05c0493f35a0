//! GangScheduling (Kubernetes 1.37, gate GenericWorkload): the pods of a
//! PodGroup (`spec.schedulingGroup.podGroupName`, or scheduler-plugins'
//! `scheduling.x-k8s.io/pod-group` label) are placed all together or not at
//! all. Berth does not place groups yet, and placing their pods one
//! by one would start part of a group that cannot run: until it does, such
//! a pod stays pending with a reason that says so.

use std::sync::Arc;

use crate::framework::Plugin;
use crate::model::Pod;
use crate::plugins::unmodelled::Unmodelled;

/// The plugin's name in a profile.
pub const NAME: &str = "GangScheduling";

/// The label by which a pod joins a scheduler-plugins (Coscheduling) PodGroup,
/// `scheduling.x-k8s.io/v1alpha1`, in its namespace.
pub const POD_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";

/// Why `pod` stays pending, if it is a member of a PodGroup: the native one
/// (`spec.schedulingGroup`) or scheduler-plugins' (its label).
fn scheduling_group(pod: &Pod) -> Option<String> {
    let (group, how) = match (&pod.scheduling_group, pod.labels.get(POD_GROUP_LABEL)) {
        (Some(g), _) => (g, "spec.schedulingGroup"),
        (None, Some(g)) if !g.is_empty() => (g, "label scheduling.x-k8s.io/pod-group"),
        _ => return None,
    };
    Some(format!("pod is a member of PodGroup {group:?} ({how}): Berth does not model gang scheduling yet"))
}

/// The plugin (for now a PreFilter that refuses PodGroup members); it takes no args.
pub fn new(_args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(Unmodelled::new(NAME, scheduling_group)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Snapshot;
    use crate::framework::{Code, CycleState, PodInfo};
    use crate::testing::make_pod;

    #[test]
    fn members_of_a_pod_group_stay_pending_with_a_reason() {
        let plugin = new(None).unwrap();
        let mut member = make_pod("worker-0").obj();
        member.scheduling_group = Some("training".into());
        let (_, s) = plugin.pre_filter(&mut CycleState::default(), &PodInfo::new(member), &Snapshot::default());
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert!(s.message().contains("PodGroup \"training\""), "{}", s.message());
        // scheduler-plugins' PodGroup, which Kubeflow and others create.
        let labelled = make_pod("worker-1").label(POD_GROUP_LABEL, "pytorch-job").obj();
        let (_, s) = plugin.pre_filter(&mut CycleState::default(), &PodInfo::new(labelled), &Snapshot::default());
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert!(s.message().contains("PodGroup \"pytorch-job\" (label scheduling.x-k8s.io/pod-group)"), "{}", s.message());
        let (_, s) = plugin.pre_filter(&mut CycleState::default(), &PodInfo::new(make_pod("alone").obj()), &Snapshot::default());
        assert_eq!(s.code, Code::Skip);
    }
}
