//! Reading Kubernetes manifests: YAML or JSON, several documents per file,
//! `kind: List` (what `kubectl get -o yaml` prints) flattened.

use berth_core::model;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::policy::v1 as policy;
use k8s_openapi::api::scheduling::v1 as scheduling;
use rayon::prelude::*;
use serde::Deserialize;

use crate::{ConvertError, PriorityClasses};

/// The objects a cluster description holds, converted.
#[derive(Default, Debug, Clone)]
pub struct Cluster {
    pub nodes: Vec<model::Node>,
    /// In file order.
    pub pods: Vec<model::Pod>,
    pub pdbs: Vec<model::PodDisruptionBudget>,
    pub namespaces: Vec<model::Namespace>,
    /// Objects of other kinds, as read, with their file: plugins may read
    /// some kinds (`Handle::objects`); the rest are reported as skipped.
    pub objects: Vec<(String, serde_json::Value)>,
    /// Kinds nothing can read (no apiVersion), with how many of each.
    pub skipped: std::collections::BTreeMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {source}")]
    Convert { file: String, source: ConvertError },
}

/// Raw API objects in one pass, so PriorityClasses can be applied to pods
/// regardless of where in the input they appear.
#[derive(Default)]
pub struct RawObjects {
    pub nodes: Vec<(String, core::Node)>,
    pub pods: Vec<(String, core::Pod)>,
    pub pdbs: Vec<(String, policy::PodDisruptionBudget)>,
    pub classes: Vec<scheduling::PriorityClass>,
    pub namespaces: Vec<core::Namespace>,
    pub others: Vec<(String, serde_json::Value)>,
    pub skipped: std::collections::BTreeMap<String, usize>,
}

/// Splits YAML text into batches of whole documents at `---` lines: (number
/// of the first document in the batch, text). About 64 batches per input.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut starts = vec![0usize];
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if pos > 0 && (line.starts_with("---\n") || line.starts_with("--- ") || line == "---" || line.starts_with("---\r")) {
            starts.push(pos);
        }
        pos += line.len();
    }
    let per_batch = (starts.len() / 64).max(1);
    let mut out = Vec::new();
    let mut i = 0;
    while i < starts.len() {
        let end = starts.get(i + per_batch).copied().unwrap_or(text.len());
        out.push((i + 1, &text[starts[i]..end]));
        i += per_batch;
    }
    out
}

fn parse_err(file: &str, message: impl Into<String>) -> LoadError {
    LoadError::Parse { file: file.to_string(), message: message.into() }
}

