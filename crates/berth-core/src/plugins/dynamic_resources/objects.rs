//! The `resource.k8s.io/v1` objects DynamicResources reads, decoded into
//! the fields it uses: ResourceClaims, ResourceClaimTemplates,
//! ResourceSlices, DeviceClasses and DeviceTaintRules.
//!
//! Quantities stay as the API wrote them (strings) until the allocator
//! needs them; what Berth writes back (`status.allocation`,
//! `status.reservedFor`) serializes with the API's field names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::framework::ObjectKind;
use crate::model::NodeSelector;
use crate::plugins::volume::objects::{Meta, WireNodeSelector};

/// Go writes a nil list or map of a field without `omitempty` as `null`
/// (Kubernetes 1.34 does so for a ResourceSlice's `devices` when the slice
/// holds only counters, or when the API server dropped them): read it as empty.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `resource.k8s.io/v1 ResourceClaim`.
pub const CLAIMS: ObjectKind = ObjectKind::namespaced("resource.k8s.io", "v1", "ResourceClaim", "resourceclaims");
/// `resource.k8s.io/v1 ResourceClaimTemplate`.
pub const CLAIM_TEMPLATES: ObjectKind = ObjectKind::namespaced("resource.k8s.io", "v1", "ResourceClaimTemplate", "resourceclaimtemplates");
/// `resource.k8s.io/v1 ResourceSlice`.
pub const SLICES: ObjectKind = ObjectKind::cluster("resource.k8s.io", "v1", "ResourceSlice", "resourceslices");
/// `resource.k8s.io/v1 DeviceClass`.
pub const CLASSES: ObjectKind = ObjectKind::cluster("resource.k8s.io", "v1", "DeviceClass", "deviceclasses");
/// `resource.k8s.io/v1 DeviceTaintRule` (GA in Kubernetes 1.37; absent from older API servers).
pub const TAINT_RULES: ObjectKind = ObjectKind::cluster("resource.k8s.io", "v1", "DeviceTaintRule", "devicetaintrules");

/// `v1 Pod`, for the one pod write DynamicResources makes through the
/// handle's writer: `status.extendedResourceClaimStatus`.
pub const PODS: ObjectKind = ObjectKind::namespaced("", "v1", "Pod", "pods");

/// The finalizer the scheduler puts on a claim it allocates
/// (`resource.kubernetes.io/delete-protection`): the claim is not deleted
/// while its devices are allocated.
pub const FINALIZER: &str = "resource.kubernetes.io/delete-protection";
/// The annotation of the claim the scheduler creates for extended resources
/// backed by DRA.
pub const ANN_EXTENDED_RESOURCE_CLAIM: &str = "resource.kubernetes.io/extended-resource-claim";
/// The annotation the resourceclaim controller puts on a claim it made from a
/// template: the pod's claim name (`resource.kubernetes.io/pod-claim-name`).
pub const ANN_POD_CLAIM_NAME: &str = "resource.kubernetes.io/pod-claim-name";

/// At most this many devices in one claim's allocation (`AllocationResultsMaxSize`).
pub const ALLOCATION_RESULTS_MAX_SIZE: usize = 32;
/// At most this many consumers in a claim's `status.reservedFor`.
pub const RESERVED_FOR_MAX_SIZE: usize = 256;
/// At most this many subrequests in `firstAvailable` (scores count down from it).
pub const FIRST_AVAILABLE_MAX_SIZE: i64 = 8;

/// A ResourceClaim.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResourceClaim {
    /// Metadata.
    pub metadata: Meta,
    /// What is asked for.
    pub spec: ClaimSpec,
    /// What was allocated and who uses it.
    pub status: ClaimStatus,
}

impl ResourceClaim {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    /// Whether the pod with `uid` is among the claim's consumers.
    pub fn is_reserved_for(&self, uid: &str) -> bool {
        self.status.reserved_for.iter().any(|r| r.uid == uid)
    }

    /// Whether the claim's controller is the pod with `uid`.
    pub fn is_controlled_by(&self, uid: &str) -> bool {
        self.metadata.owner_references.iter().any(|o| o.controller == Some(true) && o.uid == uid)
    }
}

/// `spec` of a claim (and of a template's claim).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClaimSpec {
    /// `devices`.
    pub devices: DeviceClaim,
}

/// `spec.devices`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DeviceClaim {
    /// The requests, allocated in order.
    #[serde(deserialize_with = "null_as_default")]
    pub requests: Vec<DeviceRequest>,
    /// Constraints across requests.
    #[serde(deserialize_with = "null_as_default")]
    pub constraints: Vec<DeviceConstraint>,
    /// Configuration for drivers, copied into the allocation.
    #[serde(deserialize_with = "null_as_default")]
    pub config: Vec<ClaimConfig>,
}

