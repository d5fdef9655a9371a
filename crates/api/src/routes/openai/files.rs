//! OpenAI's files API for training files: `POST /v1/files` (multipart `file`, `purpose`
//! = `fine-tune`; also `mask_pii` and `pii_detectors` as aiaas extensions),
//! `GET /v1/files` (`purpose`, `limit`, `order`, `after`), `GET /v1/files/{id}`,
//! `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`, so `client.files.create` and
//! the rest work unchanged. The upload streams under the installation's upload limit
//! (413 past it, refused from the declared length before any of it is read).

use aiaas_core::FileRecord;
use aiaas_core::FileSpec;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{oai, OResult};
use crate::bodies::{field_into_upload, refuse_declared_oversize, DRAIN_LIMIT};
use crate::error::ApiError;
use crate::extract::Auth;
use crate::AppState;

pub(super) fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    // Uploads stream with their own limit (`max_upload_bytes`, 413 past it).
    let (schemas, paths, files) = utoipa_axum::routes!(list_files, create_file);
    let files = (schemas, paths, files.layer(DefaultBodyLimit::disable()));
    utoipa_axum::router::OpenApiRouter::new()
        .routes(files)
        .routes(utoipa_axum::routes!(get_file, delete_file))
        .routes(utoipa_axum::routes!(file_content))
}

/// OpenAI's file object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FileObject {
    id: String,
    /// Always `file`.
    object: &'static str,
    bytes: i64,
    /// Unix seconds.
    created_at: i64,
    filename: String,
    purpose: String,
    /// Always `processed`: a file is checked before it is kept.
    status: &'static str,
    #[schema(value_type = Option<i64>)]
    expires_at: Option<i64>,
    #[schema(value_type = Option<String>)]
    status_details: Option<String>,
    /// aiaas: what the file holds (`chat` or `completions` examples), how many, and the
    /// mode its personal data was masked with before it was stored (or null).
    format: String,
    examples: i64,
    #[schema(value_type = Option<String>)]
    masked: Option<String>,
}

