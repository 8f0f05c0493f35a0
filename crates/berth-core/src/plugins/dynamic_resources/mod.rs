//! DynamicResources, as upstream's `dynamicresources` plugin in Kubernetes
//! 1.37: pods get devices (GPUs, NICs, accelerators) through ResourceClaims
//! that Berth allocates from the devices drivers publish in ResourceSlices.
//!
//! - **PreEnqueue**: every claim of the pod must exist (a claim from a
//!   template is made by the resourceclaim controller, which names it in
//!   the pod's `status.resourceClaimStatuses`), not be being deleted, and a
//!   template's claim must be owned by the pod.
//! - **PreFilter**: claims in use by other pods make the pod wait; an
//!   allocated claim restricts the nodes to its allocation's node
//!   selector; unallocated claims need their DeviceClasses; the allocator
//!   is prepared with the devices allocated now, in-flight ones included.
//! - **Filter**: per node, the structured allocator ([`allocator`]) looks
//!   for devices for every unallocated claim.
//! - **PostFilter**: a claim allocated where the pod cannot run, and used by
//!   no one else, is deallocated so the next attempt can choose again.
//! - **Score** (prioritized lists): nodes where earlier `firstAvailable`
//!   alternatives were allocated score higher.
//! - **Reserve** keeps the chosen devices in flight ([`tracker`]) so no
//!   other pod gets them; **Unreserve** releases them.
//! - **PreBind** writes each claim: the finalizer, `status.allocation`, the
//!   pod in `status.reservedFor`, then waits for devices' binding
//!   conditions, at most `bindingTimeout`.
//!
//! - **Extended resources backed by DRA** ([`extended`]): a pod asking for
//!   `example.com/gpu: 2`, where a DeviceClass names that resource, gets two
//!   devices of the class on a node whose allocatable lacks the resource;
//!   NodeResourcesFit leaves such requests to this plugin. PreBind creates
//!   the claim (owned by the pod) and records it in the pod's
//!   `status.extendedResourceClaimStatus`.

pub mod allocator;
pub mod capacity;
pub mod extended;
pub mod inventory;
pub mod objects;
pub mod pools;
pub mod qty;
pub mod tracker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use self::allocator::{AllocError, Allocator};
use self::extended::{Delegated, RequestMapping, Resolver, DELEGATED_KEY, IN_MEMORY_NAME};
use self::objects::*;
use self::tracker::Tracker;
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::{NodeSelector, Pod};

/// The plugin's name.
pub const NAME: &str = "DynamicResources";
/// Filter's reason when a node's devices cannot satisfy the pod's claims.
const CANNOT_ALLOCATE: &str = "cannot allocate all claims";
const STATE_KEY: &str = "DynamicResources";

/// `DynamicResourcesArgs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Args {
    filter_timeout: Option<String>,
    binding_timeout: Option<String>,
}

/// Upstream's defaults (`DRASchedulerFilterTimeout` is beta and on).
const FILTER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
const BINDING_TIMEOUT_DEFAULT: Duration = Duration::from_secs(600);

fn duration_arg(field: &str, value: &Option<String>, min: Duration, rule: &str) -> Result<Option<Duration>, String> {
    let Some(v) = value else { return Ok(None) };
    if v.trim_start().starts_with('-') {
        return Err(format!("{field}: Invalid value: {v:?}: {rule}"));
    }
    let d = crate::config::parse_duration(v).map_err(|e| format!("{field}: {e}"))?;
    if d < min {
        return Err(format!("{field}: Invalid value: {v:?}: {rule}"));
    }
    Ok(Some(d))
}

/// The plugin.
pub struct DynamicResources {
    /// Declares the kind (the runtime watches it); claims are read through the tracker.
    _claims: Store<ResourceClaim>,
    slices: Store<ResourceSlice>,
    classes: Store<DeviceClass>,
    rules: Store<DeviceTaintRule>,
    tracker: Arc<Tracker>,
    filter_timeout: Option<Duration>,
    binding_timeout: Duration,
    handle: Handle,
    /// The extended resource names the classes back, for the classes' store generation.
    resolver: Mutex<Option<(u64, Arc<Resolver>)>>,
}

/// Per claim of the pod, what PreFilter found (upstream's `informationForClaim`).
#[derive(Clone, Default)]
struct ClaimInfo {
    /// An allocated claim's nodes (`None`: every node).
    available_on: Option<NodeSelector>,
    /// The allocation Reserve chose (or a group member's in flight).
    allocation: Option<AllocationResult>,
}

/// The cycle state.
#[derive(Clone, Default)]
struct State {
    /// The pod's claims, in `spec.resourceClaims` order.
    claims: Vec<Arc<ResourceClaim>>,
    info: Vec<ClaimInfo>,
    /// Indexes (into `claims`) of the claims the allocator allocates.
    to_allocate: Vec<usize>,
    /// Some claim needs an allocation (by the allocator, or one in flight).
    allocating: bool,
    allocator: Option<Arc<Allocator>>,
    /// What Filter found, per node: the allocator's devices (written out
    /// as results only for the node Reserve gets), then allocations in flight.
    node_allocations: Arc<Mutex<HashMap<String, NodeAllocation>>>,
    /// Claims found not available on some node (PostFilter may deallocate them).
    unavailable: Arc<Mutex<BTreeSet<usize>>>,
    /// The pod's extended resources backed by DRA; their claim is the last
    /// of `claims`.
    ext: Option<Arc<Extended>>,
    /// Reserve: the containers' mappings to the extended-resource claim's
    /// requests on the chosen node (written to the pod's status in PreBind).
    ext_mappings: Vec<RequestMapping>,
}

/// A pod's non-zero requests of extended resources, and the classes' resolver.
type ExtendedRequests = (Vec<(String, i64)>, Arc<Resolver>);

/// A pod's extended resources backed by DRA, for one attempt.
struct Extended {
    /// The pod's requests of such resources, by name, non-zero.
    scalars: Vec<(String, i64)>,
    resolver: Arc<Resolver>,
    /// The UID the claim has while it exists only here (in-flight
    /// allocations are kept by UID).
    temp_uid: String,
    /// The claims the allocator allocates besides this one.
    user_claims: Vec<Arc<ResourceClaim>>,
    /// What an allocator starts from: devices, those allocated, classes.
    inventory: Arc<inventory::Inventory>,
    allocated: Arc<allocator::AllocatedState>,
    classes: HashMap<String, Arc<DeviceClass>>,
    /// Per set of resources a node needs from DRA (nodes differ in what
    /// their allocatable has): the node's variant of the claim, the
    /// containers' mappings, and an allocator for the user claims and it.
    variants: Mutex<HashMap<Vec<String>, Arc<Variant>>>,
}

