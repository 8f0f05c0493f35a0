//! A guest as a [`Plugin`]: the framework's calls turned into ABI calls,
//! nodes kept resident in the guest, Filter asked once per chunk of nodes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use berth_core::cache::{NodeInfo, Snapshot};
use berth_core::framework::{
    ClusterEvent, ClusterEventWithHint, Code, CycleState, EventResource, ExtensionPoint, ExtensionPoints, NodeScore, Plugin,
    PreFilterResult, Reason, Status,
};
use berth_core::model::Node;
use rustc_hash::FxHashMap;

use crate::guest::{call_live, CallError, Guest, Live};
use crate::wire::{self, op};

/// The nodes a guest holds: slot by node object (pointer) and by name.
#[derive(Default)]
pub struct Slots {
    by_ptr: FxHashMap<usize, u32>,
    by_name: FxHashMap<String, (u32, Arc<Node>)>,
    free: Vec<u32>,
    next: u32,
    removed: Vec<u32>,
}

impl Slots {
    /// The slot of `node`; a node the guest does not hold (or holds in an
    /// older version) is added to `upserts`.
    fn slot(&mut self, node: &Arc<Node>, upserts: &mut Vec<(u32, Arc<Node>)>) -> u32 {
        let ptr = Arc::as_ptr(node) as usize;
        if let Some(s) = self.by_ptr.get(&ptr) {
            return *s;
        }
        let slot = match self.by_name.get_mut(&node.name) {
            Some((slot, held)) => {
                self.by_ptr.remove(&(Arc::as_ptr(held) as usize));
                *held = node.clone();
                *slot
            }
            None => {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.next += 1;
                    self.next - 1
                });
                self.by_name.insert(node.name.clone(), (slot, node.clone()));
                slot
            }
        };
        self.by_ptr.insert(ptr, slot);
        upserts.push((slot, node.clone()));
        slot
    }

    /// Forgets the nodes the snapshot no longer has, once the guest holds
    /// noticeably more than the snapshot.
    fn sweep(&mut self, snapshot: &Snapshot) {
        if self.by_name.len() <= snapshot.nodes().len() + 64 {
            return;
        }
        let gone: Vec<String> = self.by_name.keys().filter(|n| snapshot.get(n).is_none()).cloned().collect();
        for name in gone {
            if let Some((slot, node)) = self.by_name.remove(&name) {
                self.by_ptr.remove(&(Arc::as_ptr(&node) as usize));
                self.free.push(slot);
                self.removed.push(slot);
            }
        }
    }
}

/// Slots for `nodes`, sending the guest the ones it lacks first.
fn sync(live: &mut Live, limits: &crate::guest::Limits, nodes: &mut dyn Iterator<Item = &Arc<Node>>) -> Result<Vec<u32>, CallError> {
    let mut upserts = Vec::new();
    let slots: Vec<u32> = nodes.map(|n| live.slots.slot(n, &mut upserts)).collect();
    let mut removed = std::mem::take(&mut live.slots.removed);
    // In batches: decoding a whole large cluster in one call could take a
    // Go guest longer than one call's deadline.
    for batch in upserts.chunks(SYNC_BATCH) {
        let upsert: Vec<serde_json::Value> =
            batch.iter().map(|(slot, node)| serde_json::json!({"slot": slot, "node": wire::node_json(node)})).collect();
        let input =
            serde_json::to_vec(&serde_json::json!({"upsert": upsert, "remove": std::mem::take(&mut removed)})).expect("JSON of nodes");
        sync_call(live, limits, &input)?;
    }
    if !removed.is_empty() {
        sync_call(live, limits, &serde_json::to_vec(&serde_json::json!({"remove": removed})).expect("JSON of slots"))?;
    }
    Ok(slots)
}

/// Most nodes sent in one sync call.
const SYNC_BATCH: usize = 500;

fn sync_call(live: &mut Live, limits: &crate::guest::Limits, input: &[u8]) -> Result<(), CallError> {
    let out = call_live(live, limits, op::SYNC, input)?;
    let s = wire::status(&out).map_err(|e| CallError::Malformed(e.to_string()))?;
    if !s.is_success() {
        return Err(CallError::Malformed(format!("sync answered {s}")));
    }
    Ok(())
}

