//! The audit layer: after each request, an audit entry for an authentication failure
//! (401), a denied permission (403) or a change (a mutating method on a route that is not
//! a model call), with the caller (filled in by the `Auth` extractor), the route, the
//! client's address and the outcome.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aiaas_core::{AuditEvent, AuditOutcome, RateStatus};
use aiaas_types::Principal;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use crate::AppState;

/// Who the request turned out to be, and where it stands against its rate limit,
/// once `Auth` has run.
#[derive(Clone, Default)]
pub(crate) struct Caller(Arc<Mutex<(Option<Principal>, Option<RateStatus>)>>);

impl Caller {
    pub(crate) fn set(&self, principal: &Principal, rate: Option<RateStatus>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (Some(principal.clone()), rate);
    }

    fn get(&self) -> (Option<Principal>, Option<RateStatus>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `X-RateLimit-Limit` (requests per burst), `-Remaining`, `-Reset` (seconds until full).
pub(crate) fn rate_limit_headers(headers: &mut HeaderMap, s: &RateStatus) {
    for (name, value) in [
        ("x-ratelimit-limit", s.limit.to_string()),
        ("x-ratelimit-remaining", s.remaining.to_string()),
        ("x-ratelimit-reset", s.reset_secs.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

pub(crate) async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let path = req.uri().path().to_string();
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let caller = Caller::default();
    req.extensions_mut().insert(caller.clone());
    let mut response = next.run(req).await;
    let status = response.status();
    let (principal, rate) = caller.get();
    if let Some(rate) = &rate {
        if !response.headers().contains_key("x-ratelimit-limit") {
            rate_limit_headers(response.headers_mut(), rate);
        }
    }
    if let Some((action, outcome)) = classify(&method, route.as_deref(), status) {
        let event = AuditEvent {
            action,
            target: Some(path),
            outcome,
            source,
            detail: json!({
                "method": method.as_str(),
                "route": route,
                "status": status.as_u16(),
            }),
        };
        state
            .platform
            .audit_log()
            .append(principal.as_ref(), event)
            .await;
    }
    response
}

/// The audit action and outcome of a finished request, or None when it is not audited
/// (reads and model calls that were allowed).
fn classify(
    method: &Method,
    route: Option<&str>,
    status: StatusCode,
) -> Option<(String, AuditOutcome)> {
    if status == StatusCode::UNAUTHORIZED {
        return Some(("auth.failed".into(), AuditOutcome::Denied));
    }
    if status == StatusCode::FORBIDDEN {
        return Some(("access.denied".into(), AuditOutcome::Denied));
    }
    let mutating = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let route = route?;
    if !mutating || is_model_call(route) {
        return None;
    }
    let outcome = if status.is_success() {
        AuditOutcome::Success
    } else {
        AuditOutcome::Failed
    };
    Some((format!("{method} {route}"), outcome))
}

/// Routes that call a model or a pure function: many per second, no state changed.
fn is_model_call(route: &str) -> bool {
    route.starts_with("/v1/")
        || route.ends_with("/predict")
        || route.ends_with("/infer")
        || route.starts_with("/api/v1/privacy/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_audited() {
        let c =
            |m: Method, r: &str, s: u16| classify(&m, Some(r), StatusCode::from_u16(s).unwrap());
        assert_eq!(
            c(Method::GET, "/api/v1/keys", 401),
            Some(("auth.failed".into(), AuditOutcome::Denied))
        );
        assert_eq!(
            c(Method::POST, "/v1/chat/completions", 403),
            Some(("access.denied".into(), AuditOutcome::Denied))
        );
        assert_eq!(
            c(Method::POST, "/api/v1/keys", 201),
            Some(("POST /api/v1/keys".into(), AuditOutcome::Success))
        );
        assert_eq!(
            c(Method::DELETE, "/api/v1/datasets/{id}", 404),
            Some(("DELETE /api/v1/datasets/{id}".into(), AuditOutcome::Failed))
        );
        assert_eq!(c(Method::GET, "/api/v1/keys", 200), None);
        assert_eq!(c(Method::POST, "/v1/chat/completions", 200), None);
        assert_eq!(c(Method::POST, "/api/v1/models/{name}/predict", 400), None);
        assert_eq!(c(Method::POST, "/v2/models/{name}/infer", 200), None);
        assert_eq!(c(Method::POST, "/api/v1/privacy/mask", 200), None);
    }
}
