//! What DynamicResources knows about claims beyond the watch: upstream's
//! claim tracker (`dra_manager.go`) and assume cache.
//!
//! - **In-flight allocations**: from Reserve until PreBind has written the
//!   claim, the allocation lives here, and its devices count as allocated
//!   for every other pod's attempt, so that two binding cycles running at
//!   once never get the same device. Pods of one group share an in-flight
//!   allocation of a claim they share (counted, released with the last).
//! - **Assumed claims**: the claim PreBind wrote, kept until the watch
//!   delivers that version or a newer one; the plugin reads claims through
//!   [`Tracker::get`], never older than what it wrote.
//! - **Allocated devices**, counted incrementally as claims change, in the
//!   numbering of the current [`Inventory`] (rebuilt when slices change).
//! - **The last change of each claim**, for queueing hints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::allocator::AllocatedState;
use super::inventory::Inventory;
use super::objects::{AllocationResult, ResourceClaim};
use crate::framework::ObjectKey;

/// What the last change of a claim did, for queueing hints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClaimChange {
    /// The claim was created.
    pub created: bool,
    /// An allocation went away (deallocated or deleted with one): its devices are free.
    pub freed: bool,
    /// The status changed (allocation, reservations, device status).
    pub status_changed: bool,
    /// The claim was deleted.
    pub deleted: bool,
}

struct InFlight {
    claim: Arc<ResourceClaim>,
    sharers: u32,
    /// The pod group of the pod that reserved it: its members share it.
    group: Option<String>,
}

#[derive(Default)]
struct Inner {
    /// The claims as the watch has them.
    watched: HashMap<ObjectKey, Arc<ResourceClaim>>,
    /// Claims PreBind wrote that the watch has not caught up with.
    assumed: HashMap<ObjectKey, Arc<ResourceClaim>>,
    /// Allocations made in Reserve, by claim UID.
    in_flight: HashMap<String, InFlight>,
    /// The inventory the allocated devices are counted in, and the store
    /// generations it was built from.
    inventory: Arc<Inventory>,
    built_from: Option<(u64, u64)>,
    allocated: Arc<AllocatedState>,
    changes: HashMap<ObjectKey, ClaimChange>,
}

fn version(c: &ResourceClaim) -> u64 {
    c.metadata.version()
}

impl Inner {
    fn effective(&self, key: &ObjectKey) -> Option<&Arc<ResourceClaim>> {
        self.assumed.get(key).or_else(|| self.watched.get(key))
    }

    fn count(&mut self, allocation: Option<&AllocationResult>, add: bool, owner: &str) {
        if let Some(a) = allocation {
            let inv = self.inventory.clone();
            Arc::make_mut(&mut self.allocated).apply_owned(&inv, a, add, Some(owner));
        }
    }

    /// Replaces the effective claim of `key` by what `f` makes of the maps,
    /// counting the allocation change.
    fn update(&mut self, key: &ObjectKey, f: impl FnOnce(&mut Inner)) {
        let before = self.effective(key).and_then(|c| c.status.allocation.clone());
        f(self);
        let after = self.effective(key).and_then(|c| c.status.allocation.clone());
        if before != after {
            let owner = key.to_string();
            self.count(before.as_ref(), false, &owner);
            self.count(after.as_ref(), true, &owner);
        }
    }

    fn recount(&mut self) {
        let mut state = AllocatedState::default();
        let keys: Vec<ObjectKey> = self.watched.keys().chain(self.assumed.keys()).cloned().collect();
        let mut seen = std::collections::HashSet::new();
        for k in keys {
            if !seen.insert(k.clone()) {
                continue;
            }
            if let Some(a) = self.effective(&k).and_then(|c| c.status.allocation.as_ref()) {
                state.apply_owned(&self.inventory, a, true, Some(&k.to_string()));
            }
        }
        for f in self.in_flight.values() {
            if let Some(a) = &f.claim.status.allocation {
                state.apply_owned(&self.inventory, a, true, Some(&f.claim.key()));
            }
        }
        self.allocated = Arc::new(state);
    }
}

/// See the module documentation.
#[derive(Default)]
pub struct Tracker {
    inner: Mutex<Inner>,
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watch reported a change of the claim `key` (the store observer).
    pub fn observe(&self, key: &ObjectKey, old: Option<&Arc<ResourceClaim>>, new: Option<&Arc<ResourceClaim>>) {
        let mut g = self.lock();
        let change = ClaimChange {
            created: old.is_none() && new.is_some(),
            freed: old.is_some_and(|o| o.status.allocation.is_some()) && new.is_none_or(|n| n.status.allocation.is_none()),
            status_changed: match (old, new) {
                (Some(o), Some(n)) => o.status != n.status,
                _ => true,
            },
            deleted: new.is_none(),
        };
        g.changes.insert(key.clone(), change);
        // Records of deleted claims are kept for a while (a hint may still
        // ask about them), not for ever.
        if g.changes.len() > 2 * g.watched.len() + 1024 {
            let Inner { changes, watched, .. } = &mut *g;
            changes.retain(|k, _| watched.contains_key(k) || k == key);
        }
        let new = new.cloned();
        g.update(key, move |g| {
            match &new {
                Some(n) => {
                    // The watch caught up with what PreBind wrote (or passed it).
                    if g.assumed.get(key).is_some_and(|a| version(n) >= version(a) || a.metadata.uid != n.metadata.uid) {
                        g.assumed.remove(key);
                    }
                    g.watched.insert(key.clone(), n.clone());
                }
                None => {
                    g.watched.remove(key);
                    g.assumed.remove(key);
                }
            }
        });
    }

