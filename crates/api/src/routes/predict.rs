//! The native predict, `POST /api/v1/models/{name}/predict`, for every kind of tenant
//! model: texts for trained classifiers (`{"texts": [...]}`), images for image
//! classifiers (`{"images": [base64, ...]}` or a multipart form of files), rows of
//! named features for tabular models (`{"rows": [{...}]}`); images for an OCR model of
//! the library (`ppocr-v4`) when the tenant has no model of that name.

use aiaas_core::TaskInput;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::{wire, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    // Images and rows are bounded like tensors, not like other JSON bodies.
    OpenApiRouter::new().routes(super::kserve::with_tensor_limit(routes!(predict)))
}

/// One of: `texts` (or `text`) for a text classifier; `images` (base64, or data URLs)
/// for an image classifier; `rows` (objects of feature name to number) for a tabular
/// model. `top_k` sets how many classes each answer lists (task models).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PredictBody {
    #[serde(default)]
    texts: Option<Vec<String>>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    images: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    rows: Option<Vec<Map<String, Value>>>,
    #[serde(default)]
    top_k: Option<usize>,
    /// NER models: how tokens become entities (`simple`, `first`, `max`, `average`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    aggregation: Option<aiaas_core::ner::Aggregation>,
    /// NER models: tokens shared by consecutive windows of a long text (0-256).
    #[serde(default)]
    stride: Option<usize>,
    /// Text classifiers: `true`, or `{"method": "auto" | "exact" | "occlusion",
    /// "top_k": n, "target": "label"}`: each prediction gets the tokens of its text with
    /// their character offsets and attributions toward the predicted (or `target`) class.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    explain: Option<Value>,
}

/// `explain` of a request: absent, `false` or `null` is none; `true` the defaults; an
/// object the options.
pub(crate) fn explain_options(
    value: Option<&Value>,
) -> Result<Option<aiaas_core::ExplainOptions>, String> {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(Default::default())),
        Some(v @ Value::Object(_)) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("explain: {e}")),
        Some(other) => Err(format!(
            "explain must be true, false or an object of method, top_k and target; got {other}"
        )),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/models/{name}/predict",
    tag = "inference",
    summary = "Predict with a model (name, name:version or name:alias): texts, images or rows",
    params(("name" = String, Path)),
    request_body = PredictBody,
    responses(
        (status = 200, description = "one prediction per text (wire::Predictions), image or row (wire::TaskPredictions), or page an OCR model read (wire::PageReadings)", body = crate::wire::Predictions),
        crate::wire::Refused
    ),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
