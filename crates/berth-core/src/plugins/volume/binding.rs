//! VolumeBinding, as upstream's `volumebinding` plugin: a pod's
//! PersistentVolumeClaims decide where it can run.
//!
//! - **PreFilter** sorts the pod's claims: missing or deleted claims make it
//!   unschedulable; unbound claims of an `Immediate` class wait for the PV
//!   controller ("pod has unbound immediate PersistentVolumeClaims"); bound
//!   claims and `WaitForFirstConsumer` ones go on to Filter.
//! - **Filter**, per node: a bound claim's volume must be reachable from the
//!   node (its node affinity); a `WaitForFirstConsumer` claim needs an
//!   available volume there (capacity, access modes, class, selector, node
//!   affinity; the smallest wins) or a class that can provision there
//!   (`allowedTopologies`).
//! - **Reserve** assumes the choices, so the next pod does not take the
//!   same volume; **Unreserve** forgets them.
//! - **PreBind** writes them (the volume's `claimRef`, or the claim's
//!   `volume.kubernetes.io/selected-node` for provisioning) and waits, at
//!   most `bindTimeoutSeconds`, for the PV controller to finish binding.
//!
//! Not modelled, and so refused with a reason rather than guessed: storage
//! capacity (CSIDrivers with `storageCapacity: true`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::objects::*;
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::{Labels, Pod};

/// The plugin's name.
pub const NAME: &str = "VolumeBinding";
const STATE_KEY: &str = "PreFilterVolumeBinding";

/// Reasons, as upstream's.
pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// A bound claim's volume cannot be reached from the node.
pub const ERR_NODE_CONFLICT: &str = "node(s) didn't match PersistentVolume's node affinity";
/// A claim is bound to a volume that does not exist.
pub const ERR_PV_NOT_EXIST: &str = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// PreFilter: `Immediate` claims are not bound yet.
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// `VolumeBindingArgs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Args {
    bind_timeout_seconds: Option<i64>,
    /// For storage capacity scoring, off by default upstream (and not done here).
    #[allow(dead_code)]
    shape: Option<serde_json::Value>,
}

/// What an earlier pod's Reserve assumed and its PreBind has not yet written.
#[derive(Default)]
struct Assumed {
    /// Volume name → the claim it was chosen for.
    volumes: HashMap<String, ClaimRef>,
    /// Claim `namespace/name` → the node it is to be provisioned on.
    provisions: HashMap<String, String>,
}

/// The plugin.
pub struct VolumeBinding {
    claims: Store<Claim>,
    volumes: Store<Volume>,
    classes: Store<StorageClass>,
    drivers: Store<CsiDriver>,
    assumed: Mutex<Assumed>,
    bind_timeout: Duration,
    handle: Handle,
}

/// The pod's claims, sorted by PreFilter.
#[derive(Clone, Default)]
struct State {
    /// Bound claims with their volumes (`None`: the volume does not exist).
    bound: Vec<(Arc<Claim>, Option<Arc<Volume>>)>,
    /// `WaitForFirstConsumer` claims not bound yet, smallest request first,
    /// with the node an earlier decision selected for provisioning.
    delayed: Vec<(Arc<Claim>, Option<String>)>,
    /// Volumes of each delayed claim's class.
    candidates: HashMap<String, Vec<Candidate>>,
    /// Classes of the delayed claims.
    classes: HashMap<String, Arc<StorageClass>>,
    /// Reserve's choice for the node, PreBind's work.
    chosen: Option<PodVolumes>,
}

/// What binding the pod's claims on one node takes.
#[derive(Clone, Debug, Default)]
struct PodVolumes {
    /// (volume, claim) pairs to bind.
    bindings: Vec<(Arc<Volume>, Arc<Claim>)>,
    /// Claims to provision on the node.
    provisions: Vec<Arc<Claim>>,
}

impl PodVolumes {
    fn is_empty(&self) -> bool {
        self.bindings.is_empty() && self.provisions.is_empty()
    }
}

