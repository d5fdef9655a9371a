//! OpenAI's Responses API: `POST /v1/responses` (input as text or items, instructions,
//! function tools, `text.format`, `stream` as typed events, `store`,
//! `previous_response_id`), `GET` and `DELETE /v1/responses/{id}`. A response runs as a
//! chat completion of one choice on the same inference service (allow-lists, quotas,
//! PII policies, usage); stored responses are kept per tenant by the core's `Responses`
//! service, encrypted like every artifact, for the configured retention.

mod reply;
mod stream;

use aiaas_core::{
    ChatMessage, ChatRequest, CoreError, GenerationOptions, ResponseFormat, ToolCall,
};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use reply::{OutputItem, OutputText, ResponseUsage, StoredResponse};
pub(crate) use reply::{ResponseDeleted, ResponseObject, StreamEvent};

use super::request::{message_content, Body};
use super::{collect_all, oai, OResult};
use crate::error::ApiError;
use crate::extract::{ApiJson, Auth};
use crate::AppState;

/// A `POST /v1/responses` body, validated.
pub(super) struct ValidResponse {
    model: String,
    /// This request's input, as items (a string input is one user message).
    input: Vec<Value>,
    instructions: Option<String>,
    options: GenerationOptions,
    tools: Option<aiaas_core::ToolRequest>,
    previous_response_id: Option<String>,
    store: bool,
    stream: bool,
    /// What the response object repeats of the request.
    echo: Echo,
}

/// The request's settings as the response shows them.
#[derive(Clone)]
pub(super) struct Echo {
    max_output_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    text: Value,
    tool_choice: Value,
    tools: Vec<Value>,
    parallel_tool_calls: bool,
    metadata: Value,
}

impl ValidResponse {
    fn from_body(body: Value) -> OResult<ValidResponse> {
        let b = Body::new(body)?;
        let model = b.required_string("model")?;
        let input = input_items(&b)?;
        let max_output_tokens = b.integer("max_output_tokens", 1..=1_000_000)?;
        let temperature = b.number("temperature", 0.0..=2.0)?;
        let top_p = b.number("top_p", 0.0..=1.0)?;
        let (response_format, text) = text_format(&b)?;
        let tools = super::tools::flat_tools(&b)?;
        let metadata = match b.get("metadata") {
            None => json!({}),
            Some(m @ Value::Object(_)) => m.clone(),
            Some(_) => {
                return Err(ApiError::openai_param(
                    "metadata",
                    "metadata must be an object",
                ))
            }
        };
        Ok(ValidResponse {
            model,
            input,
            instructions: b.string("instructions")?,
            options: GenerationOptions {
                max_tokens: max_output_tokens.map(|v| v as usize),
                temperature: temperature.map(|t| t as f32),
                top_p: top_p.map(|t| t as f32),
                n: 1,
                response_format,
                ..GenerationOptions::default()
            },
            previous_response_id: b.string("previous_response_id")?,
            store: b.boolean("store")?.unwrap_or(true),
            stream: b.boolean("stream")?.unwrap_or(false),
            echo: Echo {
                max_output_tokens: max_output_tokens.map(|v| v as u64),
                temperature,
                top_p,
                text,
                tool_choice: b.get("tool_choice").cloned().unwrap_or(json!("auto")),
                tools: match b.get("tools") {
                    Some(Value::Array(t)) => t.clone(),
                    _ => Vec::new(),
                },
                parallel_tool_calls: tools.as_ref().is_none_or(|t| t.parallel),
                metadata,
            },
            tools,
        })
    }
}

