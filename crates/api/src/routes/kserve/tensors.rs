//! Tensors on the wire: the JSON form, and the binary tensor extension used by Triton
//! and KServe clients (a JSON header of `Inference-Header-Content-Length` bytes followed
//! by the raw tensor data; BYTES elements are each a 4-byte little-endian length and
//! the bytes).

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{OUTPUT_LABEL, OUTPUT_PROBS};

const HEADER_LENGTH: &str = "inference-header-content-length";

/// A classification request with its texts decoded.
#[derive(Debug)]
pub(super) struct DecodedRequest {
    pub id: Option<String>,
    pub texts: Vec<String>,
    pub outputs: Vec<WantedOutput>,
}

#[derive(Debug)]
pub(super) struct WantedOutput {
    pub name: String,
    /// Return this output in the binary section.
    pub binary: bool,
}

/// A KServe v2 inference request (the JSON part; binary tensor data follows it when
/// `Inference-Header-Content-Length` says where the JSON ends).
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    /// Exactly one: the texts, datatype `BYTES`.
    inputs: Vec<InferInput>,
    /// `label` and/or `probabilities` (default: both).
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
    /// `binary_data_output`: every output in the binary section.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    /// The elements, nested by shape or flat (absent when sent as binary data).
    #[serde(default)]
    data: Option<Value>,
    /// `binary_data_size`: the input's bytes in the binary section.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct RequestedOutput {
    name: String,
    /// `binary_data`: this output in the binary section.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
}

fn flag(params: &Option<Map<String, Value>>, key: &str) -> Option<bool> {
    params
        .as_ref()
        .and_then(|p| p.get(key))
        .and_then(Value::as_bool)
}

/// Parse an infer request body (JSON, or JSON header + binary data).
pub(super) fn decode_request(headers: &HeaderMap, body: &[u8]) -> Result<DecodedRequest, String> {
    let (head, binary) = split_body(headers, body)?;
    let req: InferRequest =
        serde_json::from_slice(head).map_err(|e| format!("invalid JSON body: {e}"))?;
    let [input] = req.inputs.as_slice() else {
        return Err(format!(
            "expected exactly one input tensor, got {}",
            req.inputs.len()
        ));
    };
    if input.datatype != "BYTES" {
        return Err(format!(
            "input {:?} has datatype {}; text classifiers take BYTES",
            input.name, input.datatype
        ));
    }
    let texts = input_texts(input, binary)?;
    let binary_default = flag(&req.parameters, "binary_data_output").unwrap_or(false);
    let outputs = wanted_outputs(&req, binary_default)?;
    Ok(DecodedRequest {
        id: req.id,
        texts,
        outputs,
    })
}

/// The JSON header and the binary tail of a request (the tail is empty without
/// `Inference-Header-Content-Length`).
fn split_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), String> {
    Ok(match headers.get(HEADER_LENGTH) {
        Some(v) => {
            let len: usize = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or("Inference-Header-Content-Length must be a number")?;
            if len > body.len() {
                return Err(format!(
                    "Inference-Header-Content-Length is {len} but the body has {} bytes",
                    body.len()
                ));
            }
            body.split_at(len)
        }
        None => (body, &[][..]),
    })
}

