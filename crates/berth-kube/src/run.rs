//! `berth run`: the live scheduler. Watchers feed cluster changes to one
//! scheduling thread that owns the engine (through `Controller`); its API
//! actions go to async tasks (binding, events, status patches, evictions),
//! whose results come back to the thread. Leader election gates scheduling.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use berth_convert::PriorityClasses;
use berth_core::config::{parse_duration, KubeSchedulerConfiguration};
use berth_core::engine::{Engine, EngineConfig};
use berth_core::queue::QueueConfig;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, error, info, warn};

use crate::api::{execute, Reporter};
use crate::calls::{PendingCalls, MAX_QUEUED_EVENTS};
use crate::client::ApiClient;
use crate::controller::{ApiAction, Controller};
use crate::http::{self, Health};
use crate::leader::LeaderElector;
use crate::metrics::Metrics;

pub struct RunOptions {
    pub config: KubeSchedulerConfiguration,
    /// `--kubeconfig`; otherwise clientConnection.kubeconfig, then inference.
    pub kubeconfig: Option<PathBuf>,
    pub http_address: SocketAddr,
}

/// What the scheduling thread is told.
enum Input {
    Node(Box<Event<Node>>),
    Pod(Box<Event<Pod>>),
    PriorityClass(Event<PriorityClass>),
    Pdb(Event<PodDisruptionBudget>),
    Namespace(Event<Namespace>),
    Bound {
        id: u64,
        result: Result<(), String>,
    },
    /// An eviction is under way (`ok`), or the API server refused it and the victim stays.
    Evicted {
        key: String,
        ok: bool,
    },
    Leading,
    Stop,
}

