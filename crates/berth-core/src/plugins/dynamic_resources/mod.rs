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
//! Not modelled, and so refused with a reason rather than guessed: extended
//! resources backed by DRA (a pod asking for a DeviceClass's
//! `extendedResourceName` stays pending, saying so).

pub mod allocator;
pub mod capacity;
pub mod inventory;
pub mod objects;
pub mod pools;
pub mod qty;
pub mod tracker;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use self::allocator::{AllocError, Allocator};
use self::objects::*;
use self::tracker::Tracker;
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::*;
use crate::model::{NodeSelector, Pod};

/// The plugin's name.
pub const NAME: &str = "DynamicResources";
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
    /// How many nodes Filter explained in detail (see `DIAGNOSED_NODES`).
    diagnosed: Arc<std::sync::atomic::AtomicUsize>,
    /// Claims found not available on some node (PostFilter may deallocate them).
    unavailable: Arc<Mutex<BTreeSet<usize>>>,
}

/// What Filter found on one node.
#[derive(Clone)]
struct NodeAllocation {
    /// The allocator's devices for the claims it allocates.
    found: Option<Arc<allocator::Found>>,
    /// Allocations in flight that the pod shares (a group member's).
    pending: Vec<AllocationResult>,
}

/// Nodes per attempt whose rejection says in detail why (`--explain`,
/// `kubectl berth why` show a sample; the count of every rejection stays
/// exact): the detail costs a second look at the node's devices.
const DIAGNOSED_NODES: usize = 32;

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
        })
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
        let deadline = ts + jiff::SignedDuration::try_from(self.binding_timeout).unwrap_or(jiff::SignedDuration::MAX);
        deadline < jiff::Timestamp::now()
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
/// a pod claim that needs no claim is left out.
pub fn allocated_devices(handle: &Handle, pod: &Pod) -> Result<Vec<(String, Vec<DeviceResult>)>, String> {
    let writer = handle.writer().ok_or("this runtime cannot read ResourceClaims")?;
    let mut out = Vec::new();
    for c in &pod.resource_claims {
        let Some((name, _)) = claim_name(pod, c)? else { continue };
        let claim = writer.get(&CLAIMS, &pod.namespace, &name).map_err(|e| e.to_string())?;
        let claim: ResourceClaim = serde_json::from_value(claim).map_err(|e| format!("resourceclaim {}/{name}: {e}", pod.namespace))?;
        out.push((c.name.clone(), claim.status.allocation.map(|a| a.devices.results).unwrap_or_default()));
    }
    Ok(out)
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

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        let pod = &pod.pod;
        if pod.resource_claims.is_empty() {
            return (None, Status::skip());
        }
        let claims = match pod_claims(&self.tracker, pod) {
            Ok(c) => c,
            Err(reason) => return (None, Status::unresolvable(reason)),
        };
        if claims.is_empty() {
            return (None, Status::skip());
        }
        let group = self.handle.pod_group_of(&pod.key());
        let mut s = State { info: vec![ClaimInfo::default(); claims.len()], ..State::default() };
        for (i, claim) in claims.iter().enumerate() {
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
        if s.allocating {
            let (inventory, allocated) = self.inventory();
            let to_allocate: Vec<Arc<ResourceClaim>> = s.to_allocate.iter().map(|&i| claims[i].clone()).collect();
            s.allocator = Some(Arc::new(Allocator::new(inventory, allocated, self.class_map(), to_allocate)));
        }
        s.claims = claims;
        state.write(STATE_KEY, s);
        (None, Status::success())
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state_of(state) else { return Status::success() };
        let (name, labels) = (&node.node.name, &node.node.labels);
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
        if s.allocating {
            if let Some(allocator) = &s.allocator {
                let deadline = self.filter_timeout.map(|t| Instant::now() + t);
                match allocator.find(name, labels, deadline) {
                    Err(AllocError::Timeout) => return Status::error(format!("node {name}: timed out trying to allocate devices")),
                    Err(AllocError::Node(msg)) => return Status::unresolvable(msg),
                    Err(AllocError::Fatal(msg)) => return Status::error(msg),
                    Ok(None) => {
                        let status = Status::unresolvable("cannot allocate all claims");
                        if s.diagnosed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < DIAGNOSED_NODES {
                            return status.with_detail(allocator.diagnose(name, labels));
                        }
                        return status;
                    }
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
            lock(&s.node_allocations).insert(name.clone(), NodeAllocation { found, pending });
        }
        Status::success()
    }

    fn post_filter(
        &self,
        _ctx: &PostFilterContext<'_>,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        _statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, Status) {
        let Some(s) = state_of(state) else { return (None, Status::code_only(Code::Unschedulable)) };
        let unavailable: Vec<usize> = lock(&s.unavailable).iter().copied().collect();
        for i in unavailable {
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
        (None, Status::code_only(Code::Unschedulable))
    }

    /// Not upstream's (it has no PreScore): a pod without claims scores 0
    /// on every node, so its Score is skipped rather than called per node.
    fn pre_score(&self, state: &mut CycleState, _pod: &PodInfo, _nodes: &[Arc<NodeInfo>], _snapshot: &Snapshot) -> Status {
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
        match compute_score(&s.claims, &requests) {
            Ok(score) => (score, Status::success()),
            Err(e) => (0, Status::error(e)),
        }
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        helper::default_normalize_score(MAX_NODE_SCORE, false, scores);
        Status::success()
    }

    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        let group = self.handle.pod_group_of(&pod.pod.key());
        let Some(s) = state.read_mut::<State>(STATE_KEY) else { return Status::success() };
        if !s.allocating {
            return Status::success();
        }
        let Some(on_node) = lock(&s.node_allocations).get(node).cloned() else {
            return Status::error("claim allocation not found for node");
        };
        let mut allocations = match (&on_node.found, &s.allocator) {
            (Some(found), Some(allocator)) => match allocator.results(found) {
                Ok(r) => r,
                Err(e) => return Status::error(e.to_string()),
            },
            _ => Vec::new(),
        };
        allocations.extend(on_node.pending);
        let unallocated: Vec<usize> = (0..s.claims.len()).filter(|&i| s.claims[i].status.allocation.is_none()).collect();
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
        // Allocations are the allocator's (in claim order), then those in flight.
        let (fresh, shared): (Vec<usize>, Vec<usize>) = unallocated.iter().partition(|&&i| s.info[i].allocation.is_none());
        let order: Vec<usize> = fresh.into_iter().chain(shared).collect();
        for (allocation, i) in allocations.into_iter().zip(order) {
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
        for claim in &s.claims {
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
        for i in 0..s.claims.len() {
            let claim = s.claims[i].clone();
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
        let claims = s.claims.clone();
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
        let deadline = Instant::now() + self.binding_timeout;
        loop {
            let mut ready = true;
            for c in &claims {
                let Some(now) = self.tracker.get(&c.metadata.namespace, &c.metadata.name) else {
                    return Status::error(format!("could not find ResourceClaim \"{}/{}\"", c.metadata.namespace, c.metadata.name));
                };
                match Self::ready_for_binding(&now) {
                    Err(e) => return Status::error(e),
                    Ok(true) => {}
                    Ok(false) => {
                        if self.binding_timed_out(&now) {
                            return Status::error(format!("device binding timeout: claim={}", now.metadata.name));
                        }
                        ready = false;
                    }
                }
            }
            if ready {
                return Status::success();
            }
            if Instant::now() >= deadline {
                return Status::error("device binding timeout: context deadline exceeded");
            }
            std::thread::sleep(Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())));
        }
    }
}

#[cfg(test)]
mod tests;