    /// The claim `namespace/name`, as the scheduler must see it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<ResourceClaim>> {
        let key = ObjectKey { namespace: namespace.to_string(), name: name.to_string() };
        self.lock().effective(&key).cloned()
    }

    /// Every claim, as [`get`](Tracker::get) would return it.
    pub fn list(&self) -> Vec<Arc<ResourceClaim>> {
        let g = self.lock();
        let mut keys: Vec<&ObjectKey> = g.watched.keys().chain(g.assumed.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().filter_map(|k| g.effective(k).cloned()).collect()
    }

    /// PreBind wrote `claim`: read it back until the watch has it.
    pub fn assume(&self, claim: ResourceClaim) {
        let key = ObjectKey { namespace: claim.metadata.namespace.clone(), name: claim.metadata.name.clone() };
        let mut g = self.lock();
        if g.watched.get(&key).is_some_and(|w| version(w) >= version(&claim)) {
            return;
        }
        let claim = Arc::new(claim);
        g.update(&key, |g| {
            g.assumed.insert(key.clone(), claim);
        });
    }

    /// Drops what PreBind wrote for `key` (upstream's `AssumedClaimRestore`).
    pub fn restore(&self, namespace: &str, name: &str) {
        let key = ObjectKey { namespace: namespace.to_string(), name: name.to_string() };
        self.lock().update(&key, |g| {
            g.assumed.remove(&key);
        });
    }

    /// The allocation in flight for the claim with `uid`, if any.
    pub fn pending_allocation(&self, uid: &str) -> Option<AllocationResult> {
        self.lock().in_flight.get(uid).and_then(|f| f.claim.status.allocation.clone())
    }

    /// The pod group whose member reserved the in-flight allocation of `uid`.
    pub fn pending_group(&self, uid: &str) -> Option<String> {
        self.lock().in_flight.get(uid).and_then(|f| f.group.clone())
    }

    /// Reserve: `claim` (with its allocation) is in flight; a second pod
    /// sharing it only adds a sharer. An allocation the claim already has
    /// is not tracked.
    pub fn signal_pending(&self, claim: ResourceClaim, group: Option<String>) {
        let mut g = self.lock();
        let uid = claim.metadata.uid.clone();
        if let Some(f) = g.in_flight.get_mut(&uid) {
            f.sharers += 1;
            return;
        }
        let key = ObjectKey { namespace: claim.metadata.namespace.clone(), name: claim.metadata.name.clone() };
        if g.effective(&key).is_some_and(|c| c.metadata.uid == uid && c.status.allocation.is_some()) {
            return;
        }
        let allocation = claim.status.allocation.clone();
        let owner = claim.key();
        g.in_flight.insert(uid, InFlight { claim: Arc::new(claim), sharers: 1, group });
        g.count(allocation.as_ref(), true, &owner);
    }

    /// One sharer of the in-flight allocation of `uid` is done (`force`:
    /// all are). Returns whether the allocation left the in-flight set.
    pub fn remove_pending(&self, uid: &str, force: bool) -> bool {
        let mut g = self.lock();
        let Some(f) = g.in_flight.get_mut(uid) else { return false };
        if !force && f.sharers > 1 {
            f.sharers -= 1;
            return false;
        }
        let f = g.in_flight.remove(uid).expect("found above");
        g.count(f.claim.status.allocation.as_ref(), false, &f.claim.key());
        true
    }

    /// The inventory for the slice and rule store generations `key`, built
    /// by `build` when they changed, with the devices allocated now.
    pub fn snapshot(&self, key: (u64, u64), build: impl FnOnce() -> Inventory) -> (Arc<Inventory>, Arc<AllocatedState>) {
        let mut g = self.lock();
        if g.built_from != Some(key) {
            g.inventory = Arc::new(build());
            g.built_from = Some(key);
            g.recount();
        }
        (g.inventory.clone(), g.allocated.clone())
    }

    /// What the last change of the claim `key` did.
    pub fn last_change(&self, key: &ObjectKey) -> Option<ClaimChange> {
        self.lock().changes.get(key).copied()
    }
}
