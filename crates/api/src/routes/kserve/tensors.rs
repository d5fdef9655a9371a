//! Tensors on the wire, in every KServe v2 datatype: the JSON form, and the binary tensor
//! extension used by Triton and KServe clients (a JSON header of
//! `Inference-Header-Content-Length` bytes followed by the raw tensor data, each tensor's
//! elements little-endian, BOOL one byte, BYTES each a 4-byte little-endian length and
//! the bytes); and the classification extension on outputs.

use aiaas_core::onnx::{DataType, Tensor, TensorData};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use half::f16;
use serde::Deserialize;
use serde_json::{json, Map, Value};

const HEADER_LENGTH: &str = "inference-header-content-length";

/// An inference request with its tensors decoded.
#[derive(Debug)]
pub(super) struct DecodedRequest {
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// The outputs asked for (`None`: every output the model serves).
    pub outputs: Option<Vec<WantedOutput>>,
    /// `binary_data_output`: outputs not asked for by name go in the binary section.
    pub binary_default: bool,
    /// `parameters.explain` (text classifiers): `true` or the options object.
    pub explain: Option<Value>,
}

#[derive(Debug, Clone)]
pub(super) struct WantedOutput {
    pub name: String,
    /// Return this output in the binary section.
    pub binary: bool,
    /// The classification extension: the top `k` classes as `value:index[:label]`.
    pub classification: Option<usize>,
}

/// A KServe v2 inference request (the JSON part; binary tensor data follows it when
/// `Inference-Header-Content-Length` says where the JSON ends).
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    /// The model's inputs (a text classifier: one BYTES tensor of texts).
    inputs: Vec<InferInput>,
    /// The outputs wanted (default: all).
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
    /// BOOL, UINT8-64, INT8-64, FP16, FP32, FP64 or BYTES.
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
    /// `binary_data`: this output in the binary section; `classification`: the top k
    /// classes instead of the tensor.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
}

fn param<'a>(params: &'a Option<Map<String, Value>>, key: &str) -> Option<&'a Value> {
    params.as_ref().and_then(|p| p.get(key))
}

/// Parse an infer request body (JSON, or JSON header + binary data).
pub(super) fn decode_request(headers: &HeaderMap, body: &[u8]) -> Result<DecodedRequest, String> {
    let (head, binary) = split_body(headers, body)?;
    let req: InferRequest =
        serde_json::from_slice(head).map_err(|e| format!("invalid JSON body: {e}"))?;
    if req.inputs.is_empty() {
        return Err("the request has no inputs".into());
    }
    let mut rest = binary;
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for input in &req.inputs {
        inputs.push(decode_input(input, &mut rest)?);
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes of binary data follow the inputs' declared binary_data_size",
            rest.len()
        ));
    }
    let binary_default = param(&req.parameters, "binary_data_output")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let outputs = match &req.outputs {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|o| wanted_output(o, binary_default))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(DecodedRequest {
        id: req.id,
        explain: param(&req.parameters, "explain").cloned(),
        inputs,
        outputs,
        binary_default,
    })
}

fn wanted_output(o: &RequestedOutput, binary_default: bool) -> Result<WantedOutput, String> {
    let classification = match param(&o.parameters, "classification") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(k) if k >= 1 => Some(k as usize),
            _ => {
                return Err(format!(
                    "output {:?}: classification must be a count of classes, at least 1",
                    o.name
                ))
            }
        },
    };
    Ok(WantedOutput {
        name: o.name.clone(),
        binary: param(&o.parameters, "binary_data")
            .and_then(Value::as_bool)
            .unwrap_or(binary_default),
        classification,
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

/// One input tensor, from the binary tail (taking its bytes off `rest`) or its JSON data,
/// checked against its declared shape.
fn decode_input(input: &InferInput, rest: &mut &[u8]) -> Result<Tensor, String> {
    let name = &input.name;
    let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
        format!(
            "input {name:?} has datatype {:?}; KServe's are {}",
            input.datatype,
            DataType::ALL.map(DataType::name).join(", ")
        )
    })?;
    if input.shape.iter().any(|d| *d < 0) {
        return Err(format!(
            "input {name:?}: shape dimensions must be non-negative, got {:?}",
            input.shape
        ));
    }
    let elements = input
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .filter(|&n| n <= 1 << 31)
        .ok_or_else(|| format!("input {name:?} has a shape too large to hold"))?;
    let binary_size = param(&input.parameters, "binary_data_size").and_then(Value::as_u64);
    let data = match (binary_size, &input.data) {
        (Some(size), _) => {
            let size = size as usize;
            if size > rest.len() {
                return Err(format!(
                    "input {name:?} declares {size} binary bytes but {} follow",
                    rest.len()
                ));
            }
            let (mine, others) = rest.split_at(size);
            *rest = others;
            from_binary(datatype, mine).map_err(|e| format!("input {name:?}: {e}"))?
        }
        (None, Some(data)) => {
            let mut leaves = Vec::with_capacity(elements);
            flatten(data, &mut leaves);
            from_json(datatype, &leaves).map_err(|e| format!("input {name:?}: {e}"))?
        }
        (None, None) => return Err(format!("input {name:?} has no data")),
    };
    if data.len() != elements {
        return Err(format!(
            "input {name:?} has shape {:?} ({elements} elements) but {} data elements",
            input.shape,
            data.len()
        ));
    }
    let shape = input.shape.iter().map(|&d| d as usize).collect();
    Ok(Tensor::new(name.clone(), shape, data))
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        leaf => out.push(leaf),
    }
}

