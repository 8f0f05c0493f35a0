//! The `berth` command line: `run`, `simulate`, `bench`. [`App`] is what a
//! custom scheduler's `main` calls, with its plugins registered; Berth's own
//! binary is `App::new().run()`.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use berth_core::config::KubeSchedulerConfiguration;
use berth_core::framework::{Handle, Plugin, PluginArgs, PluginError, Registry, RegistryError};
use berth_sim::bench::{self, BenchOptions, Workload};
use berth_sim::{output, SimOptions};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(version, about = "A Kubernetes scheduler in Rust: kube-scheduler's contract, faster, and able to explain itself.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scheduler against a Kubernetes API server.
    ///
    /// Schedules the pending pods whose spec.schedulerName is one of the
    /// configuration's profiles (without --config: one profile, `berth`).
    /// Log level from RUST_LOG (default info).
    Run {
        /// A KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Kubeconfig file; default: clientConnection.kubeconfig, $KUBECONFIG,
        /// ~/.kube/config, then the in-cluster service account.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        #[command(flatten)]
        serving: Serving,
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Schedule the pending pods of a cluster described by manifests, offline.
    ///
    /// Input: YAML or JSON files (several documents each, `kind: List` too, so
    /// `kubectl get nodes,pods -A -o yaml` output works; `-` reads stdin; a
    /// directory reads its *.yaml, *.yml and *.json files). Nodes, Pods,
    /// PriorityClasses, PodDisruptionBudgets and Namespaces are used; pods with
    /// spec.nodeName are running, the rest are pending.
    Simulate {
        /// Manifest files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Seed for tie-breaking among equally good nodes.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Per pod: every node's filter verdict and per-plugin scores.
        #[arg(long)]
        explain: bool,
    },
    /// In-memory benchmark on scheduler_perf-shaped workloads.
    Bench {
        /// A KubeSchedulerConfiguration; the workloads' pods use its first profile.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Workload name, or `all`: SchedulingBasic, PodAntiAffinity,
        /// TopologySpreading, PreferredTopologySpreading, NodeAffinity,
        /// Preemption, Mixed.
        #[arg(long, default_value = "all")]
        workload: String,
        #[arg(long, default_value_t = 5000)]
        nodes: usize,
        #[arg(long, default_value_t = 10000)]
        pods: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Run upstream's own scheduler_perf workloads instead: a
        /// `performance-config.yaml`, or a scheduler_perf directory (e.g.
        /// `$(go env GOMODCACHE)/k8s.io/kubernetes@v1.37.2/test/integration/scheduler_perf`).
        /// --workload then names a test case or `<test case>/<workload>`;
        /// --nodes and --pods are the workloads' own.
        #[arg(long, conflicts_with = "emit_cluster")]
        upstream: Option<PathBuf>,
        /// With --upstream: which workloads' labels to run (upstream's
        /// -perf-scheduling-label-filter: `x` or `+x` required, `-x` excluded).
        #[arg(long, default_value = "performance", requires = "upstream")]
        label_filter: String,
        /// With --upstream: only list the selected workloads, runnable or
        /// not (with the reason), without running them.
        #[arg(long, requires = "upstream")]
        list: bool,
        /// Instead of benchmarking, write a cluster of --workload's shape
        /// (SchedulingBasic, the default, or PodAntiAffinity; --nodes nodes,
        /// --pods pending pods) as manifests to this file, for timing
        /// `berth simulate` end to end.
        #[arg(long)]
        emit_cluster: Option<PathBuf>,
    },
}

fn read_inputs(paths: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading stdin")?;
            out.push(("<stdin>".to_string(), s));
        } else if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
                .collect();
            entries.sort();
            for f in entries {
                out.push(read_file(&f)?);
            }
        } else {
            out.push(read_file(p)?);
        }
    }
    Ok(out)
}

fn read_file(p: &Path) -> Result<(String, String)> {
    let s = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
    Ok((p.display().to_string(), s))
}