/// The texts of the input tensor, from its binary tail or its JSON data, checked against
/// its shape.
fn input_texts(input: &InferInput, binary: &[u8]) -> Result<Vec<String>, String> {
    let binary_size = input
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_size"))
        .and_then(Value::as_u64);
    let texts = match (binary_size, &input.data) {
        (Some(size), _) => {
            let size = size as usize;
            if size > binary.len() {
                return Err(format!(
                    "input {:?} declares {size} binary bytes but {} follow the header",
                    input.name,
                    binary.len()
                ));
            }
            decode_bytes_elements(&binary[..size])?
        }
        (None, Some(data)) => {
            let mut texts = Vec::new();
            flatten(data, &mut texts)?;
            texts
        }
        (None, None) => return Err(format!("input {:?} has no data", input.name)),
    };
    if input.shape.iter().any(|d| *d < 0) {
        return Err("shape dimensions must be non-negative".into());
    }
    let declared = input
        .shape
        .iter()
        .try_fold(1i64, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| format!("input {:?} has a shape too large to hold", input.name))?;
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

/// The outputs asked for (both by default), each binary or JSON.
fn wanted_outputs(req: &InferRequest, binary_default: bool) -> Result<Vec<WantedOutput>, String> {
    Ok(match &req.outputs {
        None => [OUTPUT_LABEL, OUTPUT_PROBS]
            .iter()
            .map(|n| WantedOutput {
                name: n.to_string(),
                binary: binary_default,
            })
            .collect(),
        Some(list) => list
            .iter()
            .map(|o| {
                if o.name != OUTPUT_LABEL && o.name != OUTPUT_PROBS {
                    return Err(format!(
                        "unknown output {:?}; this model has {OUTPUT_LABEL:?} and {OUTPUT_PROBS:?}",
                        o.name
                    ));
                }
                Ok(WantedOutput {
                    name: o.name.clone(),
                    binary: flag(&o.parameters, "binary_data").unwrap_or(binary_default),
                })
            })
            .collect::<Result<_, String>>()?,
    })
}

fn decode_bytes_elements(mut raw: &[u8]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        if raw.len() < 4 {
            return Err("truncated BYTES element length in the binary data".into());
        }
        let len = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
        raw = &raw[4..];
        if len > raw.len() {
            return Err("a BYTES element runs past the end of the binary data".into());
        }
        let text = std::str::from_utf8(&raw[..len])
            .map_err(|_| format!("BYTES element {} is not valid UTF-8", out.len()))?;
        out.push(text.to_string());
        raw = &raw[len..];
    }
    Ok(out)
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

/// An output tensor.
pub(super) struct Tensor {
    name: &'static str,
    shape: Vec<usize>,
    data: TensorData,
}

enum TensorData {
    Bytes(Vec<String>),
    Fp32(Vec<f32>),
}

impl Tensor {
    pub fn bytes(name: &'static str, shape: Vec<usize>, data: Vec<String>) -> Tensor {
        Tensor {
            name,
            shape,
            data: TensorData::Bytes(data),
        }
    }

    pub fn fp32(name: &'static str, shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor {
            name,
            shape,
            data: TensorData::Fp32(data),
        }
    }

    fn datatype(&self) -> &'static str {
        match self.data {
            TensorData::Bytes(_) => "BYTES",
            TensorData::Fp32(_) => "FP32",
        }
    }

    fn raw(&self) -> Vec<u8> {
        match &self.data {
            TensorData::Bytes(items) => {
                let mut out = Vec::new();
                for s in items {
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                out
            }
            TensorData::Fp32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    fn json_data(&self) -> Value {
        match &self.data {
            TensorData::Bytes(items) => json!(items),
            TensorData::Fp32(v) => json!(v),
        }
    }
}

/// The infer response: plain JSON, or JSON header + binary data when any output asks.
pub(super) fn encode_response(
    model: &str,
    version: &str,
    id: Option<&str>,
    outputs: Vec<(Tensor, bool)>,
) -> Response {
    let mut binary = Vec::new();
    let mut tensors = Vec::new();
    for (t, as_binary) in &outputs {
        let mut out = super::replies::OutputTensor {
            name: t.name,
            datatype: t.datatype(),
            shape: t.shape.clone(),
            data: None,
            parameters: None,
        };
        if *as_binary {
            let raw = t.raw();
            out.parameters = Some(json!({"binary_data_size": raw.len()}));
            binary.extend_from_slice(&raw);
        } else {
            out.data = Some(t.json_data());
        }
        tensors.push(out);
    }
    let body = super::replies::InferResponse {
        model_name: model.to_string(),
        model_version: version.to_string(),
        id: id.map(str::to_string),
        outputs: tensors,
    };
    if !outputs.iter().any(|(_, b)| *b) {
        return Json(body).into_response();
    }
    let head = serde_json::to_vec(&body).unwrap_or_default();
    let head_len = head.len();
    let mut all = head;
    all.extend_from_slice(&binary);
    let mut response = all.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&head_len.to_string()) {
        headers.insert(HEADER_LENGTH, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary_body(texts: &[&str], shape: &str) -> (HeaderMap, Vec<u8>) {
        let mut raw = Vec::new();
        for t in texts {
            raw.extend_from_slice(&(t.len() as u32).to_le_bytes());
            raw.extend_from_slice(t.as_bytes());
        }
        let head = format!(
            r#"{{"inputs":[{{"name":"text","shape":{shape},"datatype":"BYTES","parameters":{{"binary_data_size":{}}}}}],"outputs":[{{"name":"label","parameters":{{"binary_data":true}}}}]}}"#,
            raw.len()
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            HEADER_LENGTH,
            HeaderValue::from_str(&head.len().to_string()).unwrap(),
        );
        let mut body = head.into_bytes();
        body.extend_from_slice(&raw);
        (headers, body)
    }

    #[test]
    fn binary_bytes_inputs_decode() {
        let (headers, body) = binary_body(&["héllo", "world"], "[2]");
        let r = decode_request(&headers, &body).unwrap();
        assert_eq!(r.texts, vec!["héllo", "world"]);
        assert_eq!(r.outputs.len(), 1);
        assert!(r.outputs[0].binary);
        let (headers, body) = binary_body(&["a"], "[2]");
        assert!(decode_request(&headers, &body)
            .unwrap_err()
            .contains("shape"));
        let (headers, mut body) = binary_body(&["abc"], "[1]");
        body.truncate(body.len() - 1);
        assert!(decode_request(&headers, &body).is_err());
    }

    #[test]
    fn json_inputs_follow_the_declared_shape() {
        let h = HeaderMap::new();
        let ok = decode_request(
            &h,
            br#"{"inputs":[{"name":"t","shape":[2,1],"datatype":"BYTES","data":[["a"],["b"]]}]}"#,
        )
        .unwrap();
        assert_eq!(ok.texts, vec!["a", "b"]);
        assert_eq!(ok.outputs.len(), 2);
        assert!(decode_request(
            &h,
            br#"{"inputs":[{"name":"t","shape":[3],"datatype":"BYTES","data":["a"]}]}"#
        )
        .unwrap_err()
        .contains("shape"));
        assert!(decode_request(
            &h,
            br#"{"inputs":[{"name":"t","shape":[1],"datatype":"FP32","data":[1.0]}]}"#
        )
        .unwrap_err()
        .contains("BYTES"));
        assert!(decode_request(&h, br#"{"inputs":[]}"#).is_err());
        assert!(decode_request(&h, br#"{"inputs":[{"name":"t","shape":[4294967296,4294967296,4294967296],"datatype":"BYTES","data":["a"]}]}"#)
            .unwrap_err()
            .contains("too large"));
        assert!(decode_request(&h, br#"{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"]}],"outputs":[{"name":"x"}]}"#)
            .unwrap_err()
            .contains("unknown output"));
    }

    #[tokio::test]
    async fn binary_outputs_encode_after_the_json_header() {
        let r = encode_response(
            "m",
            "1",
            Some("r"),
            vec![
                (
                    Tensor::bytes(OUTPUT_LABEL, vec![1], vec!["ab".into()]),
                    true,
                ),
                (
                    Tensor::fp32(OUTPUT_PROBS, vec![1, 2], vec![0.25, 0.75]),
                    false,
                ),
            ],
        );
        let len: usize = r.headers()[HEADER_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/octet-stream"
        );
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let head: Value = serde_json::from_slice(&body[..len]).unwrap();
        assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 6);
        assert_eq!(head["outputs"][1]["data"], json!([0.25, 0.75]));
        assert_eq!(&body[len..], &[2, 0, 0, 0, b'a', b'b']);
    }
}
