//! WebAssembly plugins for Berth: a guest module named in the
//! configuration runs as a scheduler plugin, in a sandbox.
//!
//! A `pluginConfig` entry whose args hold a `wasm` object names a guest:
//!
//! ```yaml
//! pluginConfig:
//! - name: NodePool
//!   args:
//!     wasm: {path: node_pool.wasm, timeout: 200ms, memoryLimit: 256Mi}
//!     defaultPool: iron
//! ```
//!
//! [`loader`] gives the runtime's [`WasmLoader`] service, which `berth run`
//! and `berth simulate` install: it compiles the module (once per file),
//! starts an instance per profile, asks the guest which extension points
//! it takes part in, and returns a [`Plugin`](berth_core::framework::Plugin)
//! that calls it. The contract between host and guest (ABI version 1) is
//! `docs/wasm-abi.md`; guests are written with the Go SDK (`sdk/go`) or the
//! Rust one (`crates/berth-guest`).
//!
//! A guest can only compute: it gets no files, no network, no clock it can
//! wait on. Each call has a deadline (`timeout`) and the guest's memory a
//! cap (`memoryLimit`); a trap, a timeout, memory beyond the cap or an
//! answer that breaks the ABI fails that pod's attempt with an error naming
//! the plugin, the instance is made afresh, and Berth goes on scheduling.

mod guest;
mod plugin;
mod wasi;
mod wire;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::config::WasmLoader;
use berth_core::framework::{Handle, Plugin, PluginError};

pub use guest::CallError;
pub use plugin::WasmPlugin;

/// The `wasm` object of a plugin's args.
#[derive(serde::Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    /// The module; relative to the configuration file's directory.
    path: PathBuf,
    /// Longest one call may run, as a Go duration.
    #[serde(default)]
    timeout: Option<String>,
    /// Most linear memory, as a Kubernetes quantity.
    #[serde(default)]
    memory_limit: Option<serde_json::Value>,
}

/// The default deadline of one call into a guest.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// The default cap on a guest's memory: 256 MiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 256 << 20;

/// Why a WebAssembly plugin could not be loaded. The configuration error
/// that carries it names the profile and the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The `wasm` object is malformed.
    #[error("args.wasm: {0}")]
    Spec(String),
    /// The file could not be read.
    #[error("args.wasm.path: reading {path}: {why}")]
    Read {
        /// The module's path, resolved.
        path: String,
        /// The I/O error.
        why: String,
    },
    /// The file is not a module Berth can run as a plugin, or it failed to start.
    #[error("{path}: {why}")]
    Module {
        /// The module's path, resolved.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The guest refused its args (its own message).
    #[error("{0}")]
    Args(String),
}

/// Modules compiled in this process, by content: profiles (and loaders)
/// naming the same file compile it once.
fn compiled(bytes: &[u8]) -> Result<Arc<wasmtime::Module>, String> {
    use std::hash::{Hash, Hasher};
    static CACHE: Mutex<Vec<(u64, usize, Arc<wasmtime::Module>)>> = Mutex::new(Vec::new());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let key = (h.finish(), bytes.len());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, m)) = cache.iter().find(|(k, n, _)| (*k, *n) == key) {
        return Ok(m.clone());
    }
    let m = guest::compile(bytes)?;
    if cache.len() >= 16 {
        cache.remove(0);
    }
    cache.push((key.0, key.1, m.clone()));
    Ok(m)
}

/// The loader `berth run` and `berth simulate` install, resolving module
/// paths against `base` (the configuration file's directory). `seed`
/// seeds the guests' random numbers (`random_get`), so that a seeded
/// simulation is reproducible.
pub fn loader(base: PathBuf, seed: u64) -> WasmLoader {
    WasmLoader(Arc::new(move |name: &str, args: &serde_json::Value, handle: &Handle| {
        load(&base, seed, name, args, handle).map(|p| Arc::new(p) as Arc<dyn Plugin>).map_err(|e| match e {
            LoadError::Args(why) => PluginError::InvalidArgs(why),
            other => PluginError::Failed(other.to_string()),
        })
    }))
}

fn load(base: &Path, seed: u64, name: &str, args: &serde_json::Value, handle: &Handle) -> Result<WasmPlugin, LoadError> {
    let spec_err = LoadError::Spec;
    let mut own = args.as_object().cloned().unwrap_or_default();
    let spec: Spec = serde_json::from_value(own.remove("wasm").unwrap_or_default()).map_err(|e| spec_err(e.to_string()))?;
    // As native plugins' args: the type fields are not the plugin's.
    own.remove("apiVersion");
    own.remove("kind");
    let timeout = match &spec.timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => berth_core::config::parse_duration(t).map_err(|e| spec_err(format!("timeout: {e}")))?,
    };
    if timeout.is_zero() {
        return Err(spec_err("timeout: must be more than 0".into()));
    }
    let memory = match &spec.memory_limit {
        None => DEFAULT_MEMORY_LIMIT,
        Some(v) => {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let q = berth_core::model::Quantity::parse(&text).map_err(|e| spec_err(format!("memoryLimit: {e}")))?;
            match q.as_i64() {
                Some(b) if b >= 1 << 16 => b as u64,
                _ => return Err(spec_err(format!("memoryLimit: {text} is less than one 64Ki WebAssembly page"))),
            }
        }
    };
    let path = base.join(&spec.path);
    let shown = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|e| LoadError::Read { path: shown.clone(), why: e.to_string() })?;
    let module = compiled(&bytes).map_err(|why| LoadError::Module { path: shown.clone(), why })?;
    let module_err = |why: String| LoadError::Module { path: shown.clone(), why };
    let static_name = plugin::leak_once(name);
    let guest_args = if own.is_empty() { serde_json::Value::Null } else { serde_json::Value::Object(own) };
    let init = serde_json::to_vec(&serde_json::json!({
        "abi": 1, "name": name, "profile": handle.profile_name(), "args": guest_args,
    }))
    .expect("JSON of the init call");
    let mut g = guest::Guest::new(&module, static_name, guest::Limits { timeout, memory }, seed, init).map_err(&module_err)?;
    let out = g.first_start().map_err(|e| module_err(format!("starting it: it {e}")))?;
    let meta: plugin::Metadata =
        serde_json::from_slice(&out).map_err(|e| module_err(format!("its init answered something that is not its metadata: {e}")))?;
    let sdk = meta.sdk.clone();
    let p = WasmPlugin::new(static_name, g, meta).map_err(|why| match why.starts_with("it ") {
        true => module_err(why),
        // The guest's own refusal of its args, as a native factory's.
        false => LoadError::Args(why),
    })?;
    tracing::info!(plugin = name, path = %shown, sdk = %sdk, "loaded a WebAssembly plugin");
    Ok(p)
}

#[cfg(test)]
mod tests;
