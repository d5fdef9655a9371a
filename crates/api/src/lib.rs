//! The HTTP API: axum routes for the native API (`/api/v1`), KServe v2 (`/v2`) and
//! operations (`/healthz`, `/readyz`, `/metrics`). Handlers are thin: extract, validate
//! into core types, call the core, map the result. Only this crate knows axum and the
//! wire formats.

mod audit;
mod bodies;
mod console;
mod error;
mod extract;
mod openapi;
mod routes;
mod wire;

use std::time::{Duration, Instant};

use aiaas_core::Platform;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use console::total_bytes as console_bytes;
pub use error::{status_of, ApiError, ErrorStyle};
pub use openapi::document as openapi_document;

/// Largest JSON body accepted (uploads stream separately with their own limit).
const JSON_LIMIT: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub platform: Platform,
}

/// The whole router, ready to serve.
pub fn app(platform: Platform) -> Router {
    let state = AppState { platform };
    let (router, _) = api_router().split_for_parts();
    router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(JSON_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(600),
        ))
        .with_state(state)
}

/// Every route, each documented by its handler's `#[utoipa::path]`: the router and
/// the OpenAPI document come from one place.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::ops::router())
        .merge(routes::native::router())
        .merge(routes::datasets::router())
        .merge(routes::jobs::router())
        .merge(routes::library::router())
        .merge(routes::openai::router())
        .merge(routes::kserve::router())
        .merge(routes::audit::router())
        .merge(routes::privacy::router())
        .merge(routes::uploads::router())
        .merge(routes::predict::router())
        .merge(openapi::router())
        .merge(console::router())
}

/// The unauthenticated metrics listener (`--metrics-listen`): `/metrics` only, for a
/// scraper on an address the operator chose (loopback, a pod-internal port).
pub fn scrape_app(platform: Platform) -> Router {
    routes::ops::scrape_router()
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(AppState { platform })
}

/// Unknown paths get the API's error format and a pointer to the documentation.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    aiaas_core::CoreError::NotFound(format!(
        "no route for {method} {}; the API is described at /openapi.json",
        uri.path()
    ))
    .into()
}

/// A known path with a method it does not take: 405 in the API's error format.
async fn wrong_method(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({"error": {
        "code": "method_not_allowed",
        "message": format!("{} does not take {method}; see /openapi.json", uri.path()),
    }});
    (axum::http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// Count and time every request by route template (never by raw path: bounded labels).
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let metrics = state.platform.metrics();
    metrics.inc(
        "aiaas_http_requests_total",
        "HTTP requests by route, method and status.",
        &[("route", &route), ("method", &method), ("status", &status)],
        1,
    );
    metrics.observe(
        "aiaas_http_request_duration_seconds",
        "HTTP request latency by route.",
        &[("route", &route)],
        aiaas_core::metrics_buckets::LATENCY,
        started.elapsed().as_secs_f64(),
    );
    // Which replica answered (behind a load balancer, for operators and retries).
    let mut response = response;
    if let Ok(v) = axum::http::HeaderValue::from_str(state.platform.replica_id()) {
        response.headers_mut().insert("x-aiaas-replica", v);
    }
    response
}
