//! `berth run`: the live scheduler. Watchers feed cluster changes to one
//! scheduling thread that owns the engine (through `Controller`); its API
//! actions go to async tasks (events, status patches, evictions), and each
//! pod's binding cycle (PreBind, Bind, PostBind) runs on a worker thread of
//! its own, off the scheduling path; results come back to the thread.
//! Leader election gates scheduling.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use berth_convert::PriorityClasses;
use berth_core::config::{parse_duration, KubeSchedulerConfiguration};
use berth_core::driver::{Answered, Binding};
use berth_core::engine::{Engine, EngineConfig};
use berth_core::framework::{action, EventRecord, EventSink, Framework, ObjectKey, ObjectKind, PluginHost, Registry, Status};
use berth_core::queue::QueueConfig;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::DynamicObject;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, error, info, warn};

use crate::api::{execute, ApiBinder, Reporter, Reread};
use crate::calls::{PendingCalls, MAX_QUEUED_EVENTS};
use crate::client::ApiClient;
use crate::controller::{ApiAction, Controller, UnreadablePod, Work};
use crate::http::{self, Health};
use crate::leader::LeaderElector;
use crate::metrics::{DropLabel, Metrics, ResourceLabel};

pub struct RunOptions {
    pub config: KubeSchedulerConfiguration,
    /// `--kubeconfig`; otherwise clientConnection.kubeconfig, then inference.
    pub kubeconfig: Option<PathBuf>,
    /// Plain HTTP, unauthenticated (for tests): off unless given.
    pub http_address: Option<SocketAddr>,
    /// HTTPS with delegated authentication and authorization: off when `None`.
    pub secure: Option<SecureServing>,
    /// The plugins the configuration may name.
    pub registry: Registry,
    /// How to load WebAssembly plugins; `None`: a configuration naming one is refused.
    pub wasm: Option<berth_core::config::WasmLoader>,
}

/// Where and how the endpoints are served over HTTPS.
pub struct SecureServing {
    pub address: SocketAddr,
    pub cert: crate::secure::ServingCert,
    /// Paths served without authorization (`/x/*`: everything under `/x/`).
    pub always_allowed: String,
}

/// What the scheduling thread is told.
enum Input {
    Node(Box<Event<Node>>),
    Pod(Box<Event<Pod>>),
    PriorityClass(Event<PriorityClass>),
    Pdb(Event<PodDisruptionBudget>),
    Namespace(Event<Namespace>),
    /// An object of the `index`-th kind plugins declared.
    Object(usize, Box<Event<DynamicObject>>),
    /// The API server does not serve the `index`-th declared kind (yet).
    ObjectAbsent(usize),
    /// The watch of kind `index` (`NODE`, ..., `OBJECTS + i`) failed; it is retrying.
    WatchFailed(usize),
    /// A pod as read after a binding of it was refused (not a watch event).
    PodRead(Box<Change<Pod>>),
    /// A binding cycle ended.
    BindingDone(Box<Binding>, Status),
    /// A plugin recorded an event.
    PluginEvent(Box<EventRecord>),
    /// An eviction is under way (`ok`), or the API server refused it and the victim stays.
    Evicted {
        key: String,
        ok: bool,
    },
    Leading,
    Stop,
}

/// Built-in kinds watched, by index; declared kinds follow (`OBJECTS + i`).
const NODE: usize = 0;
const POD: usize = 1;
const CLASS: usize = 2;
const PDB: usize = 3;
const NAMESPACE: usize = 4;
const OBJECTS: usize = 5;

/// How long scheduling waits, at most, for a failing nodes or pods watch
/// after the other one re-listed.
const RELIST_HOLD_MS: i64 = 10_000;

/// What goes from the scheduling thread to the async side (calls are the
/// common case: boxing them would cost an allocation each).
#[allow(clippy::large_enum_variant)]
enum Outgoing {
    Call(ApiAction),
    Bind(Box<Binding>),
}

/// Plugins' events go to the scheduling thread, which writes them as it
/// writes its own (one series cache, one rate limit).
struct ChannelEvents(Sender<Input>);