/// Decodes a KubeSchedulerConfiguration (YAML or JSON; empty for the
/// defaults), with upstream's defaults applied and validated.
pub(crate) fn parse_config(text: &str) -> Result<KubeSchedulerConfiguration> {
    let v: serde_json::Value = serde_yaml::from_str(text).context("not YAML")?;
    let v = if v.is_null() { serde_json::json!({}) } else { v };
    Ok(KubeSchedulerConfiguration::from_yaml_value(v)?)
}

/// How errors name the configuration: its file, or the defaults.
/// The WebAssembly plugin loader of `berth run` and `berth simulate`:
/// module paths are relative to the configuration file's directory (the
/// working directory without one); `seed` seeds the guests' random numbers.
pub fn wasm_loader(config: Option<&Path>, seed: u64) -> berth_core::config::WasmLoader {
    let base = config.and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_default();
    berth_wasm::loader(base, seed)
}

fn config_name(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_else(|| "default configuration".into())
}

/// Loads a KubeSchedulerConfiguration file (YAML or JSON, upstream's
/// defaults applied, validated), or `default` without one; errors name the
/// file. The profiles are built (and plugin args checked) by the command that
/// runs them.
pub fn load_config(path: Option<&Path>, default: KubeSchedulerConfiguration) -> Result<KubeSchedulerConfiguration> {
    let Some(p) = path else { return Ok(default) };
    let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
    parse_config(&text).with_context(|| p.display().to_string())
}