/// What the plugin keeps in the cycle state: the attempt's id, the
/// verdicts of prepared chunks, the final scores.
#[derive(Clone)]
struct WasmCycle {
    cycle: u64,
    verdicts: Arc<RwLock<FxHashMap<usize, Status>>>,
    scores: Vec<i64>,
}

/// What the guest said about itself at init.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    points: Vec<String>,
    #[serde(default)]
    events: Vec<WireEvent>,
    #[serde(default)]
    error: Option<String>,
    /// The SDK that built the guest, for logs.
    #[serde(default)]
    pub sdk: String,
}

#[derive(serde::Deserialize)]
struct WireEvent {
    resource: String,
    action: u32,
}

/// A WebAssembly guest, as a plugin of one profile.
pub struct WasmPlugin {
    name: &'static str,
    key: &'static str,
    points: ExtensionPoints,
    events: Vec<ClusterEventWithHint>,
    guest: Mutex<Guest>,
    cycles: AtomicU64,
    reasons: Mutex<FxHashMap<String, &'static str>>,
}

/// How many distinct messages one plugin interns (leaks) for the rest of the process.
const INTERNED: usize = 4096;

/// Leaks `s` once per process: names and state keys of plugins loaded at start-up.
pub fn leak_once(s: &str) -> &'static str {
    static SEEN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(x) = seen.iter().find(|x| **x == s) {
        return x;
    }
    let x: &'static str = Box::leak(s.to_string().into_boxed_str());
    seen.push(x);
    x
}

impl WasmPlugin {
    /// The plugin for `guest`, whose init answered `meta`.
    pub fn new(name: &'static str, guest: Guest, meta: Metadata) -> Result<WasmPlugin, String> {
        if let Some(e) = meta.error {
            return Err(e);
        }
        let mut points = Vec::new();
        let mut prepare = false;
        for p in &meta.points {
            match p.as_str() {
                "preFilter" => points.push(ExtensionPoint::PreFilter),
                "filter" => {
                    points.extend([ExtensionPoint::PreFilter, ExtensionPoint::Filter]);
                    prepare = true;
                }
                "score" => points.extend([ExtensionPoint::PreScore, ExtensionPoint::Score]),
                "reserve" => points.push(ExtensionPoint::Reserve),
                "permit" => points.push(ExtensionPoint::Permit),
                "preBind" => points.push(ExtensionPoint::PreBind),
                other => return Err(format!("it asks for the extension point {other:?}, which ABI version 1 does not have")),
            }
        }
        let mut set = ExtensionPoints::of(&points);
        if prepare {
            set = set.with_prepare_filter();
        }
        let mut events = Vec::new();
        for e in &meta.events {
            let resource = match e.resource.as_str() {
                "Pod" => EventResource::Pod,
                "AssignedPod" => EventResource::AssignedPod,
                "UnscheduledPod" => EventResource::UnscheduledPod,
                "Node" => EventResource::Node,
                "Namespace" => EventResource::Namespace,
                "*" => EventResource::WildCard,
                other => return Err(format!("it registers for events of {other:?}, which ABI version 1 does not have")),
            };
            events.push(ClusterEventWithHint::new(ClusterEvent::new(resource, e.action, leak_once(&format!("{name}/{}", e.resource)))));
        }
        Ok(WasmPlugin {
            name,
            key: leak_once(&format!("berth-wasm/{name}")),
            points: set,
            events,
            guest: Mutex::new(guest),
            cycles: AtomicU64::new(1),
            reasons: Mutex::new(FxHashMap::default()),
        })
    }

    /// One call, with the instance started if needed; the error is a
    /// status naming the plugin and the point.
    fn call(
        &self,
        point: ExtensionPoint,
        f: impl FnOnce(&mut Live, &crate::guest::Limits) -> Result<Vec<u8>, CallError>,
    ) -> Result<Vec<u8>, Status> {
        let mut g = self.guest.lock().unwrap_or_else(|e| e.into_inner());
        g.with(f).map_err(|e| self.failed(point, &e))
    }

