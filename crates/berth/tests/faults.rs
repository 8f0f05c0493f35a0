//! The fault harness: `berth run` on a real control plane (testenv/) while
//! things break: Berth killed mid-burst, the API server killed and started
//! again, a partition long enough that etcd compacts past Berth's watches
//! (410 Gone, re-list), the leader killed, a node deleted while pods bind to
//! it, a pod deleted while it waits at Permit, the connection to the API
//! server going silent without closing (black-holed), the leader's alone
//! black-holed while the standby's is not, an API server outage longer than
//! renewDeadline, and an API server whose every answer comes 2 s late.
//!
//! Each case has a control plane of its own, and they run one at a time.
//! Berth runs as deployed: under deploy/rbac.yaml's service account, and
//! restarted when it exits (as its Deployment would be). Each case checks
//! the same things: every pod that fits is bound, once (at most one
//! Scheduled event, never two schedulers' bindings); no node holds more than
//! it has; no pod is lost from the queue (the pods left pending are bound once
//! room is made); a standby takes over within the lease. The figures each case
//! measures are printed as `fault-result` lines (scripts/faults.sh collects
//! them for RELIABILITY.md).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};

/// One case at a time: each starts a control plane, and this machine may have two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long the harness waits for a recovery before it calls the case failed.
const RECOVERY: Duration = Duration::from_secs(120);

/// `berth run` (or the example's binary) restarted whenever it exits, as a
/// Deployment's kubelet would; the whole process group dies with it.
struct Supervised {
    shell: Child,
    log: PathBuf,
    http_port: u16,
}

impl Supervised {
    fn start(bin: &Path, kubeconfig: &Path, config: &Path, name: &str) -> Supervised {
        let http_port = free_port();
        let mut argv: Vec<std::ffi::OsString> = vec![bin.into(), "run".into(), "--kubeconfig".into(), kubeconfig.into()];
        argv.extend(["--config".into(), config.into(), "--secure-port".into(), "0".into()]);
        argv.extend(["--http-address".into(), format!("127.0.0.1:{http_port}").into()]);
        Supervised::spawn(&argv, http_port, name)
    }

    /// Upstream kube-scheduler (testenv's build) as `scheduler`'s only
    /// profile, leader election off, talking to the API server with `kubeconfig`.
    fn start_kube_scheduler(kubeconfig: &Path, scheduler: &str, name: &str) -> Supervised {
        let config = write_temp(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nclientConnection: {{kubeconfig: {}}}\nleaderElection: {{leaderElect: false}}\nprofiles: [{{schedulerName: {scheduler}}}]\n",
                kubeconfig.display()
            ),
        );
        let argv: Vec<std::ffi::OsString> =
            vec![controlplane().into(), "kube-scheduler".into(), "--config".into(), config.into(), "--secure-port".into(), "0".into()];
        Supervised::spawn(&argv, 0, name)
    }

    fn spawn(argv: &[std::ffi::OsString], http_port: u16, name: &str) -> Supervised {
        use std::os::unix::process::CommandExt;
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("live").join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let shell = Command::new("sh")
            .arg("-c")
            .arg(r#"while :; do "$@"; echo "supervisor: exited with status $?"; sleep 1; done"#)
            .arg("sh")
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        Supervised { shell, log, http_port }
    }

    /// The scheduler's pid (the shell's child), once it runs.
    fn scheduler_pid(&self) -> Option<u32> {
        let pid = self.shell.id();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    /// SIGKILL to the scheduler: no clean shutdown, the supervisor starts it again.
    fn kill_scheduler(&self) -> u32 {
        let pid = self.scheduler_pid().expect("the scheduler runs");
        assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
        pid
    }

    /// How often the scheduler exited.
    fn exits(&self) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().matches("supervisor: exited").count()
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http_get(self.http_port, "/metrics").await?;
        Some(body.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum())
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.shell.id())]).status();
        let _ = self.shell.wait();
    }
}

/// A TCP proxy between Berth and the API server that can cut every
/// connection and refuse new ones (a network partition) until healed, or
/// black-hole the connections open now: they stay open and forward nothing
/// either way, while new connections pass (a load balancer's fail-over, a
/// lost NAT entry, a half-open connection to a host that died).
struct Partition {
    port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
    /// Connections numbered below this forward nothing.
    holed_below: Arc<std::sync::atomic::AtomicU64>,
}

/// How long the proxy holds each answer of the API server (see [`pump`]).
struct Latency(Duration);