fn simulate(files: &[PathBuf], config: Option<&Path>, seed: u64, format: OutputFormat, explain: bool, registry: &Registry) -> Result<()> {
    let start = Instant::now();
    let cfg = load_config(config, KubeSchedulerConfiguration::default())?;
    let inputs = read_inputs(files)?;
    let cluster = berth_convert::manifests::load(&inputs)?;
    let load_secs = start.elapsed().as_secs_f64();
    let opts = SimOptions {
        seed,
        explain,
        config: cfg,
        memoize: true,
        registry: registry.clone(),
        extenders: Some(berth_kube::extender::HttpExtender::connector()),
        wasm: Some(wasm_loader(config, seed)),
    };
    let result = berth_sim::simulate(cluster, &opts).map_err(|e| match e {
        berth_sim::SimError::Config(_) => anyhow::Error::new(e).context(config_name(config)),
        other => anyhow::Error::new(other),
    })?;
    for w in result.skipped_warnings() {
        eprintln!("{w}");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let text = match format {
        OutputFormat::Json => output::json(&result, elapsed, load_secs),
        OutputFormat::Table => output::table(&result, elapsed, explain),
    };
    println!("{}", text.trim_end());
    Ok(())
}

fn run_bench(workload: &str, nodes: usize, pods: usize, opts: &BenchOptions, config: Option<&Path>, format: OutputFormat) -> Result<()> {
    let list: Vec<Workload> = if workload.eq_ignore_ascii_case("all") {
        Workload::ALL.to_vec()
    } else {
        match Workload::parse(workload) {
            Some(w) => vec![w],
            None => bail!(
                "unknown workload {workload:?}; one of: all, {}",
                Workload::ALL.iter().chain(&Workload::NAMED_ONLY).map(|w| w.name()).collect::<Vec<_>>().join(", ")
            ),
        }
    };
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let mut reports = Vec::new();
    for w in list {
        let bar = progress_bar(w.name(), pods);
        let r = bench::run(w, nodes, pods, opts, |done, _| {
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
        })
        .with_context(|| config_name(config))?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        // A run that bound fewer pods than fit did not do the work it timed;
        // one that bound more broke the workload's rules (or its count).
        if r.scheduled != r.placeable {
            bail!(
                "{}: bound {} of {} pods on {} nodes, where the workload expects {} bound (too few nodes for the pods, or a fault); the figure would not be comparable",
                r.workload,
                r.scheduled,
                r.pods,
                r.nodes,
                r.placeable
            );
        }
        if matches!(format, OutputFormat::Table) {
            println!(
                "{:<27} nodes={:<6} pods={:<6} scheduled={:<6} {:>10.0} pods/s  p50={:>8.1}µs p90={:>8.1}µs p99={:>8.1}µs",
                r.workload, r.nodes, r.pods, r.scheduled, r.pods_per_second, r.p50_us, r.p90_us, r.p99_us
            );
        }
        reports.push(r);
    }
    if matches!(format, OutputFormat::Json) {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(())
}

/// One selected upstream workload in `berth bench --upstream` output: its
/// figures, or why it was not run.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum UpstreamOutcome {
    Ran(bench::upstream::UpstreamReport),
    NotRun { workload: String, skipped: String },
}

/// `berth bench --upstream`: upstream's workloads, each run or listed as
/// skipped with the reason; an error in a file or a run that did not bind
/// its pods fails the command.
fn run_upstream_bench(
    path: &Path,
    workload: &str,
    filter: &str,
    list: bool,
    opts: &BenchOptions,
    config: Option<&Path>,
    format: OutputFormat,
) -> Result<()> {
    use bench::upstream::{self, Planned};
    let files = upstream::find_configs(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if files.is_empty() {
        bail!("{}: no */performance-config.yaml here (a scheduler_perf directory, or one such file)", path.display());
    }
    let (test_case, name) = match workload {
        "all" => (None, None),
        w => match w.split_once('/') {
            Some((t, n)) => (Some(t), Some(n)),
            None => (Some(w), None),
        },
    };
    let read = |p: &Path| std::fs::read_to_string(p);
    let mut outcomes = Vec::new();
    let mut ran = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).with_context(|| format!("{}: cannot read", file.display()))?;
        let cfg = upstream::load(file, &text)?;
        for r in cfg.select(filter, test_case, name) {
            let outcome = match upstream::plan(&cfg, r, &read)? {
                Planned::NotRunnable { name, reason } => UpstreamOutcome::NotRun { workload: name, skipped: reason },
                Planned::Runnable(p) if list => UpstreamOutcome::NotRun {
                    workload: p.name.clone(),
                    skipped: format!("runnable: {} nodes, {} measured pods (--list)", p.nodes, p.measured_pods),
                },
                Planned::Runnable(p) => {
                    let bar = progress_bar(&p.name, p.measured_pods);
                    let r = upstream::run(&p, opts, |done, _| {
                        if let Some(b) = &bar {
                            b.set_position(done as u64);
                        }
                    })
                    .map_err(|e| match e {
                        upstream::UpstreamError::Scheduler(_) => anyhow::Error::new(e).context(config_name(config)),
                        other => anyhow::Error::new(other),
                    })?;
                    if let Some(b) = bar {
                        b.finish_and_clear();
                    }
                    ran += 1;
                    UpstreamOutcome::Ran(r)
                }
            };
            if matches!(format, OutputFormat::Table) {
                match &outcome {
                    UpstreamOutcome::Ran(r) => println!(
                        "{:<58} nodes={:<6} pods={:<6} {:>9.0} pods/s  sampled={:>9} threshold={:>5}  p50={:>8.1}µs p99={:>8.1}µs",
                        r.workload,
                        r.nodes,
                        r.pods,
                        r.pods_per_second,
                        r.sampled_average.map(|a| format!("{a:.0}")).unwrap_or_else(|| "-".into()),
                        r.threshold.map(|t| format!("{t:.0}")).unwrap_or_else(|| "-".into()),
                        r.p50_us,
                        r.p99_us
                    ),
                    UpstreamOutcome::NotRun { workload, skipped } => println!("{workload:<58} skipped: {skipped}"),
                }
            }
            outcomes.push(outcome);
        }
    }
    if outcomes.is_empty() {
        bail!("no workload under {} matches --workload {workload:?} and --label-filter {filter:?}", path.display());
    }
    if matches!(format, OutputFormat::Json) {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    }
    if !list {
        eprintln!("berth bench: {ran} of {} selected workloads ran; the others are listed as skipped with the reason", outcomes.len());
    }
    Ok(())
}

