//! NodeVolumeLimits, as upstream's CSI volume limits: a node's CSINode says
//! how many volumes of each CSI driver it can have attached
//! (`allocatable.count`); a pod whose new volumes would exceed that on a
//! node does not fit there. Volumes are counted once per node however many
//! pods share them; a claim not bound yet counts against its class's
//! provisioner.
//!
//! Not modelled, and so refused with a reason: in-tree volumes whose limits
//! upstream counts through CSI migration (inline Azure Disk and Cinder;
//! PersistentVolumes of AWS EBS, GCE PD, Azure Disk and Cinder; claims of
//! their in-tree provisioners).
//! Also not counted (as a later upstream does): VolumeAttachments left on a
//! node by pods that are gone.

use std::collections::HashMap;

use super::objects::*;
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::{Pod, VolumeSource};

/// The plugin's name.
pub const NAME: &str = "NodeVolumeLimits";
const STATE_KEY: &str = "PreFilterNodeVolumeLimits";
/// Too many volumes of a driver on the node.
pub const ERR_MAX_VOLUME_COUNT: &str = "node(s) exceed max volume count";

/// The plugin.
pub struct NodeVolumeLimits {
    claims: Store<Claim>,
    volumes: Store<Volume>,
    classes: Store<StorageClass>,
    csi_nodes: Store<CsiNode>,
    drivers: Store<CsiDriver>,
}

/// In-tree provisioners whose volumes upstream counts as their CSI drivers'.
const IN_TREE_PROVISIONERS: [&str; 4] =
    ["kubernetes.io/aws-ebs", "kubernetes.io/gce-pd", "kubernetes.io/azure-disk", "kubernetes.io/cinder"];

/// Unique volume name (`driver/handle`) → driver.
type Attachable = HashMap<String, String>;

/// PreFilter's findings: the pod's CSI volumes, or why they cannot be
/// counted (reported by Filter, as upstream, where VolumeBinding has not
/// already refused the pod).
#[derive(Clone)]
struct State(Result<Found, String>);

#[derive(Clone)]
struct Found {
    /// The pod's CSI volumes.
    volumes: Attachable,
    /// Their drivers whose CSIDriver sets `preventPodSchedulingIfMissing`:
    /// a node's CSINode must list each of them.
    required: Vec<String>,
}

impl NodeVolumeLimits {
    /// Builds the plugin, declaring the kinds it reads.
    pub fn new(handle: &Handle) -> NodeVolumeLimits {
        NodeVolumeLimits {
            claims: handle.objects(CLAIMS),
            volumes: handle.objects(VOLUMES),
            classes: handle.objects(CLASSES),
            csi_nodes: handle.objects(CSI_NODES),
            drivers: handle.objects(CSI_DRIVERS),
        }
    }

