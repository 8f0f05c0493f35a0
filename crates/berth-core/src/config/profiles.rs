//! Turning profiles into frameworks: upstream's default plugins, the merge
//! of `multiPoint` and per-point sets, score weights, and one instance of
//! each plugin per profile, made by its factory in the registry.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::{ConfigError, KubeSchedulerConfiguration, PluginRef, PluginSet, Plugins, Profile, DEFAULT_SCHEDULER_NAME};
use crate::framework::{ExtensionPoint, Framework, Plugin, PluginArgs, PluginHost, Registry, WeightedPlugin};

/// The default plugins (multiPoint), with their default score weights, in upstream's order.
pub fn default_plugins() -> Vec<PluginRef> {
    let p = |name: &str, weight: Option<i32>| PluginRef { name: name.into(), weight };
    vec![
        p("SchedulingGates", None),
        p("PrioritySort", None),
        p("NodeName", None),
        p("NodeUnschedulable", None),
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
        // Before DefaultPreemption, as upstream: deallocating an idle claim
        // beats evicting a pod. Weight 2 since 1.35.
        p("DynamicResources", Some(2)),
        p("DefaultPreemption", None),
        p("NodeResourcesBalancedAllocation", Some(1)),
        p("ImageLocality", Some(1)),
        p("DefaultBinder", None),
        p("NodeDeclaredFeatures", None),
        // Upstream appends it only with the GenericWorkload gate on (beta,
        // off by default, in 1.37); without that gate the API server drops
        // spec.schedulingGroup, so pods never name a group. Berth lists it
        // always: when a cluster serves PodGroups, their pods are kept
        // pending rather than started piecemeal.
        p("GangScheduling", None),
    ]
}

impl KubeSchedulerConfiguration {
    /// Builds one framework per profile with the built-in registry and a
    /// host that provides nothing (tests, tools).
    pub fn build_frameworks(&self) -> Result<Vec<Framework>, ConfigError> {
        self.build_frameworks_with(&Registry::builtin(), &PluginHost::default())
    }