    fn failed(&self, point: ExtensionPoint, e: &dyn std::fmt::Display) -> Status {
        let msg = format!("wasm plugin {:?} failed at {}: {e}", self.name, point.label());
        tracing::warn!(plugin = self.name, "{msg}");
        Status::error(msg).with_plugin(self.name)
    }

    fn intern(&self, m: &str) -> Reason {
        let mut r = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = r.get(m) {
            return Reason::Borrowed(s);
        }
        if r.len() >= INTERNED {
            return Reason::Owned(m.to_string());
        }
        let s: &'static str = Box::leak(m.to_string().into_boxed_str());
        r.insert(m.to_string(), s);
        Reason::Borrowed(s)
    }

    /// Filter verdicts of `nodes` for the attempt `cycle`.
    fn verdicts(&self, cycle: u64, nodes: &[&Arc<Node>]) -> Vec<Status> {
        let n = nodes.len();
        let out = self.call(ExtensionPoint::Filter, |live, limits| {
            let slots = sync(live, limits, &mut nodes.iter().copied())?;
            call_live(live, limits, op::FILTER, &wire::cycle_and_slots(cycle, &slots))
        });
        match out.map(|b| wire::verdicts(&b, n, &mut |m| self.intern(m))) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => vec![self.failed(ExtensionPoint::Filter, &CallError::Malformed(e.to_string())); n],
            Err(s) => vec![s; n],
        }
    }

    fn around_node(&self, point: ExtensionPoint, o: u32, pod: &berth_core::model::Pod, node: &str) -> Result<Vec<u8>, Status> {
        let input = wire::pod_on_node(pod, node);
        self.call(point, |live, limits| call_live(live, limits, o, &input))
    }

    fn status_of(&self, point: ExtensionPoint, out: Result<Vec<u8>, Status>) -> Status {
        match out.map(|b| wire::status(&b)) {
            Ok(Ok(s)) if s.is_success() => s,
            Ok(Ok(s)) => s.with_plugin(self.name),
            Ok(Err(e)) => self.failed(point, &CallError::Malformed(e.to_string())),
            Err(s) => s,
        }
    }
}