impl EventSink for ChannelEvents {
    fn record(&self, event: EventRecord) {
        let _ = self.0.send(Input::PluginEvent(Box::new(event)));
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The key of a declared kind's object from its `namespace/name` (or `name`).
fn declared_key(kind: &ObjectKind, key: &str) -> ObjectKey {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    ObjectKey::new(kind, ns, name)
}

fn object_key<K: Resource>(o: &K) -> String {
    match o.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", o.meta().name.as_deref().unwrap_or("")),
        None => o.meta().name.clone().unwrap_or_default(),
    }
}

/// The scheduling thread's state: the controller plus the last-seen objects
/// the engine needs to turn watch events into add/update/delete calls.
struct Scheduling {
    ctl: Controller,
    classes: PriorityClasses,
    pods: HashMap<String, Arc<berth_core::model::Pod>>,
    nodes: HashSet<String>,
    pdbs: BTreeMap<String, berth_core::model::PodDisruptionBudget>,
    namespaces: HashSet<String>,
    /// Declared kinds (by index) and the keys of their objects.
    object_kinds: Vec<ObjectKind>,
    objects: Vec<HashSet<String>>,
    host: PluginHost,
    /// Keys seen during a (re)list in progress, per kind.
    relist: Vec<Option<HashSet<String>>>,
    /// Kinds whose watch failed and has delivered nothing since.
    failing: Vec<bool>,
    /// Until when scheduling waits for a failing nodes or pods watch to
    /// deliver, after the other one re-listed (ms).
    hold_until_ms: i64,
    synced: Vec<bool>,
    leading: bool,
    /// Pending pods of ours that could not be read, to report once leading.
    unreadable: BTreeMap<String, UnreadablePod>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    out: tokio::sync::mpsc::UnboundedSender<Outgoing>,
}

/// Where a pod Berth could not read is.
enum Unreadable {
    /// Not on a node yet.
    Pending,
    /// On a node, and not even its requests could be read.
    Bound,
}

/// A watch event in the three shapes the thread handles.
enum Change<K> {
    Apply(K),
    Delete(K),
}

impl Scheduling {
    fn all_synced(&self) -> bool {
        self.synced.iter().all(|s| *s)
    }

    /// Whether the cache is fit to schedule on. Not during a re-list of
    /// nodes or pods (what it has not listed yet still counts), nor for a
    /// while after one of the two re-listed when the other's watch is
    /// failing: after an outage long enough that a watch expired (410) the
    /// other one will most likely re-list too, and until it has, a node
    /// fresh from its list could look empty of pods it already holds (or
    /// pods could go to a node that is gone). The wait is bounded: a watch
    /// that resumed without a re-list may stay silent.
    fn cache_fit(&self, now_ms: i64) -> bool {
        if self.relist[NODE].is_some() || self.relist[POD].is_some() {
            return false;
        }
        now_ms >= self.hold_until_ms || !(self.failing[NODE] || self.failing[POD])
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Node(e) => self.watched(NODE, *e, Self::node),
            Input::Pod(e) => self.watched(POD, *e, Self::pod),
            Input::PriorityClass(e) => self.watched(CLASS, e, Self::class),
            Input::Pdb(e) => self.watched(PDB, e, Self::pdb),
            Input::Namespace(e) => self.watched(NAMESPACE, e, Self::namespace),
            Input::Object(i, e) => self.watched(OBJECTS + i, *e, Self::object),
            Input::WatchFailed(kind) => self.failing[kind] = true,
            Input::PodRead(c) => {
                let c = *c;
                let key = match &c {
                    Change::Apply(p) | Change::Delete(p) => object_key(p),
                };
                self.pod(c, &key, POD)
            }
            Input::ObjectAbsent(i) => {
                // Nothing to wait for: no such object exists. Pods that need
                // one stay pending, saying so; the watch keeps trying, and
                // objects are taken in if the kind is installed later.
                if !self.synced[OBJECTS + i] {
                    warn!(kind = %self.object_kinds[i], "the API server does not serve this kind; pods that need it stay pending");
                    self.synced[OBJECTS + i] = true;
                    self.health.set_ready(self.all_synced());
                }
            }
            Input::BindingDone(b, status) => {
                if !status.is_success() {
                    warn!(pod = %b.pod().key(), node = b.node(), error = %status.message(), "binding cycle failed");
                }
                let work = self.ctl.binding_finished(*b, status, now_ms());
                self.send(work);
            }
            Input::PluginEvent(e) => {
                let actions = self.ctl.plugin_event(*e, now_ms());
                self.send(Work { actions, bindings: Vec::new() });
            }
            Input::Evicted { key, ok: true } => self.ctl.engine_mut().eviction_done(&key, now_ms()),
            Input::Evicted { key, ok: false } => self.ctl.engine_mut().eviction_failed(&key, now_ms()),
            Input::Leading => {
                self.leading = true;
                self.health.set_leading(true);
                let now = now_ms();
                let actions = self.unreadable.values().flat_map(|p| self.ctl.unreadable_pod(p, now)).collect();
                self.send(Work { actions, bindings: Vec::new() });
            }
            Input::Stop => {}
        }
    }