async fn predict(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Response> {
    let multipart = crate::bodies::is_multipart(&headers);
    let body = if multipart {
        let form = Multipart::from_request(req, &s).await.map_err(|e| {
            ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
        })?;
        read_form(form).await?
    } else {
        let ApiJson(body) = ApiJson::<PredictBody>::from_request(req, &s).await?;
        Body::Json(body)
    };
    let models = s.platform.models();
    let (input, top_k) = match body {
        Body::Form { images, top_k } => (TaskInput::Images(images), top_k),
        Body::Json(b) => match (b.texts, b.text, b.images, b.rows) {
            (Some(t), None, None, None) => {
                let explain = explain_options(b.explain.as_ref()).map_err(ApiError::bad_request)?;
                return texts(&s, &p, &name, t, entity_options(&b.aggregation, b.stride), explain).await;
            }
            (None, Some(t), None, None) => {
                let explain = explain_options(b.explain.as_ref()).map_err(ApiError::bad_request)?;
                return texts(&s, &p, &name, vec![t], entity_options(&b.aggregation, b.stride), explain).await;
            }
            (None, None, Some(images), None) => {
                let decoded = images
                    .iter()
                    .enumerate()
                    .map(|(i, b)| base64_image(b).map_err(|e| ApiError::bad_request(format!("images[{i}]: {e}"))))
                    .collect::<ApiResult<Vec<_>>>()?;
                (TaskInput::Images(decoded), b.top_k)
            }
            (None, None, None, Some(rows)) => (TaskInput::Rows(rows), b.top_k),
            _ => {
                return Err(ApiError::bad_request(
                    "give one of \"texts\": [...] (or \"text\"), \"images\": [base64, ...] or \"rows\": [{...}]",
                ))
            }
        },
    };
    // Images for a name the tenant has no model of: an OCR model of the library.
    let input = match input {
        TaskInput::Images(images) if !models.tenant_has(&p, &name).await? => {
            return read_pages(&s, &p, &name, images, top_k).await
        }
        other => other,
    };
    let answer = models.predict_task(&p, &name, input, top_k).await?;
    let version = answer.version.to_string();
    Ok((
        [("x-aiaas-model-version", version)],
        Json(wire::TaskPredictions::from(answer)),
    )
        .into_response())
}

fn entity_options(
    aggregation: &Option<aiaas_core::ner::Aggregation>,
    stride: Option<usize>,
) -> Option<aiaas_core::EntityOptions> {
    (aggregation.is_some() || stride.is_some()).then_some(aiaas_core::EntityOptions {
        aggregation: *aggregation,
        stride,
    })
}

/// Texts: the tenant's classifier of that name, else a token classifier (NER) of the
/// library.
async fn texts(
    s: &AppState,
    p: &aiaas_types::Principal,
    name: &str,
    texts: Vec<String>,
    entity_options: Option<aiaas_core::EntityOptions>,
    explain: Option<aiaas_core::ExplainOptions>,
) -> ApiResult<Response> {
    if !s.platform.models().tenant_has(p, name).await? {
        match s.platform.library().find(p, name).await {
            Ok(record) if record.task == aiaas_types::Task::TokenClassification => {
                if explain.is_some() {
                    return Err(ApiError::bad_request(
                        "explain applies to text classifiers, not token-classification (NER) models",
                    ));
                }
                let options = entity_options.unwrap_or_default();
                let found = s
                    .platform
                    .library()
                    .recognise(p, name, texts, options)
                    .await?;
                return Ok(Json(wire::EntityPredictions::from(found)).into_response());
            }
            Err(e @ aiaas_core::CoreError::Forbidden(_)) => return Err(e.into()),
            _ => {}
        }
    }
    if entity_options.is_some() {
        return Err(ApiError::bad_request(
            "aggregation and stride apply to token-classification (NER) models",
        ));
    }
    let answer = s
        .platform
        .models()
        .predict_explained(p, name, texts, explain)
        .await?;
    // The answering version (a canary answers a share of the requests).
    let version = answer.version.to_string();
    Ok((
        [("x-aiaas-model-version", version)],
        Json(wire::Predictions::from(answer)),
    )
        .into_response())
}

async fn read_pages(
    s: &AppState,
    p: &aiaas_types::Principal,
    name: &str,
    images: Vec<Vec<u8>>,
    top_k: Option<usize>,
) -> ApiResult<Response> {
    if top_k.is_some() {
        return Err(ApiError::bad_request(
            "top_k ranks a classifier's classes; an OCR model answers every line it reads",
        ));
    }
    let output = s.platform.privacy().library_output_masking(p, name).await?;
    let read = s
        .platform
        .library()
        .read_pages(p, name, images, output)
        .await?;
    Ok(Json(wire::PageReadings::from(read)).into_response())
}

enum Body {
    Json(PredictBody),
    Form {
        images: Vec<Vec<u8>>,
        top_k: Option<usize>,
    },
}

/// A multipart form: image files (any field name but `top_k`), and `top_k`.
async fn read_form(mut form: Multipart) -> ApiResult<Body> {
    let mut images = Vec::new();
    let mut top_k = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {}", e.body_text())))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(|e| {
            ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
        })?;
        if name == "top_k" {
            let text = String::from_utf8_lossy(&bytes);
            top_k = Some(text.trim().parse().map_err(|_| {
                ApiError::bad_request(format!("top_k must be a number, got {text:?}"))
            })?);
        } else {
            images.push(bytes.to_vec());
        }
    }
    if images.is_empty() {
        return Err(ApiError::bad_request("the form has no image file"));
    }
    Ok(Body::Form { images, top_k })
}

/// Base64 (standard, padded or not), or a `data:` URL holding it.
fn base64_image(text: &str) -> Result<Vec<u8>, String> {
    let payload = match text.strip_prefix("data:") {
        Some(rest) => rest
            .split_once(";base64,")
            .map(|(_, b)| b)
            .ok_or("a data URL must be base64 (data:image/png;base64,...)")?,
        None => text,
    };
    let cleaned: String = payload
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(cleaned.trim_end_matches('='))
        .map_err(|e| format!("not base64: {e}"))
}
