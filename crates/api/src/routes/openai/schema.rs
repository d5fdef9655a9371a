//! The OpenAI request bodies as the OpenAPI document describes them. The handlers read
//! a body field by field (`request.rs`, `valid.rs`) to name the bad `param` the way
//! OpenAI does; these types only document what they accept, and a test keeps the two
//! in step (every field a handler reads is a property here).

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One message of a conversation.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct ChatMessageIn {
    /// `system`, `developer` (read as system), `user`, `assistant` or `tool`.
    role: String,
    /// Text, or a list of `{"type": "text", "text": ...}` parts (null for an assistant
    /// turn that only called tools).
    #[schema(value_type = Object)]
    content: Value,
    /// An assistant turn's calls: `{"id", "type": "function", "function": {"name",
    /// "arguments"}}` with the arguments as JSON text.
    #[schema(value_type = Option<Vec<Object>>)]
    tool_calls: Option<Value>,
    /// A `tool` turn: the id of the call it answers.
    tool_call_id: Option<String>,
}

/// A function the model may call.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct ToolIn {
    /// Always `function`.
    #[serde(rename = "type")]
    kind: String,
    function: FunctionIn,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct FunctionIn {
    /// 1 to 64 of `a-z A-Z 0-9 _ -`.
    name: String,
    description: Option<String>,
    /// JSON schema of the arguments object; every call is decoded under it.
    #[schema(value_type = Option<Object>)]
    parameters: Option<Value>,
    /// Accepted; calls follow the schema either way.
    strict: Option<bool>,
}

/// Sampling and serving options chat and text completions share.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct GenerationFields {
    /// 0 to 2.
    temperature: Option<f64>,
    /// 0 to 1.
    top_p: Option<f64>,
    /// Choices per prompt, 1 to 16.
    n: Option<u32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    /// A string or up to 4 strings.
    #[schema(value_type = Object)]
    stop: Option<Value>,
    seed: Option<i64>,
    /// -2 to 2.
    presence_penalty: Option<f64>,
    /// -2 to 2.
    frequency_penalty: Option<f64>,
    /// `{"type": "text" | "json_object" | "json_schema", "json_schema": {"schema": {...}}}`.
    #[schema(value_type = Object)]
    response_format: Option<Value>,
    /// Server-sent events, `data: [DONE]` last.
    stream: Option<bool>,
    /// `{"include_usage": true}`: a last chunk with the usage.
    #[schema(value_type = Object)]
    stream_options: Option<Value>,
    /// How long the model stays loaded after the request: `"5m"`, `"0"`, `"-1"`, or seconds.
    #[schema(value_type = Object)]
    keep_alive: Option<Value>,
    /// Seconds the request may take, at most 86400.
    timeout: Option<f64>,
}

/// `POST /v1/chat/completions`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct ChatCompletionBody {
    model: String,
    messages: Vec<ChatMessageIn>,
    /// Per-token log probabilities in the reply.
    logprobs: Option<bool>,
    /// 0 to 20 alternatives per token (with `logprobs: true`).
    top_logprobs: Option<u32>,
    /// Up to 128 function tools.
    tools: Option<Vec<ToolIn>>,
    /// `none`, `auto` (the default with tools), `required`, or `{"type": "function",
    /// "function": {"name": ...}}`.
    #[schema(value_type = Option<Object>)]
    tool_choice: Option<Value>,
    /// More than one call per reply (default true).
    parallel_tool_calls: Option<bool>,
    #[serde(flatten)]
    options: GenerationFields,
}

/// `POST /v1/completions`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct CompletionBody {
    model: String,
    /// A string or a list of strings.
    #[schema(value_type = Object)]
    prompt: Value,
    /// Prepend the prompt to each choice's text (not with `stream`).
    echo: Option<bool>,
    /// 0 to 5 alternatives per token.
    logprobs: Option<u32>,
    #[serde(flatten)]
    options: GenerationFields,
}

/// `POST /v1/embeddings`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct EmbeddingBody {
    model: String,
    /// A string or a list of strings.
    #[schema(value_type = Object)]
    input: Value,
    /// `float` (default) or `base64` (little-endian f32).
    encoding_format: Option<String>,
    /// The model's dimension (embeddings are not shortened).
    dimensions: Option<u32>,
    /// Cut texts longer than the model's input instead of refusing them.
    truncate: Option<bool>,
    /// As for completions: `"5m"`, `"0"`, `"-1"`.
    keep_alive: Option<String>,
}
