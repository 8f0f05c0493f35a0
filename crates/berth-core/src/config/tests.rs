use std::sync::Arc;

use super::*;
use crate::framework::Plugin;

fn cfg(v: serde_json::Value) -> Result<KubeSchedulerConfiguration, ConfigError> {
    KubeSchedulerConfiguration::from_yaml_value(v)
}

fn names(list: &[Arc<dyn Plugin>]) -> Vec<&'static str> {
    list.iter().map(|p| p.name()).collect()
}

#[test]
fn defaults() {
    let c = cfg(serde_json::json!({"apiVersion": API_VERSION, "kind": KIND})).unwrap();
    assert_eq!(c.parallelism, 16);
    assert_eq!(c.backoff_ms(), (1000, 10_000));
    assert_eq!(c.client_connection.qps, 50.0);
    assert_eq!(c.client_connection.burst, 100);
    assert!(c.leader_election.leader_elect);
    assert_eq!(c.leader_election.resource_name, "berth");
    assert_eq!(c.profiles.len(), 1);
    assert_eq!(c.profiles[0].scheduler_name.as_deref(), Some(DEFAULT_SCHEDULER_NAME));
}

#[test]
fn default_profile_plugins_and_weights() {
    let c = cfg(serde_json::json!({})).unwrap();
    let f = &c.build_frameworks().unwrap()[0];
    assert_eq!(f.queue_sort.as_ref().unwrap().name(), "PrioritySort");
    assert_eq!(names(&f.pre_enqueue), ["SchedulingGates", "DynamicResources", "GangScheduling"]);
    assert_eq!(
        names(&f.filter),
        [
            "NodeName",
            "NodeUnschedulable",
            "TaintToleration",
            "NodeAffinity",
            "NodePorts",
            "NodeResourcesFit",
            "VolumeRestrictions",
            "NodeVolumeLimits",
            "VolumeBinding",
            "VolumeZone",
            "PodTopologySpread",
            "InterPodAffinity",
            "DynamicResources",
            "NodeDeclaredFeatures"
        ]
    );
    let scores: Vec<(&str, i64)> = f.score.iter().map(|w| (w.plugin.name(), w.weight)).collect();
    assert_eq!(
        scores,
        [
            ("TaintToleration", 3),
            ("NodeAffinity", 2),
            ("NodeResourcesFit", 1),
            ("PodTopologySpread", 2),
            ("InterPodAffinity", 2),
            ("DynamicResources", 2),
            ("NodeResourcesBalancedAllocation", 1),
            ("ImageLocality", 1)
        ]
    );
    // Deallocating an idle claim comes before evicting a pod (upstream's order).
    assert_eq!(names(&f.post_filter), ["DynamicResources", "DefaultPreemption"]);
    assert_eq!(names(&f.bind), ["DefaultBinder"]);
}

#[test]
fn enable_disable_and_reweight() {
    let c = cfg(serde_json::json!({
        "profiles": [{
            "schedulerName": "bin-packer",
            "plugins": {
                "score": {
                    "disabled": [{"name": "NodeResourcesBalancedAllocation"}, {"name": "ImageLocality"}],
                    "enabled": [{"name": "NodeResourcesFit", "weight": 5}]
                },
                "filter": {"disabled": [{"name": "NodePorts"}]}
            },
            "pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}]
        }, {
            "schedulerName": "no-scores",
            "plugins": {"score": {"disabled": [{"name": "*"}]}}
        }]
    }))
    .unwrap();
    let fs = c.build_frameworks().unwrap();
    let scores: Vec<(&str, i64)> = fs[0].score.iter().map(|w| (w.plugin.name(), w.weight)).collect();
    assert_eq!(
        scores,
        [
            ("NodeResourcesFit", 5),
            ("TaintToleration", 3),
            ("NodeAffinity", 2),
            ("PodTopologySpread", 2),
            ("InterPodAffinity", 2),
            ("DynamicResources", 2)
        ]
    );
    assert!(!names(&fs[0].filter).contains(&"NodePorts"));
    assert!(fs[1].score.is_empty());
    assert_eq!(fs[1].profile_name, "no-scores");
}

