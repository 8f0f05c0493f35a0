//! The compact pod the scheduler works on. Converted once from the API object
//! (see `berth-convert`); plugins never see Kubernetes JSON.

use std::collections::BTreeMap;

use super::labels::{LabelSelector, Labels, NodeSelector};
use super::resource::{Resource, DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST};

/// `spec.preemptionPolicy` (or the PriorityClass's): whether the pod may evict others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PreemptionPolicy {
    /// It may preempt pods of lower priority (the default).
    #[default]
    PreemptLowerPriority,
    /// It never preempts; it is still queued by priority.
    Never,
}

/// What a taint does to pods that do not tolerate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaintEffect {
    /// No new pod is scheduled onto the node.
    NoSchedule,
    /// The scheduler avoids the node (a lower TaintToleration score) but may still use it.
    PreferNoSchedule,
    /// As NoSchedule; running pods are also evicted (by the node lifecycle controller, not the
    /// scheduler).
    NoExecute,
}

impl TaintEffect {
    /// Parses the API spelling (`NoSchedule`, ...); `None` for anything else.
    pub fn parse(s: &str) -> Option<TaintEffect> {
        Some(match s {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            _ => return None,
        })
    }
    /// The API spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// One of a node's `spec.taints`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    /// `key`.
    pub key: String,
    /// `value`; may be empty.
    pub value: String,
    /// `effect`.
    pub effect: TaintEffect,
}

/// How a toleration compares a taint's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TolerationOp {
    /// The values must be equal (the default).
    #[default]
    Equal,
    /// Any value; with an empty key, any taint.
    Exists,
}

/// One of a pod's `spec.tolerations`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Toleration {
    /// Empty key with `Exists` tolerates everything.
    pub key: String,
    /// `operator`; `Equal` when absent.
    pub operator: TolerationOp,
    /// `value`, compared under `Equal`.
    pub value: String,
    /// `None` matches every effect.
    pub effect: Option<TaintEffect>,
    /// `tolerationSeconds`: how long a NoExecute taint is tolerated before eviction. Scheduling
    /// ignores it.
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

/// A port's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `TCP`, the default.
    Tcp,
    /// `UDP`.
    Udp,
    /// `SCTP`.
    Sctp,
}

impl Protocol {
    /// Parses the API spelling; empty means TCP. `None` for anything else.
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "" | "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            _ => return None,
        })
    }
}

/// One of a container's `ports`. Only those with a host port matter to scheduling (NodePorts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPort {
    /// `hostPort`; 0 when not set.
    pub host_port: i32,
    /// `containerPort`.
    pub container_port: i32,
    /// `protocol`.
    pub protocol: Protocol,
    /// `hostIP`; empty means every address (`0.0.0.0`).
    pub host_ip: String,
}

/// A container or init container, reduced to what scheduling reads.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Container {
    /// `name`.
    pub name: String,
    /// `image` as written in the spec (ImageLocality normalizes it: `nginx` is `nginx:latest`).
    pub image: String,
    /// Requests after API defaulting (limits copied into missing requests).
    pub requests: Resource,
    /// Whether cpu / memory were requested at all (for non-zero defaults).
    pub has_cpu_request: bool,
    /// Whether memory was requested at all.
    pub has_memory_request: bool,
    /// `ports`.
    pub ports: Vec<ContainerPort>,
    /// Init container with `restartPolicy: Always` (a sidecar).
    pub restartable: bool,
}

/// A pod (anti-)affinity term as written in the spec.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodAffinityTerm {
    /// `labelSelector`: the pods the term is about. Absent selects nothing.
    pub label_selector: LabelSelector,
    /// `namespaces` where those pods are looked for; empty, with no `namespace_selector`, means
    /// the owner pod's namespace.
    pub namespaces: Vec<String>,
    /// `None`: field absent. `Some(empty)`: all namespaces.
    pub namespace_selector: Option<LabelSelector>,
    /// `topologyKey`: the node label whose value names a domain (nodes with the same value share
    /// one).
    pub topology_key: String,
    /// `matchLabelKeys`: for each key, the owner pod's value is added to the selector (`In`).
    pub match_label_keys: Vec<String>,
    /// `mismatchLabelKeys`: for each key, the owner pod's value is added to the selector (`NotIn`).
    pub mismatch_label_keys: Vec<String>,
}

/// A preferred pod (anti-)affinity term with its weight.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WeightedPodAffinityTerm {
    /// `weight`, 1..=100 in the API.
    pub weight: i32,
    /// `podAffinityTerm`.
    pub term: PodAffinityTerm,
}

/// A preferred node affinity term with its weight.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PreferredSchedulingTerm {
    /// `weight`, 1..=100 in the API: what a matching node gains in NodeAffinity's raw score.
    pub weight: i32,
    /// `preference`.
    pub preference: super::labels::NodeSelectorTerm,
}

/// `spec.affinity.nodeAffinity`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeAffinity {
    /// `requiredDuringSchedulingIgnoredDuringExecution`; `None` when absent.
    pub required: Option<NodeSelector>,
    /// `preferredDuringSchedulingIgnoredDuringExecution`.
    pub preferred: Vec<PreferredSchedulingTerm>,
}

/// `spec.affinity.podAffinity` or `podAntiAffinity` (they have the same shape).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodAffinity {
    /// `requiredDuringSchedulingIgnoredDuringExecution`.
    pub required: Vec<PodAffinityTerm>,
    /// `preferredDuringSchedulingIgnoredDuringExecution`.
    pub preferred: Vec<WeightedPodAffinityTerm>,
}

