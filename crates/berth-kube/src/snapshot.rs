//! The live cluster as the simulator reads it: what `kubectl berth what-if`
//! schedules against, on the user's machine, changing nothing.

use berth_convert::manifests::RawObjects;
use berth_core::framework::ObjectKind;
use berth_core::model;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, DynamicObject, ListParams};
use kube::Resource;

/// Where the objects came from, as the simulator's errors name files.
pub const SOURCE: &str = "the cluster";

/// The cluster as read.
pub struct Live {
    /// Nodes, bound pods Berth reads in full, and the other objects.
    pub raw: RawObjects,
    /// Bound pods with constraints Berth cannot read: counted on their node
    /// by their requests alone, as `berth run` counts them (with why: the error names the pod).
    pub lenient: Vec<(model::Pod, String)>,
    /// Bound pods not even that could be read: not counted (`namespace/name`, why).
    pub uncounted: Vec<(String, String)>,
}

/// Reads nodes, the pods bound to them, PodDisruptionBudgets,
/// PriorityClasses, namespaces and the objects of `kinds` (those plugins
/// declare; a kind the API server does not serve is skipped). Pods not bound
/// yet are left out: what-if answers for the pods it is given, on the room
/// there is now.
pub async fn read(client: &kube::Client, kinds: &[ObjectKind]) -> Result<Live, kube::Error> {
    let lp = ListParams::default();
    let mut live = Live { raw: RawObjects::default(), lenient: Vec::new(), uncounted: Vec::new() };
    let raw = &mut live.raw;
    raw.nodes = Api::<Node>::all(client.clone()).list(&lp).await?.items.into_iter().map(|n| (SOURCE.to_string(), n)).collect();
    raw.classes = Api::<PriorityClass>::all(client.clone()).list(&lp).await?.items;
    let mut classes = berth_convert::PriorityClasses::new();
    for c in &raw.classes {
        classes.add(c);
    }
    let pods = Api::<Pod>::all(client.clone()).list(&ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed")).await?;
    for p in pods.items {
        if p.spec.as_ref().is_none_or(|s| s.node_name.is_none()) || berth_convert::pod_is_terminal(&p) {
            continue;
        }
        let key = format!("{}/{}", p.metadata.namespace.as_deref().unwrap_or_default(), p.metadata.name.as_deref().unwrap_or_default());
        match berth_convert::pod(&p, &classes) {
            Ok(_) => raw.pods.push((SOURCE.to_string(), p)),
            Err(e) => match berth_convert::bound_pod_leniently(&p, &classes) {
                Ok(pod) => live.lenient.push((pod, e.to_string())),
                Err(e) => live.uncounted.push((key, e.to_string())),
            },
        }
    }
    raw.pdbs =
        Api::<PodDisruptionBudget>::all(client.clone()).list(&lp).await?.items.into_iter().map(|p| (SOURCE.to_string(), p)).collect();
    raw.namespaces = Api::<Namespace>::all(client.clone()).list(&lp).await?.items;
    for kind in kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &crate::api::api_resource(kind));
        let items = match api.list(&lp).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e),
        };
        for mut o in items {
            o.types = Some(kube::core::TypeMeta { api_version: kind.api_version(), kind: kind.kind.to_string() });
            let v = serde_json::to_value(&o).expect("an object read from the API server serializes");
            raw.others.push((SOURCE.to_string(), v));
        }
    }
    Ok(live)
}

/// Drains `node` in `raw`: cordons it, and makes its pods pending again,
/// but those a drain leaves (DaemonSets' and static pods). Returns the
/// pods made pending (`namespace/name`), or `None` when there is no such node.
pub fn drain(raw: &mut RawObjects, node: &str) -> Option<Vec<String>> {
    let n = raw.nodes.iter_mut().find(|(_, n)| n.meta().name.as_deref() == Some(node))?;
    n.1.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
    let mut moved = Vec::new();
    for (_, p) in raw.pods.iter_mut() {
        let Some(spec) = p.spec.as_mut() else { continue };
        if spec.node_name.as_deref() != Some(node) || stays_on_drain(&p.metadata) {
            continue;
        }
        spec.node_name = None;
        p.status = None;
        moved.push(format!("{}/{}", p.metadata.namespace.as_deref().unwrap_or("default"), p.metadata.name.as_deref().unwrap_or_default()));
    }
    Some(moved)
}

/// DaemonSets' pods and static (mirror) pods are not evicted by a drain.
fn stays_on_drain(meta: &kube::api::ObjectMeta) -> bool {
    let daemon = meta.owner_references.iter().flatten().any(|o| o.kind == "DaemonSet" && o.controller == Some(true));
    let mirror = meta.annotations.as_ref().is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    daemon || mirror
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, owner: Option<&str>) -> (String, Pod) {
        let owners = owner.map(|k| serde_json::json!([{"apiVersion": "apps/v1", "kind": k, "name": "o", "uid": "u", "controller": true}]));
        let p = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "ownerReferences": owners},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap();
        (SOURCE.into(), p)
    }

    #[test]
    fn a_drain_cordons_and_moves_all_but_daemon_set_pods() {
        let mut raw = RawObjects::default();
        raw.nodes.push((SOURCE.into(), serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}})).unwrap()));
        raw.pods = vec![pod("web", "a", Some("ReplicaSet")), pod("agent", "a", Some("DaemonSet")), pod("other", "b", None)];
        assert_eq!(drain(&mut raw, "a"), Some(vec!["default/web".to_string()]));
        assert_eq!(raw.nodes[0].1.spec.as_ref().unwrap().unschedulable, Some(true));
        let node_of =
            |name: &str| raw.pods.iter().find(|p| p.1.metadata.name.as_deref() == Some(name)).unwrap().1.spec.clone().unwrap().node_name;
        assert_eq!((node_of("web"), node_of("agent"), node_of("other")), (None, Some("a".into()), Some("b".into())));
        assert_eq!(drain(&mut raw, "nope"), None);
    }
}
