//! The resourceclaim controller's part, which `berth simulate` plays as a
//! cluster's kube-controller-manager would:
//!
//! - **Claims from templates**: for each pod claim naming a
//!   ResourceClaimTemplate, a ResourceClaim named and owned as upstream's
//!   controller names and owns it (`<pod>-<claim>-` and five characters,
//!   the pod as controlling owner, the `resource.kubernetes.io/pod-claim-name`
//!   annotation, the template's labels, annotations and spec), and the pod's
//!   `status.resourceClaimStatuses` pointing at it. A missing template leaves
//!   the pod waiting, as live.
//! - **Release**: a pod that goes away (a preemption victim) is dropped from
//!   its claims' `status.reservedFor`; a claim no one uses any more is
//!   deallocated, and a claim made for that pod is deleted.

use std::collections::{BTreeMap, HashMap};

use berth_core::model::{Pod, PodResourceClaimStatus};
use berth_core::plugins::dynamic_resources::objects::{ANN_POD_CLAIM_NAME, CLAIMS, CLAIM_TEMPLATES, FINALIZER};
use serde_json::{json, Value};

/// The characters the API server draws a generated name's suffix from.
const SUFFIX_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The name the API server would give for `generate_name`, with a suffix
/// drawn from `seed` rather than at random, so a simulation repeats.
pub(crate) fn generated(generate_name: &str, seed: &str) -> String {
    // FNV-1a: stable across runs and platforms.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in seed.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let mut name = generate_name.to_string();
    for _ in 0..5 {
        name.push(SUFFIX_CHARS[(h % SUFFIX_CHARS.len() as u64) as usize] as char);
        h /= SUFFIX_CHARS.len() as u64;
    }
    name
}

/// Upstream's base name of a claim made for `pod`'s claim `claim`: both
/// parts cut in proportion when together they exceed 57 characters.
pub(crate) fn generate_name(pod: &str, claim: &str) -> String {
    let base = format!("{pod}-{claim}-");
    const MAX: usize = 57;
    if base.len() <= MAX {
        return base;
    }
    let l = base.len();
    format!("{}-{}", &pod[..pod.len() * MAX / l], &claim[..claim.len() * MAX / l])
}

fn is_kind(o: &Value, kind: &berth_core::framework::ObjectKind) -> bool {
    o.get("apiVersion").and_then(|v| v.as_str()) == Some(&kind.api_version()) && o.get("kind").and_then(|v| v.as_str()) == Some(kind.kind)
}

fn namespace_of(o: &Value) -> &str {
    o.pointer("/metadata/namespace").and_then(|v| v.as_str()).filter(|s| !s.is_empty()).unwrap_or("default")
}

fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name").and_then(|v| v.as_str()).unwrap_or("")
}

/// Makes the claims `pods` need from their templates (returned with the
/// file they count as coming from) and fills in the pods'
/// `status.resourceClaimStatuses`. Claims the manifests already hold for a
/// pod (owned by it, annotated with the pod's claim name) are used, not
/// made again.
pub(crate) fn claims_from_templates(pods: &mut [Pod], objects: &[(String, Value)]) -> Vec<(String, Value)> {
    let templates: HashMap<(String, String), &Value> = objects
        .iter()
        .map(|(_, o)| o)
        .filter(|o| is_kind(o, &CLAIM_TEMPLATES))
        .map(|o| ((namespace_of(o).to_string(), name_of(o).to_string()), o))
        .collect();
    // Claims already made for a pod: (namespace, owner uid, pod claim name) → claim name.
    let mut existing: HashMap<(String, String, String), String> = HashMap::new();
    for (_, o) in objects.iter().filter(|(_, o)| is_kind(o, &CLAIMS)) {
        let Some(pod_claim) =
            o.pointer(&format!("/metadata/annotations/{}", ANN_POD_CLAIM_NAME.replace('/', "~1"))).and_then(|v| v.as_str())
        else {
            continue;
        };
        let owners = o.pointer("/metadata/ownerReferences").and_then(|v| v.as_array()).cloned().unwrap_or_default();
        if let Some(uid) =
            owners.iter().find(|r| r["controller"] == json!(true) && r["kind"] == json!("Pod")).and_then(|r| r["uid"].as_str())
        {
            existing.insert((namespace_of(o).to_string(), uid.to_string(), pod_claim.to_string()), name_of(o).to_string());
        }
    }
    let mut made = Vec::new();
    for pod in pods.iter_mut() {
        for c in &pod.resource_claims {
            let Some(template) = &c.resource_claim_template_name else { continue };
            if pod.resource_claim_statuses.iter().any(|s| s.name == c.name) {
                continue;
            }
            let key = (pod.namespace.clone(), pod.uid.clone(), c.name.clone());
            let name = match existing.get(&key) {
                Some(n) => n.clone(),
                None => {
                    // No template: the controller cannot make the claim, and the pod waits.
                    let Some(t) = templates.get(&(pod.namespace.clone(), template.clone())) else { continue };
                    let name = generated(&generate_name(&pod.name, &c.name), &format!("{}/{}", pod.uid, c.name));
                    let meta = t.pointer("/spec/metadata").cloned().unwrap_or(json!({}));
                    let mut annotations: BTreeMap<String, Value> =
                        meta.get("annotations").and_then(|a| serde_json::from_value(a.clone()).ok()).unwrap_or_default();
                    annotations.insert(ANN_POD_CLAIM_NAME.to_string(), json!(c.name));
                    let mut claim = json!({
                        "apiVersion": CLAIMS.api_version(), "kind": CLAIMS.kind,
                        "metadata": {
                            "name": name, "namespace": pod.namespace, "uid": format!("{}-{name}", CLAIMS.plural),
                            "generateName": generate_name(&pod.name, &c.name),
                            "annotations": annotations,
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid, "controller": true}],
                        },
                        "spec": t.pointer("/spec/spec").cloned().unwrap_or(json!({})),
                    });
                    if let Some(labels) = meta.get("labels") {
                        claim["metadata"]["labels"] = labels.clone();
                    }
                    made.push((format!("ResourceClaimTemplate {}/{template}", pod.namespace), claim));
                    name
                }
            };
            pod.resource_claim_statuses.push(PodResourceClaimStatus { name: c.name.clone(), resource_claim_name: Some(name) });
        }
        pod.resource_claim_statuses.sort_by(|a, b| a.name.cmp(&b.name));
    }
    made
}

