//! Table tests of DynamicResources' allocator and plugin, in the manner of
//! upstream's `allocatortesting` cases: slices, classes and claims in, the
//! devices (or the error) out.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::allocator::{AllocError, AllocatedState, Allocator};
use super::inventory::Inventory;
use super::objects::*;
use crate::model::Labels;

pub(crate) fn slice(name: &str, node: &str, pool: &str, driver: &str, devices: Value) -> Value {
    json!({"metadata": {"name": name}, "spec": {"driver": driver, "nodeName": node,
        "pool": {"name": pool, "generation": 1, "resourceSliceCount": 1}, "devices": devices}})
}

pub(crate) fn class(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {}})
}

pub(crate) fn claim(name: &str, requests: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")}, "spec": {"devices": {"requests": requests}}})
}

pub(crate) fn exactly(name: &str, class: &str, count: i64) -> Value {
    json!({"name": name, "exactly": {"deviceClassName": class, "allocationMode": "ExactCount", "count": count}})
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test object decodes")
}

/// One claim's devices: (request, `driver/pool/device`).
type Picks = Vec<(&'static str, &'static str)>;

/// One case: the objects, the node, and the devices expected per claim
/// (`driver/pool/device` for request `req`), or the error's text.
struct Case {
    name: &'static str,
    slices: Vec<Value>,
    classes: Vec<Value>,
    claims: Vec<Value>,
    allocated: Vec<Value>,
    node: &'static str,
    expect: Result<Option<Vec<Picks>>, &'static str>,
}

fn run(case: &Case) -> Result<Option<Vec<super::allocator::Allocation>>, AllocError> {
    let slices: Vec<ResourceSlice> = case.slices.iter().cloned().map(decode).collect();
    let inv = Arc::new(Inventory::build(slices.iter(), &[]));
    let mut allocated = AllocatedState::default();
    for c in &case.allocated {
        let c: ResourceClaim = decode(c.clone());
        if let Some(a) = &c.status.allocation {
            allocated.apply(&inv, a, true);
        }
    }
    let classes: HashMap<String, Arc<DeviceClass>> =
        case.classes.iter().cloned().map(decode::<DeviceClass>).map(|c| (c.metadata.name.clone(), Arc::new(c))).collect();
    let claims: Vec<Arc<ResourceClaim>> = case.claims.iter().cloned().map(|c| Arc::new(decode(c))).collect();
    let a = Allocator::new(inv, Arc::new(allocated), classes, claims);
    let labels = Labels::new();
    a.allocate(case.node, &labels)
}

fn devices(devs: &[&str]) -> Value {
    Value::Array(devs.iter().map(|d| json!({"name": d})).collect())
}

