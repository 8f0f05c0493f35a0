//! Builders for pods and nodes in tests, in the spirit of upstream's
//! `st.MakePod()` / `st.MakeNode()`: one line per object in a test table.

use std::sync::Arc;

use crate::cache::{NodeInfo, Snapshot};
use crate::framework::PodInfo;
use crate::model::*;

/// A pod named `name` in `default`, with UID `name`, schedulerName `default-scheduler`, and no
/// containers yet (add them with `req`, `image`, ...).
pub fn make_pod(name: &str) -> PodWrapper {
    PodWrapper(Pod {
        namespace: "default".into(),
        name: name.into(),
        uid: name.into(),
        scheduler_name: "default-scheduler".into(),
        ..Default::default()
    })
}

/// A node named `name` with the label `kubernetes.io/hostname: name` and nothing allocatable
/// (set it with `capacity`).
pub fn make_node(name: &str) -> NodeWrapper {
    let mut n = Node { name: name.into(), ..Default::default() };
    n.labels.insert("kubernetes.io/hostname".into(), name.into());
    NodeWrapper(n)
}

/// A NodeInfo with these pods already on it.
pub fn node_info(node: Node, pods: Vec<Pod>) -> NodeInfo {
    let mut ni = NodeInfo::new(Arc::new(node));
    for mut p in pods {
        if p.node_name.is_none() {
            p.node_name = Some(ni.node.name.clone());
        }
        ni.add_pod(Arc::new(PodInfo::new(p)));
    }
    ni
}

/// A snapshot from nodes and pods; pods are placed by their `node_name`.
pub fn snapshot(nodes: Vec<Node>, pods: Vec<Pod>) -> Snapshot {
    let mut infos: Vec<NodeInfo> = nodes.into_iter().map(|n| NodeInfo::new(Arc::new(n))).collect();
    for p in pods {
        let target = p.node_name.clone().expect("snapshot pods need node_name");
        if let Some(ni) = infos.iter_mut().find(|n| n.node.name == target) {
            ni.add_pod(Arc::new(PodInfo::new(p)));
        }
    }
    Snapshot::from_node_infos(infos)
}

fn q(s: &str) -> i64 {
    Quantity::parse(s).expect("test quantity").value()
}

fn container(requests: Resource) -> Container {
    Container {
        name: "c".into(),
        image: "pause".into(),
        has_cpu_request: requests.milli_cpu > 0,
        has_memory_request: requests.memory > 0,
        requests,
        ..Default::default()
    }
}

/// Resources from (name, quantity) pairs: `&[("cpu", "500m"), ("memory", "1Gi")]`.
pub fn resources(pairs: &[(&str, &str)]) -> Resource {
    let mut r = Resource::default();
    for (n, v) in pairs {
        let qty = Quantity::parse(v).expect("test quantity");
        let val = if *n == "cpu" { qty.milli_value() } else { qty.value() };
        r.set(n, val);
    }
    r
}

/// A [`Pod`] being built: each method sets one thing and returns the wrapper.
pub struct PodWrapper(pub Pod);