impl From<FileRecord> for FileObject {
    fn from(f: FileRecord) -> Self {
        FileObject {
            id: f.id,
            object: "file",
            bytes: f.bytes,
            created_at: f.created_at / 1000,
            filename: f.filename,
            purpose: f.purpose,
            status: "processed",
            expires_at: None,
            status_details: None,
            format: f.format,
            examples: f.examples,
            masked: f.masked,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FileList {
    object: &'static str,
    data: Vec<FileObject>,
    has_more: bool,
    #[schema(value_type = Option<String>)]
    first_id: Option<String>,
    #[schema(value_type = Option<String>)]
    last_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only files of this purpose.
    purpose: Option<String>,
    /// 1-10000 (default 10000).
    limit: Option<usize>,
    /// `desc` (newest first, the default) or `asc`.
    order: Option<String>,
    /// A file id: the page after it.
    after: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/files",
    tag = "openai",
    summary = "Upload a file (OpenAI format)",
    request_body(content = String, content_type = "multipart/form-data", description = "file (JSON Lines of chat or completions examples), purpose (fine-tune); mask_pii (mask, label, pseudonymise) and pii_detectors (rules, ner, rules,ner) to mask personal data before it is stored (else the tenant's input policy decides)"),
    responses(
        (status = 200, description = "the file, checked and stored", body = FileObject),
        (status = 413, description = "the upload is over the installation's limit"),
        crate::wire::Refused
    ),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::WriteData.as_str()))),
)]
async fn create_file(State(s): State<AppState>, Auth(p): Auth, req: Request) -> OResult<Response> {
    let files = s.platform.files();
    // Refused before any of the body is read: a key that may not write, a body that
    // declares more than the limit, a body that is not a form.
    let mut upload = files.begin_upload(&p).await.map_err(oai)?;
    refuse_declared_oversize(req.headers(), s.platform.max_upload_bytes()).map_err(oai)?;
    let is_form = crate::bodies::is_multipart(req.headers());
    if !is_form {
        // Read (and drop) a bounded body first, so the connection stays usable.
        let _ = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT as usize).await;
        return Err(ApiError::openai_param(
            "file",
            "send the file as multipart/form-data (fields file and purpose)",
        ));
    }
    let mut form = Multipart::from_request(req, &s).await.map_err(|e| {
        ApiError::openai_param("file", format!("invalid multipart body: {}", e.body_text()))
    })?;
    let mut spec = FileSpec::default();
    let mut got_file = false;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::openai_param("file", format!("invalid multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" && !got_file {
            got_file = true;
            spec.filename = field.file_name().unwrap_or("upload.jsonl").to_string();
            field_into_upload(&mut field, &mut upload)
                .await
                .map_err(|e| oai(e).with_param("file"))?;
            continue;
        }
        let value = field.text().await.map_err(|e| {
            ApiError::openai_param(&name, format!("invalid multipart field {name}: {e}"))
        })?;
        match name.as_str() {
            "purpose" => spec.purpose = value,
            "mask_pii" => {
                spec.mask_pii = Some(aiaas_privacy::Mode::parse(&value).ok_or_else(|| {
                    ApiError::openai_param(
                        "mask_pii",
                        format!("unknown mask_pii {value:?}; use mask, label or pseudonymise"),
                    )
                })?)
            }
            "pii_detectors" => {
                spec.pii_detectors = value
                    .split(',')
                    .map(|d| {
                        aiaas_core::Detection::parse(d).ok_or_else(|| {
                            ApiError::openai_param(
                                "pii_detectors",
                                format!("unknown pii detector {d:?}; use rules, ner or rules,ner"),
                            )
                        })
                    })
                    .collect::<OResult<_>>()?
            }
            other => {
                return Err(ApiError::openai_param(
                    other,
                    format!("unknown form field {other:?} (a file upload has file and purpose)"),
                ))
            }
        }
    }
    if !got_file {
        return Err(ApiError::openai_param("file", "the form has no file"));
    }
    if spec.purpose.is_empty() {
        return Err(ApiError::openai_param(
            "purpose",
            "give the file's purpose: fine-tune",
        ));
    }
    let record = files.create(&p, spec, upload).await.map_err(|e| {
        let param = match &e {
            aiaas_core::CoreError::InvalidInput(m) if m.starts_with("purpose") => "purpose",
            _ => "file",
        };
        oai(e).with_param(param)
    })?;
    Ok(Json(FileObject::from(record)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/files",
    tag = "openai",
    summary = "The tenant's files (OpenAI format)",
    params(ListQuery),
    responses((status = 200, description = "a page of files", body = FileList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn list_files(
    State(s): State<AppState>,
    Auth(p): Auth,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> OResult<Json<FileList>> {
    let Query(q) = query.map_err(|e| ApiError::openai_param("query", e.body_text()))?;
    let ascending = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(ApiError::openai_param(
                "order",
                format!("order must be asc or desc, got {other:?}"),
            ))
        }
    };
    let page = s
        .platform
        .files()
        .list(
            &p,
            q.purpose.as_deref(),
            q.after.as_deref(),
            q.limit.unwrap_or(aiaas_core::MAX_FILES_LISTED),
            ascending,
        )
        .await
        .map_err(|e| {
            let param = match &e {
                aiaas_core::CoreError::InvalidInput(_) => "limit",
                _ => "after",
            };
            oai(e).with_param(param)
        })?;
    let data: Vec<FileObject> = page.files.into_iter().map(FileObject::from).collect();
    Ok(Json(FileList {
        object: "list",
        first_id: data.first().map(|f| f.id.clone()),
        last_id: data.last().map(|f| f.id.clone()),
        has_more: page.has_more,
        data,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/files/{id}",
    tag = "openai",
    summary = "One file (OpenAI format)",
    params(("id" = String, Path)),
    responses((status = 200, description = "the file", body = FileObject), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn get_file(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> OResult<Json<FileObject>> {
    let f = s.platform.files().get(&p, &id).await.map_err(oai)?;
    Ok(Json(FileObject::from(f)))
}

#[utoipa::path(
    get,
    path = "/v1/files/{id}/content",
    tag = "openai",
    summary = "A file's content",
    params(("id" = String, Path)),
    responses((status = 200, description = "the content as stored (masked where it was masked at upload)", content_type = "application/octet-stream"), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn file_content(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> OResult<Response> {
    let (_, content) = s.platform.files().content(&p, &id).await.map_err(oai)?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        content,
    )
        .into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/files/{id}",
    tag = "openai",
    summary = "Delete a file",
    params(("id" = String, Path)),
    responses((status = 200, description = "{\"id\", \"object\": \"file\", \"deleted\": true}"), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::WriteData.as_str()))),
)]
async fn delete_file(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> OResult<Response> {
    let f = s.platform.files().delete(&p, &id).await.map_err(oai)?;
    Ok(Json(json!({"id": f.id, "object": "file", "deleted": true})).into_response())
}