#[test]
fn rejects_bad_config() {
    let table = vec![
        (serde_json::json!({"bogusField": 1}), "unknown field"),
        (serde_json::json!({"percentageOfNodesToScore": 101}), "percentageOfNodesToScore"),
        (serde_json::json!({"podInitialBackoffSeconds": 0}), "podInitialBackoffSeconds"),
        (serde_json::json!({"podInitialBackoffSeconds": 5, "podMaxBackoffSeconds": 2}), "podMaxBackoffSeconds"),
        (serde_json::json!({"apiVersion": "kubescheduler.config.k8s.io/v1beta3"}), "apiVersion"),
        (serde_json::json!({"profiles": [{"schedulerName": "a"}, {"schedulerName": "a"}]}), "Duplicate value"),
        (serde_json::json!({"leaderElection": {"leaseDuration": "5s", "renewDeadline": "10s"}}), "leaseDuration"),
        (serde_json::json!({"leaderElection": {"leaseDuration": "soon"}}), "invalid duration"),
        (serde_json::json!({"parallelism": 0}), "parallelism"),
    ];
    for (v, want) in table {
        let e = cfg(v.clone()).unwrap_err().to_string();
        assert!(e.contains(want), "{v}: {e}");
    }
    let build_errors = vec![
        (serde_json::json!({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "NoSuchPlugin"}]}}}]}), "does not exist"),
        (serde_json::json!({"profiles": [{"pluginConfig": [{"name": "NodeAffinity", "args": {"bogus": true}}]}]}), "unknown field"),
        (serde_json::json!({"profiles": [{"plugins": {"bind": {"disabled": [{"name": "*"}]}}}]}), "bind plugin"),
        (serde_json::json!({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "PrioritySort"}]}}}]}), "does not extend"),
    ];
    for (v, want) in build_errors {
        let e = cfg(v.clone()).and_then(|c| c.build_frameworks().map(|_| ())).unwrap_err().to_string();
        assert!(e.contains(want), "{v}: {e}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("15s").unwrap().as_secs(), 15);
    assert_eq!(parse_duration("1m30s").unwrap().as_secs(), 90);
    assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("").is_err());
    // Longer than Go's int64 nanoseconds: an error, not a panic in Duration.
    let huge = parse_duration("99999999999999999h").unwrap_err();
    assert!(huge.contains("longest Go allows"), "{huge}");
    assert!(parse_duration(&format!("{}s", "9".repeat(400))).is_err());
    assert_eq!(parse_duration("2562047h").unwrap().as_secs(), 2562047 * 3600, "within Go's range");
}

#[test]
fn a_qps_that_is_not_a_number_is_refused_and_a_huge_backoff_saturates() {
    // JSON cannot hold these; a configuration built in code can.
    for qps in [f32::NAN, f32::INFINITY] {
        let mut c = KubeSchedulerConfiguration::default();
        c.client_connection.qps = qps;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("clientConnection.qps") && e.contains("finite"), "{e}");
    }
    let c = KubeSchedulerConfiguration::from_yaml_value(
        serde_json::json!({"podInitialBackoffSeconds": i64::MAX, "podMaxBackoffSeconds": i64::MAX}),
    )
    .unwrap();
    assert_eq!(c.backoff_ms(), (i64::MAX, i64::MAX));
}

