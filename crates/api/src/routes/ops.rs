//! Operations endpoints: liveness and readiness (open, for probes) and Prometheus
//! metrics (an admin or `metrics` key: the labels name every tenant's models). A scraper
//! without a key reads them on a listener of their own (`--metrics-listen`, `scrape_app`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Auth;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "alive", body = Object)),
    security(),
)]
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness (database reachable, not draining)",
    responses((status = 200, description = "ready", body = Object), (status = 503, description = "starting, draining, or the database is away", body = Object)),
    security(),
)]
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

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (an admin or metrics key; --metrics-listen serves them without one)",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadMetrics.as_str()))),
)]
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