    /// Applies a watch event; a re-list's end deletes what it did not list.
    fn watched<K: Resource + Clone>(&mut self, kind: usize, e: Event<K>, apply: fn(&mut Self, Change<K>, &str, usize)) {
        self.failing[kind] = false;
        match e {
            Event::Init => self.relist[kind] = Some(HashSet::new()),
            Event::InitApply(o) => {
                let key = object_key(&o);
                apply(self, Change::Apply(o), &key, kind);
                if let Some(seen) = &mut self.relist[kind] {
                    seen.insert(key);
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relist[kind].take() {
                    self.forget_unlisted(kind, &seen);
                }
                if self.synced[kind] && (kind == NODE || kind == POD) {
                    self.hold_until_ms = now_ms() + RELIST_HOLD_MS;
                    if self.failing[NODE] || self.failing[POD] {
                        info!(relisted = %self.resource_name(kind), "waiting for the other watch of nodes and pods before scheduling again");
                    }
                }
                self.metrics.watch_lists.get_or_create(&ResourceLabel { resource: self.resource_name(kind) }).inc();
                if !self.synced[kind] {
                    self.synced[kind] = true;
                    self.health.set_ready(self.all_synced());
                    if self.all_synced() {
                        info!(nodes = self.nodes.len(), pods = self.pods.len(), "caches synced");
                    }
                }
            }
            Event::Apply(o) => {
                let key = object_key(&o);
                apply(self, Change::Apply(o), &key, kind)
            }
            Event::Delete(o) => {
                let key = object_key(&o);
                apply(self, Change::Delete(o), &key, kind)
            }
        }
    }

    /// The resource watched under `kind`, as the metrics name it.
    fn resource_name(&self, kind: usize) -> String {
        match kind {
            NODE => "nodes".into(),
            POD => "pods".into(),
            CLASS => "priorityclasses".into(),
            PDB => "poddisruptionbudgets".into(),
            NAMESPACE => "namespaces".into(),
            i => self.object_kinds[i - OBJECTS].to_string(),
        }
    }

    fn forget_unlisted(&mut self, kind: usize, seen: &HashSet<String>) {
        let now = now_ms();
        match kind {
            NODE => {
                let gone: Vec<String> = self.nodes.iter().filter(|k| !seen.contains(*k)).cloned().collect();
                for n in gone {
                    self.nodes.remove(&n);
                    self.ctl.engine_mut().remove_node(&n, now);
                }
            }
            POD => {
                let gone: Vec<String> = self.pods.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                for k in gone {
                    if let Some(p) = self.pods.remove(&k) {
                        self.ctl.delete_pod(&p, now);
                    }
                }
            }
            PDB => {
                self.pdbs.retain(|k, _| seen.contains(k));
                self.ctl.engine_mut().set_pdbs(self.pdbs.values().cloned().collect());
            }
            k if k >= OBJECTS => {
                let i = k - OBJECTS;
                let gone: Vec<String> = self.objects[i].iter().filter(|key| !seen.contains(*key)).cloned().collect();
                for key in gone {
                    self.forget_object(i, &key, now);
                }
            }
            _ => {}
        }
    }

    fn node(&mut self, c: Change<Node>, key: &str, _kind: usize) {
        let now = now_ms();
        match c {
            Change::Apply(n) => match berth_convert::node(&n) {
                Ok(node) => {
                    if self.nodes.insert(key.to_string()) {
                        self.ctl.engine_mut().add_node(node, now);
                    } else {
                        self.ctl.engine_mut().update_node(node, now);
                    }
                }
                Err(e) => warn!(error = %e, "ignoring node"),
            },
            Change::Delete(_) => {
                if self.nodes.remove(key) {
                    self.ctl.engine_mut().remove_node(key, now);
                }
            }
        }
    }

    fn pod(&mut self, c: Change<Pod>, key: &str, _kind: usize) {
        let now = now_ms();
        match c {
            Change::Apply(p) if !berth_convert::pod_is_terminal(&p) => {
                let converted = berth_convert::pod(&p, &self.classes).or_else(|e| self.unreadable_pod(&p, key, e, now));
                if converted.is_ok() {
                    self.unreadable.remove(key);
                }
                match converted {
                    Ok(pod) => {
                        // One copy, shared by this map and the engine.
                        let pod = Arc::new(pod);
                        match self.pods.insert(key.to_string(), pod.clone()) {
                            Some(old) => self.ctl.engine_mut().update_pod(Some(&old), pod, now),
                            None => self.ctl.engine_mut().add_pod(pod, now),
                        }
                    }
                    // Pending: not placed, and not left in the queue as last read.
                    Err(Unreadable::Pending) => {
                        if let Some(old) = self.pods.remove(key) {
                            self.ctl.delete_pod(&old, now);
                        }
                    }
                    // On a node: as last read, if ever, is the best count there is.
                    Err(Unreadable::Bound) => {}
                }
            }
            Change::Apply(_) | Change::Delete(_) => {
                self.unreadable.remove(key);
                if let Some(old) = self.pods.remove(key) {
                    self.ctl.delete_pod(&old, now);
                }
            }
        }
    }

    /// A pod `berth_convert::pod` refused with `e`. On a node, it still
    /// takes room there: it is read without what only mattered for placing
    /// it. Pending and ours, it stays pending and says why. Another
    /// scheduler's pending pod is none of ours.
    fn unreadable_pod(
        &mut self,
        p: &Pod,
        key: &str,
        e: berth_convert::ConvertError,
        now: i64,
    ) -> Result<berth_core::model::Pod, Unreadable> {
        let spec = p.spec.as_ref();
        if spec.and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty()) {
            return match berth_convert::bound_pod_leniently(p, &self.classes) {
                Ok(pod) => {
                    warn!(pod = key, error = %e, "counting the pod on its node without the constraints Berth cannot read");
                    Ok(pod)
                }
                Err(e) => {
                    error!(pod = key, error = %e, "cannot read a pod on a node: its requests are not counted there");
                    Err(Unreadable::Bound)
                }
            };
        }
        let scheduler_name = spec.map(berth_convert::scheduler_name).unwrap_or_else(|| berth_core::config::DEFAULT_SCHEDULER_NAME.into());
        if !self.ctl.engine().owns(&scheduler_name) {
            return Err(Unreadable::Pending);
        }
        warn!(pod = key, error = %e, "leaving a pod Berth cannot read pending");
        let pod = UnreadablePod {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            scheduler_name,
            error: e,
            condition: berth_convert::unschedulable_condition(p),
        };
        if self.leading {
            let actions = self.ctl.unreadable_pod(&pod, now);
            self.send(Work { actions, bindings: Vec::new() });
        }
        self.unreadable.insert(key.to_string(), pod);
        Err(Unreadable::Pending)
    }

