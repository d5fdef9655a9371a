//! The KServe v2 response bodies as the API's own types: what the handlers send and
//! what the OpenAPI document describes are the same structs.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `GET /v2`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ServerMetadata {
    pub name: &'static str,
    pub version: &'static str,
    pub extensions: Vec<String>,
}

/// `GET /v2/health/live`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Live {
    pub live: bool,
}

/// `GET /v2/health/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Ready {
    pub ready: bool,
}

/// `GET /v2/models/{name}[/versions/{version}]/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ModelReady {
    pub name: String,
    pub ready: bool,
}

/// A tensor's name, type and shape (-1: any size).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TensorMetadata {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{name}[/versions/{version}]`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
    /// `version`, `labels`, `architecture` of the version described (and an ONNX
    /// model's `max_batch_size`).
    #[schema(value_type = Object)]
    pub parameters: Value,
}

/// One output tensor: its elements as JSON, or (`parameters.binary_data_size`) in the
/// binary section after the JSON.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OutputTensor {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
}

/// `POST /v2/models/{name}[/versions/{version}]/infer`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<OutputTensor>,
}
