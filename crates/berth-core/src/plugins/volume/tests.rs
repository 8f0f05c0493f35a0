use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::objects::*;
use super::*;
use crate::cache::Snapshot;
use crate::model::{PodResourceClaim, Volume, VolumeSource};
use crate::testing::{make_node, make_pod, snapshot};

fn vol(name: &str, source: VolumeSource) -> Volume {
    Volume { name: name.into(), source }
}

fn claim_vol(claim: &str) -> Volume {
    vol(claim, VolumeSource::PersistentVolumeClaim { claim_name: claim.into(), read_only: false })
}

fn plugin(host: &PluginHost, name: &str, args: Option<Value>) -> Result<Arc<dyn Plugin>, PluginError> {
    crate::plugins::registry().get(name).unwrap()(&PluginArgs::new(name, args.as_ref()), &host.handle("default-scheduler"))
}

#[test]
fn pods_needing_what_berth_does_not_model_are_refused_with_a_reason() {
    let other = |k: &str| VolumeSource::Other(k.into());
    // (volumes, resource claims, plugin, its reason or none)
    let table: Vec<(Vec<Volume>, bool, usize, Option<&str>)> = vec![
        (vec![vol("conf", other("configMap")), vol("tmp", other("emptyDir"))], false, 2, None),
        (vec![vol("conf", other("configMap"))], false, 0, None),
        (vec![vol("conf", other("configMap"))], false, 1, None),
        (
            vec![vol("disk", other("gcePersistentDisk"))],
            false,
            0,
            Some("pod's volume \"disk\" (gcePersistentDisk): Berth does not model volume conflicts between pods yet"),
        ),
        (
            vec![vol("d", other("azureDisk"))],
            false,
            1,
            Some("pod's volume \"d\" (azureDisk): Berth does not model volume attach limits of in-tree volumes yet"),
        ),
        (vec![vol("x", VolumeSource::Csi { driver: "secrets-store.csi.k8s.io".into() })], false, 1, None),
        (vec![], true, 4, Some("pod \"default/p\", spec.resourceClaim \"gpu\": none of the supported fields are set")),
        (vec![], false, 4, None),
        (vec![claim_vol("data-0")], false, 2, Some("persistentvolumeclaim \"data-0\" not found")),
        (
            vec![vol("scratch", VolumeSource::Ephemeral)],
            false,
            2,
            Some("waiting for ephemeral volume controller to create the persistentvolumeclaim \"p-scratch\""),
        ),
    ];
    let host = PluginHost::default();
    for (volumes, claims, plugin_index, want) in table {
        let mut pod = make_pod("p").obj();
        pod.volumes = volumes;
        if claims {
            pod.resource_claims.push(PodResourceClaim { name: "gpu".into(), ..Default::default() });
        }
        let pl = plugin(&host, NAMES[plugin_index], None).unwrap();
        let (_, s) = pl.pre_filter(&mut CycleState::new(), &PodInfo::new(pod), &Snapshot::default());
        match want {
            None => assert_eq!(s.code, Code::Skip, "{}", NAMES[plugin_index]),
            Some(msg) => {
                assert_eq!((s.code, s.message()), (Code::UnschedulableAndUnresolvable, msg.to_string()), "{}", NAMES[plugin_index])
            }
        }
    }
}

#[test]
fn volume_binding_args_decode_strictly() {
    let host = PluginHost::default();
    let err = |args: Value| plugin(&host, binding::NAME, Some(args)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(json!({"bindTimeoutSeconds": -1})).contains("should not be a negative value"));
    assert!(err(json!({"bindTimeoutSecs": 5})).contains("bindTimeoutSecs"));
    assert!(plugin(&host, binding::NAME, Some(json!({"bindTimeoutSeconds": 30}))).is_ok());
}

/// A writer that applies patches to the host's stores (no controller
/// answers, unless `bind` says so) and can be told to refuse.
struct Writer {
    host: Mutex<Option<PluginHost>>,
    objects: Mutex<std::collections::HashMap<String, Value>>,
    refuse: bool,
    calls: Mutex<Vec<String>>,
}