/// A progress bar on a terminal, none otherwise.
fn progress_bar(prefix: &str, len: usize) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(len as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>26} [{bar:40}] {pos}/{len} pods {per_sec}")
                .expect("template")
                .progress_chars("=> "),
        );
        b.set_prefix(prefix.to_string());
        b
    })
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Where and how `run` serves its endpoints (kube-scheduler's flags).
#[derive(clap::Args, Clone)]
struct Serving {
    /// The address HTTPS is served on (with --secure-port).
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: std::net::IpAddr,
    /// The HTTPS port of /healthz, /readyz, /livez, /metrics and
    /// /debug/berth/why; 0 turns HTTPS off. Callers are authenticated
    /// (TokenReview) and authorized (SubjectAccessReview) by the API server.
    #[arg(long, default_value_t = 10259)]
    secure_port: u16,
    /// The serving certificate (PEM); without it, a self-signed one.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The serving certificate's private key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Paths served over HTTPS without authorization, comma-separated
    /// (`/x/*` is every path under `/x/`).
    #[arg(long, default_value = berth_kube::secure::ALWAYS_ALLOWED)]
    authorization_always_allow_paths: String,
    /// Also serve the endpoints over plain HTTP here, without
    /// authentication (for tests; off unless given).
    #[arg(long)]
    http_address: Option<std::net::SocketAddr>,
}

/// glibc gives a thread that finds the arenas busy an arena of its own, up
/// to eight per core, and a live scheduler's threads (async workers,
/// binding cycles, rayon) then keep memory in many part-used arenas. Two
/// arenas took 2–6 MiB (4–15 %) off Berth's peak RSS on the 500-node
/// side-by-side (BENCHMARKS.md, "What Berth's memory is"). A
/// `MALLOC_ARENA_MAX` the user sets wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of glibc's allocator, and it
        // is called before `run` starts any thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// `berth run`: configuration errors are refused before anything starts.
fn run(config: Option<&Path>, kubeconfig: Option<PathBuf>, serving: Serving, log_format: LogFormat, registry: Registry) -> Result<()> {
    limit_malloc_arenas();
    let wasm = Some(wasm_loader(config, std::process::id() as u64));
    let config = load_config(config, berth_kube::run::default_config())?;
    let Serving { bind_address, secure_port, tls_cert_file, tls_private_key_file, authorization_always_allow_paths, http_address } =
        serving;
    let secure = (secure_port != 0).then(|| berth_kube::run::SecureServing {
        address: std::net::SocketAddr::new(bind_address, secure_port),
        cert: match (tls_cert_file, tls_private_key_file) {
            (Some(cert), Some(key)) => berth_kube::secure::ServingCert::Files { cert, key },
            _ => berth_kube::secure::ServingCert::SelfSigned,
        },
        always_allowed: authorization_always_allow_paths,
    });
    let threads = (config.parallelism.max(1) as usize).min(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    // Before the plugins: loading a WebAssembly plugin compiles it on
    // rayon's global pool, which would otherwise start with its defaults.
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().context("starting worker threads")?;
    // Plugins are built here, once, with the live handle (client included).
    let prepared =
        rt.block_on(berth_kube::run::prepare(berth_kube::run::RunOptions { config, kubeconfig, http_address, secure, registry, wasm }))?;
    init_logs(log_format);
    rt.block_on(prepared.run())
}

/// A scheduler: Berth's commands with a set of plugins. A custom scheduler
/// is a binary whose `main` registers its plugins and runs this:
///
/// ```no_run
/// # use berth::framework::{Plugin, PluginArgs, Handle, PluginError};
/// # struct MyPlugin;
/// # #[berth::plugin] impl Plugin for MyPlugin { fn name(&self) -> &'static str { "MyPlugin" } }
/// # impl MyPlugin { fn new(_: &PluginArgs, _: &Handle) -> Result<MyPlugin, PluginError> { Ok(MyPlugin) } }
/// fn main() -> std::process::ExitCode {
///     berth::cli::App::new().with_plugin("MyPlugin", MyPlugin::new).run()
/// }
/// ```
///
/// The result has every subcommand Berth has (`run`, `simulate`, `bench`),
/// and the configuration enables the plugins as any other
/// (`profiles[].plugins`, `pluginConfig[].args`).
pub struct App {
    registry: Registry,
    refused: Option<RegistryError>,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

impl App {
    /// Berth with its built-in plugins.
    pub fn new() -> App {
        App { registry: Registry::builtin(), refused: None }
    }

    /// Adds a plugin (see [`Registry::register`]). A name already taken is
    /// reported when the app runs: one line, exit status 2.
    pub fn with_plugin<P, F>(mut self, name: &'static str, factory: F) -> App
    where
        P: Plugin,
        F: Fn(&PluginArgs<'_>, &Handle) -> Result<P, PluginError> + Send + Sync + 'static,
    {
        if let Err(e) = self.registry.register(name, factory) {
            self.refused.get_or_insert(e);
        }
        self
    }

    /// Adds every plugin of `registry`.
    pub fn with_registry(mut self, registry: &Registry) -> App {
        if let Err(e) = self.registry.merge(registry) {
            self.refused.get_or_insert(e);
        }
        self
    }

    /// The plugins this app knows.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Parses the process's arguments and runs the command. Returns the
    /// exit status: 0, 2 for a bad configuration or input, 1 for a lost
    /// leader election.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// As [`App::run`], with the given arguments (the first is the program name).
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let bin =
            args.first().and_then(|a| Path::new(a).file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "berth".into());
        if args.is_empty() {
            args.push(bin.clone().into());
        }
        let matches = match Cli::command().bin_name(bin).try_get_matches_from(args) {
            Ok(m) => m,
            Err(e) => e.exit(),
        };
        let cli = match Cli::from_arg_matches(&matches) {
            Ok(c) => c,
            Err(e) => e.exit(),
        };
        if let Some(e) = self.refused {
            return fail(anyhow::Error::new(e).context("registering plugins"));
        }
        execute(cli, self.registry)
    }
}

fn execute(cli: Cli, registry: Registry) -> ExitCode {
    if let Command::Run { config, kubeconfig, serving, log_format } = &cli.command {
        return match run(config.as_deref(), kubeconfig.clone(), serving.clone(), *log_format, registry) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }
    // Run the engine on a rayon worker: its parallel filter/score sections then
    // share work with the other workers instead of handing off from a foreign
    // thread and sleeping, which costs two context switches per section.
    let pool = match rayon::ThreadPoolBuilder::new().build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth: error: starting worker threads: {e}");
            return ExitCode::from(2);
        }
    };
    let res = pool.install(|| match &cli.command {
        Command::Simulate { files, config, seed, output, explain } => {
            simulate(files, config.as_deref(), *seed, *output, *explain, &registry)
        }
        Command::Bench { emit_cluster: Some(path), workload, nodes, pods, .. } => {
            let w = if workload.eq_ignore_ascii_case("all") { Some(Workload::SchedulingBasic) } else { Workload::parse(workload) };
            match w.and_then(|w| bench::cluster_yaml(w, *nodes, *pods)) {
                Some(yaml) => std::fs::write(path, yaml).with_context(|| format!("{}: cannot write", path.display())),
                None => Err(anyhow::anyhow!("--emit-cluster writes SchedulingBasic or PodAntiAffinity clusters, not {workload:?}")),
            }
        }
        Command::Bench { config, workload, nodes, pods, seed, output, emit_cluster: None, upstream, label_filter, list } => {
            let cfg = load_config(config.as_deref(), KubeSchedulerConfiguration::default());
            cfg.and_then(|cfg| {
                let wasm = Some(wasm_loader(config.as_deref(), *seed));
                let opts = BenchOptions { config: cfg, registry: registry.clone(), seed: *seed, wasm };
                match upstream {
                    Some(path) => run_upstream_bench(path, workload, label_filter, *list, &opts, config.as_deref(), *output),
                    None => run_bench(workload, *nodes, *pods, &opts, config.as_deref(), *output),
                }
            })
        }
        Command::Run { .. } => unreachable!("handled above"),
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// One line on stderr: the context chain joined; exit 2 (1 for a lost lease,
/// as kube-scheduler).
fn fail(e: anyhow::Error) -> ExitCode {
    let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    // The binary's own name: a custom scheduler's errors say its name, not Berth's.
    let bin = std::env::args_os()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "berth".into());
    eprintln!("{bin}: error: {}", msg.join(": "));
    if msg.first().is_some_and(|m| m == "leader election lost") {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    }
}
