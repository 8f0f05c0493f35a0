//! Upstream's volume and DRA plugins, by name: VolumeRestrictions,
//! NodeVolumeLimits, VolumeBinding, VolumeZone and DynamicResources.
//!
//! Berth does not model PersistentVolumes, volume attach limits or
//! ResourceClaims yet. Until it does, a pod that needs them must not be
//! bound where its storage or devices may not be (a wrong placement is worse
//! than none): these plugins keep such a pod pending, in PreFilter, with a
//! message that says what is missing. Each refuses what its upstream
//! namesake would check:
//! - VolumeBinding: volumes backed by a PersistentVolumeClaim (named, or a
//!   generic ephemeral volume's generated claim);
//! - VolumeRestrictions: in-tree volumes that conflict between pods on one
//!   node (GCE PD, AWS EBS, iSCSI, RBD);
//! - NodeVolumeLimits: volumes that count against a node's attach limits
//!   (inline CSI, Azure Disk, Cinder);
//! - DynamicResources: `spec.resourceClaims`.
//!
//! VolumeZone has nothing left to check once claim-backed volumes are
//! refused, and stays inert. Existing configurations that enable or disable
//! any of them load unchanged.

use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::*;
use crate::model::{Pod, VolumeSource};

/// The five names, in upstream's default order.
pub const NAMES: [&str; 5] = ["VolumeRestrictions", "NodeVolumeLimits", "VolumeBinding", "VolumeZone", "DynamicResources"];

/// A plugin that keeps pods needing what Berth does not model pending.
pub struct Unmodelled {
    name: &'static str,
    /// The reason a pod cannot be placed, if it needs what this plugin checks.
    check: fn(&Pod) -> Option<String>,
}

#[crate::plugin]
impl Plugin for Unmodelled {
    fn name(&self) -> &'static str {
        self.name
    }

    /// No change to the cluster can help (only a Berth that models it):
    /// a rejected pod is retried when it changes, or after the periodic
    /// flush of unschedulable pods.
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![ClusterEventWithHint::new(ClusterEvent::new(EventResource::UnscheduledPod, action::UPDATE, "UnscheduledPodUpdate"))]
    }

    fn pre_filter(&self, _state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        match (self.check)(&pod.pod) {
            Some(reason) => (None, Status::unresolvable(reason)),
            None => (None, Status::skip()),
        }
    }
}

/// A plugin accepted by name that never affects a decision.
pub struct Inert(&'static str);

#[crate::plugin]
impl Plugin for Inert {
    fn name(&self) -> &'static str {
        self.0
    }
}

fn claim_backed(pod: &Pod) -> Option<String> {
    pod.volumes.iter().find_map(|v| {
        let claim = v.claim_name(&pod.name)?;
        Some(format!("pod's volume {:?} needs PersistentVolumeClaim {claim:?}: Berth does not model volume binding yet", v.name))
    })
}

fn in_tree(pod: &Pod, kinds: &[&str], what: &str) -> Option<String> {
    pod.volumes.iter().find_map(|v| match &v.source {
        VolumeSource::Other(kind) if kinds.contains(&kind.as_str()) => {
            Some(format!("pod's volume {:?} ({kind}): Berth does not model {what} yet", v.name))
        }
        _ => None,
    })
}

fn conflicting(pod: &Pod) -> Option<String> {
    in_tree(pod, &["gcePersistentDisk", "awsElasticBlockStore", "iscsi", "rbd"], "volume conflicts between pods")
}

fn attach_limited(pod: &Pod) -> Option<String> {
    let inline_csi = pod.volumes.iter().find_map(|v| match &v.source {
        VolumeSource::Csi { driver } => {
            Some(format!("pod's volume {:?} (CSI driver {driver}): Berth does not model volume attach limits yet", v.name))
        }
        _ => None,
    });
    inline_csi.or_else(|| in_tree(pod, &["azureDisk", "cinder"], "volume attach limits"))
}

