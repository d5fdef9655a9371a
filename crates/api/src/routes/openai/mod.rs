//! The OpenAI-compatible API (`/v1`): chat completions, completions, embeddings and
//! models, faithful enough that the official clients work with only `base_url` and
//! `api_key` changed. Requests are read as JSON values and checked field by field so a
//! bad parameter is named in the error (`param`), as OpenAI does.

use std::convert::Infallible;

use aiaas_core::{
    collect, ChatMessage, ChatRequest, CompletionRequest, CoreError, EmbeddingRequest,
    FinishReason, GenEvent, Generation, KeepAlive, TokenLogprob,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

mod request;

use request::{message_content, options, stream_mode, Body};

use crate::error::ApiError;
use crate::extract::{ApiJson, Auth};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{*id}", get(get_model))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
}

type OResult<T> = Result<T, ApiError>;

fn oai(e: CoreError) -> ApiError {
    ApiError::openai(e)
}

fn created() -> i64 {
    aiaas_types::now_ms() / 1000
}

fn fingerprint() -> String {
    format!("aiaas-{}", env!("CARGO_PKG_VERSION"))
}

// ---------------------------------------------------------------- models

async fn list_models(State(s): State<AppState>, Auth(p): Auth) -> OResult<Json<Value>> {
    let models = s.platform.library().list(&p).await.map_err(oai)?;
    let data: Vec<Value> = models
        .iter()
        .map(|m| model_object(&m.record.name, m.record.created_at, &m.record.task))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

async fn get_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> OResult<Json<Value>> {
    let m = s.platform.library().get(&p, &id).await.map_err(oai)?;
    Ok(Json(model_object(
        &m.record.name,
        m.record.created_at,
        &m.record.task,
    )))
}

fn model_object(name: &str, created_ms: i64, task: &str) -> Value {
    json!({"id": name, "object": "model", "created": created_ms / 1000, "owned_by": "aiaas", "task": task})
}

// ---------------------------------------------------------------- chat

async fn chat_completions(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Value>,
) -> OResult<Response> {
    let b = Body::new(body)?;
    let model = b.required_string("model")?;
    b.refuse("tools", "this server does not call tools")?;
    b.refuse("functions", "this server does not call functions")?;
    let raw = match b.get("messages") {
        Some(Value::Array(items)) if !items.is_empty() => items.clone(),
        _ => {
            return Err(ApiError::openai_param(
                "messages",
                "messages must be a non-empty list",
            ))
        }
    };
    let mut messages = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
            ApiError::openai_param(&format!("messages[{i}].role"), "each message needs a role")
        })?;
        if !matches!(role, "system" | "developer" | "user" | "assistant") {
            return Err(ApiError::openai_param(
                &format!("messages[{i}].role"),
                format!("role {role:?} is not supported (system, developer, user, assistant)"),
            ));
        }
        let role = if role == "developer" { "system" } else { role };
        messages.push(ChatMessage {
            role: role.to_string(),
            content: message_content(i, m)?,
        });
    }
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
    let opts = options(&b, logprobs)?;
    let mode = stream_mode(&b)?;
    let generation = s
        .platform
        .inference()
        .chat(
            &p,
            ChatRequest {
                model,
                messages,
                options: opts,
            },
        )
        .await
        .map_err(oai)?;
    let id = format!("chatcmpl-{}", aiaas_types::new_id());
    if mode.stream {
        return Ok(stream_response(generation, id, mode.include_usage, Kind::Chat).into_response());
    }
    let reply = collect_all(generation).await?;
    let choices: Vec<Value> = reply
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "index": i,
                "message": {"role": "assistant", "content": c.text, "refusal": null},
                "logprobs": if logprobs.is_some() { chat_logprobs(&c.logprobs) } else { Value::Null },
                "finish_reason": finish(c.finish_reason),
            })
        })
        .collect();
    Ok(reply
        .envelope(&id, "chat.completion", choices)
        .into_response())
}

// ---------------------------------------------------------------- completions

async fn completions(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Value>,
) -> OResult<Response> {
    let b = Body::new(body)?;
    let model = b.required_string("model")?;
    b.refuse("suffix", "insertion is not supported")?;
    b.refuse("best_of", "use n")?;
    let prompts = b.texts("prompt")?;
    let echo = b.boolean("echo")?.unwrap_or(false);
    let logprobs = b.integer("logprobs", 0..=5)?.map(|v| v as usize);
    let opts = options(&b, logprobs)?;
    let mode = stream_mode(&b)?;
    if echo && mode.stream {
        return Err(ApiError::openai_param(
            "echo",
            "echo is not supported with stream",
        ));
    }
    let n = opts.n;
    let echoed = prompts.clone();
    let generation = s
        .platform
        .inference()
        .complete(
            &p,
            CompletionRequest {
                model,
                prompts,
                options: opts,
            },
        )
        .await
        .map_err(oai)?;
    let id = format!("cmpl-{}", aiaas_types::new_id());
    if mode.stream {
        return Ok(
            stream_response(generation, id, mode.include_usage, Kind::Completion).into_response(),
        );
    }
    let reply = collect_all(generation).await?;
    let choices: Vec<Value> = reply
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let prefix = if echo { echoed[i / n].as_str() } else { "" };
            json!({
                "index": i,
                "text": format!("{prefix}{}", c.text),
                "logprobs": if logprobs.is_some() { completion_logprobs(&c.logprobs, prefix.len()) } else { Value::Null },
                "finish_reason": finish(c.finish_reason),
            })
        })
        .collect();
    Ok(reply
        .envelope(&id, "text_completion", choices)
        .into_response())
}