/// Kubernetes 1.37's new points: podGroupPostFilter decides whether a gang
/// may preempt; the placement points, which Berth does not implement, may
/// only be disabled.
#[test]
fn pod_group_post_filter_and_placement_points() {
    let build = |plugins: serde_json::Value| {
        cfg(serde_json::json!({"profiles": [{"schedulerName": "s", "plugins": plugins}]})).and_then(|c| c.build_frameworks())
    };
    assert!(build(serde_json::json!({})).unwrap()[0].group_preemption, "on by default, with DefaultPreemption in multiPoint");
    let off = build(serde_json::json!({"podGroupPostFilter": {"disabled": [{"name": "DefaultPreemption"}]}})).unwrap();
    assert!(!off[0].group_preemption);
    assert!(!build(serde_json::json!({"podGroupPostFilter": {"disabled": [{"name": "*"}]}})).unwrap()[0].group_preemption);
    let back = build(serde_json::json!({"podGroupPostFilter": {"enabled": [{"name": "DefaultPreemption"}], "disabled": [{"name": "*"}]}}));
    assert!(back.unwrap()[0].group_preemption);
    let err = build(serde_json::json!({"podGroupPostFilter": {"enabled": [{"name": "NodeResourcesFit"}]}})).err().unwrap();
    assert!(err.to_string().contains("does not extend podGroupPostFilter plugin"), "{err}");
    assert!(build(serde_json::json!({"placementGenerate": {"disabled": [{"name": "*"}]}})).is_ok());
    let err = build(serde_json::json!({"placementScore": {"enabled": [{"name": "PodGroupPodsCount"}]}})).err().unwrap();
    assert!(err.to_string().contains("plugins.placementScore: plugin \"PodGroupPodsCount\": Berth does not implement"), "{err}");
}

/// What a newcomer to the plugin API runs into, said plainly: a missing
/// `#[plugin]`, args a factory never reads, a misspelt name.
mod newcomer {
    use super::*;
    use crate::framework::{Handle, Plugin, PluginArgs, PluginHost, Registry};

    struct Bare;
    // No #[plugin]: the trait's default list (0).
    impl Plugin for Bare {
        fn name(&self) -> &'static str {
            "Bare"
        }
    }

    struct Empty;
    #[crate::plugin]
    impl Plugin for Empty {
        fn name(&self) -> &'static str {
            "Empty"
        }
    }

    struct Lax;
    #[crate::plugin]
    impl Plugin for Lax {
        fn name(&self) -> &'static str {
            "Lax"
        }
        fn filter(
            &self,
            _: &crate::framework::CycleState,
            _: &crate::framework::PodInfo,
            _: &crate::cache::NodeInfo,
        ) -> crate::framework::Status {
            crate::framework::Status::success()
        }
    }

    fn build(plugin: &str, args: Option<serde_json::Value>) -> Result<(), String> {
        let mut r = Registry::builtin();
        r.register("Bare", |_: &PluginArgs, _: &Handle| Ok(Bare)).unwrap();
        r.register("Empty", |_: &PluginArgs, _: &Handle| Ok(Empty)).unwrap();
        r.register("Lax", |_: &PluginArgs, _: &Handle| Ok(Lax)).unwrap();
        let mut profile = serde_json::json!({"plugins": {"multiPoint": {"enabled": [{"name": plugin}]}}});
        if let Some(a) = args {
            profile["pluginConfig"] = serde_json::json!([{"name": plugin, "args": a}]);
        }
        let c = cfg(serde_json::json!({"profiles": [profile]})).map_err(|e| e.to_string())?;
        c.build_frameworks_with(&r, &PluginHost::default()).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_plugin_without_the_attribute_is_told_to_add_it() {
        let e = build("Bare", None).unwrap_err();
        assert!(e.contains("plugin \"Bare\": its `impl Plugin` block lacks #[berth::plugin]"), "{e}");
        let e = build("Empty", None).unwrap_err();
        assert!(e.contains("plugin \"Empty\" implements no extension point: define the methods"), "{e}");
    }

    #[test]
    fn args_a_factory_never_reads_are_refused() {
        let e = build("Lax", Some(serde_json::json!({"limit": 3}))).unwrap_err();
        assert!(e.contains("pluginConfig: plugin \"Lax\" takes no args (its factory never reads them)"), "{e}");
        // The type fields alone are not args; nor are no args.
        build("Lax", Some(serde_json::json!({"apiVersion": "x/v1", "kind": "LaxArgs"}))).unwrap();
        build("Lax", None).unwrap();
    }

    #[test]
    fn a_misspelt_plugin_name_gets_a_suggestion() {
        let e = build("NodeAfinity", None).unwrap_err();
        assert!(e.contains("plugin \"NodeAfinity\" does not exist; did you mean \"NodeAffinity\"?"), "{e}");
        let e = build("Completely", None).unwrap_err();
        assert!(e.ends_with("plugin \"Completely\" does not exist"), "no far-fetched guess: {e}");
    }
}
