//! Reading an OpenAI request body: a JSON object whose fields are read one by one, each
//! error naming its field (`param`), as OpenAI does; the generation options chat and
//! completions share.

use std::time::Duration;

use aiaas_core::{CoreError, GenerationOptions, KeepAlive, ResponseFormat, MAX_CHOICES};
use serde_json::{Map, Value};

use crate::error::ApiError;

use super::OResult;

/// A JSON object body whose fields are read one by one, each error naming its field.
pub(super) struct Body(Map<String, Value>);

impl Body {
    pub(super) fn new(v: Value) -> OResult<Body> {
        match v {
            Value::Object(m) => Ok(Body(m)),
            _ => Err(ApiError::openai(CoreError::InvalidInput(
                "the request body must be a JSON object".into(),
            ))),
        }
    }

    /// The body's fields, to build a body from another.
    pub(super) fn clone_fields(&self) -> Map<String, Value> {
        self.0.clone()
    }

    pub(super) fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    pub(super) fn string(&self, k: &str) -> OResult<Option<String>> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::openai_param(k, format!("{k} must be a string"))),
        }
    }

    pub(super) fn required_string(&self, k: &str) -> OResult<String> {
        self.string(k)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::openai_param(k, format!("{k} is required")))
    }

    pub(super) fn number(
        &self,
        k: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> OResult<Option<f64>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if range.contains(&x) => Ok(Some(x)),
                _ => Err(ApiError::openai_param(
                    k,
                    format!(
                        "{k} must be a number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )),
            },
        }
    }

    pub(super) fn integer(
        &self,
        k: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> OResult<Option<i64>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(x) if range.contains(&x) => Ok(Some(x)),
                _ => Err(ApiError::openai_param(
                    k,
                    format!(
                        "{k} must be an integer from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )),
            },
        }
    }

    pub(super) fn boolean(&self, k: &str) -> OResult<Option<bool>> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::openai_param(
                k,
                format!("{k} must be true or false"),
            )),
        }
    }

    /// A string or a non-empty list of strings (`prompt`, `input`); token-id lists are
    /// refused with a message saying so.
    pub(super) fn texts(&self, k: &str) -> OResult<Vec<String>> {
        match self.get(k) {
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items))
                if !items.is_empty() && items.iter().all(Value::is_string) =>
            {
                Ok(items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect())
            }
            Some(Value::Array(items)) if !items.is_empty() => Err(ApiError::openai_param(
                k,
                format!("token-id {k}s are not supported: send the {k} as text"),
            )),
            _ => Err(ApiError::openai_param(
                k,
                format!("{k} must be a non-empty string or list of strings"),
            )),
        }
    }

    pub(super) fn refuse(&self, k: &str, why: &str) -> OResult<()> {
        match self.get(k) {
            None => Ok(()),
            Some(_) => Err(ApiError::openai_param(
                k,
                format!("{k} is not supported: {why}"),
            )),
        }
    }
}

/// The parameters chat and completions share.
pub(super) fn options(b: &Body, logprobs: Option<usize>) -> OResult<GenerationOptions> {
    let max_tokens = match b.integer("max_completion_tokens", 1..=1_000_000)? {
        Some(v) => Some(v),
        None => b.integer("max_tokens", 1..=1_000_000)?,
    };
    let stop = stop_strings(b)?;
    let n = b.integer("n", 1..=MAX_CHOICES as i64)?.unwrap_or(1) as usize;
    let keep_alive = keep_alive(b)?;
    let response_format = response_format(b)?;
    let timeout = b
        .number("timeout", 0.001..=86_400.0)?
        .map(Duration::from_secs_f64);
    Ok(GenerationOptions {
        max_tokens: max_tokens.map(|v| v as usize),
        temperature: b.number("temperature", 0.0..=2.0)?.map(|v| v as f32),
        top_p: b
            .number("top_p", 0.0..=1.0)?
            .map(|v| v as f32)
            .map(|v| v.max(f32::MIN_POSITIVE)),
        seed: b
            .get("seed")
            .map(|v| {
                v.as_i64()
                    .map(|s| s as u64)
                    .or_else(|| v.as_u64())
                    .ok_or_else(|| ApiError::openai_param("seed", "seed must be an integer"))
            })
            .transpose()?,
        presence_penalty: b.number("presence_penalty", -2.0..=2.0)?.unwrap_or(0.0) as f32,
        frequency_penalty: b.number("frequency_penalty", -2.0..=2.0)?.unwrap_or(0.0) as f32,
        stop,
        n,
        logprobs,
        response_format,
        keep_alive,
        timeout,
    })
}