/// One request of a claim: `exactly` one kind of device, or the first of
/// `firstAvailable` that can be satisfied.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceRequest {
    /// The request's name (containers refer to it).
    pub name: String,
    /// A request for devices of one class.
    pub exactly: Option<ExactRequest>,
    /// Alternatives, in order of preference (`DRAPrioritizedList`).
    #[serde(deserialize_with = "null_as_default")]
    pub first_available: Vec<SubRequest>,
}

/// `exactly`: devices of one class.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExactRequest {
    /// The DeviceClass.
    pub device_class_name: String,
    /// CEL selectors, all of which a device must pass.
    #[serde(deserialize_with = "null_as_default")]
    pub selectors: Vec<DeviceSelector>,
    /// `ExactCount` (the default) or `All`.
    pub allocation_mode: String,
    /// How many devices, for `ExactCount` (the API server defaults it to 1).
    pub count: i64,
    /// Admin access: the device may be in use by others.
    pub admin_access: Option<bool>,
    /// Device taints this request tolerates.
    #[serde(deserialize_with = "null_as_default")]
    pub tolerations: Vec<DeviceToleration>,
    /// Capacity to consume on a device that allows several allocations.
    pub capacity: Option<CapacityRequirements>,
    /// Alpha `derivedAttributes` (Berth, as upstream with the gate off, refuses them).
    #[serde(deserialize_with = "null_as_default")]
    pub derived_attributes: Vec<serde_json::Value>,
}

/// One of `firstAvailable`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubRequest {
    /// The subrequest's name; results name it `request/subrequest`.
    pub name: String,
    /// The DeviceClass.
    pub device_class_name: String,
    /// CEL selectors.
    #[serde(deserialize_with = "null_as_default")]
    pub selectors: Vec<DeviceSelector>,
    /// `ExactCount` (default) or `All`.
    pub allocation_mode: String,
    /// How many devices, for `ExactCount`.
    pub count: i64,
    /// Device taints tolerated.
    #[serde(deserialize_with = "null_as_default")]
    pub tolerations: Vec<DeviceToleration>,
    /// Capacity to consume.
    pub capacity: Option<CapacityRequirements>,
    /// Alpha `derivedAttributes`.
    #[serde(deserialize_with = "null_as_default")]
    pub derived_attributes: Vec<serde_json::Value>,
}

/// `capacity` of a request.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CapacityRequirements {
    /// Amount by capacity name.
    #[serde(deserialize_with = "null_as_default")]
    pub requests: BTreeMap<String, String>,
}

/// A selector: only CEL exists.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DeviceSelector {
    /// The CEL expression.
    pub cel: Option<CelSelector>,
}

/// A CEL selector.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CelSelector {
    /// The expression, which must evaluate to a bool.
    pub expression: String,
}

/// A constraint across the devices of some (or all) requests.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceConstraint {
    /// The requests it applies to; empty: all.
    #[serde(deserialize_with = "null_as_default")]
    pub requests: Vec<String>,
    /// Every device must have this attribute, with the same value.
    pub match_attribute: Option<String>,
    /// Every device must have this attribute, each with a different value.
    pub distinct_attribute: Option<String>,
}

/// A claim's configuration entry, kept as written (copied into allocations).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClaimConfig {
    /// The requests it applies to; empty: all.
    #[serde(deserialize_with = "null_as_default")]
    pub requests: Vec<String>,
    /// `opaque` (driver parameters), kept verbatim.
    pub opaque: Option<serde_json::Value>,
}

/// A toleration of device taints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceToleration {
    /// The taint key; empty with `Exists` matches every key.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// `Equal` (the default) or `Exists`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub operator: String,
    /// The value, for `Equal`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// The effect; empty matches all.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub effect: String,
    /// For `NoExecute`: how long the device may stay in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

impl DeviceToleration {
    /// Whether this toleration tolerates `taint` (upstream's `ToleratesTaint`).
    pub fn tolerates(&self, taint: &DeviceTaint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator.as_str() {
            "" | "Equal" => self.value == taint.value,
            "Exists" => true,
            _ => false,
        }
    }
}

/// `status` of a claim.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClaimStatus {
    /// The allocation, once made.
    pub allocation: Option<AllocationResult>,
    /// Who uses the claim (at most 256).
    #[serde(deserialize_with = "null_as_default")]
    pub reserved_for: Vec<ConsumerRef>,
    /// Per-device status written by drivers (binding conditions).
    #[serde(deserialize_with = "null_as_default")]
    pub devices: Vec<AllocatedDeviceStatus>,
}

