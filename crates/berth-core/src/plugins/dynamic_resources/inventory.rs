//! The devices of the cluster, prepared once per change of the
//! ResourceSlices or DeviceTaintRules: every slice with its devices'
//! quantities parsed, the taints of matching DeviceTaintRules added (as
//! upstream's slice tracker patches them), each device given a small
//! number, and the slices indexed by node and by pool.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use super::objects::{DeviceAttribute, DeviceTaint, DeviceTaintRule, ResourceSlice};
use super::qty::Qty;
use crate::cel::{AttributeValue, DeviceInput};
use crate::model::{Labels, NodeSelector};

/// A device's number in one [`Inventory`]: the same driver, pool and
/// device name always get the same number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevId(pub u32);

/// A pool: driver and pool name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId {
    /// The driver.
    pub driver: Arc<str>,
    /// The pool name.
    pub pool: Arc<str>,
}

impl std::fmt::Display for PoolId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.driver, self.pool)
    }
}

/// Where a slice (or, with per-device node selection, a device) is reachable from.
#[derive(Clone, Debug, Default)]
pub struct NodeScope {
    /// `nodeName`.
    pub node_name: Option<String>,
    /// `nodeSelector`, compiled.
    pub node_selector: Option<NodeSelector>,
    /// The selector as written (copied into allocations).
    pub wire_selector: Option<crate::plugins::volume::objects::WireNodeSelector>,
    /// `allNodes`.
    pub all_nodes: bool,
}

impl NodeScope {
    /// Upstream's `NodeMatches`.
    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        match (&self.node_name, &self.node_selector) {
            (Some(n), _) if !n.is_empty() => n == node_name,
            _ if self.all_nodes => true,
            (_, Some(sel)) => sel.matches(node_name, labels),
            _ => false,
        }
    }

    /// Whether any of the fields is set.
    pub fn is_set(&self) -> bool {
        self.node_name.as_deref().is_some_and(|n| !n.is_empty()) || self.all_nodes || self.node_selector.is_some()
    }
}

/// One capacity of a device, parsed.
#[derive(Clone, Debug)]
pub struct Capacity {
    /// The total.
    pub value: Qty,
    /// `requestPolicy.default`.
    pub default: Option<Qty>,
    /// `requestPolicy.validValues`.
    pub valid_values: Vec<Qty>,
    /// `requestPolicy.validRange`: (min, max, step).
    pub valid_range: Option<Range>,
    /// Whether a request policy was given at all.
    pub has_policy: bool,
}

/// One device, prepared.
#[derive(Debug)]
pub struct PDevice {
    /// Its number.
    pub id: DevId,
    /// Its name.
    pub name: String,
    /// Attributes, as written.
    pub attributes: BTreeMap<String, DeviceAttribute>,
    /// Capacities (`Err`: a quantity that does not parse).
    pub capacity: Result<BTreeMap<String, Capacity>, String>,
    /// Counters consumed: (counter set, counter → amount).
    pub consumes: Vec<(String, BTreeMap<String, Qty>)>,
    /// With per-device node selection: where the device is reachable from.
    pub scope: NodeScope,
    /// Taints: the device's own, then those of matching DeviceTaintRules.
    pub taints: Vec<DeviceTaint>,
    /// `bindsToNode`.
    pub binds_to_node: bool,
    /// `bindingConditions`.
    pub binding_conditions: Vec<String>,
    /// `bindingFailureConditions`.
    pub binding_failure_conditions: Vec<String>,
    /// `allowMultipleAllocations`.
    pub allow_multiple: Option<bool>,
    /// Whether a counter consumption names compatibility groups (alpha).
    pub uses_compatibility_groups: bool,
    /// The CEL `device` variable, built on first use.
    cel: OnceLock<DeviceInput>,
    /// Selector results already computed for this device, by expression:
    /// a selector's verdict on a device never changes, and every node and
    /// pod asks again.
    verdicts: std::sync::RwLock<Vec<Verdict>>,
    driver: Arc<str>,
}

