//! KServe v2 / Open Inference Protocol (REST; JSON tensors, the binary tensor extension
//! and the classification extension) for the tenants' models: health, server and model
//! metadata, model readiness and `infer`.
//!
//! An uploaded ONNX model takes and gives the tensors of its graph (metadata from the
//! version's configuration). A trained text classifier takes one BYTES input tensor of
//! texts (any shape; flattened row-major) and returns `label` (BYTES, one per text) and
//! `probabilities` (FP32, texts x classes).

mod replies;
mod tensors;

use aiaas_core::onnx::{Tensor, TensorData};
use aiaas_core::CoreError;
use aiaas_types::Format;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::AppState;

const INPUT: &str = "text";
const OUTPUT_LABEL: &str = "label";
const OUTPUT_PROBS: &str = "probabilities";
/// With `parameters.explain`: one JSON explanation per text.
const OUTPUT_EXPLANATION: &str = "explanation";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(server_metadata))
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(model_metadata))
        .routes(routes!(version_metadata))
        .routes(routes!(model_ready))
        .routes(routes!(version_ready))
        .routes(with_tensor_limit(routes!(infer)))
        .routes(with_tensor_limit(routes!(version_infer)))
}

/// Tensors are bigger than other JSON bodies: a batch of 32 images of 224x224 is 19 MB.
pub(crate) const TENSOR_LIMIT: usize = 256 * 1024 * 1024;

/// What `routes!` gives for one route: its schemas, its paths and its handler.
pub(crate) type RouteParts<S> = (
    Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )>,
    utoipa::openapi::path::Paths,
    axum::routing::MethodRouter<S>,
);

/// An inference route, with the tensor body limit instead of the JSON one.
pub(crate) fn with_tensor_limit<S: Clone + Send + Sync + 'static>(
    (schemas, paths, route): RouteParts<S>,
) -> RouteParts<S> {
    (
        schemas,
        paths,
        route.layer(axum::extract::DefaultBodyLimit::max(TENSOR_LIMIT)),
    )
}

#[utoipa::path(
    get,
    path = "/v2",
    tag = "kserve",
    summary = "Server metadata",
    responses((status = 200, description = "server metadata", body = replies::ServerMetadata)),
    security(),
)]
async fn server_metadata() -> impl IntoResponse {
    Json(replies::ServerMetadata {
        name: "aiaas",
        version: env!("CARGO_PKG_VERSION"),
        extensions: Vec::new(),
    })
}

#[utoipa::path(
    get,
    path = "/v2/health/live",
    tag = "kserve",
    summary = "Server live",
    responses((status = 200, description = "live", body = replies::Live)),
    security(),
)]
async fn live() -> impl IntoResponse {
    Json(replies::Live { live: true })
}

#[utoipa::path(
    get,
    path = "/v2/health/ready",
    tag = "kserve",
    summary = "Server ready",
    responses((status = 200, description = "ready", body = replies::Ready), (status = 503, description = "not ready", body = replies::Ready)),
    security(),
)]
async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    match s.platform.ready().await {
        Ok(()) => (StatusCode::OK, Json(replies::Ready { ready: true })),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(replies::Ready { ready: false }),
        ),
    }
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}",
    tag = "kserve",
    summary = "Model metadata",
    params(("name" = String, Path)),
    responses((status = 200, description = "model metadata", body = replies::ModelMetadata), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn model_metadata(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    metadata(&s, &p, &name, None).await
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}/versions/{version}",
    tag = "kserve",
    summary = "Model version metadata",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "model metadata", body = replies::ModelMetadata), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn version_metadata(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    metadata(&s, &p, &name, Some(&version)).await
}