fn resource_claims(pod: &Pod) -> Option<String> {
    let c = pod.resource_claims.first()?;
    Some(format!("pod's resource claim {:?}: Berth does not model dynamic resource allocation yet", c.name))
}

fn unmodelled(name: &'static str, check: fn(&Pod) -> Option<String>) -> Arc<dyn Plugin> {
    Arc::new(Unmodelled { name, check })
}

/// VolumeRestrictions: refuses in-tree volumes whose conflicts Berth does not check.
pub fn volume_restrictions(_: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(unmodelled(NAMES[0], conflicting))
}
/// NodeVolumeLimits: refuses volumes that count against attach limits.
pub fn node_volume_limits(_: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(unmodelled(NAMES[1], attach_limited))
}
/// VolumeBinding: refuses PersistentVolumeClaim-backed volumes. Its args
/// (`bindTimeoutSeconds`, `shape`) are accepted and not used yet.
pub fn volume_binding(_: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(unmodelled(NAMES[2], claim_backed))
}
/// VolumeZone: inert (see the module documentation).
pub fn volume_zone(_: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(Inert(NAMES[3])))
}
/// DynamicResources: refuses pods with `spec.resourceClaims`.
pub fn dynamic_resources(_: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(unmodelled(NAMES[4], resource_claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PodResourceClaim, Volume};
    use crate::testing::make_pod;

    fn vol(name: &str, source: VolumeSource) -> Volume {
        Volume { name: name.into(), source }
    }

    #[test]
    fn pods_needing_what_berth_does_not_model_are_refused_with_a_reason() {
        let other = |k: &str| VolumeSource::Other(k.into());
        let csi = VolumeSource::Csi { driver: "ebs.csi.aws.com".into() };
        // (volumes, claims, plugin, its reason or none)
        let table: Vec<(Vec<Volume>, bool, usize, Option<&str>)> = vec![
            (vec![vol("conf", other("configMap")), vol("tmp", other("emptyDir"))], false, 2, None),
            (vec![vol("conf", other("configMap"))], false, 0, None),
            (vec![vol("conf", other("configMap"))], false, 1, None),
            (
                vec![vol("data", VolumeSource::PersistentVolumeClaim { claim_name: "data-0".into(), read_only: false })],
                false,
                2,
                Some("pod's volume \"data\" needs PersistentVolumeClaim \"data-0\": Berth does not model volume binding yet"),
            ),
            (
                vec![vol("scratch", VolumeSource::Ephemeral)],
                false,
                2,
                Some("pod's volume \"scratch\" needs PersistentVolumeClaim \"p-scratch\": Berth does not model volume binding yet"),
            ),
            (
                vec![vol("disk", other("gcePersistentDisk"))],
                false,
                0,
                Some("pod's volume \"disk\" (gcePersistentDisk): Berth does not model volume conflicts between pods yet"),
            ),
            (
                vec![vol("x", csi)],
                false,
                1,
                Some("pod's volume \"x\" (CSI driver ebs.csi.aws.com): Berth does not model volume attach limits yet"),
            ),
            (vec![], true, 4, Some("pod's resource claim \"gpu\": Berth does not model dynamic resource allocation yet")),
            (vec![], false, 4, None),
        ];
        let registry = crate::plugins::registry();
        for (volumes, claims, plugin, want) in table {
            let mut pod = make_pod("p").obj();
            pod.volumes = volumes;
            if claims {
                pod.resource_claims.push(PodResourceClaim { name: "gpu".into(), ..Default::default() });
            }
            let pl = registry.get(NAMES[plugin]).unwrap()(&PluginArgs::none(NAMES[plugin]), &Handle::default()).unwrap();
            let (_, s) = pl.pre_filter(&mut CycleState::new(), &PodInfo::new(pod), &Snapshot::default());
            match want {
                None => assert_eq!(s.code, Code::Skip, "{}", NAMES[plugin]),
                Some(msg) => assert_eq!((s.code, s.message()), (Code::UnschedulableAndUnresolvable, msg.to_string()), "{}", NAMES[plugin]),
            }
        }
    }
}
