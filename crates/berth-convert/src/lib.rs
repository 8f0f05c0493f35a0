//! # berth-convert
//!
//! The one place where Kubernetes API objects (k8s-openapi types) become
//! Berth's compact model. Conversion happens once per object, at the
//! boundary: quantities are parsed to integers, selectors compiled, requests
//! precomputed. Errors name the object and the field, never panic.
//!
//! Both the simulator (manifests on disk) and the live scheduler (watch
//! events) use these functions, so a pod means the same thing to both.

pub mod manifests;

use std::collections::BTreeMap;

use berth_core::model::{self, LabelSelector, Requirement, SelectorOp};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::policy::v1 as policy;
use k8s_openapi::api::scheduling::v1 as scheduling;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

/// A conversion failure: which object, which field, what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {field}: {message}")]
pub struct ConvertError {
    pub object: String,
    pub field: String,
    pub message: String,
}

fn err(object: &str, field: impl Into<String>, message: impl Into<String>) -> ConvertError {
    ConvertError { object: object.to_string(), field: field.into(), message: message.into() }
}

/// PriorityClasses by name, for resolving `priorityClassName` the way the
/// Priority admission plugin does when a manifest has no `spec.priority`.
#[derive(Default, Clone, Debug)]
pub struct PriorityClasses {
    classes: BTreeMap<String, (i32, Option<String>)>,
    global_default: Option<(i32, Option<String>)>,
}

/// Built-in classes that every cluster has.
const SYSTEM_CLUSTER_CRITICAL: i32 = 2_000_000_000;
const SYSTEM_NODE_CRITICAL: i32 = 2_000_001_000;

impl PriorityClasses {
    pub fn new() -> PriorityClasses {
        let mut p = PriorityClasses::default();
        p.classes.insert("system-cluster-critical".into(), (SYSTEM_CLUSTER_CRITICAL, None));
        p.classes.insert("system-node-critical".into(), (SYSTEM_NODE_CRITICAL, None));
        p
    }

    pub fn add(&mut self, pc: &scheduling::PriorityClass) {
        let name = pc.metadata.name.clone().unwrap_or_default();
        let entry = (pc.value.unwrap_or(0), pc.preemption_policy.clone());
        if pc.global_default == Some(true) {
            self.global_default = Some(entry.clone());
        }
        self.classes.insert(name, entry);
    }

    pub fn remove(&mut self, name: &str) {
        self.classes.remove(name);
    }

    fn resolve(&self, object: &str, spec: &core::PodSpec) -> Result<(i32, Option<String>), ConvertError> {
        if let Some(p) = spec.priority {
            let class_policy = spec.priority_class_name.as_ref().and_then(|n| self.classes.get(n)).and_then(|c| c.1.clone());
            return Ok((p, class_policy));
        }
        match &spec.priority_class_name {
            Some(name) if !name.is_empty() => match self.classes.get(name) {
                Some((v, pol)) => Ok((*v, pol.clone())),
                None => Err(err(object, "spec.priorityClassName", format!("no PriorityClass with name {name} was found"))),
            },
            _ => Ok(self.global_default.clone().unwrap_or((0, None))),
        }
    }
}

fn quantity(object: &str, field: &str, name: &str, q: &ApiQuantity) -> Result<i64, ConvertError> {
    let parsed = model::Quantity::parse(&q.0).map_err(|e| err(object, format!("{field}.{name}"), e.to_string()))?;
    let v = if name == model::resource::CPU { parsed.milli_value() } else { parsed.value() };
    if v < 0 {
        // The API server rejects these; a manifest could still carry one.
        return Err(err(object, format!("{field}.{name}"), format!("Invalid value: {:?}: must be greater than or equal to 0", q.0)));
    }
    Ok(v)
}

/// A resource list (`requests`, `allocatable`, …) as a resource vector.
pub fn resource_list(object: &str, field: &str, list: &BTreeMap<String, ApiQuantity>) -> Result<model::Resource, ConvertError> {
    let mut r = model::Resource::default();
    for (name, q) in list {
        let v = quantity(object, field, name, q)?;
        match name.as_str() {
            model::resource::CPU | model::resource::MEMORY | model::resource::EPHEMERAL_STORAGE | model::resource::PODS => r.set(name, v),
            n if model::resource::is_scalar_resource_name(n) => r.set_scalar(n, v),
            // Other native names (e.g. `storage`) do not take part in scheduling.
            _ => {}
        }
    }
    Ok(r)
}