async fn metadata(
    s: &AppState,
    p: &aiaas_types::Principal,
    name: &str,
    version: Option<&str>,
) -> ApiResult<Json<replies::ModelMetadata>> {
    let details = s
        .platform
        .models()
        .get(p, name)
        .await
        .map_err(ApiError::kserve)?;
    let chosen = s
        .platform
        .models()
        .get_version(p, name, version)
        .await
        .map_err(ApiError::kserve)?;
    let versions: Vec<String> = details
        .versions
        .iter()
        .map(|v| v.version.to_string())
        .collect();
    let tensor = |name: &str, datatype: &'static str, shape: Vec<i64>| replies::TensorMetadata {
        name: name.to_string(),
        datatype,
        shape,
    };
    let specs = |list: &[aiaas_core::onnx::TensorSpec]| {
        list.iter()
            .map(|t| tensor(&t.name, t.datatype.name(), t.dims.clone()))
            .collect()
    };
    let (platform, inputs, outputs, parameters) = match chosen.format {
        Format::Onnx => {
            let config: aiaas_core::onnx::ModelConfig =
                serde_json::from_value(chosen.config.clone()).map_err(|e| {
                    ApiError::kserve(CoreError::Internal(format!(
                        "unreadable configuration: {e}"
                    )))
                })?;
            (
                "onnxruntime_onnx",
                specs(&config.inputs),
                specs(&config.outputs),
                json!({"version": chosen.version, "labels": chosen.labels,
                       "architecture": chosen.architecture, "max_batch_size": config.max_batch_size}),
            )
        }
        _ => (
            "aiaas_text_classifier",
            vec![tensor(INPUT, "BYTES", vec![-1])],
            vec![
                tensor(OUTPUT_LABEL, "BYTES", vec![-1]),
                tensor(OUTPUT_PROBS, "FP32", vec![-1, chosen.labels.len() as i64]),
            ],
            json!({"version": chosen.version, "labels": chosen.labels, "architecture": chosen.architecture}),
        ),
    };
    Ok(Json(replies::ModelMetadata {
        name: details.model.name,
        versions,
        platform,
        inputs,
        outputs,
        parameters,
    }))
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}/ready",
    tag = "kserve",
    summary = "Model ready",
    params(("name" = String, Path)),
    responses((status = 200, description = "ready", body = replies::ModelReady), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn model_ready(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    readiness(&s, &p, &name, None).await
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}/versions/{version}/ready",
    tag = "kserve",
    summary = "Model version ready",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "ready", body = replies::ModelReady), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn version_ready(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    readiness(&s, &p, &name, Some(&version)).await
}

