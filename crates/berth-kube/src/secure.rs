//! Secure serving, as kube-scheduler's: HTTPS (a self-signed certificate
//! when none is given), callers authenticated by the API server
//! (TokenReview of their bearer token; without one they are
//! `system:anonymous`) and authorized by it (SubjectAccessReview of the
//! path and verb, as RBAC's `nonResourceURLs`), except on the paths always
//! allowed (`/healthz`, `/readyz`, `/livez` by default). Answers are cached
//! for 10 s, as upstream's delegating authenticator and authorizer do.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{error, warn};

/// The paths served to anyone, by default (`--authorization-always-allow-paths`).
pub const ALWAYS_ALLOWED: &str = "/healthz,/readyz,/livez";

/// How long an answer of the API server is reused.
const CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries kept per cache, at most; past that the cache starts over.
const CACHE_MAX: usize = 4096;

/// Why secure serving could not start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key in it")]
    NoKey { path: PathBuf },
    #[error("the certificate and key do not go together: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
    #[error("generating a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
}

/// The serving certificate: files, or one made up at start.
pub enum ServingCert {
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned,
}

impl ServingCert {
    /// The TLS configuration to serve with (HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, TlsError> {
        let (chain, key) = match self {
            ServingCert::Files { cert, key } => {
                let read = |p: &PathBuf| std::fs::read(p).map_err(|source| TlsError::Read { path: p.clone(), source });
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?).filter_map(Result::ok).collect();
                if chain.is_empty() {
                    return Err(TlsError::NoCertificate { path: cert.clone() });
                }
                let key = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|_| TlsError::NoKey { path: key.clone() })?;
                (chain, key)
            }
            ServingCert::SelfSigned => {
                // As kube-scheduler: for localhost and this host's name.
                let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
                if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
                    names.push(host.trim().to_string());
                }
                let cert = rcgen::generate_simple_self_signed(names)?;
                let key = PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
                (vec![cert.cert.der().clone()], key)
            }
        };
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Serves `router` over TLS on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, tls: Arc<tokio_rustls::rustls::ServerConfig>, router: axum::Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "accepting an HTTPS connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            // A client that does not finish its handshake is dropped.
            let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else { return };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Who is calling, as the API server said.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Caller {
    user: String,
    uid: String,
    groups: Vec<String>,
}

impl Caller {
    fn anonymous() -> Caller {
        Caller { user: "system:anonymous".into(), uid: String::new(), groups: vec!["system:unauthenticated".into()] }
    }
}