    /// The CSI volumes `pod` uses. For the pod being scheduled a missing
    /// claim is an error; an existing pod's missing claim is not counted.
    fn attachable(&self, pod: &Pod, new_pod: bool, out: &mut Attachable) -> Result<(), String> {
        for v in &pod.volumes {
            let Some(name) = v.claim_name(&pod.name) else { continue };
            let Some(claim) = self.claims.get(&pod.namespace, &name) else {
                if new_pod {
                    return Err(format!("looking up PVC {}/{name}: {}", pod.namespace, not_found("persistentvolumeclaim", &name)));
                }
                continue;
            };
            match self.driver_of(&claim) {
                Ok(Some((driver, handle))) => {
                    out.insert(format!("{driver}/{handle}"), driver);
                }
                Ok(None) => {}
                Err(reason) if new_pod => return Err(format!("pod's volume {:?}: {reason}", v.name)),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// The claim's CSI driver and volume handle: its volume's, or for an
    /// unbound claim its class's provisioner and a name of its own.
    /// Upstream translates in-tree volumes to their CSI drivers (CSI
    /// migration) to count them; Berth does not, so it says so (`Err`).
    fn driver_of(&self, claim: &Claim) -> Result<Option<(String, String)>, String> {
        let unmodelled = |what: String| Err(format!("{what}: Berth does not model volume attach limits of in-tree volumes yet"));
        if let Some(pv) = Some(&claim.spec.volume_name).filter(|n| !n.is_empty()).and_then(|n| self.volumes.get("", n)) {
            if let Some(source) = pv.spec.in_tree_attachable() {
                return unmodelled(format!("PersistentVolume {:?} ({source})", pv.metadata.name));
            }
            return Ok(pv.spec.csi.as_ref().map(|csi| (csi.driver.clone(), csi.volume_handle.clone())));
        }
        let Some(class) = Some(claim.class()).filter(|c| !c.is_empty()).and_then(|c| self.classes.get("", c)) else { return Ok(None) };
        if IN_TREE_PROVISIONERS.contains(&class.provisioner.as_str()) {
            return unmodelled(format!("StorageClass {:?} (provisioner {})", class.metadata.name, class.provisioner));
        }
        Ok(Some((class.provisioner.clone(), format!("unbound-{}", claim.key()))))
    }
}

#[crate::plugin]
impl Plugin for NodeVolumeLimits {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            on_object(CSI_NODES, action::ADD | action::UPDATE, "CSINodeChange"),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::AssignedPod, action::DELETE, "AssignedPodDelete")),
            on_object(CLAIMS, action::ADD, "PersistentVolumeClaimAdd"),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::UnscheduledPod, action::UPDATE, "UnscheduledPodUpdate")),
        ]
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        if let Some(reason) = super::in_tree(&pod.pod, &["azureDisk", "cinder"], "volume attach limits of in-tree volumes") {
            return (None, Status::unresolvable(reason));
        }
        if !pod.pod.volumes.iter().any(|v| matches!(v.source, VolumeSource::PersistentVolumeClaim { .. } | VolumeSource::Ephemeral)) {
            return (None, Status::skip());
        }
        let mut volumes = Attachable::new();
        let found = self.attachable(&pod.pod, true, &mut volumes).map(|()| {
            let opted_in = |d: &&String| self.drivers.get("", d).is_some_and(|d| d.spec.prevent_pod_scheduling_if_missing == Some(true));
            let mut required: Vec<String> = volumes.values().filter(opted_in).cloned().collect();
            required.sort();
            required.dedup();
            Found { volumes, required }
        });
        if found.as_ref().is_ok_and(|f| f.volumes.is_empty()) {
            return (None, Status::skip());
        }
        state.write_scheduling_only(STATE_KEY, State(found));
        (None, Status::success())
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let found = match state.read::<State>(STATE_KEY) {
            None => return Status::success(),
            Some(State(Err(reason))) => return Status::unresolvable(reason.clone()),
            Some(State(Ok(found))) => found,
        };
        let new = &found.volumes;
        let csi_node = self.csi_nodes.get("", &node.node.name);
        // A driver that asks for it keeps its volumes off nodes where it is not installed.
        for driver in &found.required {
            if !csi_node.as_ref().is_some_and(|n| n.spec.drivers.iter().any(|d| d.name == *driver)) {
                return Status::unschedulable(format!("{driver} CSI driver is not installed on the node"));
            }
        }
        let Some(csi_node) = csi_node else { return Status::success() };
        if !new.values().any(|d| csi_node.limit(d).is_some()) {
            return Status::success();
        }
        let mut attached = Attachable::new();
        for p in &node.pods {
            if !p.pod.volumes.is_empty() {
                // An existing pod's missing claims are skipped, never an error.
                let _ = self.attachable(&p.pod, false, &mut attached);
            }
        }
        let mut counts: HashMap<&str, i64> = HashMap::new();
        for driver in attached.values() {
            *counts.entry(driver).or_default() += 1;
        }
        let mut adding: HashMap<&str, i64> = HashMap::new();
        for (_, driver) in new.iter().filter(|(n, _)| !attached.contains_key(*n)) {
            *adding.entry(driver).or_default() += 1;
        }
        for (driver, n) in adding {
            if let Some(limit) = csi_node.limit(driver) {
                if counts.get(driver).copied().unwrap_or(0) + n > limit {
                    return Status::unschedulable(ERR_MAX_VOLUME_COUNT);
                }
            }
        }
        Status::success()
    }
}
