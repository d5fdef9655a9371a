//! The OpenAI-compatible API (`/v1`): chat completions, completions, embeddings,
//! audio transcriptions (audio.rs), files (files.rs) and models, faithful enough that the official clients work with only `base_url` and
//! `api_key` changed. Requests are read as JSON values and checked field by field so a
//! bad parameter is named in the error (`param`), as OpenAI does.

use aiaas_core::{collect, CoreError, FinishReason, Generation, TokenLogprob};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::{json, Map, Value};

mod audio;
mod files;
mod fine_tuning;
mod replies;
mod request;
mod responses;
pub(crate) mod schema;
mod stream;
mod tools;
mod valid;

use replies::ModelObject;
use stream::stream_response;
use valid::{ValidChat, ValidCompletion, ValidEmbedding};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiJson, Auth};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models))
        // A model id may hold slashes: a catch-all segment, documented as `{id}` through
        // `ApiDoc`'s `paths(..)` (a `routes!` path is also the route, which has no `*`).
        .route("/v1/models/{*id}", get(get_model).delete(delete_model))
        .routes(routes!(chat_completions))
        .routes(routes!(completions))
        .routes(routes!(embeddings))
        .routes(routes!(responses::create_response))
        .routes(routes!(responses::get_response, responses::delete_response))
        .merge(audio::router())
        .merge(files::router())
        .merge(fine_tuning::router())
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