/// What asking the API server decided, or that it could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("asking the API server: {0}")]
struct ReviewError(#[from] kube::Error);

/// Answers kept for a while, by question.
type Cache<K, V> = Mutex<HashMap<K, (Instant, V)>>;

/// Delegated authentication and authorization.
pub struct Delegated {
    client: kube::Client,
    always_allowed: Vec<String>,
    tokens: Cache<String, Option<Caller>>,
    /// (caller, path, verb) -> allowed.
    decisions: Cache<(Caller, String, String), bool>,
}

fn cached<K: std::hash::Hash + Eq, V: Clone>(cache: &Cache<K, V>, key: &K) -> Option<V> {
    let c = cache.lock().unwrap_or_else(|e| e.into_inner());
    c.get(key).filter(|(at, _)| at.elapsed() < CACHE_TTL).map(|(_, v)| v.clone())
}

fn remember<K: std::hash::Hash + Eq, V>(cache: &Cache<K, V>, key: K, value: V) {
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() >= CACHE_MAX {
        c.clear();
    }
    c.insert(key, (Instant::now(), value));
}

impl Delegated {
    /// `always_allowed`: paths served to anyone; `/x/*` allows every path under `/x/`.
    pub fn new(client: kube::Client, always_allowed: &str) -> Delegated {
        let always_allowed = always_allowed.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect();
        Delegated { client, always_allowed, tokens: Mutex::default(), decisions: Mutex::default() }
    }

    fn always_allows(&self, path: &str) -> bool {
        self.always_allowed.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == p,
        })
    }

    /// The caller of a bearer token; `None` when the API server does not know it.
    async fn authenticate(&self, token: &str) -> Result<Option<Caller>, ReviewError> {
        if let Some(c) = cached(&self.tokens, &token.to_string()) {
            return Ok(c);
        }
        let review = TokenReview { spec: TokenReviewSpec { token: token.to_string(), ..Default::default() }, ..Default::default() };
        let answer = Api::<TokenReview>::all(self.client.clone()).create(&PostParams::default(), &review).await?;
        let status = answer.status.unwrap_or_default();
        let caller = status.authenticated.unwrap_or(false).then(|| {
            let u = status.user.unwrap_or_default();
            Caller { user: u.username.unwrap_or_default(), uid: u.uid.unwrap_or_default(), groups: u.groups.unwrap_or_default() }
        });
        remember(&self.tokens, token.to_string(), caller.clone());
        Ok(caller)
    }

    async fn authorize(&self, caller: &Caller, path: &str, verb: &str) -> Result<bool, ReviewError> {
        let key = (caller.clone(), path.to_string(), verb.to_string());
        if let Some(allowed) = cached(&self.decisions, &key) {
            return Ok(allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(caller.user.clone()),
                uid: Some(caller.uid.clone()).filter(|u| !u.is_empty()),
                groups: Some(caller.groups.clone()),
                non_resource_attributes: Some(NonResourceAttributes { path: Some(path.to_string()), verb: Some(verb.to_string()) }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone()).create(&PostParams::default(), &review).await?;
        let allowed = answer.status.is_some_and(|s| s.allowed && !s.denied.unwrap_or(false));
        remember(&self.decisions, key, allowed);
        Ok(allowed)
    }
}

fn refuse(code: StatusCode, message: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
}

/// The middleware: lets a request through, or answers 401, 403 or 503 itself.
pub async fn guard(State(d): State<Arc<Delegated>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if d.always_allows(&path) {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let caller = match token {
        None => Caller::anonymous(),
        Some(t) => match d.authenticate(&t).await {
            Ok(Some(c)) => c,
            Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "Unauthorized: the API server does not know this token\n".into()),
            Err(e) => {
                error!(error = %e, "authenticating a caller");
                return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("cannot authenticate: {e}\n"));
            }
        },
    };
    let verb = req.method().as_str().to_ascii_lowercase();
    match d.authorize(&caller, &path, &verb).await {
        Ok(true) => next.run(req).await,
        Ok(false) => refuse(StatusCode::FORBIDDEN, format!("forbidden: User \"{}\" cannot {verb} path \"{path}\"\n", caller.user)),
        Err(e) => {
            error!(error = %e, "authorizing a caller");
            refuse(StatusCode::SERVICE_UNAVAILABLE, format!("cannot authorize: {e}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn always_allowed_paths_and_prefixes() {
        // A client that is never called: these paths need no API server.
        let cfg = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let d = Delegated::new(kube::Client::try_from(cfg).unwrap(), "/healthz, /readyz,/debug/berth/why/*,");
        for (path, allowed) in [
            ("/healthz", true),
            ("/readyz", true),
            ("/healthz/x", false),
            ("/metrics", false),
            ("/debug/berth/why/ns/pod", true),
            ("/debug/berth/whyx", false),
        ] {
            assert_eq!(d.always_allows(path), allowed, "{path}");
        }
    }

    #[test]
    fn a_self_signed_certificate_serves_and_bad_files_are_named() {
        assert!(ServingCert::SelfSigned.server_config().is_ok());
        let missing = ServingCert::Files { cert: "/nonexistent/tls.crt".into(), key: "/nonexistent/tls.key".into() };
        let e = missing.server_config().unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/tls.crt: cannot read"), "{e}");
        let dir = std::env::temp_dir().join(format!("berth-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("empty.crt"), "not a certificate").unwrap();
        let empty = ServingCert::Files { cert: dir.join("empty.crt"), key: dir.join("empty.crt") };
        assert!(empty.server_config().unwrap_err().to_string().ends_with("empty.crt: no PEM certificate in it"));
    }
}