impl RawObjects {
    /// Adds every object in `text` (YAML or JSON, multi-document).
    pub fn add_text(&mut self, file: &str, text: &str) -> Result<(), LoadError> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            // JSON: one value, or a stream of values.
            let stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
            for (i, v) in stream.enumerate() {
                let v = v.map_err(|e| parse_err(file, format!("document {}: {e}", i + 1)))?;
                self.add_value(file, v)?;
            }
            return Ok(());
        }
        // Documents are parsed in parallel: a `kubectl get -o yaml` dump of a
        // large cluster is tens of megabytes, and parsing is independent per
        // document. A line starting with `---` at column 0 always separates
        // documents (block scalars are indented), so splitting is safe.
        let docs = split_documents(text);
        let parsed: Vec<Result<RawObjects, LoadError>> = docs
            .par_iter()
            .map(|(first_doc, chunk)| {
                let mut part = RawObjects::default();
                for (i, doc) in serde_yaml::Deserializer::from_str(chunk).enumerate() {
                    let v = serde_json::Value::deserialize(doc).map_err(|e| parse_err(file, format!("document {}: {e}", first_doc + i)))?;
                    if !v.is_null() {
                        part.add_value(file, v)?;
                    }
                }
                Ok(part)
            })
            .collect();
        for part in parsed {
            self.merge(part?);
        }
        Ok(())
    }

    /// Adds `other`'s objects to these.
    pub fn merge(&mut self, other: RawObjects) {
        self.nodes.extend(other.nodes);
        self.pods.extend(other.pods);
        self.pdbs.extend(other.pdbs);
        self.classes.extend(other.classes);
        self.namespaces.extend(other.namespaces);
        self.others.extend(other.others);
        for (k, n) in other.skipped {
            *self.skipped.entry(k).or_default() += n;
        }
    }

    fn add_value(&mut self, file: &str, v: serde_json::Value) -> Result<(), LoadError> {
        if let serde_json::Value::Array(items) = v {
            for item in items {
                self.add_value(file, item)?;
            }
            return Ok(());
        }
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_string();
        let name = v.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or("").to_string();
        let ns = v.pointer("/metadata/namespace").and_then(|n| n.as_str()).map(|s| format!("{s}/")).unwrap_or_default();
        let what = format!("{kind} {ns}{name}");
        let bad = |e: serde_json::Error| parse_err(file, format!("{what}: {e}"));
        match kind.as_str() {
            k if k.ends_with("List") && v.get("items").is_some_and(|i| i.is_array()) => {
                let api_version = v.get("apiVersion").cloned();
                if let Some(serde_json::Value::Array(items)) = v.get("items").cloned() {
                    for mut item in items {
                        // Typed lists (`NodeList`, `PodGroupList`) omit kind and apiVersion on items.
                        if kind != "List" {
                            if let Some(obj) = item.as_object_mut() {
                                obj.entry("kind").or_insert_with(|| serde_json::Value::String(kind.trim_end_matches("List").to_string()));
                                if let Some(av) = &api_version {
                                    obj.entry("apiVersion").or_insert_with(|| av.clone());
                                }
                            }
                        }
                        self.add_value(file, item)?;
                    }
                }
            }
            "Node" => self.nodes.push((file.to_string(), serde_json::from_value(v).map_err(bad)?)),
            "Pod" => self.pods.push((file.to_string(), serde_json::from_value(v).map_err(bad)?)),
            "PodDisruptionBudget" => self.pdbs.push((file.to_string(), serde_json::from_value(v).map_err(bad)?)),
            "PriorityClass" => self.classes.push(serde_json::from_value(v).map_err(bad)?),
            "Namespace" => self.namespaces.push(serde_json::from_value(v).map_err(bad)?),
            "" => return Err(parse_err(file, format!("object {name:?} has no kind"))),
            _ if v.get("apiVersion").and_then(|a| a.as_str()).is_some_and(|a| !a.is_empty()) => {
                self.others.push((file.to_string(), v));
            }
            other => *self.skipped.entry(other.to_string()).or_default() += 1,
        }
        Ok(())
    }

    /// Converts everything; the first bad object is the error.
    pub fn convert(self) -> Result<Cluster, LoadError> {
        let mut classes = PriorityClasses::new();
        for c in &self.classes {
            classes.add(c);
        }
        let mut out = Cluster { skipped: self.skipped, objects: self.others, ..Default::default() };
        for (file, n) in &self.nodes {
            out.nodes.push(crate::node(n).map_err(|source| LoadError::Convert { file: file.clone(), source })?);
        }
        let pods: Vec<Result<Option<model::Pod>, LoadError>> = self
            .pods
            .par_iter()
            .map(|(file, p)| {
                if crate::pod_is_terminal(p) {
                    return Ok(None);
                }
                crate::pod(p, &classes).map(Some).map_err(|source| LoadError::Convert { file: file.clone(), source })
            })
            .collect();
        for p in pods {
            if let Some(p) = p? {
                out.pods.push(p);
            }
        }
        for (file, p) in &self.pdbs {
            out.pdbs.push(crate::pdb(p).map_err(|source| LoadError::Convert { file: file.clone(), source })?);
        }
        out.namespaces = self.namespaces.iter().map(crate::namespace).collect();
        Ok(out)
    }
}

/// Loads and converts a set of files' contents: `(file name, text)`.
pub fn load(files: &[(String, String)]) -> Result<Cluster, LoadError> {
    let mut raw = RawObjects::default();
    for (name, text) in files {
        raw.add_text(name, text)?;
    }
    raw.convert()
}
