//! What a plugin gets from Berth besides the pod in front of it: upstream's
//! `framework.Handle`.
//!
//! A factory receives a [`Handle`] and keeps what it needs from it:
//!
//! - **Objects of any kind** (custom resources included): declare the kind
//!   with [`Handle::objects`] and read the [`Store`] it returns. `berth run`
//!   watches every declared kind; `berth simulate` fills the stores from the
//!   manifests it reads; a change to such an object is a cluster event
//!   ([`EventResource::Object`](super::EventResource::Object)) that plugins
//!   can register for.
//! - **Events** about pods or other objects: [`Handle::record_event`]. Live,
//!   they become `events.k8s.io/v1` Events (`kubectl describe` shows them);
//!   the simulator lists them with its results.
//! - **Writes** to objects (JSON merge patches): [`Handle::writer`].
//!   `berth run` sends them to the API server; `berth simulate` applies
//!   them to its in-memory objects (feeding the stores and the queue, as a
//!   watch would) and plays the PersistentVolume controller's part.
//! - **The cluster snapshot** of the latest scheduling cycle:
//!   [`Handle::snapshot`], for extension points that are not handed one.
//! - **Services of the runtime**, by type: [`Handle::get`]. `berth run`
//!   provides a `kube::Client` (for plugins that write, e.g. in PreBind) and
//!   a `tokio::runtime::Handle` to run its futures on; the simulator and the
//!   benchmarks provide neither, so a plugin must work without them (or
//!   refuse to start).
//!
//! The same handle API serves `berth run`, `berth simulate` and `berth
//! bench`, so a plugin behaves the same in all three. The runtime side of it
//! is [`PluginHost`].

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::plugin::ExtensionPoint;
use super::status::Code;
use crate::cache::Snapshot;
use crate::model::Pod;

/// A Kubernetes object kind a plugin reads, with what it takes to watch it.
///
/// ```
/// # use berth_core as berth;
/// use berth::framework::ObjectKind;
/// const POD_GROUP: ObjectKind = ObjectKind::namespaced("scheduling.x-k8s.io", "v1alpha1", "PodGroup", "podgroups");
/// assert_eq!(POD_GROUP.api_version(), "scheduling.x-k8s.io/v1alpha1");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKind {
    /// API group; empty for the core group (`v1`).
    pub group: &'static str,
    /// API version within the group, e.g. `v1alpha1`.
    pub version: &'static str,
    /// Kind, e.g. `PodGroup`.
    pub kind: &'static str,
    /// Resource name in URLs, e.g. `podgroups`.
    pub plural: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

impl ObjectKind {
    /// A namespaced kind.
    pub const fn namespaced(group: &'static str, version: &'static str, kind: &'static str, plural: &'static str) -> ObjectKind {
        ObjectKind { group, version, kind, plural, namespaced: true }
    }

    /// A cluster-scoped kind.
    pub const fn cluster(group: &'static str, version: &'static str, kind: &'static str, plural: &'static str) -> ObjectKind {
        ObjectKind { group, version, kind, plural, namespaced: false }
    }

    /// `group/version`, or `version` for the core group: the `apiVersion` field.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.api_version(), self.kind)
    }
}

/// Objects of one kind, kept current by the runtime; cheap to clone and
/// safe to read from any thread.
///
/// Each object is decoded once, when it arrives, into `T` (any
/// `serde::Deserialize` type: your own struct with the fields you read,
/// a `kube::CustomResource` type, or `serde_json::Value`).
pub struct Store<T> {
    kind: ObjectKind,
    objects: Arc<RwLock<BTreeMap<ObjectKey, Arc<T>>>>,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl<T> Clone for Store<T> {
    fn clone(&self) -> Self {
        Store { kind: self.kind, objects: self.objects.clone(), generation: self.generation.clone() }
    }
}

/// Called with every change to a store: the object's key, the object
/// before and after (`None`: absent). See [`Handle::objects_observed`].
pub type StoreObserver<T> = Box<dyn Fn(&ObjectKey, Option<&Arc<T>>, Option<&Arc<T>>) + Send + Sync>;

/// An object's namespace (empty for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `namespace/name` of `kind` (the namespace is dropped for
    /// cluster-scoped kinds).
    pub fn new(kind: &ObjectKind, namespace: &str, name: &str) -> ObjectKey {
        let ns = if kind.namespaced { namespace } else { "" };
        ObjectKey { namespace: ns.to_string(), name: name.to_string() }
    }

