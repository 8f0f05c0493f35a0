//! The structured allocator, as upstream's "incubating" implementation
//! (`k8s.io/dynamic-resource-allocation/structured/internal/incubating`),
//! which is the one kube-scheduler 1.37 runs with its default features
//! (AdminAccess, PrioritizedList, PartitionableDevices, DeviceTaints,
//! DeviceBindingConditions with ResourceClaimDeviceStatus,
//! ConsumableCapacity, FractionalCapacityRange).
//!
//! For one node and the claims a pod still needs allocated, it searches
//! depth first: claims in order, requests in order (a `firstAvailable`
//! request tries its subrequests in order), and for each device wanted,
//! pools sorted by driver and name, slices by name, devices in slice order;
//! the first complete assignment wins, backtracking when a later request
//! cannot be met. The same objects give the same devices as upstream.
//!
//! One [`Allocator`] serves every node of a scheduling attempt (Filter runs
//! on many nodes at once): what does not depend on the node is prepared
//! once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::capacity::{self, Consumed};
use super::inventory::{DevId, Inventory, PDevice, PSlice, PoolId};
use super::objects::*;
use super::pools::{self, Pool};
use super::qty::Qty;
use crate::model::Labels;
use crate::plugins::volume::objects::{WireNodeSelector, WireNodeSelectorTerm, WireRequirement};

/// Devices already given out: by claims' `status.allocation` and by
/// allocations in flight (reserved, not yet written). Counted, so that the
/// same device counted twice (a claim in flight and written) is released
/// only when both are gone.
#[derive(Clone, Debug, Default)]
pub struct AllocatedState {
    /// Devices allocated whole (admin access does not count).
    pub devices: FxHashMap<DevId, u32>,
    /// Devices with at least one share allocated (consumable capacity).
    pub shared: FxHashMap<DevId, u32>,
    /// Capacity consumed of shared devices.
    pub capacity: FxHashMap<DevId, Consumed>,
    /// The claim (`namespace/name`) each whole device is allocated to, for
    /// explanations.
    pub owners: FxHashMap<DevId, Arc<str>>,
}

fn bump(map: &mut FxHashMap<DevId, u32>, id: DevId, add: bool) {
    if add {
        *map.entry(id).or_default() += 1;
    } else if let Some(n) = map.get_mut(&id) {
        *n -= 1;
        if *n == 0 {
            map.remove(&id);
        }
    }
}

impl AllocatedState {
    /// Counts (`add`) or uncounts the devices of one allocation (upstream's
    /// `foreachAllocatedDevice`). Devices no slice has are not counted:
    /// nothing can allocate them.
    pub fn apply(&mut self, inv: &Inventory, allocation: &AllocationResult, add: bool) {
        self.apply_owned(inv, allocation, add, None)
    }

    /// As [`apply`](AllocatedState::apply), remembering that `owner` (a
    /// claim's `namespace/name`) holds the devices.
    pub fn apply_owned(&mut self, inv: &Inventory, allocation: &AllocationResult, add: bool, owner: Option<&str>) {
        for r in &allocation.devices.results {
            if r.admin_access == Some(true) {
                continue;
            }
            let Some(id) = inv.id_of(&r.driver, &r.pool, &r.device) else { continue };
            if r.share_id.is_some() {
                bump(&mut self.shared, id, add);
                if !r.consumed_capacity.is_empty() {
                    let c: Consumed = r.consumed_capacity.iter().filter_map(|(k, v)| Some((k.clone(), Qty::parse(v).ok()?))).collect();
                    let e = self.capacity.entry(id).or_default();
                    if add {
                        capacity::add_into(e, &c);
                    } else {
                        capacity::sub_from(e, &c);
                        if e.values().all(|q| q.milli == 0) {
                            self.capacity.remove(&id);
                        }
                    }
                }
                continue;
            }
            bump(&mut self.devices, id, add);
            match owner {
                Some(o) if add => {
                    self.owners.insert(id, Arc::from(o));
                }
                // An owner is forgotten with the device's last count (a
                // claim in flight and written counts twice).
                _ if !add && !self.devices.contains_key(&id) => {
                    self.owners.remove(&id);
                }
                _ => {}
            }
        }
    }

    /// Upstream's `IsDeviceAllocated`.
    pub fn is_allocated(&self, id: DevId) -> bool {
        self.devices.contains_key(&id) || self.shared.contains_key(&id) || self.capacity.contains_key(&id)
    }
}

/// Why an allocation attempt ended without a result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// Bad input (a claim, class or CEL expression): the whole attempt fails.
    #[error("{0}")]
    Fatal(String),
    /// Only this node cannot be used (upstream's `ErrFailedAllocationOnNode`).
    #[error("{0}")]
    Node(String),
    /// `filterTimeout` passed.
    #[error("timed out")]
    Timeout,
}

/// The devices chosen for one claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// What goes into `status.allocation`.
    pub result: AllocationResult,
}

/// The devices found on one node for every claim, before they are written
/// out as allocation results ([`Allocator::results`]): Filter finds them on
/// every feasible node, and only the chosen node's become results.
#[derive(Clone)]
pub struct Found {
    node: String,
    picks: Vec<Vec<Picked>>,
    selected_sub: FxHashMap<(usize, usize), usize>,
}

impl Found {
    /// The requests (`request` or `request/subrequest`) that got devices,
    /// per claim, in claim order.
    pub fn requests(&self) -> Vec<Vec<String>> {
        self.picks.iter().map(|ps| ps.iter().map(Picked::request_name).collect()).collect()
    }
}

/// A request or subrequest, as the search sees it.
struct Req<'a> {
    name: &'a str,
    class_name: &'a str,
    selectors: &'a [DeviceSelector],
    mode: &'a str,
    count: i64,
    admin_access: Option<bool>,
    tolerations: &'a [DeviceToleration],
    capacity: Option<&'a CapacityRequirements>,
    derived: bool,
}