/// An error that is not a verdict on the node (upstream returns these as errors).
struct Failure(String);

fn claims_of(pod: &Pod) -> impl Iterator<Item = (String, bool)> + '_ {
    pod.volumes.iter().filter_map(|v| Some((v.claim_name(&pod.name)?, matches!(v.source, crate::model::VolumeSource::Ephemeral))))
}

impl VolumeBinding {
    /// Builds the plugin from its args, declaring the kinds it reads.
    pub fn new(args: Option<&serde_json::Value>, handle: &Handle) -> Result<VolumeBinding, String> {
        let args: Args = crate::plugins::decode_args(NAME, args)?;
        let secs = args.bind_timeout_seconds.unwrap_or(600);
        if secs < 0 {
            return Err(format!("bindTimeoutSeconds: Invalid value: {secs}: invalid BindTimeoutSeconds, should not be a negative value"));
        }
        Ok(VolumeBinding {
            claims: handle.objects(CLAIMS),
            volumes: handle.objects(VOLUMES),
            classes: handle.objects(CLASSES),
            drivers: handle.objects(CSI_DRIVERS),
            assumed: Mutex::new(Assumed::default()),
            bind_timeout: Duration::from_secs(secs as u64),
            handle: handle.clone(),
        })
    }

    fn assumed(&self) -> std::sync::MutexGuard<'_, Assumed> {
        self.assumed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The claims of `pod`, or why it cannot be scheduled at all.
    fn pod_claims(&self, pod: &Pod) -> Result<Vec<Arc<Claim>>, String> {
        let mut out = Vec::new();
        for (name, ephemeral) in claims_of(pod) {
            let Some(c) = self.claims.get(&pod.namespace, &name) else {
                return Err(if ephemeral {
                    format!("waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}")
                } else {
                    not_found("persistentvolumeclaim", &name)
                });
            };
            if c.status.phase == "Lost" {
                return Err(format!("persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}", c.spec.volume_name));
            }
            if c.metadata.deletion_timestamp.is_some() {
                return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
            }
            if ephemeral && !c.metadata.owner_references.iter().any(|o| o.controller == Some(true) && o.uid == pod.uid) {
                return Err(format!(
                    "PVC {}/{name} was not created for pod {}/{} (pod is not owner)",
                    pod.namespace, pod.namespace, pod.name
                ));
            }
            out.push(c);
        }
        Ok(out)
    }

    fn sort_claims(&self, claims: Vec<Arc<Claim>>) -> Result<State, Status> {
        let assumed = self.assumed();
        let mut state = State::default();
        let mut unbound_immediate = false;
        for c in claims {
            if c.fully_bound() {
                let pv = self.volumes.get("", &c.spec.volume_name);
                state.bound.push((c, pv));
                continue;
            }
            let class = Some(c.class()).filter(|n| !n.is_empty()).and_then(|n| self.classes.get("", n));
            let delayed = class.as_ref().is_some_and(|k| k.waits_for_first_consumer()) && c.spec.volume_name.is_empty();
            if !delayed {
                unbound_immediate = true;
                continue;
            }
            let class = class.expect("a delayed claim has a class");
            if let Some(d) = self.drivers.get("", &class.provisioner).filter(|d| d.spec.storage_capacity == Some(true)) {
                return Err(Status::unresolvable(format!(
                    "persistentvolumeclaim {:?}: CSI driver {} tracks storage capacity, which Berth does not model yet",
                    c.metadata.name, d.metadata.name
                )));
            }
            let selected = c.metadata.annotations.get(ANN_SELECTED_NODE).or_else(|| assumed.provisions.get(&c.key())).cloned();
            if !state.candidates.contains_key(c.class()) {
                let of_class = self
                    .volumes
                    .list()
                    .into_iter()
                    .filter(|v| v.class() == c.class())
                    .map(|v| Candidate { assumed_for: assumed.volumes.get(&v.metadata.name).cloned(), volume: v })
                    .collect();
                state.candidates.insert(c.class().to_string(), of_class);
            }
            state.classes.insert(c.class().to_string(), class);
            state.delayed.push((c, selected));
        }
        if unbound_immediate {
            return Err(Status::unresolvable(ERR_UNBOUND_IMMEDIATE));
        }
        state.delayed.sort_by_key(|(c, _)| c.requested_bytes());
        Ok(state)
    }