fn stop_strings(b: &Body) -> OResult<Vec<String>> {
    let value = match b.get("stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            if items.len() > 4 {
                return Err(ApiError::openai_param(
                    "stop",
                    "stop takes at most 4 strings",
                ));
            }
            items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError::openai_param("stop", "stop must be strings"))
                })
                .collect::<OResult<Vec<_>>>()?
        }
        Some(_) => {
            return Err(ApiError::openai_param(
                "stop",
                "stop must be a string or a list of strings",
            ))
        }
    };
    if value.iter().any(String::is_empty) {
        return Err(ApiError::openai_param(
            "stop",
            "stop strings must not be empty",
        ));
    }
    Ok(value)
}

fn keep_alive(b: &Body) -> OResult<Option<KeepAlive>> {
    let value = match b.get("keep_alive") {
        None => None,
        Some(Value::String(s)) => Some(KeepAlive::parse(s).ok_or_else(|| {
            ApiError::openai_param(
                "keep_alive",
                "keep_alive must be a duration of at most 366 days such as \"5m\", \"0\" or \"-1\" (forever)",
            )
        })?),
        Some(v) => Some(v.as_f64().and_then(KeepAlive::from_secs_f64).ok_or_else(|| {
            ApiError::openai_param(
                "keep_alive",
                "keep_alive must be a duration or a number of seconds, at most 366 days (-1: forever)",
            )
        })?),
    };
    Ok(value)
}

fn response_format(b: &Body) -> OResult<ResponseFormat> {
    let value = match b.get("response_format") {
        None => ResponseFormat::Text,
        Some(v) => match v.get("type").and_then(Value::as_str) {
            Some("text") => ResponseFormat::Text,
            Some("json_object") => ResponseFormat::JsonObject,
            Some("json_schema") => {
                let schema = v
                    .get("json_schema")
                    .and_then(|j| j.get("schema"))
                    .filter(|s| s.is_object())
                    .ok_or_else(|| {
                        ApiError::openai_param(
                            "response_format",
                            "json_schema needs a schema object: {\"type\": \"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": {...}}}",
                        )
                    })?;
                ResponseFormat::JsonSchema(schema.to_string())
            }
            _ => {
                return Err(ApiError::openai_param(
                    "response_format",
                    "response_format type must be text, json_object or json_schema",
                ))
            }
        },
    };
    Ok(value)
}

pub(super) struct StreamMode {
    pub(super) stream: bool,
    pub(super) include_usage: bool,
}

pub(super) fn stream_mode(b: &Body) -> OResult<StreamMode> {
    let stream = b.boolean("stream")?.unwrap_or(false);
    let include_usage = match b.get("stream_options") {
        None => false,
        Some(o) => o
            .get("include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    Ok(StreamMode {
        stream,
        include_usage,
    })
}

pub(super) fn message_content(i: usize, m: &Value) -> OResult<String> {
    let param = format!("messages[{i}].content");
    match m.get("content") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for part in parts {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => out.push_str(t),
                    _ => {
                        return Err(ApiError::openai_param(
                            &param,
                            "only text content parts are supported",
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(ApiError::openai_param(
            &param,
            "content must be a string or a list of parts",
        )),
    }
}
