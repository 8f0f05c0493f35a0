//! Scheduler extenders over HTTP, as kube-scheduler calls them
//! (`k8s.io/kube-scheduler/extender/v1`): the [`Extender`] the scheduling
//! core calls, for `berth run` and `berth simulate`. Each call is a `POST`
//! of JSON to `urlPrefix/verb` with the extender's `httpTimeout` as its
//! whole deadline; the wire keys are Go's field names (`Pod`, `NodeNames`,
//! `FailedNodes`, ...), and replies are read whatever the keys' case, as Go
//! reads them. See `docs/research/extenders-1.37.md`.
//!
//! What differs from upstream, on purpose:
//! - the Pod and Node objects sent are rebuilt from what Berth keeps of
//!   them (metadata, scheduling fields, container requests; extended
//!   resources as both requests and limits, as the API requires them
//!   equal), not the informer's copy byte for byte;
//! - `tlsConfig.serverName` (an SNI override) is refused: the client
//!   cannot set it, and ignoring it would check the wrong name.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_core::cache::NodeInfo;
use berth_core::config::extenders::Extender as Config;
use berth_core::framework::extender::interested_in;
use berth_core::framework::{Extender, ExtenderError, FilterResult, Victims};
use berth_core::model::{Node, Pod, Resource};
use serde_json::{json, Map, Value};

/// An extender reached over HTTP.
pub struct HttpExtender {
    config: Config,
    managed: Vec<String>,
    agent: ureq::Agent,
}

/// Why an extender's client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A TLS file could not be read.
    #[error("tlsConfig.{field}: reading {path}: {source}")]
    Read { field: &'static str, path: String, source: std::io::Error },
    /// TLS material that is not PEM, or not what the field wants.
    #[error("tlsConfig.{field}: {message}")]
    Pem { field: &'static str, message: String },
    /// A setting Berth's client cannot honour.
    #[error("{0}")]
    Unsupported(String),
}

impl HttpExtender {
    /// The client for one configured extender.
    pub fn new(config: &Config) -> Result<HttpExtender, SetupError> {
        let timeout = config.timeout().map_err(SetupError::Unsupported)?;
        let tls = tls(config)?;
        let agent_config = ureq::Agent::config_builder()
            .timeout_global(timeout)
            .http_status_as_error(false)
            .tls_config(tls)
            // An extender's reply is never a redirect to follow.
            .max_redirects(0)
            .build();
        Ok(HttpExtender {
            managed: config.managed_resources.iter().map(|r| r.name.clone()).collect(),
            config: config.clone(),
            agent: ureq::Agent::new_with_config(agent_config),
        })
    }

    /// The connector `berth run` and `berth simulate` give the core.
    pub fn connector() -> berth_core::config::ExtenderConnector {
        berth_core::config::ExtenderConnector(Arc::new(|c: &Config| {
            HttpExtender::new(c).map(|e| Arc::new(e) as Arc<dyn Extender>).map_err(|e| e.to_string())
        }))
    }

    /// Upstream `send`: POST `args` to `urlPrefix/verb`, a 200 reply's JSON back.
    fn send(&self, verb: &str, args: &Value) -> Result<Value, ExtenderError> {
        let url = format!("{}/{verb}", self.config.url_prefix.trim_end_matches('/'));
        let body = serde_json::to_vec(args).map_err(|e| ExtenderError::Call(e.to_string()))?;
        let mut reply = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .map_err(|e| ExtenderError::Call(format!("Post {url:?}: {e}")))?;
        let code = reply.status().as_u16();
        if code != 200 {
            return Err(ExtenderError::Call(format!("failed {verb} with extender at URL {url}, code {code}")));
        }
        let text = reply.body_mut().read_to_string().map_err(|e| ExtenderError::Call(format!("Post {url:?}: {e}")))?;
        serde_json::from_str(&text).map_err(|e| ExtenderError::Call(format!("{verb} reply of {url}: {e}")))
    }

    /// `ExtenderArgs`: the pod, and the nodes as objects or names.
    fn args(&self, pod: &Pod, nodes: &[&NodeInfo]) -> Value {
        let names: Vec<&str> = nodes.iter().map(|n| n.name()).collect();
        if self.config.node_cache_capable {
            json!({"Pod": pod_json(pod), "Nodes": null, "NodeNames": names})
        } else {
            let items: Vec<Value> = nodes.iter().map(|n| node_json(&n.node)).collect();
            json!({"Pod": pod_json(pod), "Nodes": {"metadata": {}, "items": items}, "NodeNames": null})
        }
    }
}

/// The value of `key` in a JSON object, whatever its case (Go's decoder).
fn field<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    let m = v.as_object()?;
    m.get(key).or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)).filter(|v| !v.is_null())
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

