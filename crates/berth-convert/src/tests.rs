use super::manifests::load;
use super::*;

fn one(text: &str) -> Result<manifests::Cluster, manifests::LoadError> {
    load(&[("test.yaml".to_string(), text.to_string())])
}

#[test]
fn pod_with_everything() {
    let c = one(r#"
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
preemptionPolicy: Never
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: prod
  labels: {app: web}
  creationTimestamp: "2024-01-01T00:00:01Z"
spec:
  priorityClassName: high
  initContainers:
  - name: init
    image: busybox
    resources: {requests: {cpu: "2"}}
  - name: sidecar
    image: envoy
    restartPolicy: Always
    resources: {requests: {cpu: 100m, memory: 64Mi}}
  containers:
  - name: app
    image: nginx
    resources:
      limits: {cpu: 500m, memory: 1Gi, nvidia.com/gpu: "1"}
    ports: [{containerPort: 80, hostPort: 8080}]
  overhead: {cpu: 10m}
  tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]
  nodeSelector: {disk: ssd}
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: DoNotSchedule
    labelSelector: {matchLabels: {app: web}}
"#)
    .unwrap();
    let p = &c.pods[0];
    assert_eq!((p.namespace.as_str(), p.name.as_str()), ("prod", "web"));
    assert_eq!(p.priority, 1000);
    assert_eq!(p.preemption_policy, model::PreemptionPolicy::Never);
    assert_eq!(p.creation_ms, 1_704_067_201_000);
    assert_eq!(p.scheduler_name, "default-scheduler");
    // limits became requests; the 2-CPU init container runs before the sidecar
    // starts, so it wins over 500m + 100m; then +10m overhead.
    let r = p.requests();
    assert_eq!(r.milli_cpu, 2010);
    assert_eq!(r.memory, (1 << 30) + (64 << 20));
    assert_eq!(r.scalar("nvidia.com/gpu"), 1);
    assert_eq!(p.containers[0].ports[0].host_port, 8080);
    assert_eq!(p.tolerations[0].operator, model::TolerationOp::Exists);
    assert_eq!(p.topology_spread_constraints[0].max_skew, 1);
}

#[test]
fn lists_and_nodes() {
    let c = one(r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: n1, labels: {zone: a}}
  spec:
    taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
  status:
    capacity: {cpu: "8", memory: 64Gi, pods: "110"}
    allocatable: {cpu: "4", memory: 32Gi, pods: "110", hugepages-2Mi: 1Gi}
- apiVersion: v1
  kind: Service
  metadata: {name: s}
- apiVersion: v1
  kind: Pod
  metadata: {name: p}
  spec:
    nodeName: n1
    containers: [{name: c, image: x}]
  status: {phase: Running}
- apiVersion: v1
  kind: Pod
  metadata: {name: done}
  spec:
    containers: [{name: c, image: x}]
  status: {phase: Succeeded}
"#)
    .unwrap();
    assert_eq!(c.nodes.len(), 1);
    let n = &c.nodes[0];
    assert_eq!(n.allocatable.milli_cpu, 4000);
    assert_eq!(n.allocatable.memory, 32 << 30);
    assert_eq!(n.allocatable.allowed_pod_number, 110);
    assert_eq!(n.allocatable.scalar("hugepages-2Mi"), 1 << 30);
    assert_eq!(n.taints[0].value, "gpu");
    assert_eq!(c.pods.len(), 1, "finished pods are not loaded");
    assert_eq!(c.pods[0].node_name.as_deref(), Some("n1"));
    // Other kinds are kept for plugins that read them (the simulator
    // reports the ones nothing reads).
    assert_eq!(c.objects.iter().filter(|(_, o)| o["kind"] == "Service").count(), 1);
}