    /// Builds one framework per profile: each plugin a profile names is
    /// made once by its factory in `registry`, with the profile's args and
    /// a handle of `host`.
    pub fn build_frameworks_with(&self, registry: &Registry, host: &PluginHost) -> Result<Vec<Framework>, ConfigError> {
        // Extenders, shared by every profile, reached the runtime's way.
        let extenders: Vec<Arc<dyn crate::framework::Extender>> = if self.extenders.is_empty() {
            Vec::new()
        } else {
            let Some(connect) = host.handle("").get::<ExtenderConnector>().cloned() else {
                return Err(ConfigError::Invalid(
                    "extenders: this runtime cannot call scheduler extenders over HTTP yet: remove `extenders` from the configuration"
                        .into(),
                ));
            };
            let mut out = Vec::new();
            for e in super::extenders::ordered(&self.extenders) {
                let i = self.extenders.iter().position(|x| std::ptr::eq(x, e)).unwrap_or_default();
                out.push((connect.0)(e).map_err(|why| ConfigError::Invalid(format!("extenders[{i}]: {why}")))?);
            }
            out
        };
        let ignored = super::extenders::ignored_by_scheduler(&self.extenders);
        let mut out = Vec::new();
        for (i, p) in self.profiles.iter().enumerate() {
            let mut fwk = build_profile(i, p, registry, host, &ignored)?;
            fwk.extenders = extenders.clone();
            out.push(fwk);
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

/// The plugins that may serve at podGroupPostFilter (upstream 1.37's two).
const POD_GROUP_POST_FILTER: [&str; 2] = [crate::plugins::volume::DYNAMIC_RESOURCES, crate::plugins::default_preemption::NAME];

/// Whether a profile's podGroupPostFilter runs DefaultPreemption (workload-
/// aware preemption), from multiPoint and the point's own set; refuses the
/// placement points Berth does not implement.
fn group_post_filter(custom: &Plugins, multi_point: &PluginSet) -> Result<bool, String> {
    for (field, set) in [("placementGenerate", &custom.placement_generate), ("placementScore", &custom.placement_score)] {
        if let Some(p) = set.enabled.first() {
            return Err(format!(
                "plugins.{field}: plugin {:?}: Berth does not implement topology-aware placement of pod groups (TopologyAwareWorkloadScheduling) yet",
                p.name
            ));
        }
    }
    let set = &custom.pod_group_post_filter;
    for p in &set.enabled {
        if !POD_GROUP_POST_FILTER.contains(&p.name.as_str()) {
            return Err(format!("plugin {:?} does not extend podGroupPostFilter plugin", p.name));
        }
    }
    let disabled = |n: &str| set.disabled.iter().any(|d| d.name == "*" || d.name == n);
    let from_multi = multi_point.enabled.iter().any(|r| r.name == crate::plugins::default_preemption::NAME);
    let named = set.enabled.iter().any(|r| r.name == crate::plugins::default_preemption::NAME);
    Ok(named || (from_multi && !disabled(crate::plugins::default_preemption::NAME)))
}

/// `; did you mean "X"?` with the registered name closest to a misspelt
/// one, when one is close (as clap suggests subcommands); else nothing.
fn did_you_mean(name: &str, registry: &Registry) -> String {
    let best = registry
        .names()
        .map(|n| (strsim::damerau_levenshtein(&name.to_ascii_lowercase(), &n.to_ascii_lowercase()), n))
        .min_by_key(|(d, n)| (*d, *n));
    match best {
        Some((d, n)) if d <= (name.len() / 3).max(2) => format!("; did you mean {n:?}?"),
        _ => String::new(),
    }
}

/// How a runtime reaches the extenders of the configuration: made into an
/// [`Extender`](crate::framework::Extender) each (a service of the
/// [`PluginHost`]; `berth run` and `berth simulate` call them over HTTP).
#[derive(Clone)]
#[allow(clippy::type_complexity)]
pub struct ExtenderConnector(
    /// Makes one configured extender into something the core can call.
    pub Arc<dyn Fn(&super::extenders::Extender) -> Result<Arc<dyn crate::framework::Extender>, String> + Send + Sync>,
);

impl std::fmt::Debug for ExtenderConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtenderConnector")
    }
}

/// How a runtime loads a plugin whose `pluginConfig` args hold a `wasm`
/// entry (a WebAssembly module): a service of the [`PluginHost`], which
/// `berth run` and `berth simulate` provide. It gets the plugin's name, its
/// whole args (the `wasm` entry and the guest's own) and the profile's
/// handle.
#[derive(Clone)]
#[allow(clippy::type_complexity)]
pub struct WasmLoader(
    /// Loads one plugin.
    pub  Arc<
        dyn Fn(&str, &serde_json::Value, &crate::framework::Handle) -> Result<Arc<dyn Plugin>, crate::framework::PluginError> + Send + Sync,
    >,
);

impl std::fmt::Debug for WasmLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WasmLoader")
    }
}

