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
    /// Nodes and the other objects, as the API server has them (no pods).
    pub raw: RawObjects,
    /// Bound pods Berth reads in full, converted once.
    pub pods: Vec<model::Pod>,
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
    let mut live = Live { raw: RawObjects::default(), pods: Vec::new(), lenient: Vec::new(), uncounted: Vec::new() };
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
            Ok(pod) => live.pods.push(pod),
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

/// Drains `node` in `live`: cordons it, and makes its pods pending again,
/// but those a drain leaves (DaemonSets' and static pods, and pods Berth
/// could not read in full, which stay counted where they are). Returns the
/// pods made pending (`namespace/name`), or `None` when there is no such node.
pub fn drain(live: &mut Live, node: &str) -> Option<Vec<String>> {
    let n = live.raw.nodes.iter_mut().find(|(_, n)| n.meta().name.as_deref() == Some(node))?;
    n.1.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
    let mut moved = Vec::new();
    for p in live.pods.iter_mut().filter(|p| p.node_name.as_deref() == Some(node) && !stays_on_drain(p)) {
        // Pending again, as a new pod of its controller would be: no status.
        p.node_name = None;
        p.nominated_node_name = None;
        p.start_ms = None;
        p.unschedulable_condition = None;
        moved.push(p.key());
    }
    Some(moved)
}

/// DaemonSets' pods and static (mirror) pods are not evicted by a drain.
fn stays_on_drain(p: &model::Pod) -> bool {
    p.controller_ref().is_some_and(|o| o.kind == "DaemonSet") || p.annotations.contains_key("kubernetes.io/config.mirror")
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::testing::make_pod;

    #[test]
    fn a_drain_cordons_and_moves_all_but_daemon_set_and_static_pods() {
        let mut live = Live { raw: RawObjects::default(), pods: Vec::new(), lenient: Vec::new(), uncounted: Vec::new() };
        live.raw.nodes.push((SOURCE.into(), serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}})).unwrap()));
        live.pods = vec![
            make_pod("web").node("a").owner("ReplicaSet", "o").obj(),
            make_pod("agent").node("a").owner("DaemonSet", "o").obj(),
            make_pod("static").node("a").annotation("kubernetes.io/config.mirror", "x").obj(),
            make_pod("other").node("b").obj(),
        ];
        assert_eq!(drain(&mut live, "a"), Some(vec!["default/web".to_string()]));
        assert_eq!(live.raw.nodes[0].1.spec.as_ref().unwrap().unschedulable, Some(true));
        let nodes: Vec<_> = live.pods.iter().map(|p| p.node_name.as_deref()).collect();
        assert_eq!(nodes, [None, Some("a"), Some("a"), Some("b")]);
        assert_eq!(drain(&mut live, "nope"), None);
    }
}
