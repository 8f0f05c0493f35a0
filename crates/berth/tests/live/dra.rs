//! Dynamic resource allocation, live: devices published in ResourceSlices
//! (as a DRA driver would, for the test's KWOK nodes), claims made by
//! kube-controller-manager's resourceclaim controller from templates,
//! allocated and reserved by Berth.

use super::*;

impl Ns {
    fn claims(&self) -> Api<kube::core::DynamicObject> {
        Api::namespaced_with(self.c.clone(), &self.name, &dra_resource("ResourceClaim", "resourceclaims"))
    }

    /// A DeviceClass `<ns>-gpu`, and a slice of `count` GPUs on `node`
    /// (driver `<ns>.gpu.example.com`, pool `node`).
    fn gpus(&self, node: &str, count: usize) {
        let devices: Vec<String> = (0..count).map(|i| format!("  - {{name: gpu-{i}, attributes: {{model: {{string: a100}}}}}}")).collect();
        self.apply(&format!(
            "apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {{name: NS-gpu}}
spec: {{}}
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {{name: {node}-gpus}}
spec:
  driver: NS.gpu.example.com
  nodeName: {node}
  pool: {{name: {node}, generation: 1, resourceSliceCount: 1}}
  devices:
{}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {{name: one-gpu}}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly: {{deviceClassName: NS-gpu, allocationMode: ExactCount, count: 1}}
",
            devices.join("\n")
        ));
    }

    /// A pod with one claim from the template `one-gpu`.
    async fn gpu_pod(&self, name: &str) {
        let extra = json!({
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}],
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "100m"}, "claims": [{"name": "gpu"}]}}],
        });
        self.pod(name, "berth", "100m", extra).await;
    }

    /// The claim the resourceclaim controller made for `pod`'s claim `gpu`.
    async fn claim_of(&self, pod: &str) -> kube::core::DynamicObject {
        let p = self.pods().get(pod).await.unwrap();
        let name = p
            .status
            .and_then(|s| s.resource_claim_statuses)
            .and_then(|s| s.into_iter().find(|c| c.name == "gpu"))
            .and_then(|c| c.resource_claim_name)
            .expect("the pod's claim was made");
        self.claims().get(&name).await.unwrap()
    }
}