fn build_profile(
    index: usize,
    p: &Profile,
    registry: &Registry,
    host: &PluginHost,
    ignored_by_extenders: &[String],
) -> Result<Framework, ConfigError> {
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

    let mut args: BTreeMap<&str, &serde_json::Value> =
        p.plugin_config.iter().filter_map(|c| c.args.as_ref().map(|a| (c.name.as_str(), a))).collect();
    // Resources extenders manage with ignoredByScheduler replace
    // NodeResourcesFit's ignoredResources (upstream replaces, not merges).
    let fit_args = (!ignored_by_extenders.is_empty()).then(|| {
        let mut a = args.get(crate::plugins::node_resources::fit::NAME).map_or(serde_json::json!({}), |a| (*a).clone());
        if let Some(m) = a.as_object_mut() {
            m.insert("ignoredResources".into(), serde_json::json!(ignored_by_extenders));
        }
        a
    });
    if let Some(a) = &fit_args {
        args.insert(crate::plugins::node_resources::fit::NAME, a);
    }
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
        let wasm = args.get(name).copied().filter(|a| a.get("wasm").is_some());
        if wasm.is_some() && registry.get(name).is_some() {
            return Err(invalid(format!(
                "pluginConfig: plugin {name:?}: args.wasm names a WebAssembly module, but a plugin of that name is built in: give the module's plugin another name"
            )));
        }
        let loaded;
        let factory = match (registry.get(name), wasm) {
            (Some(f), _) => f,
            (None, Some(spec)) => {
                let Some(loader) = host.handle("").get::<WasmLoader>().cloned() else {
                    return Err(invalid(format!(
                        "pluginConfig: plugin {name:?}: this runtime cannot load WebAssembly plugins (args.wasm)"
                    )));
                };
                let (name, spec) = (name.to_string(), spec.clone());
                loaded = std::sync::Arc::new(move |_: &PluginArgs<'_>, h: &crate::framework::Handle| (loader.0)(&name, &spec, h))
                    as crate::framework::Factory;
                &loaded
            }
            (None, None) => return Err(invalid(format!("plugin {name:?} does not exist{}", did_you_mean(name, registry)))),
        };
        let read = std::cell::Cell::new(false);
        let plugin_args = PluginArgs::new(name, args.get(name).copied()).tracked(&read);
        let inst = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory(&plugin_args, &handle))) {
            Ok(r) => r.map_err(|error| ConfigError::Plugin { profile: index, plugin: name.to_string(), error })?,
            Err(_) => return Err(invalid(format!("plugin {name:?}: its factory panicked"))),
        };
        if inst.name() != name {
            return Err(invalid(format!("plugin registered as {name:?} calls itself {:?}: the two names must be the same", inst.name())));
        }
        // Args a plugin's factory never looked at would be ignored silently:
        // a plugin of the user's (built-in ones keep upstream's leniency) and
        // not a WebAssembly guest (which decodes its own, strictly).
        let given = args.get(name).is_some_and(|a| a.as_object().is_some_and(|o| o.keys().any(|k| k != "apiVersion" && k != "kind")));
        if given && !read.get() && wasm.is_none() && !Registry::builtin().names().any(|n| n == name) {
            return Err(invalid(format!(
                "pluginConfig: plugin {name:?} takes no args (its factory never reads them), but the configuration gives it some: remove them, or decode them in the factory with PluginArgs::decode"
            )));
        }
        if !inst.has_generated_points() {
            return Err(invalid(format!(
                "plugin {name:?}: its `impl Plugin` block lacks #[berth::plugin], which registers the plugin at the extension points whose methods it defines"
            )));
        }
        if inst.extension_points().is_empty() && !crate::plugins::volume::NAMES.contains(&name) {
            return Err(invalid(format!(
                "plugin {name:?} implements no extension point: define the methods of the points it takes part in (filter, score, ...)"
            )));
        }
        instances.insert(name.to_string(), inst);
    }
    if fit_args.is_some() && !instances.contains_key(crate::plugins::node_resources::fit::NAME) {
        return Err(invalid("couldn't build extenders: can't find NodeResourcesFitArgs in plugin config".into()));
    }
    for pc in &p.plugin_config {
        let wasm = pc.args.as_ref().is_some_and(|a| a.get("wasm").is_some());
        if !instances.contains_key(&pc.name) && registry.get(&pc.name).is_none() && !wasm {
            return Err(invalid(format!("pluginConfig: plugin {:?} does not exist{}", pc.name, did_you_mean(&pc.name, registry))));
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
    fwk.group_preemption = group_post_filter(&custom, &plugins.multi_point).map_err(invalid)?;
    if fwk.queue_sort.is_none() {
        return Err(invalid("no queue sort plugin is enabled".into()));
    }
    if fwk.bind.is_empty() {
        return Err(invalid("at least one bind plugin is needed".into()));
    }
    Ok(fwk)
}
