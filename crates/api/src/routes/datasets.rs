//! Data sets: streamed uploads (raw CSV/JSONL, or a multipart form), listing, details,
//! previews, deletion.

use std::time::Duration;

use aiaas_core::{DatasetFormat, DatasetSpec};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::bodies::{field_into_upload, refuse_declared_oversize, DRAIN_LIMIT};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Auth};
use crate::{wire, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    // Uploads stream with their own limit (`max_upload_bytes`, 413 past it).
    let (schemas, paths, datasets) = routes!(list_datasets, upload_dataset);
    let datasets = (schemas, paths, datasets.layer(DefaultBodyLimit::disable()));
    OpenApiRouter::new()
        .routes(datasets)
        .routes(routes!(get_dataset, delete_dataset))
        .routes(routes!(preview_dataset))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    name: Option<String>,
    /// `csv` or `jsonl` (default: from the content).
    #[param(value_type = Option<String>)]
    format: Option<DatasetFormat>,
    text_column: Option<String>,
    label_column: Option<String>,
    /// `mask`, `label` or `pseudonymise`: personal data masked before storing.
    mask_pii: Option<aiaas_privacy::Mode>,
    /// Who finds it, comma-separated: `rules` (default), `ner`, or `rules,ner`.
    pii_detectors: Option<String>,
}

/// Upload a dataset: the raw CSV/JSONL as the body (`name` etc. in the query string),
/// or `multipart/form-data` with a `file` part and the same fields as parts.
#[utoipa::path(
    post,
    path = "/api/v1/datasets",
    tag = "datasets",
    summary = "Upload a dataset",
    params(UploadQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, description = "the data set, validated, with statistics", body = crate::wire::Dataset), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::WriteData.as_str()))),
)]
async fn upload_dataset(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    refuse_declared_oversize(&headers, s.platform.max_upload_bytes())?;
    let multipart = crate::bodies::is_multipart(&headers);
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
        pii_detectors: parse_detectors(q.pii_detectors.as_deref())?,
    };
    let d = s.platform.datasets().create(&p, spec, upload).await?;
    Ok((StatusCode::CREATED, Json(wire::Dataset::from(d))))
}

/// A multipart upload: the `file` part streamed into `upload`, the other fields into
/// `q` (a form field overrides the query string; the file's name names the dataset and
/// its `.jsonl` extension the format when nothing else does).
async fn read_form(
    mut form: Multipart,
    upload: &mut aiaas_core::Upload,
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
            field_into_upload(&mut field, upload).await?;
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

/// `rules`, `ner` or `rules,ner`.
fn parse_detectors(text: Option<&str>) -> ApiResult<Vec<aiaas_core::Detection>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(|d| match d.trim() {
            "rules" => Ok(aiaas_core::Detection::Rules),
            "ner" => Ok(aiaas_core::Detection::Ner),
            other => Err(ApiError::bad_request(format!(
                "unknown pii detector {other:?}; use rules, ner or rules,ner"
            ))),
        })
        .collect()
}

/// One non-file field of an upload form.
fn set_form_field(q: &mut UploadQuery, name: &str, value: String) -> ApiResult<()> {
    match name {
        "name" => q.name = Some(value),
        "text_column" => q.text_column = Some(value),
        "label_column" => q.label_column = Some(value),
        "pii_detectors" => q.pii_detectors = Some(value),
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

#[utoipa::path(
    get,
    path = "/api/v1/datasets",
    tag = "datasets",
    summary = "List datasets",
    responses((status = 200, description = "data sets", body = crate::wire::DatasetList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn list_datasets(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::DatasetList {
        datasets: wire::all(s.platform.datasets().list(&p).await?),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/datasets/{id}",
    tag = "datasets",
    summary = "A dataset with its statistics",
    params(("id" = String, Path)),
    responses((status = 200, description = "the data set", body = crate::wire::Dataset), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn get_dataset(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Dataset::from(
        s.platform.datasets().get(&p, &id).await?,
    )))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PreviewQuery {
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/datasets/{id}/preview",
    tag = "datasets",
    summary = "First rows (query: limit)",
    params(("id" = String, Path), PreviewQuery),
    responses((status = 200, description = "the first rows", body = crate::wire::PreviewRows), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
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
    Ok(Json(wire::PreviewRows {
        rows: wire::all(rows),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/datasets/{id}",
    tag = "datasets",
    summary = "Delete a dataset not used by jobs",
    params(("id" = String, Path)),
    responses((status = 204, description = "deleted"), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::WriteData.as_str()))),
)]
async fn delete_dataset(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    s.platform.datasets().delete(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
