//! Model uploads: `POST /api/v1/models/{name}/versions` takes an `.onnx` file (the raw
//! body as `application/octet-stream` with the configuration in the query string, or a
//! multipart form with `file` and an optional `config` part of JSON) and creates the
//! model's next version.

use aiaas_core::CoreError;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Auth};
use crate::{wire, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    // Uploads are bounded by `max_upload_bytes` (413 past it), not the JSON limit.
    let (schemas, paths, upload) = routes!(upload_version);
    OpenApiRouter::new().routes((schemas, paths, upload.layer(DefaultBodyLimit::disable())))
}

/// The configuration in the query string (a raw-body upload): `config` is the whole
/// configuration as JSON; the other fields set one key of it each.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    /// The configuration as JSON (Triton's config.pbtxt fields).
    config: Option<String>,
    /// Most rows merged into one run (0: no batching).
    max_batch_size: Option<u64>,
    /// Intra-op threads (0: ONNX Runtime's default).
    threads: Option<u64>,
    /// Dynamic batching's longest wait for a batch to fill.
    max_queue_delay_ms: Option<u64>,
    /// Class names of the classification output, comma-separated.
    labels: Option<String>,
}

impl UploadQuery {
    /// The configuration these parameters describe, `None` when they give none.
    fn config(self) -> ApiResult<Option<Value>> {
        let mut config = match &self.config {
            Some(text) => parse_config(text)?,
            None => Map::new(),
        };
        if let Some(n) = self.max_batch_size {
            config.insert("max_batch_size".into(), n.into());
        }
        if let Some(n) = self.threads {
            config.insert("threads".into(), n.into());
        }
        if let Some(ms) = self.max_queue_delay_ms {
            config.insert(
                "dynamic_batching".into(),
                serde_json::json!({"max_queue_delay_ms": ms}),
            );
        }
        if let Some(labels) = self.labels {
            let list: Vec<Value> = labels.split(',').map(|l| l.trim().into()).collect();
            config.insert("labels".into(), list.into());
        }
        Ok((self.config.is_some() || !config.is_empty()).then_some(Value::Object(config)))
    }
}

fn parse_config(text: &str) -> ApiResult<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("config must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "config is not valid JSON: {e}"
        ))),
    }
}

/// Upload an ONNX model as the next version of `name` (created on first upload). The
/// file is loaded and checked before anything is stored; a bad file or configuration is
/// a 400 naming what is wrong.
#[utoipa::path(
    post,
    path = "/api/v1/models/{name}/versions",
    tag = "models",
    summary = "Upload an ONNX model version",
    params(("name" = String, Path), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "the new version, with its configuration and signature", body = crate::wire::ModelVersion), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Deploy.as_str()))),
)]
async fn upload_version(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let limit = s.platform.max_upload_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(64 * 1024)) {
        return Err(too_large(limit));
    }
    let multipart = crate::bodies::is_multipart(&headers);
    let (bytes, config) = if multipart {
        let form = Multipart::from_request(req, &s).await.map_err(|e| {
            ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
        })?;
        read_form(form, limit, query).await?
    } else {
        let mut bytes = Vec::new();
        let mut stream = req.into_body().into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        (bytes, query.config()?)
    };
    let v = s
        .platform
        .models()
        .upload_onnx(&p, &name, bytes, config)
        .await?;
    Ok((StatusCode::CREATED, Json(wire::ModelVersion::from(v))))
}

fn too_large(limit: u64) -> ApiError {
    CoreError::PayloadTooLarge(format!(
        "the model exceeds the upload limit of {limit} bytes (--max-upload-mb)"
    ))
    .into()
}

/// The `file` part (at most `limit` bytes) and the configuration: a `config` part of
/// JSON, else the query string's.
async fn read_form(
    mut form: Multipart,
    limit: u64,
    query: UploadQuery,
) -> ApiResult<(Vec<u8>, Option<Value>)> {
    let mut file: Option<Vec<u8>> = None;
    let mut config: Option<Value> = None;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?
    {
        match field.name().unwrap_or_default() {
            "file" if file.is_none() => {
                let mut bytes = Vec::new();
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?
                {
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Err(too_large(limit));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some(bytes);
            }
            "config" => {
                let text = field.text().await.map_err(|e| {
                    ApiError::bad_request(format!("invalid multipart field config: {e}"))
                })?;
                config = Some(Value::Object(parse_config(&text)?));
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field {other:?}; send `file` (the .onnx) and optionally `config` (JSON)"
                )))
            }
        }
    }
    let file = file.ok_or_else(|| ApiError::bad_request("the form has no \"file\" part"))?;
    let config = match config {
        Some(c) => Some(c),
        None => query.config()?,
    };
    Ok((file, config))
}