/// `driver/pool/device` of each device allocated to `claim`.
fn allocated(claim: &kube::core::DynamicObject) -> Vec<String> {
    let results = claim.data.pointer("/status/allocation/devices/results").and_then(|r| r.as_array()).cloned().unwrap_or_default();
    results
        .iter()
        .map(|r| format!("{}/{}/{}", r["driver"].as_str().unwrap(), r["pool"].as_str().unwrap(), r["device"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn claims_from_a_template_get_distinct_devices_and_the_pod_left_over_waits_for_one() {
    shared_scheduler();
    let ns = Ns::new("dra").await;
    let node = ns.node("n", "8", json!({}), json!([])).await;
    ns.gpus(&node, 2);
    for i in 0..3 {
        ns.gpu_pod(&format!("trainer-{i}")).await;
    }
    // Two GPUs for three pods: two are bound, each with a device of its own.
    let bound = wait_for("two trainers bound", || async {
        let mut bound = Vec::new();
        for i in 0..3 {
            if ns.node_of(&format!("trainer-{i}")).await.is_some() {
                bound.push(format!("trainer-{i}"));
            }
        }
        (bound.len() == 2).then_some(bound)
    })
    .await;
    let mut devices = Vec::new();
    for pod in &bound {
        let claim = ns.claim_of(pod).await;
        let uid = ns.pods().get(pod).await.unwrap().metadata.uid.unwrap();
        assert_eq!(claim.data.pointer("/status/reservedFor/0/uid").and_then(|u| u.as_str()), Some(uid.as_str()), "{pod}");
        assert_eq!(claim.data.pointer("/status/reservedFor").and_then(|r| r.as_array()).map(Vec::len), Some(1));
        let finalizers = claim.metadata.finalizers.clone().unwrap_or_default();
        assert!(finalizers.iter().any(|f| f == "resource.kubernetes.io/delete-protection"), "{finalizers:?}");
        let selector = claim.data.pointer("/status/allocation/nodeSelector/nodeSelectorTerms/0/matchFields/0/values/0");
        assert_eq!(selector.and_then(|v| v.as_str()), Some(node.as_str()));
        devices.extend(allocated(&claim));
    }
    devices.sort();
    assert_eq!(devices, [format!("{}.gpu.example.com/{node}/gpu-0", ns.name), format!("{}.gpu.example.com/{node}/gpu-1", ns.name)]);
    let waiting = (0..3).map(|i| format!("trainer-{i}")).find(|p| !bound.contains(p)).unwrap();
    let note = ns.failed_note(&waiting).await;
    assert!(note.contains("1 cannot allocate all claims"), "{note}");
    assert_eq!(ns.node_of(&waiting).await, None);

    // The pod's end releases its claim (the resourceclaim controller
    // deletes the claim it made); the waiting pod gets that device.
    ns.pods().delete(&bound[0], &Default::default()).await.unwrap();
    ns.bound(&waiting).await;
    let claim = ns.claim_of(&waiting).await;
    assert_eq!(allocated(&claim).len(), 1);
}

impl Ns {
    /// Pods `<prefix>-<i>` with a claim each from `one-gpu`, created at once.
    async fn gpu_burst(&self, prefix: &str, count: usize) -> Vec<String> {
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
        futures::future::join_all(names.iter().map(|n| self.gpu_pod(n))).await;
        names
    }
}

#[tokio::test]
async fn a_burst_for_fewer_devices_than_pods_never_gives_a_device_twice() {
    shared_scheduler();
    let ns = Ns::new("draburst").await;
    let a = ns.node("a", "8", json!({}), json!([])).await;
    let b = ns.node("b", "8", json!({}), json!([])).await;
    ns.gpus(&a, 4);
    ns.apply(&format!(
        "apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {{name: {b}-gpus}}
spec:
  driver: NS.gpu.example.com
  nodeName: {b}
  pool: {{name: {b}, generation: 1, resourceSliceCount: 1}}
  devices: [{{name: gpu-0}}, {{name: gpu-1}}, {{name: gpu-2}}, {{name: gpu-3}}]
"
    ));
    let pods = ns.gpu_burst("job", 12).await;
    // Eight devices for twelve pods: eight bound, four told why.
    let (bound, waiting) = wait_for("eight of twelve pods bound and four refused", || async {
        let (mut bound, mut waiting) = (Vec::new(), Vec::new());
        for p in &pods {
            if let Some(n) = ns.node_of(p).await {
                bound.push((p.clone(), n));
            } else if !ns.events(p, "FailedScheduling").await.is_empty() {
                waiting.push(p.clone());
            }
        }
        (bound.len() == 8 && waiting.len() == 4).then_some((bound, waiting))
    })
    .await;
    let mut devices = Vec::new();
    for (pod, node) in &bound {
        let claim = ns.claim_of(pod).await;
        let d = allocated(&claim);
        assert_eq!(d.len(), 1, "{pod}");
        assert!(d[0].contains(&format!("/{node}/")), "{pod} on {node} got {d:?}");
        devices.extend(d);
    }
    let distinct: std::collections::BTreeSet<&String> = devices.iter().collect();
    assert_eq!(distinct.len(), 8, "a device was given twice: {devices:?}");
    for p in &waiting {
        let note = ns.failed_note(p).await;
        assert!(note.contains("2 cannot allocate all claims"), "{note}");
    }
}

#[tokio::test]
async fn a_cel_runtime_error_keeps_the_pod_pending_with_the_expression_error() {
    shared_scheduler();
    let ns = Ns::new("dracel").await;
    let node = ns.node("n", "8", json!({}), json!([])).await;
    ns.gpus(&node, 1);
    ns.apply(
        "apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: picky}
spec:
  devices:
    requests:
    - name: gpu
      exactly:
        deviceClassName: NS-gpu
        allocationMode: ExactCount
        count: 1
        selectors: [{cel: {expression: 'device.attributes[\"NS.gpu.example.com\"].memory > 1'}}]
",
    );
    let extra = json!({
        "resourceClaims": [{"name": "gpu", "resourceClaimName": "picky"}],
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "100m"}, "claims": [{"name": "gpu"}]}}],
    });
    ns.pod("picky", "berth", "100m", extra).await;
    let note = ns.failed_note("picky").await;
    assert!(
        note.contains(&format!(
            "claim {}/picky: selector #0 on device {}.gpu.example.com/{node}/gpu-0: CEL runtime error: no such key: memory",
            ns.name, ns.name
        )),
        "{note}"
    );
    assert_eq!(ns.node_of("picky").await, None);
}