/// JSON elements as a tensor of `datatype`; a value of another kind, or out of the
/// type's range, is an error naming its position.
fn from_json(datatype: DataType, leaves: &[&Value]) -> Result<TensorData, String> {
    fn each<T>(
        leaves: &[&Value],
        what: &str,
        read: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        leaves
            .iter()
            .enumerate()
            .map(|(i, v)| read(v).ok_or_else(|| format!("element {i} ({v}) is not {what}")))
            .collect()
    }
    fn int<T: TryFrom<i64> + TryFrom<u64>>(v: &Value) -> Option<T> {
        match v.as_i64() {
            Some(i) => T::try_from(i).ok(),
            None => v.as_u64().and_then(|u| T::try_from(u).ok()),
        }
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(each(leaves, "true or false", Value::as_bool)?),
        DataType::Uint8 => TensorData::Uint8(each(leaves, "a UINT8", int)?),
        DataType::Uint16 => TensorData::Uint16(each(leaves, "a UINT16", int)?),
        DataType::Uint32 => TensorData::Uint32(each(leaves, "a UINT32", int)?),
        DataType::Uint64 => TensorData::Uint64(each(leaves, "a UINT64", int)?),
        DataType::Int8 => TensorData::Int8(each(leaves, "an INT8", int)?),
        DataType::Int16 => TensorData::Int16(each(leaves, "an INT16", int)?),
        DataType::Int32 => TensorData::Int32(each(leaves, "an INT32", int)?),
        DataType::Int64 => TensorData::Int64(each(leaves, "an INT64", int)?),
        DataType::Fp16 => {
            TensorData::Fp16(each(leaves, "a number", |v| v.as_f64().map(f16::from_f64))?)
        }
        DataType::Fp32 => {
            TensorData::Fp32(each(leaves, "a number", |v| v.as_f64().map(|x| x as f32))?)
        }
        DataType::Fp64 => TensorData::Fp64(each(leaves, "a number", Value::as_f64)?),
        DataType::Bytes => TensorData::Bytes(each(leaves, "a string", |v| {
            v.as_str().map(|s| s.as_bytes().to_vec())
        })?),
    })
}

/// Raw little-endian elements as a tensor of `datatype`.
fn from_binary(datatype: DataType, raw: &[u8]) -> Result<TensorData, String> {
    fn fixed<const N: usize, T>(raw: &[u8], read: impl Fn([u8; N]) -> T) -> Result<Vec<T>, String> {
        if !raw.len().is_multiple_of(N) {
            return Err(format!(
                "{} binary bytes are not a whole number of {N}-byte elements",
                raw.len()
            ));
        }
        Ok(raw
            .chunks_exact(N)
            .map(|c| read(c.try_into().unwrap_or([0; N])))
            .collect())
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(fixed(raw, |[b]: [u8; 1]| b != 0)?),
        DataType::Uint8 => TensorData::Uint8(raw.to_vec()),
        DataType::Uint16 => TensorData::Uint16(fixed(raw, u16::from_le_bytes)?),
        DataType::Uint32 => TensorData::Uint32(fixed(raw, u32::from_le_bytes)?),
        DataType::Uint64 => TensorData::Uint64(fixed(raw, u64::from_le_bytes)?),
        DataType::Int8 => TensorData::Int8(fixed(raw, i8::from_le_bytes)?),
        DataType::Int16 => TensorData::Int16(fixed(raw, i16::from_le_bytes)?),
        DataType::Int32 => TensorData::Int32(fixed(raw, i32::from_le_bytes)?),
        DataType::Int64 => TensorData::Int64(fixed(raw, i64::from_le_bytes)?),
        DataType::Fp16 => TensorData::Fp16(fixed(raw, f16::from_le_bytes)?),
        DataType::Fp32 => TensorData::Fp32(fixed(raw, f32::from_le_bytes)?),
        DataType::Fp64 => TensorData::Fp64(fixed(raw, f64::from_le_bytes)?),
        DataType::Bytes => TensorData::Bytes(bytes_elements(raw)?),
    })
}

fn bytes_elements(mut raw: &[u8]) -> Result<Vec<Vec<u8>>, String> {
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
        out.push(raw[..len].to_vec());
        raw = &raw[len..];
    }
    Ok(out)
}