/// `host_network`: the pod uses the node's network, so the API server
/// defaults each port's `hostPort` to its `containerPort` (manifests read by
/// the simulator have not been through that defaulting).
fn container(object: &str, field: &str, c: &core::Container, host_network: bool) -> Result<model::Container, ConvertError> {
    let res = c.resources.as_ref();
    // API defaulting: a limit without a request means request = limit.
    let mut reqs: BTreeMap<String, ApiQuantity> = res.and_then(|r| r.requests.clone()).unwrap_or_default();
    if let Some(limits) = res.and_then(|r| r.limits.as_ref()) {
        for (k, v) in limits {
            reqs.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let requests = resource_list(object, &format!("{field}.resources.requests"), &reqs)?;
    let mut ports = Vec::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let protocol = model::Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"))
            .ok_or_else(|| err(object, format!("{field}.ports[{i}].protocol"), format!("unsupported value {:?}", p.protocol)))?;
        let host_port = match p.host_port.unwrap_or(0) {
            0 if host_network => p.container_port,
            h => h,
        };
        ports.push(model::ContainerPort {
            host_port,
            container_port: p.container_port,
            protocol,
            host_ip: p.host_ip.clone().unwrap_or_default(),
        });
    }
    Ok(model::Container {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        has_cpu_request: reqs.contains_key(model::resource::CPU),
        has_memory_request: reqs.contains_key(model::resource::MEMORY),
        requests,
        ports,
        restartable: c.restart_policy.as_deref() == Some("Always"),
    })
}

/// A metav1.LabelSelector; `None` selects nothing.
pub fn label_selector(object: &str, field: &str, sel: Option<&meta::LabelSelector>) -> Result<LabelSelector, ConvertError> {
    let Some(sel) = sel else { return Ok(LabelSelector::nothing()) };
    let mut reqs = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push(Requirement::new(k, SelectorOp::In, &[v]));
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let op = match e.operator.as_str() {
            "In" => SelectorOp::In,
            "NotIn" => SelectorOp::NotIn,
            "Exists" => SelectorOp::Exists,
            "DoesNotExist" => SelectorOp::DoesNotExist,
            other => {
                return Err(err(
                    object,
                    format!("{field}.matchExpressions[{i}].operator"),
                    format!("{other:?} is not a valid label selector operator"),
                ))
            }
        };
        reqs.push(Requirement { key: e.key.clone(), op, values: e.values.clone().unwrap_or_default() });
    }
    Ok(LabelSelector { requirements: reqs, nothing: false })
}

fn node_selector_term(object: &str, field: &str, t: &core::NodeSelectorTerm) -> Result<model::NodeSelectorTerm, ConvertError> {
    let conv = |what: &str, list: &Option<Vec<core::NodeSelectorRequirement>>| -> Result<Vec<Requirement>, ConvertError> {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| {
                let op = SelectorOp::parse(&r.operator).ok_or_else(|| {
                    err(object, format!("{field}.{what}[{i}].operator"), format!("{:?} is not a valid node selector operator", r.operator))
                })?;
                Ok(Requirement { key: r.key.clone(), op, values: r.values.clone().unwrap_or_default() })
            })
            .collect()
    };
    Ok(model::NodeSelectorTerm {
        match_expressions: conv("matchExpressions", &t.match_expressions)?,
        match_fields: conv("matchFields", &t.match_fields)?,
    })
}

fn pod_affinity_term(object: &str, field: &str, t: &core::PodAffinityTerm) -> Result<model::PodAffinityTerm, ConvertError> {
    Ok(model::PodAffinityTerm {
        label_selector: label_selector(object, &format!("{field}.labelSelector"), t.label_selector.as_ref())?,
        namespaces: t.namespaces.clone().unwrap_or_default(),
        namespace_selector: match &t.namespace_selector {
            None => None,
            Some(s) => Some(label_selector(object, &format!("{field}.namespaceSelector"), Some(s))?),
        },
        topology_key: t.topology_key.clone(),
        match_label_keys: t.match_label_keys.clone().unwrap_or_default(),
        mismatch_label_keys: t.mismatch_label_keys.clone().unwrap_or_default(),
    })
}

