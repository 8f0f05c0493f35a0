//! The `berth` command: a thin layer of argument parsing and file reading
//! over the engine crates.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use berth_core::config::KubeSchedulerConfiguration;
use berth_sim::bench::{self, Workload};
use berth_sim::{output, SimOptions};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A Kubernetes scheduler in Rust: kube-scheduler's contract, faster, and able to explain itself."
)]
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
        /// Where /healthz, /readyz and /metrics are served (plain HTTP).
        #[arg(long, default_value = "0.0.0.0:10251")]
        http_address: std::net::SocketAddr,
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
        /// Instead of benchmarking, write a SchedulingBasic-shaped cluster
        /// (--nodes nodes, --pods pending pods) as manifests to this file,
        /// for timing `berth simulate` end to end.
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

/// Loads a KubeSchedulerConfiguration file (YAML or JSON).
fn load_config(path: Option<&Path>) -> Result<KubeSchedulerConfiguration> {
    let value = match path {
        None => serde_json::json!({}),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
            let v: serde_json::Value = serde_yaml::from_str(&text).with_context(|| format!("{}: not valid YAML", p.display()))?;
            if v.is_null() {
                serde_json::json!({})
            } else {
                v
            }
        }
    };
    let name = path.map(|p| p.display().to_string()).unwrap_or_else(|| "default configuration".into());
    let cfg = KubeSchedulerConfiguration::from_yaml_value(value).with_context(|| name.clone())?;
    // Build once now so plugin/args errors surface at start-up.
    cfg.build_frameworks().with_context(|| name)?;
    Ok(cfg)
}

fn simulate(files: &[PathBuf], config: Option<&Path>, seed: u64, format: OutputFormat, explain: bool) -> Result<()> {
    let start = Instant::now();
    let cfg = load_config(config)?;
    let inputs = read_inputs(files)?;
    let cluster = berth_convert::manifests::load(&inputs)?;
    let load_secs = start.elapsed().as_secs_f64();
    for (kind, n) in &cluster.skipped {
        eprintln!(
            "warning: skipped {n} object(s) of kind {kind}: simulate reads Node, Pod, PriorityClass, PodDisruptionBudget and Namespace"
        );
    }
    let result = berth_sim::simulate(cluster, &SimOptions { seed, explain, config: cfg, memoize: true })?;
    let elapsed = start.elapsed().as_secs_f64();
    let text = match format {
        OutputFormat::Json => output::json(&result, elapsed, load_secs),
        OutputFormat::Table => output::table(&result, elapsed, explain),
    };
    println!("{}", text.trim_end());
    Ok(())
}

fn run_bench(workload: &str, nodes: usize, pods: usize, seed: u64, format: OutputFormat) -> Result<()> {
    let list: Vec<Workload> = if workload.eq_ignore_ascii_case("all") {
        Workload::ALL.to_vec()
    } else {
        match Workload::parse(workload) {
            Some(w) => vec![w],
            None => bail!("unknown workload {workload:?}; one of: all, {}", Workload::ALL.map(|w| w.name()).join(", ")),
        }
    };
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let tty = std::io::stderr().is_terminal();
    let mut reports = Vec::new();
    for w in list {
        let bar = if tty {
            let b = indicatif::ProgressBar::new(pods as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{prefix:>26} [{bar:40}] {pos}/{len} pods {per_sec}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            b.set_prefix(w.name());
            Some(b)
        } else {
            None
        };
        let r = bench::run(w, nodes, pods, seed, |done, _| {
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
        });
        if let Some(b) = bar {
            b.finish_and_clear();
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

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `berth run`: configuration errors are refused before anything starts.
fn run(config: Option<&Path>, kubeconfig: Option<PathBuf>, http_address: std::net::SocketAddr, log_format: LogFormat) -> Result<()> {
    let config = match config {
        Some(p) => berth_kube::run::load_config(p)?,
        None => berth_kube::run::default_config(),
    };
    config.build_frameworks().context("configuration")?;
    init_logs(log_format);
    let threads = (config.parallelism.max(1) as usize).min(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().context("starting worker threads")?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(berth_kube::run::run(berth_kube::run::RunOptions { config, kubeconfig, http_address }))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Run { config, kubeconfig, http_address, log_format } = &cli.command {
        return match run(config.as_deref(), kubeconfig.clone(), *http_address, *log_format) {
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
        Command::Simulate { files, config, seed, output, explain } => simulate(files, config.as_deref(), *seed, *output, *explain),
        Command::Bench { emit_cluster: Some(path), nodes, pods, .. } => {
            std::fs::write(path, bench::basic_cluster_yaml(*nodes, *pods)).with_context(|| format!("{}: cannot write", path.display()))
        }
        Command::Bench { workload, nodes, pods, seed, output, emit_cluster: None } => run_bench(workload, *nodes, *pods, *seed, *output),
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
    eprintln!("berth: error: {}", msg.join(": "));
    if msg.first().is_some_and(|m| m == "leader election lost") {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    }
}