/// The elements of a BYTES tensor as text (a classifier's input).
pub(super) fn texts(t: Tensor) -> Result<Vec<String>, String> {
    match t.data {
        TensorData::Bytes(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                String::from_utf8(b)
                    .map_err(|_| format!("input {:?}: element {i} is not valid UTF-8", t.name))
            })
            .collect(),
        other => Err(format!(
            "input {:?} has datatype {}; text classifiers take BYTES",
            t.name,
            other.datatype().name()
        )),
    }
}

/// The classification extension: the top `k` classes of each row of `t` (its last
/// dimension), as BYTES `value:index` or `value:index:label`, best first.
pub(super) fn classify(t: &Tensor, k: usize, labels: Option<&[String]>) -> Result<Tensor, String> {
    let classes = *t.shape.last().unwrap_or(&1);
    // Each score with its text in its own type's shortest form (0.7, not 0.69999...).
    fn scored<T: Copy + std::fmt::Display>(v: &[T], f: impl Fn(T) -> f64) -> Vec<(f64, String)> {
        v.iter().map(|&x| (f(x), x.to_string())).collect()
    }
    let scores: Vec<(f64, String)> = match &t.data {
        TensorData::Fp16(v) => scored(v, f16::to_f64),
        TensorData::Fp32(v) => scored(v, f64::from),
        TensorData::Fp64(v) => scored(v, |x| x),
        TensorData::Int32(v) => scored(v, f64::from),
        TensorData::Int64(v) => scored(v, |x| x as f64),
        other => {
            return Err(format!(
                "output {:?} is {}; classification needs numbers",
                t.name,
                other.datatype().name()
            ))
        }
    };
    let labels = t
        .labels
        .as_deref()
        .or(labels)
        .filter(|l| l.len() == classes);
    let k = k.min(classes);
    let mut out = Vec::new();
    for row in scores.chunks(classes.max(1)) {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].0.total_cmp(&row[a].0));
        for &i in order.iter().take(k) {
            let text = match labels {
                Some(l) => format!("{}:{i}:{}", row[i].1, l[i]),
                None => format!("{}:{i}", row[i].1),
            };
            out.push(text.into_bytes());
        }
    }
    let mut shape = t.shape.clone();
    match shape.last_mut() {
        Some(last) => *last = k,
        None => shape.push(k),
    }
    Ok(Tensor::new(t.name.clone(), shape, TensorData::Bytes(out)))
}

fn raw(t: &Tensor) -> Vec<u8> {
    fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }
    match &t.data {
        TensorData::Bool(v) => v.iter().map(|&b| b as u8).collect(),
        TensorData::Uint8(v) => v.clone(),
        TensorData::Uint16(v) => le(v, u16::to_le_bytes),
        TensorData::Uint32(v) => le(v, u32::to_le_bytes),
        TensorData::Uint64(v) => le(v, u64::to_le_bytes),
        TensorData::Int8(v) => le(v, i8::to_le_bytes),
        TensorData::Int16(v) => le(v, i16::to_le_bytes),
        TensorData::Int32(v) => le(v, i32::to_le_bytes),
        TensorData::Int64(v) => le(v, i64::to_le_bytes),
        TensorData::Fp16(v) => le(v, f16::to_le_bytes),
        TensorData::Fp32(v) => le(v, f32::to_le_bytes),
        TensorData::Fp64(v) => le(v, f64::to_le_bytes),
        TensorData::Bytes(items) => {
            let mut out = Vec::new();
            for s in items {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s);
            }
            out
        }
    }
}

fn json_data(t: &Tensor) -> Value {
    match &t.data {
        TensorData::Bool(v) => json!(v),
        TensorData::Uint8(v) => json!(v),
        TensorData::Uint16(v) => json!(v),
        TensorData::Uint32(v) => json!(v),
        TensorData::Uint64(v) => json!(v),
        TensorData::Int8(v) => json!(v),
        TensorData::Int16(v) => json!(v),
        TensorData::Int32(v) => json!(v),
        TensorData::Int64(v) => json!(v),
        TensorData::Fp16(v) => json!(v.iter().map(|x| x.to_f32()).collect::<Vec<_>>()),
        TensorData::Fp32(v) => json!(v),
        TensorData::Fp64(v) => json!(v),
        TensorData::Bytes(items) => json!(items
            .iter()
            .map(|b| String::from_utf8_lossy(b))
            .collect::<Vec<_>>()),
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
            name: t.name.clone(),
            datatype: t.data.datatype().name(),
            shape: t.shape.clone(),
            data: None,
            parameters: None,
        };
        if *as_binary {
            let raw = raw(t);
            out.parameters = Some(json!({"binary_data_size": raw.len()}));
            binary.extend_from_slice(&raw);
        } else {
            out.data = Some(json_data(t));
        }
        tensors.push(out);
    }
    let body = super::replies::InferResponse {
        model_name: model.to_string(),
        model_version: version.to_string(),
        id: id.map(str::to_string),
        outputs: tensors,
    };
    let mut response = if outputs.iter().any(|(_, b)| *b) {
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
    } else {
        Json(body).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(version) {
        response.headers_mut().insert("x-aiaas-model-version", v);
    }
    response
}

#[cfg(test)]
mod tests;
