//! The custom scheduler's plugins in the simulator: through the library
//! (`berth::sim::run`) and through the binary's own `simulate` command.

use std::process::Command;

const CONFIG: &str = include_str!("../deploy/config.yaml");
const CLUSTER: &str = include_str!("../demo/cluster.yaml");

/// Where a pod went, and the first sentence of its FailedScheduling message
/// (the part after it says what preemption made of it).
fn placement(r: &berth::sim::SimResult, pod: &str) -> (Option<String>, String) {
    let p = r.pods.iter().find(|p| p.name == pod).unwrap_or_else(|| panic!("{pod} not in the result"));
    (p.node.clone(), p.message.split(" preemption:").next().unwrap_or_default().to_string())
}

#[test]
fn pools_costs_and_team_quotas() {
    let r = berth::sim::run(CLUSTER, CONFIG, custom_scheduler::app().registry()).unwrap();
    // The cheapest node of the pod's pool; without an annotation, the default pool.
    assert_eq!(placement(&r, "train-0").0.as_deref(), Some("gold-1"));
    assert_eq!(placement(&r, "web-0").0.as_deref(), Some("general-1"));
    assert_eq!(placement(&r, "batch-0"), (None, "0/4 nodes are available: 4 node(s) are not in pool silver.".into()));
    let batch = r.pods.iter().find(|p| p.name == "batch-0").unwrap();
    assert!(
        batch.message.ends_with("preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."),
        "{}",
        batch.message
    );
    // The Team object came from the manifests: two of its pods run, the third waits.
    assert!(placement(&r, "blue-0").0.is_some() && placement(&r, "blue-1").0.is_some());
    assert_eq!(placement(&r, "blue-2"), (None, "0/4 nodes are available: team blue is at its quota of 2 pod(s).".into()));
    assert_eq!(placement(&r, "red-0"), (None, "0/4 nodes are available: team red does not exist.".into()));
    // PreBind ran and recorded its event; StampedBinder bound (in memory).
    let blue0 = r.pods.iter().find(|p| p.name == "blue-0").unwrap();
    assert_eq!(blue0.events.len(), 1);
    assert_eq!((blue0.events[0].reason.as_str(), blue0.events[0].note.as_str()), ("Admitted", "team blue: pod 1 of 2"));
}

#[test]
fn the_binary_has_berths_commands() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_custom-scheduler"))
        .args(["simulate", "--output", "json", "--config", &format!("{dir}/deploy/config.yaml"), &format!("{dir}/demo")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["scheduled"], 4);
    assert_eq!(v["summary"]["unschedulable"], 3);
    assert!(String::from_utf8_lossy(&out.stderr).is_empty(), "the Team objects are read, not skipped");
    // A typo in the plugin's args is a one-line configuration error.
    let bad = std::env::temp_dir().join(format!("custom-scheduler-bad-{}.yaml", std::process::id()));
    std::fs::write(&bad, CONFIG.replace("defaultPool", "defaultPol")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_custom-scheduler"))
        .args(["simulate", "--config"])
        .arg(&bad)
        .arg(format!("{dir}/demo"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("plugin \"NodePool\"") && stderr.contains("unknown field \"defaultPol\""), "{stderr}");
    assert_eq!(stderr.matches("unknown field").count(), 1, "the reason once, not repeated by the error chain: {stderr}");
}

/// DeviceReport names the devices a bound pod's claims got.
#[test]
fn device_report_names_the_devices_of_a_bound_pod() {
    let cluster = r#"
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {kubernetes.io/hostname: n1}}
status: {allocatable: {cpu: "8", memory: 32Gi, pods: "110"}}
---
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu.example.com}
spec:
  selectors: [{cel: {expression: 'device.driver == "gpu.example.com"'}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: n1-gpus}
spec:
  driver: gpu.example.com
  nodeName: n1
  pool: {name: n1, generation: 1, resourceSliceCount: 1}
  devices: [{name: gpu-0}, {name: gpu-1}, {name: gpu-2}]
---
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu-by-count}
spec:
  extendedResourceName: example.com/gpu
  selectors: [{cel: {expression: 'device.driver == "gpu.example.com"'}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: two-gpus}
spec:
  spec:
    devices:
      requests: [{name: gpus, exactly: {deviceClassName: gpu.example.com, allocationMode: ExactCount, count: 2}}]
---
apiVersion: v1
kind: Pod
metadata: {name: trainer}
spec:
  schedulerName: custom-scheduler
  containers: [{name: c, image: train, resources: {claims: [{name: gpu}]}}]
  resourceClaims: [{name: gpu, resourceClaimTemplateName: two-gpus}]
---
apiVersion: v1
kind: Pod
metadata: {name: inferer}
spec:
  schedulerName: custom-scheduler
  containers: [{name: c, image: infer, resources: {limits: {example.com/gpu: "1"}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  schedulerName: custom-scheduler
  containers: [{name: c, image: web}]
"#;
    let config = "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: custom-scheduler
  plugins:
    multiPoint:
      enabled: [{name: DeviceReport}]
";
    let r = berth::sim::run(cluster, config, custom_scheduler::app().registry()).unwrap();
    let trainer = r.pods.iter().find(|p| p.name == "trainer").unwrap();
    assert_eq!(trainer.node.as_deref(), Some("n1"), "{}", trainer.message);
    let report = trainer.events.iter().find(|e| e.reason == "DevicesAllocated").expect("a DevicesAllocated event");
    assert_eq!(report.note, "gpu: gpu.example.com/n1/gpu-0, gpu.example.com/n1/gpu-1");
    // A pod asking for `example.com/gpu`, which a DeviceClass backs: its
    // device comes through the claim the scheduler made, under that claim's name.
    let inferer = r.pods.iter().find(|p| p.name == "inferer").unwrap();
    assert_eq!(inferer.node.as_deref(), Some("n1"), "{}", inferer.message);
    let report = inferer.events.iter().find(|e| e.reason == "DevicesAllocated").expect("a DevicesAllocated event");
    let (claim, devices) = report.note.split_once(": ").unwrap();
    assert!(claim.starts_with("inferer-extended-resources-"), "{}", report.note);
    assert_eq!(devices, "gpu.example.com/n1/gpu-2");
    // A pod with neither gets no report.
    let plain = r.pods.iter().find(|p| p.name == "plain").unwrap();
    assert!(!plain.events.iter().any(|e| e.reason == "DevicesAllocated"), "{:?}", plain.events);
}
