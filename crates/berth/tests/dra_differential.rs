//! DRA decisions, Berth against kube-scheduler 1.37 on the same API server.
//!
//! Each case of `testdata/dra-differential/` (devices, classes, claims and
//! pods) is played twice on the test environment: once with kube-scheduler
//! (the control plane's own, with the release's feature gates) and once
//! with `berth run`, each in a namespace and on KWOK nodes of its own. Pods
//! are created one at a time, each after the previous one was decided. Both
//! runs must place every pod on the same node (by its position), allocate
//! every claim the same devices, and leave the same pods pending for the
//! same reasons.

mod common;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    description: String,
    nodes: usize,
    objects: String,
    pods: Vec<PodCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PodCase {
    name: String,
    /// A claim made from this template.
    #[serde(default)]
    template: Option<String>,
    /// This existing claim.
    #[serde(default)]
    claim: Option<String>,
    /// Pinned to this node (`N0`, ...).
    #[serde(default)]
    node: Option<String>,
    /// No claim: this many of the extended resource `NS.example.com/gpu`
    /// in the container's requests (backed by DRA, GA in 1.37).
    #[serde(default)]
    extended: Option<u32>,
}

/// The kube-scheduler of the test environment, with a profile of its own.
fn kube_scheduler() -> Proc {
    spawn_kube_scheduler("kube-ref", "profiles: [{schedulerName: kube-ref}]\n")
}

fn berth() -> Proc {
    let config = write_temp(
        "berth-ref.yaml",
        "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection: {leaderElect: false}
profiles: [{schedulerName: berth-ref}]
",
    );
    spawn_berth(&config, "berth-ref.log")
}

/// What one scheduler did with a case: per pod, its node (`N<i>`) or its
/// reasons; per claim, its devices.
#[derive(Debug, PartialEq)]
struct Outcome {
    pods: Vec<(String, String)>,
    claims: Vec<(String, Vec<String>)>,
}

/// A FailedScheduling message without what depends on the rest of the
/// cluster: the node count, the nodes of other tests (they fail node
/// affinity), and the preemption part.
fn reasons(note: &str) -> String {
    let body = note.split(" preemption:").next().unwrap_or(note);
    let body = body.split_once("nodes are available: ").map(|(_, b)| b).unwrap_or(body);
    let mut parts: Vec<String> = body
        .trim_end_matches('.')
        .split(", ")
        .filter(|p| !p.contains("didn't match Pod's node affinity/selector"))
        .map(str::to_string)
        .collect();
    parts.sort();
    parts.join(", ")
}

async fn play(case: &Case, scheduler: &str) -> Outcome {
    let ns = Ns::new(&format!("dradiff-{}", &scheduler[..4])).await;
    let mut nodes = Vec::new();
    for i in 0..case.nodes {
        nodes.push(ns.node(&format!("n{i}"), "8", json!({}), json!([])).await);
    }
    let mut objects = case.objects.replace("NS", &ns.name);
    for (i, n) in nodes.iter().enumerate().rev() {
        objects = objects.replace(&format!("N{i}"), n);
    }
    kubectl(&["apply", "-n", &ns.name, "-f", "-"], Some(&objects));
    let claims_api: Api<kube::core::DynamicObject> =
        Api::namespaced_with(ns.c.clone(), &ns.name, &dra_resource("ResourceClaim", "resourceclaims"));
    let unname = |s: &str| {
        let mut s = s.replace(&ns.name, "NS");
        for (i, n) in nodes.iter().enumerate() {
            s = s.replace(&n.replace(&ns.name, "NS"), &format!("N{i}"));
        }
        s
    };
    let mut pods = Vec::new();
    for p in &case.pods {
        let claim = match (&p.template, &p.claim, p.extended) {
            (Some(t), None, None) => Some(json!({"name": "dev", "resourceClaimTemplateName": t})),
            (None, Some(c), None) => Some(json!({"name": "dev", "resourceClaimName": c})),
            (None, None, Some(_)) => None,
            _ => panic!("pod {}: one of template, claim or extended", p.name),
        };
        let mut extra = match (claim, p.extended) {
            (Some(claim), _) => json!({
                "resourceClaims": [claim],
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m"}, "claims": [{"name": "dev"}]}}],
            }),
            (None, n) => {
                let (resource, n) = (format!("{}.example.com/gpu", ns.name), n.unwrap_or(0).to_string());
                json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m", resource.clone(): n}, "limits": {resource: n}}}]})
            }
        };
        if let Some(n) = &p.node {
            let i: usize = n.trim_start_matches('N').parse().unwrap();
            extra["nodeSelector"] = json!({"berth-test": ns.name, "kubernetes.io/hostname": nodes[i]});
        }
        ns.pod(&p.name, scheduler, "100m", extra).await;
        let outcome = wait_for(&format!("{}/{} to be decided by {scheduler}", ns.name, p.name), || async {
            if let Some(node) = ns.node_of(&p.name).await {
                return Some(unname(&node));
            }
            let failed = ns.events(&p.name, "FailedScheduling").await;
            failed.first().map(|e| format!("pending: {}", reasons(e.note.as_deref().unwrap_or_default())))
        })
        .await;
        pods.push((p.name.clone(), outcome));
    }
    // Claims as the last decision left them, by the pod claim they serve.
    let mut claims = Vec::new();
    for p in &case.pods {
        let pod: Pod = ns.pods().get(&p.name).await.unwrap();
        let extended = pod.status.as_ref().and_then(|s| s.extended_resource_claim_status.as_ref()).map(|e| e.resource_claim_name.clone());
        let name = match (&p.claim, pod.status.and_then(|s| s.resource_claim_statuses).and_then(|s| s.into_iter().next())) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(s)) => s.resource_claim_name,
            _ => extended,
        };
        let Some(name) = name else { continue };
        let Ok(claim) = claims_api.get(&name).await else { continue };
        let results = claim.data.pointer("/status/allocation/devices/results").and_then(|r| r.as_array()).cloned().unwrap_or_default();
        let devices = results
            .iter()
            .map(|r| {
                let cap = r.get("consumedCapacity").map(|c| format!(" {c}")).unwrap_or_default();
                unname(&format!(
                    "{} {}/{}/{}{cap}",
                    r["request"].as_str().unwrap_or(""),
                    r["driver"].as_str().unwrap_or(""),
                    r["pool"].as_str().unwrap_or(""),
                    r["device"].as_str().unwrap_or("")
                ))
            })
            .collect();
        claims.push((p.name.clone(), devices));
    }
    // Leave nothing behind that could hold devices of the next case.
    let _ = ns.pods().delete_collection(&Default::default(), &ListParams::default()).await;
    Outcome { pods, claims }
}

#[tokio::test]
async fn berth_decides_as_kube_scheduler_does() {
    let dir = repo().join("testdata/dra-differential");
    let only = std::env::var("BERTH_DRA_DIFFERENTIAL_ONLY").ok();
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let _kube = kube_scheduler();
    let _berth = berth();
    let mut failures = Vec::new();
    let mut ran = 0;
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let case: Case = serde_yaml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = play(&case, "kube-ref").await;
        let got = play(&case, "berth-ref").await;
        eprintln!("{name}:\n  kube-scheduler: {want:?}\n  berth:          {got:?}");
        if want != got {
            failures.push(format!("{name}:\n  kube-scheduler: {want:?}\n  berth:          {got:?}"));
        }
        ran += 1;
    }
    assert!(ran > 0, "no case ran");
    assert!(failures.is_empty(), "{} of {ran} cases differ:\n{}", failures.len(), failures.join("\n"));
}