fn replied_error(reply: &Value) -> Result<(), ExtenderError> {
    match field(reply, "Error").and_then(Value::as_str) {
        Some(e) if !e.is_empty() => Err(ExtenderError::Replied(e.to_string())),
        _ => Ok(()),
    }
}

impl Extender for HttpExtender {
    fn name(&self) -> &str {
        &self.config.url_prefix
    }
    fn is_filter(&self) -> bool {
        !self.config.filter_verb.is_empty()
    }
    fn is_prioritizer(&self) -> bool {
        !self.config.prioritize_verb.is_empty()
    }
    fn weight(&self) -> i64 {
        self.config.weight
    }
    fn is_binder(&self) -> bool {
        !self.config.bind_verb.is_empty()
    }
    fn supports_preemption(&self) -> bool {
        !self.config.preempt_verb.is_empty()
    }
    fn is_ignorable(&self) -> bool {
        self.config.ignorable
    }
    fn is_interested(&self, pod: &Pod) -> bool {
        interested_in(&self.managed, pod)
    }

    fn filter(&self, pod: &Pod, nodes: &[&NodeInfo]) -> Result<FilterResult, ExtenderError> {
        let reply = self.send(&self.config.filter_verb, &self.args(pod, nodes))?;
        replied_error(&reply)?;
        let names: Vec<String> = if let Some(n) = field(&reply, "NodeNames").filter(|_| self.config.node_cache_capable) {
            n.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect()
        } else if let Some(list) = field(&reply, "Nodes") {
            field(list, "items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str).map(String::from))
                .collect()
        } else {
            Vec::new()
        };
        Ok(FilterResult {
            nodes: names,
            failed: string_map(field(&reply, "FailedNodes")),
            failed_and_unresolvable: string_map(field(&reply, "FailedAndUnresolvableNodes")),
        })
    }

    fn prioritize(&self, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<(String, i64)>, ExtenderError> {
        let reply = self.send(&self.config.prioritize_verb, &self.args(pod, nodes))?;
        let Some(list) = reply.as_array() else {
            return Err(ExtenderError::Call(format!("{} reply: not a list of host priorities", self.config.prioritize_verb)));
        };
        list.iter()
            .map(|h| {
                let host = field(h, "Host").and_then(Value::as_str).unwrap_or_default().to_string();
                let score = field(h, "Score").map_or(Some(0), Value::as_i64);
                score.map(|s| (host, s)).ok_or_else(|| ExtenderError::Call("a host priority's Score is not an integer".into()))
            })
            .collect()
    }

    fn bind(&self, pod: &Pod, node: &str) -> Result<(), ExtenderError> {
        let args = json!({"PodName": pod.name, "PodNamespace": pod.namespace, "PodUID": pod.uid, "Node": node});
        let reply = self.send(&self.config.bind_verb, &args)?;
        replied_error(&reply)
    }

    fn process_preemption(
        &self,
        pod: &Pod,
        candidates: &BTreeMap<String, Victims>,
        nodes: &dyn Fn(&str) -> Option<Arc<NodeInfo>>,
    ) -> Result<BTreeMap<String, Victims>, ExtenderError> {
        // Node-cache-capable extenders get the victims' UIDs (MetaVictims), the others whole pods.
        let victim = |p: &Arc<berth_core::framework::PodInfo>| {
            if self.config.node_cache_capable {
                json!({"UID": p.pod.uid})
            } else {
                pod_json(&p.pod)
            }
        };
        let by_node: Map<String, Value> = candidates
            .iter()
            .map(|(n, v)| {
                let pods: Vec<Value> = v.pods.iter().map(victim).collect();
                (n.clone(), json!({"Pods": pods, "NumPDBViolations": v.num_pdb_violations}))
            })
            .collect();
        let args = if self.config.node_cache_capable {
            json!({"Pod": pod_json(pod), "NodeNameToVictims": null, "NodeNameToMetaVictims": by_node})
        } else {
            json!({"Pod": pod_json(pod), "NodeNameToVictims": by_node, "NodeNameToMetaVictims": null})
        };
        let reply = self.send(&self.config.preempt_verb, &args)?;
        // Upstream reads the answer from NodeNameToMetaVictims whatever it sent.
        let mut out = BTreeMap::new();
        let Some(meta) = field(&reply, "NodeNameToMetaVictims").and_then(Value::as_object) else { return Ok(out) };
        for (node, v) in meta {
            let info = nodes(node).ok_or_else(|| ExtenderError::Call(format!("nodeinfo not found for node name {node:?}")))?;
            let mut victims =
                Victims { pods: Vec::new(), num_pdb_violations: field(v, "NumPDBViolations").and_then(Value::as_i64).unwrap_or(0) };
            for m in field(v, "Pods").and_then(Value::as_array).into_iter().flatten() {
                let uid = field(m, "UID").and_then(Value::as_str).unwrap_or_default();
                let Some(p) = info.pods.iter().find(|p| p.pod.uid == uid) else {
                    return Err(ExtenderError::Call(format!(
                        "extender: {} claims to preempt pod (UID: {uid}) on node: {node}, but the pod is not found on that node",
                        self.config.url_prefix
                    )));
                };
                victims.pods.push(p.clone());
            }
            out.insert(node.clone(), victims);
        }
        Ok(out)
    }
}

/// Quantities as the API writes them.
fn quantities(r: &Resource, extended_only: bool) -> Map<String, Value> {
    let mut m = Map::new();
    if !extended_only {
        if r.milli_cpu != 0 {
            m.insert("cpu".into(), json!(format!("{}m", r.milli_cpu)));
        }
        if r.memory != 0 {
            m.insert("memory".into(), json!(r.memory.to_string()));
        }
        if r.ephemeral_storage != 0 {
            m.insert("ephemeral-storage".into(), json!(r.ephemeral_storage.to_string()));
        }
    }
    for (name, v) in &r.scalar {
        if !extended_only || berth_core::model::resource::is_extended_resource_name(name) {
            m.insert(name.to_string(), json!(v.to_string()));
        }
    }
    m
}

/// A Pod object rebuilt from what Berth keeps of it.
pub fn pod_json(p: &Pod) -> Value {
    let containers = |cs: &[berth_core::model::Container]| -> Vec<Value> {
        cs.iter()
            .map(|c| {
                json!({"name": c.name, "image": c.image,
                       "resources": {"requests": quantities(&c.requests, false), "limits": quantities(&c.requests, true)}})
            })
            .collect()
    };
    let owners: Vec<Value> = p
        .owner_references
        .iter()
        .map(|o| json!({"apiVersion": o.api_version, "kind": o.kind, "name": o.name, "uid": o.uid, "controller": o.controller}))
        .collect();
    let mut spec = json!({
        "schedulerName": p.scheduler_name,
        "priority": p.priority,
        "nodeSelector": p.node_selector,
        "containers": containers(&p.containers),
        "initContainers": containers(&p.init_containers),
    });
    if let Some(n) = &p.node_name {
        spec["nodeName"] = json!(n);
    }
    let mut status = json!({});
    if let Some(n) = &p.nominated_node_name {
        status["nominatedNodeName"] = json!(n);
    }
    json!({
        "metadata": {"name": p.name, "namespace": p.namespace, "uid": p.uid, "labels": p.labels,
                     "annotations": p.annotations, "ownerReferences": owners},
        "spec": spec,
        "status": status,
    })
}

/// A Node object rebuilt from what Berth keeps of it.
pub fn node_json(n: &Node) -> Value {
    let taints: Vec<Value> =
        n.taints.iter().map(|t| json!({"key": t.key, "value": t.value, "effect": format!("{:?}", t.effect)})).collect();
    let mut allocatable = quantities(&n.allocatable, false);
    allocatable.insert("pods".into(), json!(n.allocatable.allowed_pod_number.to_string()));
    json!({
        "metadata": {"name": n.name, "labels": n.labels, "annotations": n.annotations},
        "spec": {"unschedulable": n.unschedulable, "taints": taints},
        "status": {"allocatable": allocatable, "capacity": allocatable},
    })
}

/// The TLS settings of an extender's client, upstream's way: with
/// `enableHTTPS` and no CA, certificates are not checked.
fn tls(c: &Config) -> Result<ureq::tls::TlsConfig, SetupError> {
    let t = c.tls_config.clone().unwrap_or_default();
    if !t.server_name.is_empty() {
        return Err(SetupError::Unsupported(format!(
            "tlsConfig.serverName {:?}: Berth's extender client cannot override the name it checks; use a urlPrefix with that host name",
            t.server_name
        )));
    }
    let ca = pem("caData", t.ca_data.as_deref(), "caFile", &t.ca_file)?;
    let insecure = t.insecure || (c.enable_https && ca.is_none());
    if insecure && ca.is_some() {
        return Err(SetupError::Unsupported("specifying a root certificates file with the insecure flag is not allowed".into()));
    }
    let mut b = ureq::tls::TlsConfig::builder().disable_verification(insecure);
    if let Some(ca) = ca {
        let certs = certificates(&ca);
        if certs.is_empty() {
            return Err(SetupError::Pem { field: "caData/caFile", message: "no PEM certificate found".into() });
        }
        b = b.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    let cert = pem("certData", t.cert_data.as_deref(), "certFile", &t.cert_file)?;
    let key = pem("keyData", t.key_data.as_deref(), "keyFile", &t.key_file)?;
    match (cert, key) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let chain = certificates(&cert);
            let key =
                ureq::tls::PrivateKey::from_pem(&key).map_err(|e| SetupError::Pem { field: "keyData/keyFile", message: e.to_string() })?;
            b = b.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
        }
        _ => return Err(SetupError::Unsupported("tlsConfig: a client certificate needs both a certificate and a key".into())),
    }
    Ok(b.build())
}

/// The certificates in PEM text (other PEM items are left out).
fn certificates(pem: &[u8]) -> Vec<ureq::tls::Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect()
}

/// PEM bytes from a `*Data` field (base64, as Go encodes `[]byte`) or else
/// a `*File`; `None` when neither is set.
fn pem(data_field: &'static str, data: Option<&str>, file_field: &'static str, file: &str) -> Result<Option<Vec<u8>>, SetupError> {
    use base64::Engine as _;
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|e| SetupError::Pem { field: data_field, message: format!("not base64: {e}") })?;
        return Ok(Some(bytes));
    }
    if file.is_empty() {
        return Ok(None);
    }
    std::fs::read(file).map(Some).map_err(|source| SetupError::Read { field: file_field, path: file.to_string(), source })
}

/// For tests: a configured extender at `url` with these verbs.
#[cfg(test)]
pub(crate) fn config(url: &str, verbs: &[(&str, &str)]) -> Config {
    let mut v = json!({"urlPrefix": url});
    for (k, verb) in verbs {
        v[*k] = json!(verb);
    }
    serde_json::from_value(v).expect("a valid extender")
}

#[cfg(test)]
mod tests;