/// A selector's verdict on one device, by expression.
type Verdict = (Arc<str>, Result<bool, String>);

/// The pools a node sees, with the labels they were computed for (`None`
/// when no slice selects by label).
pub type NodePools = (Option<Labels>, Arc<Vec<super::pools::Pool>>);

impl PDevice {
    /// The CEL input of this device.
    pub fn cel_input(&self) -> &DeviceInput {
        self.cel.get_or_init(|| {
            let attributes: Vec<(String, AttributeValue)> =
                self.attributes.iter().filter_map(|(k, a)| Some((k.clone(), attribute_value(a)?))).collect();
            let capacity: Vec<(String, crate::model::Quantity)> = match &self.capacity {
                Ok(c) => c.keys().filter_map(|k| Some((k.clone(), self.raw_capacity(k)?))).collect(),
                Err(_) => Vec::new(),
            };
            DeviceInput::new(&self.driver, self.allow_multiple.unwrap_or(false), &attributes, &capacity)
        })
    }

    /// The verdict of the selector `expression` on this device, if already
    /// computed: `Ok(matches)`, or the evaluation's error. A selector's
    /// verdict on a device never changes, and every node and pod asks again.
    pub fn cached_verdict(&self, expression: &str) -> Option<Result<bool, String>> {
        self.verdicts.read().unwrap_or_else(|e| e.into_inner()).iter().find(|(e, _)| &**e == expression).map(|(_, v)| v.clone())
    }

    /// Keeps a verdict for [`cached_verdict`](PDevice::cached_verdict).
    pub fn keep_verdict(&self, expression: &str, verdict: Result<bool, String>) {
        let mut w = self.verdicts.write().unwrap_or_else(|e| e.into_inner());
        // A handful of selectors per device: a class's and a request's.
        if w.len() < 16 && !w.iter().any(|(e, _)| &**e == expression) {
            w.push((Arc::from(expression), verdict));
        }
    }

    fn raw_capacity(&self, name: &str) -> Option<crate::model::Quantity> {
        let c = self.capacity.as_ref().ok()?.get(name)?;
        crate::model::Quantity::parse(&format!("{}m", c.value.milli)).ok()
    }

    /// The attribute `name` (fully qualified: `domain/id`), as upstream's
    /// `lookupAttribute`: the exact key, or the id alone when the domain is
    /// the device's driver.
    pub fn attribute(&self, name: &str) -> Option<&DeviceAttribute> {
        if let Some(a) = self.attributes.get(name) {
            return Some(a);
        }
        let (domain, id) = name.split_once('/')?;
        if domain != &*self.driver {
            return None;
        }
        self.attributes.get(id)
    }
}

/// The single value of an attribute, for CEL.
pub fn attribute_value(a: &DeviceAttribute) -> Option<AttributeValue> {
    if let Some(v) = a.int {
        Some(AttributeValue::Int(v))
    } else if let Some(v) = a.bool {
        Some(AttributeValue::Bool(v))
    } else if let Some(v) = &a.string {
        Some(AttributeValue::String(v.clone()))
    } else {
        a.version.as_ref().map(|v| AttributeValue::Version(v.clone()))
    }
}

/// One slice, prepared.
#[derive(Debug)]
pub struct PSlice {
    /// The slice's name.
    pub name: String,
    /// Driver and pool.
    pub pool: PoolId,
    /// The pool's generation this slice belongs to.
    pub generation: i64,
    /// How many slices that generation has.
    pub slice_count: i64,
    /// Where the slice's devices are reachable from.
    pub scope: NodeScope,
    /// Each device says where it is reachable from.
    pub per_device_node_selection: bool,
    /// `perDeviceNodeSelection` or `sharedCounters` set (partitionable devices).
    pub partitionable: bool,
    /// The devices.
    pub devices: Vec<PDevice>,
    /// Counter sets: name → counter → amount.
    pub shared_counters: Vec<(String, BTreeMap<String, Qty>)>,
    /// A counter of a shared counter set did not parse.
    pub invalid_counters: Option<String>,
}