/// What the controller does with `claim` once the pod with `uid` is gone:
/// the patch to write, if any, and whether to delete the claim instead.
pub(crate) enum Release {
    /// Nothing to do.
    Keep,
    /// Apply this merge patch.
    Patch(Value),
    /// The claim was made for the pod: delete it.
    Delete,
}

/// Upstream's `syncClaim` for a claim whose consumer `uid` went away.
pub(crate) fn release(claim: &Value, uid: &str) -> Release {
    let reserved = claim.pointer("/status/reservedFor").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    if !reserved.iter().any(|r| r["uid"] == json!(uid)) {
        return Release::Keep;
    }
    let rest: Vec<Value> = reserved.into_iter().filter(|r| r["uid"] != json!(uid)).collect();
    let owned_by_pod = claim
        .pointer("/metadata/ownerReferences")
        .and_then(|v| v.as_array())
        .is_some_and(|o| o.iter().any(|r| r["controller"] == json!(true) && r["uid"] == json!(uid)));
    if rest.is_empty() && owned_by_pod {
        return Release::Delete;
    }
    let mut patch = json!({"status": {"reservedFor": if rest.is_empty() { Value::Null } else { json!(rest) }}});
    let finalized = claim.pointer("/metadata/finalizers").and_then(|v| v.as_array()).is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if rest.is_empty() && finalized {
        patch["status"]["allocation"] = Value::Null;
        patch["status"]["devices"] = Value::Null;
        let others: Vec<Value> =
            claim["metadata"]["finalizers"].as_array().into_iter().flatten().filter(|x| *x != FINALIZER).cloned().collect();
        patch["metadata"] = json!({"finalizers": if others.is_empty() { Value::Null } else { json!(others) }});
    }
    Release::Patch(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_follow_upstream() {
        assert_eq!(generate_name("trainer-0", "gpu"), "trainer-0-gpu-");
        // 63 + 63 + 2 characters: both cut to 63 * 57 / 128 = 28.
        let (p, c) = ("p".repeat(63), "c".repeat(63));
        assert_eq!(generate_name(&p, &c), format!("{}-{}", "p".repeat(28), "c".repeat(28)));
        let a = generated("x-", "seed");
        assert_eq!(a, generated("x-", "seed"));
        assert_eq!(a.len(), 7);
        assert!(a[2..].bytes().all(|b| SUFFIX_CHARS.contains(&b)));
    }

    #[test]
    fn a_released_claim_is_deallocated_or_deleted() {
        let shared =
            json!({"metadata": {"finalizers": [FINALIZER]}, "status": {"allocation": {}, "reservedFor": [{"uid": "a"}, {"uid": "b"}]}});
        match release(&shared, "a") {
            Release::Patch(p) => assert_eq!(p, json!({"status": {"reservedFor": [{"uid": "b"}]}})),
            _ => panic!("one consumer left: only the reservation goes"),
        }
        let last = json!({"metadata": {"finalizers": [FINALIZER]}, "status": {"allocation": {}, "reservedFor": [{"uid": "b"}]}});
        match release(&last, "b") {
            Release::Patch(p) => {
                assert_eq!(p["status"], json!({"reservedFor": null, "allocation": null, "devices": null}));
                assert_eq!(p["metadata"]["finalizers"], Value::Null);
            }
            _ => panic!("the last consumer gone: deallocated"),
        }
        let generated =
            json!({"metadata": {"ownerReferences": [{"uid": "b", "controller": true}]}, "status": {"reservedFor": [{"uid": "b"}]}});
        assert!(matches!(release(&generated, "b"), Release::Delete));
        assert!(matches!(release(&generated, "z"), Release::Keep));
    }
}