// ---------------------------------------------------------------- embeddings

async fn embeddings(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Value>,
) -> OResult<Json<Value>> {
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
    let dimensions = b.integer("dimensions", 1..=65_536)?;
    let truncate = b.boolean("truncate")?.unwrap_or(false);
    let keep_alive = match b.string("keep_alive")? {
        None => None,
        Some(k) => Some(KeepAlive::parse(&k).ok_or_else(|| {
            ApiError::openai_param("keep_alive", "keep_alive must be a duration such as \"5m\"")
        })?),
    };
    let out = s
        .platform
        .inference()
        .embed(
            &p,
            EmbeddingRequest {
                model,
                inputs,
                truncate,
                keep_alive,
            },
        )
        .await
        .map_err(oai)?;
    if let (Some(d), Some(v)) = (dimensions, out.vectors.first()) {
        if d as usize != v.len() {
            return Err(ApiError::openai_param(
                "dimensions",
                format!(
                    "model {:?} makes {}-dimensional embeddings and cannot shorten them",
                    out.model,
                    v.len()
                ),
            ));
        }
    }
    let data: Vec<Value> = out
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                Value::String(base64_f32(v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": out.model,
        "usage": {"prompt_tokens": out.prompt_tokens, "total_tokens": out.prompt_tokens},
    })))
}