impl PSlice {
    /// Whether a device of this slice uses compatibility groups.
    pub fn uses_compatibility_groups(&self) -> bool {
        self.devices.iter().any(|d| d.uses_compatibility_groups)
    }
}

/// All slices, prepared and indexed.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Every slice, by name.
    pub slices: Vec<Arc<PSlice>>,
    /// Slices with `nodeName`, by node.
    pub on_node: HashMap<String, Vec<usize>>,
    /// Slices without `nodeName`.
    pub shared: Vec<usize>,
    /// Slices of each pool.
    pub by_pool: HashMap<PoolId, Vec<usize>>,
    /// Device numbers by `driver/pool/device`.
    pub ids: HashMap<(Arc<str>, Arc<str>, String), DevId>,
    /// The names behind each number.
    pub names: Vec<(Arc<str>, Arc<str>, String)>,
    /// Some slice or device selects nodes by label (so a node's pools
    /// depend on its labels, not only its name).
    pub selects_by_label: bool,
    /// The pools of each node, as [`pools::for_node`](super::pools::for_node) found them.
    pub pools: std::sync::RwLock<HashMap<String, NodePools>>,
}

fn parse_qty(field: &str, s: &str) -> Result<Qty, String> {
    Qty::parse(s).map_err(|e| format!("{field}: {e}"))
}

/// `validRange`: (min, max, step).
pub type Range = (Option<Qty>, Option<Qty>, Option<Qty>);

fn parse_capacity(name: &str, c: &super::objects::DeviceCapacity) -> Result<Capacity, String> {
    let value = parse_qty(&format!("capacity {name}"), &c.value)?;
    let mut out = Capacity { value, default: None, valid_values: Vec::new(), valid_range: None, has_policy: c.request_policy.is_some() };
    let Some(p) = &c.request_policy else { return Ok(out) };
    out.default = p.default.as_deref().map(|s| parse_qty("requestPolicy.default", s)).transpose()?;
    out.valid_values = p.valid_values.iter().map(|s| parse_qty("requestPolicy.validValues", s)).collect::<Result<Vec<_>, _>>()?;
    if let Some(r) = &p.valid_range {
        let f = |o: &Option<String>, n: &str| o.as_deref().map(|s| parse_qty(n, s)).transpose();
        out.valid_range = Some((f(&r.min, "validRange.min")?, f(&r.max, "validRange.max")?, f(&r.step, "validRange.step")?));
    }
    Ok(out)
}

