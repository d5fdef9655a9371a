//! The native API under `/api/v1`: tenants, keys, datasets, training jobs, models.

use std::convert::Infallible;
use std::time::Duration;

use aiaas_core::{DatasetFormat, DatasetSpec};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::{wire, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/api/v1/me", get(me))
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route(
            "/api/v1/keys/{id}",
            axum::routing::delete(revoke_key).put(set_key_limits),
        )
        .route(
            "/api/v1/tenants/{id}/limits",
            axum::routing::put(set_tenant_limits),
        )
        .route(
            "/api/v1/tenants/{id}/privacy",
            axum::routing::put(set_tenant_privacy),
        )
        .route(
            "/api/v1/datasets",
            // Uploads stream with their own limit (`max_upload_bytes`, 413 past it).
            get(list_datasets).post(upload_dataset.layer(DefaultBodyLimit::disable())),
        )
        .route(
            "/api/v1/datasets/{id}",
            get(get_dataset).delete(delete_dataset),
        )
        .route("/api/v1/datasets/{id}/preview", get(preview_dataset))
        .route("/api/v1/jobs", get(list_jobs).post(create_job))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/jobs/{id}/events", get(job_events))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/models", get(list_models))
        .route("/api/v1/models/{name}", get(get_model).delete(delete_model))
        .route("/api/v1/models/{name}/versions/{version}", get(get_version))
        .route("/api/v1/models/{name}/aliases", post(set_alias))
        .route("/api/v1/models/{name}/deploy", post(deploy))
        .route("/api/v1/models/{name}/undeploy", post(undeploy))
        .route("/api/v1/models/{name}/predict", post(predict))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: String,
}

async fn create_tenant(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<impl IntoResponse> {
    let t = s.platform.accounts().create_tenant(&p, &body.name).await?;
    Ok((StatusCode::CREATED, Json(wire::TenantBody::from(t))))
}

async fn list_tenants(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"tenants": wire::all::<_, wire::TenantBody>(s.platform.accounts().list_tenants(&p).await?)}),
    ))
}

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

async fn me(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Me::from(
        s.platform.accounts().whoami(&p).await?,
    )))
}

async fn list_keys(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    let keys = s.platform.accounts().list_keys(&p).await?;
    Ok(Json(wire::KeyList {
        keys: keys.into_iter().map(wire::ApiKey::from).collect(),
    }))
}

/// Replace a key's limits and IP allow-list: `{"limits": {...}, "allowed_ips": [...]}`;
/// `allowed_models` (optional) replaces its model allow-list (null: every model).
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPrivacy {
    /// `mask`, `label` or `pseudonymise`: applied to every text the tenant's keys send
    /// to a model.
    #[serde(default, deserialize_with = "present")]
    inputs: Option<Option<String>>,
    /// The same for every text a model returns to the tenant's keys (streamed replies
    /// too).
    #[serde(default, deserialize_with = "present")]
    outputs: Option<Option<String>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

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
    };
    let t = s
        .platform
        .privacy()
        .set_tenant_privacy(&p, &id, update)
        .await?;
    Ok(Json(wire::TenantBody::from(t)))
}

async fn revoke_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::ApiKey::from(
        s.platform.accounts().revoke_key(&p, &id).await?,
    )))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    name: Option<String>,
    format: Option<DatasetFormat>,
    text_column: Option<String>,
    label_column: Option<String>,
    /// `mask`, `label` or `pseudonymise`: personal data masked before storing.
    mask_pii: Option<aiaas_privacy::Mode>,
}

