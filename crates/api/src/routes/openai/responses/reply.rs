//! The Responses API's objects as the API's own types: the response, its output items,
//! its usage, and the typed server-sent events of a streamed response.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /v1/responses`, `GET /v1/responses/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct ResponseObject {
    /// `resp_...`.
    pub id: String,
    /// Always `response`.
    pub object: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// `in_progress` (streamed events before the end), `completed` or `incomplete`.
    pub status: String,
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    /// `{"reason": "max_output_tokens"}` when the reply was cut.
    #[schema(value_type = Option<Object>)]
    pub incomplete_details: Option<Value>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", ...}}` as asked.
    #[schema(value_type = Object)]
    pub text: Value,
    /// As asked (`auto` by default).
    #[schema(value_type = Object)]
    pub tool_choice: Value,
    /// The function tools as asked.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
    /// Kept for `GET` and `previous_response_id` (for the retention).
    pub store: bool,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub usage: Option<ResponseUsage>,
}

/// One item of a response's output.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutputItem {
    /// The assistant's text.
    Message {
        /// `msg_...`.
        id: String,
        status: String,
        /// Always `assistant`.
        role: String,
        content: Vec<OutputText>,
    },
    /// A call of a function tool; answer it with a `function_call_output` item.
    FunctionCall {
        /// `fc_...`.
        id: String,
        /// `call_...`: what the `function_call_output` names.
        call_id: String,
        name: String,
        /// JSON text, valid under the tool's `parameters`.
        arguments: String,
        status: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct OutputText {
    /// Always `output_text`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    #[schema(value_type = Vec<Object>)]
    pub annotations: Vec<Value>,
}

impl OutputText {
    pub(crate) fn new(text: String) -> OutputText {
        OutputText {
            kind: "output_text".into(),
            text,
            annotations: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct ResponseUsage {
    pub input_tokens: usize,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: usize,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct InputTokensDetails {
    /// Input tokens whose KV cache was reused from an earlier request.
    pub cached_tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct OutputTokensDetails {
    /// Always 0: these models do not reason apart from their reply.
    pub reasoning_tokens: usize,
}

impl ResponseUsage {
    pub(crate) fn new(input: usize, cached: usize, output: usize) -> ResponseUsage {
        ResponseUsage {
            input_tokens: input,
            input_tokens_details: InputTokensDetails {
                cached_tokens: cached,
            },
            output_tokens: output,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: 0,
            },
            total_tokens: input + output,
        }
    }
}

/// `DELETE /v1/responses/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResponseDeleted {
    pub id: String,
    /// Always `response.deleted`.
    pub object: &'static str,
    pub deleted: bool,
}

/// What a stored response keeps: the response, and the whole conversation it ended
/// (earlier turns, this request's input, this output) as input items, which is what a
/// `previous_response_id` continues from.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredResponse {
    pub response: ResponseObject,
    pub conversation: Vec<Value>,
}

/// One server-sent event of a streamed response (`event:` is its `type`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StreamEvent {
    /// `response.created`, `response.in_progress`, `response.output_item.added`,
    /// `response.content_part.added`, `response.output_text.delta`,
    /// `response.output_text.done`, `response.content_part.done`,
    /// `response.function_call_arguments.delta`, `response.function_call_arguments.done`,
    /// `response.output_item.done`, `response.completed`, `response.incomplete`, `error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sequence_number: u64,
    /// The event's fields (`response`, `item`, `output_index`, `item_id`,
    /// `content_index`, `delta`, `text`, `part`, `arguments`, `message`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, Value>,
}
