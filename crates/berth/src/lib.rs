//! # Berth: a Kubernetes scheduler you extend in Rust
//!
//! Berth keeps kube-scheduler's contract (the scheduling framework, its
//! extension points, `KubeSchedulerConfiguration`, events and metrics) and
//! is also a library: a custom scheduler is a small crate that implements
//! [`Plugin`](framework::Plugin)s, registers them, and hands over to
//! Berth's command line, getting `run`, `simulate` and `bench` for free.
//!
//! ```no_run
//! use berth::prelude::*;
//!
//! /// Rejects nodes labelled `example.com/broken`.
//! struct NotBroken;
//!
//! #[berth::plugin]
//! impl Plugin for NotBroken {
//!     fn name(&self) -> &'static str {
//!         "NotBroken"
//!     }
//!     fn filter(&self, _state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
//!         if node.node.labels.contains_key("example.com/broken") {
//!             return Status::unresolvable("node(s) are broken");
//!         }
//!         Status::success()
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     berth::cli::App::new().with_plugin("NotBroken", |_args: &PluginArgs, _handle: &Handle| Ok(NotBroken)).run()
//! }
//! ```
//!
//! Then enable it like any plugin:
//!
//! ```yaml
//! apiVersion: kubescheduler.config.k8s.io/v1
//! kind: KubeSchedulerConfiguration
//! profiles:
//! - schedulerName: my-scheduler
//!   plugins:
//!     multiPoint:
//!       enabled: [{name: NotBroken}]
//! ```
//!
//! The step-by-step guide is `docs/plugins.md` in the repository; runnable
//! examples are under `examples/`.
//!
//! What is where:
//! - [`framework`]: the plugin trait, statuses, cycle state, the
//!   [`Handle`](framework::Handle) (objects of any kind, events, the
//!   snapshot, the API client), the [`Registry`](framework::Registry).
//! - [`model`]: the pod and node as plugins see them.
//! - [`cache`]: [`NodeInfo`](cache::NodeInfo) (a node with its pods) and the
//!   [`Snapshot`](cache::Snapshot) of a cycle.
//! - [`testing`]: builders for pods and nodes, for plugin tests.
//! - [`sim`]: run the simulator from a test.
//! - [`live`]: what `berth run` offers plugins that talk to the API server.
//! - [`cli`]: the command line, [`App`](cli::App).

#![deny(missing_docs)]

pub mod cli;

pub use berth_core::plugin;
pub use berth_core::{cache, framework, model, testing};

/// The imports a plugin usually needs.
pub mod prelude {
    pub use berth_core::cache::{NodeInfo, Snapshot};
    pub use berth_core::framework::{
        action, Binder, ClusterEvent, ClusterEventWithHint, Code, CycleState, EventResource, EventType, Handle, NodeScore, ObjectKind,
        Plugin, PluginArgs, PluginError, PodInfo, PreFilterResult, Status, Store, MAX_NODE_SCORE, MIN_NODE_SCORE,
    };
    pub use berth_core::model::{Node, Pod};
    pub use berth_core::plugin;
}

/// Dynamic resource allocation: the `resource.k8s.io/v1` objects as the
/// built-in DynamicResources plugin reads them, and what a plugin of your
/// own needs to learn which devices a pod got.
pub mod dra {
    pub use berth_core::plugins::dynamic_resources::allocated_devices;
    pub use berth_core::plugins::dynamic_resources::objects::{
        AllocationResult, DeviceClass, DeviceResult, ResourceClaim, ResourceSlice, CLAIMS, CLAIM_TEMPLATES, CLASSES, SLICES,
    };
}

/// Running the simulator from code: tests of a plugin can schedule a
/// cluster described by manifests and look at where each pod went.
pub mod sim {
    pub use berth_sim::{PodResult, SimEvent, SimOptions, SimResult};

    use berth_core::framework::Registry;

    /// Schedules the pending pods of `manifests` (YAML, several documents)
    /// with the configuration `config` (YAML; empty for the defaults) and
    /// the plugins of `registry`, as `berth simulate` does.
    pub fn run(manifests: &str, config: &str, registry: &Registry) -> anyhow::Result<SimResult> {
        let cluster = berth_convert::manifests::load(&[("manifests".to_string(), manifests.to_string())])?;
        let config = crate::cli::parse_config(config)?;
        let extenders = Some(berth_kube::extender::HttpExtender::connector());
        // Module paths of WebAssembly plugins are relative to the working directory.
        let wasm = Some(crate::cli::wasm_loader(None, 0));
        Ok(berth_sim::simulate(cluster, &SimOptions { config, registry: registry.clone(), extenders, wasm, ..Default::default() })?)
    }
}

/// What `berth run` gives plugins that talk to the API server, through
/// the [`Handle`](framework::Handle). The simulator and the benchmarks
/// offer none of it: check for `None` and say so in a status, or make the
/// plugin's factory refuse to start without it.
pub mod live {
    use std::future::Future;

    use berth_core::framework::Handle;

    pub use k8s_openapi;
    pub use kube;

    /// The scheduler's API client (`berth run` only). It authenticates as
    /// the scheduler and shares Berth's connection: each call waits for a
    /// token of the same QPS/burst bucket as Berth's own calls
    /// (`clientConnection.qps` and `burst`), and fails when the API server's
    /// answer does not begin within 70 s.
    pub fn client(handle: &Handle) -> Option<kube::Client> {
        handle.get::<kube::Client>().cloned()
    }

    /// Runs a future (an API call) to completion from a plugin method. The
    /// binding cycle (PreBind, Bind, PostBind) runs on a worker thread where
    /// this may block; in the scheduling cycle, keep calls rare: every pod
    /// waits for them. `None` outside `berth run`.
    pub fn block_on<F: Future>(handle: &Handle, future: F) -> Option<F::Output> {
        handle.get::<tokio::runtime::Handle>().map(|rt| rt.block_on(future))
    }
}
