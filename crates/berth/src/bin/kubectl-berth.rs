//! `kubectl berth`: ask the live Berth why a pod is pending, or where it
//! went and why. Put this binary on your `PATH` (krew's convention: a
//! `kubectl-berth` executable) and run `kubectl berth why POD -n NS`.
//!
//! The answer comes from Berth's diagnosis endpoint through the API
//! server's service proxy, so your kubeconfig and RBAC apply: you need
//! `get` on `services/proxy` of Berth's Service (`deploy/rbac-why.yaml`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth_core::why::Why;
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
    /// Berth's Service, with the port's name or number (`SERVICE:PORT`).
    #[arg(long, global = true, default_value = "berth:http")]
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Why { pod, namespace, output } => why(&cli, pod, namespace.as_deref(), *output).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
