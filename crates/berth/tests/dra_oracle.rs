//! Berth's DRA allocator against upstream's, decision for decision.
//!
//! Random clusters of ResourceSlices (pools of several slices and
//! generations, node selection of every kind, taints, partitionable devices
//! with shared counters, consumable capacity, binding conditions), classes,
//! claims (ExactCount and All, firstAvailable, matchAttribute and
//! distinctAttribute, admin access, tolerations, capacity requests) and
//! devices already allocated are given to Berth's allocator and to
//! upstream's (`testenv/dra-oracle`: `k8s.io/dynamic-resource-allocation`
//! at the pinned release, run as a program). Both must pick the same devices
//! for the same requests, write the same configuration and node selector,
//! or fail the same way with the same message.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use berth_core::model::Labels;
use berth_core::plugins::dynamic_resources::allocator::{AllocError, AllocatedState, Allocator};
use berth_core::plugins::dynamic_resources::inventory::Inventory;
use berth_core::plugins::dynamic_resources::objects::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde_json::{json, Value};

/// One random case.
struct Gen {
    rng: Pcg64,
}

impl Gen {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.rng.random_range(0..xs.len())]
    }

    fn n(&mut self, lo: usize, hi: usize) -> usize {
        self.rng.random_range(lo..=hi)
    }

    fn scope(&mut self) -> Value {
        match self.n(0, 9) {
            0..=5 => json!({"nodeName": "node-1"}),
            6 => json!({"nodeName": "node-2"}),
            7 => json!({"allNodes": true}),
            _ => json!({"nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": [self.pick(&["a", "b"]).to_string()]}]}]}}),
        }
    }

    fn device(&mut self, name: String, counters: bool, per_device: bool) -> Value {
        let mut d = json!({"name": name});
        let mut attrs = serde_json::Map::new();
        if self.chance(0.6) {
            attrs.insert("numa".into(), json!({"int": self.n(0, 1)}));
        }
        if self.chance(0.4) {
            attrs.insert("model".into(), json!({"string": self.pick(&["x", "y"]).to_string()}));
        }
        if self.chance(0.2) {
            attrs.insert("driver-a/fast".into(), json!({"bool": self.chance(0.5)}));
        }
        if self.chance(0.2) {
            attrs.insert("ver".into(), json!({"version": self.pick(&["1.0.0", "2.0.0"]).to_string()}));
        }
        if !attrs.is_empty() {
            d["attributes"] = Value::Object(attrs);
        }
        if self.chance(0.15) {
            let effect = self.pick(&["NoSchedule", "NoExecute", "None"]).to_string();
            d["taints"] = json!([{"key": self.pick(&["k1", "k2"]).to_string(), "effect": effect}]);
        }
        if self.chance(0.05) {
            d["bindingConditions"] = json!(["attached"]);
            d["bindingFailureConditions"] = json!(["failed"]);
        }
        if counters {
            let amount = self.pick(&["2", "4"]).to_string();
            d["consumesCounters"] = json!([{"counterSet": "cs", "counters": {"mem": {"value": amount}}}]);
        }
        if self.chance(0.15) {
            d["allowMultipleAllocations"] = json!(true);
            let policy = match self.n(0, 3) {
                0 => Value::Null,
                1 => json!({"default": "2", "validRange": {"min": "1", "max": "8", "step": "1"}}),
                2 => json!({"default": "1", "validValues": ["1", "2", "4"]}),
                _ => json!({"validRange": {"min": "2", "step": "2"}}),
            };
            let mut cap = json!({"value": self.pick(&["8", "10"]).to_string()});
            if !policy.is_null() {
                cap["requestPolicy"] = policy;
            }
            d["capacity"] = json!({"bw": cap});
        } else if self.chance(0.3) {
            d["capacity"] = json!({"memory": {"value": self.pick(&["1Gi", "2Gi", "16Gi"]).to_string()}});
        }
        if per_device {
            match self.n(0, 2) {
                0 => d["nodeName"] = json!(self.pick(&["node-1", "node-2"]).to_string()),
                1 => d["allNodes"] = json!(true),
                _ => {
                    d["nodeSelector"] = json!({"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": [self.pick(&["a", "b"]).to_string()]}]}]})
                }
            }
        }
        d
    }

    fn slices(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        for driver in ["driver-a", "driver-b"] {
            for pool in 0..self.n(0, 2) {
                let pool_name = format!("pool-{pool}");
                let generation = self.n(1, 2) as i64;
                let partitionable = self.chance(0.2);
                let num = self.n(1, 3);
                let count = if self.chance(0.1) { num + 1 } else { num } + usize::from(partitionable);
                let mut names = Vec::new();
                for s in 0..num {
                    let per_device = partitionable && self.chance(0.3);
                    let mut spec = if per_device { json!({"perDeviceNodeSelection": true}) } else { self.scope() };
                    let mut devices = Vec::new();
                    for i in 0..self.n(0, 4) {
                        // Now and then a name used twice in the pool: an invalid pool.
                        let name = if self.chance(0.03) { "dev-0".to_string() } else { format!("dev-{s}-{i}") };
                        let counters = partitionable && self.chance(0.7);
                        devices.push(self.device(name, counters, per_device));
                    }
                    spec["driver"] = json!(driver);
                    spec["pool"] = json!({"name": pool_name, "generation": generation, "resourceSliceCount": count});
                    spec["devices"] = Value::Array(devices);
                    let name = format!("{driver}-{pool_name}-{s}-{}", self.n(0, 9));
                    names.push(name.clone());
                    out.push(json!({"metadata": {"name": name}, "spec": spec}));
                }
                if partitionable {
                    let mut spec = self.scope();
                    spec["driver"] = json!(driver);
                    spec["pool"] = json!({"name": pool_name, "generation": generation, "resourceSliceCount": count});
                    let total = self.pick(&["4", "8"]).to_string();
                    spec["sharedCounters"] = json!([{"name": "cs", "counters": {"mem": {"value": total}}}]);
                    out.push(json!({"metadata": {"name": format!("{driver}-{pool_name}-counters")}, "spec": spec}));
                }
                if generation == 2 && self.chance(0.3) {
                    // An out-of-date slice of the previous generation.
                    let mut spec = json!({"nodeName": "node-1"});
                    spec["driver"] = json!(driver);
                    spec["pool"] = json!({"name": pool_name, "generation": 1, "resourceSliceCount": 1});
                    spec["devices"] = json!([{"name": "old-0"}]);
                    out.push(json!({"metadata": {"name": format!("{driver}-{pool_name}-old")}, "spec": spec}));
                }
            }
        }
        out
    }

    fn tolerations(&mut self) -> Value {
        match self.n(0, 2) {
            0 => json!([{"key": "k1", "operator": "Exists"}]),
            1 => json!([{"operator": "Exists", "effect": "NoSchedule"}]),
            _ => json!([{"key": "k2", "operator": "Equal", "value": "", "effect": "NoExecute"}]),
        }
    }

    /// A request selector: attributes, capacity, driver; some fail at run
    /// time on devices without the attribute (upstream's error, word for word).
    fn selector(&mut self) -> Value {
        let expr = match self.n(0, 9) {
            0 => r#"device.attributes["driver-a"].numa == 1"#.to_string(),
            1 => r#"has(device.attributes["driver-a"].numa) && device.attributes["driver-a"].numa == 0"#.to_string(),
            2 => r#"device.attributes["driver-a"].?model.orValue("none") == "x""#.to_string(),
            3 => r#"device.capacity["driver-a"].?memory.orValue(quantity("0")).compareTo(quantity("2Gi")) >= 0"#.to_string(),
            4 => r#"device.driver == "driver-b""#.to_string(),
            5 => {
                r#"!has(device.attributes["driver-a"].ver) || device.attributes["driver-a"].ver.isGreaterThan(semver("1.5.0"))"#.to_string()
            }
            6 => r#"device.attributes["driver-a"].fast"#.to_string(),
            7 => r#"device.allowMultipleAllocations == false"#.to_string(),
            8 => r#"["x", "y"].exists(m, m == device.attributes[device.driver].?model.orValue(""))"#.to_string(),
            _ => r#"cel.bind(n, device.attributes["driver-a"].?numa.orValue(-1), n >= 0)"#.to_string(),
        };
        json!({"cel": {"expression": expr}})
    }

    fn exact(&mut self, class: &str) -> Value {
        let mut e = json!({"deviceClassName": class});
        if self.chance(0.3) {
            e["selectors"] = json!([self.selector()]);
        }
        if self.chance(0.1) {
            e["allocationMode"] = json!("All");
        } else {
            e["allocationMode"] = json!("ExactCount");
            e["count"] = json!(self.n(1, 3));
        }
        if self.chance(0.2) {
            e["tolerations"] = self.tolerations();
        }
        if self.chance(0.15) {
            e["capacity"] = json!({"requests": {"bw": self.pick(&["1", "3", "5"]).to_string()}});
        }
        e
    }

    fn claim(&mut self, name: &str) -> Value {
        let mut requests = Vec::new();
        let num = self.n(1, 3);
        for r in 0..num {
            let class = self.pick(&["class-a", "class-a", "class-b"]).to_string();
            if self.chance(0.25) {
                let mut subs = Vec::new();
                for i in 0..self.n(2, 3) {
                    let mut e = self.exact(&class);
                    e["name"] = json!(format!("sub-{i}"));
                    subs.push(e);
                }
                requests.push(json!({"name": format!("req-{r}"), "firstAvailable": subs}));
            } else {
                let mut e = self.exact(&class);
                if self.chance(0.05) {
                    e["adminAccess"] = json!(true);
                }
                requests.push(json!({"name": format!("req-{r}"), "exactly": e}));
            }
        }
        let mut devices = json!({"requests": requests});
        if self.chance(0.3) {
            let attr = self.pick(&["driver-a/numa", "driver-a/model", "driver-a/ver", "driver-a/fast", "driver-b/numa"]).to_string();
            let mut c = if self.chance(0.6) { json!({"matchAttribute": attr}) } else { json!({"distinctAttribute": attr}) };
            if num > 1 && self.chance(0.4) {
                c["requests"] = json!(["req-0", "req-1"]);
            }
            devices["constraints"] = json!([c]);
        }
        if self.chance(0.2) {
            devices["config"] = json!([{"requests": ["req-0"], "opaque": {"driver": "driver-a", "parameters": {"x": 1}}}]);
        }
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")}, "spec": {"devices": devices}})
    }

    fn allocated(&mut self, slices: &[Value]) -> Vec<Value> {
        let mut out = Vec::new();
        if slices.is_empty() {
            return out;
        }
        for k in 0..self.n(0, 2) {
            let mut results = Vec::new();
            for _ in 0..self.n(1, 2) {
                let s = self.pick(slices);
                let Some(devs) = s["spec"]["devices"].as_array().filter(|d| !d.is_empty()) else { continue };
                let d = self.pick(devs);
                let mut r = json!({"request": "r", "driver": s["spec"]["driver"], "pool": s["spec"]["pool"]["name"], "device": d["name"]});
                if d["allowMultipleAllocations"] == json!(true) {
                    r["shareID"] = json!(format!("00000000-0000-4000-8000-00000000000{k}"));
                    r["consumedCapacity"] = json!({"bw": self.pick(&["2", "4"]).to_string()});
                }
                results.push(r);
            }
            out.push(json!({"metadata": {"name": format!("allocated-{k}"), "namespace": "default"},
                "status": {"allocation": {"devices": {"results": results}}}}));
        }
        out
    }

    fn case(&mut self) -> Value {
        let slices = self.slices();
        let class_a = match self.n(0, 2) {
            0 => json!({}),
            1 => json!({"selectors": [{"cel": {"expression": "device.driver == \"driver-a\""}}]}),
            _ => json!({"selectors": [{"cel": {"expression": "device.driver in [\"driver-a\", \"driver-b\"]"}}]}),
        };
        let mut classes = vec![json!({"metadata": {"name": "class-a"}, "spec": class_a})];
        if self.chance(0.97) {
            classes.push(
                json!({"metadata": {"name": "class-b"}, "spec": {"config": [{"opaque": {"driver": "driver-b", "parameters": {"y": 2}}}]}}),
            );
        }
        let claims: Vec<Value> = (0..self.n(1, 2)).map(|i| self.claim(&format!("claim-{i}"))).collect();
        let allocated = self.allocated(&slices);
        json!({
            "node": {"metadata": {"name": "node-1", "labels": {"zone": "a"}}},
            "slices": slices, "classes": classes, "claims": claims, "allocated": allocated,
        })
    }
}