impl PodWrapper {
    /// The pod.
    pub fn obj(self) -> Pod {
        self.0
    }
    /// The pod, with its [`PodInfo`] computed.
    pub fn info(self) -> PodInfo {
        PodInfo::new(self.0)
    }
    /// Sets the namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.0.namespace = ns.into();
        self
    }
    /// Sets the UID.
    pub fn uid(mut self, uid: &str) -> Self {
        self.0.uid = uid.into();
        self
    }
    /// Sets `spec.schedulerName`.
    pub fn scheduler_name(mut self, s: &str) -> Self {
        self.0.scheduler_name = s.into();
        self
    }
    /// Adds a label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0.labels.insert(k.into(), v.into());
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, p: i32) -> Self {
        self.0.priority = p;
        self
    }
    /// Sets `preemptionPolicy: Never`.
    pub fn preemption_never(mut self) -> Self {
        self.0.preemption_policy = PreemptionPolicy::Never;
        self
    }
    /// Sets the creation time, in milliseconds since the epoch.
    pub fn creation(mut self, ms: i64) -> Self {
        self.0.creation_ms = ms;
        self
    }
    /// Sets `status.startTime`, in milliseconds since the epoch.
    pub fn start(mut self, ms: i64) -> Self {
        self.0.start_ms = Some(ms);
        self
    }
    /// Binds the pod: sets `spec.nodeName`.
    pub fn node(mut self, n: &str) -> Self {
        self.0.node_name = Some(n.into());
        self
    }
    /// Sets `status.nominatedNodeName`.
    pub fn nominated(mut self, n: &str) -> Self {
        self.0.nominated_node_name = Some(n.into());
        self
    }
    /// Marks the pod as being deleted.
    pub fn terminating(mut self) -> Self {
        self.0.terminating = true;
        self
    }
    /// Being deleted by an earlier preemption.
    pub fn preempted(mut self) -> Self {
        self.0.terminating = true;
        self.0.terminating_by_preemption = true;
        self
    }
    /// Adds a container requesting `milli_cpu` and `memory` bytes (0 = not requested).
    pub fn req(mut self, milli_cpu: i64, memory: i64) -> Self {
        self.0.containers.push(container(Resource::new(milli_cpu, memory)));
        self
    }
    /// Adds a container with requests given as quantities.
    pub fn req_q(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.containers.push(container(resources(pairs)));
        self
    }
    /// Adds an init container with requests given as quantities.
    pub fn init_req(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.init_containers.push(container(resources(pairs)));
        self
    }
    /// Adds a sidecar (an init container with `restartPolicy: Always`) with requests given as
    /// quantities.
    pub fn sidecar_req(mut self, pairs: &[(&str, &str)]) -> Self {
        let mut c = container(resources(pairs));
        c.restartable = true;
        self.0.init_containers.push(c);
        self
    }
    /// Sets `spec.overhead` from quantities.
    pub fn overhead(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.overhead = Some(resources(pairs));
        self
    }
    /// Adds a container running `image`, with no requests.
    pub fn image(mut self, image: &str) -> Self {
        let mut c = container(Resource::default());
        c.image = image.into();
        self.0.containers.push(c);
        self
    }
    /// Uses host port `port` (TCP, every address) in the first container, adding one if there is
    /// none.
    pub fn host_port(self, port: i32) -> Self {
        self.host_port_full("", Protocol::Tcp, port)
    }
    /// Uses a host port with this IP and protocol in the first container, adding one if there is
    /// none.
    pub fn host_port_full(mut self, ip: &str, protocol: Protocol, port: i32) -> Self {
        if self.0.containers.is_empty() {
            self.0.containers.push(container(Resource::default()));
        }
        self.0.containers[0].ports.push(ContainerPort { host_port: port, container_port: port, protocol, host_ip: ip.into() });
        self
    }
    /// Adds a `nodeSelector` entry.
    pub fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.0.node_selector.insert(k.into(), v.into());
        self
    }
    /// Adds a toleration.
    pub fn toleration(mut self, t: Toleration) -> Self {
        self.0.tolerations.push(t);
        self
    }
    /// Tolerates the taint `key=value:effect` (operator `Equal`).
    pub fn tolerate(self, key: &str, value: &str, effect: TaintEffect) -> Self {
        self.toleration(Toleration {
            key: key.into(),
            operator: TolerationOp::Equal,
            value: value.into(),
            effect: Some(effect),
            toleration_seconds: None,
        })
    }
    /// Required node affinity: one term with one expression (terms are ORed across calls).
    pub fn node_affinity_in(mut self, key: &str, values: &[&str]) -> Self {
        let na = self.0.affinity.node_affinity.get_or_insert_with(Default::default);
        let req = na.required.get_or_insert_with(Default::default);
        req.terms.push(NodeSelectorTerm { match_expressions: vec![Requirement::new(key, SelectorOp::In, values)], match_fields: vec![] });
        self
    }
    /// Sets the required node affinity.
    pub fn required_node_affinity(mut self, sel: NodeSelector) -> Self {
        self.0.affinity.node_affinity.get_or_insert_with(Default::default).required = Some(sel);
        self
    }
    /// Adds a preferred node affinity term.
    pub fn preferred_node_affinity(mut self, weight: i32, term: NodeSelectorTerm) -> Self {
        self.0
            .affinity
            .node_affinity
            .get_or_insert_with(Default::default)
            .preferred
            .push(PreferredSchedulingTerm { weight, preference: term });
        self
    }
    fn term(key: &str, value: &str, topology_key: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: LabelSelector::from_match_labels([(key, value)]),
            topology_key: topology_key.into(),
            ..Default::default()
        }
    }
    /// Required pod affinity to pods labelled key=value within `topology_key`.
    pub fn pod_affinity(mut self, key: &str, value: &str, topology_key: &str) -> Self {
        self.0.affinity.pod_affinity.get_or_insert_with(Default::default).required.push(Self::term(key, value, topology_key));
        self
    }
    /// Required pod anti-affinity to pods labelled key=value within `topology_key`.
    pub fn pod_anti_affinity(mut self, key: &str, value: &str, topology_key: &str) -> Self {
        self.0.affinity.pod_anti_affinity.get_or_insert_with(Default::default).required.push(Self::term(key, value, topology_key));
        self
    }
    /// Preferred pod affinity, with `weight`, to pods labelled key=value within `topology_key`.
    pub fn preferred_pod_affinity(mut self, weight: i32, key: &str, value: &str, topology_key: &str) -> Self {
        self.0
            .affinity
            .pod_affinity
            .get_or_insert_with(Default::default)
            .preferred
            .push(WeightedPodAffinityTerm { weight, term: Self::term(key, value, topology_key) });
        self
    }
    /// Preferred pod anti-affinity, with `weight`, to pods labelled key=value within `topology_key`.
    pub fn preferred_pod_anti_affinity(mut self, weight: i32, key: &str, value: &str, topology_key: &str) -> Self {
        self.0
            .affinity
            .pod_anti_affinity
            .get_or_insert_with(Default::default)
            .preferred
            .push(WeightedPodAffinityTerm { weight, term: Self::term(key, value, topology_key) });
        self
    }
    /// Adds `term` as a required pod affinity term, or anti-affinity term if `anti`.
    pub fn pod_affinity_term(mut self, anti: bool, term: PodAffinityTerm) -> Self {
        let a = if anti { &mut self.0.affinity.pod_anti_affinity } else { &mut self.0.affinity.pod_affinity };
        a.get_or_insert_with(Default::default).required.push(term);
        self
    }
    /// Adds a topology spread constraint with these fields and defaults for the rest.
    pub fn spread(mut self, max_skew: i32, topology_key: &str, action: UnsatisfiableConstraintAction, selector: LabelSelector) -> Self {
        self.0.topology_spread_constraints.push(TopologySpreadConstraint {
            max_skew,
            topology_key: topology_key.into(),
            when_unsatisfiable: action,
            label_selector: selector,
            ..Default::default()
        });
        self
    }
    /// Adds a topology spread constraint.
    pub fn spread_constraint(mut self, c: TopologySpreadConstraint) -> Self {
        self.0.topology_spread_constraints.push(c);
        self
    }
    /// A member of the native PodGroup `name` (`spec.schedulingGroup`).
    pub fn group(mut self, name: &str) -> Self {
        self.0.scheduling_group = Some(name.to_string());
        self
    }
    /// Adds a scheduling gate.
    pub fn scheduling_gate(mut self, gate: &str) -> Self {
        self.0.scheduling_gates.push(gate.into());
        self
    }
    /// A controller owner reference.
    pub fn owner(mut self, kind: &str, name: &str) -> Self {
        self.0.owner_references.push(OwnerRef { kind: kind.into(), name: name.into(), controller: true, ..Default::default() });
        self
    }
    /// Adds an annotation.
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.0.annotations.insert(k.into(), v.into());
        self
    }
    /// A volume backed by the PersistentVolumeClaim `claim`.
    pub fn pvc(mut self, volume: &str, claim: &str) -> Self {
        self.0.volumes.push(Volume {
            name: volume.into(),
            source: VolumeSource::PersistentVolumeClaim { claim_name: claim.into(), read_only: false },
        });
        self
    }
}