#[utoipa::path(
    get,
    path = "/v1/models",
    operation_id = "openai_list_models",
    tag = "openai",
    summary = "Models (OpenAI format)",
    responses((status = 200, description = "OpenAI model list", body = replies::ModelObjectList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn list_models(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> OResult<Json<replies::ModelObjectList>> {
    let models = s.platform.library().list(&p).await.map_err(oai)?;
    let mut data: Vec<ModelObject> = models
        .iter()
        .map(|m| ModelObject::new(&m.record.name, m.record.created_at, m.record.task))
        .collect();
    // The caller's tenant's fine-tuned models (no other tenant's).
    for m in s.platform.fine_tuning().models(&p).await.map_err(oai)? {
        let mut object = ModelObject::new(&m.name, m.created_at, m.task);
        object.owned_by = p.tenant_id.clone();
        data.push(object);
    }
    Ok(Json(replies::ModelObjectList {
        object: "list",
        data,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    operation_id = "openai_get_model",
    tag = "openai",
    summary = "One model (OpenAI format)",
    params(("id" = String, Path)),
    responses((status = 200, description = "OpenAI model object", body = replies::ModelObject), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn get_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> OResult<Json<ModelObject>> {
    if id.starts_with(aiaas_core::FINE_TUNED_PREFIX) {
        let ft = s.platform.fine_tuning();
        let m = match ft
            .models(&p)
            .await
            .map_err(oai)?
            .into_iter()
            .find(|m| m.name == id)
        {
            Some(m) => m,
            // A job's checkpoint, also callable by name.
            None => ft.checkpoint_model(&p, &id).await.map_err(oai)?,
        };
        let mut object = ModelObject::new(&m.name, m.created_at, m.task);
        object.owned_by = p.tenant_id.clone();
        return Ok(Json(object));
    }
    let m = s.platform.library().get(&p, &id).await.map_err(oai)?;
    Ok(Json(ModelObject::new(
        &m.record.name,
        m.record.created_at,
        m.record.task,
    )))
}

#[utoipa::path(
    delete,
    path = "/v1/models/{id}",
    operation_id = "openai_delete_model",
    tag = "openai",
    summary = "Delete a fine-tuned model (OpenAI format)",
    params(("id" = String, Path)),
    responses((status = 200, description = "deleted", body = replies::DeletedModel), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Deploy.as_str()))),
)]
async fn delete_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> OResult<Json<replies::DeletedModel>> {
    s.platform
        .fine_tuning()
        .delete_model(&p, &id)
        .await
        .map_err(oai)?;
    Ok(Json(replies::DeletedModel {
        id,
        object: "model",
        deleted: true,
    }))
}

// ---------------------------------------------------------------- chat

#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    summary = "Chat completion (OpenAI; SSE when stream)",
    request_body = schema::ChatCompletionBody,
    responses((status = 200, description = "chat.completion; with `stream`, server-sent events each carrying a chat.completion.chunk, then `[DONE]`", content((replies::ChatCompletion = "application/json"), (replies::ChatCompletionChunk = "text/event-stream"))), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
async fn chat_completions(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Value>,
) -> OResult<Response> {
    let valid = ValidChat::from_body(body)?;
    let (logprobs, mode) = (valid.logprobs, valid.mode);
    let mut generation = s
        .platform
        .inference()
        .chat(&p, valid.request)
        .await
        .map_err(oai)?;
    let id = format!("chatcmpl-{}", aiaas_types::new_id());
    if mode.stream {
        generation.wait_for_slots().await.map_err(oai)?;
        return Ok(stream_response(generation, id, mode.include_usage, Kind::Chat).into_response());
    }
    let tools = generation.tools;
    let reply = collect_all(generation).await?;
    let choices = reply
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (message, finish) = replies::AssistantMessage::of(&c.text, tools, c.finish_reason);
            replies::ChatChoice {
                index: i,
                message,
                logprobs: logprobs.then(|| chat_logprobs(&c.logprobs)),
                finish_reason: finish,
            }
        })
        .collect();
    let body = replies::ChatCompletion {
        id,
        object: "chat.completion",
        created: created(),
        model: reply.model.clone(),
        system_fingerprint: fingerprint(),
        choices,
        usage: reply.usage(),
    };
    Ok(Json(body).into_response())
}

// ---------------------------------------------------------------- completions

#[utoipa::path(
    post,
    path = "/v1/completions",
    tag = "openai",
    summary = "Text completion (OpenAI; SSE when stream)",
    request_body = schema::CompletionBody,
    responses((status = 200, description = "text_completion; with `stream`, server-sent events each carrying a text_completion chunk, then `[DONE]`", content((replies::TextCompletion = "application/json"), (replies::TextCompletionChunk = "text/event-stream"))), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
async fn completions(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Value>,
) -> OResult<Response> {
    let valid = ValidCompletion::from_body(body)?;
    let (echo, logprobs, mode) = (valid.echo, valid.logprobs, valid.mode);
    let n = valid.request.options.n;
    let echoed = valid.request.prompts.clone();
    let mut generation = s
        .platform
        .inference()
        .complete(&p, valid.request)
        .await
        .map_err(oai)?;
    let id = format!("cmpl-{}", aiaas_types::new_id());
    if mode.stream {
        generation.wait_for_slots().await.map_err(oai)?;
        return Ok(
            stream_response(generation, id, mode.include_usage, Kind::Completion).into_response(),
        );
    }
    let reply = collect_all(generation).await?;
    let choices = reply
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let prefix = if echo { echoed[i / n].as_str() } else { "" };
            replies::TextChoice {
                index: i,
                text: format!("{prefix}{}", c.text),
                logprobs: logprobs.then(|| completion_logprobs(&c.logprobs, prefix.len())),
                finish_reason: finish_reason(c.finish_reason),
            }
        })
        .collect();
    let body = replies::TextCompletion {
        id,
        object: "text_completion",
        created: created(),
        model: reply.model.clone(),
        system_fingerprint: fingerprint(),
        choices,
        usage: reply.usage(),
    };
    Ok(Json(body).into_response())
}

// ---------------------------------------------------------------- embeddings

#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "openai",
    summary = "Embeddings (OpenAI format)",
    request_body = schema::EmbeddingBody,
    responses((status = 200, description = "OpenAI embedding list", body = replies::EmbeddingList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Infer.as_str()))),
)]
async fn embeddings(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Value>,
) -> OResult<Json<replies::EmbeddingList>> {
    let valid = ValidEmbedding::from_body(body)?;
    let (base64, dimensions) = (valid.base64, valid.dimensions);
    let out = s
        .platform
        .inference()
        .embed(&p, valid.request)
        .await
        .map_err(oai)?;
    if let (Some(d), Some(v)) = (dimensions, out.vectors.first()) {
        if d != v.len() {
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
    let data = out
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| replies::EmbeddingItem {
            object: "embedding",
            index: i,
            // Through `json!`, as before: each f32 written as the f64 it widens to.
            embedding: if base64 {
                Value::String(base64_f32(v))
            } else {
                json!(v)
            },
        })
        .collect();
    Ok(Json(replies::EmbeddingList {
        object: "list",
        data,
        model: out.model,
        usage: replies::EmbeddingUsage {
            prompt_tokens: out.prompt_tokens,
            total_tokens: out.prompt_tokens,
        },
    }))
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
    fn usage(&self) -> replies::UsageBody {
        replies::UsageBody::new(
            self.prompt_tokens,
            self.cached_tokens,
            self.completion_tokens,
        )
    }
}

async fn collect_all(g: Generation) -> OResult<Reply> {
    let prompt_tokens = g.prompt_tokens.iter().sum();
    let choices = collect(g.events).await.map_err(oai)?;
    let cached: Vec<usize> = choices.iter().map(|c| c.cached_tokens).collect();
    Ok(Reply {
        model: g.model,
        prompt_tokens,
        cached_tokens: cached_per_prompt(&cached, g.prompt_tokens.len()),
        completion_tokens: choices.iter().map(|c| c.completion_tokens).sum(),
        choices,
    })
}

fn finish_reason(r: Option<FinishReason>) -> Option<&'static str> {
    replies::finish_reason(r, false)
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