impl Inventory {
    /// Prepares `slices`, with the taints of `rules` added.
    pub fn build<'a>(slices: impl IntoIterator<Item = &'a ResourceSlice>, rules: &[Arc<DeviceTaintRule>]) -> Inventory {
        let mut inv = Inventory::default();
        let mut interned: HashMap<String, Arc<str>> = HashMap::new();
        let mut intern = |s: &str| -> Arc<str> { interned.entry(s.to_string()).or_insert_with(|| Arc::from(s)).clone() };
        for s in slices {
            let driver = intern(&s.spec.driver);
            let pool = PoolId { driver: driver.clone(), pool: intern(&s.spec.pool.name) };
            let mut devices = Vec::with_capacity(s.spec.devices.len());
            for d in &s.spec.devices {
                let key = (pool.driver.clone(), pool.pool.clone(), d.name.clone());
                let next = DevId(inv.names.len() as u32);
                let id = *inv.ids.entry(key.clone()).or_insert_with(|| {
                    inv.names.push(key);
                    next
                });
                let capacity = d
                    .capacity
                    .iter()
                    .map(|(name, c)| Ok((name.clone(), parse_capacity(name, c)?)))
                    .collect::<Result<BTreeMap<_, _>, String>>();
                let consumes = d
                    .consumes_counters
                    .iter()
                    .map(|c| {
                        let counters = c
                            .counters
                            .iter()
                            .map(|(n, v)| Ok((n.clone(), parse_qty(&format!("counter {n}"), &v.value)?)))
                            .collect::<Result<BTreeMap<_, _>, String>>()
                            .unwrap_or_default();
                        (c.counter_set.clone(), counters)
                    })
                    .collect();
                let mut taints = d.taints.clone();
                for rule in rules {
                    let Some(sel) = &rule.spec.device_selector else { continue };
                    if sel.selects(&s.spec.driver, &s.spec.pool.name, &d.name) {
                        taints.push(rule.spec.taint.clone());
                    }
                }
                devices.push(PDevice {
                    id,
                    name: d.name.clone(),
                    attributes: d.attributes.clone(),
                    capacity,
                    consumes,
                    scope: NodeScope {
                        node_name: d.node_name.clone(),
                        node_selector: d.node_selector.as_ref().map(|w| w.to_model()),
                        wire_selector: d.node_selector.clone(),
                        all_nodes: d.all_nodes.unwrap_or(false),
                    },
                    taints,
                    binds_to_node: d.binds_to_node.unwrap_or(false),
                    binding_conditions: d.binding_conditions.clone(),
                    binding_failure_conditions: d.binding_failure_conditions.clone(),
                    allow_multiple: d.allow_multiple_allocations,
                    uses_compatibility_groups: d.consumes_counters.iter().any(|c| !c.compatibility_groups.is_empty()),
                    cel: OnceLock::new(),
                    verdicts: Default::default(),
                    driver: driver.clone(),
                });
            }
            let mut invalid_counters = None;
            let shared_counters = s
                .spec
                .shared_counters
                .iter()
                .map(|cs| {
                    let counters = cs
                        .counters
                        .iter()
                        .filter_map(|(n, v)| match Qty::parse(&v.value) {
                            Ok(q) => Some((n.clone(), q)),
                            Err(e) => {
                                invalid_counters.get_or_insert(format!("counter set {} counter {n}: {e}", cs.name));
                                None
                            }
                        })
                        .collect();
                    (cs.name.clone(), counters)
                })
                .collect();
            let slice = PSlice {
                name: s.metadata.name.clone(),
                pool: pool.clone(),
                generation: s.spec.pool.generation,
                slice_count: s.spec.pool.resource_slice_count,
                scope: NodeScope {
                    node_name: s.spec.node_name.clone(),
                    node_selector: s.spec.node_selector.as_ref().map(|w| w.to_model()),
                    wire_selector: s.spec.node_selector.clone(),
                    all_nodes: s.spec.all_nodes.unwrap_or(false),
                },
                per_device_node_selection: s.spec.per_device_node_selection.unwrap_or(false),
                partitionable: s.spec.per_device_node_selection.is_some() || !s.spec.shared_counters.is_empty(),
                devices,
                shared_counters,
                invalid_counters,
            };
            inv.selects_by_label |= slice.scope.node_selector.is_some() || slice.devices.iter().any(|d| d.scope.node_selector.is_some());
            let index = inv.slices.len();
            match slice.scope.node_name.as_deref().filter(|n| !n.is_empty()) {
                Some(n) => inv.on_node.entry(n.to_string()).or_default().push(index),
                None => inv.shared.push(index),
            }
            inv.by_pool.entry(pool).or_default().push(index);
            inv.slices.push(Arc::new(slice));
        }
        inv
    }

    /// How many distinct devices there are.
    pub fn num_devices(&self) -> usize {
        self.names.len()
    }

    /// The number of `driver/pool/device`, if some slice has that device.
    pub fn id_of(&self, driver: &str, pool: &str, device: &str) -> Option<DevId> {
        // Interned keys: look up through a borrowed triple.
        self.ids.get(&(Arc::from(driver), Arc::from(pool), device.to_string())).copied()
    }

    /// `driver/pool/device` of a number.
    pub fn name_of(&self, id: DevId) -> String {
        let (d, p, n) = &self.names[id.0 as usize];
        format!("{d}/{p}/{n}")
    }
}
