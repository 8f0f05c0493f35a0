//! The simulator's object writer: plugins' writes (`Handle::writer`) patch
//! the in-memory copies of the manifests' objects, and the controllers a
//! cluster runs answer at once, as a watch would then report:
//!
//! - the PersistentVolume controller and a provisioner: a volume given a
//!   `claimRef` binds its claim; a claim given
//!   `volume.kubernetes.io/selected-node` is provisioned a volume (a CSI
//!   volume of the class's provisioner), reachable from that node by its
//!   hostname label, and bound.
//!
//! - the resourceclaim controller's release of claims (see [`crate::claims`]):
//!   a pod that goes away leaves its claims' `status.reservedFor`; the last
//!   consumer gone, a claim is deallocated (or deleted, if made for the pod).
//!
//! Each change goes to the plugin stores at once and is queued as a cluster
//! event for the simulation loop to deliver.

use std::collections::BTreeMap;
use std::sync::Mutex;

use berth_core::framework::{action, ObjectKey, ObjectKind, ObjectWriter, PluginHost, WriteError};
use berth_core::plugins::dynamic_resources::objects::PODS;
use berth_core::plugins::volume::objects::{ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE, CLAIMS, CLASSES, VOLUMES};
use serde_json::{json, Value};

type Key = (ObjectKind, ObjectKey);

#[derive(Default)]
struct Objects {
    by_key: BTreeMap<Key, Value>,
    version: u64,
    /// Changes not yet delivered to the queue: kind and action.
    changed: Vec<(ObjectKind, Option<ObjectKey>, u32)>,
    /// What plugins wrote into pods (a status field), merged per pod.
    pod_writes: BTreeMap<ObjectKey, Value>,
}

/// In-memory objects of the kinds plugins declared.
#[derive(Default)]
pub(crate) struct MemoryWriter {
    objects: Mutex<Objects>,
    /// The host whose stores see the changes (set once built, cleared at the end).
    host: Mutex<Option<PluginHost>>,
}

fn key_of(kind: &ObjectKind, namespace: &str, name: &str) -> Key {
    (*kind, ObjectKey::new(kind, namespace, name))
}

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

impl MemoryWriter {
    /// Keeps `object` (already fed to the stores) so plugins can write it.
    pub(crate) fn load(&self, kind: &ObjectKind, object: &Value) {
        // Objects the stores took have a key; the rest are not loaded.
        if let Ok(key) = ObjectKey::of(kind, object) {
            self.lock().by_key.insert((*kind, key), object.clone());
        }
    }

    /// Lets the writer feed `host`'s stores.
    pub(crate) fn attach(&self, host: PluginHost) {
        *self.host.lock().unwrap_or_else(|e| e.into_inner()) = Some(host);
    }

