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
    /// `aiaas` for the library's models, the tenant for its fine-tuned ones.
    pub owned_by: String,
    /// `chat`, `completion` or `embedding` (an aiaas extension).
    pub task: aiaas_types::Task,
}

impl ModelObject {
    pub(super) fn new(name: &str, created_ms: i64, task: aiaas_types::Task) -> ModelObject {
        ModelObject {
            id: name.to_string(),
            object: "model",
            created: created_ms / 1000,
            owned_by: "aiaas".into(),
            task,
        }
    }
}

/// `DELETE /v1/models/{id}`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeletedModel {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    pub deleted: bool,
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
    /// The text; null when the reply only calls tools.
    pub content: Option<String>,
    /// Always null: this server does not refuse with a message.
    pub refusal: Option<String>,
    /// The tools the model called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut>>,
}

impl AssistantMessage {
    /// A finished choice's message and finish reason: with tools, its calls read out of
    /// the text (`tool_calls` when there are any).
    pub(super) fn of(
        text: &str,
        tools: Option<aiaas_core::ToolSyntax>,
        finish: Option<aiaas_core::FinishReason>,
    ) -> (AssistantMessage, Option<&'static str>) {
        let parsed = aiaas_core::ParsedReply::of(text, tools);
        let called = !parsed.calls.is_empty();
        let message = AssistantMessage {
            role: "assistant",
            content: (!called || !parsed.content.is_empty()).then_some(parsed.content),
            refusal: None,
            tool_calls: called.then(|| parsed.calls.into_iter().map(ToolCallOut::from).collect()),
        };
        (message, finish_reason(finish, called))
    }
}

/// `stop`, `length`, or `tool_calls` for a reply that called tools.
pub(super) fn finish_reason(
    r: Option<aiaas_core::FinishReason>,
    called: bool,
) -> Option<&'static str> {
    match r {
        Some(aiaas_core::FinishReason::Stop) if called => Some("tool_calls"),
        Some(aiaas_core::FinishReason::Stop) => Some("stop"),
        Some(aiaas_core::FinishReason::Length) => Some("length"),
        None => None,
    }
}

/// A function call in a reply.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ToolCallOut {
    /// `call_...`, to answer with a `tool` message.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct FunctionCall {
    pub name: String,
    /// The arguments as JSON text, valid under the tool's `parameters` schema.
    pub arguments: String,
}

impl From<aiaas_core::ToolCall> for ToolCallOut {
    fn from(c: aiaas_core::ToolCall) -> ToolCallOut {
        ToolCallOut {
            id: c.id,
            kind: "function",
            function: FunctionCall {
                name: c.name,
                arguments: c.arguments,
            },
        }
    }
}

/// A piece of a streamed tool call: the first carries the id, type and name, the next
/// ones fragments of the arguments (OpenAI's stream shape).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ToolCallDelta {
    /// The call's position in the reply's calls.
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, with the id.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionDelta,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct FunctionDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The next fragment of the arguments' JSON text.
    pub arguments: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ChatChoice {
    pub index: usize,
    pub message: AssistantMessage,
    /// `{"content": [{"token", "logprob", "bytes", "top_logprobs"}]}` when asked for.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<Value>,
    /// `stop`, `length`, or `tool_calls` when the message calls tools.
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
    /// Pieces of the tools called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ChatChunkChoice {
    pub index: usize,
    /// Empty in the chunk that ends the choice.
    pub delta: ChatDelta,
    /// `{"content": [...]}` as in `ChatChoice`, for this chunk's tokens, when asked for.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<Value>,
    /// Null until the choice's last chunk: then `stop`, `length` or `tool_calls`.
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
