//! `KubeSchedulerConfiguration.extenders`: scheduler extenders, services
//! kube-scheduler calls over HTTP to filter, score, bind and preempt. Field
//! names, defaults and validation messages are upstream's
//! (`k8s.io/kube-scheduler/config/v1` `Extender`, `validateExtenders`); see
//! `docs/research/extenders-1.37.md`.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One extender, as the configuration file writes it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Extender {
    /// The extender's base URL; also its name (kept as written).
    pub url_prefix: String,
    /// The filter call's verb, appended to the URL; empty: no filter.
    #[serde(default)]
    pub filter_verb: String,
    /// The preempt call's verb; empty: the extender takes no part in preemption.
    #[serde(default)]
    pub preempt_verb: String,
    /// The prioritize call's verb; empty: the extender gives no scores.
    #[serde(default)]
    pub prioritize_verb: String,
    /// Multiplies the extender's scores (0-10, times 10 to match plugins').
    #[serde(default)]
    pub weight: i64,
    /// The bind call's verb; set: the extender binds the pods it is
    /// interested in, instead of DefaultBinder.
    #[serde(default)]
    pub bind_verb: String,
    /// With no `tlsConfig.caFile`/`caData`, turns certificate checks off
    /// (upstream's behaviour). The URL's scheme alone says whether TLS is used.
    #[serde(default, rename = "enableHTTPS")]
    pub enable_https: bool,
    /// TLS client settings.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Timeout of each call, a Go duration (`"5s"`); 0 or absent: 5 s.
    #[serde(default)]
    pub http_timeout: Option<String>,
    /// Whether the extender keeps its own copy of the nodes: it is sent
    /// node names only, not whole Node objects.
    #[serde(default)]
    pub node_cache_capable: bool,
    /// The extended resources this extender manages: it is called only for
    /// pods that request one (all pods if none is listed).
    #[serde(default)]
    pub managed_resources: Vec<ManagedResource>,
    /// An unreachable or failing extender is skipped instead of failing
    /// the pod's attempt.
    #[serde(default)]
    pub ignorable: bool,
}

/// TLS client settings of an extender (`ExtenderTLSConfig`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// Skip the server certificate check.
    #[serde(default)]
    pub insecure: bool,
    /// The name the server certificate must carry (SNI).
    #[serde(default)]
    pub server_name: String,
    /// The client certificate's file (PEM).
    #[serde(default)]
    pub cert_file: String,
    /// The client key's file (PEM).
    #[serde(default)]
    pub key_file: String,
    /// The CA bundle's file (PEM) the server certificate is checked against.
    #[serde(default)]
    pub ca_file: String,
    /// The client certificate inline: base64 of the PEM, as Go encodes
    /// `[]byte`; wins over `certFile`.
    #[serde(default)]
    pub cert_data: Option<String>,
    /// The client key inline (base64 of the PEM); wins over `keyFile`.
    #[serde(default)]
    pub key_data: Option<String>,
    /// The CA bundle inline (base64 of the PEM); wins over `caFile`.
    #[serde(default)]
    pub ca_data: Option<String>,
}

/// An extended resource an extender manages.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedResource {
    /// The resource's name (`example.com/foo`).
    pub name: String,
    /// NodeResourcesFit does not check this resource.
    #[serde(default)]
    pub ignored_by_scheduler: bool,
}

/// Upstream's `DefaultExtenderTimeout`.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);

impl Extender {
    /// The timeout of each call: `httpTimeout`, 5 s when 0 or absent. A
    /// negative one is `None`, no timeout, as Go's HTTP client takes it.
    pub fn timeout(&self) -> Result<Option<Duration>, String> {
        match self.http_timeout.as_deref().map(str::trim) {
            None | Some("") => Ok(Some(DEFAULT_HTTP_TIMEOUT)),
            Some(t) if t.starts_with('-') => Ok(None),
            Some(t) => {
                let d = super::parse_duration(t)?;
                Ok(Some(if d.is_zero() { DEFAULT_HTTP_TIMEOUT } else { d }))
            }
        }
    }
}

/// Upstream `validateExtenders`, with its messages; and Berth's own checks
/// of what upstream would refuse only when it starts (the timeout).
pub fn validate(extenders: &[Extender]) -> Result<(), String> {
    let mut binders = 0;
    let mut managed = HashSet::new();
    for (i, e) in extenders.iter().enumerate() {
        let path = format!("extenders[{i}]");
        if !e.prioritize_verb.is_empty() && e.weight <= 0 {
            return Err(format!("{path}.weight: Invalid value: {}: must have a positive weight applied to it", e.weight));
        }
        if !e.bind_verb.is_empty() {
            binders += 1;
        }
        for (j, r) in e.managed_resources.iter().enumerate() {
            let field = format!("{path}.managedResources[{j}].name");
            if let Err(why) = qualified_name(&r.name) {
                return Err(format!("{field}: Invalid value: {:?}: {why}", r.name));
            }
            if !crate::model::resource::is_extended_resource_name(&r.name) {
                return Err(format!("{field}: Invalid value: {:?}: is an invalid extended resource name", r.name));
            }
            if !managed.insert(r.name.as_str()) {
                return Err(format!("{field}: Invalid value: {:?}: duplicate extender managed resource name", r.name));
            }
        }
        e.timeout().map_err(|why| format!("{path}.httpTimeout: {why}"))?;
    }
    if binders > 1 {
        return Err(format!(
            "extenders: Invalid value: \"found {binders} extenders implementing bind\": only one extender can implement bind"
        ));
    }
    Ok(())
}