/// What Berth's allocator says for a case, in the oracle's terms.
fn berth(case: &Value) -> Value {
    let slices: Vec<ResourceSlice> = serde_json::from_value(case["slices"].clone()).unwrap();
    let inv = Arc::new(Inventory::build(slices.iter(), &[]));
    let mut allocated = AllocatedState::default();
    for c in case["allocated"].as_array().unwrap() {
        let c: ResourceClaim = serde_json::from_value(c.clone()).unwrap();
        if let Some(a) = &c.status.allocation {
            allocated.apply(&inv, a, true);
        }
    }
    let classes: HashMap<String, Arc<DeviceClass>> = serde_json::from_value::<Vec<DeviceClass>>(case["classes"].clone())
        .unwrap()
        .into_iter()
        .map(|c| (c.metadata.name.clone(), Arc::new(c)))
        .collect();
    let claims: Vec<Arc<ResourceClaim>> =
        serde_json::from_value::<Vec<ResourceClaim>>(case["claims"].clone()).unwrap().into_iter().map(Arc::new).collect();
    let node = &case["node"]["metadata"];
    let labels: Labels = serde_json::from_value(node["labels"].clone()).unwrap();
    let a = Allocator::new(inv, Arc::new(allocated), classes, claims);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    match a.allocate_until(node["name"].as_str().unwrap(), &labels, deadline) {
        Ok(Some(r)) => json!({"found": true, "results": r.iter().map(|a| serde_json::to_value(&a.result).unwrap()).collect::<Vec<_>>()}),
        Ok(None) => json!({"found": false}),
        Err(AllocError::Node(m)) => json!({"found": false, "error": m, "nodeError": true}),
        Err(AllocError::Timeout) => json!({"found": false, "timeout": true}),
        Err(e) => json!({"found": false, "error": e.to_string()}),
    }
}