#[tokio::test]
async fn a_claim_deleted_while_its_pod_waits_keeps_the_pod_pending_until_it_is_back() {
    shared_scheduler();
    let ns = Ns::new("dradel").await;
    let node = ns.node("n", "8", json!({}), json!([])).await;
    let claim = "apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: mine}
spec: {devices: {requests: [{name: gpu, exactly: {deviceClassName: NS-gpu, allocationMode: ExactCount, count: 1}}]}}
";
    // The class exists but no device yet: the pod waits for one.
    ns.apply("apiVersion: resource.k8s.io/v1\nkind: DeviceClass\nmetadata: {name: NS-gpu}\nspec: {}\n");
    ns.apply(claim);
    let extra = json!({
        "resourceClaims": [{"name": "gpu", "resourceClaimName": "mine"}],
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "100m"}, "claims": [{"name": "gpu"}]}}],
    });
    ns.pod("waiter", "berth", "100m", extra).await;
    let note = ns.failed_note("waiter").await;
    assert!(note.contains("cannot allocate all claims"), "{note}");
    // The claim goes: the pod waits for it (PreEnqueue), and a device
    // published meanwhile does not bind it.
    ns.claims().delete("mine", &Default::default()).await.unwrap();
    wait_for("the claim to be gone", || async { ns.claims().get("mine").await.err().map(|_| ()) }).await;
    ns.gpus(&node, 1);
    let condition = wait_for("the pod's condition to name the missing claim", || async {
        let (_, _, message) = ns.pod_scheduled_condition("waiter").await?;
        message.contains("could not find ResourceClaim").then_some(message)
    })
    .await;
    assert!(condition.contains(&format!("\"{}/mine\"", ns.name)), "{condition}");
    assert_eq!(ns.node_of("waiter").await, None);
    // Back: allocated and bound.
    ns.apply(claim);
    assert_eq!(ns.bound("waiter").await, node);
    let back = ns.claims().get("mine").await.unwrap();
    assert_eq!(allocated(&back), [format!("{}.gpu.example.com/{node}/gpu-0", ns.name)]);
}

/// A gang whose members claim devices: all or nothing, devices included.
#[tokio::test]
async fn a_gang_with_device_claims_holds_no_device_while_it_cannot_fit() {
    let Some((ns, groups)) = gang_namespace("dragang", 2).await else { return };
    let nodes: Vec<String> = (0..2).map(|i| format!("{}-n{i}", ns.name)).collect();
    ns.gpus(&nodes[0], 1);
    ns.apply(&format!(
        "apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {{name: {n1}-gpus}}
spec:
  driver: NS.gpu.example.com
  nodeName: {n1}
  pool: {{name: {n1}, generation: 1, resourceSliceCount: 1}}
  devices: [{{name: gpu-0}}]
",
        n1 = nodes[1]
    ));
    ns.group(&groups, "trio", json!({"schedulingPolicy": {"gang": {"minCount": 3}}})).await;
    let claim = json!({
        "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}],
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "100m"}, "claims": [{"name": "gpu"}]}}],
    });
    for m in ["m0", "m1", "m2"] {
        ns.member(m, "trio", "100m", claim.clone()).await;
    }
    // Two GPUs for three members: none is bound, and no claim keeps a device.
    let (_, reason, _) =
        wait_for("PodGroupInitiallyScheduled=False", || async { ns.group_condition(&groups, "trio").await.filter(|c| c.0 == "False") })
            .await;
    assert_eq!(reason, "Unschedulable");
    for m in ["m0", "m1", "m2"] {
        assert_eq!(ns.node_of(m).await, None, "{m} must not be bound");
        let claim = ns.claim_of(m).await;
        assert!(allocated(&claim).is_empty(), "{m}'s claim keeps {:?}", allocated(&claim));
    }
    // A single pod gets a GPU the gang did not keep.
    ns.gpu_pod("solo").await;
    ns.bound("solo").await;
    // A third GPU, once "solo" is gone: the gang is placed whole, a device each.
    ns.pods().delete("solo", &Default::default()).await.unwrap();
    ns.apply(&format!(
        "apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {{name: {n1}-more-gpus}}
spec:
  driver: NS.gpu.example.com
  nodeName: {n1}
  pool: {{name: {n1}-more, generation: 1, resourceSliceCount: 1}}
  devices: [{{name: gpu-1}}]
",
        n1 = nodes[1]
    ));
    let mut devices = Vec::new();
    for m in ["m0", "m1", "m2"] {
        ns.bound(m).await;
        devices.extend(allocated(&ns.claim_of(m).await));
    }
    let distinct: std::collections::BTreeSet<&String> = devices.iter().collect();
    assert_eq!(distinct.len(), 3, "{devices:?}");
}

