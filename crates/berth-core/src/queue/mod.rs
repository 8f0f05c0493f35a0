//! The scheduling queue: activeQ (ordered by the QueueSort plugin), backoffQ
//! (exponential backoff after a failed attempt), and the unschedulable pods
//! waiting for a cluster event that could help them, as upstream's
//! `PriorityQueue`.
//!
//! The queue has no clock of its own: every call that depends on time takes
//! `now_ms`, so the simulator can run on virtual time and the live scheduler on
//! the wall clock.

mod heap;
mod nominator;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::framework::{ClusterEvent, ClusterEventWithHint, EventObject, PodInfo, QueuedPodInfo, QueueingHint};
use crate::model::Pod;
pub use heap::Heap;
pub use nominator::Nominator;

fn trunc_sec(ms: i64) -> i64 {
    ms - ms.rem_euclid(1000)
}

/// Upstream defaults.
pub const DEFAULT_POD_INITIAL_BACKOFF_MS: i64 = 1_000;
pub const DEFAULT_POD_MAX_BACKOFF_MS: i64 = 10_000;
pub const DEFAULT_MAX_IN_UNSCHEDULABLE_MS: i64 = 5 * 60 * 1_000;

type LessFn = Arc<dyn Fn(&QueuedPodInfo, &QueuedPodInfo) -> bool + Send + Sync>;
type PreEnqueueFn = Arc<dyn Fn(&Pod) -> crate::framework::Status + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled.
    InFlight,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub gated: usize,
}

pub struct QueueConfig {
    pub pod_initial_backoff_ms: i64,
    pub pod_max_backoff_ms: i64,
    pub max_in_unschedulable_ms: i64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            pod_initial_backoff_ms: DEFAULT_POD_INITIAL_BACKOFF_MS,
            pod_max_backoff_ms: DEFAULT_POD_MAX_BACKOFF_MS,
            max_in_unschedulable_ms: DEFAULT_MAX_IN_UNSCHEDULABLE_MS,
        }
    }
}

pub struct SchedulingQueue {
    cfg: QueueConfig,
    active: Heap,
    /// Ordered by backoff expiry, then by the QueueSort order.
    backoff: Vec<QueuedPodInfo>,
    unschedulable: HashMap<String, QueuedPodInfo>,
    in_flight: HashMap<String, u64>,
    where_is: HashMap<String, Location>,
    pre_enqueue: PreEnqueueFn,
    /// Plugin name -> events it registered.
    events: HashMap<&'static str, Vec<ClusterEventWithHint>>,
    /// Events seen while pods were in flight: (sequence, event, object).
    in_flight_events: Vec<(u64, ClusterEvent, EventObject)>,
    seq: u64,
    arrivals: u64,
    /// Unschedulable pods held back by `hold` (not by PreEnqueue).
    held: HashSet<String>,
    /// No unschedulable (ungated) pod has waited too long before this time:
    /// `flush` looks for them only from then on, not on every call.
    stale_from_ms: i64,
    /// Pods put into each queue since the last `take_incoming`, by (queue,
    /// event): upstream's `scheduler_queue_incoming_pods_total`.
    incoming: BTreeMap<(&'static str, &'static str), u64>,
    pub nominator: Nominator,
}

/// The `event` label of pods that entered a queue for a reason other than a
/// cluster event (upstream's names).
pub mod incoming {
    /// A new pending pod.
    pub const POD_ADD: &str = "UnscheduledPodAdd";
    /// A queued pod's object changed.
    pub const POD_UPDATE: &str = "UnscheduledPodUpdate";
    /// A scheduling attempt failed.
    pub const ATTEMPT_FAILURE: &str = "ScheduleAttemptFailure";
    /// A pod's backoff ended.
    pub const BACKOFF_COMPLETE: &str = "BackoffComplete";
    /// Nothing was active: a backing-off pod was taken early.
    pub const POP_FROM_BACKOFF: &str = "PopFromBackoffQ";
    /// A pod waited unschedulable longer than the limit.
    pub const UNSCHEDULABLE_TIMEOUT: &str = "UnschedulableTimeout";
    /// A held pod (preemptor) was let go.
    pub const FORCE_ACTIVATE: &str = "ForceActivate";
}

