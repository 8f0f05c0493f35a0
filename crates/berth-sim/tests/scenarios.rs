//! Simulation scenarios: each folder under `testdata/scenarios/` holds a
//! cluster (`cluster.yaml`), optionally a scheduler config (`config.yaml`),
//! and the expected outcome (`expect.yaml`): where each pending pod goes,
//! the exact FailedScheduling message, who gets preempted, and in which
//! order decisions happen.

use std::path::{Path, PathBuf};

use berth_core::config::KubeSchedulerConfiguration;
use berth_sim::{simulate, SimOptions};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    seed: u64,
    /// Check that decisions happen in the listed order.
    #[serde(default)]
    ordered: bool,
    pods: Vec<PodExpect>,
    /// Pod groups' outcomes.
    #[serde(default)]
    groups: Vec<GroupExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupExpect {
    name: String,
    placed: usize,
    scheduled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodExpect {
    pod: String,
    /// Expected node; absent or null: unschedulable.
    #[serde(default)]
    node: Option<String>,
    /// Any of these nodes (when ties are broken at random).
    #[serde(default)]
    node_in: Vec<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    message_contains: Option<String>,
    #[serde(default)]
    preempted: Vec<String>,
    #[serde(default)]
    nominated_node: Option<String>,
}

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios")
}

fn run(dir: &Path) -> Result<(), String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f));
    let expect: Expect = serde_yaml::from_str(&read("expect.yaml").map_err(|e| e.to_string())?).map_err(|e| format!("expect.yaml: {e}"))?;
    let config = match read("config.yaml") {
        Ok(text) => {
            let v: serde_json::Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
            KubeSchedulerConfiguration::from_yaml_value(v).map_err(|e| e.to_string())?
        }
        Err(_) => SimOptions::default().config,
    };
    let cluster = berth_convert::manifests::load(&[("cluster.yaml".into(), read("cluster.yaml").map_err(|e| e.to_string())?)])
        .map_err(|e| e.to_string())?;
    let fresh = SimOptions { seed: expect.seed, explain: true, config, memoize: false, ..Default::default() };
    let plain = simulate(cluster.clone(), &fresh).map_err(|e| e.to_string())?;
    let result = simulate(cluster, &SimOptions { memoize: true, ..fresh }).map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    // Results kept from cycle to cycle must not change a single decision,
    // message or explanation.
    if result.pods != plain.pods {
        errors.push("reusing per-node results between pods changed the outcome".to_string());
    }
    let keys: Vec<String> = result.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect();
    for e in &expect.pods {
        let Some(got) = result.pods.iter().find(|p| format!("{}/{}", p.namespace, p.name) == e.pod) else {
            errors.push(format!("{}: not in the result", e.pod));
            continue;
        };
        if !e.node_in.is_empty() {
            if !got.node.as_ref().is_some_and(|n| e.node_in.contains(n)) {
                errors.push(format!("{}: node {:?}, want one of {:?}", e.pod, got.node, e.node_in));
            }
        } else if got.node != e.node {
            errors.push(format!("{}: node {:?}, want {:?} (message: {})", e.pod, got.node, e.node, got.message));
        }
        if let Some(m) = &e.message {
            if &got.message != m {
                errors.push(format!("{}: message\n   got: {}\n  want: {}", e.pod, got.message, m));
            }
        }
        if let Some(m) = &e.message_contains {
            if !got.message.contains(m.as_str()) {
                errors.push(format!("{}: message {:?} lacks {:?}", e.pod, got.message, m));
            }
        }
        if got.preempted != e.preempted {
            errors.push(format!("{}: preempted {:?}, want {:?}", e.pod, got.preempted, e.preempted));
        }
        if e.nominated_node.is_some() && got.nominated_node != e.nominated_node {
            errors.push(format!("{}: nominated {:?}, want {:?}", e.pod, got.nominated_node, e.nominated_node));
        }
    }
    for g in &expect.groups {
        match result.groups.iter().find(|r| r.name == g.name) {
            None => errors.push(format!("group {}: not in the result", g.name)),
            Some(r) if (r.placed, r.scheduled) != (g.placed, g.scheduled) => {
                errors.push(format!("group {}: placed {} scheduled {}, want {} {}", g.name, r.placed, r.scheduled, g.placed, g.scheduled))
            }
            Some(_) => {}
        }
    }
    if expect.ordered {
        let want: Vec<&String> = expect.pods.iter().map(|p| &p.pod).collect();
        let got: Vec<&String> = keys.iter().filter(|k| want.contains(k)).collect();
        if got != want {
            errors.push(format!("decision order {got:?}, want {want:?}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

#[test]
fn all_scenarios() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("testdata/scenarios")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 10, "expected the scenario suite, found {}", dirs.len());
    let mut failures = Vec::new();
    for d in &dirs {
        if let Err(e) = run(d) {
            failures.push(format!("== {}\n{e}", d.file_name().unwrap().to_string_lossy()));
        }
    }
    assert!(failures.is_empty(), "{} of {} scenarios failed:\n{}", failures.len(), dirs.len(), failures.join("\n"));
}

#[test]
fn deterministic_with_seed() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cluster/cluster.yaml")).unwrap();
    let run = |seed| {
        let c = berth_convert::manifests::load(&[("c".into(), text.clone())]).unwrap();
        simulate(c, &SimOptions { seed, ..Default::default() }).unwrap().pods.iter().map(|p| p.node.clone()).collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
}

/// An object of a kind a plugin reads whose `metadata` is not an object
/// (found by mutating the scenario manifests) is refused with an error naming
/// the file and the field, never a panic.
#[test]
fn an_object_whose_metadata_is_not_an_object_is_refused() {
    let text = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {allocatable: {cpu: \"4\", memory: 16Gi, pods: \"110\"}}\n---\n\
                apiVersion: scheduling.k8s.io/v1beta1\nkind: PodGroup\nmetadata: a-string\nspec: {schedulingPolicy: {gang: {minCount: 2}}}\n";
    let c = berth_convert::manifests::load(&[("groups.yaml".into(), text.into())]).unwrap();
    let err = simulate(c, &SimOptions::default()).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("groups.yaml") && err.contains("metadata: expected an object"), "{err}");
}