/// A DeviceTaintRule (resource.k8s.io/v1 from Kubernetes 1.37) taints the
/// devices it selects. Older API servers do not serve the kind: Berth
/// schedules claims without it there.
#[tokio::test]
async fn a_device_taint_rule_keeps_its_devices_from_claims_that_do_not_tolerate_it() {
    shared_scheduler();
    let ns = Ns::new("drataint").await;
    let node = ns.node("n", "8", json!({}), json!([])).await;
    ns.gpus(&node, 1);
    let rules: Api<kube::core::DynamicObject> = Api::all_with(ns.c.clone(), &dra_resource("DeviceTaintRule", "devicetaintrules"));
    let served = match rules.list(&ListParams::default().limit(1)).await {
        Ok(_) => true,
        Err(kube::Error::Api(e)) if e.code == 404 => false,
        Err(e) => panic!("{e}"),
    };
    if !served {
        // Claims are scheduled without them there; the rule itself is untested.
        ns.gpu_pod("untainted").await;
        ns.bound("untainted").await;
        skip(Lack::Api, "DeviceTaintRules are not served by this API server (before 1.37)");
        return;
    }
    ns.apply(&format!(
        "apiVersion: resource.k8s.io/v1
kind: DeviceTaintRule
metadata: {{name: NS-maintenance}}
spec:
  deviceSelector: {{driver: NS.gpu.example.com, pool: {node}, device: gpu-0}}
  taint: {{key: maintenance, effect: NoSchedule}}
"
    ));
    ns.gpu_pod("blocked").await;
    let note = ns.failed_note("blocked").await;
    assert!(note.contains("1 cannot allocate all claims"), "{note}");
    assert_eq!(ns.node_of("blocked").await, None);
    // The rule goes: the device is free to use, and the waiting pod gets it.
    rules.delete(&format!("{}-maintenance", ns.name), &Default::default()).await.unwrap();
    ns.bound("blocked").await;
}