impl State {
    /// The extended-resource claim `node` needs (upstream's
    /// `filterExtendedResources`): what its allocatable lacks, DRA must
    /// provide; `Err` is Filter's verdict when the node cannot do either.
    fn extended_variant(&self, pod: &PodInfo, node: &NodeInfo) -> Result<Option<Arc<Variant>>, Status> {
        let Some(x) = &self.ext else { return Ok(None) };
        let claim = self.claims.last().expect("the extended-resource claim is last");
        if !claim.spec.devices.requests.is_empty() {
            return Err(Status::unresolvable("cannot schedule extended resource claim"));
        }
        let alloc = node.allocatable();
        let mut needed = BTreeMap::new();
        for (r, q) in &x.scalars {
            let have = alloc.scalar.binary_search_by(|(n, _)| (**n).cmp(r.as_str())).ok().map(|i| alloc.scalar[i].1);
            if x.resolver.class(r).is_some() && have.unwrap_or(0) == 0 {
                needed.insert(r.clone(), *q);
            } else if have.is_none() {
                return Err(Status::unresolvable("cannot fit resource"));
            }
        }
        if needed.is_empty() || claim.status.allocation.is_some() {
            return Ok(None);
        }
        Ok(Some(x.variant(&pod.pod, claim, needed)))
    }

    /// The allocator for a node: the variant's, else the one for the user claims.
    fn allocator_for(&self, variant: &Option<Arc<Variant>>) -> Option<Arc<Allocator>> {
        variant.as_ref().map(|v| v.allocator.clone()).or_else(|| self.allocator.clone())
    }
}

impl Extended {
    /// The claim, mappings and allocator for a node that needs `needed`
    /// from DRA; `base` is the claim as PreFilter made it.
    fn variant(&self, pod: &Pod, base: &ResourceClaim, needed: BTreeMap<String, i64>) -> Arc<Variant> {
        let key: Vec<String> = needed.keys().cloned().collect();
        let mut variants = lock(&self.variants);
        if let Some(v) = variants.get(&key) {
            return v.clone();
        }
        let (requests, mappings) = extended::requests_and_mappings(pod, &needed, &self.resolver);
        let mut claim = base.clone();
        claim.spec.devices.requests = requests;
        let claim = Arc::new(claim);
        let mut claims = self.user_claims.clone();
        claims.push(claim.clone());
        let allocator = Arc::new(Allocator::new(self.inventory.clone(), self.allocated.clone(), self.classes.clone(), claims));
        let v = Arc::new(Variant { claim, mappings, allocator });
        variants.insert(key, v.clone());
        v
    }
}

/// The extended-resource claim as one kind of node needs it.
struct Variant {
    claim: Arc<ResourceClaim>,
    mappings: Vec<RequestMapping>,
    allocator: Arc<Allocator>,
}

/// What Filter found on one node.
#[derive(Clone)]
struct NodeAllocation {
    /// The allocator's devices for the claims it allocates.
    found: Option<Arc<allocator::Found>>,
    /// The allocator that found them.
    allocator: Option<Arc<Allocator>>,
    /// The extended-resource claim this node needs, if it needs one.
    ext: Option<Arc<Variant>>,
    /// Allocations in flight that the pod shares (a group member's).
    pending: Vec<AllocationResult>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reason a pod's claims cannot be used, as upstream's `foreachPodResourceClaim` words it.
fn claim_name(pod: &Pod, c: &crate::model::PodResourceClaim) -> Result<Option<(String, bool)>, String> {
    if let Some(n) = &c.resource_claim_name {
        return Ok(Some((n.clone(), false)));
    }
    if c.resource_claim_template_name.is_some() {
        return match pod.resource_claim_statuses.iter().find(|s| s.name == c.name) {
            Some(s) => Ok(s.resource_claim_name.clone().map(|n| (n, true))),
            None => Err(format!("pod \"{}/{}\": ResourceClaim not created yet", pod.namespace, pod.name)),
        };
    }
    Err(format!("pod \"{}/{}\", spec.resourceClaim {:?}: none of the supported fields are set", pod.namespace, pod.name, c.name))
}

/// The pod's claims, or why they cannot be used (upstream's
/// `foreachPodResourceClaim`).
fn pod_claims(tracker: &Tracker, pod: &Pod) -> Result<Vec<Arc<ResourceClaim>>, String> {
    let mut out = Vec::with_capacity(pod.resource_claims.len());
    for c in &pod.resource_claims {
        let Some((name, must_own)) = claim_name(pod, c)? else { continue };
        let Some(claim) = tracker.get(&pod.namespace, &name) else {
            return Err(format!("could not find ResourceClaim \"{}/{name}\"", pod.namespace));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(format!("resourceclaim {name:?} is being deleted"));
        }
        if must_own && !claim.is_controlled_by(&pod.uid) {
            return Err(format!(
                "ResourceClaim {}/{name} was not created for Pod {}/{} (Pod is not owner)",
                pod.namespace, pod.namespace, pod.name
            ));
        }
        out.push(claim);
    }
    Ok(out)
}

/// Upstream's `isSchedulableAfterClaimChange`, from what the tracker saw
/// the claim's last change do.
fn hint_claim_change(tracker: &Tracker, pod: &Pod, event: &EventObject) -> QueueingHint {
    let EventObject::Object(key) = event else { return QueueingHint::Queue };
    let Some(change) = tracker.last_change(key) else { return QueueingHint::Queue };
    if change.deleted {
        return if change.freed { QueueingHint::Queue } else { QueueingHint::Skip };
    }
    // Most events are about other pods' claims: settle those by name alone
    // (the answer is Skip however the pod's own claims stand), without
    // looking the pod's claims up. Every pending pod is asked on every
    // claim event.
    let named = !change.freed
        && key.namespace == pod.namespace
        && pod.resource_claims.iter().any(|c| matches!(claim_name(pod, c), Ok(Some((n, _))) if n == key.name));
    if !change.freed && !named {
        return QueueingHint::Skip;
    }
    let uses = match pod_claims(tracker, pod) {
        Ok(claims) => claims.iter().any(|c| c.metadata.namespace == key.namespace && c.metadata.name == key.name),
        Err(_) => return QueueingHint::Skip,
    };
    if change.freed {
        return QueueingHint::Queue;
    }
    if uses && (change.created || change.status_changed) {
        return QueueingHint::Queue;
    }
    QueueingHint::Skip
}

impl DynamicResources {
    /// Builds the plugin from its args, declaring the kinds it reads.
    pub fn new(args: Option<&serde_json::Value>, handle: &Handle) -> Result<DynamicResources, String> {
        let args: Args = crate::plugins::decode_args(NAME, args)?;
        let filter_timeout = duration_arg("filterTimeout", &args.filter_timeout, Duration::ZERO, "must be zero or positive")?;
        let binding_timeout = duration_arg("bindingTimeout", &args.binding_timeout, Duration::from_secs(1), "must be at least 1 second")?;
        let tracker = Arc::new(Tracker::default());
        let observer = tracker.clone();
        Ok(DynamicResources {
            _claims: handle.objects_observed(CLAIMS, Box::new(move |key, old, new| observer.observe(key, old, new))),
            slices: handle.objects(SLICES),
            classes: handle.objects(CLASSES),
            rules: handle.objects(TAINT_RULES),
            tracker,
            filter_timeout: Some(filter_timeout.unwrap_or(FILTER_TIMEOUT_DEFAULT)).filter(|d| !d.is_zero()),
            binding_timeout: binding_timeout.unwrap_or(BINDING_TIMEOUT_DEFAULT),
            handle: handle.clone(),
            resolver: Mutex::new(None),
        })
    }