    fn class(&mut self, c: Change<PriorityClass>, key: &str, _kind: usize) {
        match c {
            Change::Apply(pc) => self.classes.add(&pc),
            Change::Delete(_) => self.classes.remove(key),
        }
    }

    fn pdb(&mut self, c: Change<PodDisruptionBudget>, key: &str, _kind: usize) {
        match c {
            Change::Apply(p) => match berth_convert::pdb(&p) {
                Ok(pdb) => {
                    self.pdbs.insert(key.to_string(), pdb);
                }
                Err(e) => warn!(error = %e, "ignoring PodDisruptionBudget"),
            },
            Change::Delete(_) => {
                self.pdbs.remove(key);
            }
        }
        self.ctl.engine_mut().set_pdbs(self.pdbs.values().cloned().collect());
    }

    fn namespace(&mut self, c: Change<Namespace>, key: &str, _kind: usize) {
        match c {
            Change::Apply(n) => {
                let ns = berth_convert::namespace(&n);
                self.namespaces.insert(key.to_string());
                self.ctl.engine_mut().set_namespace(&ns.name, ns.labels, now_ms());
            }
            Change::Delete(_) => {
                self.namespaces.remove(key);
            }
        }
    }

    /// An object of a declared kind: into the plugins' stores, then a
    /// cluster event for the pods waiting on it.
    fn object(&mut self, c: Change<DynamicObject>, key: &str, kind: usize) {
        let i = kind - OBJECTS;
        let k = self.object_kinds[i];
        let now = now_ms();
        match c {
            Change::Apply(o) => {
                let value = match serde_json::to_value(&o) {
                    Ok(v) => v,
                    Err(e) => return warn!(kind = %k, object = key, error = %e, "ignoring object"),
                };
                if let Err(e) = self.host.apply_object(&k, &value) {
                    warn!(error = %e, "ignoring object: it does not decode as the plugins expect");
                }
                let act = if self.objects[i].insert(key.to_string()) { action::ADD } else { action::UPDATE };
                self.ctl.engine_mut().object_changed(k, Some(declared_key(&k, key)), act, now);
            }
            Change::Delete(_) => self.forget_object(i, key, now),
        }
    }

    fn forget_object(&mut self, i: usize, key: &str, now: i64) {
        let k = self.object_kinds[i];
        if self.objects[i].remove(key) {
            let object = declared_key(&k, key);
            self.host.delete_object(&k, &object.namespace, &object.name);
            self.ctl.engine_mut().object_changed(k, Some(object), action::DELETE, now);
        }
    }

    fn send(&self, work: Work) {
        for a in work.actions {
            let _ = self.out.send(Outgoing::Call(a));
        }
        for b in work.bindings {
            let _ = self.out.send(Outgoing::Bind(Box::new(b)));
        }
    }