impl<'a> Req<'a> {
    fn exact(r: &'a DeviceRequest, e: &'a ExactRequest) -> Req<'a> {
        Req {
            name: &r.name,
            class_name: &e.device_class_name,
            selectors: &e.selectors,
            mode: &e.allocation_mode,
            count: e.count,
            admin_access: e.admin_access,
            tolerations: &e.tolerations,
            capacity: e.capacity.as_ref(),
            derived: !e.derived_attributes.is_empty(),
        }
    }

    fn sub(s: &'a SubRequest) -> Req<'a> {
        Req {
            name: &s.name,
            class_name: &s.device_class_name,
            selectors: &s.selectors,
            mode: &s.allocation_mode,
            count: s.count,
            admin_access: None,
            tolerations: &s.tolerations,
            capacity: s.capacity.as_ref(),
            derived: !s.derived_attributes.is_empty(),
        }
    }

    fn admin(&self) -> bool {
        self.admin_access == Some(true)
    }

    fn is_all(&self) -> bool {
        self.mode == "All"
    }
}

/// The claims of one attempt and what the search needs besides the node.
pub struct Allocator {
    inventory: Arc<Inventory>,
    allocated: Arc<AllocatedState>,
    classes: HashMap<String, Arc<DeviceClass>>,
    claims: Vec<Arc<ResourceClaim>>,
    /// Counters still free per pool (computed on first use, as upstream).
    available_counters: Mutex<HashMap<PoolId, Arc<CounterSets>>>,
}

/// Counter set name → counter → amount.
type CounterSets = HashMap<String, BTreeMap<String, Qty>>;

/// Key of a request or subrequest: (claim, request, subrequest).
type ReqKey = (usize, usize, usize);

struct RequestData<'a> {
    req: Req<'a>,
    /// The request of a subrequest.
    parent: Option<&'a DeviceRequest>,
    class: Option<Arc<DeviceClass>>,
    num_devices: usize,
    /// For `All`: the devices, found up front.
    all_devices: Vec<(Arc<PSlice>, usize, usize)>,
    /// Parsed capacity requests.
    capacity: Option<BTreeMap<String, Qty>>,
}

/// One device picked.
#[derive(Clone)]
pub(crate) struct Picked {
    request: String,
    parent: Option<String>,
    slice: Arc<PSlice>,
    device: usize,
    share_id: Option<String>,
    consumed: Consumed,
    admin_access: Option<bool>,
    key: ReqKey,
}

impl Picked {
    fn request_name(&self) -> String {
        match &self.parent {
            Some(parent) => format!("{parent}/{}", self.request),
            None => self.request.clone(),
        }
    }
}

enum Constraint {
    Match { requests: BTreeSet<String>, attribute: String, value: Option<DeviceAttribute>, count: usize },
    Distinct { requests: BTreeSet<String>, attribute: String, values: Vec<DeviceAttribute> },
}

fn applies(requests: &BTreeSet<String>, request: &str, sub: Option<&str>) -> bool {
    if requests.is_empty() {
        return true;
    }
    match sub {
        None => requests.contains(request),
        Some(s) => requests.contains(request) || requests.contains(&format!("{request}/{s}")),
    }
}

fn same_value(a: &DeviceAttribute, b: &DeviceAttribute) -> Option<bool> {
    if let Some(v) = &a.string {
        return Some(b.string.as_ref() == Some(v));
    }
    if let Some(v) = a.int {
        return Some(b.int == Some(v));
    }
    if let Some(v) = a.bool {
        return Some(b.bool == Some(v));
    }
    if let Some(v) = &a.version {
        return Some(b.version.as_ref() == Some(v));
    }
    None
}

impl Constraint {
    fn add(&mut self, request: &str, sub: Option<&str>, device: &PDevice) -> bool {
        match self {
            Constraint::Match { requests, attribute, value, count } => {
                if !applies(requests, request, sub) {
                    return true;
                }
                let Some(attr) = device.attribute(attribute) else { return false };
                if *count == 0 {
                    *value = Some(attr.clone());
                    *count = 1;
                    return true;
                }
                let first = value.as_ref().expect("set with the first device");
                // The new device's value must be of the first's kind and equal.
                match same_value(attr, first) {
                    Some(true) => {
                        *count += 1;
                        true
                    }
                    _ => false,
                }
            }
            Constraint::Distinct { requests, attribute, values } => {
                if !applies(requests, request, sub) {
                    return true;
                }
                let Some(attr) = device.attribute(attribute) else { return false };
                for v in values.iter() {
                    match same_value(attr, v) {
                        Some(false) => {}
                        // Equal, or a value of no known kind.
                        _ => return false,
                    }
                }
                values.push(attr.clone());
                true
            }
        }
    }

    fn remove(&mut self, request: &str, sub: Option<&str>) {
        match self {
            Constraint::Match { requests, count, .. } => {
                if applies(requests, request, sub) {
                    *count = count.saturating_sub(1);
                }
            }
            Constraint::Distinct { requests, values, .. } => {
                if applies(requests, request, sub) {
                    values.pop();
                }
            }
        }
    }
}

/// What undoing one device takes.
#[derive(Default)]
struct Undo {
    counters: bool,
    constraints: usize,
    marked: bool,
    capacity: Option<Consumed>,
    capacity_entry_existed: bool,
    result: bool,
}

/// The state of one search (one node).
struct Search<'a> {
    a: &'a Allocator,
    node_name: &'a str,
    labels: &'a Labels,
    pools: Arc<Vec<Pool>>,
    data: FxHashMap<ReqKey, RequestData<'a>>,
    /// Per request with subrequests: the subrequest chosen.
    selected_sub: FxHashMap<(usize, usize), usize>,
    constraints: Vec<Vec<Constraint>>,
    matches: FxHashMap<(DevId, ReqKey), bool>,
    allocating: FxHashMap<DevId, Vec<usize>>,
    allocating_capacity: FxHashMap<DevId, Consumed>,
    consumed_counters: HashMap<PoolId, CounterSets>,
    results: Vec<Vec<Picked>>,
    steps: u64,
    deadline: Option<Instant>,
}

enum Step {
    Done,
    No,
    /// A claim would exceed `AllocationResultsMaxSize` devices.
    TooMany,
}

static SHARE_IDS: AtomicU64 = AtomicU64::new(1);