    /// Which class backs which extended resource, now.
    fn resolver(&self) -> Arc<Resolver> {
        let generation = self.classes.generation();
        let mut cached = lock(&self.resolver);
        match &*cached {
            Some((g, r)) if *g == generation => r.clone(),
            _ => {
                let r = Arc::new(Resolver::new(&self.classes.list()));
                *cached = Some((generation, r.clone()));
                r
            }
        }
    }

    /// The pod's non-zero requests of extended resources, when a class
    /// backs at least one of them (upstream's `preFilterExtendedResources`).
    fn extended_requests(&self, pod: &PodInfo) -> Option<ExtendedRequests> {
        let scalars: Vec<(String, i64)> =
            pod.requests.scalar.iter().filter(|(n, q)| extended::asks_extended(n, *q)).map(|(n, q)| (n.to_string(), *q)).collect();
        if scalars.is_empty() {
            return None;
        }
        let resolver = self.resolver();
        scalars.iter().any(|(n, _)| resolver.class(n).is_some()).then_some((scalars, resolver))
    }

    /// The claim made for the pod's extended resources in an earlier
    /// attempt, or the one to make, in memory only until PreBind.
    fn extended_claim(&self, pod: &Pod) -> Arc<ResourceClaim> {
        let made = self.tracker.list().into_iter().find(|c| {
            c.metadata.annotations.get(ANN_EXTENDED_RESOURCE_CLAIM).is_some_and(|v| v == "true")
                && c.metadata.owner_references.iter().any(|o| o.name == pod.name && o.controller == Some(true) && o.uid == pod.uid)
        });
        if let Some(c) = made {
            return c;
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut claim = ResourceClaim::default();
        claim.metadata.namespace = pod.namespace.clone();
        claim.metadata.name = IN_MEMORY_NAME.to_string();
        claim.metadata.uid = format!("{}/extended-resources/{}", pod.uid, NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        claim.metadata.annotations.insert(ANN_EXTENDED_RESOURCE_CLAIM.to_string(), "true".to_string());
        claim.metadata.owner_references.push(crate::plugins::volume::objects::OwnerRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            controller: Some(true),
        });
        Arc::new(claim)
    }

    /// Upstream's `deleteClaim`: the finalizer removed, then the claim deleted.
    fn delete_claim(&self, claim: &ResourceClaim) -> Result<(), String> {
        let writer = self.writer()?;
        let (ns, name) = (&claim.metadata.namespace, &claim.metadata.name);
        let mut current = Arc::new(claim.clone());
        for attempt in 0..5 {
            if attempt > 0 {
                current = self.reread(&current).map_err(|e| format!("get resourceclaim {ns}/{name}: {e}"))?;
            }
            if !current.metadata.finalizers.iter().any(|f| f == FINALIZER) {
                break;
            }
            let rest: Vec<&String> = current.metadata.finalizers.iter().filter(|f| *f != FINALIZER).collect();
            let patch = json!({"metadata": {"resourceVersion": current.metadata.resource_version, "finalizers": rest}});
            match writer.merge_patch(&CLAIMS, ns, name, &patch) {
                Ok(_) => break,
                Err(WriteError::Conflict { .. }) if attempt < 4 => continue,
                Err(WriteError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(format!("update resourceclaim {ns}/{name}: {e}")),
            }
        }
        match writer.delete(&CLAIMS, ns, name) {
            Ok(()) | Err(WriteError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// PreBind for the extended-resource claim: created (owned by the pod),
    /// allocated and reserved, then named in the pod's status.
    fn bind_extended_claim(&self, s: &mut State, pod: &Pod, allocation: &AllocationResult) -> Result<(), String> {
        let writer = self.writer()?.clone();
        let i = s.claims.len() - 1;
        let claim = s.claims[i].clone();
        let requests: Vec<serde_json::Value> = claim
            .spec
            .devices
            .requests
            .iter()
            .map(|r| {
                let e = r.exactly.clone().unwrap_or_default();
                json!({"name": r.name, "exactly": {"deviceClassName": e.device_class_name, "allocationMode": e.allocation_mode, "count": e.count}})
            })
            .collect();
        let object = json!({
            "metadata": {
                "generateName": format!("{}-extended-resources-", pod.name),
                "namespace": pod.namespace,
                "annotations": {ANN_EXTENDED_RESOURCE_CLAIM: "true"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid, "controller": true}],
            },
            "spec": {"devices": {"requests": requests}},
        });
        let created = writer
            .create(&CLAIMS, &pod.namespace, &object)
            .map_err(|e| format!("create claim for extended resources {}/: {e}", pod.namespace))?;
        let created: ResourceClaim =
            serde_json::from_value(created).map_err(|e| format!("create claim for extended resources {}/: {e}", pod.namespace))?;
        let created = Arc::new(created);
        // From here Unreserve deletes it.
        s.claims[i] = created.clone();
        s.claims[i] = self.bind_claim(&created, Some(allocation), pod)?;
        if s.ext_mappings.is_empty() {
            return Err(format!(
                "nil or empty request mappings, no update of pod {}/{} ExtendedResourceClaimStatus",
                pod.namespace, pod.name
            ));
        }
        let patch = json!({"status": {"extendedResourceClaimStatus": {
            "requestMappings": s.ext_mappings,
            "resourceClaimName": s.claims[i].metadata.name,
        }}});
        writer
            .merge_patch_status(&PODS, &pod.namespace, &pod.name, &patch)
            .map_err(|e| format!("update pod {}/{} ExtendedResourceClaimStatus: {e}", pod.namespace, pod.name))?;
        Ok(())
    }

    fn class_map(&self) -> HashMap<String, Arc<DeviceClass>> {
        self.classes.list().into_iter().map(|c| (c.metadata.name.clone(), c)).collect()
    }

    /// The inventory of devices and what is allocated now.
    fn inventory(&self) -> (Arc<inventory::Inventory>, Arc<allocator::AllocatedState>) {
        let key = (self.slices.generation(), self.rules.generation());
        self.tracker.snapshot(key, || {
            let slices = self.slices.list();
            let rules = self.rules.list();
            inventory::Inventory::build(slices.iter().map(|s| &**s), &rules)
        })
    }

    fn writer(&self) -> Result<&Arc<dyn ObjectWriter>, String> {
        self.handle.writer().ok_or_else(|| "this runtime cannot write ResourceClaims".to_string())
    }

    /// Re-reads a claim after a conflict: from the API where the runtime
    /// can read, else from the watch.
    fn reread(&self, claim: &ResourceClaim) -> Result<Arc<ResourceClaim>, String> {
        let (ns, name) = (&claim.metadata.namespace, &claim.metadata.name);
        if let Ok(w) = self.writer() {
            match w.get(&CLAIMS, ns, name) {
                Ok(v) => return serde_json::from_value::<ResourceClaim>(v).map(Arc::new).map_err(|e| e.to_string()),
                Err(WriteError::NotFound { .. }) => return Err(format!("resourceclaims.resource.k8s.io {name:?} not found")),
                Err(_) => {}
            }
        }
        self.tracker.get(ns, name).ok_or_else(|| format!("resourceclaims.resource.k8s.io {name:?} not found"))
    }

    /// Upstream's `bindClaim`: the finalizer, the allocation and the pod's
    /// reservation written; retried on conflicts as `retry.DefaultRetry`.
    fn bind_claim(
        &self,
        claim: &Arc<ResourceClaim>,
        allocation: Option<&AllocationResult>,
        pod: &Pod,
    ) -> Result<Arc<ResourceClaim>, String> {
        let writer = self.writer()?.clone();
        let mut current = claim.clone();
        let key = format!("{}/{}", claim.metadata.namespace, claim.metadata.name);
        let mut delay = Duration::from_millis(10);
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(delay);
                delay *= 2;
                current = self.reread(&current).map_err(|e| format!("get updated claim {key} after conflict: {e}"))?;
            }
            if current.metadata.deletion_timestamp.is_some() {
                return Err(format!("claim {key} got deleted in the meantime"));
            }
            let mut meta_version = current.metadata.resource_version.clone();
            if allocation.is_some() {
                if current.status.allocation.is_some() {
                    return Err(format!("claim {key} got allocated elsewhere in the meantime"));
                }
                if !current.metadata.finalizers.iter().any(|f| f == FINALIZER) {
                    let mut finalizers = current.metadata.finalizers.clone();
                    finalizers.push(FINALIZER.to_string());
                    let patch = json!({"metadata": {"resourceVersion": meta_version, "finalizers": finalizers}});
                    match writer.merge_patch(&CLAIMS, &current.metadata.namespace, &current.metadata.name, &patch) {
                        Ok(v) => {
                            meta_version = v.pointer("/metadata/resourceVersion").and_then(|r| r.as_str()).unwrap_or_default().to_string();
                        }
                        Err(WriteError::Conflict { .. }) => continue,
                        Err(e) => return Err(format!("add finalizer to claim {key}: {e}")),
                    }
                }
            }
            let mut status_allocation = current.status.allocation.clone();
            if let Some(a) = allocation {
                status_allocation = Some(a.clone());
            }
            let Some(mut alloc) = status_allocation else {
                return Err(format!("claim {key} got deallocated elsewhere in the meantime"));
            };
            if alloc.allocation_timestamp.is_none() {
                alloc.allocation_timestamp = Some(now_rfc3339());
            }
            let mut reserved = current.status.reserved_for.clone();
            reserved.push(ConsumerRef { api_group: String::new(), resource: "pods".into(), name: pod.name.clone(), uid: pod.uid.clone() });
            let patch = json!({
                "metadata": {"resourceVersion": meta_version},
                "status": {"allocation": alloc, "reservedFor": reserved},
            });
            match writer.merge_patch_status(&CLAIMS, &current.metadata.namespace, &current.metadata.name, &patch) {
                Ok(v) => {
                    let written: ResourceClaim = serde_json::from_value(v).map_err(|e| format!("decode written claim {key}: {e}"))?;
                    let written = Arc::new(written);
                    self.tracker.assume((*written).clone());
                    return Ok(written);
                }
                Err(WriteError::Conflict { .. }) => continue,
                Err(e) => {
                    return Err(if allocation.is_some() {
                        format!("add allocation and reservation to claim {key}: {e}")
                    } else {
                        format!("add reservation to claim {key}: {e}")
                    })
                }
            }
        }
        Err(format!("claim {key}: the object has been modified; please apply your changes to the latest version and try again"))
    }

    /// Removes the pod from a claim's `status.reservedFor` (Unreserve).
    fn unreserve_claim(&self, claim: &ResourceClaim, pod: &Pod) {
        let Ok(writer) = self.writer() else { return };
        let mut current = Arc::new(claim.clone());
        for attempt in 0..5 {
            if attempt > 0 {
                match self.reread(&current) {
                    Ok(c) => current = c,
                    Err(_) => return,
                }
            }
            if !current.is_reserved_for(&pod.uid) {
                return;
            }
            let reserved: Vec<&ConsumerRef> = current.status.reserved_for.iter().filter(|r| r.uid != pod.uid).collect();
            let patch = json!({
                "metadata": {"resourceVersion": current.metadata.resource_version},
                "status": {"reservedFor": if reserved.is_empty() { serde_json::Value::Null } else { json!(reserved) }},
            });
            match writer.merge_patch_status(&CLAIMS, &current.metadata.namespace, &current.metadata.name, &patch) {
                Ok(v) => {
                    if let Ok(c) = serde_json::from_value::<ResourceClaim>(v) {
                        self.tracker.assume(c);
                    }
                    return;
                }
                Err(WriteError::Conflict { .. }) => continue,
                // Retried when the pod is scheduled again.
                Err(_) => return,
            }
        }
    }

    /// Upstream's `isClaimReadyForBinding`: `Err` when a binding failure
    /// condition is true.
    fn ready_for_binding(claim: &ResourceClaim) -> Result<bool, String> {
        let Some(alloc) = &claim.status.allocation else { return Ok(false) };
        for r in &alloc.devices.results {
            if r.binding_conditions.is_empty() {
                continue;
            }
            let Some(status) = claim.status.devices.iter().find(|d| d.device == r.device && d.driver == r.driver && d.pool == r.pool)
            else {
                return Ok(false);
            };
            for c in &r.binding_failure_conditions {
                if let Some(f) = status.conditions.iter().find(|x| &x.kind == c && x.status == "True") {
                    return Err(format!(
                        "device binding failed: claim={}, reason={}, message={:?}",
                        claim.metadata.name, f.reason, f.message
                    ));
                }
            }
            if !r.binding_conditions.iter().all(|c| status.conditions.iter().any(|x| &x.kind == c && x.status == "True")) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Upstream's `isClaimTimeout`.
    fn binding_timed_out(&self, claim: &ResourceClaim) -> bool {
        let Some(alloc) = &claim.status.allocation else { return false };
        let Some(ts) = alloc.allocation_timestamp.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok()) else { return false };
        if !alloc.devices.results.iter().any(|r| !r.binding_conditions.is_empty()) {
            return false;
        }
        // A timeout beyond the calendar's end never passes.
        let timeout = jiff::SignedDuration::try_from(self.binding_timeout).unwrap_or(jiff::SignedDuration::MAX);
        ts.checked_add(timeout).is_ok_and(|deadline| deadline < jiff::Timestamp::now())
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or(jiff::Timestamp::now()).to_string()
}

fn state_of(state: &CycleState) -> Option<&State> {
    state.read::<State>(STATE_KEY)
}

/// Upstream's `computeScore`: for each claim, each allocated subrequest of
/// a `firstAvailable` request scores `8 - its position`. `allocated` holds,
/// per claim without an allocation, the requests that got devices.
fn compute_score(claims: &[Arc<ResourceClaim>], allocated: &[Vec<String>]) -> Result<i64, String> {
    let mut score = 0;
    let mut next = 0;
    for claim in claims {
        let requests: Vec<&str> = match &claim.status.allocation {
            Some(a) => a.devices.results.iter().map(|r| r.request.as_str()).collect(),
            None => {
                let Some(a) = allocated.get(next) else {
                    return Err(format!("number of allocations {} is smaller than number of claims needing allocation", allocated.len()));
                };
                next += 1;
                a.iter().map(String::as_str).collect()
            }
        };
        let subs: BTreeSet<&str> = requests.into_iter().filter(|r| r.split('/').count() == 2).collect();
        for req in &claim.spec.devices.requests {
            if req.exactly.is_some() {
                continue;
            }
            for (i, sub) in req.first_available.iter().enumerate() {
                if subs.contains(format!("{}/{}", req.name, sub.name).as_str()) {
                    score += FIRST_AVAILABLE_MAX_SIZE - i as i64;
                }
            }
        }
    }
    Ok(score)
}

/// The devices allocated to `pod`'s resource claims, by the pod's claim
/// name, read through the handle's writer (the API server in `berth run`,
/// the manifests' objects in `berth simulate`): what a plugin of the binding
/// cycle (PreBind after DynamicResources', Bind, PostBind) reads to learn
/// which devices its pod got. A claim not allocated (yet) has no devices;
/// a pod claim that needs no claim is left out. The claim made for the
/// pod's extended resources backed by DRA (`example.com/gpu: 2` on a node
/// without that allocatable) comes last, under its ResourceClaim's name,
/// once PreBind has written it into the pod's
/// `status.extendedResourceClaimStatus`.
pub fn allocated_devices(handle: &Handle, pod: &Pod) -> Result<Vec<(String, Vec<DeviceResult>)>, String> {
    let writer = handle.writer().ok_or("this runtime cannot read ResourceClaims")?;
    let allocation = |name: &str| -> Result<Vec<DeviceResult>, String> {
        let claim = writer.get(&CLAIMS, &pod.namespace, name).map_err(|e| e.to_string())?;
        let claim: ResourceClaim = serde_json::from_value(claim).map_err(|e| format!("resourceclaim {}/{name}: {e}", pod.namespace))?;
        Ok(claim.status.allocation.map(|a| a.devices.results).unwrap_or_default())
    };
    let mut out = Vec::new();
    for c in &pod.resource_claims {
        let Some((name, _)) = claim_name(pod, c)? else { continue };
        out.push((c.name.clone(), allocation(&name)?));
    }
    if let Some(name) = extended_claim_name(writer.as_ref(), pod)? {
        let devices = allocation(&name)?;
        out.push((name, devices));
    }
    Ok(out)
}

/// The claim made for `pod`'s extended resources, as its status names it:
/// from `pod` itself, else (the pod in hand predates PreBind's write) read
/// again, only for a pod asking for an extended resource at all.
fn extended_claim_name(writer: &dyn ObjectWriter, pod: &Pod) -> Result<Option<String>, String> {
    if let Some(name) = &pod.extended_resource_claim {
        return Ok(Some(name.clone()));
    }
    if !extended::pod_asks_extended(pod) {
        return Ok(None);
    }
    let now = writer.get(&PODS, &pod.namespace, &pod.name).map_err(|e| e.to_string())?;
    Ok(now.pointer("/status/extendedResourceClaimStatus/resourceClaimName").and_then(|n| n.as_str()).map(str::to_string))
}

#[crate::plugin]
impl Plugin for DynamicResources {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        let tracker = self.tracker.clone();
        vec![
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::Node,
                action::ADD | action::UPDATE_NODE_LABEL | action::UPDATE_NODE_ALLOCATABLE,
                "NodeChange",
            )),
            ClusterEventWithHint::with_hint(
                ClusterEvent::new(EventResource::Object(CLAIMS), action::ADD | action::UPDATE | action::DELETE, "ResourceClaimChange"),
                move |pod: &Pod, e: &EventObject| hint_claim_change(&tracker, pod, e),
            ),
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::Object(CLASSES), action::ADD | action::UPDATE, "DeviceClassChange")),
            ClusterEventWithHint::new(ClusterEvent::new(
                EventResource::Object(SLICES),
                action::ADD | action::UPDATE,
                "ResourceSliceChange",
            )),
            // Upstream sees a rule's change as changes of the slices it patches.
            ClusterEventWithHint::new(ClusterEvent::new(EventResource::Object(TAINT_RULES), action::ALL, "ResourceSliceChange")),
        ]
    }

