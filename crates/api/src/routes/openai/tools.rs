//! The tool fields of a chat request (`tools`, `tool_choice`, `parallel_tool_calls`) and
//! the tool turns of its conversation (an assistant's `tool_calls`, `tool` results),
//! read into the core's `ToolRequest` and `ChatMessage`s with errors naming the `param`.

use aiaas_core::{ChatMessage, ToolCall, ToolChoice, ToolRequest, ToolSpec};
use serde_json::Value;

use super::request::{message_content, Body};
use super::OResult;
use crate::error::ApiError;

/// Most tools per request (OpenAI's limit).
const MAX_TOOLS: usize = 128;

/// The Responses API's `tools` (flat: `{"type": "function", "name", "parameters", ...}`),
/// read as Chat Completions' nested ones.
pub(super) fn flat_tools(b: &Body) -> OResult<Option<ToolRequest>> {
    let Some(Value::Array(items)) = b.get("tools") else {
        return tool_request(b);
    };
    let nested: Vec<Value> = items
        .iter()
        .map(|t| match t.get("type").and_then(Value::as_str) {
            Some("function") => serde_json::json!({"type": "function", "function": t}),
            _ => t.clone(),
        })
        .collect();
    let mut body = b.clone_fields();
    body.insert("tools".into(), Value::Array(nested));
    tool_request(&Body::new(Value::Object(body))?)
}

/// `tools`, `tool_choice` and `parallel_tool_calls`; `None` without tools.
pub(super) fn tool_request(b: &Body) -> OResult<Option<ToolRequest>> {
    let parallel = b.boolean("parallel_tool_calls")?.unwrap_or(true);
    let Some(raw) = b.get("tools") else {
        if b.get("tool_choice").is_some() {
            return Err(ApiError::openai_param(
                "tool_choice",
                "tool_choice is only allowed when tools are given",
            ));
        }
        return Ok(None);
    };
    let items = match raw {
        Value::Array(items) if items.len() <= MAX_TOOLS => items,
        _ => {
            return Err(ApiError::openai_param(
                "tools",
                format!("tools must be a list of at most {MAX_TOOLS} function tools"),
            ))
        }
    };
    let mut tools: Vec<ToolSpec> = Vec::with_capacity(items.len());
    for (i, t) in items.iter().enumerate() {
        let tool = tool_spec(i, t)?;
        if tools.iter().any(|o| o.name == tool.name) {
            return Err(ApiError::openai_param(
                &format!("tools[{i}].function.name"),
                format!("two tools are named {:?}", tool.name),
            ));
        }
        tools.push(tool);
    }
    let choice = tool_choice(b, &tools)?;
    Ok(Some(ToolRequest {
        tools,
        choice,
        parallel,
    }))
}

fn tool_spec(i: usize, t: &Value) -> OResult<ToolSpec> {
    let param = |field: &str| format!("tools[{i}]{field}");
    if t.get("type").and_then(Value::as_str) != Some("function") {
        return Err(ApiError::openai_param(
            &param(".type"),
            "only tools of type \"function\" are supported",
        ));
    }
    let f = t.get("function").filter(|f| f.is_object()).ok_or_else(|| {
        ApiError::openai_param(
            &param(".function"),
            "a function tool needs a function object",
        )
    })?;
    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
    let valid_name = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        return Err(ApiError::openai_param(
            &param(".function.name"),
            "a function name is 1 to 64 of a-z, A-Z, 0-9, _ and -",
        ));
    }
    let description = match f.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ApiError::openai_param(
                &param(".function.description"),
                "description must be a string",
            ))
        }
    };
    let parameters = match f.get("parameters") {
        None | Some(Value::Null) => Value::Null,
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => {
            return Err(ApiError::openai_param(
                &param(".function.parameters"),
                "parameters must be a JSON schema object",
            ))
        }
    };
    let strict = match f.get("strict") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::openai_param(
                &param(".function.strict"),
                "strict must be true or false",
            ))
        }
    };
    Ok(ToolSpec {
        name: name.to_string(),
        description,
        parameters,
        strict,
    })
}

fn tool_choice(b: &Body, tools: &[ToolSpec]) -> OResult<ToolChoice> {
    let bad = || {
        ApiError::openai_param(
            "tool_choice",
            "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
        )
    };
    match b.get("tool_choice") {
        None => Ok(ToolChoice::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            _ => Err(bad()),
        },
        Some(v @ Value::Object(_)) => {
            if v.get("type").and_then(Value::as_str) != Some("function") {
                return Err(bad());
            }
            // Chat Completions nest the name in `function`; the Responses API does not.
            let name = v
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| v.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(ApiError::openai_param(
                    "tool_choice",
                    format!("tool_choice names function {name:?}, which is not among the tools"),
                ));
            }
            Ok(ToolChoice::Function(name.to_string()))
        }
        Some(_) => Err(bad()),
    }
}

/// One message of the conversation, its tool parts included.
pub(super) fn message(i: usize, m: &Value) -> OResult<ChatMessage> {
    let param = |field: &str| format!("messages[{i}].{field}");
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::openai_param(&param("role"), "each message needs a role"))?;
    if !matches!(role, "system" | "developer" | "user" | "assistant" | "tool") {
        return Err(ApiError::openai_param(
            &param("role"),
            format!("role {role:?} is not supported (system, developer, user, assistant, tool)"),
        ));
    }
    let mut message = ChatMessage::new(
        if role == "developer" { "system" } else { role },
        &message_content(i, m)?,
    );
    if role == "tool" {
        let id = m
            .get("tool_call_id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::openai_param(
                    &param("tool_call_id"),
                    "a tool message needs the tool_call_id it answers",
                )
            })?;
        message.tool_call_id = Some(id.to_string());
    }
    match m.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) if role == "assistant" => {
            for (j, c) in calls.iter().enumerate() {
                message.tool_calls.push(tool_call(i, j, c)?);
            }
        }
        Some(_) => {
            return Err(ApiError::openai_param(
                &param("tool_calls"),
                "tool_calls is a list, on assistant messages only",
            ))
        }
    }
    Ok(message)
}

fn tool_call(i: usize, j: usize, c: &Value) -> OResult<ToolCall> {
    let param = format!("messages[{i}].tool_calls[{j}]");
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let f = c.get("function");
    match (
        text(c.get("id")),
        text(f.and_then(|f| f.get("name"))),
        text(f.and_then(|f| f.get("arguments"))),
    ) {
        (Some(id), Some(name), Some(arguments)) => Ok(ToolCall {
            id,
            name,
            arguments,
        }),
        _ => Err(ApiError::openai_param(
            &param,
            "a tool call needs an id and a function with a name and arguments (a JSON string)",
        )),
    }
}
