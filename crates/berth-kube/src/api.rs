//! Carries out the controller's `ApiAction`s against the API server: the
//! binding subresource, events.k8s.io Events, PodScheduled and nomination
//! status patches, and preemption's evictions.

use berth_core::framework::{EventRecord, ObjectKind, ObjectWriter, WriteError};
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use crate::client::ApiClient;
use crate::controller::ApiAction;

/// This process, as events name it (`reportingInstance`).
#[derive(Clone, Debug)]
pub struct Reporter {
    pub instance: String,
}

fn pods(c: &ApiClient, ns: &str) -> Api<Pod> {
    Api::namespaced(c.client.clone(), ns)
}

/// The events.k8s.io Event `name` for `record`, first seen now.
fn new_event(reporter: &Reporter, record: &EventRecord, name: &str, series: Option<EventSeries>) -> Event {
    let r = &record.regarding;
    let by = &record.reporting_controller;
    Event {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(crate::controller::event_namespace(&r.namespace)),
            ..Default::default()
        },
        event_time: Some(MicroTime(Timestamp::now())),
        series,
        type_: Some(record.event_type.as_str().into()),
        reason: Some(record.reason.clone()),
        action: Some(record.action.clone()),
        note: Some(truncate_note(&record.note)),
        reporting_controller: Some(by.clone()),
        reporting_instance: Some(format!("{by}-{}", reporter.instance)),
        regarding: Some(ObjectReference {
            api_version: Some(r.api_version.clone()),
            kind: Some(r.kind.clone()),
            namespace: Some(r.namespace.clone()).filter(|n| !n.is_empty()),
            name: Some(r.name.clone()),
            uid: Some(r.uid.clone()).filter(|u| !u.is_empty()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn events(c: &ApiClient, record: &EventRecord) -> Api<Event> {
    Api::namespaced(c.client.clone(), &crate::controller::event_namespace(&record.regarding.namespace))
}

/// Executes one action; the caller has taken its rate-limit token (an
/// eviction's second call takes its own). Actions are best effort (a
/// failure is logged, as upstream does); an eviction's result goes back to
/// the engine.
pub async fn execute(c: &ApiClient, reporter: &Reporter, action: &ApiAction) -> Result<(), kube::Error> {
    match action {
        ApiAction::Event { record, event_name } => {
            let event = new_event(reporter, record, event_name, None);
            match events(c, record).create(&PostParams::default(), &event).await {
                // A repeat's series write found no event and created it with
                // its count while this create was on its way: nothing lost.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                other => {
                    other?;
                }
            }
        }
        ApiAction::EventSeries { namespace, event_name, count, last_observed_ms, record } => {
            let observed = Timestamp::from_millisecond(*last_observed_ms).unwrap_or_else(|_| Timestamp::now());
            let series = EventSeries { count: *count as i32, last_observed_time: MicroTime(observed) };
            let patch = json!({ "series": series });
            let api = Api::<Event>::namespaced(c.client.clone(), namespace);
            let patched = api.patch(event_name, &PatchParams::default(), &Patch::Merge(&patch)).await;
            if !matches!(&patched, Err(kube::Error::Api(e)) if e.code == 404) {
                return patched.map(drop);
            }
            // The first event is not there: lost while the API server was
            // away (or dropped from a full queue), or its create still on
            // its way. Start it again with the series, as client-go does;
            // if the first create lands meanwhile, patch that one.
            let event = new_event(reporter, record, event_name, Some(series));
            match api.create(&PostParams::default(), &event).await {
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    api.patch(event_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                }
                r => {
                    r?;
                }
            }
        }
        ApiAction::MarkUnschedulable { namespace, name, reason, message, nominated_node } => {
            let mut status = json!({
                "conditions": [{
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": null,
                    "lastTransitionTime": Time(Timestamp::now()),
                }]
            });
            if let Some(n) = nominated_node {
                status["nominatedNodeName"] = json!(n);
            }
            // Strategic merge: conditions merge by type, the others stay.
            pods(c, namespace)
                .patch_status::<serde_json::Value>(name, &PatchParams::default(), &Patch::Strategic(json!({ "status": status })))
                .await?;
        }
        ApiAction::Nominate { namespace, name, node } => {
            let patch = json!({ "status": { "nominatedNodeName": node } });
            pods(c, namespace).patch_status::<serde_json::Value>(name, &PatchParams::default(), &Patch::Strategic(patch)).await?;
        }
        ApiAction::Evict { namespace, name, uid, by, .. } => {
            let api = pods(c, namespace);
            let condition = json!({ "status": { "conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "message": format!("{by}: preempting to accommodate a higher priority pod"),
                "lastTransitionTime": Time(Timestamp::now()),
            }]}});
            // A victim already gone (404) or replaced by a namesake (409 on
            // the UID precondition) is as good as evicted.
            let patched = api.patch_status::<serde_json::Value>(name, &PatchParams::default(), &Patch::Strategic(condition)).await;
            if gone(&patched) {
                return Ok(());
            }
            patched?;
            c.throttle().await;
            let dp = DeleteParams {
                preconditions: Some(Preconditions { uid: Some(uid.clone()).filter(|u| !u.is_empty()), resource_version: None }),
                ..Default::default()
            };
            let deleted = api.delete(name, &dp).await;
            if !gone(&deleted) {
                deleted?;
            }
        }
    }
    Ok(())
}

/// Writes `pods/binding` with the pod's UID as a precondition: what
/// DefaultBinder does through the runtime's `Binder`.
pub async fn bind(c: &ApiClient, pod: &berth_core::model::Pod, node: &str) -> Result<(), kube::Error> {
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()).filter(|u| !u.is_empty()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    pods(c, &pod.namespace).create_subresource::<_, serde_json::Value>("binding", &pod.name, &PostParams::default(), &binding).await?;
    Ok(())
}

/// What a refused binding revealed: the pod as the API server has it now.
pub enum Reread {
    /// It exists (bound already, or replaced by a pod of the same name).
    Pod(Box<Pod>),
    /// It is gone.
    Gone { namespace: String, name: String },
}

/// The runtime's `Binder` for binding cycles, which run on worker threads
/// of the async runtime's blocking pool: each binding waits for a token of
/// the client's QPS bucket, then calls the API.
pub struct ApiBinder {
    pub client: ApiClient,
    pub runtime: tokio::runtime::Handle,
    /// Told, before the binding's failure is reported, what a binding
    /// refused with 409 (already bound, or another pod of that name) or 404
    /// (deleted) revealed. The watch says so too, but perhaps only after a
    /// re-list; until then the cache would count the node without the pod.
    pub reread: Option<Box<dyn Fn(Reread) + Send + Sync>>,
}

impl ApiBinder {
    /// The binding call, after a token of the QPS bucket: what both the
    /// worker thread (through `Binder::bind`) and the async fast path run.
    pub async fn call(&self, pod: &berth_core::model::Pod, node: &str) -> Result<(), String> {
        self.client.throttle().await;
        let Err(e) = bind(&self.client, pod, node).await else { return Ok(()) };
        if let (kube::Error::Api(s), Some(tell)) = (&e, &self.reread) {
            if s.code == 409 || s.code == 404 {
                self.client.throttle().await;
                match pods(&self.client, &pod.namespace).get_opt(&pod.name).await {
                    Ok(Some(p)) => tell(Reread::Pod(Box::new(p))),
                    Ok(None) => tell(Reread::Gone { namespace: pod.namespace.clone(), name: pod.name.clone() }),
                    // Unknown: the watch will tell.
                    Err(_) => {}
                }
            }
        }
        Err(format!("binding rejected: {e}"))
    }
}

impl berth_core::framework::Binder for ApiBinder {
    fn bind(&self, pod: &berth_core::model::Pod, node: &str) -> Result<(), String> {
        self.runtime.block_on(self.call(pod, node))
    }
}

/// The dynamic API resource of a plugin-declared kind.
pub fn api_resource(kind: &ObjectKind) -> ApiResource {
    ApiResource {
        group: kind.group.to_string(),
        version: kind.version.to_string(),
        api_version: kind.api_version(),
        kind: kind.kind.to_string(),
        plural: kind.plural.to_string(),
    }
}

/// Plugins' writes ([`Handle::writer`](berth_core::framework::Handle::writer)):
/// merge patches through the scheduler's client, after a token of its QPS
/// bucket. Blocks: called from the binding cycle's worker threads.
pub struct ApiWriter {
    pub client: ApiClient,
    pub runtime: tokio::runtime::Handle,
}

impl ObjectWriter for ApiWriter {
    fn get(&self, kind: &ObjectKind, namespace: &str, name: &str) -> Result<serde_json::Value, WriteError> {
        let api = self.api(kind, namespace);
        let read = self.runtime.block_on(async {
            self.client.throttle().await;
            api.get(name).await
        });
        let key = || WriteError::key(kind, namespace, name);
        match read {
            Ok(o) => serde_json::to_value(o).map_err(|e| WriteError::Failed { kind: kind.to_string(), key: key(), message: e.to_string() }),
            Err(kube::Error::Api(e)) if e.code == 404 => Err(WriteError::NotFound { kind: kind.to_string(), key: key() }),
            Err(e) => Err(WriteError::Failed { kind: kind.to_string(), key: key(), message: e.to_string() }),
        }
    }

    fn merge_patch(
        &self,
        kind: &ObjectKind,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<serde_json::Value, WriteError> {
        self.patch(kind, namespace, name, patch, false)
    }

    fn create(&self, kind: &ObjectKind, namespace: &str, object: &serde_json::Value) -> Result<serde_json::Value, WriteError> {
        let api = self.api(kind, namespace);
        let name = object.pointer("/metadata/name").or(object.pointer("/metadata/generateName")).and_then(|n| n.as_str()).unwrap_or("");
        let key = || WriteError::key(kind, namespace, name);
        let failed = |message: String| WriteError::Failed { kind: kind.to_string(), key: key(), message };
        let mut object = object.clone();
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        let object: DynamicObject = serde_json::from_value(object).map_err(|e| failed(e.to_string()))?;
        let created = self.runtime.block_on(async {
            self.client.throttle().await;
            api.create(&PostParams::default(), &object).await
        });
        match created {
            Ok(o) => serde_json::to_value(o).map_err(|e| failed(e.to_string())),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                Err(WriteError::Conflict { kind: kind.to_string(), key: key(), message: e.message })
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }

    fn delete(&self, kind: &ObjectKind, namespace: &str, name: &str) -> Result<(), WriteError> {
        let api = self.api(kind, namespace);
        let deleted = self.runtime.block_on(async {
            self.client.throttle().await;
            api.delete(name, &DeleteParams::default()).await
        });
        let key = || WriteError::key(kind, namespace, name);
        match deleted {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Err(WriteError::NotFound { kind: kind.to_string(), key: key() }),
            Err(e) => Err(WriteError::Failed { kind: kind.to_string(), key: key(), message: e.to_string() }),
        }
    }

    fn merge_patch_status(
        &self,
        kind: &ObjectKind,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<serde_json::Value, WriteError> {
        self.patch(kind, namespace, name, patch, true)
    }
}

impl ApiWriter {
    /// The dynamic API of `kind` (in `namespace` when namespaced).
    fn api(&self, kind: &ObjectKind, namespace: &str) -> Api<DynamicObject> {
        let (ar, c) = (api_resource(kind), self.client.client.clone());
        if kind.namespaced {
            Api::namespaced_with(c, namespace, &ar)
        } else {
            Api::all_with(c, &ar)
        }
    }

    fn patch(
        &self,
        kind: &ObjectKind,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
        status: bool,
    ) -> Result<serde_json::Value, WriteError> {
        let api = self.api(kind, namespace);
        let written = self.runtime.block_on(async {
            self.client.throttle().await;
            let (pp, p) = (PatchParams::default(), Patch::Merge(patch));
            if status {
                api.patch_status(name, &pp, &p).await
            } else {
                api.patch(name, &pp, &p).await
            }
        });
        let key = || WriteError::key(kind, namespace, name);
        match written {
            Ok(o) => serde_json::to_value(o).map_err(|e| WriteError::Failed { kind: kind.to_string(), key: key(), message: e.to_string() }),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                Err(WriteError::Conflict { kind: kind.to_string(), key: key(), message: e.message })
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Err(WriteError::NotFound { kind: kind.to_string(), key: key() }),
            Err(e) => Err(WriteError::Failed { kind: kind.to_string(), key: key(), message: e.to_string() }),
        }
    }
}

fn gone<T>(r: &Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409)
}

/// events.k8s.io caps `note` at 1 kB.
fn truncate_note(note: &str) -> String {
    const MAX: usize = 1024;
    if note.len() <= MAX {
        return note.to_string();
    }
    let mut end = MAX - 3;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &note[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_at_a_char_boundary() {
        assert_eq!(truncate_note("short"), "short");
        let long = "é".repeat(800);
        let t = truncate_note(&long);
        assert!(t.len() <= 1024 && t.ends_with("..."));
    }
}