    fn pre_enqueue(&self, pod: &Pod) -> Status {
        if pod.resource_claims.is_empty() {
            return Status::success();
        }
        match pod_claims(&self.tracker, pod) {
            Ok(_) => Status::success(),
            Err(reason) => Status::unresolvable(reason),
        }
    }

    fn pre_filter(&self, state: &mut CycleState, pod_info: &PodInfo, _snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        let pod = &pod_info.pod;
        let ext_requests = self.extended_requests(pod_info);
        if pod.resource_claims.is_empty() && ext_requests.is_none() {
            return (None, Status::skip());
        }
        let mut claims = match pod_claims(&self.tracker, pod) {
            Ok(c) => c,
            Err(reason) => return (None, Status::unresolvable(reason)),
        };
        if claims.is_empty() && ext_requests.is_none() {
            return (None, Status::skip());
        }
        // The claim for extended resources comes last.
        let ext_claim = ext_requests.as_ref().map(|_| self.extended_claim(pod));
        let ext_index = ext_claim.as_ref().map(|_| claims.len());
        claims.extend(ext_claim.clone());
        let group = self.handle.pod_group_of(&pod.key());
        let mut s = State { info: vec![ClaimInfo::default(); claims.len()], ..State::default() };
        for (i, claim) in claims.iter().enumerate() {
            if Some(i) == ext_index {
                // Allocated per node, for what the node lacks; one made in
                // an earlier attempt is refused by Filter and deleted.
                if claim.status.allocation.is_none() && claim.spec.devices.requests.is_empty() {
                    s.allocating = true;
                }
                continue;
            }
            // Upstream's `CanBeReserved` is always true in 1.37: a claim is
            // shared by up to 256 pods, which the API server enforces.
            if let Some(alloc) = &claim.status.allocation {
                s.info[i].available_on = alloc.nodes();
                continue;
            }
            s.allocating = true;
            if let Some(pending) = self.tracker.pending_allocation(&claim.metadata.uid) {
                // A member of the same pod group reserved it in this group's
                // cycle: the pods share that allocation.
                if group.is_some() && self.tracker.pending_group(&claim.metadata.uid) == group {
                    s.info[i].available_on = pending.nodes();
                    s.info[i].allocation = Some(pending);
                    continue;
                }
                return (
                    None,
                    Status::unresolvable(format!(
                        "resource claim {}/{} is in the process of being allocated",
                        claim.metadata.namespace, claim.metadata.name
                    )),
                );
            }
            for request in &claim.spec.devices.requests {
                let classes: Vec<(&str, String)> = if let Some(e) = &request.exactly {
                    vec![(&e.device_class_name, request.name.clone())]
                } else if !request.first_available.is_empty() {
                    request
                        .first_available
                        .iter()
                        .map(|sr| (sr.device_class_name.as_str(), format!("{}/{}", request.name, sr.name)))
                        .collect()
                } else {
                    return (
                        None,
                        Status::unresolvable(format!(
                            "resource claim {}/{}, request {}: unknown request type",
                            claim.metadata.namespace, claim.metadata.name, request.name
                        )),
                    );
                };
                for (class, req_name) in classes {
                    if class.is_empty() {
                        return (None, Status::error(format!("request {req_name}: unsupported request type")));
                    }
                    if self.classes.get("", class).is_none() {
                        return (None, Status::unresolvable(format!("request {req_name}: device class {class} does not exist")));
                    }
                }
            }
            s.to_allocate.push(i);
        }
        if s.allocating || ext_requests.is_some() {
            let (inventory, allocated) = self.inventory();
            let classes = self.class_map();
            let to_allocate: Vec<Arc<ResourceClaim>> = s.to_allocate.iter().map(|&i| claims[i].clone()).collect();
            if !to_allocate.is_empty() {
                s.allocator = Some(Arc::new(Allocator::new(inventory.clone(), allocated.clone(), classes.clone(), to_allocate.clone())));
            }
            if let (Some((scalars, resolver)), Some(claim)) = (ext_requests, &ext_claim) {
                let delegated = scalars.iter().filter(|(n, _)| resolver.class(n).is_some()).map(|(n, _)| n.clone()).collect();
                state.write(DELEGATED_KEY, Delegated(delegated));
                s.ext = Some(Arc::new(Extended {
                    scalars,
                    resolver,
                    temp_uid: claim.metadata.uid.clone(),
                    user_claims: to_allocate,
                    inventory,
                    allocated,
                    classes,
                    variants: Mutex::default(),
                }));
            }
        }
        s.claims = claims;
        state.write(STATE_KEY, s);
        (None, Status::success())
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state_of(state) else { return Status::success() };
        let (name, labels) = (&node.node.name, &node.node.labels);
        // Extended resources first (upstream's `filterExtendedResources`):
        // what the node's allocatable lacks, DRA must provide.
        let variant = match s.extended_variant(pod, node) {
            Ok(v) => v,
            Err(status) => return status,
        };
        let mut unavailable = Vec::new();
        for (i, claim) in s.claims.iter().enumerate() {
            if let Some(sel) = &s.info[i].available_on {
                if !sel.matches(name, labels) {
                    unavailable.push(i);
                    continue;
                }
            }
            if claim.status.allocation.is_some() {
                match Self::ready_for_binding(claim) {
                    Err(_) => unavailable.push(i),
                    Ok(false) if self.binding_timed_out(claim) => unavailable.push(i),
                    Ok(_) => {}
                }
            }
        }
        let mut found = None;
        let allocator = s.allocator_for(&variant);
        if s.allocating {
            if let Some(allocator) = &allocator {
                // A timeout too long for the clock is none.
                let deadline = self.filter_timeout.and_then(|t| Instant::now().checked_add(t));
                match allocator.find(name, labels, deadline) {
                    Err(AllocError::Timeout) => return Status::error(format!("node {name}: timed out trying to allocate devices")),
                    Err(AllocError::Node(msg)) => return Status::unresolvable(msg),
                    Err(AllocError::Fatal(msg)) => return Status::error(msg),
                    Ok(None) => return Status::unresolvable(CANNOT_ALLOCATE),
                    Ok(Some(f)) => found = Some(Arc::new(f)),
                }
            }
        }
        if !unavailable.is_empty() {
            lock(&s.unavailable).extend(unavailable);
            return Status::unresolvable("resourceclaim not available on the node");
        }
        if s.allocating {
            // Claims the allocator allocates come first, then those in flight.
            let pending = (0..s.claims.len())
                .filter(|&i| s.claims[i].status.allocation.is_none())
                .filter_map(|i| s.info[i].allocation.clone())
                .collect();
            let allocator = found.as_ref().and(allocator);
            lock(&s.node_allocations).insert(name.clone(), NodeAllocation { found, allocator, ext: variant, pending });
        }
        Status::success()
    }

