//! `kubectl berth`: ask the live Berth why a pod is pending, or where it
//! went and why; or ask what would happen to pods not created yet, or to a
//! node's pods if it were drained. Put this binary on your `PATH` (krew's
//! convention: a `kubectl-berth` executable) and run `kubectl berth why POD
//! -n NS` or `kubectl berth what-if -f pods.yaml`.
//!
//! `why`'s answer comes from Berth's diagnosis endpoint through the API
//! server's service proxy, so your kubeconfig and RBAC apply: you need
//! `get` on `services/proxy` of Berth's Service (`deploy/rbac-why.yaml`).
//! `what-if` reads the cluster (list on nodes, pods, PodDisruptionBudgets,
//! PriorityClasses, namespaces and the objects plugins read) and runs
//! Berth's scheduling engine here: it changes nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_convert::manifests::RawObjects;
use berth_core::config::KubeSchedulerConfiguration;
use berth_core::framework::{CollectEvents, PluginHost, Registry};
use berth_core::why::Why;
use berth_kube::snapshot;
use berth_sim::SimOptions;
use clap::{Parser, Subcommand, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Parser)]
#[command(name = "kubectl berth", about = "Ask the Berth scheduler about your pods", version)]
struct Cli {
    /// The kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Where Berth's Service is.
    #[arg(long, global = true, default_value = "berth-system")]
    berth_namespace: String,
    /// Berth's Service, as the API server's proxy names it: `SCHEME:SERVICE:PORT`
    /// (`http:berth:http` for a Berth serving plain HTTP).
    #[arg(long, global = true, default_value = "https:berth:https")]
    berth_service: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Why POD is pending (every node's verdict, grouped; preemption), or
    /// where it was scheduled and why (scores, runners-up).
    Why {
        /// The pod.
        pod: String,
        /// Its namespace (default: the context's, else `default`).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Would these pods fit, where, and what would they evict; where would a
    /// drained node's pods go. Reads the cluster as it is and schedules here
    /// with Berth's engine, against the room there is now (pods still pending
    /// in the cluster are not counted); nothing is changed.
    WhatIf(WhatIf),
}

#[derive(clap::Args)]
struct WhatIf {
    /// Manifests to add (files, or `-` for stdin): the pods to place, and
    /// anything else they assume (nodes to add, PriorityClasses, claims).
    #[arg(short = 'f', long = "filename")]
    files: Vec<PathBuf>,
    /// A node to drain (repeatable): it is cordoned, and its pods, but
    /// DaemonSets' and static ones, are placed again.
    #[arg(long)]
    drain: Vec<String>,
    /// The scheduler's KubeSchedulerConfiguration (default: Berth's defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The namespace of added pods that name none (default: the context's, else `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

async fn client(cli: &Cli) -> Result<(kube::Client, String)> {
    let options = KubeConfigOptions { context: cli.context.clone(), ..Default::default() };
    let config = match &cli.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await.with_context(|| format!("{}", path.display()))?
        }
        None => kube::Config::from_kubeconfig(&options).await.context("loading the kubeconfig")?,
    };
    // A CLI answers or says why not; it never waits minutes.
    let mut config = config;
    config.connect_timeout = Some(std::time::Duration::from_secs(10));
    config.read_timeout = Some(std::time::Duration::from_secs(30));
    let namespace = config.default_namespace.clone();
    Ok((kube::Client::try_from(config)?, namespace))
}

async fn why(cli: &Cli, pod: &str, namespace: Option<&str>, output: Output) -> Result<()> {
    let (client, default_ns) = client(cli).await?;
    let ns = namespace.unwrap_or(&default_ns);
    let path =
        format!("/api/v1/namespaces/{}/services/{}/proxy{}/{ns}/{pod}", cli.berth_namespace, cli.berth_service, berth_kube::http::WHY_PATH);
    // Behind the Service, a standby replica answers 503: ask again.
    let mut tries = 0;
    let answer = loop {
        let req = http::Request::get(&path).body(Vec::new())?;
        match client.request_text(req).await {
            Err(kube::Error::Api(e)) if e.code == 503 && tries < 8 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            other => break other,
        }
    };
    let text = match answer {
        Ok(t) => t,
        Err(kube::Error::Api(e)) if e.code == 403 => bail!(
            "forbidden: {}\nasking Berth needs get on services/proxy of service {} in namespace {} (deploy/rbac-why.yaml grants it)",
            e.message,
            cli.berth_service,
            cli.berth_namespace
        ),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            // Berth's own answer (a JSON error), or the Service is missing.
            let msg = serde_json::from_str::<serde_json::Value>(&e.message)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(e.message);
            bail!("{ns}/{pod}: {msg}")
        }
        Err(e) => return Err(e).with_context(|| format!("asking Berth through {path}")),
    };
    let w: Why = serde_json::from_str(&text).with_context(|| format!("Berth's answer is not a diagnosis: {text}"))?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&w)?),
        Output::Text => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
            print!("{}", w.render(now));
        }
    }
    Ok(())
}

