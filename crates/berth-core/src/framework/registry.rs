//! Plugins by name: what configurations can enable (upstream's
//! `framework/runtime/registry.go`).
//!
//! A [`Registry`] maps each name to a factory: a closure that receives the
//! plugin's `pluginConfig` args and a [`Handle`], and builds the plugin.
//! [`Registry::builtin`] holds Berth's own plugins; a custom scheduler adds
//! its own with [`Registry::register`] and hands the registry to Berth's CLI.
//! A profile instantiates each plugin it names once, with that profile's
//! args and handle.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::handle::Handle;
use super::plugin::Plugin;

/// A plugin's `pluginConfig[].args`, as written in the configuration.
#[derive(Clone, Copy, Debug)]
pub struct PluginArgs<'a> {
    plugin: &'a str,
    value: Option<&'a serde_json::Value>,
    /// Set when the factory reads the args (`decode`, `raw`): args a factory
    /// never reads are refused rather than silently ignored.
    read: Option<&'a std::cell::Cell<bool>>,
}

impl<'a> PluginArgs<'a> {
    /// Args for `plugin`; `None` when the configuration gives none.
    pub fn new(plugin: &'a str, value: Option<&'a serde_json::Value>) -> PluginArgs<'a> {
        PluginArgs { plugin, value, read: None }
    }

    /// No args at all (tests, plugins without configuration).
    pub fn none(plugin: &'a str) -> PluginArgs<'a> {
        PluginArgs { plugin, value: None, read: None }
    }

    /// The same args, noting in `read` whether the factory reads them.
    pub(crate) fn tracked(self, read: &'a std::cell::Cell<bool>) -> PluginArgs<'a> {
        PluginArgs { read: Some(read), ..self }
    }

    fn mark_read(&self) {
        if let Some(r) = self.read {
            r.set(true);
        }
    }

    /// The plugin these args are for.
    pub fn plugin(&self) -> &str {
        self.plugin
    }

    /// The raw value, if any (`apiVersion` and `kind` included).
    pub fn raw(&self) -> Option<&'a serde_json::Value> {
        self.mark_read();
        self.value
    }

    /// Decodes the args into `T`, or `T::default()` when there are none.
    /// Decoding is strict, as upstream's: a field `T` does not have is an
    /// error naming it (a typo in a scheduler configuration must stop the
    /// scheduler, not be ignored). `apiVersion` and `kind` are allowed.
    pub fn decode<T: DeserializeOwned + Default>(&self) -> Result<T, PluginError> {
        self.mark_read();
        let Some(v) = self.value else { return Ok(T::default()) };
        if v.is_null() {
            return Ok(T::default());
        }
        let mut v = v.clone();
        if let Some(obj) = v.as_object_mut() {
            obj.remove("apiVersion");
            obj.remove("kind");
        }
        let mut unknown = Vec::new();
        let t: T = serde_ignored::deserialize(v, |path| unknown.push(path.to_string()))
            .map_err(|e| PluginError::InvalidArgs(format!("decoding args for plugin {}: {e}", self.plugin)))?;
        if let Some(field) = unknown.first() {
            return Err(PluginError::InvalidArgs(format!("decoding args for plugin {}: unknown field {field:?}", self.plugin)));
        }
        Ok(t)
    }
}

/// Why a plugin could not be built. Berth reports it as a one-line
/// configuration error naming the profile and the plugin, and exits with
/// status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The args are not valid for this plugin.
    #[error("{0}")]
    InvalidArgs(String),
    /// The plugin cannot start (say, a service it needs is missing).
    #[error("{0}")]
    Failed(String),
}

impl PluginError {
    /// Invalid args, with a message that names the field.
    pub fn invalid_args(message: impl Into<String>) -> PluginError {
        PluginError::InvalidArgs(message.into())
    }

    /// Any other reason the plugin cannot start.
    pub fn failed(message: impl Into<String>) -> PluginError {
        PluginError::Failed(message.into())
    }
}

/// A registry refused a registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two plugins under one name: the second is refused, as upstream's `Register`.
    #[error("a plugin named {0:?} is already registered")]
    Duplicate(String),
    /// Names are what configurations use; an empty one cannot be enabled.
    #[error("a plugin name must not be empty")]
    EmptyName,
}