async fn readiness(
    s: &AppState,
    p: &aiaas_types::Principal,
    name: &str,
    version: Option<&str>,
) -> ApiResult<(StatusCode, Json<replies::ModelReady>)> {
    let ready = s
        .platform
        .models()
        .model_ready(p, name, version)
        .await
        .map_err(ApiError::kserve)?;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((
        status,
        Json(replies::ModelReady {
            name: name.to_string(),
            ready,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/v2/models/{name}/infer",
    tag = "kserve",
    summary = "Inference (JSON or binary tensors)",
    params(("name" = String, Path)),
    request_body = tensors::InferRequest,
    responses((status = 200, description = "KServe v2 inference response (JSON, or JSON + binary section)", body = replies::InferResponse), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
async fn infer(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    run_infer(&s, &p, &name, None, &headers, &body).await
}

#[utoipa::path(
    post,
    path = "/v2/models/{name}/versions/{version}/infer",
    tag = "kserve",
    summary = "Inference on a version",
    params(("name" = String, Path), ("version" = String, Path)),
    request_body = tensors::InferRequest,
    responses((status = 200, description = "KServe v2 inference response (JSON, or JSON + binary section)", body = replies::InferResponse), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
async fn version_infer(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    run_infer(&s, &p, &name, Some(&version), &headers, &body).await
}

async fn run_infer(
    s: &AppState,
    p: &aiaas_types::Principal,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let bad = |m: String| ApiError::kserve(CoreError::InvalidInput(m));
    let request = tensors::decode_request(headers, body).map_err(bad)?;
    let reference = match version {
        Some(v) => format!("{name}:{v}"),
        None => name.to_string(),
    };
    let chosen = s
        .platform
        .models()
        .get_version(p, name, version)
        .await
        .map_err(ApiError::kserve)?;
    let (model, version, outputs, labels) = match chosen.format {
        Format::Onnx => {
            let wanted = request
                .outputs
                .as_ref()
                .map(|list| list.iter().map(|o| o.name.clone()).collect());
            let answer = s
                .platform
                .models()
                .infer_tensors(p, &reference, request.inputs, wanted)
                .await
                .map_err(ApiError::kserve)?;
            (answer.model, answer.version, answer.outputs, answer.labels)
        }
        _ => {
            let explain = crate::routes::predict::explain_options(request.explain.as_ref())
                .map_err(|e| ApiError::kserve(CoreError::InvalidInput(e)))?;
            classify_texts(s, p, &reference, request.inputs, explain).await?
        }
    };
    let wanted: Vec<tensors::WantedOutput> = match request.outputs {
        Some(list) => list,
        None => outputs
            .iter()
            .map(|t| tensors::WantedOutput {
                name: t.name.clone(),
                binary: request.binary_default,
                classification: None,
            })
            .collect(),
    };
    let mut given = Vec::with_capacity(wanted.len());
    for w in &wanted {
        let t = outputs
            .iter()
            .find(|t| t.name == w.name)
            .ok_or_else(|| bad(format!("model {model:?} has no output {:?}", w.name)))?;
        let t = match w.classification {
            Some(k) => tensors::classify(t, k, labels.as_deref()).map_err(bad)?,
            None => t.clone(),
        };
        given.push((t, w.binary));
    }
    Ok(tensors::encode_response(
        &model,
        &version.to_string(),
        request.id.as_deref(),
        given,
    ))
}

/// A trained text classifier on the one BYTES input: its `label` and `probabilities`, and
/// with `parameters.explain` an `explanation` output (one JSON document per text, as the
/// native API's `explanation`).
async fn classify_texts(
    s: &AppState,
    p: &aiaas_types::Principal,
    reference: &str,
    inputs: Vec<Tensor>,
    explain: Option<aiaas_core::ExplainOptions>,
) -> ApiResult<(String, i64, Vec<Tensor>, Option<Vec<String>>)> {
    let bad = |m: String| ApiError::kserve(CoreError::InvalidInput(m));
    let n_inputs = inputs.len();
    let Some(input) = inputs.into_iter().next().filter(|_| n_inputs == 1) else {
        return Err(bad(format!(
            "expected exactly one input tensor (the texts), got {n_inputs}"
        )));
    };
    let texts = tensors::texts(input).map_err(bad)?;
    let n = texts.len();
    let result = s
        .platform
        .models()
        .predict_explained(p, reference, texts, explain)
        .await
        .map_err(ApiError::kserve)?;
    let labels: Vec<Vec<u8>> = result
        .predictions
        .iter()
        .map(|p| p.label.clone().into_bytes())
        .collect();
    let probabilities: Vec<f32> = result
        .predictions
        .iter()
        .flat_map(|p| {
            result
                .labels
                .iter()
                .map(|l| p.probabilities.get(l).copied().unwrap_or(0.0))
        })
        .collect();
    let explanations: Option<Vec<Vec<u8>>> = result
        .predictions
        .iter()
        .map(|p| {
            p.explanation
                .as_ref()
                .map(|e| serde_json::to_vec(e).unwrap_or_default())
        })
        .collect();
    let mut outputs = vec![
        Tensor::new(OUTPUT_LABEL, vec![n], TensorData::Bytes(labels)),
        Tensor::new(
            OUTPUT_PROBS,
            vec![n, result.labels.len()],
            TensorData::Fp32(probabilities),
        ),
    ];
    if let Some(explanations) = explanations {
        outputs.push(Tensor::new(
            OUTPUT_EXPLANATION,
            vec![n],
            TensorData::Bytes(explanations),
        ));
    }
    Ok((result.model, result.version, outputs, Some(result.labels)))
}
