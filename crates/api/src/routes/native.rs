//! The native API under `/api/v1`: tenants, keys and trained models (data sets and
//! training jobs are `datasets.rs` and `jobs.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::{wire, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(me))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key, set_key_limits))
        .routes(routes!(set_tenant_limits))
        .routes(routes!(set_tenant_privacy))
        .routes(routes!(list_models))
        .routes(routes!(get_model, delete_model))
        .routes(routes!(get_version))
        .routes(routes!(set_alias))
        .routes(routes!(deploy))
        .routes(routes!(undeploy))
        .routes(routes!(promote))
        .routes(routes!(rollback))
        .routes(routes!(model_events))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants",
    tag = "tenants",
    summary = "Create a tenant (admin)",
    request_body = CreateTenant,
    responses((status = 201, description = "created", body = crate::wire::TenantBody), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageTenants.as_str()))),
)]
async fn create_tenant(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<impl IntoResponse> {
    let t = s.platform.accounts().create_tenant(&p, &body.name).await?;
    Ok((StatusCode::CREATED, Json(wire::TenantBody::from(t))))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants",
    tag = "tenants",
    summary = "List tenants (admin)",
    responses((status = 200, description = "tenants", body = crate::wire::TenantList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageTenants.as_str()))),
)]
async fn list_tenants(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::TenantList {
        tenants: wire::all(s.platform.accounts().list_tenants(&p).await?),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    summary = "Create an API key; the secret is returned once",
    request_body = crate::wire::CreateKey,
    responses((status = 201, description = "the key and, this once, its secret", body = crate::wire::CreatedKey), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageKeys.as_str()))),
)]
async fn create_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<wire::CreateKey>,
) -> ApiResult<impl IntoResponse> {
    let created = s.platform.accounts().create_key(&p, body.into()).await?;
    // The secret is returned this once; it is not stored and cannot be shown again.
    let body = wire::CreatedKey {
        secret: created.secret.expose().to_string(),
        key: created.key.into(),
    };
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "keys",
    summary = "The calling key, its tenant and permissions",
    responses((status = 200, description = "the key, its tenant and permissions", body = crate::wire::Me), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn me(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Me::from(
        s.platform.accounts().whoami(&p).await?,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "keys",
    summary = "List API keys (no secrets)",
    responses((status = 200, description = "keys", body = crate::wire::KeyList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageKeys.as_str()))),
)]
async fn list_keys(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    let keys = s.platform.accounts().list_keys(&p).await?;
    Ok(Json(wire::KeyList {
        keys: keys.into_iter().map(wire::ApiKey::from).collect(),
    }))
}

/// Replace a key's limits and IP allow-list: `{"limits": {...}, "allowed_ips": [...]}`;
/// `allowed_models` (optional) replaces its model allow-list (null: every model).
#[utoipa::path(
    put,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    summary = "Set a key's limits, IP allow-list and (if given) model allow-list",
    params(("id" = String, Path)),
    request_body = crate::wire::UpdateKey,
    responses((status = 200, description = "the key", body = crate::wire::ApiKey), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageKeys.as_str()))),
)]
async fn set_key_limits(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<wire::UpdateKey>,
) -> ApiResult<impl IntoResponse> {
    let key = s
        .platform
        .accounts()
        .set_key_limits(&p, &id, body.into())
        .await?;
    Ok(Json(wire::ApiKey::from(key)))
}

/// Replace a tenant's limits (admin): the body is the limits object.
#[utoipa::path(
    put,
    path = "/api/v1/tenants/{id}/limits",
    tag = "tenants",
    summary = "Set a tenant's limits (admin)",
    params(("id" = String, Path)),
    request_body = aiaas_types::Limits,
    responses((status = 200, description = "the tenant", body = crate::wire::TenantBody), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageTenants.as_str()))),
)]
async fn set_tenant_limits(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<aiaas_types::Limits>,
) -> ApiResult<impl IntoResponse> {
    let t = s
        .platform
        .accounts()
        .set_tenant_limits(&p, &id, body)
        .await?;
    Ok(Json(wire::TenantBody::from(t)))
}

/// A field left out keeps its value; null turns it off.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TenantPrivacy {
    /// `mask`, `label` or `pseudonymise`: applied to every text the tenant's keys send
    /// to a model.
    #[serde(default, deserialize_with = "wire::present")]
    inputs: Option<Option<String>>,
    /// The same for every text a model returns to the tenant's keys (streamed replies
    /// too).
    #[serde(default, deserialize_with = "wire::present")]
    outputs: Option<Option<String>>,
    /// Who finds the personal data in model inputs and outputs: `["rules"]` (the
    /// default), `["ner"]` (the NER model: names, addresses; milliseconds per text) or
    /// both. With the NER model, streamed replies are held back to sentence ends.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    detectors: Option<Vec<aiaas_core::Detection>>,
}