    /// Why the node's devices fell short: which claim's request, and how far
    /// the node's devices got (a second look at them, for a sample of nodes).
    fn rejection_detail(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, status: &Status) -> Option<String> {
        if !status.reasons.iter().any(|r| r == CANNOT_ALLOCATE) {
            return None;
        }
        let s = state_of(state)?;
        let variant = s.extended_variant(pod, node).ok()?;
        let allocator = s.allocator_for(&variant)?;
        Some(allocator.diagnose(&node.node.name, &node.node.labels))
    }

    fn post_filter(
        &self,
        _ctx: &PostFilterContext<'_>,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        _statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, Status) {
        let Some(s) = state_of(state) else { return (None, Status::code_only(Code::Unschedulable)) };
        let ext_index = s.ext.as_ref().map(|_| s.claims.len() - 1);
        let unavailable: Vec<usize> = lock(&s.unavailable).iter().copied().collect();
        for i in unavailable {
            if Some(i) == ext_index {
                continue;
            }
            let claim = &s.claims[i];
            let reserved = &claim.status.reserved_for;
            if reserved.is_empty() || (reserved.len() == 1 && reserved[0].uid == pod.pod.uid) {
                let Ok(writer) = self.writer() else { return (None, Status::error("this runtime cannot write ResourceClaims")) };
                let patch = json!({
                    "metadata": {"resourceVersion": claim.metadata.resource_version},
                    "status": {"allocation": null, "reservedFor": null, "devices": null},
                });
                return match writer.merge_patch_status(&CLAIMS, &claim.metadata.namespace, &claim.metadata.name, &patch) {
                    Ok(_) => (None, Status::unschedulable("deallocation of ResourceClaim completed")),
                    Err(e) => (None, Status::error(e.to_string())),
                };
            }
        }
        // A claim for extended resources made in an earlier attempt: deleted,
        // so the next attempt starts afresh.
        if let Some(claim) = ext_index.map(|i| &s.claims[i]).filter(|c| c.metadata.name != IN_MEMORY_NAME) {
            return match self.delete_claim(claim) {
                Ok(()) => (None, Status::unschedulable("deletion of ResourceClaim completed")),
                Err(e) => (None, Status::error(e)),
            };
        }
        (None, Status::code_only(Code::Unschedulable))
    }