#[test]
fn allocator_cases() {
    let cases = vec![
        Case {
            name: "simple",
            slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1"]))],
            classes: vec![class("class-a")],
            claims: vec![claim("claim-0", json!([exactly("req-0", "class-a", 1)]))],
            allocated: vec![],
            node: "node-1",
            expect: Ok(Some(vec![vec![("req-0", "driver-a/pool-1/device-1")]])),
        },
        Case {
            name: "other node",
            slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1"]))],
            classes: vec![class("class-a")],
            claims: vec![claim("claim-0", json!([exactly("req-0", "class-a", 1)]))],
            allocated: vec![],
            node: "node-2",
            expect: Ok(None),
        },
        Case {
            name: "pools in driver then name order, devices in slice order",
            slices: vec![
                slice("slice-b", "node-1", "pool-b", "driver-a", devices(&["z", "y"])),
                slice("slice-a", "node-1", "pool-a", "driver-a", devices(&["d2", "d1"])),
            ],
            classes: vec![class("class-a")],
            claims: vec![claim("claim-0", json!([exactly("req-0", "class-a", 3)]))],
            allocated: vec![],
            node: "node-1",
            expect: Ok(Some(vec![vec![("req-0", "driver-a/pool-a/d2"), ("req-0", "driver-a/pool-a/d1"), ("req-0", "driver-a/pool-b/z")]])),
        },
        Case {
            name: "allocated devices are skipped",
            slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1", "device-2"]))],
            classes: vec![class("class-a")],
            claims: vec![claim("claim-0", json!([exactly("req-0", "class-a", 1)]))],
            allocated: vec![json!({"metadata": {"name": "other", "namespace": "default"}, "status": {"allocation": {"devices": {"results": [
                {"request": "r", "driver": "driver-a", "pool": "pool-1", "device": "device-1"}]}}}})],
            node: "node-1",
            expect: Ok(Some(vec![vec![("req-0", "driver-a/pool-1/device-2")]])),
        },
        Case {
            name: "not enough devices",
            slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1"]))],
            classes: vec![class("class-a")],
            claims: vec![claim("claim-0", json!([exactly("req-0", "class-a", 2)]))],
            allocated: vec![],
            node: "node-1",
            expect: Ok(None),
        },
        Case {
            name: "unknown class",
            slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1"]))],
            classes: vec![],
            claims: vec![claim("claim-0", json!([exactly("req-0", "class-a", 1)]))],
            allocated: vec![],
            node: "node-1",
            expect: Err(
                "claim default/claim-0, request req-0: could not retrieve device class class-a: deviceclass.resource.k8s.io \"class-a\" not found",
            ),
        },
        Case {
            name: "two claims do not share a device",
            slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1", "device-2"]))],
            classes: vec![class("class-a")],
            claims: vec![claim("claim-0", json!([exactly("req-0", "class-a", 1)])), claim("claim-1", json!([exactly("req-0", "class-a", 1)]))],
            allocated: vec![],
            node: "node-1",
            expect: Ok(Some(vec![vec![("req-0", "driver-a/pool-1/device-1")], vec![("req-0", "driver-a/pool-1/device-2")]])),
        },
        Case {
            name: "too many devices in one claim",
            slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1"]))],
            classes: vec![class("class-a")],
            claims: vec![claim("claim-0", json!([exactly("req-0", "class-a", 33)]))],
            allocated: vec![],
            node: "node-1",
            expect: Err("claim default/claim-0, request req-0: adding 33 devices exceeds the claim limit of 32, with 0 already accounted for"),
        },
        Case {
            name: "all devices",
            slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1", "device-2"]))],
            classes: vec![class("class-a")],
            claims: vec![claim("claim-0", json!([{"name": "req-0", "exactly": {"deviceClassName": "class-a", "allocationMode": "All"}}]))],
            allocated: vec![],
            node: "node-1",
            expect: Ok(Some(vec![vec![("req-0", "driver-a/pool-1/device-1"), ("req-0", "driver-a/pool-1/device-2")]])),
        },
        Case {
            name: "all devices, one allocated: none",
            slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1", "device-2"]))],
            classes: vec![class("class-a")],
            claims: vec![claim("claim-0", json!([{"name": "req-0", "exactly": {"deviceClassName": "class-a", "allocationMode": "All"}}]))],
            allocated: vec![json!({"metadata": {"name": "other"}, "status": {"allocation": {"devices": {"results": [
                {"request": "r", "driver": "driver-a", "pool": "pool-1", "device": "device-2"}]}}}})],
            node: "node-1",
            expect: Ok(None),
        },
        Case {
            name: "first available falls back to the second subrequest",
            slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1"]))],
            classes: vec![class("class-a")],
            claims: vec![claim(
                "claim-0",
                json!([{"name": "req-0", "firstAvailable": [
                    {"name": "two", "deviceClassName": "class-a", "allocationMode": "ExactCount", "count": 2},
                    {"name": "one", "deviceClassName": "class-a", "allocationMode": "ExactCount", "count": 1}]}]),
            )],
            allocated: vec![],
            node: "node-1",
            expect: Ok(Some(vec![vec![("req-0/one", "driver-a/pool-1/device-1")]])),
        },
        Case {
            name: "untolerated NoSchedule taint",
            slices: vec![slice(
                "slice-1",
                "node-1",
                "pool-1",
                "driver-a",
                json!([{"name": "device-1", "taints": [{"key": "k", "effect": "NoSchedule"}]}, {"name": "device-2"}]),
            )],
            classes: vec![class("class-a")],
            claims: vec![claim("claim-0", json!([exactly("req-0", "class-a", 1)]))],
            allocated: vec![],
            node: "node-1",
            expect: Ok(Some(vec![vec![("req-0", "driver-a/pool-1/device-2")]])),
        },
        Case {
            name: "match attribute backtracks to a matching pair",
            slices: vec![slice(
                "slice-1",
                "node-1",
                "pool-1",
                "driver-a",
                json!([
                    {"name": "a1", "attributes": {"numa": {"int": 0}}},
                    {"name": "b1", "attributes": {"numa": {"int": 1}}},
                    {"name": "b2", "attributes": {"numa": {"int": 1}}},
                ]),
            )],
            classes: vec![class("class-a")],
            claims: vec![json!({"metadata": {"name": "claim-0", "namespace": "default"}, "spec": {"devices": {
                "requests": [exactly("req-0", "class-a", 1), exactly("req-1", "class-a", 1)],
                "constraints": [{"matchAttribute": "driver-a/numa"}]}}})],
            allocated: vec![],
            node: "node-1",
            expect: Ok(Some(vec![vec![("req-0", "driver-a/pool-1/b1"), ("req-1", "driver-a/pool-1/b2")]])),
        },
    ];
    for case in &cases {
        let got = run(case);
        match (&case.expect, got) {
            (Err(want), Err(e)) => assert_eq!(e.to_string(), *want, "{}", case.name),
            (Ok(None), Ok(None)) => {}
            (Ok(Some(want)), Ok(Some(got))) => {
                let got: Vec<Vec<(String, String)>> = got
                    .iter()
                    .map(|a| {
                        a.result
                            .devices
                            .results
                            .iter()
                            .map(|r| (r.request.clone(), format!("{}/{}/{}", r.driver, r.pool, r.device)))
                            .collect()
                    })
                    .collect();
                let want: Vec<Vec<(String, String)>> =
                    want.iter().map(|c| c.iter().map(|(r, d)| (r.to_string(), d.to_string())).collect()).collect();
                assert_eq!(got, want, "{}", case.name);
            }
            (want, got) => panic!("{}: want {want:?}, got {got:?}", case.name),
        }
    }
}

