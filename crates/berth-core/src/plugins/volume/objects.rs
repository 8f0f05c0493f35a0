//! The storage objects the volume plugins read, decoded into the few fields
//! they use (the handle's stores keep one such struct per object), and the
//! helpers upstream shares between them (`component-helpers/storage/volume`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::framework::{ClusterEvent, ClusterEventWithHint, EventResource, ObjectKind};
use crate::model::{LabelSelector, Labels, NodeSelector, NodeSelectorTerm, Quantity, Requirement, SelectorOp};

/// `v1 PersistentVolumeClaim`.
pub const CLAIMS: ObjectKind = ObjectKind::namespaced("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims");
/// `v1 PersistentVolume`.
pub const VOLUMES: ObjectKind = ObjectKind::cluster("", "v1", "PersistentVolume", "persistentvolumes");
/// `storage.k8s.io/v1 StorageClass`.
pub const CLASSES: ObjectKind = ObjectKind::cluster("storage.k8s.io", "v1", "StorageClass", "storageclasses");
/// `storage.k8s.io/v1 CSINode`.
pub const CSI_NODES: ObjectKind = ObjectKind::cluster("storage.k8s.io", "v1", "CSINode", "csinodes");
/// `storage.k8s.io/v1 CSIDriver`.
pub const CSI_DRIVERS: ObjectKind = ObjectKind::cluster("storage.k8s.io", "v1", "CSIDriver", "csidrivers");

/// Set on a claim once the PV controller has finished binding it.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on a PV the scheduler (or controller) bound, rather than the user.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The node a WaitForFirstConsumer claim is to be provisioned for.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The deprecated storage class annotation, read before `storageClassName`.
const ANN_BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// A class whose volumes are created by hand, never provisioned.
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// The metadata fields read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    /// Name.
    pub name: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// UID.
    pub uid: String,
    /// Resource version, to tell an object written from the one the watch has.
    pub resource_version: String,
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Set while the object is being deleted.
    pub deletion_timestamp: Option<String>,
    /// Owners: a generic ephemeral volume's claim is owned by its pod.
    pub owner_references: Vec<OwnerRef>,
    /// Finalizers: what must happen before the object may go.
    pub finalizers: Vec<String>,
    /// When the object was created (RFC 3339), as the API server set it.
    pub creation_timestamp: Option<String>,
}

impl Meta {
    /// The resource version as a number (etcd revisions are), 0 if unset.
    pub fn version(&self) -> u64 {
        self.resource_version.parse().unwrap_or(0)
    }
}

/// An owner reference.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OwnerRef {
    /// The owner's `apiVersion`, e.g. `v1`.
    pub api_version: String,
    /// The owner's kind, e.g. `Pod`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's UID.
    pub uid: String,
    /// Whether the owner is the controller.
    pub controller: Option<bool>,
}

/// A PersistentVolumeClaim.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Claim {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    pub spec: ClaimSpec,
    /// Status.
    pub status: Phase,
}

/// The claim's spec fields read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClaimSpec {
    /// Access modes it needs.
    pub access_modes: Vec<String>,
    /// Storage class; `None` and `""` differ only for defaulting, which the API server does.
    pub storage_class_name: Option<String>,
    /// The PV it is bound (or pre-bound) to.
    pub volume_name: String,
    /// `Filesystem` (default) or `Block`.
    pub volume_mode: Option<String>,
    /// Which PVs it may bind to (compiled when decoded).
    #[serde(deserialize_with = "label_selector")]
    pub selector: Option<LabelSelector>,
    /// `requests.storage`.
    pub resources: Resources,
    /// Volume attributes class.
    pub volume_attributes_class_name: Option<String>,
}

/// `resources` of a claim.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Requests by resource name.
    pub requests: BTreeMap<String, String>,
}

/// `status.phase`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Phase {
    /// `Pending`, `Bound`, `Lost` (claims); `Available`, `Bound`, `Released`, `Failed` (volumes).
    pub phase: String,
}