    /// Not upstream's (it has no PreScore): a pod without claims scores 0
    /// on every node, so its Score is skipped rather than called per node.
    fn pre_score(&self, state: &mut CycleState, _pod: &PodInfo, _nodes: &[&NodeInfo], _snapshot: &Snapshot) -> Status {
        match state_of(state) {
            Some(s) if s.allocating || s.claims.iter().any(|c| c.status.allocation.is_some()) => Status::success(),
            _ => Status::skip(),
        }
    }

    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state_of(state) else { return (0, Status::success()) };
        let allocations = lock(&s.node_allocations);
        let Some(a) = allocations.get(&node.node.name) else { return (0, Status::success()) };
        let mut requests = a.found.as_ref().map(|f| f.requests()).unwrap_or_default();
        requests.extend(a.pending.iter().map(|p| p.devices.results.iter().map(|r| r.request.clone()).collect()));
        let user_claims = &s.claims[..s.claims.len() - usize::from(s.ext.is_some())];
        match compute_score(user_claims, &requests) {
            Ok(score) => (score, Status::success()),
            Err(e) => (0, Status::error(e)),
        }
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        helper::default_normalize_score(MAX_NODE_SCORE, false, scores);
        Status::success()
    }

    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        let Some(s) = state.read_mut::<State>(STATE_KEY) else { return Status::success() };
        if !s.allocating {
            return Status::success();
        }
        let group = self.handle.pod_group_of(&pod.pod.key());
        let Some(on_node) = lock(&s.node_allocations).get(node).cloned() else {
            return Status::error("claim allocation not found for node");
        };
        let mut allocations = match (&on_node.found, &on_node.allocator) {
            (Some(found), Some(allocator)) => match allocator.results(found) {
                Ok(r) => r,
                Err(e) => return Status::error(e.to_string()),
            },
            _ => Vec::new(),
        };
        allocations.extend(on_node.pending);
        // The extended-resource claim counts only where the node needs it.
        let ext_index = s.ext.as_ref().map(|_| s.claims.len() - 1);
        let unallocated: Vec<usize> = (0..s.claims.len())
            .filter(|&i| s.claims[i].status.allocation.is_none() && (Some(i) != ext_index || on_node.ext.is_some()))
            .collect();
        if allocations.len() != unallocated.len() {
            return Status::error(format!(
                "internal error, have {} allocations, {} claims to allocate, want {} claims",
                allocations.len(),
                unallocated.len(),
                unallocated.len()
            ));
        }
        // What Filter found on the other nodes, and the allocator with its
        // view of the allocated devices, have served: a pod waiting to bind
        // must not keep them (thousands of pods wait when the API is slow).
        lock(&s.node_allocations).clear();
        s.allocator = None;
        if let Some(x) = &s.ext {
            lock(&x.variants).clear();
        }
        // Allocations are the allocator's (in claim order), then those in flight.
        let (fresh, shared): (Vec<usize>, Vec<usize>) = unallocated.iter().partition(|&&i| s.info[i].allocation.is_none());
        let order: Vec<usize> = fresh.into_iter().chain(shared).collect();
        for (allocation, i) in allocations.into_iter().zip(order) {
            if let (true, Some(v)) = (Some(i) == ext_index, &on_node.ext) {
                // The node's variant of the claim, with its requests.
                s.claims[i] = v.claim.clone();
                s.ext_mappings = v.mappings.clone();
            }
            let mut claim = (*s.claims[i]).clone();
            if !claim.metadata.finalizers.iter().any(|f| f == FINALIZER) {
                claim.metadata.finalizers.push(FINALIZER.to_string());
            }
            claim.status.allocation = Some(allocation.clone());
            s.info[i].allocation = Some(allocation);
            self.tracker.signal_pending(claim, group.clone());
        }
        Status::success()
    }

    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, _node: &str) {
        let Some(s) = state.read_mut::<State>(STATE_KEY) else { return };
        let ext_index = s.ext.as_ref().map(|_| s.claims.len() - 1);
        for (i, claim) in s.claims.iter().enumerate() {
            if let (true, Some(x)) = (Some(i) == ext_index, &s.ext) {
                if self.tracker.remove_pending(&x.temp_uid, false) {
                    self.tracker.restore(&claim.metadata.namespace, &claim.metadata.name);
                }
                // Written to the API server already: deleted, so that no
                // claim holds devices for a pod that is not there.
                if claim.metadata.name != IN_MEMORY_NAME {
                    let _ = self.delete_claim(claim);
                }
                continue;
            }
            if self.tracker.remove_pending(&claim.metadata.uid, false) {
                self.tracker.restore(&claim.metadata.namespace, &claim.metadata.name);
            }
            if claim.status.allocation.is_some() && claim.is_reserved_for(&pod.pod.uid) {
                self.unreserve_claim(claim, &pod.pod);
            }
        }
    }

    fn pre_bind_pre_flight(&self, state: &CycleState, _pod: &PodInfo, _node: &str) -> Status {
        match state_of(state) {
            Some(s) if !s.claims.is_empty() => Status::success(),
            _ => Status::skip(),
        }
    }

    fn pre_bind(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        let Some(s) = state.read_mut::<State>(STATE_KEY) else { return Status::skip() };
        let mut written_uids = Vec::new();
        let ext_index = s.ext.as_ref().map(|_| s.claims.len() - 1);
        for i in 0..s.claims.len() {
            let claim = s.claims[i].clone();
            if Some(i) == ext_index {
                if let (true, Some(a), Some(x)) = (claim.metadata.name == IN_MEMORY_NAME, s.info[i].allocation.clone(), s.ext.clone()) {
                    if let Err(e) = self.bind_extended_claim(s, &pod.pod, &a) {
                        return Status::error(e);
                    }
                    written_uids.push(x.temp_uid.clone());
                }
                continue;
            }
            if claim.is_reserved_for(&pod.pod.uid) {
                continue;
            }
            let allocation = s.info[i].allocation.clone().filter(|_| claim.status.allocation.is_none());
            match self.bind_claim(&claim, allocation.as_ref(), &pod.pod) {
                Ok(written) => {
                    if allocation.is_some() {
                        written_uids.push(claim.metadata.uid.clone());
                    }
                    s.claims[i] = written;
                }
                Err(e) => return Status::error(e),
            }
        }
        // Written: the allocations are no longer in flight (the tracker now
        // counts them through the written claims).
        for uid in &written_uids {
            self.tracker.remove_pending(uid, true);
        }
        let claims: Vec<Arc<ResourceClaim>> = s.claims.iter().filter(|c| c.metadata.name != IN_MEMORY_NAME).cloned().collect();
        let needs_wait = claims
            .iter()
            .any(|c| c.status.allocation.as_ref().is_some_and(|a| a.devices.results.iter().any(|r| !r.binding_conditions.is_empty())));
        if !needs_wait {
            return Status::success();
        }
        self.handle.record_event(
            &*pod.pod,
            EventType::Normal,
            "BindingConditionsPending",
            "Scheduling",
            format!("waiting for binding conditions for device on node {node}"),
        );
        let ready = self.handle.wait_until(self.binding_timeout, Duration::from_secs(1), || {
            let mut ready = true;
            for c in &claims {
                let Some(now) = self.tracker.get(&c.metadata.namespace, &c.metadata.name) else {
                    return Err(Status::error(format!("could not find ResourceClaim \"{}/{}\"", c.metadata.namespace, c.metadata.name)));
                };
                match Self::ready_for_binding(&now) {
                    Err(e) => return Err(Status::error(e)),
                    Ok(true) => {}
                    Ok(false) => {
                        if self.binding_timed_out(&now) {
                            return Err(Status::error(format!("device binding timeout: claim={}", now.metadata.name)));
                        }
                        ready = false;
                    }
                }
            }
            Ok(ready)
        });
        match ready {
            Ok(true) => Status::success(),
            Ok(false) => Status::error("device binding timeout: context deadline exceeded"),
            Err(status) => status,
        }
    }
}

#[cfg(test)]
mod tests;
