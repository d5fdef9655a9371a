//! OpenAI request bodies validated into what the core takes (as TGI's router does): a
//! handler turns its body into a `Valid...` value, or answers 400 naming the `param`,
//! before anything reaches the core.

use aiaas_core::{ChatMessage, ChatRequest, CompletionRequest, EmbeddingRequest, KeepAlive};
use serde_json::Value;

use super::request::{options, stream_mode, Body, StreamMode};
use super::OResult;
use crate::error::ApiError;

/// `POST /v1/chat/completions`, validated.
pub(super) struct ValidChat {
    pub(super) request: ChatRequest,
    /// Per-token logprobs asked for (shown in the reply).
    pub(super) logprobs: bool,
    pub(super) mode: StreamMode,
}

impl ValidChat {
    pub(super) fn from_body(body: Value) -> OResult<ValidChat> {
        let b = Body::new(body)?;
        let model = b.required_string("model")?;
        b.refuse("functions", "this server does not call functions")?;
        let messages = messages(&b)?;
        let tools = super::tools::tool_request(&b)?;
        let logprobs = match b.boolean("logprobs")? {
            Some(true) => Some(b.integer("top_logprobs", 0..=20)?.unwrap_or(0) as usize),
            _ => {
                if b.get("top_logprobs").is_some() {
                    return Err(ApiError::openai_param(
                        "top_logprobs",
                        "top_logprobs needs logprobs: true",
                    ));
                }
                None
            }
        };
        let options = options(&b, logprobs)?;
        Ok(ValidChat {
            request: ChatRequest {
                model,
                messages,
                options,
                tools,
            },
            logprobs: logprobs.is_some(),
            mode: stream_mode(&b)?,
        })
    }
}

/// The conversation: a non-empty list of messages with known roles (`developer` is
/// read as `system`), tool calls and results included.
fn messages(b: &Body) -> OResult<Vec<ChatMessage>> {
    let raw = match b.get("messages") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(ApiError::openai_param(
                "messages",
                "messages must be a non-empty list",
            ))
        }
    };
    raw.iter()
        .enumerate()
        .map(|(i, m)| super::tools::message(i, m))
        .collect()
}

/// `POST /v1/completions`, validated.
pub(super) struct ValidCompletion {
    pub(super) request: CompletionRequest,
    /// Prepend each prompt to its choices' text.
    pub(super) echo: bool,
    pub(super) logprobs: bool,
    pub(super) mode: StreamMode,
}

impl ValidCompletion {
    pub(super) fn from_body(body: Value) -> OResult<ValidCompletion> {
        let b = Body::new(body)?;
        let model = b.required_string("model")?;
        b.refuse("suffix", "insertion is not supported")?;
        b.refuse("best_of", "use n")?;
        let prompts = b.texts("prompt")?;
        let echo = b.boolean("echo")?.unwrap_or(false);
        let logprobs = b.integer("logprobs", 0..=5)?.map(|v| v as usize);
        let options = options(&b, logprobs)?;
        let mode = stream_mode(&b)?;
        if echo && mode.stream {
            return Err(ApiError::openai_param(
                "echo",
                "echo is not supported with stream",
            ));
        }
        Ok(ValidCompletion {
            request: CompletionRequest {
                model,
                prompts,
                options,
            },
            echo,
            logprobs: logprobs.is_some(),
            mode,
        })
    }
}

/// `POST /v1/embeddings`, validated.
pub(super) struct ValidEmbedding {
    pub(super) request: EmbeddingRequest,
    /// Vectors as base64 little-endian f32 instead of JSON numbers.
    pub(super) base64: bool,
    /// The size the caller expects (checked against the model's).
    pub(super) dimensions: Option<usize>,
}

impl ValidEmbedding {
    pub(super) fn from_body(body: Value) -> OResult<ValidEmbedding> {
        let b = Body::new(body)?;
        let model = b.required_string("model")?;
        let inputs = b.texts("input")?;
        let base64 = match b.string("encoding_format")?.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(_) => {
                return Err(ApiError::openai_param(
                    "encoding_format",
                    "encoding_format must be float or base64",
                ))
            }
        };
        let dimensions = b.integer("dimensions", 1..=65_536)?.map(|d| d as usize);
        let truncate = b.boolean("truncate")?.unwrap_or(false);
        let keep_alive = match b.string("keep_alive")? {
            None => None,
            Some(k) => Some(KeepAlive::parse(&k).ok_or_else(|| {
                ApiError::openai_param("keep_alive", "keep_alive must be a duration such as \"5m\"")
            })?),
        };
        Ok(ValidEmbedding {
            request: EmbeddingRequest {
                model,
                inputs,
                truncate,
                keep_alive,
            },
            base64,
            dimensions,
        })
    }
}
