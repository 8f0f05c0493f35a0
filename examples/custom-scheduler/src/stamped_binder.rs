//! StampedBinder: a Bind plugin that writes `pods/binding` itself, with the
//! annotation `example.berth.dev/bound-by: StampedBinder` on the Binding
//! (the API server copies a Binding's annotations onto the pod). Enable it
//! in place of DefaultBinder (`bind: {enabled: [StampedBinder], disabled: ["*"]}`).

use berth::live::k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod as ApiPod};
use berth::live::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use berth::live::kube::api::{Api, PostParams};
use berth::prelude::*;

pub const NAME: &str = "StampedBinder";
pub const BOUND_BY: &str = "example.berth.dev/bound-by";

pub struct StampedBinder {
    handle: Handle,
}

impl StampedBinder {
    pub fn new(_args: &PluginArgs, handle: &Handle) -> Result<StampedBinder, PluginError> {
        Ok(StampedBinder { handle: handle.clone() })
    }
}

#[berth::plugin]
impl Plugin for StampedBinder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn bind(&self, _state: &mut CycleState, pod: &PodInfo, node: &str, binder: &dyn Binder) -> Status {
        let p = &pod.pod;
        let Some(client) = berth::live::client(&self.handle) else {
            // The simulator: bind in memory, as DefaultBinder would.
            return binder.bind(p, node).map_or_else(Status::error, |()| Status::success());
        };
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(p.name.clone()),
                namespace: Some(p.namespace.clone()),
                uid: Some(p.uid.clone()),
                annotations: Some([(BOUND_BY.to_string(), NAME.to_string())].into()),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.into()),
                ..Default::default()
            },
        };
        let pods: Api<ApiPod> = Api::namespaced(client, &p.namespace);
        let params = PostParams::default();
        let call = pods.create_subresource::<_, serde_json::Value>("binding", &p.name, &params, &binding);
        match berth::live::block_on(&self.handle, call) {
            Some(Ok(_)) => Status::success(),
            Some(Err(e)) => Status::error(format!("binding rejected: {e}")),
            None => Status::error("no async runtime to call the API server on"),
        }
    }
}