const KINDS: usize = 5;
const NODE: usize = 0;
const POD: usize = 1;
const CLASS: usize = 2;
const PDB: usize = 3;
const NAMESPACE: usize = 4;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
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
    pods: HashMap<String, berth_core::model::Pod>,
    nodes: HashSet<String>,
    pdbs: BTreeMap<String, berth_core::model::PodDisruptionBudget>,
    namespaces: HashSet<String>,
    /// Keys seen during a (re)list in progress, per kind.
    relist: [Option<HashSet<String>>; KINDS],
    synced: [bool; KINDS],
    leading: bool,
    health: Arc<Health>,
    out: tokio::sync::mpsc::UnboundedSender<ApiAction>,
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

    fn handle(&mut self, input: Input) {
        match input {
            Input::Node(e) => self.watched(NODE, *e, Self::node),
            Input::Pod(e) => self.watched(POD, *e, Self::pod),
            Input::PriorityClass(e) => self.watched(CLASS, e, Self::class),
            Input::Pdb(e) => self.watched(PDB, e, Self::pdb),
            Input::Namespace(e) => self.watched(NAMESPACE, e, Self::namespace),
            Input::Bound { id, result } => {
                if let Err(e) = &result {
                    warn!(error = %e, "binding rejected by the API server");
                }
                let actions = self.ctl.binding_result(id, result, now_ms());
                self.send(actions);
            }
            Input::Evicted { key, ok: true } => self.ctl.engine.eviction_done(&key, now_ms()),
            Input::Evicted { key, ok: false } => self.ctl.engine.eviction_failed(&key, now_ms()),
            Input::Leading => self.leading = true,
            Input::Stop => {}
        }
    }

    /// Applies a watch event; a re-list's end deletes what it did not list.
    fn watched<K: Resource + Clone>(&mut self, kind: usize, e: Event<K>, apply: fn(&mut Self, Change<K>, &str)) {
        match e {
            Event::Init => self.relist[kind] = Some(HashSet::new()),
            Event::InitApply(o) => {
                let key = object_key(&o);
                apply(self, Change::Apply(o), &key);
                if let Some(seen) = &mut self.relist[kind] {
                    seen.insert(key);
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relist[kind].take() {
                    self.forget_unlisted(kind, &seen);
                }
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
                apply(self, Change::Apply(o), &key)
            }
            Event::Delete(o) => {
                let key = object_key(&o);
                apply(self, Change::Delete(o), &key)
            }
        }
    }

    fn forget_unlisted(&mut self, kind: usize, seen: &HashSet<String>) {
        let now = now_ms();
        match kind {
            NODE => {
                let gone: Vec<String> = self.nodes.iter().filter(|k| !seen.contains(*k)).cloned().collect();
                for n in gone {
                    self.nodes.remove(&n);
                    self.ctl.engine.remove_node(&n, now);
                }
            }
            POD => {
                let gone: Vec<String> = self.pods.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                for k in gone {
                    if let Some(p) = self.pods.remove(&k) {
                        self.ctl.engine.delete_pod(&p, now);
                    }
                }
            }
            PDB => {
                self.pdbs.retain(|k, _| seen.contains(k));
                self.ctl.engine.set_pdbs(self.pdbs.values().cloned().collect());
            }
            _ => {}
        }
    }

    fn node(&mut self, c: Change<Node>, key: &str) {
        let now = now_ms();
        match c {
            Change::Apply(n) => match berth_convert::node(&n) {
                Ok(node) => {
                    if self.nodes.insert(key.to_string()) {
                        self.ctl.engine.add_node(node, now);
                    } else {
                        self.ctl.engine.update_node(node, now);
                    }
                }
                Err(e) => warn!(error = %e, "ignoring node"),
            },
            Change::Delete(_) => {
                if self.nodes.remove(key) {
                    self.ctl.engine.remove_node(key, now);
                }
            }
        }
    }

    fn pod(&mut self, c: Change<Pod>, key: &str) {
        let now = now_ms();
        match c {
            Change::Apply(p) if !berth_convert::pod_is_terminal(&p) => match berth_convert::pod(&p, &self.classes) {
                Ok(pod) => match self.pods.insert(key.to_string(), pod.clone()) {
                    Some(old) => self.ctl.engine.update_pod(Some(&old), pod, now),
                    None => self.ctl.engine.add_pod(pod, now),
                },
                Err(e) => warn!(error = %e, "ignoring pod"),
            },
            Change::Apply(_) | Change::Delete(_) => {
                if let Some(old) = self.pods.remove(key) {
                    self.ctl.engine.delete_pod(&old, now);
                }
            }
        }
    }

    fn class(&mut self, c: Change<PriorityClass>, key: &str) {
        match c {
            Change::Apply(pc) => self.classes.add(&pc),
            Change::Delete(_) => self.classes.remove(key),
        }
    }

    fn pdb(&mut self, c: Change<PodDisruptionBudget>, key: &str) {
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
        self.ctl.engine.set_pdbs(self.pdbs.values().cloned().collect());
    }

    fn namespace(&mut self, c: Change<Namespace>, key: &str) {
        match c {
            Change::Apply(n) => {
                let ns = berth_convert::namespace(&n);
                self.namespaces.insert(key.to_string());
                self.ctl.engine.set_namespace(&ns.name, ns.labels, now_ms());
            }
            Change::Delete(_) => {
                self.namespaces.remove(key);
            }
        }
    }

    fn send(&self, actions: Vec<ApiAction>) {
        for a in actions {
            let _ = self.out.send(a);
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
            if self.leading && self.all_synced() {
                if let Some(actions) = self.ctl.step(now_ms()) {
                    self.send(actions);
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

fn watch<K, F>(api: Api<K>, cfg: watcher::Config, tx: Sender<Input>, wrap: F) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
    F: Fn(Event<K>) -> Input + Send + 'static,
{
    let kind = K::kind(&Default::default()).to_string();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, cfg).default_backoff());
        while let Some(item) = next(&mut stream).await {
            match item {
                Ok(e) => {
                    if tx.send(wrap(e)).is_err() {
                        return;
                    }
                }
                Err(e) => warn!(kind = %kind, error = %e, "watch failed; retrying"),
            }
        }
    })
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

/// Carries out API actions: they queue (merging superseded writes, see
/// `PendingCalls`) until their rate limiter gives a token, then run, at most
/// `MAX_IN_FLIGHT` at a time.
async fn dispatch(mut rx: UnboundedReceiver<ApiAction>, client: ApiClient, reporter: Reporter, tx: Sender<Input>, d: Arc<Dispatch>) {
    for events in [false, true] {
        tokio::spawn(send_loop(events, client.clone(), reporter.clone(), tx.clone(), d.clone()));
    }
    while let Some(action) = rx.recv().await {
        let event = matches!(action, ApiAction::Event { .. } | ApiAction::EventSeries { .. });
        let dropped = {
            let mut p = d.pending.lock().unwrap();
            p.push(action);
            p.dropped_events
        };
        if event && dropped > 0 && dropped.is_power_of_two() {
            warn!(dropped, "event queue full ({MAX_QUEUED_EVENTS}): events dropped, as client-go's broadcaster drops them");
        }
        if event {
            d.events_ready.notify_one();
        } else {
            d.calls_ready.notify_one();
        }
    }
}

async fn send_loop(events: bool, client: ApiClient, reporter: Reporter, tx: Sender<Input>, d: Arc<Dispatch>) {
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
        let (client, reporter, tx, d) = (client.clone(), reporter.clone(), tx.clone(), d.clone());
        tokio::spawn(async move {
            let result = execute(&client, &reporter, &action).await;
            match (&action, result) {
                (ApiAction::Bind { id, .. }, r) => {
                    let _ = tx.send(Input::Bound { id: *id, result: r.map_err(|e| e.to_string()) });
                }
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

/// Runs the live scheduler until SIGTERM/SIGINT (Ok) or until leadership is
/// lost (Err: the process should exit non-zero, as kube-scheduler does).
pub async fn run(opts: RunOptions) -> Result<()> {
    let cfg = opts.config;
    let frameworks = cfg.build_frameworks().context("configuration")?;
    let le = cfg.leader_election.clone();
    let durations = if le.leader_elect {
        let d = |name: &str, v: &str| parse_duration(v).map_err(|e| anyhow::anyhow!("leaderElection.{name}: {e}"));
        Some((d("leaseDuration", &le.lease_duration)?, d("renewDeadline", &le.renew_deadline)?, d("retryPeriod", &le.retry_period)?))
    } else {
        None
    };
    let kubeconfig =
        opts.kubeconfig.or_else(|| Some(PathBuf::from(&cfg.client_connection.kubeconfig)).filter(|p| !p.as_os_str().is_empty()));
    let client = ApiClient::connect(kubeconfig.as_deref(), cfg.client_connection.qps, cfg.client_connection.burst).await?;
    // Fail early, with a clear message, when the API server is not there.
    client.client.apiserver_version().await.context("contacting the API server")?;

    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind(opts.http_address).await.with_context(|| format!("listening on {}", opts.http_address))?;
    info!(address = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    let router = http::router(health.clone(), metrics.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            error!(error = %e, "HTTP server stopped");
        }
    });

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
    let profiles: Vec<String> = engine.profiles.iter().map(|p| p.profile_name.clone()).collect();
    info!(profiles = ?profiles, "starting");
    let identity = identity();
    let reporter = Reporter { instance: identity.clone() };

    let (tx, rx) = mpsc::channel::<Input>();
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
    let state = Scheduling {
        ctl: Controller::new(engine, metrics.clone()),
        classes: PriorityClasses::new(),
        pods: HashMap::new(),
        nodes: HashSet::new(),
        pdbs: BTreeMap::new(),
        namespaces: HashSet::new(),
        relist: Default::default(),
        synced: [false; KINDS],
        leading: false,
        health: health.clone(),
        out: out_tx,
    };
    let thread = std::thread::Builder::new().name("berth-scheduling".into()).spawn(move || state.run(rx))?;

    let c = &client.client;
    let pods_cfg = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed").any_semantic();
    let all = || watcher::Config::default().any_semantic();
    let watchers = vec![
        watch(Api::<Node>::all(c.clone()), all(), tx.clone(), |e| Input::Node(Box::new(e))),
        watch(Api::<Pod>::all(c.clone()), pods_cfg, tx.clone(), |e| Input::Pod(Box::new(e))),
        watch(Api::<PriorityClass>::all(c.clone()), all(), tx.clone(), Input::PriorityClass),
        watch(Api::<PodDisruptionBudget>::all(c.clone()), all(), tx.clone(), Input::Pdb),
        watch(Api::<Namespace>::all(c.clone()), all(), tx.clone(), Input::Namespace),
    ];
    let calls = Arc::new(Dispatch::default());
    tokio::spawn(dispatch(out_rx, client.clone(), reporter, tx.clone(), calls.clone()));

    let mut elector = durations.map(|(lease, renew, retry)| {
        LeaderElector::new(c.clone(), &le.resource_namespace, &le.resource_name, identity.clone(), lease, renew, retry)
    });
    let lost = async {
        match elector.as_mut() {
            Some(e) => {
                e.acquire().await;
                let _ = tx.send(Input::Leading);
                e.keep().await;
            }
            None => {
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
    outcome
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

/// Loads and validates a configuration file, as `--config` does.
pub fn load_config(path: &std::path::Path) -> Result<KubeSchedulerConfiguration> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_yaml::from_str(&text).with_context(|| format!("{}: not YAML", path.display()))?;
    let mut cfg = KubeSchedulerConfiguration::from_yaml_value(value).with_context(|| format!("{}", path.display()))?;
    cfg.apply_defaults();
    cfg.validate().with_context(|| format!("{}", path.display()))?;
    if cfg.profiles.is_empty() {
        bail!("{}: no profiles", path.display());
    }
    Ok(cfg)
}
