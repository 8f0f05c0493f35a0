//! VolumeRestrictions, as upstream's `volumerestrictions`: a claim with the
//! `ReadWriteOncePod` access mode is used by one pod at a time, cluster-wide.
//! Another pod needing it is unschedulable (not unresolvable: preemption
//! may evict the pod holding it, and AddPod/RemovePod keep the count right
//! while it tries).
//!
//! In-tree volumes that conflict between pods on a node (GCE PD, AWS EBS,
//! iSCSI, RBD) are not modelled: a pod using one stays pending with a reason.

use super::objects::*;
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::{Pod, VolumeSource};

/// The plugin's name.
pub const NAME: &str = "VolumeRestrictions";
const STATE_KEY: &str = "PreFilterVolumeRestrictions";
/// A `ReadWriteOncePod` claim the pod needs is in use.
pub const ERR_RWOP_CONFLICT: &str =
    "node(s) unavailable due to PersistentVolumeClaim with ReadWriteOncePod access mode already in-use by another pod";

/// The plugin.
pub struct VolumeRestrictions {
    claims: Store<Claim>,
}

/// The pod's `ReadWriteOncePod` claims (in its namespace) and how many pods use them.
#[derive(Clone)]
struct State {
    namespace: String,
    claims: Vec<String>,
    in_use: i64,
}

impl State {
    /// How many of the pod's claims `other` uses.
    fn uses(&self, other: &Pod) -> i64 {
        if other.namespace != self.namespace {
            return 0;
        }
        other
            .volumes
            .iter()
            .filter(|v| matches!(&v.source, VolumeSource::PersistentVolumeClaim { claim_name, .. } if self.claims.contains(claim_name)))
            .count() as i64
    }
}

impl VolumeRestrictions {
    /// Builds the plugin, declaring the kind it reads.
    pub fn new(handle: &Handle) -> VolumeRestrictions {
        VolumeRestrictions { claims: handle.objects(CLAIMS) }
    }

    fn rwop_claims(&self, pod: &Pod) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for v in &pod.volumes {
            let VolumeSource::PersistentVolumeClaim { claim_name, .. } = &v.source else { continue };
            let c = self.claims.get(&pod.namespace, claim_name).ok_or_else(|| not_found("persistentvolumeclaim", claim_name))?;
            if c.has_access_mode("ReadWriteOncePod") {
                out.push(claim_name.clone());
            }
        }
        Ok(out)
    }
}

#[crate::plugin]
impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::AssignedPod, action::DELETE, "AssignedPodDelete")),
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::Object(CLAIMS),
                action::ADD | action::UPDATE,
                "PersistentVolumeClaimChange",
            )),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::UnscheduledPod, action::UPDATE, "UnscheduledPodUpdate")),
        ]
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        if let Some(reason) =
            super::in_tree(&pod.pod, &["gcePersistentDisk", "awsElasticBlockStore", "iscsi", "rbd"], "volume conflicts between pods")
        {
            return (None, Status::unresolvable(reason));
        }
        if !pod.pod.volumes.iter().any(|v| matches!(v.source, VolumeSource::PersistentVolumeClaim { .. })) {
            return (None, Status::skip());
        }
        let claims = match self.rwop_claims(&pod.pod) {
            Ok(c) => c,
            Err(reason) => return (None, Status::unresolvable(reason)),
        };
        if claims.is_empty() {
            return (None, Status::skip());
        }
        let mut s = State { namespace: pod.pod.namespace.clone(), claims, in_use: 0 };
        s.in_use = snapshot.nodes().iter().flat_map(|n| n.pods.iter()).map(|p| s.uses(&p.pod)).sum();
        state.write_scheduling_only(STATE_KEY, s);
        (None, Status::success())
    }

    fn add_pod(&self, state: &mut CycleState, _pod: &PodInfo, to_add: &std::sync::Arc<PodInfo>, _node: &NodeInfo) -> Status {
        if let Some(s) = state.read_mut::<State>(STATE_KEY) {
            s.in_use += s.uses(&to_add.pod);
        }
        Status::success()
    }

    fn remove_pod(&self, state: &mut CycleState, _pod: &PodInfo, to_remove: &std::sync::Arc<PodInfo>, _node: &NodeInfo) -> Status {
        if let Some(s) = state.read_mut::<State>(STATE_KEY) {
            s.in_use -= s.uses(&to_remove.pod);
        }
        Status::success()
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> Status {
        match state.read::<State>(STATE_KEY) {
            Some(s) if s.in_use > 0 => Status::unschedulable(ERR_RWOP_CONFLICT),
            _ => Status::success(),
        }
    }
}