impl Claim {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    /// Its storage class: the beta annotation first, then `storageClassName`.
    pub fn class(&self) -> &str {
        match self.metadata.annotations.get(ANN_BETA_CLASS) {
            Some(c) => c,
            None => self.spec.storage_class_name.as_deref().unwrap_or(""),
        }
    }

    /// Bound, and the PV controller has finished with it.
    pub fn fully_bound(&self) -> bool {
        !self.spec.volume_name.is_empty() && self.metadata.annotations.contains_key(ANN_BIND_COMPLETED)
    }

    /// `requests.storage` in bytes (0 if absent or unparsable: the API server validates it).
    pub fn requested_bytes(&self) -> i64 {
        bytes(self.spec.resources.requests.get("storage"))
    }

    /// Whether it asks for `mode` (e.g. `ReadWriteOncePod`).
    pub fn has_access_mode(&self, mode: &str) -> bool {
        self.spec.access_modes.iter().any(|m| m == mode)
    }
}

fn bytes(q: Option<&String>) -> i64 {
    q.and_then(|q| Quantity::parse(q).ok()).map_or(0, |q| q.value())
}

/// A PersistentVolume.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Volume {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    pub spec: VolumeSpec,
    /// Status.
    pub status: Phase,
}

/// The volume's spec fields read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VolumeSpec {
    /// `capacity.storage` and the like.
    pub capacity: BTreeMap<String, String>,
    /// Access modes it offers.
    pub access_modes: Vec<String>,
    /// Storage class.
    pub storage_class_name: String,
    /// The claim it is bound (or pre-bound) to.
    pub claim_ref: Option<ClaimRef>,
    /// Which nodes can reach it.
    pub node_affinity: Option<VolumeNodeAffinity>,
    /// `Filesystem` (default) or `Block`.
    pub volume_mode: Option<String>,
    /// Volume attributes class.
    pub volume_attributes_class_name: Option<String>,
    /// A CSI volume's driver and handle.
    pub csi: Option<CsiSource>,
    /// In-tree sources whose attach limits upstream counts through CSI migration.
    pub aws_elastic_block_store: Option<serde::de::IgnoredAny>,
    /// See `aws_elastic_block_store`.
    pub gce_persistent_disk: Option<serde::de::IgnoredAny>,
    /// See `aws_elastic_block_store`.
    pub azure_disk: Option<serde::de::IgnoredAny>,
    /// See `aws_elastic_block_store`.
    pub cinder: Option<serde::de::IgnoredAny>,
}

impl VolumeSpec {
    /// The in-tree source kind, if the volume is one whose attach limits
    /// upstream counts through CSI migration.
    pub fn in_tree_attachable(&self) -> Option<&'static str> {
        [
            (self.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
            (self.gce_persistent_disk.is_some(), "gcePersistentDisk"),
            (self.azure_disk.is_some(), "azureDisk"),
            (self.cinder.is_some(), "cinder"),
        ]
        .into_iter()
        .find_map(|(set, kind)| set.then_some(kind))
    }
}

/// `spec.claimRef` of a volume.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ClaimRef {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
    /// The claim's UID (empty when pre-bound by name).
    pub uid: String,
}

/// `spec.nodeAffinity` of a volume.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct VolumeNodeAffinity {
    /// Nodes the volume can be reached from (compiled when decoded: Filter
    /// checks it for every candidate volume on every node).
    #[serde(deserialize_with = "node_selector")]
    pub required: Option<NodeSelector>,
}

/// A CSI volume source.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CsiSource {
    /// Driver name.
    pub driver: String,
    /// The volume's ID in the driver.
    pub volume_handle: String,
}

impl Volume {
    /// Its storage class: the beta annotation first.
    pub fn class(&self) -> &str {
        self.metadata.annotations.get(ANN_BETA_CLASS).map_or(&self.spec.storage_class_name, |c| c)
    }

    /// `capacity.storage` in bytes.
    pub fn capacity_bytes(&self) -> i64 {
        bytes(self.spec.capacity.get("storage"))
    }

