//! The built-in plugins, one folder each (as upstream's
//! `pkg/scheduler/framework/plugins/<name>/`), and the registry that maps
//! configuration names to constructors. Adding a plugin: a folder here and
//! one line in `registry()`.

pub mod coscheduling;
pub mod default_binder;
pub mod default_preemption;
pub mod domain_memo;
pub mod dynamic_resources;
pub mod gang_scheduling;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_declared_features;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod queue_sort;
pub mod scheduling_gates;
pub mod taint_toleration;
pub mod volume;

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::framework::{Plugin, PluginArgs, PluginError, Registry};

/// A built-in plugin's constructor: its (optional) `pluginConfig` args in,
/// the plugin or a message out. (The volume plugins, which read objects
/// through the handle, have their own: `volume::constructors`.)
type Builtin = fn(args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String>;

/// Decodes plugin args strictly: unknown fields are an error, as upstream.
pub fn decode_args<T: DeserializeOwned + Default>(plugin: &str, args: Option<&serde_json::Value>) -> Result<T, String> {
    PluginArgs::new(plugin, args).decode().map_err(|e| e.to_string())
}

/// Adds `delta` to `map[key]` and returns the new count. Looks up before
/// inserting, so a key already present costs no allocation: per-domain
/// counting runs for every node in a cycle.
pub(crate) fn bump_count(map: &mut std::collections::HashMap<String, i64>, key: &str, delta: i64) -> i64 {
    match map.get_mut(key) {
        Some(v) => {
            *v += delta;
            *v
        }
        None => {
            map.insert(key.to_string(), delta);
            delta
        }
    }
}

/// Every built-in plugin by its configuration name (`Registry::builtin`).
pub(crate) fn registry() -> Registry {
    let builtins: [(&'static str, Builtin); 15] = [
        (queue_sort::NAME, queue_sort::new),
        (scheduling_gates::NAME, scheduling_gates::new),
        (node_name::NAME, node_name::new),
        (node_unschedulable::NAME, node_unschedulable::new),
        (node_ports::NAME, node_ports::new),
        (taint_toleration::NAME, taint_toleration::new),
        (node_affinity::NAME, node_affinity::new),
        (node_resources::fit::NAME, node_resources::fit::new),
        (node_resources::balanced_allocation::NAME, node_resources::balanced_allocation::new),
        (pod_topology_spread::NAME, pod_topology_spread::new),
        (inter_pod_affinity::NAME, inter_pod_affinity::new),
        (image_locality::NAME, image_locality::new),
        (default_preemption::NAME, default_preemption::new),
        (default_binder::NAME, default_binder::new),
        (node_declared_features::NAME, node_declared_features::new),
    ];
    let mut r = Registry::new();
    for (name, new) in builtins {
        r.register_arc(name, move |args, _handle| new(args.raw()).map_err(PluginError::InvalidArgs)).expect("built-in names are unique");
    }
    let groups: [(&'static str, volume::WithHandle); 2] = [
        (gang_scheduling::NAME, |_, h| Ok(Arc::new(gang_scheduling::GangScheduling::new(h)))),
        (coscheduling::NAME, |args, h| Ok(Arc::new(coscheduling::Coscheduling::new(args, h)?))),
    ];
    for (name, new) in volume::constructors().into_iter().chain(groups) {
        r.register_arc(name, move |args, handle| new(args.raw(), handle).map_err(PluginError::InvalidArgs))
            .expect("built-in names are unique");
    }
    r
}