/// Builds one plugin instance: the registry's entry for a name.
pub type Factory = Arc<dyn Fn(&PluginArgs<'_>, &Handle) -> Result<Arc<dyn Plugin>, PluginError> + Send + Sync>;

/// Plugin factories by name. See the [module documentation](self).
#[derive(Clone, Default)]
pub struct Registry {
    entries: Vec<(&'static str, Factory)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Berth's built-in plugins (kube-scheduler's in-tree set).
    pub fn builtin() -> Registry {
        crate::plugins::registry()
    }

    /// Adds a plugin under `name`. The factory gets the plugin's args (decode
    /// them with [`PluginArgs::decode`]) and the profile's [`Handle`], and
    /// returns the plugin, whose [`Plugin::name`] must be `name`.
    ///
    /// ```
    /// # use berth_core as berth;
    /// use berth::framework::{Handle, Plugin, PluginArgs, Registry};
    /// struct Noop;
    /// #[berth::plugin]
    /// impl Plugin for Noop {
    ///     fn name(&self) -> &'static str { "Noop" }
    /// }
    /// let mut r = Registry::builtin();
    /// r.register("Noop", |_args: &PluginArgs, _h: &Handle| Ok(Noop)).unwrap();
    /// assert!(r.register("Noop", |_args: &PluginArgs, _h: &Handle| Ok(Noop)).is_err());
    /// ```
    pub fn register<P, F>(&mut self, name: &'static str, factory: F) -> Result<&mut Registry, RegistryError>
    where
        P: Plugin,
        F: Fn(&PluginArgs<'_>, &Handle) -> Result<P, PluginError> + Send + Sync + 'static,
    {
        self.insert(name, Arc::new(move |args: &PluginArgs<'_>, h: &Handle| factory(args, h).map(|p| Arc::new(p) as Arc<dyn Plugin>)))
    }

    /// Adds a factory that returns a shared plugin (an `Arc` you keep a
    /// clone of, say, to read its state in tests).
    pub fn register_arc<F>(&mut self, name: &'static str, factory: F) -> Result<&mut Registry, RegistryError>
    where
        F: Fn(&PluginArgs<'_>, &Handle) -> Result<Arc<dyn Plugin>, PluginError> + Send + Sync + 'static,
    {
        self.insert(name, Arc::new(factory))
    }

    fn insert(&mut self, name: &'static str, factory: Factory) -> Result<&mut Registry, RegistryError> {
        if name.is_empty() {
            return Err(RegistryError::EmptyName);
        }
        if self.get(name).is_some() {
            return Err(RegistryError::Duplicate(name.to_string()));
        }
        self.entries.push((name, factory));
        Ok(self)
    }

    /// Adds every entry of `other`; a name both have is refused (and
    /// nothing is added).
    pub fn merge(&mut self, other: &Registry) -> Result<(), RegistryError> {
        if let Some(dup) = other.names().find(|n| self.get(n).is_some()) {
            return Err(RegistryError::Duplicate(dup.to_string()));
        }
        self.entries.extend(other.entries.iter().cloned());
        Ok(())
    }

    /// The factory registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Factory> {
        self.entries.iter().find(|(n, _)| *n == name).map(|(_, f)| f)
    }

    /// Every registered name, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|(n, _)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Default, Debug, PartialEq)]
    #[serde(rename_all = "camelCase", default)]
    struct Args {
        default_pool: String,
    }

    #[test]
    fn args_decode_strictly() {
        let ok = serde_json::json!({"apiVersion": "x/v1", "kind": "K", "defaultPool": "a"});
        assert_eq!(PluginArgs::new("P", Some(&ok)).decode::<Args>().unwrap().default_pool, "a");
        assert_eq!(PluginArgs::none("P").decode::<Args>().unwrap(), Args::default());
        let typo = serde_json::json!({"defaultPol": "a"});
        let e = PluginArgs::new("P", Some(&typo)).decode::<Args>().unwrap_err();
        assert_eq!(e, PluginError::InvalidArgs("decoding args for plugin P: unknown field \"defaultPol\"".into()));
        let wrong = serde_json::json!({"defaultPool": 3});
        assert!(PluginArgs::new("P", Some(&wrong)).decode::<Args>().unwrap_err().to_string().contains("invalid type"));
    }

    #[test]
    fn names_are_unique() {
        let mut r = Registry::builtin();
        let n = r.names().count();
        assert!(n > 10);
        assert_eq!(
            r.register_arc("NodeName", |_, _| Err(PluginError::failed("unused"))).err(),
            Some(RegistryError::Duplicate("NodeName".into()))
        );
        assert_eq!(r.register_arc("", |_, _| Err(PluginError::failed("unused"))).err(), Some(RegistryError::EmptyName));
        assert_eq!(r.merge(&Registry::builtin()), Err(RegistryError::Duplicate("PrioritySort".into())));
        assert_eq!(r.names().count(), n);
    }
}