/// `input`: a string (one user message) or a list of items: messages (`role`, text or
/// `input_text`/`output_text` parts), `function_call`s and `function_call_output`s.
fn input_items(b: &Body) -> OResult<Vec<Value>> {
    let items = match b.get("input") {
        Some(Value::String(s)) => return Ok(vec![json!({"role": "user", "content": s})]),
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(ApiError::openai_param(
                "input",
                "input must be a string or a non-empty list of items",
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let param = format!("input[{i}]");
        let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        let normalised = match kind {
            "message" => {
                let role = text("role").unwrap_or_default();
                if !matches!(role.as_str(), "user" | "assistant" | "system" | "developer") {
                    return Err(ApiError::openai_param(
                        &format!("{param}.role"),
                        "a message's role is user, assistant, system or developer",
                    ));
                }
                json!({"role": role, "content": item_text(i, item)?})
            }
            "function_call" => match (text("call_id"), text("name"), text("arguments")) {
                (Some(call_id), Some(name), Some(arguments)) => json!({"type": "function_call",
                    "call_id": call_id, "name": name, "arguments": arguments}),
                _ => {
                    return Err(ApiError::openai_param(
                        &param,
                        "a function_call item needs call_id, name and arguments",
                    ))
                }
            },
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) if !v.is_null() => v.to_string(),
                    _ => String::new(),
                };
                match text("call_id") {
                    Some(call_id) => json!({"type": "function_call_output",
                        "call_id": call_id, "output": output}),
                    None => {
                        return Err(ApiError::openai_param(
                            &format!("{param}.call_id"),
                            "a function_call_output item needs the call_id it answers",
                        ))
                    }
                }
            }
            other => {
                return Err(ApiError::openai_param(
                    &format!("{param}.type"),
                    format!("input items of type {other:?} are not supported (message, function_call, function_call_output)"),
                ))
            }
        };
        out.push(normalised);
    }
    Ok(out)
}

/// A message item's text: a string, or parts of type `input_text`/`output_text`/`text`.
fn item_text(i: usize, item: &Value) -> OResult<String> {
    if let Some(Value::Array(parts)) = item.get("content") {
        let mut out = String::new();
        for part in parts {
            match (
                part.get("type").and_then(Value::as_str),
                part.get("text").and_then(Value::as_str),
            ) {
                (Some("input_text" | "output_text" | "text"), Some(t)) => out.push_str(t),
                _ => {
                    return Err(ApiError::openai_param(
                        &format!("input[{i}].content"),
                        "only text parts (input_text, output_text) are supported",
                    ))
                }
            }
        }
        return Ok(out);
    }
    message_content(i, item)
}

/// `text.format`: the reply's format, and the value the response repeats.
fn text_format(b: &Body) -> OResult<(ResponseFormat, Value)> {
    let Some(text) = b.get("text") else {
        return Ok((ResponseFormat::Text, json!({"format": {"type": "text"}})));
    };
    let format = text
        .get("format")
        .cloned()
        .unwrap_or(json!({"type": "text"}));
    let bad = |m: &str| ApiError::openai_param("text.format", m.to_string());
    let parsed = match format.get("type").and_then(Value::as_str) {
        Some("text") => ResponseFormat::Text,
        Some("json_object") => ResponseFormat::JsonObject,
        Some("json_schema") => match format.get("schema") {
            Some(s @ Value::Object(_)) => ResponseFormat::JsonSchema(s.to_string()),
            _ => return Err(bad("a json_schema format needs a schema object")),
        },
        _ => {
            return Err(bad(
                "text.format.type must be text, json_object or json_schema",
            ))
        }
    };
    Ok((parsed, json!({"format": format})))
}

/// The conversation as chat messages: items in order, consecutive function calls one
/// assistant turn, each output a `tool` turn.
fn messages(instructions: Option<&str>, items: &[Value]) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(items.len() + 1);
    if let Some(text) = instructions {
        out.push(ChatMessage::new("system", text));
    }
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    for item in items {
        match item.get("type").and_then(Value::as_str) {
            Some("function_call") => {
                let call = ToolCall {
                    id: text(item, "call_id"),
                    name: text(item, "name"),
                    arguments: text(item, "arguments"),
                };
                match out.last_mut() {
                    Some(m) if m.role == "assistant" && !m.tool_calls.is_empty() => {
                        m.tool_calls.push(call)
                    }
                    _ => out.push(ChatMessage {
                        role: "assistant".into(),
                        tool_calls: vec![call],
                        ..ChatMessage::default()
                    }),
                }
            }
            Some("function_call_output") => out.push(ChatMessage {
                role: "tool".into(),
                content: text(item, "output"),
                tool_call_id: Some(text(item, "call_id")),
                ..ChatMessage::default()
            }),
            _ => {
                let role = text(item, "role");
                let role = if role == "developer" {
                    "system".to_string()
                } else {
                    role
                };
                out.push(ChatMessage::new(&role, &text(item, "content")));
            }
        }
    }
    out
}