/// Upload a dataset: the raw CSV/JSONL as the body (`name` etc. in the query string),
/// or `multipart/form-data` with a `file` part and the same fields as parts.
async fn upload_dataset(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let limit = s.platform.max_upload_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(DRAIN_LIMIT)) {
        return Err(aiaas_core::CoreError::PayloadTooLarge(format!(
            "upload exceeds the limit of {limit} bytes"
        ))
        .into());
    }
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut upload = s.platform.datasets().begin_upload(&p).await?;
    let mut q = query;
    if multipart {
        let form = Multipart::from_request(req, &s).await.map_err(|e| {
            ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
        })?;
        read_form(form, &mut upload, &mut q).await?;
    } else {
        let mut stream = req.into_body().into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
            if let Err(e) = upload.write_chunk(&chunk).await {
                drain(&mut stream).await;
                return Err(e.into());
            }
        }
    }
    let name = q
        .name
        .ok_or_else(|| ApiError::bad_request("name the dataset: ?name=NAME"))?;
    let spec = DatasetSpec {
        name,
        format: q.format,
        text_column: q.text_column,
        label_column: q.label_column,
        mask_pii: q.mask_pii,
    };
    let d = s.platform.datasets().create(&p, spec, upload).await?;
    Ok((StatusCode::CREATED, Json(wire::Dataset::from(d))))
}

/// A multipart upload: the `file` part streamed into `upload`, the other fields into
/// `q` (a form field overrides the query string; the file's name names the dataset and
/// its `.jsonl` extension the format when nothing else does).
async fn read_form(
    mut form: Multipart,
    upload: &mut aiaas_core::DatasetUpload,
    q: &mut UploadQuery,
) -> ApiResult<()> {
    let mut got_file = false;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" && !got_file {
            got_file = true;
            let file_name = field.file_name().map(str::to_string);
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?
            {
                if let Err(e) = upload.write_chunk(&chunk).await {
                    let mut drained = 0u64;
                    while let Ok(Some(c)) = field.chunk().await {
                        drained += c.len() as u64;
                        if drained > DRAIN_LIMIT {
                            break;
                        }
                    }
                    return Err(e.into());
                }
            }
            if q.name.is_none() {
                q.name = file_name.as_deref().map(dataset_name_from_file);
            }
            if q.format.is_none() && file_name.as_deref().is_some_and(|f| f.ends_with(".jsonl")) {
                q.format = Some(DatasetFormat::Jsonl);
            }
            continue;
        }
        let value = field
            .text()
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid multipart field {name}: {e}")))?;
        set_form_field(q, &name, value)?;
    }
    if got_file {
        Ok(())
    } else {
        Err(ApiError::bad_request("the form has no \"file\" part"))
    }
}

/// One non-file field of an upload form.
fn set_form_field(q: &mut UploadQuery, name: &str, value: String) -> ApiResult<()> {
    match name {
        "name" => q.name = Some(value),
        "text_column" => q.text_column = Some(value),
        "label_column" => q.label_column = Some(value),
        "mask_pii" => {
            q.mask_pii = Some(aiaas_privacy::Mode::parse(&value).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown mask_pii {value:?}; use mask, label or pseudonymise"
                ))
            })?)
        }
        "format" => {
            q.format = Some(match value.as_str() {
                "csv" => DatasetFormat::Csv,
                "jsonl" => DatasetFormat::Jsonl,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown format {other:?}; use csv or jsonl"
                    )))
                }
            })
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown form field {other:?}"
            )))
        }
    }
    Ok(())
}

/// Past the upload limit, read (and discard) a bounded remainder of the body before
/// answering 413, so that clients still sending get the response instead of a reset.
const DRAIN_LIMIT: u64 = 32 * 1024 * 1024;

async fn drain(stream: &mut axum::body::BodyDataStream) {
    let mut drained = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while drained < DRAIN_LIMIT {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => drained += chunk.len() as u64,
            _ => return,
        }
    }
}

fn dataset_name_from_file(file: &str) -> String {
    let stem = file.rsplit('/').next().unwrap_or(file);
    let stem = stem.split('.').next().unwrap_or(stem);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

async fn list_datasets(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"datasets": wire::all::<_, wire::Dataset>(s.platform.datasets().list(&p).await?)}),
    ))
}

async fn get_dataset(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Dataset::from(
        s.platform.datasets().get(&p, &id).await?,
    )))
}

#[derive(Deserialize)]
struct PreviewQuery {
    limit: Option<usize>,
}