    /// The key of an object as the API server would store it: a namespaced
    /// object that names no namespace is in `default`.
    pub fn of(kind: &ObjectKind, object: &serde_json::Value) -> Result<ObjectKey, ObjectError> {
        let meta = object.get("metadata");
        let name = meta.and_then(|m| m.get("name")).and_then(|n| n.as_str()).unwrap_or("");
        if name.is_empty() {
            return Err(ObjectError::NoName { kind: kind.to_string() });
        }
        let namespace = meta.and_then(|m| m.get("namespace")).and_then(|n| n.as_str()).filter(|s| !s.is_empty()).unwrap_or("default");
        Ok(ObjectKey::new(kind, namespace, name))
    }
}

impl fmt::Display for ObjectKey {
    /// `namespace/name`, or `name` for cluster-scoped objects.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

impl<T> Store<T> {
    /// The kind this store holds.
    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// The object `namespace/name` (namespace ignored for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        self.read().get(&ObjectKey::new(&self.kind, namespace, name)).cloned()
    }

    /// Every object, ordered by namespace and name.
    pub fn list(&self) -> Vec<Arc<T>> {
        self.read().values().cloned().collect()
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// A number that changes whenever an object is added, changed or
    /// removed: what a plugin keys a cache of derived data by.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ObjectKey, Arc<T>>> {
        // A panic elsewhere while writing cannot leave a half-written map:
        // writes are single inserts and removes.
        self.objects.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ObjectKey, Arc<T>>> {
        self.objects.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What went wrong feeding an object to the stores.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The object has no `metadata.name`.
    #[error("{kind}: metadata.name is required")]
    NoName {
        /// The object's kind.
        kind: String,
    },
    /// The object does not decode into the type a plugin asked for.
    #[error("{kind} {key}: {message}")]
    Decode {
        /// The object's kind.
        kind: String,
        /// `namespace/name`.
        key: String,
        /// The decoder's message, with the field.
        message: String,
    },
}

/// Whether an event is informational or a warning (`type` of an Event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The API's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// `apiVersion`, e.g. `v1`.
    pub api_version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID, when known (empty otherwise).
    pub uid: String,
}

impl From<&Pod> for ObjectRef {
    fn from(p: &Pod) -> ObjectRef {
        ObjectRef { api_version: "v1".into(), kind: "Pod".into(), namespace: p.namespace.clone(), name: p.name.clone(), uid: p.uid.clone() }
    }
}

/// One event to write: what `kubectl describe` shows under Events.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventRecord {
    /// The object the event is about.
    pub regarding: ObjectRef,
    /// The profile (schedulerName) that reports it: `reportingController`.
    pub reporting_controller: String,
    /// Normal or Warning.
    pub event_type: EventType,
    /// A short CamelCase reason, e.g. `FailedScheduling`.
    pub reason: String,
    /// What was being done, e.g. `Scheduling`, `Binding`.
    pub action: String,
    /// The human-readable message (at most 1 kB is kept).
    pub note: String,
}

/// Where events go: the runtime's side of [`Handle::record_event`].
pub trait EventSink: Send + Sync {
    /// Takes one event. Must not block: live, events are written
    /// asynchronously and dropped (with a warning) when too many wait.
    fn record(&self, event: EventRecord);
}

/// An event sink that drops everything (benchmarks, tests).
pub struct NoEvents;

impl EventSink for NoEvents {
    fn record(&self, _event: EventRecord) {}
}

