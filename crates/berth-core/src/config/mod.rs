//! `KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1): decoding,
//! upstream defaults, validation, and turning profiles into frameworks.
//!
//! Decoding is strict (unknown fields are errors), because a typo in a
//! scheduler config should stop the scheduler at start-up, not be ignored.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::framework::{ExtensionPoint, Framework, Plugin, PluginArgs, PluginError, PluginHost, Registry, WeightedPlugin};

pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
pub const KIND: &str = "KubeSchedulerConfiguration";
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0}")]
    Decode(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A plugin's factory refused to build it (bad args, missing service).
    #[error("invalid configuration: profiles[{profile}]: plugin {plugin:?}: {source}")]
    Plugin {
        /// Index of the profile in `profiles`.
        profile: usize,
        /// The plugin's name.
        plugin: String,
        /// What the factory said.
        source: PluginError,
    },
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugins {
    #[serde(default)]
    pub pre_enqueue: PluginSet,
    #[serde(default)]
    pub queue_sort: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
    #[serde(default)]
    pub reserve: PluginSet,
    #[serde(default)]
    pub permit: PluginSet,
    #[serde(default)]
    pub pre_bind: PluginSet,
    #[serde(default)]
    pub bind: PluginSet,
    #[serde(default)]
    pub post_bind: PluginSet,
    #[serde(default)]
    pub multi_point: PluginSet,
}

impl Plugins {
    fn point(&self, ep: ExtensionPoint) -> &PluginSet {
        match ep {
            ExtensionPoint::PreEnqueue => &self.pre_enqueue,
            ExtensionPoint::QueueSort => &self.queue_sort,
            ExtensionPoint::PreFilter => &self.pre_filter,
            ExtensionPoint::Filter => &self.filter,
            ExtensionPoint::PostFilter => &self.post_filter,
            ExtensionPoint::PreScore => &self.pre_score,
            ExtensionPoint::Score => &self.score,
            ExtensionPoint::Reserve => &self.reserve,
            ExtensionPoint::Permit => &self.permit,
            ExtensionPoint::PreBind => &self.pre_bind,
            ExtensionPoint::Bind => &self.bind,
            ExtensionPoint::PostBind => &self.post_bind,
        }
    }

    fn point_mut(&mut self, ep: ExtensionPoint) -> &mut PluginSet {
        match ep {
            ExtensionPoint::PreEnqueue => &mut self.pre_enqueue,
            ExtensionPoint::QueueSort => &mut self.queue_sort,
            ExtensionPoint::PreFilter => &mut self.pre_filter,
            ExtensionPoint::Filter => &mut self.filter,
            ExtensionPoint::PostFilter => &mut self.post_filter,
            ExtensionPoint::PreScore => &mut self.pre_score,
            ExtensionPoint::Score => &mut self.score,
            ExtensionPoint::Reserve => &mut self.reserve,
            ExtensionPoint::Permit => &mut self.permit,
            ExtensionPoint::PreBind => &mut self.pre_bind,
            ExtensionPoint::Bind => &mut self.bind,
            ExtensionPoint::PostBind => &mut self.post_bind,
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: Option<serde_json::Value>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub scheduler_name: Option<String>,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    pub plugins: Option<Plugins>,
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElection {
    #[serde(default = "yes")]
    pub leader_elect: bool,
    #[serde(default = "d15s")]
    pub lease_duration: String,
    #[serde(default = "d10s")]
    pub renew_deadline: String,
    #[serde(default = "d2s")]
    pub retry_period: String,
    #[serde(default = "leases")]
    pub resource_lock: String,
    #[serde(default = "kube_scheduler")]
    pub resource_name: String,
    #[serde(default = "kube_system")]
    pub resource_namespace: String,
}

fn yes() -> bool {
    true
}
fn d15s() -> String {
    "15s".into()
}
fn d10s() -> String {
    "10s".into()
}
fn d2s() -> String {
    "2s".into()
}
fn leases() -> String {
    "leases".into()
}
fn kube_scheduler() -> String {
    "berth".into()
}
fn kube_system() -> String {
    "kube-system".into()
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            leader_elect: true,
            lease_duration: d15s(),
            renew_deadline: d10s(),
            retry_period: d2s(),
            resource_lock: leases(),
            resource_name: kube_scheduler(),
            resource_namespace: kube_system(),
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConnection {
    #[serde(default)]
    pub kubeconfig: String,
    #[serde(default = "qps")]
    pub qps: f32,
    #[serde(default = "burst")]
    pub burst: i32,
    #[serde(default)]
    pub accept_content_types: String,
    #[serde(default)]
    pub content_type: String,
}

fn qps() -> f32 {
    50.0
}
fn burst() -> i32 {
    100
}

impl Default for ClientConnection {
    fn default() -> Self {
        ClientConnection {
            kubeconfig: String::new(),
            qps: qps(),
            burst: burst(),
            accept_content_types: String::new(),
            content_type: String::new(),
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeSchedulerConfiguration {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default = "parallelism")]
    pub parallelism: i32,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    #[serde(default = "one")]
    pub pod_initial_backoff_seconds: i64,
    #[serde(default = "ten")]
    pub pod_max_backoff_seconds: i64,
    #[serde(default)]
    pub leader_election: LeaderElection,
    #[serde(default)]
    pub client_connection: ClientConnection,
    #[serde(default)]
    pub profiles: Vec<Profile>,
    #[serde(default)]
    pub extenders: Vec<serde_json::Value>,
    #[serde(default)]
    pub delay_cache_until_active: bool,
    #[serde(default)]
    pub enable_profiling: Option<bool>,
    #[serde(default)]
    pub enable_contention_profiling: Option<bool>,
    #[serde(default)]
    pub healthz_bind_address: Option<String>,
    #[serde(default)]
    pub metrics_bind_address: Option<String>,
}

fn parallelism() -> i32 {
    16
}
fn one() -> i64 {
    1
}
fn ten() -> i64 {
    10
}

impl Default for KubeSchedulerConfiguration {
    /// The configuration of an empty file: upstream's defaults, one
    /// `default-scheduler` profile.
    fn default() -> Self {
        KubeSchedulerConfiguration::from_yaml_value(serde_json::json!({})).expect("the defaults are valid")
    }
}

/// The default plugins (multiPoint), with their default score weights, in upstream's order.
pub fn default_plugins() -> Vec<PluginRef> {
    let p = |name: &str, weight: Option<i32>| PluginRef { name: name.into(), weight };
    vec![
        p("SchedulingGates", None),
        p("PrioritySort", None),
        p("NodeUnschedulable", None),
        p("NodeName", None),
        p("TaintToleration", Some(3)),
        p("NodeAffinity", Some(2)),
        p("NodePorts", None),
        p("NodeResourcesFit", Some(1)),
        p("VolumeRestrictions", None),
        p("NodeVolumeLimits", None),
        p("VolumeBinding", None),
        p("VolumeZone", None),
        p("PodTopologySpread", Some(2)),
        p("InterPodAffinity", Some(2)),
        // Inert in Berth (DRA is not modelled) but listed, as in 1.34's defaults.
        p("DynamicResources", None),
        p("DefaultPreemption", None),
        p("NodeResourcesBalancedAllocation", Some(1)),
        p("ImageLocality", Some(1)),
        p("DefaultBinder", None),
    ]
}

/// Parses a Go-style duration ("15s", "1m30s", "500ms").
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.trim().chars().peekable();
    if s.trim().is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() || n == 'µ' {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        num.clear();
        let mult = match unit.as_str() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?}")),
        };
        total += v * mult;
    }
    if !num.is_empty() {
        if num == "0" {
            return Ok(std::time::Duration::ZERO);
        }
        return Err(format!("invalid duration {s:?}: missing unit"));
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

impl KubeSchedulerConfiguration {
    /// Decodes YAML (or JSON) text, applies defaults and validates.
    pub fn from_yaml_value(v: serde_json::Value) -> Result<KubeSchedulerConfiguration, ConfigError> {
        let mut cfg: KubeSchedulerConfiguration = serde_json::from_value(v).map_err(|e| ConfigError::Decode(e.to_string()))?;
        cfg.apply_defaults();
        cfg.validate()?;
        Ok(cfg)
    }

    /// Profiles default to one `default-scheduler` profile.
    pub fn apply_defaults(&mut self) {
        if self.profiles.is_empty() {
            self.profiles.push(Profile::default());
        }
        for p in &mut self.profiles {
            if p.scheduler_name.as_deref().unwrap_or("").is_empty() {
                p.scheduler_name = Some(DEFAULT_SCHEDULER_NAME.into());
            }
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if let Some(v) = &self.api_version {
            if v != API_VERSION {
                return bad(format!("apiVersion: unsupported value {v:?}, expected {API_VERSION:?}"));
            }
        }
        if let Some(k) = &self.kind {
            if k != KIND {
                return bad(format!("kind: unsupported value {k:?}, expected {KIND:?}"));
            }
        }
        if self.parallelism <= 0 {
            return bad(format!("parallelism: Invalid value: {}: should be an integer value greater than zero", self.parallelism));
        }
        if let Some(p) = self.percentage_of_nodes_to_score {
            if !(0..=100).contains(&p) {
                return bad(format!("percentageOfNodesToScore: Invalid value: {p}: not in valid range [0-100]"));
            }
        }
        if self.pod_initial_backoff_seconds <= 0 {
            return bad(format!("podInitialBackoffSeconds: Invalid value: {}: must be greater than 0", self.pod_initial_backoff_seconds));
        }
        if self.pod_max_backoff_seconds < self.pod_initial_backoff_seconds {
            return bad(format!(
                "podMaxBackoffSeconds: Invalid value: {}: must be greater than or equal to PodInitialBackoffSeconds",
                self.pod_max_backoff_seconds
            ));
        }
        if self.client_connection.qps < 0.0 || self.client_connection.burst < 0 {
            return bad("clientConnection: qps and burst must not be negative".into());
        }
        let le = &self.leader_election;
        let lease = parse_duration(&le.lease_duration).map_err(|e| ConfigError::Invalid(format!("leaderElection.leaseDuration: {e}")))?;
        let renew = parse_duration(&le.renew_deadline).map_err(|e| ConfigError::Invalid(format!("leaderElection.renewDeadline: {e}")))?;
        let retry = parse_duration(&le.retry_period).map_err(|e| ConfigError::Invalid(format!("leaderElection.retryPeriod: {e}")))?;
        if le.leader_elect {
            if lease <= renew {
                return bad("leaderElection.leaseDuration: Invalid value: leaseDuration must be greater than renewDeadline".into());
            }
            if renew.is_zero() || retry.is_zero() {
                return bad("leaderElection: renewDeadline and retryPeriod must be greater than zero".into());
            }
            if le.resource_lock != "leases" {
                return bad(format!(
                    "leaderElection.resourceLock: Unsupported value: {:?}: supported values: \"leases\"",
                    le.resource_lock
                ));
            }
        }
        if !self.extenders.is_empty() {
            return bad("extenders: not supported by Berth".into());
        }
        let mut names = HashSet::new();
        for (i, p) in self.profiles.iter().enumerate() {
            let name = p.scheduler_name.clone().unwrap_or_default();
            if !names.insert(name.clone()) {
                return bad(format!("profiles[{i}].schedulerName: Duplicate value: {name:?}"));
            }
            if let Some(pct) = p.percentage_of_nodes_to_score {
                if !(0..=100).contains(&pct) {
                    return bad(format!("profiles[{i}].percentageOfNodesToScore: Invalid value: {pct}: not in valid range [0-100]"));
                }
            }
            let mut seen = HashSet::new();
            for pc in &p.plugin_config {
                if !seen.insert(pc.name.clone()) {
                    return bad(format!("profiles[{i}].pluginConfig: Duplicate value: {:?}", pc.name));
                }
            }
        }
        Ok(())
    }

    pub fn backoff_ms(&self) -> (i64, i64) {
        (self.pod_initial_backoff_seconds * 1000, self.pod_max_backoff_seconds * 1000)
    }

    /// Builds one framework per profile with the built-in registry and a
    /// host that provides nothing (tests, tools).
    pub fn build_frameworks(&self) -> Result<Vec<Framework>, ConfigError> {
        self.build_frameworks_with(&Registry::builtin(), &PluginHost::default())
    }

    /// Builds one framework per profile: each plugin a profile names is
    /// made once by its factory in `registry`, with the profile's args and
    /// a handle of `host`.
    pub fn build_frameworks_with(&self, registry: &Registry, host: &PluginHost) -> Result<Vec<Framework>, ConfigError> {
        let mut out = Vec::new();
        for (i, p) in self.profiles.iter().enumerate() {
            out.push(build_profile(i, p, registry, host)?);
        }
        // Upstream requires one queue sort for all profiles.
        let sorts: HashSet<&str> = out.iter().filter_map(|f| f.queue_sort.as_ref().map(|q| q.name())).collect();
        if sorts.len() > 1 {
            return Err(ConfigError::Invalid("profiles: all profiles must use the same queueSort plugin".into()));
        }
        Ok(out)
    }
}

/// Upstream `mergePluginSet`: defaults, minus disabled (or all with "*"),
/// custom entries replacing defaults in place, the rest appended.
fn merge_plugin_set(default: &PluginSet, custom: &PluginSet) -> PluginSet {
    let disabled: HashSet<&str> = custom.disabled.iter().chain(default.disabled.iter()).map(|p| p.name.as_str()).collect();
    let mut replaced = HashSet::new();
    let mut enabled = Vec::new();
    if !disabled.contains("*") {
        for d in &default.enabled {
            if disabled.contains(d.name.as_str()) {
                continue;
            }
            if let Some((idx, c)) = custom.enabled.iter().enumerate().find(|(_, c)| c.name == d.name) {
                replaced.insert(idx);
                enabled.push(c.clone());
            } else {
                enabled.push(d.clone());
            }
        }
    }
    for (idx, c) in custom.enabled.iter().enumerate() {
        if !replaced.contains(&idx) {
            enabled.push(c.clone());
        }
    }
    PluginSet { enabled, disabled: custom.disabled.iter().chain(default.disabled.iter()).cloned().collect() }
}

fn build_profile(index: usize, p: &Profile, registry: &Registry, host: &PluginHost) -> Result<Framework, ConfigError> {
    let invalid = |m: String| ConfigError::Invalid(format!("profiles[{index}]: {m}"));
    let profile_name = p.scheduler_name.as_deref().unwrap_or(DEFAULT_SCHEDULER_NAME);
    let handle = host.handle(profile_name);
    let custom = p.plugins.clone().unwrap_or_default();
    let mut plugins = Plugins {
        multi_point: merge_plugin_set(&PluginSet { enabled: default_plugins(), disabled: vec![] }, &custom.multi_point),
        ..Default::default()
    };
    for ep in ExtensionPoint::ALL {
        *plugins.point_mut(ep) = merge_plugin_set(&PluginSet::default(), custom.point(ep));
    }

    let args: BTreeMap<&str, &serde_json::Value> =
        p.plugin_config.iter().filter_map(|c| c.args.as_ref().map(|a| (c.name.as_str(), a))).collect();
    // Instantiate every plugin named anywhere, once.
    let mut instances: BTreeMap<String, Arc<dyn Plugin>> = BTreeMap::new();
    let mut needed: Vec<&str> = plugins.multi_point.enabled.iter().map(|r| r.name.as_str()).collect();
    for ep in ExtensionPoint::ALL {
        needed.extend(plugins.point(ep).enabled.iter().map(|r| r.name.as_str()));
    }
    for name in needed {
        if instances.contains_key(name) {
            continue;
        }
        let Some(factory) = registry.get(name) else {
            return Err(invalid(format!("plugin {name:?} does not exist")));
        };
        let plugin_args = PluginArgs::new(name, args.get(name).copied());
        let inst = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory(&plugin_args, &handle))) {
            Ok(r) => r.map_err(|source| ConfigError::Plugin { profile: index, plugin: name.to_string(), source })?,
            Err(_) => return Err(invalid(format!("plugin {name:?}: its factory panicked"))),
        };
        if inst.name() != name {
            return Err(invalid(format!("plugin registered as {name:?} calls itself {:?}: the two names must be the same", inst.name())));
        }
        if inst.extension_points().is_empty() && !crate::plugins::volume::NAMES.contains(&name) {
            return Err(invalid(format!(
                "plugin {name:?} implements no extension point: put #[berth::plugin] on its `impl Plugin` block and define the methods of the points it takes part in"
            )));
        }
        instances.insert(name.to_string(), inst);
    }
    for pc in &p.plugin_config {
        if !instances.contains_key(&pc.name) && registry.get(&pc.name).is_none() {
            return Err(invalid(format!("pluginConfig: plugin {:?} does not exist", pc.name)));
        }
    }

    // Score weights: the specific score entry wins over multiPoint; 0 means 1.
    let mut weights: BTreeMap<String, i64> = BTreeMap::new();
    for r in &plugins.multi_point.enabled {
        if let Some(w) = r.weight {
            weights.insert(r.name.clone(), w as i64);
        }
    }
    for r in &plugins.score.enabled {
        if let Some(w) = r.weight {
            weights.insert(r.name.clone(), w as i64);
        }
    }
    for (name, w) in &weights {
        if *w < 0 || *w > 100 {
            return Err(invalid(format!("plugins.score: weight of {name:?} must be in the range 0-100, got {w}")));
        }
    }

    let mut fwk = Framework::new(profile_name);
    fwk.handle = handle;
    fwk.percentage_of_nodes_to_score = p.percentage_of_nodes_to_score;
    for ep in ExtensionPoint::ALL {
        let set = plugins.point(ep);
        let specific: Vec<&str> = set.enabled.iter().map(|r| r.name.as_str()).collect();
        let disabled: HashSet<&str> = set.disabled.iter().map(|r| r.name.as_str()).collect();
        for s in &specific {
            if !instances[*s].extension_points().contains(ep) {
                return Err(invalid(format!("plugin {s:?} does not extend {} plugin", ep.config_name())));
            }
        }
        let mut names: Vec<&str> = Vec::new();
        if !disabled.contains("*") {
            let mut overrides: Vec<&str> = Vec::new();
            let mut multi: Vec<&str> = Vec::new();
            for r in &plugins.multi_point.enabled {
                let inst = &instances[&r.name];
                if !inst.extension_points().contains(ep) || disabled.contains(r.name.as_str()) {
                    continue;
                }
                if specific.contains(&r.name.as_str()) {
                    overrides.push(r.name.as_str());
                    continue;
                }
                if multi.contains(&r.name.as_str()) {
                    return Err(invalid(format!("plugin {:?} already registered as {:?}", r.name, ep.config_name())));
                }
                multi.push(r.name.as_str());
            }
            for s in &specific {
                if overrides.contains(s) {
                    names.push(s);
                }
            }
            names.extend(multi.iter().copied());
            names.extend(specific.iter().filter(|s| !overrides.contains(s)).copied());
        } else {
            names.extend(specific.iter().copied());
        }
        let mut uniq = HashSet::new();
        for n in &names {
            if !uniq.insert(*n) {
                return Err(invalid(format!("plugin {n:?} already registered as {:?}", ep.config_name())));
            }
        }
        let list: Vec<Arc<dyn Plugin>> = names.iter().map(|n| instances[*n].clone()).collect();
        match ep {
            ExtensionPoint::QueueSort => {
                if list.len() > 1 {
                    return Err(invalid("only one queueSort plugin can be enabled".into()));
                }
                fwk.queue_sort = list.into_iter().next();
            }
            ExtensionPoint::PreEnqueue => fwk.pre_enqueue = list,
            ExtensionPoint::PreFilter => fwk.pre_filter = list,
            ExtensionPoint::Filter => fwk.filter = list,
            ExtensionPoint::PostFilter => fwk.post_filter = list,
            ExtensionPoint::PreScore => fwk.pre_score = list,
            ExtensionPoint::Score => {
                fwk.score = list
                    .into_iter()
                    .map(|pl| {
                        let w = weights.get(pl.name()).copied().filter(|w| *w > 0).unwrap_or(1);
                        WeightedPlugin { plugin: pl, weight: w }
                    })
                    .collect()
            }
            ExtensionPoint::Reserve => fwk.reserve = list,
            ExtensionPoint::Permit => fwk.permit = list,
            ExtensionPoint::PreBind => fwk.pre_bind = list,
            ExtensionPoint::Bind => fwk.bind = list,
            ExtensionPoint::PostBind => fwk.post_bind = list,
        }
    }
    if fwk.queue_sort.is_none() {
        return Err(invalid("no queue sort plugin is enabled".into()));
    }
    if fwk.bind.is_empty() {
        return Err(invalid("at least one bind plugin is needed".into()));
    }
    Ok(fwk)
}

#[cfg(test)]
mod tests;