    /// Breaks the host → writer → host cycle once the simulation is over.
    pub(crate) fn detach(&self) {
        self.host.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// The changes since the last call, for the queue.
    pub(crate) fn take_changes(&self) -> Vec<(ObjectKind, Option<ObjectKey>, u32)> {
        std::mem::take(&mut self.lock().changed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `object` with a new resource version and feeds it to the stores.
    fn put(&self, o: &mut Objects, kind: ObjectKind, mut object: Value, action: u32) -> Value {
        o.version += 1;
        object["metadata"]["resourceVersion"] = json!(o.version.to_string());
        if let Some(host) = self.host.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            // Plugins decode what they declared; a write that no longer
            // decodes is the plugin's own doing and shows in its store.
            let _ = host.apply_object(&kind, &object);
        }
        let key = ObjectKey::of(&kind, &object).ok();
        o.changed.push((kind, key.clone(), action));
        if let Some(key) = key {
            o.by_key.insert((kind, key), object.clone());
        }
        object
    }

    /// The PersistentVolume controller's answer to a write.
    fn controllers(&self, o: &mut Objects, kind: ObjectKind, object: &Value) {
        if kind == VOLUMES {
            let claim_ref = &object["spec"]["claimRef"];
            let (Some(ns), Some(name)) = (claim_ref["namespace"].as_str(), claim_ref["name"].as_str()) else { return };
            let Some(claim) = o.by_key.get(&key_of(&CLAIMS, ns, name)).cloned() else { return };
            let pv = object["metadata"]["name"].as_str().unwrap_or("").to_string();
            self.bind(o, claim, object.clone(), &pv);
        } else if kind == CLAIMS {
            let meta = &object["metadata"];
            let Some(node) = meta["annotations"][ANN_SELECTED_NODE].as_str() else { return };
            if object["spec"]["volumeName"].as_str().is_some_and(|v| !v.is_empty()) {
                return;
            }
            let uid = meta["uid"].as_str().filter(|u| !u.is_empty()).map(str::to_string);
            let name = format!(
                "pvc-{}",
                uid.unwrap_or_else(|| format!(
                    "{}-{}",
                    meta["namespace"].as_str().unwrap_or("default"),
                    meta["name"].as_str().unwrap_or("")
                ))
            );
            let spec = &object["spec"];
            let class = spec["storageClassName"].as_str().unwrap_or("");
            let provisioner = o.by_key.get(&key_of(&CLASSES, "", class)).and_then(|c| c["provisioner"].as_str());
            let mut pv = json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": "berth-simulate"}},
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"].clone()},
                    "accessModes": spec["accessModes"].clone(),
                    "storageClassName": spec["storageClassName"].clone(),
                    "volumeMode": spec["volumeMode"].clone(),
                    "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": meta["namespace"].clone(),
                        "name": meta["name"].clone(), "uid": meta["uid"].clone()},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
                },
            });
            // As CSI's external-provisioner writes them (what attach limits count).
            if let Some(driver) = provisioner {
                pv["spec"]["csi"] = json!({"driver": driver, "volumeHandle": name});
            }
            let pv = self.put(o, VOLUMES, pv, action::ADD);
            self.bind(o, object.clone(), pv, &name);
        }
    }

    fn bind(&self, o: &mut Objects, mut claim: Value, mut pv: Value, pv_name: &str) {
        claim["spec"]["volumeName"] = json!(pv_name);
        claim["metadata"]["annotations"][ANN_BIND_COMPLETED] = json!("yes");
        claim["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] = json!("yes");
        claim["status"]["phase"] = json!("Bound");
        self.put(o, CLAIMS, claim, action::UPDATE);
        pv["status"]["phase"] = json!("Bound");
        self.put(o, VOLUMES, pv, action::UPDATE);
    }
}

impl MemoryWriter {
    /// The resourceclaim controller's answer to a pod going away.
    pub(crate) fn pod_gone(&self, uid: &str) {
        use crate::claims::{release, Release};
        use berth_core::plugins::dynamic_resources::objects::CLAIMS as RESOURCE_CLAIMS;
        let mut o = self.lock();
        let claims: Vec<(Key, Value)> =
            o.by_key.iter().filter(|((k, _), _)| *k == RESOURCE_CLAIMS).map(|(k, v)| (k.clone(), v.clone())).collect();
        for (key, claim) in claims {
            match release(&claim, uid) {
                Release::Keep => {}
                Release::Patch(p) => {
                    let mut object = claim;
                    merge(&mut object, &p);
                    self.put(&mut o, RESOURCE_CLAIMS, object, action::UPDATE);
                }
                Release::Delete => {
                    o.by_key.remove(&key);
                    if let Some(host) = self.host.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                        host.delete_object(&RESOURCE_CLAIMS, &key.1.namespace, &key.1.name);
                    }
                    o.changed.push((RESOURCE_CLAIMS, Some(key.1), action::DELETE));
                }
            }
        }
    }
}

impl ObjectWriter for MemoryWriter {
    /// The controllers this writer plays answer inside the write, and
    /// nothing else runs meanwhile.
    fn answers_at_once(&self) -> bool {
        true
    }