/// The order every phase walks the extenders in (upstream `buildExtenders`):
/// those that are not ignorable first, then the ignorable ones, each in the
/// configuration's order.
pub fn ordered(extenders: &[Extender]) -> Vec<&Extender> {
    extenders.iter().filter(|e| !e.ignorable).chain(extenders.iter().filter(|e| e.ignorable)).collect()
}

/// The managed resources NodeResourcesFit must not check, in configuration
/// order: they replace its `ignoredResources` in every profile, as upstream
/// replaces them (not merged).
pub fn ignored_by_scheduler(extenders: &[Extender]) -> Vec<String> {
    extenders.iter().flat_map(|e| &e.managed_resources).filter(|r| r.ignored_by_scheduler).map(|r| r.name.clone()).collect()
}

/// apimachinery's `IsQualifiedName`: an optional DNS-subdomain prefix and a
/// `/`, then a name of at most 63 alphanumerics, `-`, `_` or `.`, starting
/// and ending with an alphanumeric. The messages are upstream's.
fn qualified_name(value: &str) -> Result<(), String> {
    const NAME_FMT: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return Err("prefix part must be non-empty".into());
            }
            if !is_dns_subdomain(prefix) {
                return Err("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into());
            }
            name
        }
        _ => {
            return Err("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into())
        }
    };
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !name.chars().all(ok_char) || !ends(name.chars().next()) || !ends(name.chars().last()) {
        return Err(NAME_FMT.into());
    }
    Ok(())
}

/// RFC 1123 subdomain: at most 253 characters of dot-separated labels of
/// lowercase alphanumerics and `-`, each starting and ending with an alphanumeric.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(json: serde_json::Value) -> Extender {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn upstreams_validation_cases_with_upstreams_messages() {
        let negative = ext(serde_json::json!({"urlPrefix": "http://e", "prioritizeVerb": "p", "weight": -2}));
        assert_eq!(validate(&[negative]).unwrap_err(), "extenders[0].weight: Invalid value: -2: must have a positive weight applied to it");
        // Without a prioritizeVerb, any weight.
        assert!(validate(&[ext(serde_json::json!({"urlPrefix": "http://e", "weight": -2}))]).is_ok());
        let managed = |name: &str| ext(serde_json::json!({"urlPrefix": "http://e", "managedResources": [{"name": name}]}));
        assert_eq!(
            validate(&[managed("example.com/foo"), managed("example.com/foo")]).unwrap_err(),
            "extenders[1].managedResources[0].name: Invalid value: \"example.com/foo\": duplicate extender managed resource name"
        );
        assert_eq!(
            validate(&[managed("memory")]).unwrap_err(),
            "extenders[0].managedResources[0].name: Invalid value: \"memory\": is an invalid extended resource name"
        );
        assert!(validate(&[managed("example.com/-x")]).unwrap_err().contains("name part must consist of"));
        let binder = ext(serde_json::json!({"urlPrefix": "http://e", "bindVerb": "bind"}));
        assert_eq!(
            validate(&[binder.clone(), binder]).unwrap_err(),
            "extenders: Invalid value: \"found 2 extenders implementing bind\": only one extender can implement bind"
        );
        assert!(validate(&[ext(serde_json::json!({"urlPrefix": "http://e", "httpTimeout": "5 parsecs"}))])
            .unwrap_err()
            .starts_with("extenders[0].httpTimeout: invalid duration"));
    }

    #[test]
    fn timeouts_default_to_five_seconds_and_negative_means_none() {
        let with = |t: Option<&str>| Extender { http_timeout: t.map(String::from), ..Default::default() }.timeout().unwrap();
        assert_eq!(with(None), Some(DEFAULT_HTTP_TIMEOUT));
        assert_eq!(with(Some("0s")), Some(DEFAULT_HTTP_TIMEOUT));
        assert_eq!(with(Some("30s")), Some(Duration::from_secs(30)));
        assert_eq!(with(Some("-1s")), None);
    }

    #[test]
    fn the_ignorable_come_last_and_ignored_resources_keep_their_order() {
        let e = |url: &str, ignorable: bool, managed: &[(&str, bool)]| Extender {
            url_prefix: url.into(),
            ignorable,
            managed_resources: managed.iter().map(|(n, i)| ManagedResource { name: n.to_string(), ignored_by_scheduler: *i }).collect(),
            ..Default::default()
        };
        let all = [e("a", true, &[("x.io/a", true)]), e("b", false, &[("x.io/b", false)]), e("c", false, &[("x.io/c", true)])];
        let order: Vec<&str> = ordered(&all).iter().map(|e| e.url_prefix.as_str()).collect();
        assert_eq!(order, ["b", "c", "a"]);
        assert_eq!(ignored_by_scheduler(&all), ["x.io/a", "x.io/c"]);
    }

    #[test]
    fn every_field_upstream_has_decodes_and_unknown_ones_are_refused() {
        let e = ext(serde_json::json!({
            "urlPrefix": "https://127.0.0.1:443", "filterVerb": "filter", "preemptVerb": "preempt", "prioritizeVerb": "prioritize",
            "weight": 5, "bindVerb": "bind", "enableHTTPS": true,
            "tlsConfig": {"insecure": true, "serverName": "s", "certFile": "c", "keyFile": "k", "caFile": "ca", "certData": "Yw==", "keyData": "aw==", "caData": "Y2E="},
            "httpTimeout": "30s", "nodeCacheCapable": true,
            "managedResources": [{"name": "nvidia.com/gpu", "ignoredByScheduler": true}], "ignorable": true
        }));
        assert!(e.enable_https && e.node_cache_capable && e.ignorable && e.tls_config.as_ref().is_some_and(|t| t.insecure));
        assert!(serde_json::from_value::<Extender>(serde_json::json!({"urlPrefix": "x", "filterverb": "f"})).is_err());
    }
}