/// One consumer of a claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumerRef {
    /// API group; empty for pods.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// `pods`.
    pub resource: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// A claim's allocation: which devices, and where they can be used.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AllocationResult {
    /// The devices and their configuration.
    pub devices: DeviceAllocation,
    /// The nodes the devices are reachable from; `None`: every node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<WireNodeSelector>,
    /// When the allocation was made (written when devices have binding conditions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocation_timestamp: Option<String>,
}

impl AllocationResult {
    /// The node selector, compiled; `None`: every node.
    pub fn nodes(&self) -> Option<NodeSelector> {
        self.node_selector.as_ref().map(WireNodeSelector::to_model)
    }
}

/// `allocation.devices`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct DeviceAllocation {
    /// One entry per allocated device.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_as_default")]
    pub results: Vec<DeviceResult>,
    /// Configuration from the classes and the claim.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_as_default")]
    pub config: Vec<AllocationConfig>,
}

/// One allocated device.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceResult {
    /// The request (or `request/subrequest`) it satisfies.
    pub request: String,
    /// Driver.
    pub driver: String,
    /// Pool.
    pub pool: String,
    /// Device name.
    pub device: String,
    /// Set when the request asked for admin access.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_access: Option<bool>,
    /// The request's tolerations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_as_default")]
    pub tolerations: Vec<DeviceToleration>,
    /// Conditions the device's driver must report before the pod binds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_as_default")]
    pub binding_conditions: Vec<String>,
    /// Conditions that, when true, fail the binding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_as_default")]
    pub binding_failure_conditions: Vec<String>,
    /// For a device shared by several allocations: this allocation's share.
    #[serde(rename = "shareID", skip_serializing_if = "Option::is_none")]
    pub share_id: Option<String>,
    /// Capacity this allocation consumes of a shared device.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[serde(deserialize_with = "null_as_default")]
    pub consumed_capacity: BTreeMap<String, String>,
}

/// One configuration entry of an allocation.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct AllocationConfig {
    /// `FromClass` or `FromClaim`.
    pub source: String,
    /// The requests it applies to; empty: all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "null_as_default")]
    pub requests: Vec<String>,
    /// Opaque driver parameters, verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque: Option<serde_json::Value>,
}

/// A driver's status of one allocated device.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AllocatedDeviceStatus {
    /// Driver.
    pub driver: String,
    /// Pool.
    pub pool: String,
    /// Device.
    pub device: String,
    /// Conditions (binding conditions are read from here).
    #[serde(deserialize_with = "null_as_default")]
    pub conditions: Vec<Condition>,
}

/// A `metav1.Condition`, the fields read.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Condition {
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

/// A ResourceClaimTemplate: the claim the resourceclaim controller makes for
/// each pod that names it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResourceClaimTemplate {
    /// Metadata.
    pub metadata: Meta,
    /// The claim to make.
    pub spec: TemplateSpec,
}

/// A template's `spec`: the claim's metadata (labels, annotations) and spec,
/// kept as written so the claim made from it is exactly what it says.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TemplateSpec {
    /// Labels and annotations for the claim.
    pub metadata: serde_json::Value,
    /// The claim's spec.
    pub spec: serde_json::Value,
}

/// A ResourceSlice: devices a driver publishes, in one pool.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResourceSlice {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    pub spec: SliceSpec,
}

/// `spec` of a slice.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SliceSpec {
    /// The driver.
    pub driver: String,
    /// The pool this slice belongs to.
    pub pool: ResourcePool,
    /// The node the devices are on (exactly one of nodeName, nodeSelector,
    /// allNodes, perDeviceNodeSelection is set).
    pub node_name: Option<String>,
    /// The nodes the devices are reachable from.
    pub node_selector: Option<WireNodeSelector>,
    /// Reachable from every node.
    pub all_nodes: Option<bool>,
    /// Each device says where it is reachable from.
    pub per_device_node_selection: Option<bool>,
    /// The devices.
    #[serde(deserialize_with = "null_as_default")]
    pub devices: Vec<Device>,
    /// Counters shared by the pool's devices (partitionable devices).
    #[serde(deserialize_with = "null_as_default")]
    pub shared_counters: Vec<CounterSet>,
}

/// `spec.pool`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourcePool {
    /// Pool name.
    pub name: String,
    /// Generation: slices of an older one are out of date.
    pub generation: i64,
    /// How many slices the pool has in this generation.
    pub resource_slice_count: i64,
}

/// A named set of counters.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CounterSet {
    /// Name, unique in the pool.
    pub name: String,
    /// Counter name → value.
    #[serde(deserialize_with = "null_as_default")]
    pub counters: BTreeMap<String, Counter>,
}

/// One counter.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Counter {
    /// The amount.
    pub value: String,
}