impl ObjectWriter for Writer {
    fn merge_patch(&self, kind: &ObjectKind, namespace: &str, name: &str, patch: &Value) -> Result<Value, WriteError> {
        self.calls.lock().unwrap().push(format!("{} {namespace}/{name} {patch}", kind.kind));
        if self.refuse {
            return Err(WriteError::Conflict {
                kind: kind.to_string(),
                key: WriteError::key(kind, namespace, name),
                message: "changed".into(),
            });
        }
        let mut objects = self.objects.lock().unwrap();
        let object = objects.get_mut(name).expect("test objects exist");
        for (k, v) in patch["metadata"]["annotations"].as_object().into_iter().flatten() {
            object["metadata"]["annotations"][k] = v.clone();
        }
        if let Some(r) = patch["spec"]["claimRef"].as_object() {
            object["spec"]["claimRef"] = Value::Object(r.clone());
        }
        object["metadata"]["resourceVersion"] = json!("100");
        self.host.lock().unwrap().as_ref().unwrap().apply_object(kind, object).unwrap();
        Ok(object.clone())
    }
}

struct Cluster {
    host: PluginHost,
    writer: Arc<Writer>,
    pl: Arc<dyn Plugin>,
}

/// Two nodes; a WaitForFirstConsumer class `local` with one 10Gi volume on
/// `n1`; claims `a` and `b` (5Gi each) of that class.
fn cluster(refuse: bool, args: Option<Value>) -> Cluster {
    let writer = Arc::new(Writer { host: Mutex::new(None), objects: Mutex::default(), refuse, calls: Mutex::default() });
    let host = PluginHost::default().with_writer(writer.clone());
    *writer.host.lock().unwrap() = Some(host.clone());
    let pl = plugin(&host, binding::NAME, args).unwrap();
    let mut objects = vec![
        (
            CLASSES,
            json!({"metadata": {"name": "local"}, "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"}),
        ),
        (
            VOLUMES,
            json!({"metadata": {"name": "pv1", "resourceVersion": "7"}, "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": "local", "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}}, "status": {"phase": "Available"}}),
        ),
    ];
    for c in ["a", "b"] {
        objects.push((
            CLAIMS,
            json!({"metadata": {"name": c, "namespace": "default", "uid": format!("u-{c}"), "resourceVersion": "3"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local", "resources": {"requests": {"storage": "5Gi"}}}}),
        ));
    }
    for (kind, o) in objects {
        host.apply_object(&kind, &o).unwrap();
        writer.objects.lock().unwrap().insert(o["metadata"]["name"].as_str().unwrap().to_string(), o);
    }
    host.publish_snapshot(Some(Arc::new(snapshot(vec![make_node("n1").obj(), make_node("n2").obj()], vec![]))));
    Cluster { host, writer, pl }
}

fn pod_with(claim: &str) -> PodInfo {
    let mut p = make_pod(&format!("p-{claim}")).obj();
    p.volumes = vec![claim_vol(claim)];
    PodInfo::new(p)
}

/// PreFilter, then Filter on each node: the nodes that pass, or the reasons.
fn fits(c: &Cluster, state: &mut CycleState, pod: &PodInfo) -> Vec<(String, String)> {
    let (_, s) = c.pl.pre_filter(state, pod, &Snapshot::default());
    assert!(s.is_success(), "{}", s.message());
    let snap = c.host.handle("x").snapshot().unwrap();
    snap.nodes().iter().map(|n| (n.node.name.clone(), c.pl.filter(state, pod, n).message())).collect()
}

#[test]
fn a_reserved_volume_is_not_chosen_twice_and_unreserve_frees_it() {
    let c = cluster(false, None);
    let (a, b) = (pod_with("a"), pod_with("b"));
    let mut sa = CycleState::new();
    let none = binding::ERR_BIND_CONFLICT.to_string();
    assert_eq!(fits(&c, &mut sa, &a), vec![("n1".into(), String::new()), ("n2".into(), none.clone())]);
    assert!(c.pl.reserve(&mut sa, &a, "n1").is_success());
    assert!(c.pl.pre_bind_pre_flight(&sa, &a, "n1").is_success(), "a volume to bind is PreBind's work");
    // b would take the same volume: it is assumed for a.
    let mut sb = CycleState::new();
    assert_eq!(fits(&c, &mut sb, &b), vec![("n1".into(), none.clone()), ("n2".into(), none.clone())]);
    c.pl.unreserve(&mut sa, &a, "n1");
    let mut sb = CycleState::new();
    assert_eq!(fits(&c, &mut sb, &b)[0], ("n1".into(), String::new()));
}

#[test]
fn pre_bind_writes_the_claim_ref_and_fails_when_the_binding_does_not_complete() {
    let c = cluster(false, Some(json!({"bindTimeoutSeconds": 0})));
    let a = pod_with("a");
    let mut s = CycleState::new();
    fits(&c, &mut s, &a);
    assert!(c.pl.reserve(&mut s, &a, "n1").is_success());
    // Nobody plays the PV controller here: the claim never becomes bound.
    let st = c.pl.pre_bind(&mut s, &a, "n1");
    assert_eq!((st.code, st.message()), (Code::Error, "binding volumes: context deadline exceeded".to_string()));
    let calls = c.writer.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].starts_with("PersistentVolume /pv1 "), "{}", calls[0]);
    for part in [r#""resourceVersion":"7""#, r#""name":"a""#, r#""uid":"u-a""#, r#""pv.kubernetes.io/bound-by-controller":"yes""#] {
        assert!(calls[0].contains(part), "{} lacks {part}", calls[0]);
    }
}

#[test]
fn a_refused_write_fails_pre_bind_and_forgets_the_assumption() {
    let c = cluster(true, None);
    let (a, b) = (pod_with("a"), pod_with("b"));
    let mut s = CycleState::new();
    fits(&c, &mut s, &a);
    assert!(c.pl.reserve(&mut s, &a, "n1").is_success());
    let st = c.pl.pre_bind(&mut s, &a, "n1");
    assert_eq!(st.code, Code::Error);
    assert!(st.message().contains("the object has been modified"), "{}", st.message());
    let mut sb = CycleState::new();
    assert_eq!(fits(&c, &mut sb, &b)[0], ("n1".into(), String::new()), "the volume is free again");
}

#[test]
fn bound_claims_need_no_pre_bind() {
    let c = cluster(false, None);
    let claim = json!({"metadata": {"name": "a", "namespace": "default", "uid": "u-a", "annotations": {ANN_BIND_COMPLETED: "yes"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local", "volumeName": "pv1"}, "status": {"phase": "Bound"}});
    c.host.apply_object(&CLAIMS, &claim).unwrap();
    let a = pod_with("a");
    let mut s = CycleState::new();
    let verdicts = fits(&c, &mut s, &a);
    assert_eq!(verdicts[1], ("n2".into(), binding::ERR_NODE_CONFLICT.to_string()));
    assert!(c.pl.reserve(&mut s, &a, "n1").is_success());
    assert!(c.pl.pre_bind_pre_flight(&s, &a, "n1").is_skip());
    assert!(c.writer.calls.lock().unwrap().is_empty());
}

#[test]
fn attach_limits_of_in_tree_volumes_are_refused_not_guessed() {
    let host = PluginHost::default();
    let pl = plugin(&host, limits::NAME, None).unwrap();
    let objects = [
        (VOLUMES, json!({"metadata": {"name": "old-ebs"}, "spec": {"awsElasticBlockStore": {"volumeID": "vol-1"}}})),
        (VOLUMES, json!({"metadata": {"name": "csi"}, "spec": {"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-2"}}})),
        (
            CLASSES,
            json!({"metadata": {"name": "gp2"}, "provisioner": "kubernetes.io/aws-ebs", "volumeBindingMode": "WaitForFirstConsumer"}),
        ),
        (CLAIMS, json!({"metadata": {"name": "a", "namespace": "default"}, "spec": {"volumeName": "old-ebs"}})),
        (CLAIMS, json!({"metadata": {"name": "b", "namespace": "default"}, "spec": {"storageClassName": "gp2"}})),
        (CLAIMS, json!({"metadata": {"name": "c", "namespace": "default"}, "spec": {"volumeName": "csi"}})),
    ];
    for (kind, o) in objects {
        host.apply_object(&kind, &o).unwrap();
    }
    // As upstream's NotFound, the reason is given by Filter (on any node).
    let node = crate::testing::node_info(make_node("n").obj(), vec![]);
    let filtered = |claim: &str| {
        let (mut state, pod) = (CycleState::new(), pod_with(claim));
        let (_, s) = pl.pre_filter(&mut state, &pod, &Snapshot::default());
        assert!(s.is_success(), "{}", s.message());
        let s = pl.filter(&state, &pod, &node);
        (s.code, s.message())
    };
    let unresolvable = |msg: &str| (Code::UnschedulableAndUnresolvable, msg.to_string());
    assert_eq!(
        filtered("a"),
        unresolvable("pod's volume \"a\": PersistentVolume \"old-ebs\" (awsElasticBlockStore): Berth does not model volume attach limits of in-tree volumes yet")
    );
    assert_eq!(
        filtered("b"),
        unresolvable("pod's volume \"b\": StorageClass \"gp2\" (provisioner kubernetes.io/aws-ebs): Berth does not model volume attach limits of in-tree volumes yet")
    );
    assert_eq!(filtered("c"), (Code::Success, String::new()));
}

#[test]
fn a_driver_that_asks_for_it_keeps_its_volumes_off_nodes_without_it() {
    let host = PluginHost::default();
    let pl = plugin(&host, limits::NAME, None).unwrap();
    let objects = [
        (VOLUMES, json!({"metadata": {"name": "strict"}, "spec": {"csi": {"driver": "strict.csi.dev", "volumeHandle": "v1"}}})),
        (VOLUMES, json!({"metadata": {"name": "lax"}, "spec": {"csi": {"driver": "lax.csi.dev", "volumeHandle": "v2"}}})),
        (CSI_DRIVERS, json!({"metadata": {"name": "strict.csi.dev"}, "spec": {"preventPodSchedulingIfMissing": true}})),
        (CSI_DRIVERS, json!({"metadata": {"name": "lax.csi.dev"}, "spec": {}})),
        (CSI_NODES, json!({"metadata": {"name": "with"}, "spec": {"drivers": [{"name": "strict.csi.dev", "nodeID": "with"}]}})),
        (CSI_NODES, json!({"metadata": {"name": "other"}, "spec": {"drivers": [{"name": "lax.csi.dev", "nodeID": "other"}]}})),
        (CLAIMS, json!({"metadata": {"name": "s", "namespace": "default"}, "spec": {"volumeName": "strict"}})),
        (CLAIMS, json!({"metadata": {"name": "l", "namespace": "default"}, "spec": {"volumeName": "lax"}})),
    ];
    for (kind, o) in objects {
        host.apply_object(&kind, &o).unwrap();
    }
    let verdict = |claim: &str, node: &str| {
        let (mut state, pod) = (CycleState::new(), pod_with(claim));
        let (_, s) = pl.pre_filter(&mut state, &pod, &Snapshot::default());
        assert!(s.is_success(), "{}", s.message());
        let s = pl.filter(&state, &pod, &crate::testing::node_info(make_node(node).obj(), vec![]));
        (s.code, s.message())
    };
    let missing = (Code::Unschedulable, "strict.csi.dev CSI driver is not installed on the node".to_string());
    assert_eq!(verdict("s", "with"), (Code::Success, String::new()));
    assert_eq!(verdict("s", "other"), missing, "the node's CSINode does not list the driver");
    assert_eq!(verdict("s", "no-csinode"), missing, "the node has no CSINode at all");
    assert_eq!(verdict("l", "no-csinode"), (Code::Success, String::new()), "the driver did not ask");
}