fn pod_affinity(
    object: &str,
    field: &str,
    required: Option<&Vec<core::PodAffinityTerm>>,
    preferred: Option<&Vec<core::WeightedPodAffinityTerm>>,
) -> Result<model::PodAffinity, ConvertError> {
    let mut out = model::PodAffinity::default();
    for (i, t) in required.into_iter().flatten().enumerate() {
        out.required.push(pod_affinity_term(object, &format!("{field}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"), t)?);
    }
    for (i, w) in preferred.into_iter().flatten().enumerate() {
        let f = format!("{field}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
        out.preferred.push(model::WeightedPodAffinityTerm {
            weight: w.weight,
            term: pod_affinity_term(object, &format!("{f}.podAffinityTerm"), &w.pod_affinity_term)?,
        });
    }
    Ok(out)
}

fn affinity(object: &str, a: Option<&core::Affinity>) -> Result<model::Affinity, ConvertError> {
    let mut out = model::Affinity::default();
    let Some(a) = a else { return Ok(out) };
    if let Some(na) = &a.node_affinity {
        let mut m = model::NodeAffinity::default();
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            let mut terms = Vec::new();
            for (i, t) in req.node_selector_terms.iter().enumerate() {
                terms.push(node_selector_term(
                    object,
                    &format!("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]"),
                    t,
                )?);
            }
            m.required = Some(model::NodeSelector { terms });
        }
        for (i, p) in na.preferred_during_scheduling_ignored_during_execution.iter().flatten().enumerate() {
            m.preferred.push(model::PreferredSchedulingTerm {
                weight: p.weight,
                preference: node_selector_term(
                    object,
                    &format!("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference"),
                    &p.preference,
                )?,
            });
        }
        out.node_affinity = Some(m);
    }
    if let Some(pa) = &a.pod_affinity {
        out.pod_affinity = Some(pod_affinity(
            object,
            "spec.affinity.podAffinity",
            pa.required_during_scheduling_ignored_during_execution.as_ref(),
            pa.preferred_during_scheduling_ignored_during_execution.as_ref(),
        )?);
    }
    if let Some(pa) = &a.pod_anti_affinity {
        out.pod_anti_affinity = Some(pod_affinity(
            object,
            "spec.affinity.podAntiAffinity",
            pa.required_during_scheduling_ignored_during_execution.as_ref(),
            pa.preferred_during_scheduling_ignored_during_execution.as_ref(),
        )?);
    }
    Ok(out)
}

fn inclusion_policy(object: &str, field: &str, v: &Option<String>) -> Result<Option<model::NodeInclusionPolicy>, ConvertError> {
    match v.as_deref() {
        None => Ok(None),
        Some("Honor") => Ok(Some(model::NodeInclusionPolicy::Honor)),
        Some("Ignore") => Ok(Some(model::NodeInclusionPolicy::Ignore)),
        Some(o) => Err(err(object, field, format!("unsupported value {o:?}: supported values: \"Honor\", \"Ignore\""))),
    }
}

fn toleration(object: &str, i: usize, t: &core::Toleration) -> Result<model::Toleration, ConvertError> {
    let operator = match t.operator.as_deref() {
        None | Some("Equal") | Some("") => model::TolerationOp::Equal,
        Some("Exists") => model::TolerationOp::Exists,
        Some(o) => return Err(err(object, format!("spec.tolerations[{i}].operator"), format!("unsupported value {o:?}"))),
    };
    let effect = match t.effect.as_deref() {
        None | Some("") => None,
        Some(e) => Some(
            model::TaintEffect::parse(e)
                .ok_or_else(|| err(object, format!("spec.tolerations[{i}].effect"), format!("unsupported value {e:?}")))?,
        ),
    };
    Ok(model::Toleration {
        key: t.key.clone().unwrap_or_default(),
        operator,
        value: t.value.clone().unwrap_or_default(),
        effect,
        toleration_seconds: t.toleration_seconds,
    })
}

fn object_name(kind: &str, m: &meta::ObjectMeta) -> String {
    match &m.namespace {
        Some(ns) => format!("{kind} {ns}/{}", m.name.as_deref().unwrap_or("")),
        None => format!("{kind} {}", m.name.as_deref().unwrap_or("")),
    }
}