    /// The thread's loop: apply what arrived, schedule while there is work.
    fn run(mut self, rx: Receiver<Input>) {
        loop {
            loop {
                match rx.try_recv() {
                    Ok(Input::Stop) | Err(TryRecvError::Disconnected) => return,
                    Ok(i) => self.handle(i),
                    Err(TryRecvError::Empty) => break,
                }
            }
            if self.leading && self.all_synced() && self.cache_fit(now_ms()) {
                if let Some(work) = self.ctl.step(now_ms()) {
                    self.send(work);
                    continue;
                }
            }
            // Idle: wait for a change, or for backoff to release a pod.
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(i) => self.handle(i),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

fn watch<K, F>(index: usize, api: Api<K>, cfg: watcher::Config, tx: Sender<Input>, wrap: F) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
    F: Fn(Event<K>) -> Input + Send + 'static,
{
    follow(K::kind(&Default::default()).to_string(), index, watcher(api, cfg), tx, wrap, None)
}

/// Watches a kind a plugin declared, as untyped objects.
fn watch_dynamic(client: kube::Client, kind: ObjectKind, index: usize, tx: Sender<Input>) -> tokio::task::JoinHandle<()> {
    let api: Api<DynamicObject> = Api::all_with(client, &crate::api::api_resource(&kind));
    let stream = watcher::watcher(api, watcher::Config::default().any_semantic());
    follow(kind.to_string(), OBJECTS + index, stream, tx, move |e| Input::Object(index, Box::new(e)), Some(Input::ObjectAbsent(index)))
}

/// Follows one watch: its events go to the scheduling thread through
/// `wrap`; a failure is reported (`WatchFailed(index)`) and retried after
/// [`Backoff`]. `absent` is said once if the API server does not serve the
/// kind (404 on its list), which is then looked for again every 30 s;
/// `None` for kinds every API server serves.
fn follow<K, S, F>(
    kind: String,
    index: usize,
    stream: S,
    tx: Sender<Input>,
    wrap: F,
    mut absent: Option<Input>,
) -> tokio::task::JoinHandle<()>
where
    K: Send + 'static,
    S: Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
    F: Fn(Event<K>) -> Input + Send + 'static,
{
    let may_be_absent = absent.is_some();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut backoff = Backoff::default();
        while let Some(item) = next(&mut stream).await {
            match item {
                Ok(e) => {
                    backoff.reset();
                    if tx.send(wrap(e)).is_err() {
                        return;
                    }
                }
                Err(watcher::Error::InitialListFailed(kube::Error::Api(e))) if e.code == 404 && may_be_absent => {
                    if let Some(said) = absent.take() {
                        if tx.send(said).is_err() {
                            return;
                        }
                    }
                    // Looked for again now and then: the kind may be installed later.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Err(e) => {
                    warn!(kind = %kind, error = %e, "watch failed; retrying");
                    if tx.send(Input::WatchFailed(index)).is_err() {
                        return;
                    }
                    backoff.wait(&e).await;
                }
            }
        }
    })
}

/// The pause between a watch's failures and its next try: 500 ms, doubling
/// up to 8 s, back to 500 ms on any event, so a watch resumes within a few
/// seconds of the API server's return however long it was away. A 410 Gone
/// (the watch's resource version was compacted) is not the server failing:
/// the watcher lists again at once.
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: Backoff::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MOST: Duration = Duration::from_secs(8);

    fn reset(&mut self) {
        self.next = Backoff::FIRST;
    }

    async fn wait(&mut self, e: &watcher::Error) {
        if matches!(e, watcher::Error::WatchError(s) if s.code == 410) {
            return;
        }
        self.pause().await;
    }

    /// Sleeps the pause, and doubles the next one.
    async fn pause(&mut self) {
        // Up to a quarter more, so that many watchers do not retry in step.
        let jitter =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()) as u64 % (self.next.as_millis() as u64 / 4 + 1);
        tokio::time::sleep(self.next + Duration::from_millis(jitter)).await;
        self.next = (self.next * 2).min(Backoff::MOST);
    }
}

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    s.next().await
}

fn watcher<K>(api: Api<K>, cfg: watcher::Config) -> impl Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, cfg)
}

/// The API calls on their way: queued under the rate limits, or running.
#[derive(Default)]
struct Dispatch {
    pending: std::sync::Mutex<PendingCalls>,
    running_calls: AtomicUsize,
    running_events: AtomicUsize,
    calls_ready: tokio::sync::Notify,
    events_ready: tokio::sync::Notify,
    /// A call or an event finished.
    finished: tokio::sync::Notify,
}

impl Dispatch {
    fn busy(&self) -> bool {
        let p = self.pending.lock().unwrap();
        p.calls() + p.events() + self.running_calls.load(Ordering::SeqCst) + self.running_events.load(Ordering::SeqCst) > 0
    }

    fn calls_busy(&self) -> bool {
        self.pending.lock().unwrap().calls() + self.running_calls.load(Ordering::SeqCst) > 0
    }
}

/// Binding cycles under way at once, at most (upstream runs one goroutine
/// per pod; here each is a worker thread, so they are bounded).
const MAX_BINDINGS: usize = 256;