/// `kubectl berth what-if` with devices: the cluster's slices, classes,
/// claims and templates are read; a new pod's claim is made from its
/// template (as the resourceclaim controller would) and allocated in
/// memory; the cluster is not touched.
#[tokio::test]
async fn what_if_places_new_pods_with_claims_on_the_devices_left() {
    shared_scheduler();
    let ns = Ns::new("drawhatif").await;
    let node = ns.node("n", "8", json!({}), json!([])).await;
    ns.gpus(&node, 2);
    ns.gpu_pod("running").await;
    ns.bound("running").await;
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  schedulerName: berth\n  nodeSelector: {{berth-test: {ns}}}\n  containers: [{{name: c, image: i, resources: {{claims: [{{name: gpu}}]}}}}]\n  resourceClaims: [{{name: gpu, resourceClaimTemplateName: one-gpu}}]\n",
            ns = ns.name
        )
    };
    let manifests = write_temp(&format!("{}-new.yaml", ns.name), &format!("{}---\n{}", pod("first"), pod("second")));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-berth"))
        .arg("--kubeconfig")
        .arg(&env().kubeconfig)
        .args(["what-if", "-o", "json", "-n", &ns.name, "-f", manifests.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let of = |name: &str| v["pods"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap();
    // One GPU is taken by "running": one new pod gets the other, one waits.
    let (first, second) = (of("first"), of("second"));
    let placed: Vec<&Value> = [&first, &second].into_iter().filter(|p| p["node"] == json!(node)).collect();
    assert_eq!(placed.len(), 1, "{first:?} {second:?}");
    let waiting = if first["node"].is_null() { &first } else { &second };
    assert!(waiting["message"].as_str().unwrap().contains("1 cannot allocate all claims"), "{waiting:?}");
    // Nothing changed in the cluster.
    assert!(ns.pods().get_opt("first").await.unwrap().is_none());
    assert_eq!(ns.claims().list(&ListParams::default()).await.unwrap().items.len(), 1, "only the running pod's claim");
}

/// Extended resources backed by DRA (GA in Kubernetes 1.37): a pod asking
/// for `<ns>.example.com/gpu: 2` on a node whose allocatable lacks it gets
/// two devices of the class that names the resource, through a claim Berth
/// creates for it, owned by the pod and named in its status. On API servers
/// before 1.37 (the field is alpha there, off) the class does not back the
/// resource, and the pod stays pending: `Insufficient`.
#[tokio::test]
async fn a_pod_asking_for_an_extended_resource_gets_devices_of_the_class_that_backs_it() {
    shared_scheduler();
    let ns = Ns::new("draext").await;
    let node = ns.node("n", "8", json!({}), json!([])).await;
    let resource = format!("{}.example.com/gpu", ns.name);
    ns.gpus(&node, 3);
    ns.apply(&format!(
        "apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {{name: NS-ext}}
spec:
  extendedResourceName: {resource}
  selectors:
  - cel: {{expression: 'device.driver == \"NS.gpu.example.com\"'}}
"
    ));
    let classes: Api<kube::core::DynamicObject> = Api::all_with(ns.c.clone(), &dra_resource("DeviceClass", "deviceclasses"));
    let class = classes.get(&format!("{}-ext", ns.name)).await.unwrap();
    let backed = class.data.pointer("/spec/extendedResourceName").is_some();
    let gpu_pod = |name: &'static str, count: u32| {
        let resources =
            json!({"requests": {"cpu": "100m", resource.clone(): count.to_string()}, "limits": {resource.clone(): count.to_string()}});
        let extra = json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": resources}]});
        let ns = &ns;
        async move { ns.pod(name, "berth", "100m", extra).await }
    };
    gpu_pod("two", 2).await;
    if !backed {
        eprintln!("this API server drops DeviceClass.spec.extendedResourceName (DRAExtendedResource is off before 1.37): the resource is not backed, the pod waits");
        let note = ns.failed_note("two").await;
        assert!(note.contains(&format!("Insufficient {resource}")), "{note}");
        return;
    }
    ns.bound("two").await;
    let pod = ns.pods().get("two").await.unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    let status = serde_json::to_value(pod.status.unwrap()).unwrap();
    let claim_name = status
        .pointer("/extendedResourceClaimStatus/resourceClaimName")
        .and_then(|n| n.as_str())
        .expect("the pod names its claim")
        .to_string();
    assert!(claim_name.starts_with("two-extended-resources-"), "{claim_name}");
    assert_eq!(
        status.pointer("/extendedResourceClaimStatus/requestMappings"),
        Some(&json!([{"containerName": "c", "resourceName": resource, "requestName": "container-0-request-1"}]))
    );
    let claim = ns.claims().get(&claim_name).await.unwrap();
    assert_eq!(
        claim.metadata.annotations.as_ref().and_then(|a| a.get("resource.kubernetes.io/extended-resource-claim")).map(String::as_str),
        Some("true")
    );
    let owner = &claim.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Pod", uid.as_str(), Some(true)));
    assert_eq!(claim.data.pointer("/status/reservedFor/0/uid").and_then(|u| u.as_str()), Some(uid.as_str()));
    assert_eq!(allocated(&claim).len(), 2, "{claim:?}");

    // One device is left: a pod asking for two waits, with upstream's message.
    gpu_pod("two-more", 2).await;
    let note = ns.failed_note("two-more").await;
    assert!(note.contains("1 cannot allocate all claims"), "{note}");
    assert_eq!(ns.node_of("two-more").await, None);
    // The first pod ends: the resourceclaim controller deletes the claim
    // made for it, and the waiting pod gets two devices.
    ns.pods().delete("two", &Default::default()).await.unwrap();
    ns.bound("two-more").await;
}

impl Ns {
    /// A pod with one claim `gpu` from the template `template`.
    async fn pod_with_template(&self, name: &str, template: &str) {
        let extra = json!({
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template}],
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "100m"}, "claims": [{"name": "gpu"}]}}],
        });
        self.pod(name, "berth", "100m", extra).await;
    }
}

