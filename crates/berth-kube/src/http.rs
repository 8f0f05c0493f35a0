//! The HTTP endpoints of `berth run`: `/healthz` (the process serves),
//! `/readyz` (caches synced, so decisions are made on a full view),
//! `/metrics` (Prometheus text) and `/debug/berth/why/{namespace}/{name}`
//! (why a pod is pending, or where it went and why: JSON, read by
//! `kubectl berth why`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use berth_core::why::WhyStore;

use crate::metrics::Metrics;

#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
    leading: AtomicBool,
}

impl Health {
    /// This replica leads: it schedules, so it has the diagnoses.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    why: Arc<Mutex<WhyStore>>,
}

/// The path of a pod's diagnosis.
pub const WHY_PATH: &str = "/debug/berth/why";

pub fn router(health: Arc<Health>, metrics: Arc<Metrics>, why: Arc<Mutex<WhyStore>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.health.is_ready() {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.render()).into_response()
            }),
        )
        .route(
            &format!("{WHY_PATH}/{{namespace}}/{{name}}"),
            get(|State(s): State<AppState>, Path((namespace, name)): Path<(String, String)>| async move {
                let key = format!("{namespace}/{name}");
                let json = [(header::CONTENT_TYPE, "application/json")];
                if !s.health.is_leading() {
                    // Behind a Service, the next try may reach the leader.
                    let msg = "this Berth replica is on standby and schedules nothing; ask again to reach the leader";
                    return (StatusCode::SERVICE_UNAVAILABLE, json, serde_json::json!({"error": msg}).to_string()).into_response();
                }
                let found = s.why.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
                match found {
                    Some(w) => (StatusCode::OK, json, serde_json::to_string(&w).unwrap_or_default()).into_response(),
                    None => {
                        let msg = format!("no scheduling attempt of pod {key} is known: Berth has not tried it (another scheduler's pod, not created yet, or scheduled long ago)");
                        (StatusCode::NOT_FOUND, json, serde_json::json!({"error": msg}).to_string()).into_response()
                    }
                }
            }),
        )
        .with_state(AppState { health, metrics, why })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_path(app: &Router, path: &str) -> (StatusCode, String) {
        let resp = app.clone().oneshot(Request::builder().uri(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn endpoints() {
        let health = Arc::new(Health::default());
        let metrics = Arc::new(Metrics::new());
        metrics.observe_attempt("scheduled", "berth", 0.01);
        let app = router(health.clone(), metrics, Arc::default());
        assert_eq!(get_path(&app, "/healthz").await, (StatusCode::OK, "ok".into()));
        assert_eq!(get_path(&app, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        health.set_ready(true);
        assert_eq!(get_path(&app, "/readyz").await, (StatusCode::OK, "ok".into()));
        let (status, body) = get_path(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(r#"scheduler_schedule_attempts_total{result="scheduled",profile="berth"} 1"#), "{body}");
        assert_eq!(get_path(&app, "/nope").await.0, StatusCode::NOT_FOUND);
    }
}