#[test]
fn json_input() {
    let c = one(r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n"},"status":{"capacity":{"cpu":"1"}}}"#).unwrap();
    assert_eq!(c.nodes[0].allocatable.milli_cpu, 1000);
}

#[test]
fn bad_input_names_file_object_and_field() {
    let table = [
        (
            "kind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, resources: {requests: {cpu: lots}}}]\n",
            "test.yaml: Pod default/p: spec.containers[0].resources.requests.cpu: quantities must match",
        ),
        ("kind: Pod\nmetadata: {name: p}\nspec:\n  priorityClassName: nope\n  containers: []\n", "no PriorityClass with name nope"),
        ("kind: Node\nmetadata: {name: n}\nspec: {taints: [{key: k, effect: Sometimes}]}\n", "Node n: spec.taints[0].effect"),
        ("kind: Pod\nmetadata: {name: p}\nspec: {containers: 7}\n", "test.yaml: Pod p:"),
        ("metadata: {name: x}\n", "has no kind"),
        (
            "kind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, resources: {requests: {cpu: \"-1\"}}}]\n",
            "spec.containers[0].resources.requests.cpu: Invalid value: \"-1\": must be greater than or equal to 0",
        ),
        ("kind: Pod\n  bad: [indent\n", "test.yaml: document 1"),
    ];
    for (text, want) in table {
        let e = one(text).unwrap_err().to_string();
        assert!(e.contains(want), "{e:?} should contain {want:?}");
    }
}

#[test]
fn huge_quantities_saturate() {
    let c = one("kind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, resources: {requests: {memory: 1e100, cpu: \"99999999999999999999\", ephemeral-storage: 2}}}]\n").unwrap();
    let r = c.pods[0].requests();
    assert_eq!(r.memory, i64::MAX);
    assert_eq!(r.milli_cpu, i64::MAX);
    assert_eq!(r.ephemeral_storage, 2, "bare YAML numbers are quantities too");
}

#[test]
fn what_plugins_read_beyond_the_spec_basics() {
    let c = one(r#"
apiVersion: v1
kind: Node
metadata:
  name: n1
  annotations: {example.berth.dev/cost: "3"}
status:
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
  conditions:
  - {type: Ready, status: "True", lastHeartbeatTime: "2026-01-01T00:00:00Z"}
  - {type: DiskPressure, status: "False"}
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: prod
  annotations:
    example.berth.dev/pool: gold
    kubectl.kubernetes.io/last-applied-configuration: '{"a very": "long copy"}'
  ownerReferences:
  - {apiVersion: apps/v1, kind: StatefulSet, name: db, uid: u-1, controller: true}
  - {apiVersion: v1, kind: ConfigMap, name: other, uid: u-2}
spec:
  containers: [{name: c, image: x}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data-db-0, readOnly: true}}
  - {name: scratch, ephemeral: {volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce]}}}}
  - {name: conf, configMap: {name: db}}
  - {name: inline, csi: {driver: example.csi.dev}}
  resourceClaims:
  - {name: gpu, resourceClaimTemplateName: one-gpu}
"#)
    .unwrap();
    let n = &c.nodes[0];
    assert_eq!(n.annotations.get("example.berth.dev/cost").map(String::as_str), Some("3"));
    assert_eq!((n.condition("Ready"), n.condition("DiskPressure"), n.condition("PIDPressure")), (Some("True"), Some("False"), None));
    let p = &c.pods[0];
    assert_eq!(p.annotations.len(), 1, "kubectl's last-applied copy is dropped: {:?}", p.annotations);
    assert_eq!(p.owner_references.len(), 2);
    let owner = p.controller_ref().unwrap();
    assert_eq!(
        (owner.api_version.as_str(), owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("apps/v1", "StatefulSet", "db", "u-1")
    );
    use berth_core::model::VolumeSource as S;
    let sources: Vec<&S> = p.volumes.iter().map(|v| &v.source).collect();
    assert_eq!(
        sources,
        vec![
            &S::PersistentVolumeClaim { claim_name: "data-db-0".into(), read_only: true },
            &S::Ephemeral,
            &S::Other("configMap".into()),
            &S::Csi { driver: "example.csi.dev".into() },
        ]
    );
    let claims: Vec<Option<String>> = p.volumes.iter().map(|v| v.claim_name(&p.name)).collect();
    assert_eq!(claims, vec![Some("data-db-0".into()), Some("db-0-scratch".into()), None, None]);
    assert_eq!(p.resource_claims[0].resource_claim_template_name.as_deref(), Some("one-gpu"));
}