/// The output items of a finished reply (its text as message `message_id`, then its
/// calls).
fn output_items(
    text: &str,
    tools: Option<aiaas_core::ToolSyntax>,
    message_id: String,
) -> Vec<OutputItem> {
    let parsed = aiaas_core::ParsedReply::of(text, tools);
    let mut out = Vec::new();
    if !parsed.content.is_empty() || parsed.calls.is_empty() {
        out.push(OutputItem::Message {
            id: message_id,
            status: "completed".into(),
            role: "assistant".into(),
            content: vec![OutputText::new(parsed.content)],
        });
    }
    for call in parsed.calls {
        out.push(OutputItem::FunctionCall {
            id: item_id("fc"),
            call_id: call.id,
            name: call.name,
            arguments: call.arguments,
            status: "completed".into(),
        });
    }
    out
}

/// The output as input items, for the conversation a stored response keeps.
fn as_input(items: &[OutputItem]) -> Vec<Value> {
    items
        .iter()
        .map(|item| match item {
            OutputItem::Message { content, .. } => {
                let text: String = content.iter().map(|c| c.text.as_str()).collect();
                json!({"role": "assistant", "content": text})
            }
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
                ..
            } => json!({"type": "function_call", "call_id": call_id, "name": name,
                "arguments": arguments}),
        })
        .collect()
}

fn item_id(prefix: &str) -> String {
    format!("{prefix}_{}", aiaas_types::new_id().replace('-', ""))
}

/// What a response is made of besides its output: known before generation starts.
#[derive(Clone)]
pub(super) struct Draft {
    id: String,
    created_at: i64,
    model: String,
    instructions: Option<String>,
    previous_response_id: Option<String>,
    store: bool,
    echo: Echo,
    /// The conversation up to this reply (earlier turns and this input), as items.
    conversation: Vec<Value>,
}

impl Draft {
    /// The response with `output`; `usage` and `cut` (max_output_tokens reached) once
    /// finished, `None` while in progress.
    fn response(
        &self,
        output: Vec<OutputItem>,
        finished: Option<(ResponseUsage, bool)>,
    ) -> ResponseObject {
        let e = &self.echo;
        let (status, incomplete, usage) = match finished {
            None => ("in_progress", None, None),
            Some((u, false)) => ("completed", None, Some(u)),
            Some((u, true)) => (
                "incomplete",
                Some(json!({"reason": "max_output_tokens"})),
                Some(u),
            ),
        };
        ResponseObject {
            id: self.id.clone(),
            object: "response".into(),
            created_at: self.created_at,
            status: status.into(),
            error: None,
            incomplete_details: incomplete,
            instructions: self.instructions.clone(),
            max_output_tokens: e.max_output_tokens,
            model: self.model.clone(),
            output,
            parallel_tool_calls: e.parallel_tool_calls,
            previous_response_id: self.previous_response_id.clone(),
            temperature: e.temperature,
            top_p: e.top_p,
            text: e.text.clone(),
            tool_choice: e.tool_choice.clone(),
            tools: e.tools.clone(),
            store: self.store,
            metadata: e.metadata.clone(),
            usage,
        }
    }