/// One claim, written by the user, shared by three pods: one device is
/// allocated once, and every pod that uses it is in `reservedFor`.
#[tokio::test]
async fn a_shared_claim_is_allocated_once_and_reserved_for_every_pod_that_uses_it() {
    shared_scheduler();
    let ns = Ns::new("drashared").await;
    let node = ns.node("n", "8", json!({}), json!([])).await;
    ns.gpus(&node, 2);
    ns.apply(
        "apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: shared}
spec: {devices: {requests: [{name: gpu, exactly: {deviceClassName: NS-gpu, allocationMode: ExactCount, count: 1}}]}}
",
    );
    let extra = json!({
        "resourceClaims": [{"name": "gpu", "resourceClaimName": "shared"}],
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "100m"}, "claims": [{"name": "gpu"}]}}],
    });
    let pods = ["reader-0", "reader-1", "reader-2"];
    for p in pods {
        ns.pod(p, "berth", "100m", extra.clone()).await;
    }
    let mut uids = Vec::new();
    for p in pods {
        assert_eq!(ns.bound(p).await, node, "{p}");
        uids.push(ns.pods().get(p).await.unwrap().metadata.uid.unwrap());
    }
    let claim = wait_for("the claim reserved for all three pods", || async {
        let c = ns.claims().get("shared").await.ok()?;
        let n = c.data.pointer("/status/reservedFor").and_then(|r| r.as_array()).map_or(0, Vec::len);
        (n == 3).then_some(c)
    })
    .await;
    let mut reserved: Vec<String> =
        claim.data["status"]["reservedFor"].as_array().unwrap().iter().map(|r| r["uid"].as_str().unwrap().to_string()).collect();
    reserved.sort();
    uids.sort();
    assert_eq!(reserved, uids);
    assert_eq!(allocated(&claim), [format!("{}.gpu.example.com/{node}/gpu-0", ns.name)], "one device, allocated once");
    // The other GPU is still free for a claim of its own.
    ns.gpu_pod("own").await;
    ns.bound("own").await;
    assert_eq!(allocated(&ns.claim_of("own").await), [format!("{}.gpu.example.com/{node}/gpu-1", ns.name)]);
}

/// `firstAvailable`: a request lists what it would take, best first. No
/// H100 is published, so the claim gets an A100 through its second
/// subrequest, and the allocation names that subrequest.
#[tokio::test]
async fn first_available_takes_the_first_subrequest_that_can_be_met() {
    shared_scheduler();
    let ns = Ns::new("drafirst").await;
    let node = ns.node("n", "8", json!({}), json!([])).await;
    ns.gpus(&node, 1);
    ns.apply(
        "apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: best-gpu}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        firstAvailable:
        - name: h100
          deviceClassName: NS-gpu
          selectors: [{cel: {expression: 'device.attributes[\"NS.gpu.example.com\"].model == \"h100\"'}}]
        - name: a100
          deviceClassName: NS-gpu
          selectors: [{cel: {expression: 'device.attributes[\"NS.gpu.example.com\"].model == \"a100\"'}}]
",
    );
    ns.pod_with_template("trainer", "best-gpu").await;
    assert_eq!(ns.bound("trainer").await, node);
    let claim = ns.claim_of("trainer").await;
    let results = claim.data.pointer("/status/allocation/devices/results").and_then(|r| r.as_array()).cloned().unwrap_or_default();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["request"], json!("gpu/a100"));
    assert_eq!(results[0]["device"], json!("gpu-0"));
    // The only A100 is taken and no H100 exists: the next pod waits.
    ns.pod_with_template("second", "best-gpu").await;
    let note = ns.failed_note("second").await;
    assert!(note.contains("1 cannot allocate all claims"), "{note}");
    assert_eq!(ns.node_of("second").await, None);
}

