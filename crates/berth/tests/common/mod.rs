//! What the tests against a real control plane share: test environments
//! (testenv/), clients, namespaces with their own KWOK nodes, pods, waiting
//! on conditions with deadlines, and scheduler processes.
#![allow(dead_code)] // each test binary uses a part

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{json, Value};

pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn last_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out).lines().last().unwrap_or_default().trim().to_string()
}

/// The repository's root.
pub fn repo() -> &'static Path {
    static R: OnceLock<PathBuf> = OnceLock::new();
    R.get_or_init(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap())
}

/// The control plane's multi-call binary (etcd, kube-apiserver, kubectl, ...), built by testenv/build.
pub fn controlplane() -> &'static Path {
    static C: OnceLock<PathBuf> = OnceLock::new();
    C.get_or_init(|| {
        let build = Command::new(repo().join("testenv/build")).stderr(Stdio::inherit()).output().expect("run testenv/build");
        assert!(build.status.success(), "testenv/build failed");
        PathBuf::from(last_line(&build.stdout)).join("controlplane")
    })
}

/// Upstream's DRA allocator as a program (testenv/dra-oracle), built by testenv/build.
pub fn dra_oracle() -> PathBuf {
    controlplane().with_file_name("dra-oracle")
}

/// A control plane: one testenv/up started (and stopped when this process
/// ends), or one named by a kubeconfig.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    /// The testenv state folder, when this process started it.
    pub dir: Option<PathBuf>,
}

impl Cluster {
    /// Starts a test environment of its own in `<target tmp>/<name>-<pid>`
    /// (a folder of its own: the previous run's is stopped by a watcher
    /// that may not have noticed yet that its owner exited).
    pub fn start(name: &str) -> Cluster {
        Cluster::start_with(name, &[])
    }

    /// As `start`, with environment variables for testenv/up (`BERTH_TESTENV_APISERVER_ARGS`, ...).
    pub fn start_with(name: &str, vars: &[(&str, &str)]) -> Cluster {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let up = Command::new(repo().join("testenv/up"))
            .envs(vars.iter().copied())
            .env("BERTH_TESTENV_DIR", &dir)
            .env("BERTH_TESTENV_OWNER_PID", std::process::id().to_string())
            .stderr(Stdio::inherit())
            .output()
            .expect("run testenv/up");
        assert!(up.status.success(), "testenv/up failed");
        Cluster { kubeconfig: PathBuf::from(last_line(&up.stdout)), dir: Some(dir) }
    }

    pub async fn client(&self) -> kube::Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
        kube::Client::try_from(cfg).unwrap()
    }

    /// `kubectl` with this cluster's kubeconfig; panics when it fails.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let mut child = Command::new(controlplane())
            .args(["kubectl", "--kubeconfig"])
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `testenv/component ACTION NAME`: kill, stop or start one of its processes.
    pub fn component(&self, action: &str, name: &str) {
        let dir = self.dir.as_ref().expect("a test environment this process started");
        let out = Command::new(repo().join("testenv/component"))
            .env("BERTH_TESTENV_DIR", dir)
            .args([action, name])
            .stderr(Stdio::inherit())
            .output()
            .expect("run testenv/component");
        assert!(out.status.success(), "testenv/component {action} {name} failed");
    }

    /// etcd's client address.
    pub fn etcd(&self) -> String {
        let dir = self.dir.as_ref().expect("a test environment this process started");
        format!("http://127.0.0.1:{}", std::fs::read_to_string(dir.join("etcd-port")).unwrap().trim())
    }

    /// A kubeconfig with the identity Berth has when deployed: the `berth`
    /// service account of deploy/rbac.yaml (applied here), with only the rights
    /// that file grants. A verb missing there fails the tests that need it.
    pub fn deployed_identity(&self, name: &str) -> PathBuf {
        let rbac = std::fs::read_to_string(repo().join("deploy/rbac.yaml")).unwrap();
        self.kubectl(&["apply", "-f", "-"], Some(&rbac));
        let token = self.kubectl(&["-n", "berth-system", "create", "token", "berth", "--duration", "4h"], None);
        self.kubeconfig_with(name, |kc| {
            for u in kc["users"].as_array_mut().unwrap() {
                u["user"] = json!({"token": token.trim()});
            }
        })
    }

    /// A copy of this cluster's kubeconfig, changed by `edit`, written as `name`.
    pub fn kubeconfig_with(&self, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let mut kc: Value = serde_yaml::from_str(&std::fs::read_to_string(&self.kubeconfig).unwrap()).unwrap();
        edit(&mut kc);
        write_temp(name, &serde_yaml::to_string(&kc).unwrap())
    }
}