/// Converts a Pod. Missing namespace means `default`; missing schedulerName
/// means `default-scheduler`, as the API server would default them.
pub fn pod(p: &core::Pod, classes: &PriorityClasses) -> Result<model::Pod, ConvertError> {
    let m = &p.metadata;
    let namespace = m.namespace.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "default".into());
    let name = m.name.clone().unwrap_or_default();
    let object = format!("Pod {namespace}/{name}");
    if name.is_empty() {
        return Err(err(&object, "metadata.name", "name is required"));
    }
    let spec = p.spec.as_ref().ok_or_else(|| err(&object, "spec", "spec is required"))?;
    let (priority, class_policy) = classes.resolve(&object, spec)?;
    let preemption_policy = match spec.preemption_policy.as_deref().or(class_policy.as_deref()) {
        Some("Never") => model::PreemptionPolicy::Never,
        None | Some("PreemptLowerPriority") => model::PreemptionPolicy::PreemptLowerPriority,
        Some(o) => return Err(err(&object, "spec.preemptionPolicy", format!("unsupported value {o:?}"))),
    };
    let host_network = spec.host_network == Some(true);
    let mut containers = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        containers.push(container(&object, &format!("spec.containers[{i}]"), c, host_network)?);
    }
    let mut init_containers = Vec::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        init_containers.push(container(&object, &format!("spec.initContainers[{i}]"), c, host_network)?);
    }
    let overhead = match &spec.overhead {
        Some(o) => Some(resource_list(&object, "spec.overhead", o)?),
        None => None,
    };
    let pod_level_requests = match spec.resources.as_ref() {
        Some(r) => {
            let mut reqs = r.requests.clone().unwrap_or_default();
            for (k, v) in r.limits.iter().flatten() {
                reqs.entry(k.clone()).or_insert_with(|| v.clone());
            }
            if reqs.is_empty() {
                None
            } else {
                Some(resource_list(&object, "spec.resources.requests", &reqs)?)
            }
        }
        None => None,
    };
    let mut tolerations = Vec::new();
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        tolerations.push(toleration(&object, i, t)?);
    }
    let mut spread = Vec::new();
    for (i, c) in spec.topology_spread_constraints.iter().flatten().enumerate() {
        let f = format!("spec.topologySpreadConstraints[{i}]");
        let when = match c.when_unsatisfiable.as_str() {
            "DoNotSchedule" => model::UnsatisfiableConstraintAction::DoNotSchedule,
            "ScheduleAnyway" => model::UnsatisfiableConstraintAction::ScheduleAnyway,
            o => return Err(err(&object, format!("{f}.whenUnsatisfiable"), format!("unsupported value {o:?}"))),
        };
        if c.max_skew <= 0 {
            return Err(err(&object, format!("{f}.maxSkew"), format!("{} must be greater than zero", c.max_skew)));
        }
        spread.push(model::TopologySpreadConstraint {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            when_unsatisfiable: when,
            label_selector: label_selector(&object, &format!("{f}.labelSelector"), c.label_selector.as_ref())?,
            min_domains: c.min_domains,
            node_affinity_policy: inclusion_policy(&object, &format!("{f}.nodeAffinityPolicy"), &c.node_affinity_policy)?,
            node_taints_policy: inclusion_policy(&object, &format!("{f}.nodeTaintsPolicy"), &c.node_taints_policy)?,
            match_label_keys: c.match_label_keys.clone().unwrap_or_default(),
        });
    }
    let owner_references = m
        .owner_references
        .iter()
        .flatten()
        .map(|o| model::OwnerRef {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            uid: o.uid.clone(),
            controller: o.controller == Some(true),
        })
        .collect();
    let status = p.status.as_ref();
    Ok(model::Pod {
        uid: m.uid.clone().unwrap_or_else(|| format!("{namespace}/{name}")),
        namespace,
        name,
        labels: m.labels.clone().unwrap_or_default(),
        annotations: annotations(m),
        owner_references,
        scheduler_name: scheduler_name(spec),
        node_name: spec.node_name.clone().filter(|s| !s.is_empty()),
        nominated_node_name: status.and_then(|s| s.nominated_node_name.clone()).filter(|s| !s.is_empty()),
        priority,
        preemption_policy,
        creation_ms: m.creation_timestamp.as_ref().map(|t| t.0.as_millisecond()).unwrap_or(0),
        start_ms: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0.as_millisecond()),
        terminating: m.deletion_timestamp.is_some(),
        terminating_by_preemption: m.deletion_timestamp.is_some()
            && status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"))
                .is_some_and(|c| c.status == "True" && c.reason.as_deref() == Some("PreemptionByScheduler")),
        unschedulable_condition: unschedulable_condition(p),
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        affinity: affinity(&object, spec.affinity.as_ref())?,
        tolerations,
        containers,
        init_containers,
        overhead,
        pod_level_requests,
        topology_spread_constraints: spread,
        scheduling_gates: spec.scheduling_gates.iter().flatten().map(|g| g.name.clone()).collect(),
        volumes: spec.volumes.iter().flatten().map(volume).collect(),
        resource_claims: spec
            .resource_claims
            .iter()
            .flatten()
            .map(|c| model::PodResourceClaim {
                name: c.name.clone(),
                resource_claim_name: c.resource_claim_name.clone(),
                resource_claim_template_name: c.resource_claim_template_name.clone(),
            })
            .collect(),
        resource_claim_statuses: status
            .and_then(|s| s.resource_claim_statuses.as_ref())
            .into_iter()
            .flatten()
            .map(|c| model::PodResourceClaimStatus { name: c.name.clone(), resource_claim_name: c.resource_claim_name.clone() })
            .collect(),
        extended_resource_claim: status
            .and_then(|s| s.extended_resource_claim_status.as_ref())
            .map(|e| e.resource_claim_name.clone())
            .filter(|n| !n.is_empty()),
        scheduling_group: spec.scheduling_group.as_ref().and_then(|g| g.pod_group_name.clone()).filter(|n| !n.is_empty()),
        required_features: required_features(spec),
    })
}