/// Partitionable devices: one GPU offered whole or as two halves, all
/// drawing on one counter set of 40Gi. Two halves fit together; the whole
/// GPU waits until both halves are released. Before Kubernetes 1.35 the
/// API server drops counters (DRAPartitionableDevices was alpha, off).
#[tokio::test]
async fn partitions_of_one_device_share_its_counters() {
    shared_scheduler();
    let ns = Ns::new("drapart").await;
    let node = ns.node("n", "8", json!({}), json!([])).await;
    let consumes = |gi: u32| format!("consumesCounters: [{{counterSet: gpu-0, counters: {{memory: {{value: {gi}Gi}}}}}}]");
    ns.apply(&format!(
        "apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {{name: NS-gpu}}
spec: {{}}
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {{name: {node}-counters}}
spec:
  driver: NS.gpu.example.com
  nodeName: {node}
  pool: {{name: {node}, generation: 1, resourceSliceCount: 2}}
  sharedCounters:
  - name: gpu-0
    counters: {{memory: {{value: 40Gi}}}}
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {{name: {node}-partitions}}
spec:
  driver: NS.gpu.example.com
  nodeName: {node}
  pool: {{name: {node}, generation: 1, resourceSliceCount: 2}}
  devices:
  - {{name: whole, attributes: {{size: {{string: whole}}}}, {whole}}}
  - {{name: half-0, attributes: {{size: {{string: half}}}}, {half}}}
  - {{name: half-1, attributes: {{size: {{string: half}}}}, {half}}}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {{name: half}}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly:
          deviceClassName: NS-gpu
          selectors: [{{cel: {{expression: 'device.attributes[\"NS.gpu.example.com\"].size == \"half\"'}}}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {{name: whole}}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly:
          deviceClassName: NS-gpu
          selectors: [{{cel: {{expression: 'device.attributes[\"NS.gpu.example.com\"].size == \"whole\"'}}}}]
",
        whole = consumes(40),
        half = consumes(20),
    ));
    let slices: Api<kube::core::DynamicObject> = Api::all_with(ns.c.clone(), &dra_resource("ResourceSlice", "resourceslices"));
    let counters = slices.get(&format!("{node}-counters")).await.unwrap();
    if counters.data.pointer("/spec/sharedCounters").is_none() {
        skip(Lack::Api, "this API server drops ResourceSlice sharedCounters (DRAPartitionableDevices is off before 1.35)");
        return;
    }
    ns.pod_with_template("half-a", "half").await;
    ns.pod_with_template("half-b", "half").await;
    let mut halves = Vec::new();
    for p in ["half-a", "half-b"] {
        assert_eq!(ns.bound(p).await, node, "{p}");
        halves.extend(allocated(&ns.claim_of(p).await));
    }
    halves.sort();
    let device = |d: &str| format!("{}.gpu.example.com/{node}/{d}", ns.name);
    assert_eq!(halves, [device("half-0"), device("half-1")]);
    // The halves use all 40Gi: the whole GPU is not free, though no claim has it.
    ns.pod_with_template("big", "whole").await;
    let note = ns.failed_note("big").await;
    assert!(note.contains("1 cannot allocate all claims"), "{note}");
    // One half released: 20Gi is still not enough.
    ns.pods().delete("half-a", &Default::default()).await.unwrap();
    wait_for("half-a's claim to be deleted", || async {
        let left = ns.claims().list(&ListParams::default()).await.ok()?.items.len();
        (left == 2).then_some(())
    })
    .await;
    ns.pod_with_template("half-c", "half").await;
    assert_eq!(ns.bound("half-c").await, node);
    assert_eq!(ns.node_of("big").await, None, "the whole GPU went out while a half was in use");
    // Both halves released: the whole GPU is bound.
    ns.pods().delete("half-b", &Default::default()).await.unwrap();
    ns.pods().delete("half-c", &Default::default()).await.unwrap();
    assert_eq!(ns.bound("big").await, node);
    assert_eq!(allocated(&ns.claim_of("big").await), [device("whole")]);
}
