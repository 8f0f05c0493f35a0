//! The built-in plugins, one folder each (as upstream's
//! `pkg/scheduler/framework/plugins/<name>/`), and the registry that maps
//! configuration names to constructors. Adding a plugin: a folder here and
//! one line in `registry()`.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::framework::Plugin;

/// Builds a plugin from its (optional) `pluginConfig` args.
pub type Factory = fn(args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String>;

/// Decodes plugin args strictly: unknown fields are an error, as upstream.
pub fn decode_args<T: DeserializeOwned + Default>(plugin: &str, args: Option<&serde_json::Value>) -> Result<T, String> {
    match args {
        None => Ok(T::default()),
        Some(v) => {
            let mut v = v.clone();
            if let Some(obj) = v.as_object_mut() {
                obj.remove("apiVersion");
                obj.remove("kind");
            }
            serde_json::from_value(v).map_err(|e| format!("decoding args for plugin {plugin}: {e}"))
        }
    }
}

/// Every built-in plugin by its configuration name.
pub fn registry() -> Vec<(&'static str, Factory)> {
    vec![]
}
