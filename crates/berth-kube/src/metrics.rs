//! Prometheus metrics under kube-scheduler's names, labels and buckets
//! (1.34), so existing dashboards and alerts work unchanged.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use berth_core::driver::{AttemptResult, DriverObserver};
use berth_core::framework::{Code, ExtensionPoint, Observer};
use berth_core::queue::QueueCounts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// `scheduled`, `unschedulable` or `error`.
    pub result: String,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    /// `active`, `backoff`, `unschedulable` or `gated`.
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptsLabel {
    /// `1` … `14`, then `15+`.
    pub attempts: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IncomingLabels {
    pub queue: String,
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: &'static str,
    /// `PreFilter`, `Filter`, `Score`, ...
    pub extension_point: &'static str,
    /// The status code: `Success`, `Unschedulable`, `Error`, ...
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupResultLabel {
    /// `scheduled`, `unschedulable`, `waiting_on_preemption` or `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    /// `queue_full` (too many waiting), `unavailable` (the API server did
    /// not take it after retries) or `rejected` (refused, e.g. its namespace is gone).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    /// The watched resource: `nodes`, `pods`, ..., or a plugin's `group/kind`.
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    /// The cache operation that failed, and what the engine was doing:
    /// `add_pod (bound pod added)`, `remove_pod (pod deleted)`, ...
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabel {
    /// `nodes`, `pods` or `assumed_pods`.
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The HTTP status (`200`, `409`, ...), or `<error>` when no answer came.
    pub code: String,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The API server's host and port.
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    /// The lease's name (`leaderElection.resourceName`).
    pub name: String,
}

/// Upstream's bucket sets.
fn buckets_a() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 15)
}
fn buckets_d() -> impl Iterator<Item = f64> {
    exponential_buckets(0.01, 2.0, 20)
}

pub struct Metrics {
    registry: Registry,
    pub schedule_attempts: Family<AttemptLabels, Counter>,
    pub attempt_duration: Family<AttemptLabels, Histogram>,
    pub algorithm_duration: Histogram,
    pub pending_pods: Family<QueueLabel, Gauge>,
    pub preemption_attempts: Counter,
    pub preemption_victims: Histogram,
    pub sli_duration: Family<AttemptsLabel, Histogram>,
    pub pod_scheduling_attempts: Histogram,
    pub queue_incoming: Family<IncomingLabels, Counter>,
    pub cache_size: Family<CacheLabel, Gauge>,
    pub plugin_duration: Family<PluginLabels, Histogram>,
    /// Berth's own (no kube-scheduler equivalent): events never written.
    pub events_dropped: Family<DropLabel, Counter>,
    pub podgroup_attempts: Family<GroupResultLabel, Counter>,
    /// Berth's own: complete lists of a watched resource (the first, then
    /// one per re-list).
    pub watch_lists: Family<ResourceLabel, Counter>,
    /// Berth's own: cache operations that failed where none should (each
    /// also logged as an error).
    pub cache_errors: Family<OperationLabel, Counter>,
    /// client-go's: requests to the API server, by status, method and host.
    pub rest_client_requests: Family<RequestLabels, Counter>,
    /// client-go's: 1 while this instance leads (always, without leader
    /// election), else 0.
    pub leader_status: Family<NameLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let schedule_attempts = Family::<AttemptLabels, Counter>::default();
        // prometheus-client adds the `_total` suffix to counters.
        registry.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem",
            schedule_attempts.clone(),
        );
        let attempt_duration = Family::<AttemptLabels, Histogram>::new_with_constructor(|| Histogram::new(buckets_a()));
        registry.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            attempt_duration.clone(),
        );
        let algorithm_duration = Histogram::new(buckets_a());
        registry.register(
            "scheduler_scheduling_algorithm_duration_seconds",
            "Scheduling algorithm latency in seconds",
            algorithm_duration.clone(),
        );
        let pending_pods = Family::<QueueLabel, Gauge>::default();
        registry.register(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated",
            pending_pods.clone(),
        );
        let preemption_attempts = Counter::default();
        registry.register(
            "scheduler_preemption_attempts",
            "Total preemption attempts in the cluster till now",
            preemption_attempts.clone(),
        );
        let preemption_victims = Histogram::new(exponential_buckets(1.0, 2.0, 7));
        registry.register("scheduler_preemption_victims", "Number of selected preemption victims", preemption_victims.clone());
        let sli_duration = Family::<AttemptsLabel, Histogram>::new_with_constructor(|| Histogram::new(buckets_d()));
        registry.register(
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue and might involve multiple scheduling attempts",
            sli_duration.clone(),
        );
        let pod_scheduling_attempts = Histogram::new(exponential_buckets(1.0, 2.0, 5));
        registry.register(
            "scheduler_pod_scheduling_attempts",
            "Number of attempts to successfully schedule a pod",
            pod_scheduling_attempts.clone(),
        );
        let queue_incoming = Family::<IncomingLabels, Counter>::default();
        registry.register(
            "scheduler_queue_incoming_pods",
            "Number of pods added to scheduling queues by event and queue type",
            queue_incoming.clone(),
        );
        let cache_size = Family::<CacheLabel, Gauge>::default();
        registry.register(
            "scheduler_cache_size",
            "Number of nodes, pods, and assumed (bound) pods in the scheduler cache",
            cache_size.clone(),
        );
        // Start with 0.01ms; a small factor (1.5), as upstream, since plugin
        // latency is very sensitive.
        let plugin_duration =
            Family::<PluginLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.00001, 1.5, 20)));
        registry.register(
            "scheduler_plugin_execution_duration_seconds",
            "Duration for running a plugin at a specific extension point",
            plugin_duration.clone(),
        );
        let events_dropped = Family::<DropLabel, Counter>::default();
        registry.register(
            "berth_events_dropped",
            "Events (Scheduled, FailedScheduling, Preempted, plugins') that were never written, by the reason: 'queue_full' when too many waited, 'unavailable' when the API server did not take them after retries, 'rejected' when it refused them",
            events_dropped.clone(),
        );
        let podgroup_attempts = Family::<GroupResultLabel, Counter>::default();
        registry.register(
            "scheduler_podgroup_schedule_attempts",
            "Number of attempts to schedule pod groups, by the result. 'waiting_on_preemption' means the group's preemption is under way",
            podgroup_attempts.clone(),
        );
        let watch_lists = Family::<ResourceLabel, Counter>::default();
        registry.register(
            "berth_watch_lists",
            "Complete lists of a watched resource: one when watching starts, then one per re-list, after a watch expired (410 Gone) or could not resume",
            watch_lists.clone(),
        );
        let cache_errors = Family::<OperationLabel, Counter>::default();
        registry.register(
            "berth_cache_errors",
            "Cache operations that failed where none should have (the events fed to the scheduler disagree with its cache), by operation; each is also logged",
            cache_errors.clone(),
        );
        let rest_client_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "rest_client_requests",
            "Number of HTTP requests, partitioned by status code, method, and host",
            rest_client_requests.clone(),
        );
        let leader_status = Family::<NameLabel, Gauge>::default();
        registry.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name",
            leader_status.clone(),
        );
        Metrics {
            rest_client_requests,
            leader_status,
            cache_errors,
            watch_lists,
            podgroup_attempts,
            events_dropped,
            plugin_duration,
            registry,
            schedule_attempts,
            attempt_duration,
            algorithm_duration,
            pending_pods,
            preemption_attempts,
            preemption_victims,
            sli_duration,
            pod_scheduling_attempts,
            queue_incoming,
            cache_size,
        }
    }

    /// One scheduling attempt finished with `result` after `seconds`.
    pub fn observe_attempt(&self, result: &str, profile: &str, seconds: f64) {
        let l = AttemptLabels { result: result.into(), profile: profile.into() };
        self.schedule_attempts.get_or_create(&l).inc();
        self.attempt_duration.get_or_create(&l).observe(seconds);
    }

    /// A pod was bound after `attempts` attempts, `seconds` after it first
    /// entered the queue.
    pub fn observe_scheduled(&self, attempts: u32, seconds: f64) {
        let label = if attempts >= 15 { "15+".to_string() } else { attempts.to_string() };
        self.sli_duration.get_or_create(&AttemptsLabel { attempts: label }).observe(seconds);
        self.pod_scheduling_attempts.observe(attempts as f64);
    }

    pub fn set_queue(&self, c: &QueueCounts) {
        for (q, n) in [("active", c.active), ("backoff", c.backoff), ("unschedulable", c.unschedulable), ("gated", c.gated)] {
            self.pending_pods.get_or_create(&QueueLabel { queue: q.into() }).set(n as i64);
        }
    }

    /// Whether this instance leads the lease `name`.
    pub fn set_leading(&self, name: &str, leading: bool) {
        self.leader_status.get_or_create(&NameLabel { name: name.into() }).set(leading as i64);
    }

    /// One plugin call (sampled cycles only, as upstream).
    pub fn observe_plugin(&self, plugin: &'static str, point: ExtensionPoint, code: Code, seconds: f64) {
        let l = PluginLabels { plugin, extension_point: point.label(), status: code.as_str() };
        self.plugin_duration.get_or_create(&l).observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The framework's measurements (plugin calls) as metrics; panics logged.
impl Observer for Metrics {
    fn plugin_duration(&self, plugin: &'static str, point: ExtensionPoint, code: Code, seconds: f64) {
        self.observe_plugin(plugin, point, code, seconds);
    }

    fn plugin_panicked(&self, plugin: &'static str, point: ExtensionPoint, message: &str) {
        tracing::error!(plugin, extension_point = point.label(), message, "plugin panicked; the pod's attempt failed");
    }

    fn extender_skipped(&self, extender: &str, call: &'static str, error: &berth_core::framework::ExtenderError) {
        tracing::warn!(extender, call, %error, "extender failed; going on without it");
    }
}

/// The driver's measurements as kube-scheduler's metrics.
impl DriverObserver for Metrics {
    fn attempt(&self, result: AttemptResult, profile: &str, seconds: f64) {
        self.observe_attempt(result.as_str(), profile, seconds);
    }

    fn scheduled(&self, attempts: u32, seconds: f64) {
        self.observe_scheduled(attempts, seconds);
    }

    fn preemption(&self, victims: usize) {
        self.preemption_attempts.inc();
        self.preemption_victims.observe(victims as f64);
    }

    fn queue(&self, counts: &QueueCounts) {
        self.set_queue(counts);
    }

    fn cache(&self, nodes: usize, pods: usize, assumed: usize) {
        for (t, n) in [("nodes", nodes), ("pods", pods), ("assumed_pods", assumed)] {
            self.cache_size.get_or_create(&CacheLabel { r#type: t.into() }).set(n as i64);
        }
    }

    fn cache_error(&self, incident: &berth_core::engine::CacheIncident) {
        tracing::error!(operation = incident.operation, error = %incident.error, "scheduler cache operation failed");
        self.cache_errors.get_or_create(&OperationLabel { operation: incident.operation }).inc();
    }

    fn group_attempt(&self, result: berth_core::engine::GroupAttempt) {
        self.podgroup_attempts.get_or_create(&GroupResultLabel { result: result.as_str() }).inc();
    }

    fn algorithm(&self, seconds: f64) {
        self.algorithm_duration.observe(seconds);
    }

    fn incoming(&self, queue: &str, event: &str, count: u64) {
        self.queue_incoming.get_or_create(&IncomingLabels { queue: queue.into(), event: event.into() }).inc_by(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metrics with a sample in every family.
    fn sampled() -> Metrics {
        let m = Metrics::new();
        m.observe_attempt("scheduled", "default-scheduler", 0.003);
        m.observe_attempt("unschedulable", "default-scheduler", 0.001);
        m.observe_scheduled(1, 0.5);
        m.observe_scheduled(20, 3.0);
        m.set_queue(&QueueCounts { active: 3, backoff: 1, unschedulable: 2, gated: 0 });
        m.preemption_attempts.inc();
        m.preemption_victims.observe(2.0);
        m.observe_plugin("NodePool", ExtensionPoint::Filter, Code::Unschedulable, 0.00002);
        m.events_dropped.get_or_create(&DropLabel { reason: "unavailable" }).inc_by(2);
        m.group_attempt(berth_core::engine::GroupAttempt::WaitingOnPreemption);
        m.cache(5, 40, 3);
        m.watch_lists.get_or_create(&ResourceLabel { resource: "pods".into() }).inc();
        m.cache_error(&berth_core::engine::CacheIncident {
            operation: "add_pod (bound pod added)",
            error: berth_core::cache::CacheError::PodExists("default/p".into()),
        });
        m.algorithm(0.002);
        m.incoming("active", "UnscheduledPodAdd", 1);
        let request = |code: &str| RequestLabels { code: code.into(), method: "POST".into(), host: "10.0.0.1:6443".into() };
        m.rest_client_requests.get_or_create(&request("201")).inc_by(3);
        m.rest_client_requests.get_or_create(&request("<error>")).inc();
        m.set_leading("berth", true);
        m
    }

    #[test]
    fn upstream_names_and_labels() {
        let text = sampled().render();
        for want in [
            r#"scheduler_schedule_attempts_total{result="scheduled",profile="default-scheduler"} 1"#,
            r#"scheduler_schedule_attempts_total{result="unschedulable",profile="default-scheduler"} 1"#,
            r#"scheduler_scheduling_attempt_duration_seconds_bucket{le="0.004",result="scheduled",profile="default-scheduler"} 1"#,
            r#"scheduler_pending_pods{queue="active"} 3"#,
            r#"scheduler_pending_pods{queue="unschedulable"} 2"#,
            r#"scheduler_pod_scheduling_sli_duration_seconds_count{attempts="15+"} 1"#,
            "scheduler_preemption_attempts_total 1",
            r#"scheduler_preemption_victims_bucket{le="2.0"} 1"#,
            r#"scheduler_pod_scheduling_attempts_bucket{le="16.0"} 1"#,
            "scheduler_pod_scheduling_attempts_count 2",
            r#"berth_events_dropped_total{reason="unavailable"} 2"#,
            r#"scheduler_podgroup_schedule_attempts_total{result="waiting_on_preemption"} 1"#,
            r#"scheduler_cache_size{type="nodes"} 5"#,
            r#"scheduler_cache_size{type="pods"} 40"#,
            r#"scheduler_cache_size{type="assumed_pods"} 3"#,
            r#"berth_watch_lists_total{resource="pods"} 1"#,
            r#"berth_cache_errors_total{operation="add_pod (bound pod added)"} 1"#,
            r#"scheduler_plugin_execution_duration_seconds_bucket{le="0.0000225",plugin="NodePool",extension_point="Filter",status="Unschedulable"} 1"#,
            r#"scheduler_plugin_execution_duration_seconds_count{plugin="NodePool",extension_point="Filter",status="Unschedulable"} 1"#,
            r#"rest_client_requests_total{code="201",method="POST",host="10.0.0.1:6443"} 3"#,
            r#"rest_client_requests_total{code="<error>",method="POST",host="10.0.0.1:6443"} 1"#,
            r#"leader_election_master_status{name="berth"} 1"#,
        ] {
            assert!(text.contains(want), "missing {want} in:\n{text}");
        }
        assert!(!text.contains(".."), "help texts end with a single period:\n{text}");
    }

    /// The series Berth exports, each with its label names; the target
    /// labels Prometheus adds (`job`, `instance`) and its `up` series too.
    fn exported() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        let mut series = std::collections::BTreeMap::new();
        series.insert("up".to_string(), std::collections::BTreeSet::new());
        for line in sampled().render().lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let name_end = line.find(['{', ' ']).unwrap();
            let labels: std::collections::BTreeSet<String> = line[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.split_once('}'))
                .map(|(l, _)| l.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, _)| k.to_string()).collect())
                .unwrap_or_default();
            series.entry(line[..name_end].to_string()).or_insert_with(std::collections::BTreeSet::new).extend(labels);
        }
        for labels in series.values_mut() {
            labels.extend(["job".to_string(), "instance".to_string()]);
        }
        series
    }

    /// What a PromQL expression reads that Berth does not export: unknown
    /// series, label matchers and groupings on labels those series lack.
    fn unexported(expr: &str, exported: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>) -> Vec<String> {
        use promql_parser::parser::{Expr, LabelModifier, VectorSelector};
        use promql_parser::util::{walk_expr, ExprVisitor};
        struct Reads(Vec<VectorSelector>, Vec<String>);
        impl ExprVisitor for Reads {
            type Error = ();
            fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
                match e {
                    Expr::VectorSelector(v) => self.0.push(v.clone()),
                    Expr::MatrixSelector(m) => self.0.push(m.vs.clone()),
                    Expr::Aggregate(a) => {
                        if let Some(LabelModifier::Include(l) | LabelModifier::Exclude(l)) = &a.modifier {
                            self.1.extend(l.labels.iter().cloned());
                        }
                    }
                    _ => {}
                }
                Ok(true)
            }
        }
        // Grafana's variables, as Grafana fills them in.
        let expr = expr.replace("$__rate_interval", "5m");
        let parsed = match promql_parser::parser::parse(&expr) {
            Ok(p) => p,
            Err(e) => return vec![format!("does not parse: {e}")],
        };
        let mut reads = Reads(Vec::new(), Vec::new());
        walk_expr(&mut reads, &parsed).unwrap();
        let mut wrong = Vec::new();
        let mut all_labels = std::collections::BTreeSet::new();
        for v in &reads.0 {
            let Some(name) = &v.name else {
                wrong.push("a selector without a metric name".to_string());
                continue;
            };
            let Some(labels) = exported.get(name) else {
                wrong.push(format!("{name} is not exported"));
                continue;
            };
            all_labels.extend(labels.iter().cloned());
            for m in v.matchers.matchers.iter().filter(|m| !labels.contains(&m.name)) {
                wrong.push(format!("{name} has no label {}", m.name));
            }
        }
        for l in reads.1.iter().filter(|l| !all_labels.contains(*l)) {
            wrong.push(format!("grouped by {l}, which none of its series has"));
        }
        assert!(!reads.0.is_empty() || !wrong.is_empty(), "{expr} reads no series");
        wrong
    }

    fn files() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/berth/files")
    }

    /// Every query of the Grafana dashboard and every alert reads series
    /// Berth exports, with the labels it gives them.
    #[test]
    fn the_dashboard_and_the_alerts_read_exported_series() {
        let exported = exported();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(files().join("berth-dashboard.json")).unwrap()).unwrap();
        let mut exprs = Vec::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                exprs.push((format!("panel {:?}", panel["title"]), t["expr"].as_str().unwrap().to_string()));
            }
        }
        assert!(exprs.len() >= 20, "the dashboard has {} queries", exprs.len());
        let rules: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(files().join("berth.rules.yaml")).unwrap()).unwrap();
        let mut alerts = 0;
        for group in rules["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                exprs.push((format!("alert {:?}", rule["alert"]), rule["expr"].as_str().unwrap().to_string()));
                alerts += 1;
            }
        }
        assert!(alerts >= 8, "{alerts} alerts");
        let wrong: Vec<String> =
            exprs.iter().flat_map(|(what, e)| unexported(e, &exported).into_iter().map(move |w| format!("{what}: {w}\n  {e}"))).collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        // And the check can fail.
        assert_eq!(unexported("rate(scheduler_e2e_scheduling_duration_seconds_count[5m])", &exported).len(), 1);
        assert_eq!(unexported("sum by (node) (scheduler_pending_pods{queue=\"active\"})", &exported).len(), 1);
        assert_eq!(unexported("scheduler_pending_pods{phase=\"x\"}", &exported).len(), 1);
    }
}