/// One device of a slice.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Device {
    /// Name, unique in the pool.
    pub name: String,
    /// Attributes by (qualified) name.
    #[serde(deserialize_with = "null_as_default")]
    pub attributes: BTreeMap<String, DeviceAttribute>,
    /// Capacities by (qualified) name.
    #[serde(deserialize_with = "null_as_default")]
    pub capacity: BTreeMap<String, DeviceCapacity>,
    /// Counters this device consumes while allocated.
    #[serde(deserialize_with = "null_as_default")]
    pub consumes_counters: Vec<CounterConsumption>,
    /// With `perDeviceNodeSelection`: the device's node.
    pub node_name: Option<String>,
    /// With `perDeviceNodeSelection`: the nodes it is reachable from.
    pub node_selector: Option<WireNodeSelector>,
    /// With `perDeviceNodeSelection`: reachable from every node.
    pub all_nodes: Option<bool>,
    /// Taints of the device.
    #[serde(deserialize_with = "null_as_default")]
    pub taints: Vec<DeviceTaint>,
    /// Binds the allocation to the node it was made for.
    pub binds_to_node: Option<bool>,
    /// Conditions that must be true before a pod using it binds.
    #[serde(deserialize_with = "null_as_default")]
    pub binding_conditions: Vec<String>,
    /// Conditions that fail the binding.
    #[serde(deserialize_with = "null_as_default")]
    pub binding_failure_conditions: Vec<String>,
    /// Several allocations may share the device (consumable capacity).
    pub allow_multiple_allocations: Option<bool>,
}

/// One attribute value: exactly one of the fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DeviceAttribute {
    /// `int`.
    pub int: Option<i64>,
    /// `bool`.
    pub bool: Option<bool>,
    /// `string`.
    pub string: Option<String>,
    /// `version` (semver).
    pub version: Option<String>,
}

/// One capacity of a device.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceCapacity {
    /// The total.
    pub value: String,
    /// How allocations may consume it.
    pub request_policy: Option<RequestPolicy>,
}

/// `requestPolicy` of a capacity.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestPolicy {
    /// Consumed when the request names no amount.
    pub default: Option<String>,
    /// The only amounts allowed (requests round up to one).
    #[serde(deserialize_with = "null_as_default")]
    pub valid_values: Vec<String>,
    /// A range of amounts, in steps.
    pub valid_range: Option<ValidRange>,
}

/// `validRange`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ValidRange {
    /// Minimum.
    pub min: Option<String>,
    /// Maximum.
    pub max: Option<String>,
    /// Step from the minimum.
    pub step: Option<String>,
}

/// Counters a device consumes, from one counter set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CounterConsumption {
    /// The counter set.
    pub counter_set: String,
    /// Counter name → amount.
    #[serde(deserialize_with = "null_as_default")]
    pub counters: BTreeMap<String, Counter>,
    /// Alpha compatibility groups (Berth, as upstream with the gate off, ignores slices using them).
    #[serde(deserialize_with = "null_as_default")]
    pub compatibility_groups: Vec<String>,
}

/// A taint on a device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceTaint {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// `NoSchedule`, `NoExecute` or `None`.
    pub effect: String,
}

/// A DeviceClass.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeviceClass {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    pub spec: DeviceClassSpec,
}

/// `spec` of a class.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceClassSpec {
    /// Selectors every device of the class passes.
    #[serde(deserialize_with = "null_as_default")]
    pub selectors: Vec<DeviceSelector>,
    /// Configuration copied into allocations.
    #[serde(deserialize_with = "null_as_default")]
    pub config: Vec<ClaimConfig>,
    /// The extended resource this class backs (`example.com/gpu`).
    pub extended_resource_name: Option<String>,
}

/// A DeviceTaintRule: a taint added to the devices it selects.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeviceTaintRule {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    pub spec: DeviceTaintRuleSpec,
}

/// `spec` of a taint rule.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceTaintRuleSpec {
    /// Which devices; `None` selects none (as upstream).
    pub device_selector: Option<TaintSelector>,
    /// The taint.
    pub taint: DeviceTaint,
}

/// `deviceSelector` of a taint rule: fields that all must match.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TaintSelector {
    /// The driver.
    pub driver: Option<String>,
    /// The pool.
    pub pool: Option<String>,
    /// The device.
    pub device: Option<String>,
}

impl TaintSelector {
    /// Whether the device `driver/pool/device` is selected.
    pub fn selects(&self, driver: &str, pool: &str, device: &str) -> bool {
        self.driver.as_deref().is_none_or(|d| d == driver)
            && self.pool.as_deref().is_none_or(|p| p == pool)
            && self.device.as_deref().is_none_or(|d| d == device)
    }
}