/// The profile a pod asks for: `spec.schedulerName`, `default-scheduler` when unset.
pub fn scheduler_name(spec: &core::PodSpec) -> String {
    spec.scheduler_name.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| berth_core::config::DEFAULT_SCHEDULER_NAME.into())
}

/// The pod's `PodScheduled=False` condition, as (reason, message), if it has one.
pub fn unschedulable_condition(p: &core::Pod) -> Option<(String, String)> {
    let conditions = p.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some((c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

/// A pod already on a node whose spec [`pod`] refuses (a value Berth does
/// not know, say a toleration operator behind an alpha gate): it still takes
/// room on its node, and other pods' affinity and spreading still see it, so
/// it is read without what only mattered for placing it (tolerations, node
/// selector and node affinity, its own spreading constraints, preemption
/// policy, scheduling gates). Fails only if what counts on the node cannot
/// be read either.
pub fn bound_pod_leniently(p: &core::Pod, classes: &PriorityClasses) -> Result<model::Pod, ConvertError> {
    let mut p = p.clone();
    if let Some(spec) = p.spec.as_mut() {
        spec.tolerations = None;
        spec.node_selector = None;
        spec.topology_spread_constraints = None;
        spec.preemption_policy = None;
        spec.scheduling_gates = None;
        if let Some(a) = spec.affinity.as_mut() {
            a.node_affinity = None;
        }
    }
    pod(&p, classes)
}

/// The node features `spec` needs, as upstream's node-declared-features
/// registry (k8s.io/component-helpers/nodedeclaredfeatures, v0.37) infers
/// them for scheduling. Its other features are inferred only for pod
/// updates, never for placement.
fn required_features(spec: &core::PodSpec) -> Vec<&'static str> {
    use berth_core::plugins::node_declared_features as f;
    let mut out = Vec::new();
    let containers = || spec.containers.iter().chain(spec.init_containers.iter().flatten());
    let restarts_all = containers().flat_map(|c| c.restart_policy_rules.iter().flatten()).any(|r| r.action == "RestartAllContainers");
    if restarts_all {
        out.push(f::RESTART_ALL_CONTAINERS_ON_CONTAINER_EXITS);
    }
    if spec.host_network == Some(true) && spec.host_users == Some(false) {
        out.push(f::USER_NAMESPACES_HOST_NETWORK_SUPPORT);
    }
    let ephemeral_mounts = spec.ephemeral_containers.iter().flatten().flat_map(|c| c.volume_mounts.iter().flatten());
    let bind_mount_options = containers()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .chain(ephemeral_mounts)
        .any(|m| m.bind_mount_options.as_ref().is_some_and(|o| !o.is_empty()));
    if bind_mount_options {
        out.push(f::VOLUME_BIND_MOUNT_OPTIONS);
    }
    out
}

/// Annotations, without `kubectl apply`'s copy of the whole manifest: it can
/// be kilobytes per pod and no scheduling decision reads it.
fn annotations(m: &meta::ObjectMeta) -> model::Labels {
    let mut a = m.annotations.clone().unwrap_or_default();
    a.remove("kubectl.kubernetes.io/last-applied-configuration");
    a
}

fn volume(v: &core::Volume) -> model::Volume {
    use model::VolumeSource as S;
    let source = if let Some(c) = &v.persistent_volume_claim {
        S::PersistentVolumeClaim { claim_name: c.claim_name.clone(), read_only: c.read_only.unwrap_or(false) }
    } else if v.ephemeral.is_some() {
        S::Ephemeral
    } else if let Some(c) = &v.csi {
        S::Csi { driver: c.driver.clone() }
    } else if let Some(h) = &v.host_path {
        S::HostPath { path: h.path.clone() }
    } else if let Some(i) = &v.image {
        S::Image { reference: i.reference.clone().unwrap_or_default() }
    } else {
        // The one field set besides `name`, as the pod spec spells it.
        let field = serde_json::to_value(v)
            .ok()
            .and_then(|j| j.as_object().and_then(|o| o.keys().find(|k| *k != "name").cloned()))
            .unwrap_or_else(|| "emptyDir".to_string());
        S::Other(field)
    };
    model::Volume { name: v.name.clone(), source }
}

/// Whether a pod is finished (its resources are free again).
pub fn pod_is_terminal(p: &core::Pod) -> bool {
    matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded") | Some("Failed"))
}

/// Converts a Node. Allocatable falls back to capacity when absent.
pub fn node(n: &core::Node) -> Result<model::Node, ConvertError> {
    let object = object_name("Node", &n.metadata);
    let name = n.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(err(&object, "metadata.name", "name is required"));
    }
    let status = n.status.as_ref();
    let (field, list) = match status.and_then(|s| s.allocatable.as_ref()) {
        Some(a) => ("status.allocatable", a.clone()),
        None => ("status.capacity", status.and_then(|s| s.capacity.clone()).unwrap_or_default()),
    };
    let allocatable = resource_list(&object, field, &list)?;
    let spec = n.spec.as_ref();
    let mut taints = Vec::new();
    for (i, t) in spec.and_then(|s| s.taints.as_ref()).into_iter().flatten().enumerate() {
        let effect = model::TaintEffect::parse(&t.effect)
            .ok_or_else(|| err(&object, format!("spec.taints[{i}].effect"), format!("unsupported value {:?}", t.effect)))?;
        taints.push(model::Taint { key: t.key.clone(), value: t.value.clone().unwrap_or_default(), effect });
    }
    let images = status
        .and_then(|s| s.images.as_ref())
        .into_iter()
        .flatten()
        .map(|i| model::ContainerImage { names: i.names.clone().unwrap_or_default(), size_bytes: i.size_bytes.unwrap_or(0) })
        .collect();
    let conditions = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| model::NodeCondition { kind: c.type_.clone(), status: c.status.clone() })
        .collect();
    Ok(model::Node {
        name,
        labels: n.metadata.labels.clone().unwrap_or_default(),
        annotations: annotations(&n.metadata),
        conditions,
        taints,
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        allocatable,
        images,
        declared_features: status.and_then(|s| s.declared_features.clone()).unwrap_or_default(),
    })
}

pub fn pdb(p: &policy::PodDisruptionBudget) -> Result<model::PodDisruptionBudget, ConvertError> {
    let object = object_name("PodDisruptionBudget", &p.metadata);
    let spec = p.spec.as_ref();
    let selector = match spec.and_then(|s| s.selector.as_ref()) {
        // A PDB with an empty selector matches every pod in its namespace
        // (policy/v1); a missing one matches none.
        Some(s) => label_selector(&object, "spec.selector", Some(s))?,
        None => LabelSelector::nothing(),
    };
    let status = p.status.as_ref();
    Ok(model::PodDisruptionBudget {
        namespace: p.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        name: p.metadata.name.clone().unwrap_or_default(),
        selector,
        disruptions_allowed: status.and_then(|s| s.disruptions_allowed).unwrap_or(0),
        disrupted_pods: status.and_then(|s| s.disrupted_pods.as_ref()).map(|m| m.keys().cloned().collect()).unwrap_or_default(),
    })
}

pub fn namespace(n: &core::Namespace) -> model::Namespace {
    model::Namespace { name: n.metadata.name.clone().unwrap_or_default(), labels: n.metadata.labels.clone().unwrap_or_default() }
}

#[cfg(test)]
mod tests;