impl SchedulingQueue {
    pub fn new(cfg: QueueConfig, less: LessFn, pre_enqueue: PreEnqueueFn) -> SchedulingQueue {
        SchedulingQueue {
            cfg,
            active: Heap::new(less),
            backoff: Vec::new(),
            unschedulable: HashMap::new(),
            in_flight: HashMap::new(),
            where_is: HashMap::new(),
            pre_enqueue,
            events: HashMap::new(),
            in_flight_events: Vec::new(),
            seq: 0,
            arrivals: 0,
            held: HashSet::new(),
            stale_from_ms: i64::MAX,
            incoming: BTreeMap::new(),
            nominator: Nominator::default(),
        }
    }

    /// Registers the events a plugin wants pods it rejected to be retried on.
    pub fn register_events(&mut self, plugin: &'static str, events: Vec<ClusterEventWithHint>) {
        self.events.entry(plugin).or_default().extend(events);
    }

    pub fn counts(&self) -> QueueCounts {
        let gated = self.unschedulable.values().filter(|q| q.gated).count();
        QueueCounts { active: self.active.len(), backoff: self.backoff.len(), unschedulable: self.unschedulable.len() - gated, gated }
    }

    /// How many pods entered each queue, by (queue, event), since the last
    /// call: `queue` is `active`, `backoff` or `unschedulable`.
    pub fn take_incoming(&mut self) -> Vec<(&'static str, &'static str, u64)> {
        std::mem::take(&mut self.incoming).into_iter().map(|((q, e), n)| (q, e, n)).collect()
    }

    fn count_incoming(&mut self, queue: &'static str, event: &'static str) {
        *self.incoming.entry((queue, event)).or_default() += 1;
    }

    fn put_active(&mut self, q: QueuedPodInfo, event: &'static str) {
        self.where_is.insert(q.key(), Location::Active);
        self.active.push(q);
        self.count_incoming("active", event);
    }

    fn put_unschedulable(&mut self, q: QueuedPodInfo, event: &'static str) {
        let key = q.key();
        self.where_is.insert(key.clone(), Location::Unschedulable);
        self.unschedulable.insert(key, q);
        self.count_incoming("unschedulable", event);
    }