/// Forwards between the two sockets until either closes, or forever
/// nothing once the connection (number `id`) is black-holed. What the API
/// server sends reaches the client `delay` late (latency, not a slower
/// line: later bytes are not held up behind earlier ones' wait).
async fn pump(
    id: u64,
    mut down: tokio::net::TcpStream,
    mut up: tokio::net::TcpStream,
    holed_below: Arc<std::sync::atomic::AtomicU64>,
    delay: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !delay.is_zero() {
        return pump_late(down, up, delay).await;
    }
    let (mut a, mut b) = ([0u8; 16384], [0u8; 16384]);
    loop {
        let (from_down, n) = tokio::select! {
            r = down.read(&mut a) => (true, r),
            r = up.read(&mut b) => (false, r),
        };
        let n = match n {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if id < holed_below.load(Ordering::SeqCst) {
            // Keep both sockets open and forward nothing until the hole is
            // closed; then what was held goes on its way, late, as TCP
            // delivers what it retransmits once a path comes back.
            while id < holed_below.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let written = if from_down { up.write_all(&a[..n]).await } else { down.write_all(&b[..n]).await };
        if written.is_err() {
            return;
        }
    }
}

/// [`pump`] with latency: what the API server sends is written to the client
/// `delay` after it was read, each chunk on its own clock.
async fn pump_late(down: tokio::net::TcpStream, up: tokio::net::TcpStream, delay: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut down_read, mut down_write) = down.into_split();
    let (mut up_read, mut up_write) = up.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let answers = async move {
        let mut b = [0u8; 16384];
        while let Ok(n @ 1..) = up_read.read(&mut b).await {
            if tx.send((tokio::time::Instant::now() + delay, b[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    let delivered = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if down_write.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    let requests = async move {
        let _ = tokio::io::copy(&mut down_read, &mut up_write).await;
    };
    // Either direction closing ends the connection.
    tokio::select! {
        _ = async { tokio::join!(answers, delivered) } => {}
        _ = requests => {}
    }
}

impl Partition {
    async fn new(upstream: String, Latency(delay): Latency) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let holed_below = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (c, k, h) = (cut.clone(), conns.clone(), holed_below.clone());
        let accept = tokio::spawn(async move {
            let mut next = 0u64;
            while let Ok((down, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let (upstream, id, h) = (upstream.clone(), next, h.clone());
                next += 1;
                let task = tokio::spawn(async move {
                    if let Ok(up) = tokio::net::TcpStream::connect(upstream).await {
                        pump(id, down, up, h, delay).await;
                    }
                });
                k.lock().unwrap().push(task);
            }
        });
        Partition { port, cut, conns, accept, holed_below }
    }

    /// A proxy in front of `cluster`'s API server, and the kubeconfig
    /// (`<name>.kubeconfig`, Berth's deployed identity) that goes through it.
    async fn in_front_of(cluster: &Cluster, name: &str, latency: Latency) -> (Partition, PathBuf) {
        let api_port = std::fs::read_to_string(cluster.dir.as_ref().unwrap().join("port")).unwrap();
        let proxy = Partition::new(format!("127.0.0.1:{}", api_port.trim()), latency).await;
        let identity = cluster.deployed_identity(&format!("{name}-direct.kubeconfig"));
        let through = cluster.kubeconfig_with(&format!("{name}.kubeconfig"), |kc| {
            let direct: Value = serde_yaml::from_str(&std::fs::read_to_string(&identity).unwrap()).unwrap();
            kc["users"] = direct["users"].clone();
            kc["clusters"][0]["cluster"]["server"] = json!(format!("https://127.0.0.1:{}", proxy.port));
        });
        (proxy, through)
    }

    /// Every connection open now goes silent (see the type); new ones pass.
    fn black_hole(&self) {
        // Numbers are given in accept order: every connection accepted so
        // far has a number below the count of tasks started.
        let started = self.conns.lock().unwrap().len() as u64;
        self.holed_below.store(started, Ordering::SeqCst);
    }

    /// The black-holed connections forward again, what they held first.
    fn restore(&self) {
        self.holed_below.store(0, Ordering::SeqCst);
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

fn config(name: &str, scheduler: &str, leader: Option<(&str, &str, &str)>, extra: &str) -> PathBuf {
    let election = match leader {
        Some((lease, renew, retry)) => format!(
            "leaderElection:
  leaderElect: true
  resourceNamespace: berth-system
  resourceName: {name}
  leaseDuration: {lease}
  renewDeadline: {renew}
  retryPeriod: {retry}
"
        ),
        None => "leaderElection:\n  leaderElect: false\n".into(),
    };
    write_temp(
        &format!("{name}.yaml"),
        &format!("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n{election}profiles:\n- schedulerName: {scheduler}\n{extra}"),
    )
}

/// Millicores of a quantity such as `500m` or `2`.
fn millis(q: &str) -> i64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => (q.parse::<f64>().unwrap() * 1000.0) as i64,
    }
}

fn cpu_request(p: &Pod) -> i64 {
    let spec = p.spec.as_ref().unwrap();
    spec.containers.iter().filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu")).map(|q| millis(&q.0)).sum()
}

/// What the checks found in a namespace.
#[derive(Debug, Default)]
struct Tally {
    pods: usize,
    bound: usize,
    /// Pods with more than one Scheduled event.
    scheduled_twice: Vec<String>,
    /// Nodes whose bound pods ask for more cpu than they have: (node, asked, has).
    overcommitted: Vec<(String, i64, i64)>,
}

impl Tally {
    /// The figures every case reports.
    fn figures(&self) -> Vec<(&'static str, String)> {
        vec![
            ("pods", self.pods.to_string()),
            ("bound", self.bound.to_string()),
            ("scheduled_twice", self.scheduled_twice.len().to_string()),
            ("overcommitted", self.overcommitted.len().to_string()),
        ]
    }
}

async fn tally(ns: &Ns) -> Tally {
    let pods = ns.pods().list(&ListParams::default()).await.unwrap().items;
    let nodes = Api::<Node>::all(ns.c.clone()).list(&ListParams::default()).await.unwrap().items;
    let events = Api::<Event>::namespaced(ns.c.clone(), &ns.name).list(&ListParams::default()).await.unwrap().items;
    let mut t = Tally { pods: pods.len(), ..Tally::default() };
    let mut scheduled: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.reason.as_deref() == Some("Scheduled")) {
        if let Some(pod) = e.regarding.as_ref().and_then(|r| r.name.clone()) {
            *scheduled.entry(pod).or_default() += e.series.as_ref().map_or(1, |s| s.count.max(1) as usize);
        }
    }
    t.scheduled_twice = scheduled.into_iter().filter(|(_, n)| *n > 1).map(|(p, _)| p).collect();
    let mut asked: BTreeMap<String, i64> = BTreeMap::new();
    for p in &pods {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            t.bound += 1;
            *asked.entry(node).or_default() += cpu_request(p);
        }
    }
    // Nodes that are gone hold nothing to over-commit; the cases that
    // delete nodes count what landed there themselves.
    for (node, asked) in asked {
        let Some(n) = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(node.as_str())) else { continue };
        let has = n.status.as_ref().and_then(|s| s.allocatable.as_ref()?.get("cpu")).map_or(0, |q| millis(&q.0));
        if asked > has {
            t.overcommitted.push((node, asked, has));
        }
    }
    t
}

/// Waits until `want` pods of the namespace are bound; returns how long it took.
async fn all_bound(ns: &Ns, want: usize) -> Duration {
    let start = Instant::now();
    wait_up_to(RECOVERY, &format!("{want} bound pods in {}", ns.name), || async {
        let pods = ns.pods().list(&ListParams::default()).await.ok()?.items;
        let bound = pods.iter().filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some())).count();
        (bound >= want).then_some(())
    })
    .await;
    start.elapsed()
}

/// The common checks: every pod that fits is bound, once, and no node is over-committed.
async fn assert_sound(ns: &Ns, want_bound: usize) -> Tally {
    let t = tally(ns).await;
    assert_eq!(t.bound, want_bound, "bound pods in {}: {t:?}", ns.name);
    assert!(t.scheduled_twice.is_empty(), "pods scheduled twice: {:?}", t.scheduled_twice);
    assert!(t.overcommitted.is_empty(), "over-committed nodes: {:?}", t.overcommitted);
    t
}

/// Pods are left pending by the scheduler (PodScheduled False, Unschedulable).
async fn assert_pending(ns: &Ns, pods: &[String]) {
    for p in pods {
        wait_up_to(RECOVERY, &format!("{p} to be reported unschedulable"), || async {
            ns.pod_scheduled_condition(p).await.filter(|c| c.0 == "False" && c.1 == "Unschedulable")
        })
        .await;
    }
}

/// Creates pods `{prefix}{i}` in the background, each retried until the API server takes it.
fn burst(ns: &Ns, scheduler: &str, prefix: &str, count: usize, cpu: &str) -> tokio::task::JoinHandle<()> {
    let (c, name, scheduler, prefix, cpu) = (ns.c.clone(), ns.name.clone(), scheduler.to_string(), prefix.to_string(), cpu.to_string());
    tokio::spawn(async move {
        let ns = Ns { c, name };
        for i in 0..count {
            let pod = format!("{prefix}{i}");
            let deadline = Instant::now() + RECOVERY;
            loop {
                match ns.try_pod(&pod, &scheduler, &cpu, json!({})).await {
                    Ok(_) => break,
                    Err(kube::Error::Api(e)) if e.code == 409 => break, // created before a lost answer
                    Err(e) => {
                        assert!(Instant::now() < deadline, "could not create {pod}: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    })
}

async fn count_bound(ns: &Ns) -> usize {
    let Ok(list) = ns.pods().list(&ListParams::default()).await else { return 0 };
    list.items.iter().filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some())).count()
}

/// Adds nodes `{prefix}{i}` of `cpu` each to the namespace's cluster.
async fn nodes(ns: &Ns, prefix: &str, count: usize, cpu: &str) {
    for i in 0..count {
        ns.node(&format!("{prefix}{i}"), cpu, json!({}), json!([])).await;
    }
}

/// The connection Berth talks to the API server over goes silent without
/// closing (black-holed), while new connections pass: HTTP/2 pings find it
/// dead, Berth's watches and calls move to a new connection, and a pod
/// created after the fault is bound. Without the pings, the watches wait on
/// the dead connection for as long as TCP does (about 15 minutes).
#[tokio::test]
async fn a_black_holed_connection_is_dropped_and_pods_created_after_it_are_bound() {
    black_holed_connection(false).await;
}

/// kube-scheduler 1.37.2 on the same fault, for comparison (its client-go
/// has the same health check: the figure should be about the same).
#[tokio::test]
async fn kube_scheduler_on_a_black_holed_connection() {
    black_holed_connection(true).await;
}

async fn black_holed_connection(upstream: bool) {
    let _one = ONE_AT_A_TIME.lock().await;
    let name = if upstream { "faults-blackhole-kube" } else { "faults-blackhole" };
    let cluster = Cluster::start(name);
    let admin = cluster.client().await;
    let ns = Ns::on(admin.clone(), if upstream { "blackholek" } else { "blackhole" }).await;
    nodes(&ns, "n", 2, "2").await;
    let (proxy, through) = Partition::in_front_of(&cluster, name, Latency(Duration::ZERO)).await;
    let scheduler = if upstream {
        // Upstream's own RBAC (system:kube-scheduler) is not Berth's: admin's credentials.
        let admin_through = cluster.kubeconfig_with(&format!("{name}-admin.kubeconfig"), |kc| {
            kc["clusters"][0]["cluster"]["server"] = json!(format!("https://127.0.0.1:{}", proxy.port));
        });
        Supervised::start_kube_scheduler(&admin_through, &ns.name, name)
    } else {
        Supervised::start(Path::new(berth_bin()), &through, &config(name, &ns.name, None, ""), name)
    };
    ns.pod("before", &ns.name, "100m", json!({})).await;
    all_bound(&ns, 1).await;

    proxy.black_hole();
    let holed = Instant::now();
    ns.pod("after", &ns.name, "100m", json!({})).await;
    all_bound(&ns, 2).await;
    let bound_after = holed.elapsed();
    let t = assert_sound(&ns, 2).await;
    assert_eq!(scheduler.exits(), 0, "the scheduler recovered without a restart");
    let case = if upstream { "black-holed-connection-kube-scheduler" } else { "black-holed-connection" };
    result(case, &[t.figures(), vec![("bound_after_s", secs(bound_after))]].concat());
}

fn result(case: &str, fields: &[(&str, String)]) {
    let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("fault-result case={case} {}", line.join(" "));
}

fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

/// The scheduler's burst in the cases below: 250 pods of 100m on 10 nodes of
/// 2 cpu, so 200 fit and 50 wait; then 3 more nodes make room for those 50.
const BURST: usize = 250;
const FIT: usize = 200;

async fn after_the_fault(ns: &Ns, case: &str, recovery_from: Instant, extra: &[(&str, String)]) {
    all_bound(ns, FIT).await;
    let recovered = recovery_from.elapsed();
    let waiting: Vec<String> = {
        let pods = ns.pods().list(&ListParams::default()).await.unwrap().items;
        pods.iter().filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_none())).filter_map(|p| p.metadata.name.clone()).collect()
    };
    assert_eq!(waiting.len(), BURST - FIT);
    assert_pending(ns, &waiting).await;
    assert_sound(ns, FIT).await;
    // None was lost from the queue: room for all, and all go.
    nodes(ns, "extra", 3, "2").await;
    let drained = all_bound(ns, BURST).await;
    let t = assert_sound(ns, BURST).await;
    let mut fields = t.figures();
    fields.extend([("recovered_s", secs(recovered)), ("queue_drained_s", secs(drained))]);
    fields.extend(extra.iter().cloned());
    result(case, &fields);
}

/// A burst case under way: its own control plane with 10 nodes of 2 cpu,
/// Berth's replicas (as deployed, leader election on this lease), a leader
/// elected, and the burst being created with 50 pods bound already.
struct Burst {
    cluster: Cluster,
    ns: Ns,
    replicas: Vec<Supervised>,
    /// Each replica's proxy to the API server, when the case asked for them.
    proxies: Vec<Partition>,
    /// The leader's identity, when the burst began.
    leader: String,
    creating: tokio::task::JoinHandle<()>,
}

impl Burst {
    async fn start(name: &str, replicas: usize, lease: (&str, &str, &str)) -> Burst {
        Burst::start_with(name, replicas, lease, None).await
    }

    /// The same, each replica talking to the API server through a proxy of
    /// its own (`latency`: see [`Partition`]) when `proxied`.
    async fn start_with(name: &str, replicas: usize, lease: (&str, &str, &str), proxied: Option<Duration>) -> Burst {
        let cluster = Cluster::start(name);
        let ns = Ns::on(cluster.client().await, name.trim_start_matches("faults-")).await;
        nodes(&ns, "n", 10, "2").await;
        let cfg = config(name, &ns.name, Some(lease), "");
        let mut proxies = Vec::new();
        let mut started = Vec::new();
        for i in 0..replicas {
            let replica = format!("{name}-{i}");
            let kubeconfig = match proxied {
                Some(latency) => {
                    let (proxy, through) = Partition::in_front_of(&cluster, &replica, Latency(latency)).await;
                    proxies.push(proxy);
                    through
                }
                None => cluster.deployed_identity(&format!("{replica}.kubeconfig")),
            };
            started.push(Supervised::start(Path::new(berth_bin()), &kubeconfig, &cfg, &replica));
        }
        let replicas = started;
        let leader = wait_up_to(RECOVERY, "a leader", || async { Burst::holder(&ns, name).await.and_then(|l| l.holder_identity) }).await;
        let creating = burst(&ns, &ns.name, "p", BURST, "100m");
        wait_up_to(RECOVERY, "50 pods bound before the fault", || async { (count_bound(&ns).await >= 50).then_some(()) }).await;
        Burst { cluster, ns, replicas, proxies, leader, creating }
    }

    /// Which of `replicas` holds the lease as `identity` (a replica's
    /// identity ends with its pid).
    fn replica_holding(replicas: &[Supervised], identity: &str) -> usize {
        replicas
            .iter()
            .position(|r| r.scheduler_pid().is_some_and(|pid| identity.ends_with(&format!("{:04x}", pid & 0xffff))))
            .expect("the lease holder is one of ours")
    }

    /// Waits for a holder of lease `name` other than `first`, and returns
    /// how long after `last_renew` (first's last renewal) it took the lease.
    /// The standby may notice the last renewal a retry late and tries again
    /// each retry: it must take the lease within leaseDuration + 2
    /// retryPeriods (+ 1 s of slack) of it.
    async fn standby_takes_over(
        ns: &Ns,
        name: &str,
        first: &str,
        last_renew: k8s_openapi::jiff::Timestamp,
        lease_s: f64,
        retry_s: f64,
    ) -> Duration {
        let second = wait_up_to(RECOVERY, "the standby to take over", || async {
            Burst::holder(ns, name).await.filter(|l| l.holder_identity.as_deref() != Some(first))
        })
        .await;
        let acquired = second.acquire_time.unwrap().0;
        let gap = Duration::from_millis((acquired.as_millisecond() - last_renew.as_millisecond()).max(0) as u64);
        assert!(gap.as_secs_f64() <= lease_s + 2.0 * retry_s + 1.0, "took over {gap:?} after the last renewal");
        gap
    }

    /// The case's Lease, once held.
    async fn holder(ns: &Ns, name: &str) -> Option<k8s_openapi::api::coordination::v1::LeaseSpec> {
        let spec = Api::<Lease>::namespaced(ns.c.clone(), "berth-system").get_opt(name).await.ok().flatten()?.spec?;
        spec.holder_identity.as_ref().is_some_and(|h| !h.is_empty()).then_some(spec)
    }
}

#[tokio::test]
async fn berth_killed_during_a_burst_restarts_and_binds_every_pod_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Burst { ns, replicas, creating, .. } = Burst::start("faults-kill", 1, ("4s", "3s", "500ms")).await;
    let berth = &replicas[0];
    berth.kill_scheduler();
    let killed = Instant::now();
    let bound_at_kill = count_bound(&ns).await;
    creating.await.unwrap();
    after_the_fault(&ns, "berth-kill-9", killed, &[("bound_at_kill", bound_at_kill.to_string()), ("restarts", berth.exits().to_string())])
        .await;
    assert_eq!(berth.exits(), 1, "only the kill stopped Berth");
}

#[tokio::test]
async fn the_api_server_killed_during_a_burst_and_started_again() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Burst { cluster, ns, replicas, creating, .. } = Burst::start("faults-apiserver", 1, ("20s", "15s", "2s")).await;
    let berth = &replicas[0];
    cluster.component("kill", "kube-apiserver");
    // The outage itself: the API server stays down for 5 s, then takes a few
    // seconds to start (more on a loaded machine: CI once saw over 10 s in all),
    // within renewDeadline (15 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.component("start", "kube-apiserver");
    let back = Instant::now();
    creating.await.unwrap();
    after_the_fault(&ns, "apiserver-kill-9", back, &[("outage_s", "5".into()), ("berth_restarts", berth.exits().to_string())]).await;
    assert_eq!(berth.exits(), 0, "a 5 s outage is shorter than renewDeadline: Berth keeps its lease");
}

/// An API server outage longer than `renewDeadline`: the leader cannot renew,
/// stops scheduling and exits by the time `renewDeadline` has passed (as
/// kube-scheduler does), its Deployment (here the supervisor) starts it
/// again, the new process waits for the API server (it does not exit: a
/// kubelet would space such restarts out for minutes), takes the lease once
/// the API server is back, and binds the rest, each pod once.
#[tokio::test]
async fn an_api_server_outage_longer_than_renew_deadline_makes_the_leader_exit_and_come_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (renew_s, retry_s) = (3.0, 1.0);
    let Burst { cluster, ns, replicas, creating, .. } = Burst::start("faults-outage", 1, ("5s", "3s", "1s")).await;
    let berth = &replicas[0];
    cluster.component("kill", "kube-apiserver");
    let killed = Instant::now();
    // The last renewal was at most a retry before the kill; the renewals
    // after it fail, and the leader gives up once renewDeadline has passed
    // since the last one that succeeded (a second for the process to exit).
    let limit = Duration::from_secs_f64(renew_s + retry_s + 1.0);
    wait_up_to(limit, "the leader to exit after renewDeadline", || async { (berth.exits() >= 1).then_some(()) }).await;
    let exited = killed.elapsed();
    // The outage outlasts the lease (5 s) too: 10 s in all.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(killed.elapsed())).await;
    cluster.component("start", "kube-apiserver");
    let back = Instant::now();
    creating.await.unwrap();
    // The process started again waits for the API server instead of exiting.
    assert_eq!(berth.exits(), 1, "only the lost lease stopped Berth");
    after_the_fault(
        &ns,
        "apiserver-outage-over-renew-deadline",
        back,
        &[
            ("outage_s", "10".into()),
            ("renew_deadline_s", "3".into()),
            ("exited_after_s", secs(exited)),
            ("berth_exits", berth.exits().to_string()),
        ],
    )
    .await;
}

/// A slow API server: every answer reaches Berth 2 s late (its requests,
/// the lease renewals included, go through at once). Berth keeps its lease
/// (renewDeadline 10 s), binds every pod that fits, once, and none is lost.
#[tokio::test]
async fn a_slow_api_server_answering_everything_2s_late() {
    let _one = ONE_AT_A_TIME.lock().await;
    let latency = Duration::from_secs(2);
    let started = Instant::now();
    let Burst { ns, replicas, creating, proxies, .. } = Burst::start_with("faults-slow", 1, ("15s", "10s", "2s"), Some(latency)).await;
    assert_eq!(proxies.len(), 1);
    let berth = &replicas[0];
    creating.await.unwrap();
    after_the_fault(&ns, "slow-apiserver-2s", started, &[("latency_s", "2".into()), ("berth_exits", berth.exits().to_string())]).await;
    assert_eq!(berth.exits(), 0, "2 s answers are well within renewDeadline: Berth keeps its lease");
}

#[tokio::test]
async fn watches_expire_during_a_partition_and_berth_relists() {
    let _one = ONE_AT_A_TIME.lock().await;
    // Without the watch cache, watches are served from etcd: once etcd has
    // compacted past the revision Berth resumes from, the API server answers 410 Gone.
    let cluster = Cluster::start_with("faults-relist", &[("BERTH_TESTENV_APISERVER_ARGS", "--watch-cache=false")]);
    let admin = cluster.client().await;
    let ns = Ns::on(admin.clone(), "relist").await;
    nodes(&ns, "n", 4, "1").await;
    let (partition, through) = Partition::in_front_of(&cluster, "faults-relist", Latency(Duration::ZERO)).await;
    let cfg = config("faults-relist", &ns.name, None, "");
    let berth = Supervised::start(Path::new(berth_bin()), &through, &cfg, "faults-relist");
    // 8 pods of 500m fill the 4 nodes; 5 more wait.
    for i in 0..13 {
        ns.pod(&format!("p{i}"), &ns.name, "500m", json!({})).await;
    }
    all_bound(&ns, 8).await;
    let waiting: Vec<String> = {
        let pods = ns.pods().list(&ListParams::default()).await.unwrap().items;
        pods.iter().filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_none())).filter_map(|p| p.metadata.name.clone()).collect()
    };
    assert_eq!(waiting.len(), 5);
    assert_pending(&ns, &waiting).await;
    let lists_before = berth.metric("berth_watch_lists_total").await.unwrap();

    partition.cut();
    let cut = Instant::now();
    // While Berth cannot see: n0's pods are deleted (room for 2); n1 is
    // deleted, its pods left bound to it (as until pod GC); a node comes with
    // room for 2, and another scheduler binds a waiting pod there; a waiting
    // pod is deleted. 3 pods wait, with room for exactly 3: a Berth that
    // missed any of it leaves one pending or over-commits the new node.
    let on = |pods: &[Pod], node: &str| -> Vec<String> {
        pods.iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .filter_map(|p| p.metadata.name.clone())
            .collect()
    };
    let pods = ns.pods().list(&ListParams::default()).await.unwrap().items;
    for p in on(&pods, &format!("{}-n0", ns.name)) {
        ns.pods().delete(&p, &DeleteParams::default().grace_period(0)).await.unwrap();
    }
    Api::<Node>::all(admin.clone()).delete(&format!("{}-n1", ns.name), &DeleteParams::default()).await.unwrap();
    let late = ns.node("late", "1", json!({}), json!([])).await;
    let (taken, deleted) = (&waiting[0], &waiting[1]);
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": taken}, "target": {"kind": "Node", "name": late}});
    ns.pods().create_subresource::<Value, Value>("binding", taken, &PostParams::default(), &binding).await.unwrap();
    ns.pods().delete(deleted, &DeleteParams::default()).await.unwrap();
    // Compact etcd at its current revision: Berth's resource versions are gone.
    let etcd = cluster.etcd();
    let range =
        Command::new("curl").args(["-fsS", "-X", "POST", &format!("{etcd}/v3/kv/range"), "-d", r#"{"key":"Lw=="}"#]).output().unwrap();
    let revision: Value = serde_json::from_slice(&range.stdout).unwrap();
    let revision = revision["header"]["revision"].as_str().unwrap().to_string();
    let compact = Command::new("curl")
        .args(["-fsS", "-X", "POST", &format!("{etcd}/v3/kv/compaction"), "-d", &format!(r#"{{"revision":"{revision}","physical":true}}"#)])
        .output()
        .unwrap();
    assert!(compact.status.success(), "etcd compaction: {}", String::from_utf8_lossy(&compact.stderr));
    // The partition itself lasts 3 s at least: Berth's watches and calls fail and back off.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(cut.elapsed())).await;
    let partitioned = cut.elapsed();
    partition.heal();
    let healed = Instant::now();

    all_bound(&ns, 10).await;
    let recovered = healed.elapsed();
    let lists_after = wait_up_to(RECOVERY, "Berth to re-list", || async {
        berth.metric("berth_watch_lists_total").await.filter(|n| *n >= lists_before + 2.0)
    })
    .await;
    // Berth's cache has the nodes the API server has: n1 gone, late in.
    let cached = wait_up_to(RECOVERY, "Berth's cache to hold 4 nodes", || async {
        berth.metric("scheduler_cache_size{type=\"nodes\"}").await.filter(|n| *n == 4.0)
    })
    .await;
    let t = assert_sound(&ns, 10).await;
    let pods = ns.pods().list(&ListParams::default()).await.unwrap().items;
    assert_eq!(on(&pods, &format!("{}-n0", ns.name)).len(), 2);
    assert_eq!(on(&pods, &late).len(), 2, "{taken} and one more");
    assert_eq!(berth.exits(), 0);
    result(
        "partition-compaction-410",
        &[
            t.figures(),
            vec![
                ("partition_s", secs(partitioned)),
                ("relists", (lists_after - lists_before).to_string()),
                ("cached_nodes", cached.to_string()),
                ("recovered_s", secs(recovered)),
            ],
        ]
        .concat(),
    );
}

#[tokio::test]
async fn the_leader_killed_during_a_burst_and_the_standby_takes_over_within_the_lease() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (lease_s, retry_s) = (6.0, 1.0);
    let Burst { ns, replicas, leader: first, creating, .. } = Burst::start("faults-leader", 2, ("6s", "4s", "1s")).await;
    replicas[Burst::replica_holding(&replicas, &first)].kill_scheduler();
    let killed = Instant::now();
    let last_renew = Burst::holder(&ns, "faults-leader").await.unwrap().renew_time.unwrap().0;
    let gap = Burst::standby_takes_over(&ns, "faults-leader", &first, last_renew, lease_s, retry_s).await;
    let took_over = killed.elapsed();
    creating.await.unwrap();
    after_the_fault(
        &ns,
        "leader-kill-9",
        killed,
        &[("lease_s", "6".into()), ("takeover_after_last_renew_s", secs(gap)), ("takeover_after_kill_s", secs(took_over))],
    )
    .await;
}

/// The leader's connection to the API server goes silent (black-holed) in
/// the middle of a burst while the standby's does not: the leader's renewal
/// gets no answer, it stops scheduling and exits once renewDeadline has
/// passed since its last renewal, and the standby takes the lease. Then the
/// old connection comes back and delivers, late, what the old leader sent
/// into it (bindings, its renewal): no pod is bound twice, no node is
/// over-committed, and every pod that fits is bound.
#[tokio::test]
async fn a_leader_whose_connection_is_black_holed_gives_way_to_the_standby() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (lease_s, renew_s, retry_s) = (6.0, 4.0, 1.0);
    let Burst { ns, replicas, leader: first, creating, proxies, .. } =
        Burst::start_with("faults-leaderhole", 2, ("6s", "4s", "1s"), Some(Duration::ZERO)).await;
    let old = Burst::replica_holding(&replicas, &first);
    let last_renew = Burst::holder(&ns, "faults-leaderhole").await.unwrap().renew_time.unwrap().0;
    proxies[old].black_hole();
    let holed = Instant::now();
    // Its last renewal was at most a retry before the fault.
    let limit = Duration::from_secs_f64(renew_s + retry_s + 1.0);
    wait_up_to(limit, "the black-holed leader to exit at renewDeadline", || async { (replicas[old].exits() >= 1).then_some(()) }).await;
    let exited = holed.elapsed();
    let gap = Burst::standby_takes_over(&ns, "faults-leaderhole", &first, last_renew, lease_s, retry_s).await;
    proxies[old].restore();
    creating.await.unwrap();
    after_the_fault(
        &ns,
        "leader-black-holed",
        holed,
        &[
            ("leader_exited_after_s", secs(exited)),
            ("takeover_after_last_renew_s", secs(gap)),
            ("old_leader_exits", replicas[old].exits().to_string()),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_node_deleted_while_pods_bind_to_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start("faults-node");
    let ns = Ns::on(cluster.client().await, "node").await;
    // One big node takes the burst; it is deleted while pods are binding to it.
    let doomed = ns.node("doomed", "100", json!({}), json!([])).await;
    let identity = cluster.deployed_identity("faults-node.kubeconfig");
    let cfg = config("faults-node", &ns.name, None, "");
    let berth = Supervised::start(Path::new(berth_bin()), &identity, &cfg, "faults-node");
    let creating = burst(&ns, &ns.name, "p", 200, "100m");
    wait_up_to(RECOVERY, "30 pods bound to the doomed node", || async { (count_bound(&ns).await >= 30).then_some(()) }).await;
    Api::<Node>::all(ns.c.clone()).delete(&doomed, &DeleteParams::default()).await.unwrap();
    let deleted = Instant::now();
    let on_doomed_at_delete = count_bound(&ns).await;
    // Room elsewhere: the rest go there, none to the node that is gone.
    nodes(&ns, "n", 10, "2").await;
    creating.await.unwrap();
    all_bound(&ns, 200).await;
    let recovered = deleted.elapsed();
    let t = tally(&ns).await;
    assert!(t.scheduled_twice.is_empty() && t.overcommitted.is_empty(), "{t:?}");
    let pods = ns.pods().list(&ListParams::default()).await.unwrap().items;
    let on_doomed = pods.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(doomed.as_str())).count();
    // Bindings already on their way when Berth saw the deletion may land
    // there (the API server does not check the node, as with kube-scheduler);
    // none is started after: at most what was bound or binding at the delete.
    assert!(on_doomed >= on_doomed_at_delete, "{on_doomed} < {on_doomed_at_delete}");
    assert!(on_doomed <= on_doomed_at_delete + 32, "{on_doomed} pods landed on the deleted node, {on_doomed_at_delete} at its deletion");
    let lists = berth.metric("berth_watch_lists_total").await.unwrap_or(0.0);
    assert_eq!(berth.exits(), 0);
    result(
        "node-deleted-while-binding",
        &[
            t.figures(),
            vec![
                ("on_deleted_node_at_delete", on_doomed_at_delete.to_string()),
                ("on_deleted_node_at_end", on_doomed.to_string()),
                ("watch_lists", lists.to_string()),
                ("recovered_s", secs(recovered)),
            ],
        ]
        .concat(),
    );
}

#[tokio::test]
async fn a_pod_deleted_while_it_waits_at_permit() {
    let _one = ONE_AT_A_TIME.lock().await;
    let bin = custom_scheduler_bin();
    let cluster = Cluster::start("faults-permit");
    let ns = Ns::on(cluster.client().await, "permit").await;
    let first = ns.node("a", "3", json!({}), json!([])).await;
    // The example's Batch plugin holds pods of a batch of 3 at Permit until
    // all three wait. Run as admin: the example's plugins need rights of their own.
    let cfg = config(
        "faults-permit",
        &ns.name,
        None,
        "  plugins:\n    permit:\n      enabled: [{name: Batch}]\n  pluginConfig:\n  - name: Batch\n    args: {timeoutSeconds: 600}\n",
    );
    let berth = Supervised::start(&bin, &cluster.kubeconfig, &cfg, "faults-permit");
    let member = json!({"labels": {"example.berth.dev/batch": "b"}, "annotations": {"example.berth.dev/batch-size": "3"}});
    ns.pod("m0", &ns.name, "1", member.clone()).await;
    ns.pod("m1", &ns.name, "1", member.clone()).await;
    ns.pod("x", &ns.name, "1", json!({})).await;
    ns.bound("x").await;
    // m0 and m1 hold 2 cpu at Permit: y does not fit.
    ns.pod("y", &ns.name, "1", json!({})).await;
    assert_pending(&ns, &["y".to_string()]).await;
    assert_eq!((ns.node_of("m0").await, ns.node_of("m1").await), (None, None), "m0 and m1 wait at Permit");
    // Deleting a waiting pod releases its reservation: y fits now.
    ns.pods().delete("m0", &DeleteParams::default()).await.unwrap();
    let deleted = Instant::now();
    assert_eq!(ns.bound("y").await, first);
    let freed = deleted.elapsed();
    // m1 still waits; two more members on a new node complete the batch.
    assert_eq!(ns.node_of("m1").await, None);
    ns.node("b", "3", json!({}), json!([])).await;
    ns.pod("m2", &ns.name, "1", member.clone()).await;
    ns.pod("m3", &ns.name, "1", member).await;
    for p in ["m1", "m2", "m3"] {
        ns.bound(p).await;
    }
    let t = assert_sound(&ns, 5).await;
    assert!(ns.pods().get_opt("m0").await.unwrap().is_none(), "m0 was never bound and stays deleted");
    assert_eq!(berth.exits(), 0);
    result("pod-deleted-at-permit", &[t.figures(), vec![("reservation_freed_s", secs(freed))]].concat());
}