/// The parts both sides must agree on: share IDs are random (only their
/// presence counts), and empty lists are left out by both encoders alike.
fn normalize(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(results) = v.get_mut("results").and_then(|r| r.as_array_mut()) {
        for r in results {
            if let Some(devs) = r.pointer_mut("/devices/results").and_then(|d| d.as_array_mut()) {
                for d in devs {
                    if d.get("shareID").is_some() {
                        d["shareID"] = json!("<share>");
                    }
                }
            }
        }
    }
    if v.get("results").is_some_and(|r| r.is_null()) {
        v.as_object_mut().unwrap().remove("results");
    }
    if v.get("nodeError") == Some(&json!(false)) {
        v.as_object_mut().unwrap().remove("nodeError");
    }
    v
}

#[test]
fn berth_allocates_the_devices_upstream_allocates() {
    let mut child = Command::new(common::dra_oracle()).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start dra-oracle");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let runs: usize = std::env::var("BERTH_DRA_ORACLE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let seed: u64 = std::env::var("BERTH_DRA_ORACLE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261202);
    let mut gen = Gen { rng: Pcg64::seed_from_u64(seed) };
    let (mut found, mut errors, mut timeouts, mut mismatches) = (0, 0, 0, Vec::new());
    let mut error_kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for i in 0..runs {
        let case = gen.case();
        writeln!(stdin, "{case}").unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let want: Value = serde_json::from_str(&line).expect("oracle answers JSON");
        let got = berth(&case);
        // A search that runs into the budget on either side (upstream's
        // scheduler would end it with filterTimeout) proves nothing.
        if want.get("timeout").is_some() || got.get("timeout").is_some() {
            timeouts += 1;
            continue;
        }
        if want["found"] == json!(true) {
            found += 1;
        }
        if let Some(e) = want.get("error").and_then(|e| e.as_str()) {
            errors += 1;
            // The error's kind, without names: e.g. "claim …, request …: asks for all devices, but resource pool … is currently invalid".
            let kind: String = e.split(": ").skip(1).collect::<Vec<_>>().join(": ").chars().filter(|c| !c.is_ascii_digit()).collect();
            *error_kinds.entry(kind).or_insert(0usize) += 1;
        }
        if normalize(&want) != normalize(&got) {
            mismatches.push(format!("case {i}:\n  input: {case}\n  upstream: {}\n  berth:    {}", normalize(&want), normalize(&got)));
        }
    }
    drop(stdin);
    let _ = child.wait();
    eprintln!(
        "dra-oracle: {runs} cases (seed {seed}): {found} allocated, {errors} errors, {timeouts} over the time budget, {} different",
        mismatches.len()
    );
    for (kind, n) in &error_kinds {
        eprintln!("  {n:5} × {kind}");
    }
    assert!(timeouts * 100 <= runs, "{timeouts} of {runs} cases ran over the time budget: the generator makes searches too large");
    // Enough of each outcome that the comparison means something.
    assert!(found > runs / 10 && errors > 0, "the generator no longer makes varied cases: {found} allocated, {errors} errors");
    assert!(
        mismatches.is_empty(),
        "{} of {runs} cases differ; the first:\n{}",
        mismatches.len(),
        mismatches.iter().take(3).cloned().collect::<Vec<_>>().join("\n")
    );
}
