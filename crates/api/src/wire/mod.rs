//! Response bodies the API owns, built from core records: no store row is serialised to
//! HTTP as it is. An API key's record does not even implement `Serialize`, so its secret
//! hash cannot reach a response by accident.

use aiaas_core::{ApiKeyRecord, Identity};
use serde::Serialize;

mod lists;
mod records;
mod requests;
mod values;

pub(crate) use lists::*;
pub(crate) use records::*;
pub(crate) use requests::*;
pub(crate) use values::*;

/// An API key as callers see it: everything but the secret (shown once, at creation) and
/// its hash (never).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub role: aiaas_types::Role,
    pub allowed_models: Option<Vec<String>>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    pub limits: aiaas_types::Limits,
    pub allowed_ips: Option<Vec<String>>,
}

impl From<ApiKeyRecord> for ApiKey {
    fn from(r: ApiKeyRecord) -> ApiKey {
        ApiKey {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            role: r.role,
            allowed_models: r.allowed_models,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            created_at: r.created_at,
            limits: r.limits,
            allowed_ips: r.allowed_ips,
        }
    }
}

/// A created key: the key and, this once, its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub secret: String,
}

/// `GET /api/v1/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    pub key: ApiKey,
    pub tenant: TenantBody,
    pub permissions: Vec<&'static str>,
}

impl From<Identity> for Me {
    fn from(i: Identity) -> Me {
        Me {
            key: i.key.into(),
            tenant: i.tenant.into(),
            permissions: i.permissions,
        }
    }
}

/// `GET /api/v1/keys`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct KeyList {
    pub keys: Vec<ApiKey>,
}

/// Every error: a machine-readable `code` and a message a person can act on (5xx
/// messages are fixed and carry a reference id; the detail is in the server log).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error answers every authenticated operation may give (401, 403, 404, 409, 413,
/// 429, ...), declared once for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Refused {
    #[response(status = "4XX", description = "refused: see the error")]
    Refused(ErrorBody),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    pub code: String,
    pub message: String,
}