/// Little-endian f32 bytes in standard base64 (what OpenAI's clients decode).
fn base64_f32(v: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------- replies

struct Reply {
    model: String,
    prompt_tokens: usize,
    cached_tokens: usize,
    completion_tokens: usize,
    choices: Vec<aiaas_core::CollectedChoice>,
}

impl Reply {
    /// The non-streamed answer around its choices.
    fn envelope(&self, id: &str, object: &str, choices: Vec<Value>) -> Json<Value> {
        Json(json!({
            "id": id,
            "object": object,
            "created": created(),
            "model": self.model,
            "system_fingerprint": fingerprint(),
            "choices": choices,
            "usage": usage(self.prompt_tokens, self.cached_tokens, self.completion_tokens),
        }))
    }
}

async fn collect_all(g: Generation) -> OResult<Reply> {
    let prompt_tokens = g.prompt_tokens.iter().sum();
    let mut choices = Vec::with_capacity(g.choices.len());
    // Collected together: the sequences run at once; awaiting one by one is fine because
    // each receiver buffers its events.
    for rx in g.choices {
        choices.push(collect(rx).await.map_err(oai)?);
    }
    let cached: Vec<usize> = choices.iter().map(|c| c.cached_tokens).collect();
    Ok(Reply {
        model: g.model,
        prompt_tokens,
        cached_tokens: cached_per_prompt(&cached, g.prompt_tokens.len()),
        completion_tokens: choices.iter().map(|c| c.completion_tokens).sum(),
        choices,
    })
}

fn finish(r: Option<FinishReason>) -> Value {
    match r {
        Some(FinishReason::Stop) => json!("stop"),
        Some(FinishReason::Length) => json!("length"),
        None => Value::Null,
    }
}

fn usage(prompt: usize, cached: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// Cached prompt tokens of a request: each prompt counts once (as in `prompt_tokens`),
/// with the most any of its `n` sequences reused. `cached[p * n + i]` is choice `i` of
/// prompt `p`.
fn cached_per_prompt(cached: &[usize], prompts: usize) -> usize {
    if prompts == 0 || cached.is_empty() {
        return 0;
    }
    let n = cached.len().div_ceil(prompts);
    cached
        .chunks(n)
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .sum()
}

fn chat_logprobs(entries: &[TokenLogprob]) -> Value {
    let content: Vec<Value> = entries
        .iter()
        .map(|t| {
            json!({
                "token": t.token,
                "logprob": t.logprob,
                "bytes": t.bytes,
                "top_logprobs": t.top_logprobs.iter().map(|a| json!({
                    "token": a.token, "logprob": a.logprob, "bytes": a.bytes,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"content": content, "refusal": null})
}

fn completion_logprobs(entries: &[TokenLogprob], start_offset: usize) -> Value {
    let mut offset = start_offset;
    let mut offsets = Vec::with_capacity(entries.len());
    for t in entries {
        offsets.push(offset);
        offset += t.token.len();
    }
    json!({
        "tokens": entries.iter().map(|t| t.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": entries.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": entries.iter().map(|t| {
            let m: Map<String, Value> = t.top_logprobs.iter().map(|a| (a.token.clone(), json!(a.logprob))).collect();
            Value::Object(m)
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Completion,
}

/// Server-sent events in OpenAI's chunk format, choices interleaved as they produce
/// text, ending with `data: [DONE]`. Dropping the stream (client gone) drops the
/// receivers, which cancels the sequences.
fn stream_response(
    g: Generation,
    id: String,
    include_usage: bool,
    kind: Kind,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, GenEvent)>();
    let total = g.choices.len();
    let prompts = g.prompt_tokens.len();
    let mut forwarders = Vec::with_capacity(total);
    for (i, mut choice) in g.choices.into_iter().enumerate() {
        let tx = tx.clone();
        forwarders.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    ev = choice.recv() => match ev {
                        Some(ev) => {
                            if tx.send((i, ev)).is_err() { break; }
                        }
                        None => break,
                    },
                    _ = tx.closed() => break,
                }
            }
        }));
    }
    drop(tx);
    let model = g.model;
    let prompt_tokens: usize = g.prompt_tokens.iter().sum();
    let created = created();
    let (object, fp) = match kind {
        Kind::Chat => ("chat.completion.chunk", fingerprint()),
        Kind::Completion => ("text_completion", fingerprint()),
    };
    let stream = async_stream(move |out: mpsc::UnboundedSender<Event>| async move {
        let chunk = |choices: Value, usage_v: Option<Value>| {
            let mut v = json!({
                "id": id, "object": object, "created": created, "model": model,
                "system_fingerprint": fp, "choices": choices,
            });
            if include_usage {
                v["usage"] = usage_v.unwrap_or(Value::Null);
            }
            Event::default().data(v.to_string())
        };
        if kind == Kind::Chat {
            for i in 0..total {
                let _ = out.send(chunk(
                    json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
                    None,
                ));
            }
        }
        let mut completion_tokens = 0;
        let mut cached = vec![0; total];
        let mut ended = 0;
        while ended < total {
            let Some((i, ev)) = rx.recv().await else {
                break;
            };
            let piece = match ev {
                GenEvent::Text { text, logprobs } => match kind {
                    Kind::Chat => json!([{"index": i, "delta": {"content": text},
                        "logprobs": if logprobs.is_empty() { Value::Null } else { chat_logprobs(&logprobs) },
                        "finish_reason": null}]),
                    Kind::Completion => json!([{"index": i, "text": text,
                        "logprobs": if logprobs.is_empty() { Value::Null } else { completion_logprobs(&logprobs, 0) },
                        "finish_reason": null}]),
                },
                GenEvent::Done { reason, usage: u } => {
                    ended += 1;
                    completion_tokens += u.completion_tokens;
                    cached[i] = u.cached_tokens;
                    match kind {
                        Kind::Chat => {
                            json!([{"index": i, "delta": {}, "logprobs": null, "finish_reason": finish(Some(reason))}])
                        }
                        Kind::Completion => {
                            json!([{"index": i, "text": "", "logprobs": null, "finish_reason": finish(Some(reason))}])
                        }
                    }
                }
                GenEvent::Error(e) => {
                    let err = ApiError::openai(e.into());
                    let (status, code) = crate::error::status_of(&err.error);
                    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
                        "internal error".to_string()
                    } else {
                        err.error.to_string()
                    };
                    let _ = out.send(Event::default().data(
                        json!({"error": {"message": message, "type": "server_error", "param": null, "code": code}}).to_string(),
                    ));
                    break;
                }
            };
            let _ = out.send(chunk(piece, None));
        }
        if include_usage && ended == total {
            let _ = out.send(chunk(
                json!([]),
                Some(usage(
                    prompt_tokens,
                    cached_per_prompt(&cached, prompts),
                    completion_tokens,
                )),
            ));
        }
        let _ = out.send(Event::default().data("[DONE]"));
        drop(forwarders);
    });
    Sse::new(stream)
}

/// A stream fed by an async task through a channel; when the stream is dropped the
/// task's sends fail and it ends.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(mpsc::UnboundedSender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(f(tx));
    let guard = AbortOnDrop(task);
    futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|e| (Ok(e), (rx, guard)))
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_encoding() {
        // 1.0f32 = 00 00 80 3f; 2.0f32 = 00 00 00 40.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 2.0]), "AACAPwAAAEA=");
        assert_eq!(base64_f32(&[]), "");
    }
}