async fn preview_dataset(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> ApiResult<impl IntoResponse> {
    let rows = s
        .platform
        .datasets()
        .preview(&p, &id, q.limit.unwrap_or(20))
        .await?;
    Ok(Json(
        json!({"rows": wire::all::<_, wire::PreviewLine>(rows)}),
    ))
}

async fn delete_dataset(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    s.platform.datasets().delete(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<wire::SubmitJob>,
) -> ApiResult<impl IntoResponse> {
    let job = s.platform.jobs().submit(&p, body.into()).await?;
    Ok((StatusCode::ACCEPTED, Json(wire::Job::from(job))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Most recent N only.
    limit: Option<usize>,
}

async fn list_jobs(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let mut jobs = s.platform.jobs().list(&p).await?;
    jobs.truncate(q.limit.unwrap_or(usize::MAX));
    Ok(Json(json!({"jobs": wire::all::<_, wire::Job>(jobs)})))
}

async fn get_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Job::from(s.platform.jobs().get(&p, &id).await?)))
}

async fn cancel_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Job::from(
        s.platform.jobs().cancel(&p, &id).await?,
    )))
}

/// Server-sent events of a job: its stored events first (after `Last-Event-ID` when
/// reconnecting), then new ones as they come, then an `end` event with the final status.
async fn job_events(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    // Check access before the stream starts, so errors get a proper status.
    s.platform.jobs().get(&p, &id).await?;
    let stream = futures_util::stream::unfold(
        (s, p, id, after, false),
        |(s, p, id, after, done)| async move {
            if done {
                return None;
            }
            loop {
                let (job, events) = match s.platform.jobs().events(&p, &id, after).await {
                    Ok(v) => v,
                    Err(e) => {
                        let message = match e {
                            aiaas_core::CoreError::Internal(detail) => {
                                let reference = aiaas_types::new_id();
                                tracing::error!(error_ref = %reference, %detail, "job event stream failed");
                                format!("internal error; reference {reference}")
                            }
                            other => other.to_string(),
                        };
                        let ev = Event::default().event("error").data(message);
                        return Some((vec![ev], (s, p, id, after, true)));
                    }
                };
                if !events.is_empty() {
                    let last = events.last().map(|e| e.seq).unwrap_or(after);
                    let out = events
                        .into_iter()
                        .map(|e| {
                            let kind = e.event.get("type").and_then(|t| t.as_str()).unwrap_or("event").to_string();
                            Event::default().id(e.seq.to_string()).event(kind).data(e.event.to_string())
                        })
                        .collect();
                    return Some((out, (s, p, id, last, false)));
                }
                if s.platform.is_shutting_down() {
                    // End without an `end` event: the client can tell a cut stream from a
                    // finished job, and reconnect with Last-Event-ID to another replica.
                    return None;
                }
                if job.status.is_terminal() {
                    let end = json!({"status": job.status.as_str(), "error": job.error, "model_version": job.model_version});
                    let ev = Event::default().event("end").data(end.to_string());
                    return Some((vec![ev], (s, p, id, after, true)));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        },
    )
    .flat_map(|events| futures_util::stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn list_models(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    let models = s.platform.models().list(&p).await?;
    Ok(Json(
        json!({"models": wire::all::<_, wire::ModelListed>(models)}),
    ))
}

async fn get_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::ModelShown::from(
        s.platform.models().get(&p, &name).await?,
    )))
}

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

async fn delete_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    s.platform.models().delete(&p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetAlias {
    alias: String,
    version: i64,
}

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
    Ok(Json(wire::Deployment::from(
        s.platform.models().deploy(&p, &name, req.into()).await?,
    )))
}

async fn undeploy(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    s.platform.models().undeploy(&p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"texts": [...]}` or `{"text": "..."}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictBody {
    #[serde(default)]
    texts: Option<Vec<String>>,
    #[serde(default)]
    text: Option<String>,
}

async fn predict(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PredictBody>,
) -> ApiResult<impl IntoResponse> {
    let texts = match (body.texts, body.text) {
        (Some(t), None) => t,
        (None, Some(t)) => vec![t],
        _ => {
            return Err(ApiError::bad_request(
                "give either \"texts\": [...] or \"text\": \"...\"",
            ))
        }
    };
    Ok(Json(wire::Predictions::from(
        s.platform.models().predict(&p, &name, texts).await?,
    )))
}
