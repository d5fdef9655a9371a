//! The audit log over HTTP: query with filters, export as JSON lines, verify the chain.

use aiaas_core::AuditQuery;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiQuery, Auth};
use crate::{wire, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(export))
        .routes(routes!(verify))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
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

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "list_audit_entries",
    tag = "audit",
    summary = "Audit entries (filters: tenant, key, action, outcome, since, until, after, limit)",
    params(Filters),
    responses((status = 200, description = "entries, oldest first", body = crate::wire::AuditList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadAudit.as_str()))),
)]
async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(f): ApiQuery<Filters>,
) -> ApiResult<impl IntoResponse> {
    let entries = s.platform.audit_log().entries(&p, f.into()).await?;
    Ok(Json(wire::AuditList {
        entries: wire::all(entries),
    }))
}

/// Every matching entry, one JSON object per line.
#[utoipa::path(
    get,
    path = "/api/v1/audit/export",
    tag = "audit",
    summary = "Audit entries as JSON lines",
    params(Filters),
    responses((status = 200, description = "one entry per line", body = String, content_type = "application/x-ndjson"), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadAudit.as_str()))),
)]
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
        let full = page.len() == 10_000;
        written += page.len() as i64;
        for e in page {
            let e = wire::AuditEntry::from(e);
            lines.extend_from_slice(serde_json::to_string(&e).unwrap_or_default().as_bytes());
            lines.push(b'\n');
        }
        if written >= total_limit || !full {
            break;
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from(lines),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    summary = "Verify the audit hash chain (admin)",
    responses((status = 200, description = "ok, entries, head, problems", body = Object), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageTenants.as_str()))),
)]
async fn verify(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    let v = s.platform.audit_log().verify(&p).await?;
    Ok(Json(
        json!({"ok": v.ok(), "entries": v.entries, "head": v.head, "problems": v.problems}),
    ))
}
