//! The audit log over HTTP: query with filters, export as JSON lines, verify the chain.

use aiaas_core::AuditQuery;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::extract::{ApiQuery, Auth};
use crate::{wire, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit", get(list))
        .route("/api/v1/audit/export", get(export))
        .route("/api/v1/audit/verify", get(verify))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Filters {
    tenant: Option<String>,
    key: Option<String>,
    /// Actions starting with this (`auth.`, `POST /api/v1/keys`).
    action: Option<String>,
    outcome: Option<String>,
    /// Epoch milliseconds, inclusive.
    since: Option<i64>,
    /// Epoch milliseconds, exclusive.
    until: Option<i64>,
    /// Entries after this sequence number (paging: pass the last `seq` seen).
    after: Option<i64>,
    limit: Option<i64>,
}

impl From<Filters> for AuditQuery {
    fn from(f: Filters) -> AuditQuery {
        AuditQuery {
            tenant_id: f.tenant,
            key_id: f.key,
            action: f.action,
            outcome: f.outcome,
            since_ms: f.since,
            until_ms: f.until,
            after_seq: f.after,
            limit: f.limit,
        }
    }
}

async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(f): ApiQuery<Filters>,
) -> ApiResult<Json<Value>> {
    let entries = s.platform.audit_log().entries(&p, f.into()).await?;
    Ok(Json(
        json!({"entries": wire::all::<_, wire::AuditEntry>(entries)}),
    ))
}

/// Every matching entry, one JSON object per line.
async fn export(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(f): ApiQuery<Filters>,
) -> ApiResult<Response> {
    let mut query: AuditQuery = f.into();
    let total_limit = query.limit.unwrap_or(i64::MAX);
    let mut lines = Vec::new();
    let mut written = 0i64;
    loop {
        query.limit = Some((total_limit - written).clamp(1, 10_000));
        let page = s.platform.audit_log().entries(&p, query.clone()).await?;
        let Some(last) = page.last() else { break };
        query.after_seq = Some(last.seq);
        for e in &page {
            let e = wire::AuditEntry::from(e.clone());
            lines.extend_from_slice(serde_json::to_string(&e).unwrap_or_default().as_bytes());
            lines.push(b'\n');
        }
        written += page.len() as i64;
        if written >= total_limit || page.len() < 10_000 {
            break;
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from(lines),
    )
        .into_response())
}

async fn verify(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let v = s.platform.audit_log().verify(&p).await?;
    Ok(Json(
        json!({"ok": v.ok(), "entries": v.entries, "head": v.head, "problems": v.problems}),
    ))
}