/// A fresh share ID (a UUID, as upstream's; unique within this process).
fn new_share_id() -> String {
    let n = SHARE_IDS.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (t >> 32) as u32,
        (t >> 16) as u16,
        (t & 0xfff) as u16,
        (n >> 48) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

impl Allocator {
    /// An allocator for `claims` (all unallocated), given every device and
    /// what is already allocated.
    pub fn new(
        inventory: Arc<Inventory>,
        allocated: Arc<AllocatedState>,
        classes: HashMap<String, Arc<DeviceClass>>,
        claims: Vec<Arc<ResourceClaim>>,
    ) -> Allocator {
        Allocator { inventory, allocated, classes, claims, available_counters: Mutex::new(HashMap::new()) }
    }

    /// The claims this allocator allocates, in order.
    pub fn claims(&self) -> &[Arc<ResourceClaim>] {
        &self.claims
    }

    /// The inventory it allocates from.
    pub fn inventory(&self) -> &Arc<Inventory> {
        &self.inventory
    }

    /// Allocates every claim for the node `node_name` with `labels`:
    /// `Ok(Some(..))` one allocation per claim, in order; `Ok(None)` they
    /// cannot all be allocated there.
    pub fn allocate(&self, node_name: &str, labels: &Labels) -> Result<Option<Vec<Allocation>>, AllocError> {
        match self.find(node_name, labels, None)? {
            Some(found) => Ok(Some(self.results(&found)?.into_iter().map(|result| Allocation { result }).collect())),
            None => Ok(None),
        }
    }

    /// As [`allocate`](Allocator::allocate), giving up with
    /// [`AllocError::Timeout`] at `deadline` (`filterTimeout`).
    pub fn allocate_until(&self, node_name: &str, labels: &Labels, deadline: Instant) -> Result<Option<Vec<Allocation>>, AllocError> {
        match self.find(node_name, labels, Some(deadline))? {
            Some(found) => Ok(Some(self.results(&found)?.into_iter().map(|result| Allocation { result }).collect())),
            None => Ok(None),
        }
    }

    /// The search alone: the devices each claim would get on the node, or
    /// `None`. [`results`](Allocator::results) writes them out.
    pub fn find(&self, node_name: &str, labels: &Labels, deadline: Option<Instant>) -> Result<Option<Found>, AllocError> {
        let pools = pools::for_node(&self.inventory, node_name, labels);
        let mut s = Search {
            deadline,
            a: self,
            node_name,
            labels,
            pools,
            data: FxHashMap::default(),
            selected_sub: FxHashMap::default(),
            constraints: Vec::new(),
            matches: FxHashMap::default(),
            allocating: FxHashMap::default(),
            allocating_capacity: FxHashMap::default(),
            consumed_counters: HashMap::new(),
            results: vec![Vec::new(); self.claims.len()],
            steps: 0,
        };
        s.validate()?;
        match s.allocate_one(0, 0, 0, 0, false, (0, 0, 0))? {
            Step::Done => {}
            // Upstream returns this as an error from the first claim.
            Step::TooMany => return Err(AllocError::Fatal("allocation max size exceeded".into())),
            Step::No => {
                if s.pools.iter().any(|p| p.invalid.is_some()) {
                    return Err(AllocError::Node("invalid resource pools were encountered".into()));
                }
                return Ok(None);
            }
        }
        Ok(Some(Found {
            node: node_name.to_string(),
            picks: std::mem::take(&mut s.results),
            selected_sub: std::mem::take(&mut s.selected_sub),
        }))
    }

    /// The allocation results of what [`find`](Allocator::find) found, one
    /// per claim, as upstream writes them.
    pub fn results(&self, found: &Found) -> Result<Vec<AllocationResult>, AllocError> {
        self.claims.iter().enumerate().map(|(ci, claim)| self.result_for(found, ci, claim)).collect()
    }
}

/// How far the devices of a node got towards one request, for `diagnose`.
#[derive(Default)]
struct Funnel {
    of_class: usize,
    selected: usize,
    free: usize,
    untainted: usize,
    usable: usize,
    taken_by: BTreeSet<String>,
}

impl Allocator {
    /// Why the claims cannot all be allocated on the node `node_name`, for
    /// a person asking (`--explain`, `kubectl berth why`): the first
    /// request the node's devices cannot meet on their own, and how far its
    /// devices got (of its class, matching its selectors, free, untainted,
    /// within counters and capacity); or, when each could be met alone, that
    /// they cannot be met together. Not upstream's: its message stays
    /// `cannot allocate all claims`.
    pub fn diagnose(&self, node_name: &str, labels: &Labels) -> String {
        let pools = pools::for_node(&self.inventory, node_name, labels);
        let mut notes = Vec::new();
        for p in pools.iter() {
            if p.incomplete {
                notes.push(format!("pool {} is incomplete (slices of its generation missing)", p.id));
            } else if let Some(r) = &p.invalid {
                notes.push(format!("pool {} is invalid: {r}", p.id));
            }
        }
        let usable: Vec<&Pool> = pools.iter().filter(|p| !p.incomplete && p.invalid.is_none()).collect();
        for claim in &self.claims {
            let key = format!("{}/{}", claim.metadata.namespace, claim.metadata.name);
            for request in &claim.spec.devices.requests {
                let alternatives: Vec<Req<'_>> = match &request.exactly {
                    Some(e) => vec![Req::exact(request, e)],
                    None => request.first_available.iter().map(Req::sub).collect(),
                };
                let mut best: Option<(String, Funnel, usize)> = None;
                let mut met = false;
                for req in &alternatives {
                    let f = self.funnel(&key, req, &usable, node_name, labels);
                    let count = if req.count == 0 { 1 } else { req.count };
                    let need = if req.is_all() { f.selected.max(1) } else { usize::try_from(count.max(0)).unwrap_or(usize::MAX) };
                    if f.usable >= need && !(req.is_all() && f.usable < f.selected) {
                        met = true;
                        break;
                    }
                    if best.is_none() {
                        best = Some((req.name.to_string(), f, need));
                    }
                }
                if met {
                    continue;
                }
                let Some((name, f, need)) = best else { continue };
                let what = if alternatives.len() > 1 {
                    format!("claim {key}, request {} (none of its {} alternatives; the first, {name})", request.name, alternatives.len())
                } else {
                    format!("claim {key}, request {name}")
                };
                let mut line = format!("{what}: needs {need}; this node has {} of its class", f.of_class);
                let stages = [
                    (f.selected, "matching its selectors"),
                    (f.free, "free"),
                    (f.untainted, "untainted (or tolerated)"),
                    (f.usable, "within their counters and capacity"),
                ];
                let mut prev = f.of_class;
                for (n, label) in stages {
                    if n < prev || n < need {
                        line.push_str(&format!(", {n} {label}"));
                    }
                    prev = n;
                    if n < need {
                        break;
                    }
                }
                if !f.taken_by.is_empty() {
                    let owners: Vec<&String> = f.taken_by.iter().take(3).collect();
                    let more = if f.taken_by.len() > 3 { ", ..." } else { "" };
                    let noun = if f.taken_by.len() == 1 { "claim" } else { "claims" };
                    line.push_str(&format!(
                        " (taken by {noun} {}{more})",
                        owners.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
                notes.push(line);
                return notes.join("; ");
            }
        }
        let constraints: Vec<String> = self
            .claims
            .iter()
            .flat_map(|c| c.spec.devices.constraints.iter())
            .filter_map(|c| {
                c.match_attribute
                    .as_ref()
                    .map(|a| format!("matchAttribute {a}"))
                    .or(c.distinct_attribute.as_ref().map(|a| format!("distinctAttribute {a}")))
            })
            .collect();
        notes.push(if constraints.is_empty() {
            "each request could be met alone, but not all together".to_string()
        } else {
            format!("each request could be met alone, but not all together with {}", constraints.join(", "))
        });
        notes.join("; ")
    }

    fn funnel(&self, claim: &str, req: &Req<'_>, pools: &[&Pool], node_name: &str, labels: &Labels) -> Funnel {
        let mut f = Funnel::default();
        let class = self.classes.get(req.class_name);
        let capacity: Option<BTreeMap<String, Qty>> =
            req.capacity.map(|c| c.requests.iter().filter_map(|(k, v)| Some((k.clone(), Qty::parse(v).ok()?))).collect());
        let passes = |dev: &PDevice, selectors: &[DeviceSelector]| {
            selectors.iter().all(|s| {
                let Some(cel) = &s.cel else { return true };
                crate::cel::compile(&cel.expression).ok().and_then(|c| c.evaluate(dev.cel_input()).ok()).unwrap_or(false)
            })
        };
        for pool in pools {
            for slice in &pool.targeting {
                for dev in &slice.devices {
                    if !class.is_some_and(|c| passes(dev, &c.spec.selectors)) {
                        continue;
                    }
                    f.of_class += 1;
                    if !passes(dev, req.selectors) || (slice.per_device_node_selection && !dev.scope.matches(node_name, labels)) {
                        continue;
                    }
                    f.selected += 1;
                    if !req.admin() && self.allocated.devices.contains_key(&dev.id) {
                        if let Some(o) = self.allocated.owners.get(&dev.id).filter(|o| &***o != claim) {
                            f.taken_by.insert(o.to_string());
                        }
                        continue;
                    }
                    f.free += 1;
                    let tainted = dev.taints.iter().any(|t| {
                        (t.effect == "NoSchedule" || t.effect == "NoExecute") && !req.tolerations.iter().any(|tol| tol.tolerates(t))
                    });
                    if tainted {
                        continue;
                    }
                    f.untainted += 1;
                    let counters_ok = dev.consumes.is_empty() || {
                        let avail = self.pool_counters(pool);
                        dev.consumes.iter().all(|(set, cs)| {
                            cs.iter().all(|(n, v)| avail.get(set).and_then(|s| s.get(n)).is_some_and(|a| !a.cmp_amount(v).is_lt()))
                        })
                    };
                    let capacity_ok = match &dev.capacity {
                        Ok(c) => capacity::fits(self.allocated.capacity.get(&dev.id), capacity.as_ref(), c, None).unwrap_or(false),
                        Err(_) => false,
                    };
                    if counters_ok && capacity_ok {
                        f.usable += 1;
                    }
                }
            }
        }
        f
    }

    /// The counters still free in a pool (the search's cache, shared).
    fn pool_counters(&self, pool: &Pool) -> Arc<CounterSets> {
        let mut cache = self.available_counters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&pool.id) {
            return c.clone();
        }
        let mut avail = pool.counter_sets.clone();
        for slice in pool.targeting.iter().chain(pool.not_targeting.iter()) {
            for d in &slice.devices {
                if !self.allocated.is_allocated(d.id) {
                    continue;
                }
                for (set, counters) in &d.consumes {
                    let Some(cs) = avail.get_mut(set) else { continue };
                    for (name, v) in counters {
                        if let Some(x) = cs.get_mut(name) {
                            *x = x.sub(v);
                        }
                    }
                }
            }
        }
        let avail = Arc::new(avail);
        cache.insert(pool.id.clone(), avail.clone());
        avail
    }
}

fn fatal(msg: String) -> AllocError {
    AllocError::Fatal(msg)
}

impl<'a> Search<'a> {
    fn claim_ref(&self, ci: usize) -> String {
        let c = &self.a.claims[ci];
        format!("{}/{}", c.metadata.namespace, c.metadata.name)
    }

    /// Upstream's per-attempt checks: every request valid, the claim's
    /// device limit, the constraints.
    fn validate(&mut self) -> Result<(), AllocError> {
        let a = self.a;
        for (ci, claim) in a.claims.iter().enumerate() {
            let mut min_per_claim = 0usize;
            for (ri, request) in claim.spec.devices.requests.iter().enumerate() {
                let min_per_request = if !request.first_available.is_empty() {
                    let mut m = usize::MAX;
                    for (si, sub) in request.first_available.iter().enumerate() {
                        let d = self.validate_request(Req::sub(sub), Some(request), (ci, ri, si))?;
                        m = m.min(d.num_devices);
                        self.data.insert((ci, ri, si), d);
                    }
                    m
                } else {
                    let Some(exact) = &request.exactly else {
                        return Err(fatal(format!(
                            "claim {}, request {}: missing device class name (unsupported request type?)",
                            self.claim_ref(ci),
                            request.name
                        )));
                    };
                    let d = self.validate_request(Req::exact(request, exact), None, (ci, ri, 0))?;
                    let m = d.num_devices;
                    self.data.insert((ci, ri, 0), d);
                    m
                };
                if min_per_request > ALLOCATION_RESULTS_MAX_SIZE.saturating_sub(min_per_claim) {
                    return Err(fatal(format!(
                        "claim {}, request {}: adding {} devices exceeds the claim limit of {}, with {} already accounted for",
                        self.claim_ref(ci),
                        request.name,
                        min_per_request,
                        ALLOCATION_RESULTS_MAX_SIZE,
                        min_per_claim
                    )));
                }
                min_per_claim += min_per_request;
            }
            let mut constraints = Vec::new();
            for (i, c) in claim.spec.devices.constraints.iter().enumerate() {
                let requests: BTreeSet<String> = c.requests.iter().cloned().collect();
                if let Some(attr) = &c.match_attribute {
                    constraints.push(Constraint::Match { requests, attribute: attr.clone(), value: None, count: 0 });
                } else if let Some(attr) = &c.distinct_attribute {
                    constraints.push(Constraint::Distinct { requests, attribute: attr.clone(), values: Vec::new() });
                } else {
                    return Err(fatal(format!(
                        "claim {}, constraint #{i}: empty constraint (unsupported constraint type?)",
                        self.claim_ref(ci)
                    )));
                }
            }
            self.constraints.push(constraints);
        }
        Ok(())
    }

    fn validate_request(&mut self, req: Req<'a>, parent: Option<&'a DeviceRequest>, key: ReqKey) -> Result<RequestData<'a>, AllocError> {
        let ci = key.0;
        if req.derived {
            return Err(fatal(format!(
                "claim {}, request {}: cannot handle request with derived attributes, the feature is disabled",
                self.claim_ref(ci),
                req.name
            )));
        }
        for (i, sel) in req.selectors.iter().enumerate() {
            if sel.cel.is_none() {
                return Err(fatal(format!(
                    "claim {}, request {}, selector #{i}: CEL expression empty (unsupported selector type?)",
                    self.claim_ref(ci),
                    req.name
                )));
            }
        }
        if req.class_name.is_empty() {
            return Err(fatal(format!(
                "claim {}, request {}: missing device class name (unsupported request type?)",
                self.claim_ref(ci),
                req.name
            )));
        }
        let Some(class) = self.a.classes.get(req.class_name).cloned() else {
            return Err(fatal(format!(
                "claim {}, request {}: could not retrieve device class {}: deviceclass.resource.k8s.io {:?} not found",
                self.claim_ref(ci),
                req.name,
                req.class_name,
                req.class_name
            )));
        };
        let capacity = match req.capacity {
            None => None,
            Some(c) => Some(
                c.requests
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), Qty::parse(v)?)))
                    .collect::<Result<BTreeMap<_, _>, String>>()
                    .map_err(|e| fatal(format!("claim {}, request {}: capacity: {e}", self.claim_ref(ci), req.name)))?,
            ),
        };
        let mut data = RequestData { req, parent, class: Some(class), num_devices: 0, all_devices: Vec::new(), capacity };
        match data.req.mode {
            "" | "ExactCount" => {
                // The API server defaults an unset count to one (manifests
                // read by simulate are not defaulted); validation refuses 0.
                let count = if data.req.count == 0 { 1 } else { data.req.count };
                data.num_devices = usize::try_from(count.max(0)).unwrap_or(usize::MAX);
            }
            "All" => {
                let pools: Vec<(PoolId, bool, bool, Vec<Arc<PSlice>>)> =
                    self.pools.iter().map(|p| (p.id.clone(), p.incomplete, p.invalid.is_some(), p.targeting.clone())).collect();
                for (id, incomplete, invalid, slices) in pools {
                    if incomplete {
                        return Err(fatal(format!(
                            "claim {}, request {}: asks for all devices, but resource pool {id} is currently being updated",
                            self.claim_ref(ci),
                            data.req.name
                        )));
                    }
                    if invalid {
                        return Err(fatal(format!(
                            "claim {}, request {}: asks for all devices, but resource pool {id} is currently invalid",
                            self.claim_ref(ci),
                            data.req.name
                        )));
                    }
                    for (pi, slice) in slices.iter().enumerate() {
                        let _ = pi;
                        for di in 0..slice.devices.len() {
                            if !self.selectable(key, &data, slice, di)? {
                                continue;
                            }
                            let dev = &slice.devices[di];
                            let caps = dev.capacity.as_ref().map_err(|e| fatal(e.clone()))?;
                            let ok = capacity::fits(None, data.capacity.as_ref(), caps, None).map_err(|e| {
                                fatal(format!(
                                    "claim {}, request {}: checking capacity for device {}: {e}",
                                    self.claim_ref(ci),
                                    data.req.name,
                                    dev.name
                                ))
                            })?;
                            if !ok {
                                continue;
                            }
                            data.all_devices.push((slice.clone(), di, 0));
                        }
                    }
                }
                data.num_devices = data.all_devices.len();
            }
            other => return Err(fatal(format!("claim {}, request {}: unsupported count mode {other}", self.claim_ref(ci), data.req.name))),
        }
        Ok(data)
    }

    /// Upstream's `isSelectable`: class selectors, request selectors, and
    /// per-device node selection, cached per device and request.
    fn selectable(&mut self, key: ReqKey, data: &RequestData<'a>, slice: &PSlice, di: usize) -> Result<bool, AllocError> {
        let dev = &slice.devices[di];
        if let Some(m) = self.matches.get(&(dev.id, key)) {
            return Ok(*m);
        }
        let mut ok = true;
        if let Some(class) = &data.class {
            ok = self.selectors_match(key.0, dev, Some(class), &class.spec.selectors)?;
        }
        if ok {
            ok = self.selectors_match(key.0, dev, None, data.req.selectors)?;
        }
        if ok && slice.per_device_node_selection {
            ok = dev.scope.matches(self.node_name, self.labels);
        }
        self.matches.insert((dev.id, key), ok);
        Ok(ok)
    }

    fn selectors_match(
        &self,
        ci: usize,
        dev: &PDevice,
        class: Option<&DeviceClass>,
        selectors: &[DeviceSelector],
    ) -> Result<bool, AllocError> {
        let id = || self.a.inventory.name_of(dev.id);
        for (i, sel) in selectors.iter().enumerate() {
            let Some(cel) = &sel.cel else { continue };
            let verdict = match dev.cached_verdict(&cel.expression) {
                Some(v) => v,
                None => {
                    let compiled = crate::cel::compile(&cel.expression).map_err(|e| match class {
                        Some(c) => fatal(format!("class {}: selector #{i}: CEL compile error: {e}", c.metadata.name)),
                        None => fatal(format!("claim {}: selector #{i}: CEL compile error: {e}", self.claim_ref(ci))),
                    })?;
                    let v = compiled.evaluate(dev.cel_input()).map_err(|e| e.to_string());
                    dev.keep_verdict(&cel.expression, v.clone());
                    v
                }
            };
            match verdict {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => {
                    return Err(match class {
                        Some(c) => fatal(format!("class {}: selector #{i} on device {}: CEL runtime error: {e}", c.metadata.name, id())),
                        None => fatal(format!("claim {}: selector #{i} on device {}: CEL runtime error: {e}", self.claim_ref(ci), id())),
                    })
                }
            }
        }
        Ok(true)
    }

    /// Upstream's `allocateOne`: place device `di` of request `(ci, ri, si)`,
    /// searching from `start` (pool, slice, device).
    fn allocate_one(
        &mut self,
        ci: usize,
        ri: usize,
        si: usize,
        di: usize,
        in_sub: bool,
        start: (usize, usize, usize),
    ) -> Result<Step, AllocError> {
        self.steps += 1;
        if let Some(d) = self.deadline {
            if self.steps % 64 == 0 && Instant::now() >= d {
                return Err(AllocError::Timeout);
            }
        }
        if ci >= self.a.claims.len() {
            return Ok(Step::Done);
        }
        let claim = self.a.claims[ci].clone();
        if ri >= claim.spec.devices.requests.len() {
            return match self.allocate_one(ci + 1, 0, 0, 0, false, (0, 0, 0))? {
                Step::TooMany => Ok(Step::No),
                s => Ok(s),
            };
        }
        let key = (ci, ri, si);
        let has_parent = self.data.get(&key).is_some_and(|d| d.parent.is_some());
        if !in_sub && has_parent {
            let mut all_too_many = true;
            let mut sub = 0;
            while self.data.contains_key(&(ci, ri, sub)) {
                match self.allocate_one(ci, ri, sub, di, true, (0, 0, 0))? {
                    Step::TooMany => {}
                    Step::Done => {
                        self.selected_sub.insert((ci, ri), sub);
                        return Ok(Step::Done);
                    }
                    Step::No => all_too_many = false,
                }
                sub += 1;
            }
            return Ok(if all_too_many { Step::TooMany } else { Step::No });
        }
        let (is_all, num_devices, admin) = {
            let d = &self.data[&key];
            (d.req.is_all(), d.num_devices, d.req.admin())
        };
        if is_all && num_devices == 0 {
            return Ok(Step::No);
        }
        if di >= num_devices {
            return self.allocate_one(ci, ri + 1, 0, 0, false, (0, 0, 0));
        }
        let remaining = num_devices - di;
        let available = ALLOCATION_RESULTS_MAX_SIZE.saturating_sub(self.results[ci].len());
        if remaining > available {
            return Ok(Step::TooMany);
        }
        if is_all {
            let (slice, dev_index, _) = self.data[&key].all_devices[di].clone();
            let undo = match self.allocate_device(key, &slice, dev_index, true)? {
                Some(u) => u,
                None => return Ok(Step::No),
            };
            let r = self.allocate_one(ci, ri, si, di + 1, in_sub, (0, 0, 0));
            if let Ok(Step::Done) = r {
                return Ok(Step::Done);
            }
            self.rollback(key, &slice, dev_index, undo);
            return r;
        }
        let num_pools = self.pools.len();
        for pi in start.0..num_pools {
            if self.pools[pi].incomplete || self.pools[pi].invalid.is_some() {
                continue;
            }
            let slice_start = if pi == start.0 { start.1 } else { 0 };
            let num_slices = self.pools[pi].targeting.len();
            for sj in slice_start..num_slices {
                let slice = self.pools[pi].targeting[sj].clone();
                let dev_start = if pi == start.0 && sj == start.1 { start.2 } else { 0 };
                for dk in dev_start..slice.devices.len() {
                    let id = slice.devices[dk].id;
                    if admin && self.allocating_for_claim(id, ci) {
                        continue;
                    }
                    if !admin && self.in_use(id) {
                        continue;
                    }
                    let data = self.data.remove(&key).expect("validated");
                    let sel = self.selectable(key, &data, &slice, dk);
                    self.data.insert(key, data);
                    if !sel? {
                        continue;
                    }
                    if !self.capacity_fits(key, &slice, dk)? {
                        continue;
                    }
                    let Some(undo) = self.allocate_device(key, &slice, dk, false)? else { continue };
                    let r = self.allocate_one(ci, ri, si, di + 1, in_sub, (pi, sj, dk + 1));
                    match r {
                        Ok(Step::Done) => return Ok(Step::Done),
                        Ok(Step::No) => self.rollback(key, &slice, dk, undo),
                        // Upstream's "max size exceeded" is an error: it ends this loop too.
                        other => {
                            self.rollback(key, &slice, dk, undo);
                            return other;
                        }
                    }
                }
            }
        }
        Ok(Step::No)
    }

    fn allocating_for_claim(&self, id: DevId, ci: usize) -> bool {
        self.allocating.get(&id).is_some_and(|v| v.contains(&ci))
    }

    fn in_use(&self, id: DevId) -> bool {
        self.a.allocated.devices.contains_key(&id) || self.allocating.get(&id).is_some_and(|v| !v.is_empty())
    }

    fn capacity_in_use(&self, id: DevId) -> bool {
        self.a.allocated.capacity.contains_key(&id)
            || self.a.allocated.shared.contains_key(&id)
            || self.allocating_capacity.contains_key(&id)
    }

    /// Upstream's `CmpRequestOverCapacity` for a device being considered.
    fn capacity_fits(&self, key: ReqKey, slice: &PSlice, dk: usize) -> Result<bool, AllocError> {
        let dev = &slice.devices[dk];
        let data = &self.data[&key];
        let caps = dev.capacity.as_ref().map_err(|e| fatal(e.clone()))?;
        capacity::fits(self.a.allocated.capacity.get(&dev.id), data.capacity.as_ref(), caps, self.allocating_capacity.get(&dev.id)).map_err(
            |e| {
                fatal(format!(
                    "claim {}, request {}: checking capacity for device {}: {e}",
                    self.claim_ref(key.0),
                    data.req.name,
                    self.a.inventory.name_of(dev.id)
                ))
            },
        )
    }

    /// Upstream's `allocateDevice`: `Some(undo)` when the device was taken.
    fn allocate_device(&mut self, key: ReqKey, slice: &Arc<PSlice>, dk: usize, must: bool) -> Result<Option<Undo>, AllocError> {
        let dev = &slice.devices[dk];
        let id = dev.id;
        let ci = key.0;
        let (admin, req_name, parent_name) = {
            let d = &self.data[&key];
            (d.req.admin(), d.req.name.to_string(), d.parent.map(|p| p.name.clone()))
        };
        let allow_multiple = dev.allow_multiple == Some(true);
        if !allow_multiple && admin && self.allocating_for_claim(id, ci) {
            return Ok(None);
        }
        if !admin && self.in_use(id) {
            return Ok(None);
        }
        let skip_counters = allow_multiple && self.capacity_in_use(id);
        let mut undo = Undo::default();
        if !skip_counters && !dev.consumes.is_empty() {
            if !self.take_counters(slice, dk) {
                return Ok(None);
            }
            undo.counters = true;
        }
        let (base, sub) = match &parent_name {
            None => (req_name.clone(), None),
            Some(p) => (p.clone(), Some(req_name.clone())),
        };
        // Device taints (`DRADeviceTaints`): NoSchedule and NoExecute keep
        // the device from requests that do not tolerate them.
        let tolerations = self.data[&key].req.tolerations;
        let tainted = dev
            .taints
            .iter()
            .any(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerations.iter().any(|tol| tol.tolerates(t)));
        if tainted {
            self.rollback(key, slice, dk, undo);
            return Ok(None);
        }
        for i in 0..self.constraints[ci].len() {
            if !self.constraints[ci][i].add(&base, sub.as_deref(), dev) {
                self.rollback(key, slice, dk, undo);
                if must {
                    return Err(fatal(format!(
                        "claim {}, request {}: cannot add device {} because a claim constraint would not be satisfied",
                        self.claim_ref(ci),
                        req_name,
                        self.a.inventory.name_of(id)
                    )));
                }
                return Ok(None);
            }
            undo.constraints += 1;
        }
        if !allow_multiple {
            self.allocating.entry(id).or_default().push(ci);
            undo.marked = true;
        }
        let mut consumed = Consumed::new();
        let mut share_id = None;
        if !self.capacity_fits(key, slice, dk)? {
            self.rollback(key, slice, dk, undo);
            return Ok(None);
        }
        if allow_multiple {
            let caps = dev.capacity.as_ref().map_err(|e| fatal(e.clone()))?;
            consumed = match capacity::consumed_by(self.data[&key].capacity.as_ref(), caps) {
                Ok(c) => c,
                Err(e) => {
                    self.rollback(key, slice, dk, undo);
                    return Err(fatal(format!(
                        "claim {}, request {}: computing consumed capacity for device {}: {e}",
                        self.claim_ref(ci),
                        req_name,
                        self.a.inventory.name_of(id)
                    )));
                }
            };
            share_id = Some(new_share_id());
            undo.capacity_entry_existed = self.allocating_capacity.contains_key(&id);
            capacity::add_into(self.allocating_capacity.entry(id).or_default(), &consumed);
            undo.capacity = Some(consumed.clone());
        }
        self.results[ci].push(Picked {
            request: req_name,
            parent: parent_name,
            slice: slice.clone(),
            device: dk,
            share_id,
            consumed,
            admin_access: admin.then_some(true),
            key,
        });
        undo.result = true;
        Ok(Some(undo))
    }

    fn rollback(&mut self, key: ReqKey, slice: &Arc<PSlice>, dk: usize, undo: Undo) {
        let ci = key.0;
        let dev = &slice.devices[dk];
        if undo.result {
            self.results[ci].pop();
        }
        if let Some(c) = &undo.capacity {
            // As upstream's collection: an entry whose amounts all come to
            // zero goes, but one that existed before this device is kept.
            if let Some(e) = self.allocating_capacity.get_mut(&dev.id) {
                capacity::sub_from(e, c);
                if e.values().all(|q| q.milli == 0) {
                    self.allocating_capacity.remove(&dev.id);
                }
            }
            if undo.capacity_entry_existed {
                self.allocating_capacity.entry(dev.id).or_default();
            }
        }
        if undo.marked {
            if let Some(v) = self.allocating.get_mut(&dev.id) {
                if let Some(pos) = v.iter().rposition(|c| *c == ci) {
                    v.remove(pos);
                }
            }
        }
        let (base, sub) = {
            let d = &self.data[&key];
            match d.parent {
                None => (d.req.name.to_string(), None),
                Some(p) => (p.name.clone(), Some(d.req.name.to_string())),
            }
        };
        for i in (0..undo.constraints).rev() {
            self.constraints[ci][i].remove(&base, sub.as_deref());
        }
        if undo.counters {
            self.give_back_counters(slice, dk);
        }
    }

    /// The counters still free in a pool, before this search.
    fn available_counters(&self, pool: &Pool) -> Arc<CounterSets> {
        self.a.pool_counters(pool)
    }

    /// Upstream's `checkAvailableCounters`: takes the device's counters if
    /// every counter of its pool still covers what is consumed.
    fn take_counters(&mut self, slice: &Arc<PSlice>, dk: usize) -> bool {
        let Some(pool) = self.pools.iter().find(|p| p.id == slice.pool) else { return false };
        let avail = self.available_counters(pool);
        let consumed = self.consumed_counters.entry(slice.pool.clone()).or_default();
        for (set, counters) in &slice.devices[dk].consumes {
            let cs = consumed.entry(set.clone()).or_default();
            for (name, v) in counters {
                let e = cs.entry(name.clone()).or_insert(Qty { milli: 0, binary: v.binary });
                *e = e.add(v);
            }
        }
        let ok = avail.iter().all(|(set, counters)| {
            counters.iter().all(|(name, a)| {
                let c = consumed.get(set).and_then(|cs| cs.get(name)).copied().unwrap_or_default();
                !a.cmp_amount(&c).is_lt()
            })
        });
        if !ok {
            self.give_back_counters(slice, dk);
        }
        ok
    }

    fn give_back_counters(&mut self, slice: &Arc<PSlice>, dk: usize) {
        let Some(consumed) = self.consumed_counters.get_mut(&slice.pool) else { return };
        for (set, counters) in &slice.devices[dk].consumes {
            let Some(cs) = consumed.get_mut(set) else { continue };
            for (name, v) in counters {
                if let Some(e) = cs.get_mut(name) {
                    *e = e.sub(v);
                }
            }
        }
    }
}