/// What a test needs and the place it runs lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lack {
    /// An API (a kind, a field value) the API server does not serve: expected
    /// on the oldest release CI tests, never on the newest.
    Api,
    /// Something of the machine (a non-loopback address).
    Host,
}

/// Records that the calling test cannot run here, and why; the test returns
/// right after. CI's summary (scripts/test.sh) counts the test as skipped,
/// not passed, and lists the reason. Where `BERTH_TEST_REQUIRE` names the
/// lack (`api`, `host`, comma-separated), CI expects the test to run, and a
/// skip is a failure.
pub fn skip(lack: Lack, reason: &str) {
    let test = std::thread::current().name().unwrap_or("<unnamed test>").to_string();
    let kind = match lack {
        Lack::Api => "api",
        Lack::Host => "host",
    };
    let required = std::env::var("BERTH_TEST_REQUIRE").unwrap_or_default();
    assert!(!required.split(',').any(|r| r.trim() == kind), "{test} cannot run here ({reason}), and this run requires it to");
    eprintln!("skipped: {test}: {reason}");
    if let Some(path) = std::env::var_os("BERTH_TEST_SKIP_LOG") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("open BERTH_TEST_SKIP_LOG");
        writeln!(f, "{test}: {reason}").expect("write BERTH_TEST_SKIP_LOG");
    }
}

/// The test environment most live tests share: started once for this test
/// binary, or the one `BERTH_TEST_KUBECONFIG` names.
pub fn env() -> &'static Cluster {
    static ENV: OnceLock<Cluster> = OnceLock::new();
    ENV.get_or_init(|| match std::env::var("BERTH_TEST_KUBECONFIG") {
        Ok(p) => Cluster { kubeconfig: PathBuf::from(p), dir: None },
        Err(_) => Cluster::start("testenv"),
    })
}

pub async fn client() -> kube::Client {
    env().client().await
}

/// `kubectl` of the shared test environment.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    env().kubectl(args, stdin)
}

pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

pub fn write_temp(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("live");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

/// Polls `f` until it yields a value; panics after the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_up_to(DEADLINE, what, f).await
}

/// Polls `f` until it yields a value, for at most `limit`.
pub async fn wait_up_to<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Ns {
    pub c: kube::Client,
    pub name: String,
}

impl Ns {
    /// A namespace of the shared test environment.
    pub async fn new(prefix: &str) -> Ns {
        Ns::on(client().await, prefix).await
    }

    /// A namespace of the cluster `c` talks to.
    pub async fn on(c: kube::Client, prefix: &str) -> Ns {
        let name =
            format!("{prefix}-{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() & 0xffffff);
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(c.clone()).create(&PostParams::default(), &ns).await.unwrap();
        Ns { c, name }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.c.clone(), &self.name)
    }