    /// Whether it is bound or pre-bound to `claim` (by namespace and name,
    /// and UID when the reference has one).
    pub fn is_bound_to(&self, claim: &Claim) -> bool {
        self.spec.claim_ref.as_ref().is_some_and(|r| {
            r.name == claim.metadata.name && r.namespace == claim.metadata.namespace && (r.uid.is_empty() || r.uid == claim.metadata.uid)
        })
    }

    /// Whether a node with `labels` can reach it (upstream's `CheckNodeAffinity`:
    /// labels only, so `matchFields` never match).
    pub fn reachable_from(&self, labels: &Labels) -> bool {
        match self.spec.node_affinity.as_ref().and_then(|a| a.required.as_ref()) {
            None => true,
            Some(sel) => sel.matches("", labels),
        }
    }
}

/// A StorageClass.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StorageClass {
    /// Metadata.
    pub metadata: Meta,
    /// Who provisions its volumes.
    pub provisioner: String,
    /// `Immediate` or `WaitForFirstConsumer`.
    pub volume_binding_mode: Option<String>,
    /// Where volumes can be provisioned; empty: anywhere.
    pub allowed_topologies: Vec<TopologySelectorTerm>,
}

impl StorageClass {
    /// Whether claims of this class wait for a pod before binding.
    pub fn waits_for_first_consumer(&self) -> bool {
        self.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
    }

    /// Whether volumes can be provisioned for it at all.
    pub fn provisions(&self) -> bool {
        !self.provisioner.is_empty() && self.provisioner != NO_PROVISIONER
    }

    /// Whether a node with `labels` is in its allowed topologies.
    pub fn allows(&self, labels: &Labels) -> bool {
        self.allowed_topologies.is_empty()
            || self
                .allowed_topologies
                .iter()
                .any(|t| t.match_label_expressions.iter().all(|e| labels.get(&e.key).is_some_and(|v| e.values.iter().any(|x| x == v))))
    }
}

/// One `allowedTopologies` term.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopologySelectorTerm {
    /// All must hold.
    pub match_label_expressions: Vec<TopologyRequirement>,
}

/// A label and the values it may have.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TopologyRequirement {
    /// The label.
    pub key: String,
    /// Its allowed values.
    pub values: Vec<String>,
}

/// A CSINode: the CSI drivers on a node and their attach limits.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsiNode {
    /// Metadata (its name is the node's).
    pub metadata: Meta,
    /// Spec.
    pub spec: CsiNodeSpec,
}

/// `spec` of a CSINode.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsiNodeSpec {
    /// The drivers installed.
    pub drivers: Vec<CsiNodeDriver>,
}

/// One driver on a node.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsiNodeDriver {
    /// Driver name.
    pub name: String,
    /// Its limits.
    pub allocatable: Option<CsiAllocatable>,
}

/// `allocatable` of a node's driver.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsiAllocatable {
    /// How many of the driver's volumes the node can have attached.
    pub count: Option<i64>,
}

impl CsiNode {
    /// The attach limit of `driver` on this node, if it has one.
    pub fn limit(&self, driver: &str) -> Option<i64> {
        self.spec.drivers.iter().find(|d| d.name == driver).and_then(|d| d.allocatable.as_ref()).and_then(|a| a.count)
    }
}

/// A CSIDriver.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsiDriver {
    /// Metadata (its name is the driver's).
    pub metadata: Meta,
    /// Spec.
    pub spec: CsiDriverSpec,
}

/// `spec` of a CSIDriver.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CsiDriverSpec {
    /// Whether the driver publishes CSIStorageCapacity objects the scheduler must check.
    pub storage_capacity: Option<bool>,
    /// Whether a pod using the driver's volumes fits only nodes whose CSINode lists the driver
    /// (1.37, gate VolumeLimitScaling, beta and on).
    pub prevent_pod_scheduling_if_missing: Option<bool>,
}