impl Allocator {
    /// The request (or subrequest) of claim `ci` a pick of `found` served.
    fn req_of<'c>(claim: &'c ResourceClaim, ri: usize, si: usize) -> Option<Req<'c>> {
        let request = claim.spec.devices.requests.get(ri)?;
        match &request.exactly {
            Some(e) => Some(Req::exact(request, e)),
            None => request.first_available.get(si).map(Req::sub),
        }
    }

    /// The allocation result of claim `ci`, as upstream builds it.
    fn result_for(&self, found: &Found, ci: usize, claim: &ResourceClaim) -> Result<AllocationResult, AllocError> {
        let mut out = AllocationResult::default();
        for p in &found.picks[ci] {
            let dev = &p.slice.devices[p.device];
            let name = |x: &Arc<str>| x.to_string();
            let tolerations = Self::req_of(claim, p.key.1, p.key.2).map(|r| r.tolerations.to_vec()).unwrap_or_default();
            out.devices.results.push(DeviceResult {
                request: p.request_name(),
                driver: name(&p.slice.pool.driver),
                pool: name(&p.slice.pool.pool),
                device: dev.name.clone(),
                admin_access: p.admin_access,
                tolerations,
                binding_conditions: dev.binding_conditions.clone(),
                binding_failure_conditions: dev.binding_failure_conditions.clone(),
                share_id: p.share_id.clone(),
                consumed_capacity: p.consumed.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
            });
        }
        // The request (or chosen subrequest) of each request index: its
        // full name, class, and whether it is a subrequest.
        let selected = |ri: usize| -> Option<(String, Option<Arc<DeviceClass>>, bool)> {
            let request = claim.spec.devices.requests.get(ri)?;
            let si = found.selected_sub.get(&(ci, ri)).copied().unwrap_or(0);
            let req = Self::req_of(claim, ri, si)?;
            let sub = request.exactly.is_none();
            let full = if sub { format!("{}/{}", request.name, req.name) } else { req.name.to_string() };
            Some((full, self.classes.get(req.class_name).cloned(), sub))
        };
        // Configuration: each class's once (listing every request of that
        // class), then the claim's.
        let mut class_ranges: HashMap<String, (usize, usize)> = HashMap::new();
        for ri in 0..claim.spec.devices.requests.len() {
            let Some((req_name, Some(class), _)) = selected(ri) else { continue };
            if let Some(&(s, e)) = class_ranges.get(&class.metadata.name) {
                for i in s..e {
                    out.devices.config[i].requests.push(req_name.clone());
                }
                continue;
            }
            let start = out.devices.config.len();
            for c in &class.spec.config {
                out.devices.config.push(AllocationConfig {
                    source: "FromClass".into(),
                    requests: vec![req_name.clone()],
                    opaque: c.opaque.clone(),
                });
            }
            class_ranges.insert(class.metadata.name.clone(), (start, out.devices.config.len()));
        }
        for config in &claim.spec.devices.config {
            let entry = AllocationConfig { source: "FromClaim".into(), requests: config.requests.clone(), opaque: config.opaque.clone() };
            if config.requests.is_empty() {
                out.devices.config.push(entry);
                continue;
            }
            for (ri, request) in claim.spec.devices.requests.iter().enumerate() {
                if config.requests.contains(&request.name) {
                    out.devices.config.push(entry.clone());
                    break;
                }
                let Some((full, _, true)) = selected(ri) else { continue };
                if config.requests.contains(&full) {
                    out.devices.config.push(entry.clone());
                    break;
                }
            }
        }
        // A config naming every request applies to all: upstream drops the list.
        for c in out.devices.config.iter_mut() {
            if c.requests.is_empty() {
                continue;
            }
            let all = claim.spec.devices.requests.iter().enumerate().all(|(ri, request)| {
                c.requests.contains(&request.name) || selected(ri).is_some_and(|(full, _, sub)| sub && c.requests.contains(&full))
            });
            if all {
                c.requests.clear();
            }
        }
        out.node_selector = node_selector(&found.picks[ci], &found.node)
            .map_err(|e| fatal(format!("create NodeSelector for claim {}: {e}", claim.metadata.name)))?;
        Ok(out)
    }
}

