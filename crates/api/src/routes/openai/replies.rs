//! The OpenAI response bodies as the API's own types: what the handlers send and what the
//! OpenAPI document describes are the same structs, streamed chunks included (sent by
//! `stream.rs` as the `data:` of each server-sent event).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A model as OpenAI's `/v1/models` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ModelObject {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Seconds since the epoch.
    pub created: i64,
    pub owned_by: &'static str,
    /// `chat`, `completion` or `embedding` (an aiaas extension).
    pub task: aiaas_types::Task,
}

impl ModelObject {
    pub(super) fn new(name: &str, created_ms: i64, task: aiaas_types::Task) -> ModelObject {
        ModelObject {
            id: name.to_string(),
            object: "model",
            created: created_ms / 1000,
            owned_by: "aiaas",
            task,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ModelObjectList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

/// Token counts of a request.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct UsageBody {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PromptTokensDetails {
    /// Prompt tokens whose KV cache was reused from an earlier request.
    pub cached_tokens: usize,
}

impl UsageBody {
    pub(super) fn new(prompt: usize, cached: usize, completion: usize) -> UsageBody {
        UsageBody {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: cached,
            },
        }
    }
}

/// The assistant's reply in a chat choice.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    pub content: String,
    /// Always null: this server does not refuse with a message.
    pub refusal: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ChatChoice {
    pub index: usize,
    pub message: AssistantMessage,
    /// `{"content": [{"token", "logprob", "bytes", "top_logprobs"}]}` when asked for.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<Value>,
    /// `stop` or `length`.
    pub finish_reason: Option<&'static str>,
}

/// `POST /v1/chat/completions` without `stream`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ChatCompletion {
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<ChatChoice>,
    pub usage: UsageBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TextChoice {
    pub index: usize,
    pub text: String,
    /// `{"tokens", "token_logprobs", "top_logprobs", "text_offset"}` when asked for.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<Value>,
    /// `stop` or `length`.
    pub finish_reason: Option<&'static str>,
}

/// `POST /v1/completions` without `stream`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TextCompletion {
    pub id: String,
    /// Always `text_completion`.
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<TextChoice>,
    pub usage: UsageBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EmbeddingItem {
    /// Always `embedding`.
    pub object: &'static str,
    pub index: usize,
    /// The vector: numbers, or with `encoding_format: base64` a string of little-endian
    /// f32 bytes.
    #[schema(value_type = Vec<f32>)]
    pub embedding: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EmbeddingUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EmbeddingList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<EmbeddingItem>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

/// What a chat chunk adds to its choice: the role once, first; then text.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(super) struct ChatDelta {
    /// `assistant`, in each choice's first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ChatChunkChoice {
    pub index: usize,
    /// Empty in the chunk that ends the choice.
    pub delta: ChatDelta,
    /// `{"content": [...]}` as in `ChatChoice`, for this chunk's tokens, when asked for.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<Value>,
    /// Null until the choice's last chunk: then `stop` or `length`.
    pub finish_reason: Option<&'static str>,
}

/// One server-sent event of `POST /v1/chat/completions` with `stream: true`; the stream
/// ends with `data: [DONE]`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ChatCompletionChunk {
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub system_fingerprint: String,
    /// Empty in the final usage chunk.
    pub choices: Vec<ChatChunkChoice>,
    /// With `stream_options.include_usage` only: null on every chunk but the last, which
    /// has no choices and the request's usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<UsageBody>)]
    pub usage: Option<Option<UsageBody>>,
}

/// One server-sent event of `POST /v1/completions` with `stream: true` (choices carry
/// text pieces); the stream ends with `data: [DONE]`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TextCompletionChunk {
    pub id: String,
    /// Always `text_completion`.
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub system_fingerprint: String,
    /// Empty in the final usage chunk.
    pub choices: Vec<TextChoice>,
    /// As in `ChatCompletionChunk`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<UsageBody>)]
    pub usage: Option<Option<UsageBody>>,
}