impl Plugin for WasmPlugin {
    fn name(&self) -> &'static str {
        self.name
    }

    fn __extension_points(&self) -> u32 {
        self.points.bits()
    }

    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        self.events.clone()
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &berth_core::framework::PodInfo,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let cycle = self.cycles.fetch_add(1, Ordering::Relaxed);
        state.write_scheduling_only(self.key, WasmCycle { cycle, verdicts: Arc::default(), scores: Vec::new() });
        let mut input = cycle.to_le_bytes().to_vec();
        wire::write_pod(&mut input, &pod.pod);
        let out = self.call(ExtensionPoint::PreFilter, |live, limits| {
            live.slots.sweep(snapshot);
            call_live(live, limits, op::PRE_FILTER, &input)
        });
        (None, self.status_of(ExtensionPoint::PreFilter, out))
    }

    fn prepare_filter(&self, state: &CycleState, _pod: &berth_core::framework::PodInfo, nodes: &[&Arc<NodeInfo>]) {
        let Some(c) = state.read::<WasmCycle>(self.key) else { return };
        let objects: Vec<&Arc<Node>> = nodes.iter().map(|ni| &ni.node).collect();
        let verdicts = self.verdicts(c.cycle, &objects);
        let mut map = c.verdicts.write().unwrap_or_else(|e| e.into_inner());
        for (ni, s) in nodes.iter().zip(verdicts) {
            map.insert(Arc::as_ptr(&ni.node) as usize, s);
        }
    }

    fn filter(&self, state: &CycleState, _pod: &berth_core::framework::PodInfo, node: &NodeInfo) -> Status {
        let Some(c) = state.read::<WasmCycle>(self.key) else {
            return self.failed(ExtensionPoint::Filter, &"Filter ran without its PreFilter");
        };
        if let Some(s) = c.verdicts.read().unwrap_or_else(|e| e.into_inner()).get(&(Arc::as_ptr(&node.node) as usize)) {
            return s.clone();
        }
        // A node no chunk prepared (a dry run, a copy with nominated pods): the verdict depends
        // only on the node object, which the copy shares.
        self.verdicts(c.cycle, &[&node.node]).pop().unwrap_or_default()
    }

    fn pre_score(&self, state: &mut CycleState, pod: &berth_core::framework::PodInfo, nodes: &[&NodeInfo], _snapshot: &Snapshot) -> Status {
        let cycle = match state.read::<WasmCycle>(self.key) {
            Some(c) => c.cycle,
            None => self.cycles.fetch_add(1, Ordering::Relaxed),
        };
        let out = self.call(ExtensionPoint::PreScore, |live, limits| {
            let slots = sync(live, limits, &mut nodes.iter().map(|ni| &ni.node))?;
            let mut input = wire::cycle_and_slots(cycle, &slots);
            wire::write_pod(&mut input, &pod.pod);
            call_live(live, limits, op::SCORE, &input)
        });
        let (status, scores) = match out.map(|b| wire::scores(&b, nodes.len())) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return self.failed(ExtensionPoint::Score, &CallError::Malformed(e.to_string())),
            Err(s) => return s,
        };
        if !status.is_success() {
            return status.with_plugin(self.name);
        }
        if let Some(bad) = scores.iter().find(|s| !(0..=100).contains(*s)) {
            return self.failed(ExtensionPoint::Score, &format!("it returned the score {bad}, outside 0-100"));
        }
        match state.read_mut::<WasmCycle>(self.key) {
            Some(c) => c.scores = scores,
            None => state.write_scheduling_only(self.key, WasmCycle { cycle, verdicts: Arc::default(), scores }),
        }
        Status::success()
    }

    fn score(&self, _state: &CycleState, _pod: &berth_core::framework::PodInfo, _node: &NodeInfo) -> (i64, Status) {
        // The guest scored every node at PreScore; normalize_score places the scores.
        (0, Status::success())
    }

    fn normalize_score(&self, state: &CycleState, _pod: &berth_core::framework::PodInfo, scores: &mut [NodeScore]) -> Status {
        let Some(c) = state.read::<WasmCycle>(self.key) else {
            return self.failed(ExtensionPoint::Score, &"Score ran without its PreScore");
        };
        for s in scores.iter_mut() {
            match c.scores.get(s.index) {
                Some(v) => s.score = *v,
                None => return self.failed(ExtensionPoint::Score, &format!("no score for node {}", s.index)),
            }
        }
        Status::success()
    }

    fn reserve(&self, _state: &mut CycleState, pod: &berth_core::framework::PodInfo, node: &str) -> Status {
        let out = self.around_node(ExtensionPoint::Reserve, op::RESERVE, &pod.pod, node);
        self.status_of(ExtensionPoint::Reserve, out)
    }

    fn unreserve(&self, _state: &mut CycleState, pod: &berth_core::framework::PodInfo, node: &str) {
        // Must not fail: a failure was logged by `call`.
        let _ = self.around_node(ExtensionPoint::Reserve, op::UNRESERVE, &pod.pod, node);
    }

    fn permit(
        &self,
        _state: &mut CycleState,
        pod: &berth_core::framework::PodInfo,
        node: &str,
        _waiting: &mut berth_core::framework::waiting::WaitingPods,
    ) -> (Status, Duration) {
        match self.around_node(ExtensionPoint::Permit, op::PERMIT, &pod.pod, node).map(|b| wire::permit(&b)) {
            Ok(Ok((s, d))) if s.code == Code::Success || s.code == Code::Wait => (s, d),
            Ok(Ok((s, d))) => (s.with_plugin(self.name), d),
            Ok(Err(e)) => (self.failed(ExtensionPoint::Permit, &CallError::Malformed(e.to_string())), Duration::ZERO),
            Err(s) => (s, Duration::ZERO),
        }
    }

    fn pre_bind(&self, _state: &mut CycleState, pod: &berth_core::framework::PodInfo, node: &str) -> Status {
        let out = self.around_node(ExtensionPoint::PreBind, op::PRE_BIND, &pod.pod, node);
        self.status_of(ExtensionPoint::PreBind, out)
    }
}
