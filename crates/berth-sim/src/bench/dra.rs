//! scheduler_perf's DRA workloads (test/integration/scheduler_perf/dra/),
//! with its templates: nodes with ten devices each of the test driver
//! (`resourceslice-basic-devices.yaml`), the `test-class` DeviceClass, and
//! pods with a claim from a template, a shared claim, partitionable devices
//! or a prioritized list. Claims from templates are made as the
//! resourceclaim controller makes them; claims are written to memory.

use berth_core::model::{Pod, PodResourceClaim};
use berth_core::testing::make_pod;
use serde_json::{json, Value};

use super::Workload;

/// The test driver's name.
const DRIVER: &str = "test-driver.cdi.k8s.io";

/// `resourceslice-basic-devices.yaml`: `devices` devices on node `i`, two PCI roots.
fn basic_slice(i: usize, devices: usize) -> Value {
    let devs: Vec<Value> = (0..devices)
        .map(|d| {
            json!({"name": format!("basic-device-{d}"), "attributes": {
                "driver": {"string": "xe"}, "driverVersion": {"version": "1.2.3"},
                "resource.k8s.io/pciRoot": {"string": format!("{}", d % 2)},
                "family": {"string": "Arc Pro B-Series"}, "health": {"string": "Healthy"}, "model": {"string": "B60"},
                "pciAddress": {"string": format!("0000:0{d}:00.0")}, "pciId": {"string": "0xe211"},
                "pciRoot": {"string": format!("0{}", d % 2)},
                "resource.kubernetes.io/pciBusID": {"string": format!("0000:0{d}:00.0")},
                "resource.kubernetes.io/pciRoot": {"string": format!("pci0000:0{}", d % 2)},
                "sriov": {"bool": true}, "type": {"string": "gpu"}},
                "capacity": {"memory": {"value": "24480Mi"}, "millicores": {"value": "1k"}}})
        })
        .collect();
    json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": format!("resourceslice-{i}")},
        "spec": {"driver": DRIVER, "nodeName": format!("node-{i}"),
            "pool": {"name": format!("resourceslice-{i}"), "generation": 1, "resourceSliceCount": 1}, "devices": devs}})
}

/// `resourceslice-partitionable-{countersets,devices}.yaml`: a counter set
/// of four counters of one, and two devices taking two each.
fn partitionable_slices(i: usize) -> Vec<Value> {
    let pool = json!({"name": format!("resourceslice-{i}"), "generation": 1, "resourceSliceCount": 2});
    let counters = |names: &[&str]| -> Value {
        names.iter().map(|n| (n.to_string(), json!({"value": "1"}))).collect::<serde_json::Map<_, _>>().into()
    };
    vec![
        json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": format!("resourceslice-countersets-{i}")},
            "spec": {"driver": DRIVER, "nodeName": format!("node-{i}"), "pool": pool,
                "sharedCounters": [{"name": "counter-set", "counters": counters(&["counter1", "counter2", "counter3", "counter4"])}]}}),
        json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": format!("resourceslice-devices-{i}")},
            "spec": {"driver": DRIVER, "nodeName": format!("node-{i}"), "pool": pool, "devices": [
                {"name": "device-1", "consumesCounters": [{"counterSet": "counter-set", "counters": counters(&["counter1", "counter2"])}]},
                {"name": "device-2", "consumesCounters": [{"counterSet": "counter-set", "counters": counters(&["counter3", "counter4"])}]}]}}),
    ]
}

fn class(name: &str, driver: &str) -> Value {
    json!({"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": name},
        "spec": {"selectors": [{"cel": {"expression": format!("device.driver == \"{driver}\"")}}]}})
}

fn template(requests: Value) -> Value {
    json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
        "metadata": {"name": "test-claim-template", "namespace": "bench"}, "spec": {"spec": {"devices": {"requests": requests}}}})
}

/// The objects of a DRA workload on `nodes` nodes with `claims` shared claims.
pub(super) fn objects(w: Workload, nodes: usize, claims: usize) -> Vec<Value> {
    let mut out = vec![class("test-class", DRIVER)];
    match w {
        Workload::DraClaimTemplate => {
            out.extend((0..nodes).map(|i| basic_slice(i, 10)));
            out.push(template(json!([{"name": "req-0", "exactly": {"deviceClassName": "test-class"}}])));
        }
        Workload::DraSharedClaim => {
            out.extend((0..nodes).map(|i| basic_slice(i, 2)));
            for c in 0..claims {
                out.push(json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                    "metadata": {"name": format!("test-claim-{c}"), "namespace": "bench"},
                    "spec": {"devices": {"requests": [{"name": "req-0", "exactly": {"deviceClassName": "test-class"}}]}}}));
            }
        }
        Workload::DraPartitionable => {
            out.extend((0..nodes).flat_map(partitionable_slices));
            out.push(template(
                json!([{"name": "req-0", "exactly": {"deviceClassName": "test-class", "allocationMode": "ExactCount", "count": 2}}]),
            ));
        }
        Workload::DraFirstAvailable => {
            out.extend((0..nodes).map(|i| basic_slice(i, 10)));
            out.push(class("no-devices-class", "no-such-driver.cdi.k8s.io"));
            out.push(template(json!([{"name": "req-0", "firstAvailable": [
                {"name": "sub-0", "deviceClassName": "no-devices-class"},
                {"name": "sub-1", "deviceClassName": "test-class"}]}])));
        }
        _ => {}
    }
    out
}

/// Pod `i` of a DRA workload (`pod-with-claim-template.yaml` or
/// `pod-with-claim-ref.yaml`: five pods share each claim).
pub(super) fn pod(w: Workload, name: &str, i: usize, ms: i64) -> Pod {
    let mut p = make_pod(name).namespace("bench").creation(ms).obj();
    p.resource_claims.push(match w {
        Workload::DraSharedClaim => {
            PodResourceClaim { name: "resource".into(), resource_claim_name: Some(format!("test-claim-{}", i / 5)), ..Default::default() }
        }
        _ => PodResourceClaim {
            name: "resource".into(),
            resource_claim_template_name: Some("test-claim-template".into()),
            ..Default::default()
        },
    });
    p
}

/// How many pods of a DRA workload fit: one device (two for partitionable
/// devices, of which a node has two) per pod, five pods per shared claim.
pub(super) fn placeable(w: Workload, nodes: usize, init: usize, pods: usize) -> usize {
    let capacity = match w {
        Workload::DraClaimTemplate | Workload::DraFirstAvailable => nodes * 10,
        Workload::DraSharedClaim => nodes * 2 * 5,
        Workload::DraPartitionable => nodes,
        _ => return pods,
    };
    capacity.saturating_sub(init).min(pods)
}