#[utoipa::path(
    put,
    path = "/api/v1/tenants/{id}/privacy",
    tag = "tenants",
    summary = "Set a tenant's PII policies for model inputs and outputs (owner, admin); a field left out keeps its value, null turns it off",
    params(("id" = String, Path)),
    request_body = TenantPrivacy,
    responses((status = 200, description = "the tenant", body = crate::wire::TenantBody), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageKeys.as_str()))),
)]
async fn set_tenant_privacy(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TenantPrivacy>,
) -> ApiResult<impl IntoResponse> {
    let mode = |field: &str, value: Option<Option<String>>| -> ApiResult<_> {
        value
            .map(|v| {
                v.map(|m| {
                    aiaas_types::PiiMode::parse(&m).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "{field} must be mask, label, pseudonymise or null, not {m:?}"
                        ))
                    })
                })
                .transpose()
            })
            .transpose()
    };
    let update = aiaas_core::PrivacyUpdate {
        inputs: mode("inputs", body.inputs)?,
        outputs: mode("outputs", body.outputs)?,
        detectors: body.detectors,
    };
    let t = s
        .platform
        .privacy()
        .set_tenant_privacy(&p, &id, update)
        .await?;
    Ok(Json(wire::TenantBody::from(t)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    summary = "Revoke an API key",
    params(("id" = String, Path)),
    responses((status = 200, description = "the revoked key", body = crate::wire::ApiKey), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageKeys.as_str()))),
)]
async fn revoke_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::ApiKey::from(
        s.platform.accounts().revoke_key(&p, &id).await?,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/models",
    tag = "models",
    summary = "List models",
    responses((status = 200, description = "models", body = crate::wire::ModelList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn list_models(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    let models = s.platform.models().list(&p).await?;
    Ok(Json(wire::ModelList {
        models: wire::all(models),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/models/{name}",
    tag = "models",
    summary = "A model: versions, aliases, deployment",
    params(("name" = String, Path)),
    responses((status = 200, description = "the model", body = crate::wire::ModelShown), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn get_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::ModelShown::from(
        s.platform.models().get(&p, &name).await?,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/models/{name}/versions/{version}",
    tag = "models",
    summary = "One version (number or alias)",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "the version", body = crate::wire::ModelVersion), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn get_version(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let v = s
        .platform
        .models()
        .get_version(&p, &name, Some(&version))
        .await?;
    Ok(Json(wire::ModelVersion::from(v)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/models/{name}",
    tag = "models",
    summary = "Delete a model and its versions",
    params(("name" = String, Path)),
    responses((status = 204, description = "deleted"), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Deploy.as_str()))),
)]
async fn delete_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    s.platform.models().delete(&p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetAlias {
    alias: String,
    version: i64,
}

#[utoipa::path(
    post,
    path = "/api/v1/models/{name}/aliases",
    tag = "models",
    summary = "Point an alias at a version",
    params(("name" = String, Path)),
    request_body = SetAlias,
    responses((status = 200, description = "the alias", body = crate::wire::Alias), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Deploy.as_str()))),
)]
async fn set_alias(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SetAlias>,
) -> ApiResult<impl IntoResponse> {
    let a = s
        .platform
        .models()
        .set_alias(&p, &name, &body.alias, body.version)
        .await?;
    Ok(Json(wire::Alias::from(a)))
}

#[utoipa::path(
    post,
    path = "/api/v1/models/{name}/deploy",
    tag = "models",
    summary = "Deploy a version (default: latest)",
    params(("name" = String, Path)),
    request_body = Option<crate::wire::Deploy>,
    responses((status = 200, description = "the deployment", body = crate::wire::Deployment), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Deploy.as_str()))),
)]
async fn deploy(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    // The body is optional: no body deploys the latest version with default settings.
    let req: wire::Deploy = if body.iter().all(u8::is_ascii_whitespace) {
        wire::Deploy::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let req = aiaas_core::DeployRequest::try_from(req).map_err(ApiError::bad_request)?;
    Ok(Json(wire::Deployment::from(
        s.platform.models().deploy(&p, &name, req).await?,
    )))
}

#[utoipa::path(
    post,
    path = "/api/v1/models/{name}/promote",
    tag = "models",
    summary = "Make the canary the deployed version",
    params(("name" = String, Path)),
    responses((status = 200, description = "the deployment, without a canary", body = crate::wire::Deployment), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Deploy.as_str()))),
)]
async fn promote(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Deployment::from(
        s.platform.models().promote(&p, &name).await?,
    )))
}

#[utoipa::path(
    post,
    path = "/api/v1/models/{name}/rollback",
    tag = "models",
    summary = "End the canary: the stable version takes all traffic",
    params(("name" = String, Path)),
    responses((status = 200, description = "the deployment, without a canary", body = crate::wire::Deployment), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Deploy.as_str()))),
)]
async fn rollback(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Deployment::from(
        s.platform.models().rollback(&p, &name).await?,
    )))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Most events returned, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/models/{name}/events",
    tag = "models",
    summary = "What happened to a model: deploys, canaries, promotions, rollbacks (newest first)",
    params(("name" = String, Path), EventsQuery),
    responses((status = 200, description = "the events", body = Vec<crate::wire::ModelEvent>), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn model_events(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<impl IntoResponse> {
    let events = s
        .platform
        .models()
        .events(&p, &name, q.limit.unwrap_or(100))
        .await?;
    Ok(Json(
        events
            .into_iter()
            .map(wire::ModelEvent::from)
            .collect::<Vec<_>>(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/models/{name}/undeploy",
    tag = "models",
    summary = "Undeploy",
    params(("name" = String, Path)),
    responses((status = 204, description = "undeployed"), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Deploy.as_str()))),
)]
async fn undeploy(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    s.platform.models().undeploy(&p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