    /// A KWOK node of this test: `cpu` cores, 32Gi, extra labels and taints.
    pub async fn node(&self, suffix: &str, cpu: &str, labels: Value, taints: Value) -> String {
        let name = format!("{}-{suffix}", self.name);
        let mut l = json!({"kubernetes.io/hostname": name, "berth-test": self.name});
        for (k, v) in labels.as_object().cloned().unwrap_or_default() {
            l[k] = v;
        }
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": l, "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": {"taints": taints},
            "status": {"allocatable": {"cpu": cpu, "memory": "32Gi", "pods": "110"}, "capacity": {"cpu": cpu, "memory": "32Gi", "pods": "110"}}
        }))
        .unwrap();
        Api::<Node>::all(self.c.clone()).create(&PostParams::default(), &node).await.unwrap();
        name
    }

    /// A pod of this test for `scheduler`, requesting `cpu`; `extra` is merged into its spec.
    pub async fn pod(&self, name: &str, scheduler: &str, cpu: &str, extra: Value) -> Pod {
        self.try_pod(name, scheduler, cpu, extra).await.unwrap()
    }

    /// As `pod`, with the API server's answer.
    pub async fn try_pod(&self, name: &str, scheduler: &str, cpu: &str, extra: Value) -> Result<Pod, kube::Error> {
        let mut spec = json!({
            "schedulerName": scheduler,
            "nodeSelector": {"berth-test": self.name},
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}],
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            spec[k] = v;
        }
        let labels = spec.as_object_mut().unwrap().remove("labels").unwrap_or(json!({}));
        let annotations = spec.as_object_mut().unwrap().remove("annotations").unwrap_or(json!({}));
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels, "annotations": annotations}, "spec": spec}))
                .unwrap();
        self.pods().create(&PostParams::default(), &pod).await
    }

    /// Sets annotations on a node of this test.
    pub async fn annotate_node(&self, node: &str, annotations: Value) {
        let patch = json!({"metadata": {"annotations": annotations}});
        Api::<Node>::all(self.c.clone()).patch(node, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    }

    /// The PriorityClasses `<namespace>-low` (10) and `<namespace>-high` (1000).
    pub async fn priority_classes(&self) {
        let pcs = Api::<PriorityClass>::all(self.c.clone());
        for (suffix, value) in [("low", 10), ("high", 1000)] {
            let pc: PriorityClass =
                serde_json::from_value(json!({"metadata": {"name": format!("{}-{suffix}", self.name)}, "value": value})).unwrap();
            pcs.create(&PostParams::default(), &pc).await.unwrap();
        }
    }

    pub async fn bound(&self, pod: &str) -> String {
        let api = self.pods();
        wait_for(&format!("{}/{pod} to be bound", self.name), || async {
            api.get(pod).await.ok().and_then(|p| p.spec.and_then(|s| s.node_name))
        })
        .await
    }

    pub async fn node_of(&self, pod: &str) -> Option<String> {
        self.pods().get(pod).await.ok().and_then(|p| p.spec.and_then(|s| s.node_name))
    }

    pub async fn events(&self, pod: &str, reason: &str) -> Vec<Event> {
        let list = Api::<Event>::namespaced(self.c.clone(), &self.name).list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason) && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod))
            .collect()
    }

    pub async fn event(&self, pod: &str, reason: &str) -> Event {
        wait_for(&format!("a {reason} event for {}/{pod}", self.name), || async { self.events(pod, reason).await.into_iter().next() }).await
    }

    /// The first `reason` event for `pod` whose note contains `text`: waits
    /// past earlier attempts (one before Berth had seen the test's nodes, say).
    pub async fn event_noting(&self, pod: &str, reason: &str, text: &str) -> Event {
        wait_for(&format!("a {reason} event for {}/{pod} noting {text:?}", self.name), || async {
            self.events(pod, reason).await.into_iter().find(|e| e.note.as_deref().is_some_and(|n| n.contains(text)))
        })
        .await
    }

    pub async fn pod_scheduled_condition(&self, pod: &str) -> Option<(String, String, String)> {
        let p = self.pods().get(pod).await.ok()?;
        let c = p.status?.conditions?.into_iter().find(|c| c.type_ == "PodScheduled")?;
        Some((c.status, c.reason.unwrap_or_default(), c.message.unwrap_or_default()))
    }
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn_berth(config: &Path, log: &str) -> Proc {
    spawn_scheduler(Path::new(berth_bin()), config, log)
}

/// `bin run` on the shared test environment, serving plain HTTP on a free port.
pub fn spawn_scheduler(bin: &Path, config: &Path, log: &str) -> Proc {
    spawn_run(&env().kubeconfig, bin, config, log, &["--secure-port", "0", "--http-address", "127.0.0.1:0"])
}