    pub fn len(&self) -> usize {
        self.active.len() + self.backoff.len() + self.unschedulable.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn location(&self, key: &str) -> Option<Location> {
        self.where_is.get(key).copied()
    }

    /// A new pending pod (informer add).
    pub fn add(&mut self, pod: Arc<PodInfo>, now_ms: i64) {
        let key = pod.key();
        if self.where_is.contains_key(&key) {
            return;
        }
        if let Some(n) = &pod.pod.nominated_node_name {
            self.nominator.add(pod.clone(), n);
        }
        let mut qpi = QueuedPodInfo::new(pod, now_ms);
        self.arrivals += 1;
        qpi.seq = self.arrivals;
        self.enqueue_new(qpi, incoming::POD_ADD);
    }

    fn enqueue_new(&mut self, mut qpi: QueuedPodInfo, event: &'static str) {
        let s = (self.pre_enqueue)(&qpi.pod_info.pod);
        if s.is_success() {
            qpi.gated = false;
            self.put_active(qpi, event);
        } else {
            qpi.gated = true;
            if !s.plugin.is_empty() {
                qpi.unschedulable_plugins.insert(s.plugin);
            }
            self.put_unschedulable(qpi, event);
        }
    }

    /// The pod object changed while it was queued (informer update).
    pub fn update(&mut self, pod: Arc<PodInfo>, now_ms: i64) {
        self.update_with(pod, now_ms, true)
    }

    /// An update of the pod's status only (upstream's `isPodUpdated` is
    /// false): the queued copy is refreshed, but an unschedulable pod stays
    /// where it is. Our own PodScheduled and nomination patches come back
    /// as such updates; requeueing on them would retry every failed pod
    /// again and again.
    pub fn update_status_only(&mut self, pod: Arc<PodInfo>, now_ms: i64) {
        self.update_with(pod, now_ms, false)
    }

    fn update_with(&mut self, pod: Arc<PodInfo>, now_ms: i64, requeue: bool) {
        let key = pod.key();
        match self.where_is.get(&key).copied() {
            None => self.add(pod, now_ms),
            Some(Location::Active) => {
                self.active.update(&key, |q| q.pod_info = pod.clone());
            }
            Some(Location::Backoff) => {
                if let Some(q) = self.backoff.iter_mut().find(|q| q.key() == key) {
                    q.pod_info = pod;
                }
            }
            Some(Location::Unschedulable) if !requeue => {
                if let Some(q) = self.unschedulable.get_mut(&key) {
                    q.pod_info = pod;
                }
            }
            Some(Location::Unschedulable) => {
                let mut q = self.unschedulable.remove(&key).expect("indexed");
                let was_gated = q.gated;
                q.pod_info = pod;
                if was_gated {
                    // Gates may have been removed: re-run PreEnqueue.
                    self.where_is.remove(&key);
                    self.enqueue_new(q, incoming::POD_UPDATE);
                } else {
                    // Any update may make it schedulable; upstream retries it.
                    self.where_is.remove(&key);
                    self.requeue(q, now_ms, incoming::POD_UPDATE);
                }
            }
            Some(Location::InFlight) => {}
        }
    }

    /// The pod was deleted or bound by someone else.
    pub fn delete(&mut self, key: &str) {
        self.nominator.remove(key);
        self.held.remove(key);
        match self.where_is.remove(key) {
            Some(Location::Active) => {
                self.active.remove(key);
            }
            Some(Location::Backoff) => self.backoff.retain(|q| q.key() != key),
            Some(Location::Unschedulable) => {
                self.unschedulable.remove(key);
            }
            Some(Location::InFlight) => {
                self.in_flight.remove(key);
            }
            None => {}
        }
    }

    /// Moves backoff pods whose backoff expired to activeQ, and pods that sat
    /// unschedulable too long back for another try.
    pub fn flush(&mut self, now_ms: i64) {
        if self.next_backoff_expiry().is_some_and(|t| t <= now_ms) {
            let all = std::mem::take(&mut self.backoff);
            for q in all {
                if !self.backing_off(&q, now_ms) {
                    self.put_active(q, incoming::BACKOFF_COMPLETE);
                } else {
                    self.backoff.push(q);
                }
            }
        }
        // Walking every unschedulable pod is the cost of a large backlog:
        // only when one may have waited too long.
        if now_ms <= self.stale_from_ms {
            return;
        }
        let max = self.cfg.max_in_unschedulable_ms;
        let mut stale: Vec<(u64, String)> = Vec::new();
        let mut next = i64::MAX;
        for (k, q) in self.unschedulable.iter().filter(|(_, q)| !q.gated) {
            if now_ms - q.timestamp > max {
                stale.push((q.seq, k.clone()));
            } else {
                next = next.min(q.timestamp + max);
            }
        }
        self.stale_from_ms = next;
        stale.sort();
        let stale: Vec<String> = stale.into_iter().map(|(_, k)| k).collect();
        for k in stale {
            self.requeue_unschedulable(&k, now_ms, incoming::UNSCHEDULABLE_TIMEOUT);
        }
    }

    /// Next pod to schedule, if any is active.
    pub fn pop(&mut self) -> Option<QueuedPodInfo> {
        let mut q = match self.active.pop() {
            Some(q) => q,
            None => self.pop_from_backoff()?,
        };
        q.attempts += 1;
        let key = q.key();
        self.seq += 1;
        self.in_flight.insert(key.clone(), self.seq);
        self.where_is.insert(key, Location::InFlight);
        Some(q)
    }

    /// Whether the pod is popped and its attempt not over: false once it
    /// was deleted, or bound by someone else, during its cycle or binding.
    pub fn is_in_flight(&self, key: &str) -> bool {
        self.in_flight.contains_key(key)
    }

    /// The scheduling attempt of a popped pod is over (bound or requeued).
    pub fn done(&mut self, key: &str) {
        if self.in_flight.remove(key).is_some() && self.where_is.get(key) == Some(&Location::InFlight) {
            self.where_is.remove(key);
        }
        if self.in_flight.is_empty() {
            self.in_flight_events.clear();
        } else {
            let oldest = self.in_flight.values().copied().min().unwrap_or(u64::MAX);
            self.in_flight_events.retain(|(s, _, _)| *s >= oldest);
        }
    }

    /// Backoff duration after `attempts` failed attempts.
    pub fn backoff_duration(&self, attempts: u32) -> i64 {
        if attempts == 0 {
            return 0;
        }
        let mut d = self.cfg.pod_initial_backoff_ms;
        for _ in 1..attempts {
            if d > self.cfg.pod_max_backoff_ms - d {
                return self.cfg.pod_max_backoff_ms;
            }
            d += d;
        }
        d.min(self.cfg.pod_max_backoff_ms)
    }

    /// When the pod's backoff ends, truncated to the whole second (upstream
    /// 1.33+ with SchedulerPopFromBackoffQ, the default).
    fn backoff_expiry(&self, q: &QueuedPodInfo) -> i64 {
        trunc_sec(q.timestamp.saturating_add(self.backoff_duration(q.attempts)))
    }

    /// Upstream `isPodBackingoff`: still backing off until the first whole
    /// second strictly after the (truncated) expiry.
    fn backing_off(&self, q: &QueuedPodInfo, now_ms: i64) -> bool {
        self.backoff_expiry(q) >= trunc_sec(now_ms)
    }

    /// Earliest time a backoff pod becomes active (for a virtual clock).
    pub fn next_backoff_expiry(&self) -> Option<i64> {
        self.backoff.iter().map(|q| self.backoff_expiry(q).saturating_add(1000)).min()
    }

    /// Earliest time an unschedulable pod would be retried by the timeout flush.
    pub fn next_unschedulable_timeout(&self) -> Option<i64> {
        self.unschedulable.values().filter(|q| !q.gated).map(|q| q.timestamp + self.cfg.max_in_unschedulable_ms + 1).min()
    }

    /// A popped pod failed. Pods rejected by plugins wait for an event that
    /// could help them, unless such an event already arrived while they were
    /// being scheduled; errors go straight to backoff.
    pub fn add_unschedulable(&mut self, mut q: QueuedPodInfo, now_ms: i64) {
        let key = q.key();
        let started = self.in_flight.get(&key).copied();
        q.timestamp = now_ms;
        q.gated = false;
        let errored = q.unschedulable_plugins.is_empty() && q.pending_plugins.is_empty();
        let helped = !errored
            && started.is_some_and(|s| {
                self.in_flight_events.iter().any(|(seq, ev, obj)| *seq > s && self.hint(&q, ev, obj) == QueueingHint::Queue)
            });
        self.done(&key);
        if errored {
            self.push_backoff(q, incoming::ATTEMPT_FAILURE);
            return;
        }
        if helped {
            self.requeue(q, now_ms, incoming::ATTEMPT_FAILURE);
        } else {
            self.stale_from_ms = self.stale_from_ms.min(q.timestamp + self.cfg.max_in_unschedulable_ms);
            self.put_unschedulable(q, incoming::ATTEMPT_FAILURE);
        }
    }

    /// SchedulerPopFromBackoffQ (upstream 1.33+, on by default): with nothing
    /// active, the pod rejected by plugins whose backoff ends first is tried
    /// now rather than leaving the scheduler idle. Pods that failed with an
    /// error are not taken early.
    fn pop_from_backoff(&mut self) -> Option<QueuedPodInfo> {
        let best = self
            .backoff
            .iter()
            .enumerate()
            .filter(|(_, q)| !(q.unschedulable_plugins.is_empty() && q.pending_plugins.is_empty()))
            .min_by_key(|(_, q)| (self.backoff_expiry(q), -(q.pod_info.pod.priority as i64), q.timestamp, q.seq))
            .map(|(i, _)| i)?;
        self.count_incoming("active", incoming::POP_FROM_BACKOFF);
        Some(self.backoff.remove(best))
    }

    fn push_backoff(&mut self, q: QueuedPodInfo, event: &'static str) {
        self.where_is.insert(q.key(), Location::Backoff);
        self.backoff.push(q);
        self.count_incoming("backoff", event);
    }

    /// Moves the unschedulable pod `key` back to backoffQ or activeQ (`requeue`).
    fn requeue_unschedulable(&mut self, key: &str, now_ms: i64, event: &'static str) {
        if let Some(q) = self.unschedulable.remove(key) {
            self.where_is.remove(key);
            self.requeue(q, now_ms, event);
        }
    }

    /// Back to backoffQ if still backing off, else activeQ.
    fn requeue(&mut self, q: QueuedPodInfo, now_ms: i64, event: &'static str) {
        if self.backing_off(&q, now_ms) {
            self.push_backoff(q, event);
        } else {
            self.put_active(q, event);
        }
    }

    fn hint(&self, q: &QueuedPodInfo, ev: &ClusterEvent, obj: &EventObject) -> QueueingHint {
        let plugins = q.unschedulable_plugins.iter().chain(q.pending_plugins.iter());
        for p in plugins {
            let Some(regs) = self.events.get(p) else { continue };
            for r in regs {
                if !ev.matches(&r.event) {
                    continue;
                }
                match &r.hint {
                    None => return QueueingHint::Queue,
                    Some(h) => {
                        if h(&q.pod_info.pod, obj) == QueueingHint::Queue {
                            return QueueingHint::Queue;
                        }
                    }
                }
            }
        }
        QueueingHint::Skip
    }

    /// A cluster event happened: retry the unschedulable pods it may help.
    pub fn on_event(&mut self, ev: ClusterEvent, obj: EventObject, now_ms: i64) -> usize {
        if !self.in_flight.is_empty() {
            self.seq += 1;
            self.in_flight_events.push((self.seq, ev, obj.clone()));
        }
        if self.unschedulable.is_empty() {
            return 0;
        }
        let wildcard = ev.resource == crate::framework::EventResource::WildCard;
        // Pods a PreEnqueue plugin gated run it again on the events that
        // plugin registered (not on wildcard flushes); held pods wait for `release`.
        let mut movers: Vec<(u64, String, bool)> = self
            .unschedulable
            .iter()
            .filter(|(k, q)| {
                if q.gated {
                    !wildcard && !self.held.contains(*k) && self.hint(q, &ev, &obj) == QueueingHint::Queue
                } else {
                    wildcard || self.hint(q, &ev, &obj) == QueueingHint::Queue
                }
            })
            .map(|(k, q)| (q.seq, k.clone(), q.gated))
            .collect();
        // Arrival order, so equal pods keep their relative order.
        movers.sort();
        let mut n = 0;
        for (_, k, gated) in movers {
            if gated {
                let q = self.unschedulable.remove(&k).expect("listed");
                self.where_is.remove(&k);
                self.enqueue_new(q, ev.label);
                n += usize::from(self.where_is.get(&k) == Some(&Location::Active));
            } else {
                self.requeue_unschedulable(&k, now_ms, ev.label);
                n += 1;
            }
        }
        n
    }

    /// Takes the pods `keys` that wait in the queue (active, backing off, or
    /// unschedulable but not gated or held) out of it, as `pop` does: the
    /// other members of a group whose member was popped. Pods elsewhere
    /// (gated, in flight, unknown) are left where they are.
    pub fn take(&mut self, keys: &[String]) -> Vec<QueuedPodInfo> {
        let mut out = Vec::new();
        for key in keys {
            let q = match self.where_is.get(key).copied() {
                Some(Location::Active) => self.active.remove(key),
                Some(Location::Backoff) => {
                    let i = self.backoff.iter().position(|q| &q.key() == key);
                    i.map(|i| self.backoff.remove(i))
                }
                Some(Location::Unschedulable) if !self.held.contains(key) && self.unschedulable.get(key).is_some_and(|q| !q.gated) => {
                    self.unschedulable.remove(key)
                }
                _ => None,
            };
            let Some(mut q) = q else { continue };
            q.attempts += 1;
            self.seq += 1;
            self.in_flight.insert(key.clone(), self.seq);
            self.where_is.insert(key.clone(), Location::InFlight);
            out.push(q);
        }
        out
    }

    /// A higher-priority preemptor took `key`'s nominated node (upstream's
    /// `prepareCandidate` clears the nominations of lower-priority pods
    /// there). The pod forgets the nomination and, if it was waiting as
    /// unschedulable, is retried (after its backoff) to find another place:
    /// upstream gets there through the pod's own update event, which its
    /// NodeResourcesFit hint answers with Queue. Left waiting, the pod
    /// would stay "not eligible" for preemption until its old victims are
    /// gone, and the victims it could pick elsewhere would be picked a
    /// whole grace period late.
    pub fn nomination_lost(&mut self, key: &str, now_ms: i64) {
        self.nominator.remove(key);
        let forget = |q: &mut QueuedPodInfo| {
            if q.pod_info.pod.nominated_node_name.is_some() {
                let mut pod = (*q.pod_info.pod).clone();
                pod.nominated_node_name = None;
                q.pod_info = Arc::new(PodInfo::from_arc(Arc::new(pod)));
            }
        };
        match self.where_is.get(key).copied() {
            Some(Location::Active) => self.active.update(key, forget),
            Some(Location::Backoff) => self.backoff.iter_mut().filter(|q| q.key() == key).for_each(forget),
            Some(Location::Unschedulable) => {
                let Some(q) = self.unschedulable.get_mut(key) else { return };
                forget(q);
                if !q.gated {
                    self.requeue_unschedulable(key, now_ms, incoming::POD_UPDATE);
                }
            }
            Some(Location::InFlight) | None => {}
        }
    }

    /// Holds an unschedulable pod back from events and flushes until
    /// `release` (a preemptor while its victims' evictions are on their way,
    /// as upstream's DefaultPreemption PreEnqueue does).
    pub fn hold(&mut self, key: &str) {
        if let Some(q) = self.unschedulable.get_mut(key) {
            q.gated = true;
            self.held.insert(key.to_string());
        }
    }

    /// Ends `hold`: the pod is retried (after its backoff).
    pub fn release(&mut self, key: &str, now_ms: i64) {
        if let Some(q) = self.unschedulable.get_mut(key).filter(|q| q.gated) {
            q.gated = false;
            self.held.remove(key);
            self.requeue_unschedulable(key, now_ms, incoming::FORCE_ACTIVATE);
        }
    }

    /// Keys of pods still waiting as unschedulable (or gated).
    pub fn unschedulable_keys(&self) -> BTreeSet<String> {
        self.unschedulable.keys().cloned().collect()
    }

    pub fn unschedulable_pod(&self, key: &str) -> Option<&QueuedPodInfo> {
        self.unschedulable.get(key)
    }
}

#[cfg(test)]
mod tests;