/// Upstream's `createNodeSelector`, for the devices picked for one claim on `node`.
fn node_selector(picks: &[Picked], node: &str) -> Result<Option<WireNodeSelector>, String> {
    {
        let mut term = WireNodeSelectorTerm::default();
        for p in picks {
            let dev = &p.slice.devices[p.device];
            let scope = if p.slice.per_device_node_selection { &dev.scope } else { &p.slice.scope };
            if scope.node_name.is_some() || dev.binds_to_node {
                return Ok(Some(WireNodeSelector {
                    node_selector_terms: vec![WireNodeSelectorTerm {
                        match_expressions: vec![],
                        match_fields: vec![WireRequirement {
                            key: "metadata.name".into(),
                            operator: "In".into(),
                            values: vec![node.to_string()],
                        }],
                    }],
                }));
            }
            if let Some(sel) = &scope.wire_selector {
                match sel.node_selector_terms.len() {
                    0 => {}
                    1 => {
                        add_new(&sel.node_selector_terms[0].match_fields, &mut term.match_fields);
                        add_new(&sel.node_selector_terms[0].match_expressions, &mut term.match_expressions);
                    }
                    n => return Err(format!("unsupported ResourceSlice.NodeSelector with {n} terms")),
                }
            }
        }
        if term.match_fields.is_empty() && term.match_expressions.is_empty() {
            return Ok(None);
        }
        Ok(Some(WireNodeSelector { node_selector_terms: vec![term] }))
    }
}

fn add_new(from: &[WireRequirement], to: &mut Vec<WireRequirement>) {
    for r in from {
        let values: BTreeSet<&String> = r.values.iter().collect();
        let present = to.iter().any(|e| e.key == r.key && e.operator == r.operator && e.values.iter().collect::<BTreeSet<_>>() == values);
        if !present {
            to.push(r.clone());
        }
    }
}