    /// Upstream's `FindPodVolumes`: what binding the claims on a node with
    /// `labels` takes, or the reasons it cannot.
    fn find(&self, state: &State, node: &str, labels: &Labels) -> Result<Result<PodVolumes, Vec<&'static str>>, Failure> {
        let mut reasons = Vec::new();
        for (_, pv) in &state.bound {
            match pv {
                None => {
                    reasons.push(ERR_PV_NOT_EXIST);
                    break;
                }
                Some(pv) if !pv.reachable_from(labels) => {
                    reasons.push(ERR_NODE_CONFLICT);
                    break;
                }
                Some(_) => {}
            }
        }
        let mut out = PodVolumes::default();
        let mut to_provision = Vec::new();
        let mut to_match = Vec::new();
        for (c, selected) in &state.delayed {
            match selected {
                Some(n) if n != node => {
                    reasons.push(ERR_BIND_CONFLICT);
                    return Ok(Err(reasons));
                }
                Some(_) => to_provision.push(c.clone()),
                None => to_match.push(c),
            }
        }
        let mut satisfied = true;
        let mut chosen: Vec<&str> = Vec::new();
        for c in to_match {
            let candidates = state.candidates.get(c.class()).map_or(&[][..], |v| v.as_slice());
            match find_matching_volume(c, candidates, labels, &chosen) {
                Some(m) => {
                    chosen.push(&m.volume.metadata.name);
                    out.bindings.push((m.volume.clone(), c.clone()));
                }
                None => {
                    satisfied = false;
                    to_provision.push(c.clone());
                }
            }
        }
        if !to_provision.is_empty() {
            satisfied = true;
            for c in to_provision {
                let name = c.class();
                if name.is_empty() {
                    return Err(Failure(format!("no class for claim {:?}", c.key())));
                }
                let Some(class) = state.classes.get(name) else {
                    return Err(Failure(format!("failed to find storage class {name:?}")));
                };
                if !class.provisions() || !class.allows(labels) {
                    satisfied = false;
                    out.provisions.clear();
                    break;
                }
                out.provisions.push(c);
            }
        }
        if !satisfied {
            reasons.push(ERR_BIND_CONFLICT);
        }
        Ok(if reasons.is_empty() { Ok(out) } else { Err(reasons) })
    }

    fn forget(&self, chosen: &PodVolumes) {
        let mut a = self.assumed();
        for (pv, _) in &chosen.bindings {
            a.volumes.remove(&pv.metadata.name);
        }
        for c in &chosen.provisions {
            a.provisions.remove(&c.key());
        }
    }

    /// Writes the bindings; returns the resource versions written.
    fn write(&self, writer: &dyn ObjectWriter, chosen: &PodVolumes, node: &str) -> Result<Vec<u64>, String> {
        let mut versions = Vec::new();
        let version_of = |v: serde_json::Value| -> u64 {
            v.pointer("/metadata/resourceVersion").and_then(|r| r.as_str()).and_then(|r| r.parse().ok()).unwrap_or(0)
        };
        for (pv, c) in &chosen.bindings {
            let mut meta = json!({"resourceVersion": pv.metadata.resource_version});
            if !pv.is_bound_to(c) && !pv.metadata.annotations.contains_key(ANN_BOUND_BY_CONTROLLER) {
                meta["annotations"] = json!({ ANN_BOUND_BY_CONTROLLER: "yes" });
            }
            let claim_ref = json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": c.metadata.namespace,
                "name": c.metadata.name, "uid": c.metadata.uid, "resourceVersion": c.metadata.resource_version});
            let patch = json!({"metadata": meta, "spec": {"claimRef": claim_ref}});
            let written = writer.merge_patch(&VOLUMES, "", &pv.metadata.name, &patch).map_err(|e| e.to_string())?;
            versions.push(version_of(written));
        }
        for c in &chosen.provisions {
            let patch = json!({"metadata": {"resourceVersion": c.metadata.resource_version, "annotations": { ANN_SELECTED_NODE: node }}});
            let written = writer.merge_patch(&CLAIMS, &c.metadata.namespace, &c.metadata.name, &patch).map_err(|e| e.to_string())?;
            versions.push(version_of(written));
        }
        Ok(versions)
    }

    /// Upstream's `checkBindings`: `Ok(true)` once every claim is bound.
    fn check(&self, chosen: &PodVolumes, written: &[u64], node: &str, labels: &Labels) -> Result<bool, String> {
        let mut written = written.iter();
        for (pv, c) in &chosen.bindings {
            let wrote = written.next().copied().unwrap_or(0);
            let (Some(now), Some(claim)) =
                (self.volumes.get("", &pv.metadata.name), self.claims.get(&c.metadata.namespace, &c.metadata.name))
            else {
                return Err(format!("failed to check binding: persistentvolume {:?} or its claim {:?} is gone", pv.metadata.name, c.key()));
            };
            if now.metadata.version() < wrote {
                return Ok(false);
            }
            if !now.reachable_from(labels) {
                return Err(format!("pv {:?} node affinity doesn't match node {node:?}: no matching NodeSelectorTerms", pv.metadata.name));
            }
            if now.spec.claim_ref.as_ref().is_none_or(|r| r.uid.is_empty()) {
                return Err(format!("ClaimRef got reset for pv {:?}", pv.metadata.name));
            }
            if !claim.fully_bound() {
                return Ok(false);
            }
        }
        for c in &chosen.provisions {
            let wrote = written.next().copied().unwrap_or(0);
            let Some(now) = self.claims.get(&c.metadata.namespace, &c.metadata.name) else {
                return Err(format!("failed to check provisioning pvc: {}", not_found("persistentvolumeclaim", &c.key())));
            };
            if now.metadata.version() < wrote {
                return Ok(false);
            }
            if now.metadata.annotations.get(ANN_SELECTED_NODE).map(String::as_str) != Some(node) {
                return Err(format!("provisioning failed for PVC {:?}", c.metadata.name));
            }
            if !now.spec.volume_name.is_empty() {
                match self.volumes.get("", &now.spec.volume_name) {
                    None => return Ok(false),
                    Some(pv) if !pv.reachable_from(labels) => {
                        return Err(format!(
                            "pv {:?} node affinity doesn't match node {node:?}: no matching NodeSelectorTerms",
                            pv.metadata.name
                        ));
                    }
                    Some(_) => {}
                }
            }
            if !now.fully_bound() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn node_labels(&self, node: &str) -> Option<Labels> {
        Some(self.handle.snapshot()?.get(node)?.node.labels.clone())
    }
}

fn state_of(state: &CycleState) -> Option<&State> {
    state.read::<State>(STATE_KEY)
}

#[crate::plugin]
impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        vec![
            on_object(CLASSES, action::ADD | action::UPDATE, "StorageClassChange"),
            on_object(CLAIMS, action::ADD | action::UPDATE, "PersistentVolumeClaimChange"),
            on_object(VOLUMES, action::ADD | action::UPDATE, "PersistentVolumeChange"),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::Node, action::ADD | action::UPDATE_NODE_LABEL, "NodeChange")),
            on_object(CSI_NODES, action::ADD | action::UPDATE, "CSINodeChange"),
            on_object(CSI_DRIVERS, action::UPDATE, "CSIDriverChange"),
        ]
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        if claims_of(&pod.pod).next().is_none() {
            return (None, Status::skip());
        }
        let claims = match self.pod_claims(&pod.pod) {
            Ok(c) => c,
            Err(reason) => return (None, Status::unresolvable(reason)),
        };
        match self.sort_claims(claims) {
            Ok(s) => {
                state.write(STATE_KEY, s);
                (None, Status::success())
            }
            Err(status) => (None, status),
        }
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state_of(state) else { return Status::success() };
        match self.find(s, &node.node.name, &node.node.labels) {
            Ok(Ok(_)) => Status::success(),
            Ok(Err(reasons)) => {
                Status::with_reasons(Code::UnschedulableAndUnresolvable, reasons.into_iter().map(Reason::from).collect::<Reasons>())
            }
            Err(Failure(msg)) => Status::error(msg),
        }
    }

    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        let Some(s) = state_of(state) else { return Status::success() };
        if s.delayed.is_empty() {
            return Status::success();
        }
        let Some(labels) = self.node_labels(node) else {
            return Status::error(format!("node {node:?} is not in the snapshot"));
        };
        let chosen = match self.find(s, node, &labels) {
            Ok(Ok(c)) => c,
            Ok(Err(reasons)) => {
                return Status::error(format!("volumes of pod {} no longer fit node {node:?}: {}", pod.pod.key(), reasons.join(", ")))
            }
            Err(Failure(msg)) => return Status::error(msg),
        };
        {
            let mut a = self.assumed();
            for (pv, c) in &chosen.bindings {
                let r = ClaimRef { namespace: c.metadata.namespace.clone(), name: c.metadata.name.clone(), uid: c.metadata.uid.clone() };
                a.volumes.insert(pv.metadata.name.clone(), r);
            }
            for c in &chosen.provisions {
                a.provisions.insert(c.key(), node.to_string());
            }
        }
        if let Some(s) = state.read_mut::<State>(STATE_KEY) {
            s.chosen = Some(chosen);
        }
        Status::success()
    }

    fn unreserve(&self, state: &mut CycleState, _pod: &PodInfo, _node: &str) {
        if let Some(chosen) = state.read_mut::<State>(STATE_KEY).and_then(|s| s.chosen.take()) {
            self.forget(&chosen);
        }
    }

    fn pre_bind_pre_flight(&self, state: &CycleState, _pod: &PodInfo, _node: &str) -> Status {
        match state_of(state).and_then(|s| s.chosen.as_ref()) {
            Some(c) if !c.is_empty() => Status::success(),
            _ => Status::skip(),
        }
    }

    fn pre_bind(&self, state: &mut CycleState, _pod: &PodInfo, node: &str) -> Status {
        let Some(chosen) = state.read_mut::<State>(STATE_KEY).and_then(|s| s.chosen.take()).filter(|c| !c.is_empty()) else {
            return Status::skip();
        };
        let result = self.bind_volumes(&chosen, node);
        // Written or not, the stores now say what is true; the assumption has served.
        self.forget(&chosen);
        match result {
            Ok(()) => Status::success(),
            Err(msg) => Status::error(msg),
        }
    }
}

impl VolumeBinding {
    fn bind_volumes(&self, chosen: &PodVolumes, node: &str) -> Result<(), String> {
        let Some(writer) = self.handle.writer() else {
            return Err("binding volumes: this runtime cannot write PersistentVolumes".into());
        };
        let labels = self.node_labels(node).ok_or_else(|| format!("failed to get node {node:?}"))?;
        let written = self.write(&**writer, chosen, node)?;
        // The PV controller answers through the watch; look at the stores.
        let bound = self.handle.wait_until(self.bind_timeout, Duration::from_millis(50), || {
            self.check(chosen, &written, node, &labels).map_err(|e| format!("binding volumes: {e}"))
        })?;
        if !bound {
            return Err("binding volumes: context deadline exceeded".into());
        }
        Ok(())
    }
}