/// A [`Node`] being built: each method sets one thing and returns the wrapper.
pub struct NodeWrapper(pub Node);

impl NodeWrapper {
    /// The node.
    pub fn obj(self) -> Node {
        self.0
    }
    /// Adds a label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0.labels.insert(k.into(), v.into());
        self
    }
    /// Allocatable cpu (milli), memory (bytes) and pod count.
    pub fn capacity(mut self, milli_cpu: i64, memory: i64, pods: i64) -> Self {
        self.0.allocatable.milli_cpu = milli_cpu;
        self.0.allocatable.memory = memory;
        self.0.allocatable.allowed_pod_number = pods;
        self
    }
    /// Allocatable from quantities: `&[("cpu", "4"), ("memory", "32Gi"), ("pods", "110")]`.
    pub fn capacity_q(mut self, pairs: &[(&str, &str)]) -> Self {
        for (n, v) in pairs {
            let val = if *n == "cpu" { Quantity::parse(v).expect("qty").milli_value() } else { q(v) };
            self.0.allocatable.set(n, val);
        }
        self
    }
    /// Adds `name` to `status.declaredFeatures`.
    pub fn declared_feature(mut self, name: &str) -> Self {
        self.0.declared_features.push(name.into());
        self
    }

    /// Adds a taint.
    pub fn taint(mut self, key: &str, value: &str, effect: TaintEffect) -> Self {
        self.0.taints.push(Taint { key: key.into(), value: value.into(), effect });
        self
    }
    /// Cordons the node (`spec.unschedulable`).
    pub fn unschedulable(mut self) -> Self {
        self.0.unschedulable = true;
        self
    }
    /// Adds an annotation.
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.0.annotations.insert(k.into(), v.into());
        self
    }
    /// A status condition, e.g. `("Ready", "True")`.
    pub fn condition(mut self, kind: &str, status: &str) -> Self {
        self.0.conditions.push(crate::model::NodeCondition { kind: kind.into(), status: status.into() });
        self
    }
    /// Adds an image present on the node, `size` in bytes.
    pub fn image(mut self, name: &str, size: i64) -> Self {
        self.0.images.push(ContainerImage { names: vec![name.into()], size_bytes: size });
        self
    }
}
