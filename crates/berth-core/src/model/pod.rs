//! The compact pod the scheduler works on. Converted once from the API object
//! (see `berth-convert`); plugins never see Kubernetes JSON.

use std::collections::BTreeMap;

use super::labels::{LabelSelector, Labels, NodeSelector};
use super::resource::{Resource, DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PreemptionPolicy {
    #[default]
    PreemptLowerPriority,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn parse(s: &str) -> Option<TaintEffect> {
        Some(match s {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            _ => return None,
        })
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TolerationOp {
    #[default]
    Equal,
    Exists,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Toleration {
    /// Empty key with `Exists` tolerates everything.
    pub key: String,
    pub operator: TolerationOp,
    pub value: String,
    /// `None` matches every effect.
    pub effect: Option<TaintEffect>,
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// Upstream `Toleration.ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if let Some(e) = self.effect {
            if e != taint.effect {
                return false;
            }
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator {
            TolerationOp::Exists => true,
            TolerationOp::Equal => self.value == taint.value,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "" | "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPort {
    pub host_port: i32,
    pub container_port: i32,
    pub protocol: Protocol,
    pub host_ip: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// Requests after API defaulting (limits copied into missing requests).
    pub requests: Resource,
    /// Whether cpu / memory were requested at all (for non-zero defaults).
    pub has_cpu_request: bool,
    pub has_memory_request: bool,
    pub ports: Vec<ContainerPort>,
    /// Init container with `restartPolicy: Always` (a sidecar).
    pub restartable: bool,
}

/// A pod (anti-)affinity term as written in the spec.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodAffinityTerm {
    pub label_selector: LabelSelector,
    pub namespaces: Vec<String>,
    /// `None`: field absent. `Some(empty)`: all namespaces.
    pub namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
    pub match_label_keys: Vec<String>,
    pub mismatch_label_keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WeightedPodAffinityTerm {
    pub weight: i32,
    pub term: PodAffinityTerm,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PreferredSchedulingTerm {
    pub weight: i32,
    pub preference: super::labels::NodeSelectorTerm,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeAffinity {
    pub required: Option<NodeSelector>,
    pub preferred: Vec<PreferredSchedulingTerm>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodAffinity {
    pub required: Vec<PodAffinityTerm>,
    pub preferred: Vec<WeightedPodAffinityTerm>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Affinity {
    pub node_affinity: Option<NodeAffinity>,
    pub pod_affinity: Option<PodAffinity>,
    pub pod_anti_affinity: Option<PodAffinity>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnsatisfiableConstraintAction {
    #[default]
    DoNotSchedule,
    ScheduleAnyway,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NodeInclusionPolicy {
    #[default]
    Honor,
    Ignore,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TopologySpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    pub when_unsatisfiable: UnsatisfiableConstraintAction,
    pub label_selector: LabelSelector,
    pub min_domains: Option<i32>,
    /// `None`: the default (Honor).
    pub node_affinity_policy: Option<NodeInclusionPolicy>,
    /// `None`: the default (Ignore).
    pub node_taints_policy: Option<NodeInclusionPolicy>,
    pub match_label_keys: Vec<String>,
}

/// One of `metadata.ownerReferences`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OwnerRef {
    /// The owner's `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// The owner's kind, e.g. `ReplicaSet`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's UID.
    pub uid: String,
    /// Whether this owner is the managing controller.
    pub controller: bool,
}

/// Where a pod volume's storage comes from, as far as scheduling cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeSource {
    /// A PersistentVolumeClaim in the pod's namespace.
    PersistentVolumeClaim {
        /// `claimName`.
        claim_name: String,
        /// `readOnly`.
        read_only: bool,
    },
    /// A generic ephemeral volume: its claim, `<pod name>-<volume name>`, is
    /// created for the pod by the ephemeral volume controller.
    Ephemeral,
    /// An inline CSI volume.
    Csi {
        /// The CSI driver's name.
        driver: String,
    },
    /// A directory of the node.
    HostPath {
        /// The path on the node.
        path: String,
    },
    /// Any other source (`configMap`, `secret`, `emptyDir`, `nfs`, ...),
    /// by its field name in the pod spec.
    Other(String),
}

/// One of `spec.volumes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// The volume's name in the pod.
    pub name: String,
    /// Where its storage comes from.
    pub source: VolumeSource,
}

impl Volume {
    /// The PersistentVolumeClaim this volume uses, if any: the named claim,
    /// or an ephemeral volume's generated one.
    pub fn claim_name(&self, pod_name: &str) -> Option<String> {
        match &self.source {
            VolumeSource::PersistentVolumeClaim { claim_name, .. } => Some(claim_name.clone()),
            VolumeSource::Ephemeral => Some(format!("{pod_name}-{}", self.name)),
            _ => None,
        }
    }
}

/// One of `spec.resourceClaims` (dynamic resource allocation).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodResourceClaim {
    /// The name containers refer to it by.
    pub name: String,
    /// `resourceClaimName`: an existing ResourceClaim.
    pub resource_claim_name: Option<String>,
    /// `resourceClaimTemplateName`: a claim made for the pod from a template.
    pub resource_claim_template_name: Option<String>,
}

/// A pod as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: Labels,
    /// `metadata.annotations`, except `kubectl.kubernetes.io/last-applied-configuration`
    /// (a copy of the whole manifest, which no scheduling decision reads).
    pub annotations: Labels,
    /// `metadata.ownerReferences`.
    pub owner_references: Vec<OwnerRef>,
    pub scheduler_name: String,
    /// `spec.nodeName`: set means bound (or being bound).
    pub node_name: Option<String>,
    pub nominated_node_name: Option<String>,
    pub priority: i32,
    pub preemption_policy: PreemptionPolicy,
    /// Creation time, milliseconds since the epoch.
    pub creation_ms: i64,
    /// Start time (status.startTime), milliseconds since the epoch; for victim ordering.
    pub start_ms: Option<i64>,
    /// `metadata.deletionTimestamp` set.
    pub terminating: bool,
    /// Terminating because the scheduler preempted it (its first
    /// `DisruptionTarget` condition is True with reason `PreemptionByScheduler`).
    pub terminating_by_preemption: bool,
    /// The `PodScheduled` condition when it is False: (reason, message).
    /// Lets the scheduler skip a status write that would change nothing.
    pub unschedulable_condition: Option<(String, String)>,
    pub node_selector: BTreeMap<String, String>,
    pub affinity: Affinity,
    pub tolerations: Vec<Toleration>,
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
    pub overhead: Option<Resource>,
    /// Pod-level `spec.resources.requests` (cpu/memory), when set.
    pub pod_level_requests: Option<Resource>,
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    pub scheduling_gates: Vec<String>,
    /// `spec.volumes`.
    pub volumes: Vec<Volume>,
    /// `spec.resourceClaims`.
    pub resource_claims: Vec<PodResourceClaim>,
}

impl Pod {
    /// The owner reference that manages this pod (`controller: true`).
    pub fn controller_ref(&self) -> Option<&OwnerRef> {
        self.owner_references.iter().find(|o| o.controller)
    }

    /// Whether `other` differs from this pod beyond its status (upstream's
    /// `isPodUpdated`: status, resourceVersion and the like do not count).
    pub fn differs_beyond_status(&self, other: &Pod) -> bool {
        let mut o = other.clone();
        o.nominated_node_name = self.nominated_node_name.clone();
        o.start_ms = self.start_ms;
        o.terminating_by_preemption = self.terminating_by_preemption;
        o.unschedulable_condition = self.unschedulable_condition.clone();
        *self != o
    }

    /// Whether `other` is the same as this pod in everything a node-local
    /// Filter plugin and a preemption dry run read (see
    /// `Plugin::filter_is_node_local`): the spec that decides where a pod fits
    /// and whom it may preempt. Identity, labels, times and status do not
    /// count, nor do labels and annotations: replicas of a Deployment or a
    /// Job compare equal.
    pub fn same_filter_inputs(&self, other: &Pod) -> bool {
        self.priority == other.priority
            && self.preemption_policy == other.preemption_policy
            && self.scheduler_name == other.scheduler_name
            && self.node_name == other.node_name
            && self.node_selector == other.node_selector
            && self.affinity == other.affinity
            && self.tolerations == other.tolerations
            && self.containers == other.containers
            && self.init_containers == other.init_containers
            && self.overhead == other.overhead
            && self.pod_level_requests == other.pod_level_requests
            && self.topology_spread_constraints == other.topology_spread_constraints
            && self.scheduling_gates == other.scheduling_gates
            && self.volumes == other.volumes
            && self.resource_claims == other.resource_claims
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Effective requests: max(largest init container, sum of containers +
    /// restartable init containers) + overhead, as upstream `PodRequests`.
    pub fn requests(&self) -> Resource {
        self.compute_requests(false)
    }

    /// Requests with upstream's non-zero defaults (100m CPU, 200Mi memory)
    /// substituted per container where none was asked for; for scoring only.
    pub fn non_zero_requests(&self) -> Resource {
        self.compute_requests(true)
    }

    fn compute_requests(&self, non_zero: bool) -> Resource {
        let container_req = |c: &Container| -> Resource {
            let mut r = c.requests.clone();
            if non_zero {
                if !c.has_cpu_request {
                    r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
                }
                if !c.has_memory_request {
                    r.memory = DEFAULT_MEMORY_REQUEST;
                }
            }
            r
        };
        let mut reqs = Resource::default();
        for c in &self.containers {
            reqs.add(&container_req(c));
        }
        let mut restartable_sum = Resource::default();
        let mut init_max = Resource::default();
        for c in &self.init_containers {
            let mut cr = container_req(c);
            if c.restartable {
                // Sidecars run alongside the regular containers.
                reqs.add(&cr);
                restartable_sum.add(&cr);
                cr = restartable_sum.clone();
            } else {
                cr.add(&restartable_sum);
            }
            init_max.max_with(&cr);
        }
        reqs.max_with(&init_max);
        if let Some(pl) = &self.pod_level_requests {
            // Pod-level resources override the aggregate for what they set.
            if pl.milli_cpu > 0 {
                reqs.milli_cpu = pl.milli_cpu;
            }
            if pl.memory > 0 {
                reqs.memory = pl.memory;
            }
        }
        if let Some(o) = &self.overhead {
            reqs.add(o);
        }
        reqs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(cpu: i64, mem: i64, restartable: bool) -> Container {
        Container {
            requests: Resource::new(cpu, mem),
            has_cpu_request: cpu > 0,
            has_memory_request: mem > 0,
            restartable,
            ..Default::default()
        }
    }

    #[test]
    fn requests_like_upstream() {
        // (containers, init containers, overhead) -> (cpu, mem)
        type Case = (Vec<Container>, Vec<Container>, Option<Resource>, (i64, i64));
        let table: Vec<Case> = vec![
            (vec![c(100, 10, false), c(200, 20, false)], vec![], None, (300, 30)),
            // largest init container wins when bigger than the sum
            (vec![c(100, 10, false)], vec![c(500, 5, false)], None, (500, 10)),
            // sidecar adds to the sum and to later init containers
            (vec![c(100, 10, false)], vec![c(50, 50, true), c(200, 1, false)], None, (250, 60)),
            // overhead on top
            (vec![c(100, 10, false)], vec![], Some(Resource::new(10, 1)), (110, 11)),
        ];
        for (containers, init, overhead, want) in table {
            let p = Pod { containers, init_containers: init, overhead, ..Default::default() };
            let r = p.requests();
            assert_eq!((r.milli_cpu, r.memory), want);
        }
    }

    #[test]
    fn non_zero_defaults() {
        let p = Pod { containers: vec![c(0, 0, false), c(300, 0, false)], ..Default::default() };
        let r = p.non_zero_requests();
        assert_eq!(r.milli_cpu, 400);
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert_eq!(p.requests().milli_cpu, 300);
    }

    #[test]
    fn tolerations() {
        let taint = Taint { key: "dedicated".into(), value: "gpu".into(), effect: TaintEffect::NoSchedule };
        let exists_all = Toleration { operator: TolerationOp::Exists, ..Default::default() };
        assert!(exists_all.tolerates(&taint));
        let eq = Toleration { key: "dedicated".into(), value: "gpu".into(), ..Default::default() };
        assert!(eq.tolerates(&taint));
        let wrong_effect = Toleration { effect: Some(TaintEffect::NoExecute), ..eq.clone() };
        assert!(!wrong_effect.tolerates(&taint));
        let wrong_value = Toleration { value: "cpu".into(), ..eq };
        assert!(!wrong_value.tolerates(&taint));
    }
}
