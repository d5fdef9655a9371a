//! KServe v2 / Open Inference Protocol (REST, JSON tensors) for the classifiers:
//! health, server and model metadata, model readiness and `infer`.
//!
//! A classifier takes one BYTES input tensor of texts (any shape; flattened row-major)
//! and returns `label` (BYTES, one per text) and `probabilities` (FP32, texts x classes).

use aiaas_core::CoreError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::AppState;

const INPUT: &str = "text";
const OUTPUT_LABEL: &str = "label";
const OUTPUT_PROBS: &str = "probabilities";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(version_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(version_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(version_infer))
}

async fn server_metadata() -> impl IntoResponse {
    Json(json!({"name": "aiaas", "version": env!("CARGO_PKG_VERSION"), "extensions": []}))
}

async fn live() -> impl IntoResponse {
    Json(json!({"live": true}))
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    match s.platform.ready().await {
        Ok(()) => (StatusCode::OK, Json(json!({"ready": true}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false}))),
    }
}

async fn model_metadata(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    metadata(&s, &p, &name, None).await
}

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
) -> ApiResult<Json<Value>> {
    let details = s.platform.get_model(p, name).await.map_err(ApiError::kserve)?;
    let chosen = s
        .platform
        .get_version(p, name, version)
        .await
        .map_err(ApiError::kserve)?;
    let versions: Vec<String> = details.versions.iter().map(|v| v.version.to_string()).collect();
    Ok(Json(json!({
        "name": details.model.name,
        "versions": versions,
        "platform": "aiaas_text_classifier",
        "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": OUTPUT_LABEL, "datatype": "BYTES", "shape": [-1]},
            {"name": OUTPUT_PROBS, "datatype": "FP32", "shape": [-1, chosen.labels.len()]}
        ],
        "parameters": {"version": chosen.version, "labels": chosen.labels, "architecture": chosen.architecture}
    })))
}

async fn model_ready(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    readiness(&s, &p, &name, None).await
}

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
) -> ApiResult<(StatusCode, Json<Value>)> {
    let ready = s
        .platform
        .model_ready(p, name, version)
        .await
        .map_err(ApiError::kserve)?;
    let status = if ready { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Ok((status, Json(json!({"name": name, "ready": ready}))))
}

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<InferInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<Value>,
}

#[derive(Deserialize)]
struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
}

async fn infer(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<InferRequest>,
) -> ApiResult<impl IntoResponse> {
    run_infer(&s, &p, &name, None, body).await
}

async fn version_infer(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((name, version)): Path<(String, String)>,
    ApiJson(body): ApiJson<InferRequest>,
) -> ApiResult<impl IntoResponse> {
    run_infer(&s, &p, &name, Some(&version), body).await
}

async fn run_infer(
    s: &AppState,
    p: &aiaas_types::Principal,
    name: &str,
    version: Option<&str>,
    body: InferRequest,
) -> ApiResult<Json<Value>> {
    let texts = texts_of(&body.inputs).map_err(|m| ApiError::kserve(CoreError::InvalidInput(m)))?;
    let wanted: Vec<String> = match &body.outputs {
        None => vec![OUTPUT_LABEL.into(), OUTPUT_PROBS.into()],
        Some(list) => list.iter().map(|o| o.name.clone()).collect(),
    };
    if let Some(bad) = wanted.iter().find(|o| *o != OUTPUT_LABEL && *o != OUTPUT_PROBS) {
        return Err(ApiError::kserve(CoreError::InvalidInput(format!(
            "unknown output {bad:?}; this model has {OUTPUT_LABEL:?} and {OUTPUT_PROBS:?}"
        ))));
    }
    let reference = match version {
        Some(v) => format!("{name}:{v}"),
        None => name.to_string(),
    };
    let n = texts.len();
    let result = s
        .platform
        .predict(p, &reference, texts)
        .await
        .map_err(ApiError::kserve)?;
    let classes = result.labels.len();
    let mut outputs = Vec::new();
    for o in &wanted {
        if o == OUTPUT_LABEL {
            let labels: Vec<&str> = result.predictions.iter().map(|p| p.label.as_str()).collect();
            outputs.push(json!({"name": OUTPUT_LABEL, "datatype": "BYTES", "shape": [n], "data": labels}));
        } else {
            let probs: Vec<f32> = result
                .predictions
                .iter()
                .flat_map(|p| result.labels.iter().map(|l| p.probabilities.get(l).copied().unwrap_or(0.0)))
                .collect();
            outputs.push(json!({"name": OUTPUT_PROBS, "datatype": "FP32", "shape": [n, classes], "data": probs}));
        }
    }
    let mut response = json!({
        "model_name": result.model,
        "model_version": result.version.to_string(),
        "outputs": outputs,
    });
    if let Some(id) = body.id {
        response["id"] = json!(id);
    }
    Ok(Json(response))
}

/// The texts of the single BYTES input, checked against its declared shape.
fn texts_of(inputs: &[InferInput]) -> Result<Vec<String>, String> {
    let [input] = inputs else {
        return Err(format!("expected exactly one input tensor, got {}", inputs.len()));
    };
    if input.datatype != "BYTES" {
        return Err(format!(
            "input {:?} has datatype {}; text classifiers take BYTES",
            input.name, input.datatype
        ));
    }
    let mut texts = Vec::new();
    flatten(&input.data, &mut texts)?;
    if input.shape.iter().any(|d| *d < 0) {
        return Err("shape dimensions must be non-negative".into());
    }
    let declared: i64 = input.shape.iter().product();
    if declared != texts.len() as i64 {
        return Err(format!(
            "input {:?} has shape {:?} ({declared} elements) but {} data elements",
            input.name,
            input.shape,
            texts.len()
        ));
    }
    Ok(texts)
}

fn flatten(v: &Value, out: &mut Vec<String>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            out.push(s.clone());
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|i| flatten(i, out)),
        other => Err(format!("BYTES data must be strings, got {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(shape: Vec<i64>, datatype: &str, data: Value) -> InferInput {
        InferInput {
            name: "text".into(),
            shape,
            datatype: datatype.into(),
            data,
        }
    }

    #[test]
    fn texts_follow_the_declared_shape() {
        let ok = texts_of(&[input(vec![2, 1], "BYTES", json!([["a"], ["b"]]))]).unwrap();
        assert_eq!(ok, vec!["a", "b"]);
        assert!(texts_of(&[input(vec![3], "BYTES", json!(["a", "b"]))]).unwrap_err().contains("shape"));
        assert!(texts_of(&[input(vec![1], "FP32", json!([1.0]))]).unwrap_err().contains("BYTES"));
        assert!(texts_of(&[input(vec![1], "BYTES", json!([1]))]).is_err());
        assert!(texts_of(&[]).is_err());
    }
}