/// Carries out API actions: they queue (merging superseded writes, see
/// `PendingCalls`) until their rate limiter gives a token, then run, at most
/// `MAX_IN_FLIGHT` at a time. Binding cycles start at once on a worker
/// thread each (DefaultBinder's call waits for its token there).
async fn dispatch(
    mut rx: UnboundedReceiver<Outgoing>,
    client: ApiClient,
    reporter: Reporter,
    tx: Sender<Input>,
    d: Arc<Dispatch>,
    metrics: Arc<Metrics>,
) {
    for events in [false, true] {
        tokio::spawn(send_loop(events, client.clone(), reporter.clone(), tx.clone(), d.clone(), metrics.clone()));
    }
    let mut dropped_before = 0;
    let bindings = Arc::new(tokio::sync::Semaphore::new(MAX_BINDINGS));
    let told = tx.clone();
    let reread = move |r: Reread| {
        let change = match r {
            Reread::Pod(p) => Change::Apply(*p),
            Reread::Gone { namespace, name } => {
                let meta = kube::api::ObjectMeta { namespace: Some(namespace), name: Some(name), ..Default::default() };
                Change::Delete(Pod { metadata: meta, ..Default::default() })
            }
        };
        let _ = told.send(Input::PodRead(Box::new(change)));
    };
    let binder = Arc::new(ApiBinder { client: client.clone(), runtime: tokio::runtime::Handle::current(), reread: Some(Box::new(reread)) });
    while let Some(out) = rx.recv().await {
        let action = match out {
            Outgoing::Call(a) => a,
            Outgoing::Bind(b) => {
                d.pending.lock().unwrap().binding_started(&b.pod().pod.namespace, &b.pod().pod.name);
                d.running_calls.fetch_add(1, Ordering::SeqCst);
                let (binder, tx, d, bindings) = (binder.clone(), tx.clone(), d.clone(), bindings.clone());
                tokio::spawn(async move {
                    let permit = bindings.acquire_owned().await;
                    let mut b = b;
                    let done = if b.only_default_binder() {
                        // The common cycle: DefaultBinder's call made here, on
                        // the async runtime, and the cycle run with its answer.
                        let answer = binder.call(&b.pod().pod, b.node()).await;
                        let status = b.run(&Answered(answer));
                        Ok((b, status))
                    } else {
                        tokio::task::spawn_blocking(move || {
                            let status = b.run(&*binder);
                            (b, status)
                        })
                        .await
                    };
                    drop(permit);
                    match done {
                        Ok((b, status)) => {
                            let _ = tx.send(Input::BindingDone(b, status));
                        }
                        // The cycle itself catches plugin panics; this is the runtime shutting down.
                        Err(e) => warn!(error = %e, "binding worker stopped"),
                    }
                    d.running_calls.fetch_sub(1, Ordering::SeqCst);
                    d.finished.notify_one();
                });
                continue;
            }
        };
        let event = matches!(action, ApiAction::Event { .. } | ApiAction::EventSeries { .. });
        let dropped = {
            let mut p = d.pending.lock().unwrap();
            p.push(action);
            p.dropped_events
        };
        if dropped > dropped_before {
            metrics.events_dropped.get_or_create(&DropLabel { reason: "queue_full" }).inc_by(dropped - dropped_before);
            dropped_before = dropped;
            if dropped.is_power_of_two() {
                warn!(dropped, "event queue full ({MAX_QUEUED_EVENTS}): events dropped, as client-go's broadcaster drops them");
            }
        }
        if event {
            d.events_ready.notify_one();
        } else {
            d.calls_ready.notify_one();
        }
    }
}

/// How often an event write is tried when the API server does not answer
/// (or answers 429/5xx), with a doubling pause from `EVENT_RETRY_PAUSE`.
const EVENT_TRIES: u32 = 4;
const EVENT_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Whether a failed write may succeed if tried again: the API server was
/// unreachable, overloaded or failing, rather than refusing the write.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        _ => true,
    }
}

async fn send_loop(events: bool, client: ApiClient, reporter: Reporter, tx: Sender<Input>, d: Arc<Dispatch>, metrics: Arc<Metrics>) {
    const MAX_IN_FLIGHT: usize = 256;
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let ready = if events { &d.events_ready } else { &d.calls_ready };
    let waiting = |p: &PendingCalls| if events { p.events() } else { p.calls() };
    loop {
        while waiting(&d.pending.lock().unwrap()) == 0 {
            ready.notified().await;
        }
        // Take the token first and the call after: while we wait, newer
        // writes can still replace the ones in line.
        if events {
            client.throttle_events().await;
        } else {
            client.throttle().await;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        // Bindings first: while calls are under way, events go one at a
        // time, so the API server spends its time on what pods wait for.
        while events && d.running_events.load(Ordering::SeqCst) > 0 && d.calls_busy() {
            d.finished.notified().await;
        }
        let action = {
            let mut p = d.pending.lock().unwrap();
            if events {
                p.pop_event()
            } else {
                p.pop_call()
            }
        };
        let Some(action) = action else { continue };
        let running = if events { &d.running_events } else { &d.running_calls };
        running.fetch_add(1, Ordering::SeqCst);
        let (client, reporter, tx, d, metrics) = (client.clone(), reporter.clone(), tx.clone(), d.clone(), metrics.clone());
        tokio::spawn(async move {
            let mut result = execute(&client, &reporter, &action).await;
            // Events are tried again through a short outage (client-go's
            // broadcaster retries too), then counted as dropped.
            let mut pause = EVENT_RETRY_PAUSE;
            for _ in 1..if events { EVENT_TRIES } else { 1 } {
                match &result {
                    Err(e) if transient(e) => {
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                        result = execute(&client, &reporter, &action).await;
                    }
                    _ => break,
                }
            }
            if events {
                if let Err(e) = &result {
                    let reason = if transient(e) { "unavailable" } else { "rejected" };
                    metrics.events_dropped.get_or_create(&DropLabel { reason }).inc();
                }
            }
            match (&action, result) {
                (ApiAction::Evict { namespace, name, .. }, r) => {
                    if let Err(e) = &r {
                        warn!(action = ?action, error = %e, "eviction failed");
                    }
                    let _ = tx.send(Input::Evicted { key: format!("{namespace}/{name}"), ok: r.is_ok() });
                }
                (_, Err(e)) => warn!(action = ?action, error = %e, "API call failed"),
                (_, Ok(())) => debug!(action = ?action, "done"),
            }
            let running = if events { &d.running_events } else { &d.running_calls };
            running.fetch_sub(1, Ordering::SeqCst);
            d.finished.notify_one();
            drop(permit);
        });
    }
}

fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "berth".into());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{host}_{:08x}{:04x}", nanos, std::process::id() & 0xffff)
}