/// The field names a k8s-openapi type declares, as its `Deserialize` impl
/// hands them to `deserialize_struct`.
fn fields_of<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    use serde::de::{self, Visitor};
    struct Capture<'a>(&'a mut Vec<&'static str>);
    impl<'de> de::Deserializer<'de> for Capture<'_> {
        type Error = de::value::Error;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend_from_slice(fields);
            Err(de::Error::custom("captured"))
        }
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
            newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut out = Vec::new();
    let _ = T::deserialize(Capture(&mut out));
    assert!(!out.is_empty(), "{} does not deserialize as a struct", std::any::type_name::<T>());
    out
}

/// Every field of the pod spec, a container and a volume that the API
/// has: how Berth treats it. A field added to the API (a newer k8s-openapi)
/// fails this test until someone decides: read it, refuse pods that use it
/// (the volume and DRA plugins), or record why it cannot change a
/// placement. A constraint Berth ignores would mean pods bound where they
/// cannot run.
#[test]
fn every_pod_field_is_read_refused_or_known_to_be_irrelevant() {
    const READ: &[&str] = &[
        "affinity",
        "containers",
        "initContainers",
        "nodeName",
        "nodeSelector",
        "overhead",
        "preemptionPolicy",
        "priority",
        "priorityClassName",
        "resources",
        "schedulerName",
        "schedulingGates",
        "tolerations",
        "topologySpreadConstraints",
        "volumes",
        "resourceClaims",
        "hostNetwork",
        // GangScheduling keeps a PodGroup's members pending (gang scheduling is not modelled yet).
        "schedulingGroup",
        // NodeDeclaredFeatures: features a node must declare (with hostNetwork, volume mounts of
        // every kind of container, restart rules).
        "hostUsers",
        "ephemeralContainers",
    ];
    // Nothing in kube-scheduler reads these: networking names, security,
    // lifecycle, and what admission has already folded into the fields above
    // (RuntimeClass overhead and scheduling, `os` checked by the kubelet).
    const IRRELEVANT: &[&str] = &[
        "activeDeadlineSeconds",
        "automountServiceAccountToken",
        "dnsConfig",
        "dnsPolicy",
        "enableServiceLinks",
        // Who handles the pod's eviction: its lifecycle once placed.
        "evictionResponders",
        "hostAliases",
        "hostIPC",
        "hostPID",
        "hostname",
        "hostnameOverride",
        "imagePullSecrets",
        "os",
        "readinessGates",
        "restartPolicy",
        "runtimeClassName",
        "securityContext",
        "serviceAccount",
        "serviceAccountName",
        "setHostnameAsFQDN",
        "shareProcessNamespace",
        "subdomain",
        "terminationGracePeriodSeconds",
    ];
    let unknown: Vec<_> = fields_of::<core::PodSpec>().into_iter().filter(|f| !READ.contains(f) && !IRRELEVANT.contains(f)).collect();
    assert!(unknown.is_empty(), "PodSpec fields Berth has not decided about: {unknown:?}");

    // Restart rules and volume mounts: features a node must declare (NodeDeclaredFeatures).
    const CONTAINER_READ: &[&str] = &["name", "image", "resources", "ports", "restartPolicy", "restartPolicyRules", "volumeMounts"];
    const CONTAINER_IRRELEVANT: &[&str] = &[
        "args",
        "command",
        "env",
        "envFrom",
        "imagePullPolicy",
        "lifecycle",
        "livenessProbe",
        "readinessProbe",
        "resizePolicy",
        "securityContext",
        "startupProbe",
        "stdin",
        "stdinOnce",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "tty",
        "volumeDevices",
        "workingDir",
    ];
    let unknown: Vec<_> =
        fields_of::<core::Container>().into_iter().filter(|f| !CONTAINER_READ.contains(f) && !CONTAINER_IRRELEVANT.contains(f)).collect();
    assert!(unknown.is_empty(), "Container fields Berth has not decided about: {unknown:?}");

    // Volume sources: the ones a plugin reads or refuses (volume module;
    // ImageLocality scores image volumes), and the ones that take nothing
    // from a node's limits or other pods.
    const VOLUME_REFUSED: &[&str] = &[
        "persistentVolumeClaim",
        "ephemeral",
        "csi",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "iscsi",
        "rbd",
        "azureDisk",
        "cinder",
        "image",
    ];
    const VOLUME_IRRELEVANT: &[&str] = &[
        "name",
        "azureFile",
        "cephfs",
        "configMap",
        "downwardAPI",
        "emptyDir",
        "fc",
        "flexVolume",
        "flocker",
        "gitRepo",
        "glusterfs",
        "hostPath",
        "nfs",
        "photonPersistentDisk",
        "portworxVolume",
        "projected",
        "quobyte",
        "scaleIO",
        "secret",
        "storageos",
        "vsphereVolume",
    ];
    let unknown: Vec<_> =
        fields_of::<core::Volume>().into_iter().filter(|f| !VOLUME_REFUSED.contains(f) && !VOLUME_IRRELEVANT.contains(f)).collect();
    assert!(unknown.is_empty(), "volume sources Berth has not decided about: {unknown:?}");
}