/// A `metav1.LabelSelector` as the API writes it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WireLabelSelector {
    /// `matchLabels`.
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`.
    pub match_expressions: Vec<WireRequirement>,
}

/// A requirement as the API writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct WireRequirement {
    /// The label (or field).
    pub key: String,
    /// The operator's spelling.
    pub operator: String,
    /// The values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A `NodeSelector` as the API writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WireNodeSelector {
    /// Terms, ORed.
    pub node_selector_terms: Vec<WireNodeSelectorTerm>,
}

/// A `NodeSelectorTerm` as the API writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WireNodeSelectorTerm {
    /// On labels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<WireRequirement>,
    /// On fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_fields: Vec<WireRequirement>,
}

fn requirements(reqs: &[WireRequirement]) -> Option<Vec<Requirement>> {
    reqs.iter().map(|r| Some(Requirement { key: r.key.clone(), op: SelectorOp::parse(&r.operator)?, values: r.values.clone() })).collect()
}

fn label_selector<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<LabelSelector>, D::Error> {
    Ok(Option::<WireLabelSelector>::deserialize(d)?.map(|w| w.to_model()))
}

fn node_selector<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NodeSelector>, D::Error> {
    Ok(Option::<WireNodeSelector>::deserialize(d)?.map(|w| w.to_model()))
}

/// Upstream's NotFound message: `persistentvolumeclaim "data" not found`.
pub fn not_found(resource: &str, name: &str) -> String {
    format!("{resource} {name:?} not found")
}

/// A cluster event on objects of `kind`, always requeueing.
pub fn on_object(kind: ObjectKind, action: u32, label: &'static str) -> ClusterEventWithHint {
    ClusterEventWithHint::new(ClusterEvent::new(EventResource::Object(kind), action, label))
}

impl WireLabelSelector {
    /// Compiled; an invalid operator selects nothing.
    pub fn to_model(&self) -> LabelSelector {
        let mut reqs: Vec<Requirement> = self.match_labels.iter().map(|(k, v)| Requirement::new(k, SelectorOp::In, &[v])).collect();
        match requirements(&self.match_expressions) {
            Some(more) => reqs.extend(more),
            None => return LabelSelector::nothing(),
        }
        LabelSelector { requirements: reqs, nothing: false }
    }
}

impl WireNodeSelector {
    /// Compiled; a term with an invalid operator matches nothing.
    pub fn to_model(&self) -> NodeSelector {
        let terms = self
            .node_selector_terms
            .iter()
            .filter_map(|t| {
                Some(NodeSelectorTerm {
                    match_expressions: requirements(&t.match_expressions)?,
                    match_fields: requirements(&t.match_fields)?,
                })
            })
            .collect();
        NodeSelector { terms }
    }
}

/// Upstream's `FindMatchingVolume` on the scheduler's path: among
/// `volumes` (of the claim's class, minus `excluded`), the volume pre-bound
/// to `claim` if it suits the node (else none), or the smallest available
/// one that satisfies the claim and is reachable from the node.
pub fn find_matching_volume<'a>(claim: &Claim, volumes: &'a [Candidate], labels: &Labels, excluded: &[&str]) -> Option<&'a Candidate> {
    let requested = claim.requested_bytes();
    let selector = claim.spec.selector.as_ref();
    let mode = |m: &Option<String>| m.clone().unwrap_or_else(|| "Filesystem".into());
    let mut best: Option<&Candidate> = None;
    for c in volumes {
        let v = &c.volume;
        if excluded.contains(&v.metadata.name.as_str()) {
            continue;
        }
        let claimed_elsewhere = match &c.assumed_for {
            Some(r) => r.name != claim.metadata.name || r.namespace != claim.metadata.namespace,
            None => v.spec.claim_ref.is_some() && !v.is_bound_to(claim),
        };
        if claimed_elsewhere || v.capacity_bytes() < requested || mode(&claim.spec.volume_mode) != mode(&v.spec.volume_mode) {
            continue;
        }
        if claim.spec.volume_attributes_class_name.as_deref().unwrap_or("") != v.spec.volume_attributes_class_name.as_deref().unwrap_or("")
            || v.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let reachable = v.reachable_from(labels);
        if v.is_bound_to(claim) {
            return reachable.then_some(c);
        }
        if c.assumed_for.is_some()
            || v.status.phase != "Available"
            || selector.as_ref().is_some_and(|s| !s.matches(&v.metadata.labels))
            || v.class() != claim.class()
            || !reachable
            || !claim.spec.access_modes.iter().all(|m| v.spec.access_modes.contains(m))
        {
            continue;
        }
        if best.is_none_or(|b| b.volume.capacity_bytes() > v.capacity_bytes()) {
            best = Some(c);
        }
    }
    best
}

/// A volume a claim might bind to, with the claim an earlier pod's Reserve
/// assumed it for (not written yet).
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The volume.
    pub volume: std::sync::Arc<Volume>,
    /// Assumed for this claim by a pod between Reserve and the end of PreBind.
    pub assumed_for: Option<ClaimRef>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn claim(v: serde_json::Value) -> Claim {
        serde_json::from_value(v).unwrap()
    }
    fn volume(v: serde_json::Value) -> Candidate {
        Candidate { volume: Arc::new(serde_json::from_value(v).unwrap()), assumed_for: None }
    }
    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_smallest_available_reachable_volume_matches_and_a_prebound_one_wins() {
        let c = claim(json!({"metadata": {"name": "c", "namespace": "ns", "uid": "u1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local", "resources": {"requests": {"storage": "5Gi"}}}}));
        let pv = |name: &str, size: &str, zone: &str, extra: serde_json::Value| {
            let mut v = json!({"metadata": {"name": name}, "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": "local", "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": [zone]}]}]}}}, "status": {"phase": "Available"}});
            if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
                spec.extend(extra.clone());
            }
            volume(v)
        };
        let vols = vec![
            pv("small", "1Gi", "a", json!({})),
            pv("big", "100Gi", "a", json!({})),
            pv("fit", "10Gi", "a", json!({})),
            pv("far", "6Gi", "b", json!({})),
            pv("taken", "5Gi", "a", json!({"claimRef": {"namespace": "ns", "name": "other"}})),
            pv("rwx", "5Gi", "a", json!({"accessModes": ["ReadWriteMany"]})),
        ];
        let zone_a = labels(&[("zone", "a")]);
        let name = |c: Option<&Candidate>| c.map(|c| c.volume.metadata.name.clone());
        assert_eq!(name(find_matching_volume(&c, &vols, &zone_a, &[])), Some("fit".into()));
        assert_eq!(name(find_matching_volume(&c, &vols, &zone_a, &["fit"])), Some("big".into()));
        assert_eq!(name(find_matching_volume(&c, &vols, &labels(&[("zone", "b")]), &[])), Some("far".into()));
        assert_eq!(name(find_matching_volume(&c, &vols, &labels(&[]), &[])), None);
        // Assumed for another claim: not available.
        let mut assumed = vols.clone();
        assumed[2].assumed_for = Some(ClaimRef { namespace: "ns".into(), name: "x".into(), uid: String::new() });
        assert_eq!(name(find_matching_volume(&c, &assumed, &zone_a, &[])), Some("big".into()));
        // Pre-bound to this claim: it, or nothing where it cannot be reached.
        let pre = vec![pv("mine", "5Gi", "b", json!({"claimRef": {"namespace": "ns", "name": "c"}})), vols[2].clone()];
        assert_eq!(name(find_matching_volume(&c, &pre, &labels(&[("zone", "b")]), &[])), Some("mine".into()));
        assert_eq!(name(find_matching_volume(&c, &pre, &zone_a, &[])), None);
    }

    #[test]
    fn classes_check_topology_and_provisioners() {
        let sc: StorageClass = serde_json::from_value(json!({"metadata": {"name": "ssd"}, "provisioner": "ebs.csi.aws.com",
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["a", "b"]}]}]}))
        .unwrap();
        assert!(sc.waits_for_first_consumer() && sc.provisions());
        assert!(sc.allows(&labels(&[("zone", "b")])) && !sc.allows(&labels(&[("zone", "c")])) && !sc.allows(&labels(&[])));
        let local: StorageClass = serde_json::from_value(json!({"metadata": {"name": "l"}, "provisioner": NO_PROVISIONER})).unwrap();
        assert!(!local.provisions() && !local.waits_for_first_consumer() && local.allows(&labels(&[])));
    }
}