#[test]
fn a_local_device_binds_the_allocation_to_its_node() {
    let case = Case {
        name: "node selector",
        slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devices(&["device-1"]))],
        classes: vec![class("class-a")],
        claims: vec![claim("claim-0", json!([exactly("req-0", "class-a", 1)]))],
        allocated: vec![],
        node: "node-1",
        expect: Ok(None),
    };
    let got = run(&case).unwrap().unwrap();
    let sel = serde_json::to_value(&got[0].result.node_selector).unwrap();
    assert_eq!(sel, json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]}));
}

#[test]
fn diagnose_says_how_far_the_node_s_devices_got() {
    let base = |devs: Value, claim_json: Value, allocated: Vec<Value>| Case {
        name: "diagnose",
        slices: vec![slice("slice-1", "node-1", "pool-1", "driver-a", devs)],
        classes: vec![
            json!({"metadata": {"name": "class-a"}, "spec": {"selectors": [{"cel": {"expression": "device.driver == \"driver-a\""}}]}}),
        ],
        claims: vec![claim_json],
        allocated,
        node: "node-1",
        expect: Ok(None),
    };
    let diagnose = |case: &Case| {
        let slices: Vec<ResourceSlice> = case.slices.iter().cloned().map(decode).collect();
        let inv = Arc::new(Inventory::build(slices.iter(), &[]));
        let mut allocated = AllocatedState::default();
        for c in &case.allocated {
            let c: ResourceClaim = decode(c.clone());
            allocated.apply_owned(&inv, c.status.allocation.as_ref().unwrap(), true, Some(&c.key()));
        }
        let classes: HashMap<String, Arc<DeviceClass>> =
            case.classes.iter().cloned().map(decode::<DeviceClass>).map(|c| (c.metadata.name.clone(), Arc::new(c))).collect();
        let claims: Vec<Arc<ResourceClaim>> = case.claims.iter().cloned().map(|c| Arc::new(decode(c))).collect();
        let a = Allocator::new(inv, Arc::new(allocated), classes, claims);
        assert!(a.allocate(case.node, &Labels::new()).unwrap().is_none(), "the case must not fit");
        a.diagnose(case.node, &Labels::new())
    };
    // Taken by another claim.
    let taken = base(
        devices(&["device-1"]),
        claim("claim-0", json!([exactly("req-0", "class-a", 1)])),
        vec![json!({"metadata": {"name": "other", "namespace": "ml"}, "status": {"allocation": {"devices": {"results": [
            {"request": "r", "driver": "driver-a", "pool": "pool-1", "device": "device-1"}]}}}})],
    );
    assert_eq!(
        diagnose(&taken),
        "claim default/claim-0, request req-0: needs 1; this node has 1 of its class, 0 free (taken by claim ml/other)"
    );
    // Selectors and taints.
    let picky = base(
        json!([{"name": "a", "attributes": {"model": {"string": "x"}}}, {"name": "b", "attributes": {"model": {"string": "y"}}, "taints": [{"key": "k", "effect": "NoSchedule"}]}]),
        claim(
            "claim-0",
            json!([{"name": "req-0", "exactly": {"deviceClassName": "class-a", "allocationMode": "ExactCount", "count": 1,
                "selectors": [{"cel": {"expression": "device.attributes[\"driver-a\"].model == \"y\""}}]}}]),
        ),
        vec![],
    );
    assert_eq!(
        diagnose(&picky),
        "claim default/claim-0, request req-0: needs 1; this node has 2 of its class, 1 matching its selectors, 0 untainted (or tolerated)"
    );
    // Enough for each request alone, not for both.
    let together = base(devices(&["a"]), claim("claim-0", json!([exactly("req-0", "class-a", 1), exactly("req-1", "class-a", 1)])), vec![]);
    assert_eq!(diagnose(&together), "each request could be met alone, but not all together");
}

/// Kubernetes 1.34 writes a slice's `devices` as `null` when it has none
/// (a counters-only slice, or counters its API server dropped): such a
/// slice is read as one with no devices, not refused.
#[test]
fn a_slice_with_null_lists_is_read_as_empty() {
    let slice: ResourceSlice = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "n-counters"},
        "spec": {"driver": "gpu.example.com", "nodeName": "n", "pool": {"name": "n", "generation": 1, "resourceSliceCount": 2},
                 "devices": null, "sharedCounters": null}
    }))
    .unwrap();
    assert!(slice.spec.devices.is_empty() && slice.spec.shared_counters.is_empty());
    assert_eq!(slice.spec.node_name.as_deref(), Some("n"));
}