fn read_manifest(path: &Path) -> Result<(String, String)> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("reading stdin")?;
        return Ok(("stdin".into(), text));
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok((path.display().to_string(), text))
}

async fn what_if(cli: &Cli, w: &WhatIf) -> Result<()> {
    if w.files.is_empty() && w.drain.is_empty() {
        bail!("nothing to ask: give pods to place (-f FILE) or a node to drain (--drain NODE)");
    }
    let cfg = berth::cli::load_config(w.config.as_deref(), KubeSchedulerConfiguration::default())?;
    let registry = Registry::builtin();
    // The kinds the configured plugins read, to read them from the cluster too.
    let wasm = berth::cli::wasm_loader(w.config.as_deref(), 0);
    let host = PluginHost::new(Arc::new(CollectEvents::default())).with_service(wasm.clone());
    cfg.build_frameworks_with(&registry, &host)
        .context(w.config.as_ref().map_or("default configuration".into(), |p| p.display().to_string()))?;
    let (client, default_ns) = client(cli).await?;
    let ns = w.namespace.clone().unwrap_or(default_ns);
    // With DRA, the templates too: simulate makes the claims of the pods
    // that name one, as the cluster's resourceclaim controller would.
    let mut kinds = host.object_kinds();
    if kinds.contains(&berth::dra::CLAIMS) {
        kinds.push(berth::dra::CLAIM_TEMPLATES);
    }
    let mut live = snapshot::read(&client, &kinds).await.context("reading the cluster")?;
    for (key, e) in &live.uncounted {
        eprintln!("warning: {key} is on a node, but not even its requests can be read ({e}): not counted");
    }
    for (_, why) in &live.lenient {
        eprintln!("warning: {why}: counted on its node by its requests alone");
    }
    for node in &w.drain {
        if snapshot::drain(&mut live, node).is_none() {
            bail!("--drain {node}: no such node");
        }
    }
    let mut raw = live.raw;
    for path in &w.files {
        let (name, text) = read_manifest(path)?;
        let mut added = RawObjects::default();
        added.add_text(&name, &text)?;
        for (_, p) in added.pods.iter_mut() {
            p.metadata.namespace.get_or_insert_with(|| ns.clone());
            if p.metadata.name.is_none() {
                bail!("{name}: every pod needs a name (generateName is not enough to report on it)");
            }
        }
        raw.merge(added);
    }
    let mut cluster = raw.convert()?;
    cluster.pods.extend(live.pods);
    cluster.pods.extend(live.lenient.into_iter().map(|(p, _)| p));
    let opts = SimOptions {
        config: cfg,
        registry,
        extenders: Some(berth_kube::extender::HttpExtender::connector()),
        wasm: Some(wasm),
        ..SimOptions::default()
    };
    let start = std::time::Instant::now();
    let result = berth_sim::simulate(cluster, &opts)?;
    // A Deployment given with -f is not a pod to place: say so rather than answer without it.
    for w in result.skipped_warnings() {
        eprintln!("{w}");
    }
    match w.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&result)?),
        Output::Text => print!("{}", berth_sim::output::table(&result, start.elapsed().as_secs_f64(), false)),
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Why { pod, namespace, output } => why(&cli, pod, namespace.as_deref(), *output).await,
        Command::WhatIf(w) => what_if(&cli, w).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
