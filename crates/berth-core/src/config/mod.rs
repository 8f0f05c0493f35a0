//! `KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1): decoding,
//! upstream defaults and validation here; `profiles.rs` turns profiles into
//! frameworks (the default plugins, multiPoint expansion, weights);
//! `duration.rs` reads Go durations.
//!
//! Decoding is strict (unknown fields are errors), because a typo in a
//! scheduler config should stop the scheduler at start-up, not be ignored.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::framework::{ExtensionPoint, PluginError};

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
    /// The message includes the factory's, once: `error` is deliberately not
    /// an error source, or reporters that print the chain would repeat it.
    #[error("invalid configuration: profiles[{profile}]: plugin {plugin:?}: {error}")]
    Plugin {
        /// Index of the profile in `profiles`.
        profile: usize,
        /// The plugin's name.
        plugin: String,
        /// What the factory said.
        error: PluginError,
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
    /// Kubernetes 1.37: plugins run when a whole pod group did not fit
    /// (DefaultPreemption's workload-aware preemption; DynamicResources).
    #[serde(default)]
    pub pod_group_post_filter: PluginSet,
    /// Kubernetes 1.37, TopologyAwareWorkloadScheduling (alpha): candidate
    /// placements of a group. Berth implements none; only `disabled` is accepted.
    #[serde(default)]
    pub placement_generate: PluginSet,
    /// As `placementGenerate`: scoring placements.
    #[serde(default)]
    pub placement_score: PluginSet,
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
    /// Scheduler extenders, in the order written (see [`extenders`]).
    #[serde(default)]
    pub extenders: Vec<extenders::Extender>,
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
        if !self.client_connection.qps.is_finite() {
            return bad(format!("clientConnection.qps: Invalid value: {}: must be a finite number", self.client_connection.qps));
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
        extenders::validate(&self.extenders).map_err(ConfigError::Invalid)?;
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
        (self.pod_initial_backoff_seconds.saturating_mul(1000), self.pod_max_backoff_seconds.saturating_mul(1000))
    }
}

mod duration;
pub mod extenders;
pub use profiles::{ExtenderConnector, WasmLoader};
mod profiles;
#[cfg(test)]
mod tests;

pub use duration::parse_duration;
pub use profiles::default_plugins;