    fn get(&self, kind: &ObjectKind, namespace: &str, name: &str) -> Result<Value, WriteError> {
        if *kind == PODS {
            // Pods are kept elsewhere: a pod read here holds its name and
            // what plugins wrote into it.
            let key = key_of(kind, namespace, name).1;
            let mut pod = self.lock().pod_writes.get(&key).cloned().unwrap_or_else(|| json!({}));
            merge(&mut pod, &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}}));
            return Ok(pod);
        }
        self.lock()
            .by_key
            .get(&key_of(kind, namespace, name))
            .cloned()
            .ok_or_else(|| WriteError::NotFound { kind: kind.to_string(), key: WriteError::key(kind, namespace, name) })
    }

    fn create(&self, kind: &ObjectKind, namespace: &str, object: &Value) -> Result<Value, WriteError> {
        let mut object = object.clone();
        let mut o = self.lock();
        if kind.namespaced {
            object["metadata"]["namespace"] = json!(namespace);
        }
        let mut name = object["metadata"]["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            // The API server keeps at most 58 characters of the base.
            let base: String = object["metadata"]["generateName"].as_str().unwrap_or("").chars().take(58).collect();
            name = crate::claims::generated(&base, &format!("{base}/{}", o.version));
            object["metadata"]["name"] = json!(name);
        }
        if o.by_key.contains_key(&key_of(kind, namespace, &name)) {
            return Err(WriteError::Conflict {
                kind: kind.to_string(),
                key: WriteError::key(kind, namespace, &name),
                message: "already exists".into(),
            });
        }
        object["metadata"]["uid"] = json!(format!("{}-{name}", kind.plural));
        Ok(self.put(&mut o, *kind, object, action::ADD))
    }

    fn delete(&self, kind: &ObjectKind, namespace: &str, name: &str) -> Result<(), WriteError> {
        let key = key_of(kind, namespace, name);
        let mut o = self.lock();
        if o.by_key.remove(&key).is_none() {
            return Err(WriteError::NotFound { kind: kind.to_string(), key: WriteError::key(kind, namespace, name) });
        }
        if let Some(host) = self.host.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            host.delete_object(kind, namespace, name);
        }
        o.changed.push((*kind, Some(key.1), action::DELETE));
        Ok(())
    }

    fn merge_patch(&self, kind: &ObjectKind, namespace: &str, name: &str, patch: &Value) -> Result<Value, WriteError> {
        if *kind == PODS {
            // The simulator keeps pods elsewhere and schedules by no status
            // a plugin writes: the write is kept only for plugins to read back.
            let key = key_of(kind, namespace, name).1;
            let mut o = self.lock();
            let pod = o.pod_writes.entry(key).or_insert_with(|| json!({}));
            merge(pod, patch);
            return Ok(pod.clone());
        }
        let key = key_of(kind, namespace, name);
        let show = || WriteError::key(kind, namespace, name);
        let mut o = self.lock();
        let Some(current) = o.by_key.get(&key) else {
            return Err(WriteError::NotFound { kind: kind.to_string(), key: show() });
        };
        let want = patch["metadata"]["resourceVersion"].as_str().unwrap_or("");
        let have = current["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if !want.is_empty() && want != have {
            return Err(WriteError::Conflict {
                kind: kind.to_string(),
                key: show(),
                message: format!("resourceVersion {want} is not the current {have}"),
            });
        }
        let mut object = current.clone();
        merge(&mut object, patch);
        let written = self.put(&mut o, *kind, object, action::UPDATE);
        self.controllers(&mut o, *kind, &written);
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": ["b"]});
        merge(&mut t, &json!({"a": ["c"], "n": {"x": 1}}));
        assert_eq!(t, json!({"a": ["c"], "n": {"x": 1}}));
    }

    #[test]
    fn a_stale_resource_version_is_a_conflict_and_missing_objects_are_not_found() {
        let w = MemoryWriter::default();
        w.load(&CLAIMS, &json!({"metadata": {"name": "c", "resourceVersion": "5"}}));
        let patch = json!({"metadata": {"resourceVersion": "4", "annotations": {"x": "y"}}});
        assert!(matches!(w.merge_patch(&CLAIMS, "default", "c", &patch), Err(WriteError::Conflict { .. })));
        assert!(matches!(w.merge_patch(&CLAIMS, "default", "d", &patch), Err(WriteError::NotFound { .. })));
        let written =
            w.merge_patch(&CLAIMS, "default", "c", &json!({"metadata": {"resourceVersion": "5", "annotations": {"x": "y"}}})).unwrap();
        assert_eq!(written["metadata"]["annotations"]["x"], "y");
        assert_eq!(w.take_changes().into_iter().map(|(k, _, a)| (k, a)).collect::<Vec<_>>(), vec![(CLAIMS, action::UPDATE)]);
    }
}
