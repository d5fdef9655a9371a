//! Operations endpoints: liveness and readiness (open, for probes) and Prometheus
//! metrics (an admin or `metrics` key: the labels name every tenant's models). A scraper
//! without a key reads them on a listener of their own (`--metrics-listen`, `scrape_app`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::extract::Auth;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    match s.platform.ready().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(reason = %e, "not ready");
            let reason = match &e {
                _ if s.platform.is_shutting_down() => "shutting down",
                aiaas_core::CoreError::Unavailable(m) if m == "starting" => "starting",
                _ => "metadata database unavailable",
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not ready", "reason": reason})),
            )
        }
    }
}

async fn metrics(
    State(s): State<AppState>,
    Auth(principal): Auth,
) -> Result<impl IntoResponse, crate::ApiError> {
    Ok(prometheus_text(s.platform.metrics_for(&principal)?))
}

/// `/metrics` and nothing else, without a key: for the operator's own scrape listener.
pub fn scrape_router() -> Router<AppState> {
    Router::new().route("/metrics", get(open_metrics))
}

async fn open_metrics(State(s): State<AppState>) -> impl IntoResponse {
    prometheus_text(s.platform.render_metrics())
}

fn prometheus_text(body: String) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}