/// `spec.affinity`; each part `None` when absent.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Affinity {
    /// `nodeAffinity`.
    pub node_affinity: Option<NodeAffinity>,
    /// `podAffinity`.
    pub pod_affinity: Option<PodAffinity>,
    /// `podAntiAffinity`.
    pub pod_anti_affinity: Option<PodAffinity>,
}

/// `whenUnsatisfiable` of a topology spread constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnsatisfiableConstraintAction {
    /// A hard constraint: PodTopologySpread's Filter rejects nodes that would break `maxSkew`.
    #[default]
    DoNotSchedule,
    /// A soft one: only PodTopologySpread's Score favours nodes that reduce the skew.
    ScheduleAnyway,
}

/// Whether a pod's node affinity (`nodeAffinityPolicy`) or its tolerations (`nodeTaintsPolicy`)
/// decide which nodes count when computing the skew.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NodeInclusionPolicy {
    /// Only nodes that pass the check count.
    #[default]
    Honor,
    /// Every node counts.
    Ignore,
}

/// One of `spec.topologySpreadConstraints`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TopologySpreadConstraint {
    /// `maxSkew`: the largest allowed difference in matching pods between domains; at least 1.
    pub max_skew: i32,
    /// `topologyKey`: the node label whose value names a domain.
    pub topology_key: String,
    /// `whenUnsatisfiable`.
    pub when_unsatisfiable: UnsatisfiableConstraintAction,
    /// `labelSelector`: the pods counted in each domain. Absent counts none.
    pub label_selector: LabelSelector,
    /// `minDomains`: with fewer eligible domains than this, the global minimum is taken as 0.
    /// Only for `DoNotSchedule`.
    pub min_domains: Option<i32>,
    /// `None`: the default (Honor).
    pub node_affinity_policy: Option<NodeInclusionPolicy>,
    /// `None`: the default (Ignore).
    pub node_taints_policy: Option<NodeInclusionPolicy>,
    /// `matchLabelKeys`: for each key, the incoming pod's value narrows `label_selector`.
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
    /// An OCI image mounted as a volume (`image`): ImageLocality counts it
    /// as one of the pod's images.
    Image {
        /// `reference`: the image.
        reference: String,
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

/// One of `status.resourceClaimStatuses`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodResourceClaimStatus {
    /// The pod's claim name (`spec.resourceClaims[].name`).
    pub name: String,
    /// The ResourceClaim made for it; `None` when none was needed.
    pub resource_claim_name: Option<String>,
}

/// A pod as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Pod {
    /// `metadata.namespace`; `default` when the manifest has none.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`; `namespace/name` for an object without one (a manifest).
    pub uid: String,
    /// `metadata.labels`.
    pub labels: Labels,
    /// `metadata.annotations`, except `kubectl.kubernetes.io/last-applied-configuration`
    /// (a copy of the whole manifest, which no scheduling decision reads).
    pub annotations: Labels,
    /// `metadata.ownerReferences`.
    pub owner_references: Vec<OwnerRef>,
    /// `spec.schedulerName` (`default-scheduler` when absent): the profile that schedules the pod.
    pub scheduler_name: String,
    /// `spec.nodeName`: set means bound (or being bound).
    pub node_name: Option<String>,
    /// `status.nominatedNodeName`: the node an earlier preemption made room on. The pod tries it
    /// first, and other pods count it there.
    pub nominated_node_name: Option<String>,
    /// The priority: `spec.priority`, else the value of its PriorityClass, else of the global
    /// default class, else 0. Higher goes first in the queue and may preempt lower.
    pub priority: i32,
    /// `spec.preemptionPolicy`, else its PriorityClass's; `PreemptLowerPriority` when neither says.
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
    /// `spec.nodeSelector`: labels a node must have, all of them.
    pub node_selector: BTreeMap<String, String>,
    /// `spec.affinity`.
    pub affinity: Affinity,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// `spec.containers`.
    pub containers: Vec<Container>,
    /// `spec.initContainers`; sidecars among them have `restartable` set.
    pub init_containers: Vec<Container>,
    /// `spec.overhead` (set from the RuntimeClass), added on top of the requests.
    pub overhead: Option<Resource>,
    /// Pod-level `spec.resources.requests` (cpu/memory), when set.
    pub pod_level_requests: Option<Resource>,
    /// `spec.topologySpreadConstraints`.
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// The names of `spec.schedulingGates`: while any remain, SchedulingGates keeps the pod out of
    /// scheduling.
    pub scheduling_gates: Vec<String>,
    /// `spec.volumes`.
    pub volumes: Vec<Volume>,
    /// `spec.resourceClaims`.
    pub resource_claims: Vec<PodResourceClaim>,
    /// `status.resourceClaimStatuses`: the claims the resourceclaim controller made from the
    /// pod's templates, by the pod's claim name (`None`: none was needed).
    pub resource_claim_statuses: Vec<PodResourceClaimStatus>,
    /// `status.extendedResourceClaimStatus.resourceClaimName`: the claim the scheduler made for
    /// extended resources backed by DRA.
    pub extended_resource_claim: Option<String>,
    /// `spec.schedulingGroup.podGroupName`: the PodGroup (same namespace) this pod is a member of.
    pub scheduling_group: Option<String>,
    /// The node features this pod needs (upstream's node-declared features inferred from its spec,
    /// see [`crate::plugins::node_declared_features`]); a node must declare each of them in
    /// `status.declaredFeatures`.
    pub required_features: Vec<&'static str>,
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
            && self.scheduling_group == other.scheduling_group
            && self.required_features == other.required_features
    }

    /// `namespace/name`: how the queue, the cache and [`WaitingPods`](crate::framework::WaitingPods)
    /// name the pod.
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