/// A scheduler ready to start: client, plugins and profiles built. Any
/// configuration error has been reported by then (`prepare`).
pub struct Prepared {
    cfg: KubeSchedulerConfiguration,
    client: ApiClient,
    host: PluginHost,
    frameworks: Vec<Framework>,
    metrics: Arc<Metrics>,
    http_address: Option<SocketAddr>,
    secure: Option<SecureServing>,
    tx: Sender<Input>,
    rx: Receiver<Input>,
}

/// Builds the client and the profiles: every plugin's factory runs here,
/// once, with a handle that offers the `kube::Client` and the async
/// runtime's handle. Does not contact the API server yet. Must run inside
/// the async runtime.
pub async fn prepare(opts: RunOptions) -> Result<Prepared> {
    let cfg = opts.config;
    let kubeconfig =
        opts.kubeconfig.or_else(|| Some(PathBuf::from(&cfg.client_connection.kubeconfig)).filter(|p| !p.as_os_str().is_empty()));
    let metrics = Arc::new(Metrics::new());
    let client = ApiClient::connect(
        kubeconfig.as_deref(),
        cfg.client_connection.qps,
        cfg.client_connection.burst,
        metrics.rest_client_requests.clone(),
    )
    .await?;
    let (tx, rx) = mpsc::channel::<Input>();
    let mut host = PluginHost::new(Arc::new(ChannelEvents(tx.clone())))
        .with_service(client.plugin_client.clone())
        .with_service(tokio::runtime::Handle::current())
        .with_service({
            let rt = tokio::runtime::Handle::current();
            berth_core::framework::Background(Arc::new(move |work| {
                rt.spawn_blocking(work);
            }))
        })
        .with_service(crate::extender::HttpExtender::connector())
        .with_writer(Arc::new(crate::api::ApiWriter { client: client.clone(), runtime: tokio::runtime::Handle::current() }))
        .with_observer(metrics.clone());
    if let Some(w) = opts.wasm {
        host = host.with_service(w);
    }
    let frameworks = cfg.build_frameworks_with(&opts.registry, &host).context("configuration")?;
    Ok(Prepared { cfg, client, host, frameworks, metrics, http_address: opts.http_address, secure: opts.secure, tx, rx })
}

/// Runs the live scheduler until SIGTERM/SIGINT (Ok) or until leadership is
/// lost (Err: the process should exit non-zero, as kube-scheduler does).
pub async fn run(opts: RunOptions) -> Result<()> {
    prepare(opts).await?.run().await
}

