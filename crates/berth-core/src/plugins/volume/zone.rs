//! VolumeZone, as upstream's `volumezone`: a pod whose claims are bound to
//! volumes labelled with a zone or region runs only on nodes there.

use std::sync::Arc;

use super::objects::*;
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::{Pod, VolumeSource};

/// The plugin's name.
pub const NAME: &str = "VolumeZone";
const STATE_KEY: &str = "PreFilterVolumeZone";
/// The node is not in a zone (or region) of one of the pod's volumes.
pub const ERR_CONFLICT: &str = "node(s) had no available volume zone";

const BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
const BETA_REGION: &str = "failure-domain.beta.kubernetes.io/region";
const ZONE: &str = "topology.kubernetes.io/zone";
const REGION: &str = "topology.kubernetes.io/region";
const TOPOLOGY_LABELS: [&str; 4] = [BETA_ZONE, BETA_REGION, ZONE, REGION];

/// The plugin.
pub struct VolumeZone {
    claims: Store<Claim>,
    volumes: Store<Volume>,
    classes: Store<StorageClass>,
}

/// A volume's topology label and the values (zones) it allows.
#[derive(Clone)]
struct Topology {
    key: &'static str,
    values: Vec<String>,
}

impl VolumeZone {
    /// Builds the plugin, declaring the kinds it reads.
    pub fn new(handle: &Handle) -> VolumeZone {
        VolumeZone { claims: handle.objects(CLAIMS), volumes: handle.objects(VOLUMES), classes: handle.objects(CLASSES) }
    }

    fn topologies(&self, pod: &Pod) -> Result<Vec<Topology>, Status> {
        let mut out = Vec::new();
        let names = pod.volumes.iter().filter_map(|v| match &v.source {
            VolumeSource::PersistentVolumeClaim { claim_name, .. } => Some(claim_name),
            _ => None,
        });
        for name in names {
            if name.is_empty() {
                return Err(Status::unresolvable("PersistentVolumeClaim had no name"));
            }
            let claim: Arc<Claim> =
                self.claims.get(&pod.namespace, name).ok_or_else(|| Status::unresolvable(not_found("persistentvolumeclaim", name)))?;
            let pv_name = &claim.spec.volume_name;
            if pv_name.is_empty() {
                let class = claim.class();
                if class.is_empty() {
                    return Err(Status::unresolvable("PersistentVolumeClaim had no pv name and storageClass name"));
                }
                let sc =
                    self.classes.get("", class).ok_or_else(|| Status::unresolvable(not_found("storageclass.storage.k8s.io", class)))?;
                match sc.volume_binding_mode.as_deref() {
                    None => return Err(Status::unresolvable(format!("VolumeBindingMode not set for StorageClass {class:?}"))),
                    Some("WaitForFirstConsumer") => continue,
                    Some(_) => return Err(Status::unresolvable("PersistentVolume had no name")),
                }
            }
            let pv = self.volumes.get("", pv_name).ok_or_else(|| Status::unresolvable(not_found("persistentvolume", pv_name)))?;
            for key in TOPOLOGY_LABELS {
                if let Some(v) = pv.metadata.labels.get(key) {
                    let values: Vec<String> = v.split("__").map(|z| z.trim().to_string()).filter(|z| !z.is_empty()).collect();
                    if !values.is_empty() {
                        out.push(Topology { key, values });
                    }
                }
            }
        }
        Ok(out)
    }
}

fn to_ga(key: &str) -> &str {
    match key {
        BETA_REGION => REGION,
        BETA_ZONE => ZONE,
        k => k,
    }
}

#[crate::plugin]
impl Plugin for VolumeZone {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            on_object(CLASSES, action::ADD, "StorageClassAdd"),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::Node, action::ADD | action::UPDATE_NODE_LABEL, "NodeChange")),
            on_object(CLAIMS, action::ADD | action::UPDATE, "PersistentVolumeClaimChange"),
            on_object(VOLUMES, action::ADD | action::UPDATE, "PersistentVolumeChange"),
        ]
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        if pod.pod.volumes.is_empty() {
            return (None, Status::skip());
        }
        match self.topologies(&pod.pod) {
            Err(s) => (None, s),
            Ok(t) if t.is_empty() => (None, Status::skip()),
            Ok(t) => {
                state.write_scheduling_only(STATE_KEY, t);
                (None, Status::success())
            }
        }
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(topologies) = state.read::<Vec<Topology>>(STATE_KEY) else { return Status::success() };
        let labels = &node.node.labels;
        // A node without topology labels (a single-zone cluster) takes any volume.
        if !TOPOLOGY_LABELS.iter().any(|k| labels.contains_key(*k)) {
            return Status::success();
        }
        for t in topologies {
            let v = labels.get(t.key).or_else(|| labels.get(to_ga(t.key)));
            if v.is_none_or(|v| !t.values.contains(v)) {
                return Status::unresolvable(ERR_CONFLICT);
            }
        }
        Status::success()
    }
}