/// An event sink that keeps everything in memory (the simulator, tests).
#[derive(Default)]
pub struct CollectEvents(Mutex<Vec<EventRecord>>);

impl CollectEvents {
    /// The events recorded so far, oldest first; the sink is emptied.
    pub fn take(&self) -> Vec<EventRecord> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl EventSink for CollectEvents {
    fn record(&self, event: EventRecord) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    }
}

/// Measurements the framework reports while it runs plugins. The live
/// scheduler exports them as kube-scheduler's metrics; elsewhere they are
/// dropped. Every method has a default that ignores the value.
#[allow(unused_variables)]
pub trait Observer: Send + Sync {
    /// One plugin call at one extension point took `seconds` and returned
    /// `code` (`scheduler_plugin_execution_duration_seconds`). Reported for
    /// one scheduling attempt in ten, as upstream samples it.
    fn plugin_duration(&self, plugin: &'static str, point: ExtensionPoint, code: Code, seconds: f64) {}

    /// A plugin panicked; the pod's attempt failed with `message`.
    fn plugin_panicked(&self, plugin: &'static str, point: ExtensionPoint, message: &str) {}

    /// An extender's `call` (`filter`, `prioritize`, `bind`, `preempt`)
    /// failed and scheduling went on without it: it is ignorable, or (for
    /// prioritize) its scores are simply left out, as upstream does.
    fn extender_skipped(&self, extender: &str, call: &'static str, error: &super::ExtenderError) {}

    /// Whether plugin calls should be timed at all. Timing every plugin
    /// call on every node of a sampled attempt costs about a tenth of a
    /// cycle; an observer that drops durations says no.
    fn times_plugins(&self) -> bool {
        true
    }
}

/// An observer that ignores everything (and so has nothing timed).
pub struct NoObserver;

impl Observer for NoObserver {
    fn times_plugins(&self) -> bool {
        false
    }
}

/// Runs work off the scheduling thread: see [`Handle::in_background`].
/// A runtime offers it with `PluginHost::with_service(Background(...))`.
#[derive(Clone)]
pub struct Background(pub Arc<dyn Fn(Work) + Send + Sync>);

/// A piece of work for [`Background`].
pub type Work = Box<dyn FnOnce() + Send>;

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The object changed since the `metadata.resourceVersion` the patch
    /// named (HTTP 409): re-read and decide again.
    #[error("{kind} {key}: the object has been modified: {message}")]
    Conflict {
        /// The object's kind.
        kind: String,
        /// `namespace/name`, or `name` for cluster-scoped objects.
        key: String,
        /// What the runtime said.
        message: String,
    },
    /// There is no such object.
    #[error("{kind} {key} not found")]
    NotFound {
        /// The object's kind.
        kind: String,
        /// `namespace/name`, or `name`.
        key: String,
    },
    /// Anything else: refused, invalid, API server unreachable.
    #[error("{kind} {key}: {message}")]
    Failed {
        /// The object's kind.
        kind: String,
        /// `namespace/name`, or `name`.
        key: String,
        /// What the runtime said.
        message: String,
    },
}

impl WriteError {
    /// `namespace/name` (or `name`) as the variants spell it.
    pub fn key(kind: &ObjectKind, namespace: &str, name: &str) -> String {
        ObjectKey::new(kind, namespace, name).to_string()
    }
}

/// Writes objects on a plugin's behalf: the runtime's side of
/// [`Handle::writer`]. Calls may block (live, on the network): make them
/// in PreBind, Bind or PostBind, never in Filter or Score.
pub trait ObjectWriter: Send + Sync {
    /// Applies `patch`, a JSON merge patch (RFC 7386), to the object
    /// `namespace/name` of `kind` and returns the object as written (with
    /// its new `metadata.resourceVersion`). A `metadata.resourceVersion` in
    /// the patch is a precondition: if the object has changed since, the
    /// write fails with [`WriteError::Conflict`] and changes nothing.
    fn merge_patch(
        &self,
        kind: &ObjectKind,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<serde_json::Value, WriteError>;

    /// Reads the object `namespace/name` of `kind` as the API server has it
    /// now: what a plugin re-reads after a [`WriteError::Conflict`]. The
    /// default says the runtime cannot read; plugins then fall back on
    /// their stores.
    fn get(&self, kind: &ObjectKind, namespace: &str, name: &str) -> Result<serde_json::Value, WriteError> {
        Err(WriteError::Failed {
            kind: kind.to_string(),
            key: WriteError::key(kind, namespace, name),
            message: "this runtime cannot read objects".into(),
        })
    }

    /// Creates `object` (the whole object; a `metadata.generateName` is
    /// honoured as the API server honours it) in `namespace` and returns it
    /// as written, with its name, UID and resource version. The default says
    /// the runtime cannot create objects.
    fn create(&self, kind: &ObjectKind, namespace: &str, object: &serde_json::Value) -> Result<serde_json::Value, WriteError> {
        let name = object.pointer("/metadata/name").or(object.pointer("/metadata/generateName")).and_then(|n| n.as_str()).unwrap_or("");
        Err(WriteError::Failed {
            kind: kind.to_string(),
            key: WriteError::key(kind, namespace, name),
            message: "this runtime cannot create objects".into(),
        })
    }

    /// Deletes the object `namespace/name` of `kind`;
    /// [`WriteError::NotFound`] when it is gone already. The default says the
    /// runtime cannot delete objects.
    fn delete(&self, kind: &ObjectKind, namespace: &str, name: &str) -> Result<(), WriteError> {
        Err(WriteError::Failed {
            kind: kind.to_string(),
            key: WriteError::key(kind, namespace, name),
            message: "this runtime cannot delete objects".into(),
        })
    }

    /// Whether the cluster's controllers have answered each write by the
    /// time it returns, with nothing else changing the objects meanwhile
    /// (the simulator): then what a plugin sees after its writes is all it
    /// will ever see, and a wait for a controller's answer
    /// ([`Handle::wait_until`]) ends at its first look. The default (a real
    /// cluster) says no.
    fn answers_at_once(&self) -> bool {
        false
    }

    /// As [`merge_patch`](ObjectWriter::merge_patch), through the object's
    /// `status` subresource (kinds that have one ignore status changes made
    /// any other way). The default patches the object itself, which is
    /// right for runtimes without subresources (the simulator).
    fn merge_patch_status(
        &self,
        kind: &ObjectKind,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<serde_json::Value, WriteError> {
        self.merge_patch(kind, namespace, name, patch)
    }
}

type Applier = Box<dyn Fn(&ObjectKey, Option<&serde_json::Value>) -> Result<(), ObjectError> + Send + Sync>;

/// A kind some plugin declared, with one applier per store of it.
struct Declared {
    kind: ObjectKind,
    stores: Vec<Applier>,
}

struct Shared {
    declared: Mutex<Vec<Declared>>,
    events: Arc<dyn EventSink>,
    observer: Arc<dyn Observer>,
    services: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    writer: Option<Arc<dyn ObjectWriter>>,
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    groups: Arc<super::group::PodGroups>,
}

/// The runtime's side of the handles: `berth run`, `berth simulate` and
/// `berth bench` each build one, give it their event sink and services,
/// hand [`PluginHost::handle`]s to the plugin factories, then feed it the
/// objects plugins declared.
#[derive(Clone)]
pub struct PluginHost {
    shared: Arc<Shared>,
}

impl Default for PluginHost {
    fn default() -> Self {
        PluginHost::new(Arc::new(NoEvents))
    }
}

impl PluginHost {
    /// A host whose events go to `events`.
    pub fn new(events: Arc<dyn EventSink>) -> PluginHost {
        PluginHost::build(events, Arc::new(NoObserver), HashMap::new(), None)
    }

    fn build(
        events: Arc<dyn EventSink>,
        observer: Arc<dyn Observer>,
        services: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
        writer: Option<Arc<dyn ObjectWriter>>,
    ) -> PluginHost {
        let shared = Shared {
            declared: Mutex::new(Vec::new()),
            events,
            observer,
            services,
            writer,
            snapshot: Mutex::new(None),
            groups: Arc::default(),
        };
        PluginHost { shared: Arc::new(shared) }
    }

    /// The same host with `service` available through [`Handle::get`].
    /// Call before handing out handles.
    pub fn with_service<T: Any + Send + Sync>(self, service: T) -> PluginHost {
        self.rebuild(|services, _, _| {
            services.insert(TypeId::of::<T>(), Box::new(service));
        })
    }

    /// The same host writing objects through `writer` ([`Handle::writer`]).
    /// Call before handing out handles.
    pub fn with_writer(self, writer: Arc<dyn ObjectWriter>) -> PluginHost {
        self.rebuild(|_, _, w| *w = Some(writer))
    }

    /// The same host reporting measurements to `observer`. Call before
    /// handing out handles.
    pub fn with_observer(self, observer: Arc<dyn Observer>) -> PluginHost {
        self.rebuild(|_, o, _| *o = observer)
    }

    fn rebuild(
        self,
        f: impl FnOnce(&mut HashMap<TypeId, Box<dyn Any + Send + Sync>>, &mut Arc<dyn Observer>, &mut Option<Arc<dyn ObjectWriter>>),
    ) -> PluginHost {
        let shared = match Arc::try_unwrap(self.shared) {
            Ok(s) => s,
            Err(_) => panic!("PluginHost::with_*: called after handles were handed out"),
        };
        let (mut services, mut observer, mut writer) = (shared.services, shared.observer, shared.writer);
        f(&mut services, &mut observer, &mut writer);
        PluginHost::build(shared.events, observer, services, writer)
    }

    /// The handle for the profile `profile` (its schedulerName).
    pub fn handle(&self, profile: &str) -> Handle {
        Handle { shared: self.shared.clone(), profile: Arc::from(profile) }
    }

    /// The kinds plugins declared, each once.
    pub fn object_kinds(&self) -> Vec<ObjectKind> {
        self.declared().iter().map(|d| d.kind).collect()
    }

    /// Whether some plugin declared `kind`.
    pub fn declares(&self, kind: &ObjectKind) -> bool {
        self.declared().iter().any(|d| d.kind == *kind)
    }

    /// The declared kind matching an object's `apiVersion` and `kind`.
    pub fn kind_of(&self, api_version: &str, kind: &str) -> Option<ObjectKind> {
        self.declared().iter().map(|d| d.kind).find(|k| k.kind == kind && k.api_version() == api_version)
    }

    /// An object of a declared kind was added or changed: decodes it into
    /// every store of its kind. Objects of kinds nobody declared are ignored.
    pub fn apply_object(&self, kind: &ObjectKind, object: &serde_json::Value) -> Result<(), ObjectError> {
        let key = ObjectKey::of(kind, object)?;
        self.each_store(kind, |apply| apply(&key, Some(object)))
    }

    /// An object of a declared kind was deleted.
    pub fn delete_object(&self, kind: &ObjectKind, namespace: &str, name: &str) {
        let key = ObjectKey::new(kind, namespace, name);
        let _ = self.each_store(kind, |apply| apply(&key, None));
    }

    fn each_store(&self, kind: &ObjectKind, f: impl Fn(&Applier) -> Result<(), ObjectError>) -> Result<(), ObjectError> {
        let declared = self.declared();
        let mut first_err = None;
        for d in declared.iter().filter(|d| d.kind == *kind) {
            for apply in &d.stores {
                if let Err(e) = f(apply) {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn declared(&self) -> std::sync::MutexGuard<'_, Vec<Declared>> {
        self.shared.declared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where measurements go.
    pub fn observer(&self) -> &Arc<dyn Observer> {
        &self.shared.observer
    }

    /// The members of every pod group, which the engine keeps.
    pub(crate) fn pod_groups(&self) -> &Arc<super::group::PodGroups> {
        &self.shared.groups
    }

    /// Makes `snapshot` the one [`Handle::snapshot`] returns.
    pub(crate) fn publish_snapshot(&self, snapshot: Option<Arc<Snapshot>>) {
        *self.shared.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }
}

/// A plugin's access to Berth: see the [module documentation](self).
/// Cheap to clone; keep one in your plugin if you need it after start-up.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
    profile: Arc<str>,
}

impl Default for Handle {
    /// A handle with no objects, no services, and events dropped (tests).
    fn default() -> Self {
        PluginHost::default().handle(crate::config::DEFAULT_SCHEDULER_NAME)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("profile", &self.profile).finish_non_exhaustive()
    }
}

impl Handle {
    /// The profile this handle belongs to (its schedulerName).
    pub fn profile_name(&self) -> &str {
        &self.profile
    }

    /// Declares that this plugin reads objects of `kind` and returns their
    /// store. Call it in the factory: the runtime watches (or loads) the
    /// kinds declared while profiles are built. Objects that do not decode
    /// into `T` are left out of the store, with a warning naming the field.
    pub fn objects<T: DeserializeOwned + Send + Sync + 'static>(&self, kind: ObjectKind) -> Store<T> {
        self.declare(kind, None)
    }

    /// As [`objects`](Handle::objects), and `observer` is called with
    /// every change, after the store has it and before the change's
    /// cluster event reaches the queue: for plugins that keep an index of
    /// their own up to date (DynamicResources counts allocated devices
    /// this way). Keep it cheap; it runs on the thread that feeds the stores.
    pub fn objects_observed<T: DeserializeOwned + Send + Sync + 'static>(&self, kind: ObjectKind, observer: StoreObserver<T>) -> Store<T> {
        self.declare(kind, Some(observer))
    }

    fn declare<T: DeserializeOwned + Send + Sync + 'static>(&self, kind: ObjectKind, observer: Option<StoreObserver<T>>) -> Store<T> {
        let store: Store<T> = Store { kind, objects: Arc::new(RwLock::new(BTreeMap::new())), generation: Arc::default() };
        let target = store.clone();
        let applier: Applier = Box::new(move |key, object| {
            let (old, new, result) = match object {
                None => (target.write().remove(key), None, Ok(())),
                Some(v) => match T::deserialize(v) {
                    Ok(t) => {
                        let t = Arc::new(t);
                        (target.write().insert(key.clone(), t.clone()), Some(t), Ok(()))
                    }
                    Err(e) => {
                        // A bad object must not linger in its old form.
                        let old = target.write().remove(key);
                        (old, None, Err(ObjectError::Decode { kind: kind.to_string(), key: key.to_string(), message: e.to_string() }))
                    }
                },
            };
            target.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            if let Some(f) = &observer {
                if old.is_some() || new.is_some() {
                    f(key, old.as_ref(), new.as_ref());
                }
            }
            result
        });
        let mut declared = self.shared.declared.lock().unwrap_or_else(|e| e.into_inner());
        match declared.iter_mut().find(|d| d.kind == kind) {
            Some(d) => d.stores.push(applier),
            None => declared.push(Declared { kind, stores: vec![applier] }),
        }
        store
    }

    /// Records an event about `regarding` (a `&Pod`, or any [`ObjectRef`]),
    /// reported by this handle's profile. Live, repeats of the same event
    /// become one Event with a count, as client-go does.
    pub fn record_event(
        &self,
        regarding: impl Into<ObjectRef>,
        event_type: EventType,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        self.shared.events.record(EventRecord {
            regarding: regarding.into(),
            reporting_controller: self.profile.to_string(),
            event_type,
            reason: reason.to_string(),
            action: action.to_string(),
            note: note.into(),
        });
    }

    /// The cluster snapshot of the latest scheduling cycle: nodes with the
    /// pods on them (assumed ones included). `None` before the first cycle.
    /// Extension points that receive a snapshot should use theirs; this is
    /// for the others (Reserve, Permit, the binding cycle).
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.shared.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many members of the pod group `key` (a
    /// [`GroupMembership::key`](super::GroupMembership::key)) Berth knows,
    /// and how many of them are on nodes. See [`group`](super::group).
    pub fn pod_group_counts(&self, key: &str) -> super::GroupCounts {
        self.shared.groups.counts(key)
    }

    /// The key of the pod group the pod `namespace/name` is a member of, if
    /// some plugin of its profile groups it (see [`group`](super::group)).
    pub fn pod_group_of(&self, pod_key: &str) -> Option<String> {
        self.shared.groups.group_of(pod_key)
    }

    /// Runs `work` off the scheduling thread when the runtime provides a
    /// [`Background`] service (`berth run` does: its blocking pool), and
    /// right here otherwise (the simulator, whose writes are in memory and
    /// must happen in order). For writes a plugin makes outside the binding
    /// cycle, e.g. a group's status after its cycle.
    pub fn in_background(&self, work: impl FnOnce() + Send + 'static) {
        match self.get::<Background>() {
            Some(b) => (b.0)(Box::new(work)),
            None => work(),
        }
    }

    /// A service of the runtime by type, e.g. `kube::Client` in `berth run`.
    /// `None` where the runtime has none (the simulator has no client).
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.shared.services.get(&TypeId::of::<T>()).and_then(|s| s.downcast_ref::<T>())
    }

    /// Where measurements go (the runtime's observer).
    pub fn observer(&self) -> &Arc<dyn Observer> {
        &self.shared.observer
    }

    /// Waits, blocking (for a binding cycle's PreBind), until `ready` says
    /// yes (`Ok(true)`), says why not to wait any longer (`Err`), or
    /// `timeout` has passed (`Ok(false)`), looking every `every`. Where the
    /// runtime's controllers answer every write at once
    /// ([`ObjectWriter::answers_at_once`]: the simulator), nothing would
    /// change while waiting, so the first look decides. A timeout too long
    /// for the clock waits without end.
    pub fn wait_until<E>(&self, timeout: Duration, every: Duration, mut ready: impl FnMut() -> Result<bool, E>) -> Result<bool, E> {
        let deadline = Instant::now().checked_add(timeout);
        let once = self.writer().is_some_and(|w| w.answers_at_once());
        loop {
            if ready()? {
                return Ok(true);
            }
            let left = deadline.map_or(every, |d| d.saturating_duration_since(Instant::now()));
            if once || left.is_zero() {
                return Ok(false);
            }
            std::thread::sleep(every.min(left));
        }
    }

    /// Writes to objects: the API server in `berth run`, the in-memory
    /// cluster in `berth simulate`. `None` where nothing can be written
    /// (`berth bench`, and handles built for tests).
    pub fn writer(&self) -> Option<&Arc<dyn ObjectWriter>> {
        self.shared.writer.as_ref()
    }

    /// The host this handle belongs to.
    pub(crate) fn host(&self) -> PluginHost {
        PluginHost { shared: self.shared.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    const TEAM: ObjectKind = ObjectKind::cluster("example.berth.dev", "v1", "Team", "teams");
    const GROUP: ObjectKind = ObjectKind::namespaced("scheduling.x-k8s.io", "v1alpha1", "PodGroup", "podgroups");

    #[derive(Deserialize, Debug, PartialEq)]
    struct Team {
        spec: TeamSpec,
    }
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct TeamSpec {
        max_pods: u32,
    }

    #[test]
    fn declared_kinds_are_fed_decoded_and_deleted() {
        let host = PluginHost::default();
        let h = host.handle("p");
        let teams: Store<Team> = h.objects(TEAM);
        let raw: Store<serde_json::Value> = h.objects(TEAM);
        assert_eq!(host.object_kinds(), vec![TEAM]);
        assert_eq!(host.kind_of("example.berth.dev/v1", "Team"), Some(TEAM));
        assert_eq!(host.kind_of("v1", "Team"), None);
        host.apply_object(&TEAM, &json!({"metadata": {"name": "a"}, "spec": {"maxPods": 2}})).unwrap();
        assert_eq!(teams.get("ignored-namespace", "a").unwrap().spec.max_pods, 2);
        assert_eq!(raw.len(), 1);
        // A bad object names the field and leaves the typed store without it.
        let err = host.apply_object(&TEAM, &json!({"metadata": {"name": "a"}, "spec": {"maxPods": "two"}})).unwrap_err();
        assert!(matches!(&err, ObjectError::Decode { key, message, .. } if key == "a" && message.contains("invalid type")), "{err}");
        assert!(teams.get("", "a").is_none());
        assert_eq!(raw.len(), 1, "the untyped store still takes it");
        host.delete_object(&TEAM, "", "a");
        assert!(raw.is_empty());
    }

    #[test]
    fn namespaced_objects_default_to_the_default_namespace() {
        let host = PluginHost::default();
        let groups: Store<serde_json::Value> = host.handle("p").objects(GROUP);
        host.apply_object(&GROUP, &json!({"metadata": {"name": "g"}})).unwrap();
        host.apply_object(&GROUP, &json!({"metadata": {"name": "g", "namespace": "ml"}})).unwrap();
        assert!(groups.get("default", "g").is_some() && groups.get("ml", "g").is_some());
        assert_eq!(host.apply_object(&GROUP, &json!({"metadata": {}})), Err(ObjectError::NoName { kind: GROUP.to_string() }));
    }

    #[test]
    fn events_carry_the_profile_and_services_are_typed() {
        let sink = Arc::new(CollectEvents::default());
        struct Token(&'static str);
        let host = PluginHost::new(sink.clone()).with_service(Token("secret"));
        let h = host.handle("berth");
        let pod = crate::testing::make_pod("p").obj();
        h.record_event(&pod, EventType::Warning, "Rejected", "Scheduling", "no");
        let got = sink.take();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].reporting_controller.as_str(), got[0].regarding.name.as_str()), ("berth", "p"));
        assert_eq!(h.get::<Token>().map(|t| t.0), Some("secret"));
        assert!(h.get::<String>().is_none());
    }

    /// A writer that writes nothing, answering at once or not.
    struct Idle(bool);
    impl ObjectWriter for Idle {
        fn merge_patch(
            &self,
            kind: &ObjectKind,
            namespace: &str,
            name: &str,
            _: &serde_json::Value,
        ) -> Result<serde_json::Value, WriteError> {
            Err(WriteError::NotFound { kind: kind.to_string(), key: WriteError::key(kind, namespace, name) })
        }
        fn answers_at_once(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn a_wait_ends_at_the_first_look_where_controllers_answer_at_once() {
        let h = PluginHost::default().with_writer(Arc::new(Idle(true))).handle("p");
        let mut looks = 0;
        // Were it to wait, a timeout this long (beyond what the clock can
        // add) would never end: the test would hang, not fail.
        let got: Result<bool, ()> = h.wait_until(Duration::MAX, Duration::from_secs(3600), || {
            looks += 1;
            Ok(false)
        });
        assert_eq!((got, looks), (Ok(false), 1));
        assert_eq!(h.wait_until(Duration::MAX, Duration::from_secs(3600), || Err::<bool, _>("gone")), Err("gone"));
    }

    #[test]
    fn a_wait_looks_again_until_ready_or_timed_out() {
        let h = PluginHost::default().with_writer(Arc::new(Idle(false))).handle("p");
        let mut looks = 0;
        let got: Result<bool, ()> = h.wait_until(Duration::from_secs(3600), Duration::from_millis(1), || {
            looks += 1;
            Ok(looks == 3)
        });
        assert_eq!((got, looks), (Ok(true), 3));
        let got: Result<bool, ()> = h.wait_until(Duration::ZERO, Duration::from_millis(1), || Ok(false));
        assert_eq!(got, Ok(false), "a zero timeout looks once");
    }
}