    /// Keep a finished response (when `store`), with the conversation it ended.
    async fn keep(
        &self,
        s: &AppState,
        p: &aiaas_types::Principal,
        response: &ResponseObject,
    ) -> OResult<()> {
        if !self.store {
            return Ok(());
        }
        let mut conversation = self.conversation.clone();
        conversation.extend(as_input(&response.output));
        let doc = StoredResponse {
            response: response.clone(),
            conversation,
        };
        let bytes = serde_json::to_vec(&doc)
            .map_err(|e| oai(CoreError::Internal(format!("response not encoded: {e}"))))?;
        s.platform
            .responses()
            .save(p, &self.id, bytes)
            .await
            .map_err(oai)
    }
}

/// A stored response's document (another tenant's is a 404).
async fn stored(s: &AppState, p: &aiaas_types::Principal, id: &str) -> OResult<StoredResponse> {
    let bytes = s.platform.responses().get(p, id).await.map_err(oai)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        oai(CoreError::Internal(format!(
            "stored response {id} unreadable: {e}"
        )))
    })
}

#[utoipa::path(
    post,
    path = "/v1/responses",
    tag = "openai",
    summary = "Create a response (OpenAI Responses API; typed SSE events when stream)",
    request_body(content = Object, description = "model, input (text or items), instructions, tools, tool_choice, parallel_tool_calls, max_output_tokens, temperature, top_p, text.format, stream, store, previous_response_id, metadata"),
    responses((status = 200, description = "the response; with `stream`, server-sent events (`event:` = `type`)", content((ResponseObject = "application/json"), (StreamEvent = "text/event-stream"))), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
pub(super) async fn create_response(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Value>,
) -> OResult<Response> {
    let valid = ValidResponse::from_body(body)?;
    let mut conversation = match &valid.previous_response_id {
        Some(id) => {
            stored(&s, &p, id)
                .await
                .map_err(|e| e.with_param("previous_response_id"))?
                .conversation
        }
        None => Vec::new(),
    };
    conversation.extend(valid.input.iter().cloned());
    let request = ChatRequest {
        model: valid.model.clone(),
        messages: messages(valid.instructions.as_deref(), &conversation),
        options: valid.options,
        tools: valid.tools,
    };
    let generation = s
        .platform
        .inference()
        .chat(&p, request)
        .await
        .map_err(oai)?;
    let draft = Draft {
        id: item_id("resp"),
        created_at: super::created(),
        model: generation.model.clone(),
        instructions: valid.instructions,
        previous_response_id: valid.previous_response_id,
        store: valid.store,
        echo: valid.echo,
        conversation,
    };
    if valid.stream {
        let mut generation = generation;
        generation.wait_for_slots().await.map_err(oai)?;
        return Ok(stream::events(s, p, draft, generation).into_response());
    }
    let tools = generation.tools;
    let reply = collect_all(generation).await?;
    let choice = reply.choices.first();
    let text = choice.map(|c| c.text.as_str()).unwrap_or("");
    let cut = choice.and_then(|c| c.finish_reason) == Some(aiaas_core::FinishReason::Length);
    let usage = ResponseUsage::new(
        reply.prompt_tokens,
        reply.cached_tokens,
        reply.completion_tokens,
    );
    let output = output_items(text, tools, item_id("msg"));
    let response = draft.response(output, Some((usage, cut)));
    draft.keep(&s, &p, &response).await?;
    Ok(Json(response).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/responses/{id}",
    tag = "openai",
    summary = "A stored response",
    params(("id" = String, Path)),
    responses((status = 200, description = "the response", body = ResponseObject), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
pub(super) async fn get_response(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> OResult<Json<ResponseObject>> {
    Ok(Json(stored(&s, &p, &id).await?.response))
}

#[utoipa::path(
    delete,
    path = "/v1/responses/{id}",
    tag = "openai",
    summary = "Delete a stored response",
    params(("id" = String, Path)),
    responses((status = 200, description = "deleted", body = ResponseDeleted), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
pub(super) async fn delete_response(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> OResult<Json<ResponseDeleted>> {
    s.platform.responses().delete(&p, &id).await.map_err(oai)?;
    Ok(Json(ResponseDeleted {
        id,
        object: "response.deleted",
        deleted: true,
    }))
}