#[test]
fn host_network_ports_default_to_host_ports() {
    let c = one(r#"
apiVersion: v1
kind: Pod
metadata: {name: agent}
spec:
  hostNetwork: true
  containers: [{name: c, image: x, ports: [{containerPort: 9100}, {containerPort: 80, hostPort: 8080}]}]
"#)
    .unwrap();
    let ports: Vec<i32> = c.pods[0].containers[0].ports.iter().map(|p| p.host_port).collect();
    assert_eq!(ports, vec![9100, 8080]);
}

#[test]
fn node_features_a_pod_needs_and_its_pod_group_are_read() {
    let c = one(r#"
apiVersion: v1
kind: Pod
metadata: {name: worker-0}
spec:
  hostNetwork: true
  hostUsers: false
  schedulingGroup: {podGroupName: training}
  containers:
  - name: c
    image: x
    restartPolicy: Always
    restartPolicyRules: [{action: RestartAllContainers, exitCodes: {operator: In, values: [42]}}]
    volumeMounts: [{name: data, mountPath: /data, bindMountOptions: [noexec]}]
  volumes: [{name: data, emptyDir: {}}]
"#)
    .unwrap();
    let p = &c.pods[0];
    assert_eq!(p.scheduling_group.as_deref(), Some("training"));
    use berth_core::plugins::node_declared_features as f;
    assert_eq!(
        p.required_features,
        vec![f::RESTART_ALL_CONTAINERS_ON_CONTAINER_EXITS, f::USER_NAMESPACES_HOST_NETWORK_SUPPORT, f::VOLUME_BIND_MOUNT_OPTIONS]
    );
    let plain =
        one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostNetwork: true, containers: [{name: c, image: x}]}\n").unwrap();
    assert!(plain.pods[0].required_features.is_empty());
    assert_eq!(plain.pods[0].scheduling_group, None);
}

#[test]
fn a_bound_pod_with_a_constraint_berth_cannot_read_still_counts_on_its_node() {
    let text = r#"
apiVersion: v1
kind: Pod
metadata: {name: old, namespace: default}
spec:
  nodeName: n1
  tolerations: [{key: gpu-count, operator: Gt, value: "2", effect: NoSchedule}]
  containers: [{name: c, image: x, resources: {requests: {cpu: "2"}}}]
"#;
    let raw: k8s_openapi::api::core::v1::Pod = serde_yaml::from_str(text).unwrap();
    let classes = PriorityClasses::default();
    let e = pod(&raw, &classes).unwrap_err();
    assert_eq!(e.field, "spec.tolerations[0].operator");
    let p = bound_pod_leniently(&raw, &classes).unwrap();
    assert_eq!((p.node_name.as_deref(), p.requests().milli_cpu), (Some("n1"), 2000));
    assert!(p.tolerations.is_empty());
}
