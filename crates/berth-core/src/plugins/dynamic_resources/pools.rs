//! Which resource pools a node can use, as upstream's `GatherPools`
//! (incubating allocator): slices relevant for the node, grouped by pool,
//! the newest generation only, incomplete and invalid pools marked, pools
//! sorted by driver and name (pools whose devices have binding conditions
//! last), slices by name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::inventory::{Inventory, PSlice, PoolId};
use super::qty::Qty;
use crate::model::Labels;

/// A pool, for one node.
#[derive(Debug)]
pub struct Pool {
    /// Driver and pool name.
    pub id: PoolId,
    /// Not all slices of the pool's generation are known yet.
    pub incomplete: bool,
    /// The pool's slices contradict each other (the reason).
    pub invalid: Option<String>,
    /// Slices with devices reachable from the node, by name.
    pub targeting: Vec<Arc<PSlice>>,
    /// The pool's other device slices (their allocated devices use counters too).
    pub not_targeting: Vec<Arc<PSlice>>,
    /// Counter sets: name → counter → amount.
    pub counter_sets: HashMap<String, BTreeMap<String, Qty>>,
}

impl Pool {
    fn marked(id: PoolId, incomplete: bool, invalid: Option<String>) -> Pool {
        Pool { id, incomplete, invalid, targeting: Vec::new(), not_targeting: Vec::new(), counter_sets: HashMap::new() }
    }

    fn has_binding_conditions(&self) -> bool {
        self.targeting.iter().any(|s| s.devices.iter().any(|d| !d.binding_conditions.is_empty()))
    }
}

/// Upstream's `addSlice`: the newest generation of each pool wins.
fn add_slice(pools: &mut BTreeMap<PoolId, Vec<Arc<PSlice>>>, slice: &Arc<PSlice>) {
    let entry = pools.entry(slice.pool.clone()).or_default();
    match entry.first().map(|f| f.generation) {
        None => entry.push(slice.clone()),
        Some(g) if slice.generation < g => {}
        Some(g) if slice.generation > g => *entry = vec![slice.clone()],
        Some(_) => entry.push(slice.clone()),
    }
}

/// The pools with devices for the node `node_name` (with `labels`), kept in
/// the inventory: they change only with the slices (which rebuild the
/// inventory) and, where a slice selects nodes by label, the node's labels.
pub fn for_node(inv: &Inventory, node_name: &str, labels: &Labels) -> Arc<Vec<Pool>> {
    let label_key = if inv.selects_by_label { Some(labels) } else { None };
    if let Some((l, pools)) = inv.pools.read().unwrap_or_else(|e| e.into_inner()).get(node_name) {
        if l.as_ref() == label_key {
            return pools.clone();
        }
    }
    let pools = Arc::new(gather(inv, node_name, labels));
    inv.pools.write().unwrap_or_else(|e| e.into_inner()).insert(node_name.to_string(), (label_key.cloned(), pools.clone()));
    pools
}

/// The pools with devices for the node `node_name` (with `labels`).
pub fn gather(inv: &Inventory, node_name: &str, labels: &Labels) -> Vec<Pool> {
    let mut by_pool: BTreeMap<PoolId, Vec<Arc<PSlice>>> = BTreeMap::new();
    let on_node = inv.on_node.get(node_name).map(|v| v.as_slice()).unwrap_or_default();
    for &i in on_node.iter().chain(inv.shared.iter()) {
        let slice = &inv.slices[i];
        // Compatibility groups are alpha and off: such slices are ignored,
        // which leaves their pool incomplete.
        if slice.uses_compatibility_groups() {
            continue;
        }
        let relevant = if slice.scope.is_set() {
            slice.scope.matches(node_name, labels)
        } else if slice.per_device_node_selection {
            slice.devices.iter().any(|d| d.scope.matches(node_name, labels))
        } else {
            // Nothing known is set: a future extension this version cannot handle.
            continue;
        };
        if relevant {
            add_slice(&mut by_pool, slice);
        }
    }
    let mut result = Vec::new();
    let mut with_binding_conditions = Vec::new();
    for (id, slices) in by_pool {
        let first = &slices[0];
        let (generation, count) = (first.generation, first.slice_count);
        let pool = if slices.len() as i64 == count {
            build(id, slices, &[])
        } else {
            // Look at the slices that did not target the node: the pool may
            // still be complete, or superseded by a newer generation.
            let mut all = Vec::new();
            let mut obsolete = false;
            for &i in inv.by_pool.get(&id).map(|v| v.as_slice()).unwrap_or_default() {
                let s = &inv.slices[i];
                if s.generation == generation {
                    all.push(s.clone());
                } else if s.generation > generation {
                    obsolete = true;
                    break;
                }
            }
            if obsolete {
                continue;
            }
            all.retain(|s| !s.uses_compatibility_groups());
            if all.len() as i64 != count {
                result.push(Pool::marked(id, true, None));
                continue;
            }
            build(id, slices, &all)
        };
        if pool.has_binding_conditions() {
            with_binding_conditions.push(pool);
        } else {
            result.push(pool);
        }
    }
    // BTreeMap iteration is already by (driver, pool): the sort upstream does.
    result.extend(with_binding_conditions);
    result
}

/// Upstream's `buildPool`.
fn build(id: PoolId, mut slices: Vec<Arc<PSlice>>, all_for_pool: &[Arc<PSlice>]) -> Pool {
    slices.sort_by(|a, b| a.name.cmp(&b.name));
    let mut targeting = Vec::new();
    let mut counter_slices = Vec::new();
    let mut not_targeting = Vec::new();
    for s in &slices {
        if !s.shared_counters.is_empty() {
            counter_slices.push(s.clone());
        } else {
            targeting.push(s.clone());
        }
    }
    if slices.len() < all_for_pool.len() {
        let names: BTreeSet<&str> = slices.iter().map(|s| s.name.as_str()).collect();
        for s in all_for_pool {
            if names.contains(s.name.as_str()) {
                continue;
            }
            if !s.shared_counters.is_empty() {
                counter_slices.push(s.clone());
            } else {
                not_targeting.push(s.clone());
            }
        }
    }
    let invalid = |reason: String| Pool::marked(id.clone(), false, Some(reason));
    let mut seen = BTreeSet::new();
    for s in &targeting {
        for d in &s.devices {
            if !seen.insert(d.name.as_str()) {
                return invalid(format!("duplicate device name {}", d.name));
            }
        }
    }
    let mut counter_sets: HashMap<String, BTreeMap<String, Qty>> = HashMap::new();
    for s in &counter_slices {
        if let Some(reason) = &s.invalid_counters {
            return invalid(reason.clone());
        }
        for (name, counters) in &s.shared_counters {
            if counter_sets.contains_key(name) {
                return invalid(format!("duplicate counter set name {name}"));
            }
            counter_sets.insert(name.clone(), counters.clone());
        }
    }
    for group in [&targeting, &not_targeting] {
        for s in group.iter() {
            for d in &s.devices {
                for (set, counters) in &d.consumes {
                    let Some(cs) = counter_sets.get(set) else {
                        return invalid(format!("counter set {set} not found"));
                    };
                    if let Some(missing) = counters.keys().find(|c| !cs.contains_key(*c)) {
                        return invalid(format!("counter {missing} not found in counter set {set}"));
                    }
                }
            }
        }
    }
    Pool { id, incomplete: false, invalid: None, targeting, not_targeting, counter_sets }
}