impl Prepared {
    /// Runs the scheduler: see [`run`].
    pub async fn run(self) -> Result<()> {
        let Prepared { cfg, client, host, frameworks, metrics, http_address, secure, tx, rx } = self;
        let le = cfg.leader_election.clone();
        let durations = if le.leader_elect {
            let d = |name: &str, v: &str| parse_duration(v).map_err(|e| anyhow::anyhow!("leaderElection.{name}: {e}"));
            Some((d("leaseDuration", &le.lease_duration)?, d("renewDeadline", &le.renew_deadline)?, d("retryPeriod", &le.retry_period)?))
        } else {
            None
        };
        let health = Arc::new(Health::default());
        let why: Arc<std::sync::Mutex<berth_core::why::WhyStore>> = Arc::default();
        let router = http::router(health.clone(), metrics.clone(), why.clone());
        if let Some(s) = secure {
            let tls = s.cert.server_config().context("secure serving")?;
            let listener = tokio::net::TcpListener::bind(s.address).await.with_context(|| format!("listening on {}", s.address))?;
            info!(
                address = %listener.local_addr()?,
                always_allowed = %s.always_allowed,
                "serving HTTPS: /healthz, /readyz, /metrics and /debug/berth/why, callers authenticated and authorized by the API server"
            );
            let guard = Arc::new(crate::secure::Delegated::new(client.client.clone(), &s.always_allowed));
            let guarded = router.clone().layer(axum::middleware::from_fn_with_state(guard, crate::secure::guard));
            tokio::spawn(crate::secure::serve(listener, tls, guarded));
        }
        if let Some(address) = http_address {
            let listener = tokio::net::TcpListener::bind(address).await.with_context(|| format!("listening on {address}"))?;
            warn!(address = %listener.local_addr()?, "serving plain HTTP, without authentication: for tests");
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    error!(error = %e, "HTTP server stopped");
                }
            });
        }

        // Wait for the API server, as kube-scheduler does: an outage at
        // start-up (or its authorization not loaded yet) must not turn into a
        // crash loop, whose restarts a kubelet spaces out for minutes. The
        // health endpoints answer meanwhile.
        let mut backoff = Backoff::default();
        while let Err(e) = client.client.apiserver_version().await {
            warn!(error = %e, retry_in = ?backoff.next, "the API server does not answer yet; retrying");
            backoff.pause().await;
        }

        let (initial, max) = cfg.backoff_ms();
        let engine = Engine::new(
            frameworks,
            EngineConfig {
                queue: QueueConfig { pod_initial_backoff_ms: initial, pod_max_backoff_ms: max, ..Default::default() },
                percentage_of_nodes_to_score: cfg.percentage_of_nodes_to_score.unwrap_or(0),
                seed: now_ms() as u64,
                adopt_all_pods: false,
            },
        );
        let profiles: Vec<String> = engine.profiles().iter().map(|p| p.profile_name.clone()).collect();
        let object_kinds = host.object_kinds();
        info!(profiles = ?profiles, objects = ?object_kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>(), "starting");
        let identity = identity();
        let reporter = Reporter { instance: identity.clone() };

        let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
        let kinds = OBJECTS + object_kinds.len();
        let state = Scheduling {
            ctl: Controller::with_why(engine, metrics.clone(), why),
            classes: PriorityClasses::new(),
            pods: HashMap::new(),
            nodes: HashSet::new(),
            pdbs: BTreeMap::new(),
            namespaces: HashSet::new(),
            objects: vec![HashSet::new(); object_kinds.len()],
            object_kinds: object_kinds.clone(),
            host,
            relist: vec![None; kinds],
            failing: vec![false; kinds],
            hold_until_ms: 0,
            synced: vec![false; kinds],
            leading: false,
            unreadable: BTreeMap::new(),
            health: health.clone(),
            metrics: metrics.clone(),
            out: out_tx,
        };
        let thread = std::thread::Builder::new().name("berth-scheduling".into()).spawn(move || state.run(rx))?;

        let c = &client.client;
        let pods_cfg = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed").any_semantic();
        let all = || watcher::Config::default().any_semantic();
        let mut watchers = vec![
            watch(NODE, Api::<Node>::all(c.clone()), all(), tx.clone(), |e| Input::Node(Box::new(e))),
            watch(POD, Api::<Pod>::all(c.clone()), pods_cfg, tx.clone(), |e| Input::Pod(Box::new(e))),
            watch(CLASS, Api::<PriorityClass>::all(c.clone()), all(), tx.clone(), Input::PriorityClass),
            watch(PDB, Api::<PodDisruptionBudget>::all(c.clone()), all(), tx.clone(), Input::Pdb),
            watch(NAMESPACE, Api::<Namespace>::all(c.clone()), all(), tx.clone(), Input::Namespace),
        ];
        for (i, k) in object_kinds.iter().enumerate() {
            watchers.push(watch_dynamic(c.clone(), *k, i, tx.clone()));
        }
        let calls = Arc::new(Dispatch::default());
        tokio::spawn(dispatch(out_rx, client.clone(), reporter, tx.clone(), calls.clone(), metrics.clone()));

        let mut elector = durations.map(|(lease, renew, retry)| {
            LeaderElector::new(c.clone(), &le.resource_namespace, &le.resource_name, identity.clone(), lease, renew, retry)
        });
        metrics.set_leading(&le.resource_name, false);
        let lost = async {
            match elector.as_mut() {
                Some(e) => {
                    e.acquire().await;
                    metrics.set_leading(&le.resource_name, true);
                    let _ = tx.send(Input::Leading);
                    e.keep().await;
                }
                None => {
                    metrics.set_leading(&le.resource_name, true);
                    let _ = tx.send(Input::Leading);
                    std::future::pending::<()>().await;
                }
            }
        };
        let outcome = tokio::select! {
            _ = lost => Err(anyhow::anyhow!("leader election lost")),
            s = shutdown_signal() => { info!(signal = s, "shutting down"); Ok(()) }
        };
        let _ = tx.send(Input::Stop);
        for w in watchers {
            w.abort();
        }
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        // A lost lease: stop at once, as upstream; another instance owns the work now.
        outcome.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        // Let the bindings already sent finish, then hand the lease over.
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls.busy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(e) = elector.as_mut() {
            e.release().await;
        }
        metrics.set_leading(&le.resource_name, false);
        outcome
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// The configuration `berth run` uses without `--config`: one profile named `berth`.
pub fn default_config() -> KubeSchedulerConfiguration {
    let mut cfg = KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({"profiles": [{"schedulerName": "berth"}]}))
        .expect("the built-in configuration is valid");
    cfg.apply_defaults();
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events are retried when the API server is away or overloaded, and
    /// dropped (counted) at once when it refuses them.
    #[test]
    fn only_outages_are_worth_retrying() {
        let api = |code: u16| kube::Error::Api(kube::core::Status::failure("x", "y").with_code(code).boxed());
        assert!(transient(&api(503)) && transient(&api(500)) && transient(&api(429)));
        assert!(!transient(&api(404)) && !transient(&api(403)) && !transient(&api(422)));
        assert!(transient(&kube::Error::LinesCodecMaxLineLengthExceeded));
    }
}