/// `bin run` against the cluster of `kubeconfig`, serving as `serving` (flags)
/// says, logging to `<target tmp>/live/<log>`.
pub fn spawn_run(kubeconfig: &Path, bin: &Path, config: &Path, log: &str, serving: &[&str]) -> Proc {
    let log = std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("live").join(log)).unwrap();
    Proc(
        Command::new(bin)
            .args(["run", "--kubeconfig"])
            .arg(kubeconfig)
            .arg("--config")
            .arg(config)
            .args(serving)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// The control plane's own kube-scheduler (the release Berth follows, with
/// the test environment's feature gates) on the shared test environment:
/// its configuration is `config` (profiles, extenders, ...) after the
/// connection and leader election lines; it logs to `<target tmp>/live/<name>.log`.
pub fn spawn_kube_scheduler(name: &str, config: &str) -> Proc {
    let versions = repo().join("testenv/versions.sh");
    let gates = Command::new("bash").arg("-c").arg(format!(". {} && echo \"$KUBE_FEATURE_GATES\"", versions.display())).output().unwrap();
    let gates = String::from_utf8_lossy(&gates.stdout).trim().to_string();
    let config = write_temp(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {{kubeconfig: {}}}
leaderElection: {{leaderElect: false}}
{config}",
            env().kubeconfig.display()
        ),
    );
    let log = std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("live/{name}.log"))).unwrap();
    let mut cmd = Command::new(controlplane());
    cmd.args(["kube-scheduler", "--config"]).arg(&config).args(["--secure-port", "0"]);
    if !gates.is_empty() {
        cmd.args(["--feature-gates", &gates]);
    }
    Proc(cmd.stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("start kube-scheduler"))
}

/// The example custom scheduler (`examples/custom-scheduler`), a crate of
/// its own: scripts/test.sh builds it into this target directory first.
pub fn custom_scheduler_bin() -> PathBuf {
    let bin = Path::new(berth_bin()).with_file_name("custom-scheduler");
    assert!(
        bin.exists(),
        "{} is missing: build the example first (scripts/test.sh does): CARGO_TARGET_DIR=<this target dir> cargo build --manifest-path examples/custom-scheduler/Cargo.toml",
        bin.display()
    );
    bin
}

/// A kind of the DRA API (`resource.k8s.io/v1`, GA in Kubernetes 1.34), for dynamic clients.
pub fn dra_resource(kind: &str, plural: &str) -> kube::core::ApiResource {
    kube::core::ApiResource {
        group: "resource.k8s.io".into(),
        version: "v1".into(),
        api_version: "resource.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// A scheduler extender (or any JSON-over-HTTP/1.1 peer) on a local port:
/// `answer` gets each request's path and JSON body and gives the status
/// and the reply's body. Returns the server's URL.
pub fn serve_json(answer: impl Fn(&str, &Value) -> (u16, String) + Send + Sync + 'static) -> String {
    serve_json_at(0, answer)
}

/// As [`serve_json`], on 127.0.0.1:`port` (0: any free port).
pub fn serve_json_at(port: u16, answer: impl Fn(&str, &Value) -> (u16, String) + Send + Sync + 'static) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let answer = answer.clone();
            // One thread per connection: a call may take a while (a bind).
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let (mut line, mut length) = (String::new(), 0);
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        match h.split_once(':') {
                            Some((k, v)) if k.eq_ignore_ascii_case("content-length") => length = v.trim().parse().unwrap_or(0),
                            _ if h.trim().is_empty() => break,
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let (code, reply) = answer(&path, &serde_json::from_slice(&body).unwrap_or(Value::Null));
                    let out =
                        format!("HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}", reply.len());
                    if conn.write_all(out.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// The example WebAssembly guests (NodePool in Rust and Go, Chaos), built
/// once per test binary by `scripts/build-wasm-guests.sh`: their directory.
pub fn wasm_guests() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new(root.join("scripts/build-wasm-guests.sh")).output().expect("running the guest build");
        assert!(out.status.success(), "building the guests: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}
