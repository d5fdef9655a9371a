//! Streamed replies: the generation's one event stream turned into OpenAI SSE chunks
//! by a small state machine (`Chunks`) driven with `stream::unfold`. Dropping the SSE
//! body (the client went away) drops the event stream, which cancels the sequences.

use std::collections::VecDeque;
use std::convert::Infallible;

use aiaas_core::{GenEvent, Generation};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use super::replies::{
    AssistantMessage, ChatChunkChoice, ChatCompletionChunk, ChatDelta, FunctionDelta, TextChoice,
    TextCompletionChunk, ToolCallDelta, UsageBody,
};
use super::{
    cached_per_prompt, chat_logprobs, completion_logprobs, created, fingerprint, finish_reason,
    Kind,
};
use crate::error::ApiError;

/// The SSE reply of a streamed chat or text completion.
pub(super) fn stream_response(
    g: Generation,
    id: String,
    include_usage: bool,
    kind: Kind,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let total = g.events.choices();
    let mut chunks = Chunks {
        tools: g.tools,
        held: vec![String::new(); total],
        envelope: Envelope {
            id,
            created: created(),
            model: g.model,
            system_fingerprint: fingerprint(),
        },
        kind,
        include_usage,
        prompt_tokens: g.prompt_tokens.iter().sum(),
        prompts: g.prompt_tokens.len(),
        ended: 0,
        completion_tokens: 0,
        cached: vec![0; total],
        out: VecDeque::new(),
        finished: false,
    };
    if kind == Kind::Chat {
        for i in 0..total {
            let delta = ChatDelta {
                role: Some("assistant"),
                content: Some(String::new()),
                tool_calls: None,
            };
            chunks.push(Piece::chat(i, delta, None, None));
        }
    }
    let stream =
        futures_util::stream::unfold((g.events, chunks), |(mut events, mut c)| async move {
            loop {
                if let Some(event) = c.out.pop_front() {
                    return Some((Ok(event), (events, c)));
                }
                if c.finished {
                    return None;
                }
                match events.next().await {
                    Some((i, event)) => c.on_event(i, event),
                    None => c.end(),
                }
            }
        });
    Sse::new(stream)
}

/// What every chunk of one reply repeats.
struct Envelope {
    id: String,
    created: i64,
    model: String,
    system_fingerprint: String,
}

/// One choice's part of a chunk.
enum Piece {
    Chat(ChatChunkChoice),
    Text(TextChoice),
}

impl Piece {
    fn chat(
        index: usize,
        delta: ChatDelta,
        logprobs: Option<Value>,
        finish_reason: Option<&'static str>,
    ) -> Piece {
        Piece::Chat(ChatChunkChoice {
            index,
            delta,
            logprobs,
            finish_reason,
        })
    }

    fn text(
        index: usize,
        text: String,
        logprobs: Option<Value>,
        finish_reason: Option<&'static str>,
    ) -> Piece {
        Piece::Text(TextChoice {
            index,
            text,
            logprobs,
            finish_reason,
        })
    }
}

/// What the stream has sent so far, and the chunks waiting to go.
struct Chunks {
    /// With tools, each choice's text is held until it ends, then sent as its calls (or
    /// its text) once parsed.
    tools: Option<aiaas_core::ToolSyntax>,
    held: Vec<String>,
    envelope: Envelope,
    kind: Kind,
    include_usage: bool,
    prompt_tokens: usize,
    prompts: usize,
    ended: usize,
    completion_tokens: usize,
    cached: Vec<usize>,
    out: VecDeque<Event>,
    finished: bool,
}

impl Chunks {
    fn push(&mut self, piece: Piece) {
        self.send(Some(piece), None);
    }

    /// One chunk: a choice's piece, or none (the usage chunk).
    fn send(&mut self, piece: Option<Piece>, usage: Option<UsageBody>) {
        let e = &self.envelope;
        let usage = self.include_usage.then_some(usage);
        let body = match (self.kind, piece) {
            (Kind::Chat, piece) => serde_json::to_string(&ChatCompletionChunk {
                id: e.id.clone(),
                object: "chat.completion.chunk",
                created: e.created,
                model: e.model.clone(),
                system_fingerprint: e.system_fingerprint.clone(),
                choices: match piece {
                    Some(Piece::Chat(c)) => vec![c],
                    _ => Vec::new(),
                },
                usage,
            }),
            (Kind::Completion, piece) => serde_json::to_string(&TextCompletionChunk {
                id: e.id.clone(),
                object: "text_completion",
                created: e.created,
                model: e.model.clone(),
                system_fingerprint: e.system_fingerprint.clone(),
                choices: match piece {
                    Some(Piece::Text(c)) => vec![c],
                    _ => Vec::new(),
                },
                usage,
            }),
        };
        // Serialising these structs cannot fail (strings, numbers and JSON values only).
        let body = body.unwrap_or_default();
        self.out.push_back(Event::default().data(body));
    }

    fn on_event(&mut self, i: usize, event: GenEvent) {
        let logprobs = |l: &[aiaas_core::TokenLogprob], kind: Kind| match (l.is_empty(), kind) {
            (true, _) => None,
            (false, Kind::Chat) => Some(chat_logprobs(l)),
            (false, Kind::Completion) => Some(completion_logprobs(l, 0)),
        };
        let piece = match event {
            GenEvent::Text { text, .. } if self.tools.is_some() => {
                if let Some(held) = self.held.get_mut(i) {
                    held.push_str(&text);
                }
                return;
            }
            GenEvent::Done { reason, usage: u } if self.tools.is_some() => {
                self.count_done(i, u.completion_tokens, u.cached_tokens);
                self.send_tool_reply(i, reason);
                if self.ended == self.cached.len() {
                    self.end();
                }
                return;
            }
            GenEvent::Text { text, logprobs: l } => match self.kind {
                Kind::Chat => {
                    let delta = ChatDelta {
                        content: Some(text),
                        ..ChatDelta::default()
                    };
                    Piece::chat(i, delta, logprobs(&l, Kind::Chat), None)
                }
                Kind::Completion => Piece::text(i, text, logprobs(&l, Kind::Completion), None),
            },
            GenEvent::Done { reason, usage: u } => {
                self.count_done(i, u.completion_tokens, u.cached_tokens);
                let reason = finish_reason(Some(reason));
                match self.kind {
                    Kind::Chat => Piece::chat(i, ChatDelta::default(), None, reason),
                    Kind::Completion => Piece::text(i, String::new(), None, reason),
                }
            }
            GenEvent::Error(e) => {
                self.error(e.into());
                return;
            }
            // Kept inside the generation's events; nothing to stream.
            GenEvent::Started => return,
        };
        self.push(piece);
        if self.ended == self.cached.len() {
            self.end();
        }
    }

    /// A choice ended after `completion` tokens, `cached` of its prompt reused.
    fn count_done(&mut self, i: usize, completion: usize, cached: usize) {
        self.ended += 1;
        self.completion_tokens += completion;
        if let Some(c) = self.cached.get_mut(i) {
            *c = cached;
        }
    }

    /// A finished choice of a tool conversation: its text, if any, then each call as
    /// OpenAI streams them (id, type and name first, then the arguments), then the
    /// finish reason.
    fn send_tool_reply(&mut self, i: usize, reason: aiaas_core::FinishReason) {
        let text = self.held.get_mut(i).map(std::mem::take).unwrap_or_default();
        let (message, finish) = AssistantMessage::of(&text, self.tools, Some(reason));
        if let Some(content) = message.content.filter(|c| !c.is_empty()) {
            let delta = ChatDelta {
                content: Some(content),
                ..ChatDelta::default()
            };
            self.push(Piece::chat(i, delta, None, None));
        }
        for (index, call) in message.tool_calls.into_iter().flatten().enumerate() {
            let opening = ToolCallDelta {
                index,
                id: Some(call.id),
                kind: Some("function"),
                function: FunctionDelta {
                    name: Some(call.function.name),
                    arguments: String::new(),
                },
            };
            let arguments = ToolCallDelta {
                index,
                id: None,
                kind: None,
                function: FunctionDelta {
                    name: None,
                    arguments: call.function.arguments,
                },
            };
            for part in [opening, arguments] {
                let delta = ChatDelta {
                    tool_calls: Some(vec![part]),
                    ..ChatDelta::default()
                };
                self.push(Piece::chat(i, delta, None, None));
            }
        }
        self.push(Piece::chat(i, ChatDelta::default(), None, finish));
    }

    /// An error ends the stream: one error object (a fixed message for a 5xx), then
    /// `[DONE]`.
    fn error(&mut self, e: aiaas_core::CoreError) {
        let err = ApiError::openai(e);
        let (status, code) = crate::error::status_of(&err.error);
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".to_string()
        } else {
            err.error.to_string()
        };
        let body = json!({"error": {"message": message, "type": "server_error",
            "param": null, "code": code}});
        self.out.push_back(Event::default().data(body.to_string()));
        self.out.push_back(Event::default().data("[DONE]"));
        self.finished = true;
    }

    /// Every choice ended (or the stream did): the usage chunk when asked for and all
    /// ended, then `[DONE]`.
    fn end(&mut self) {
        if self.finished {
            return;
        }
        if self.include_usage && self.ended == self.cached.len() {
            let u = UsageBody::new(
                self.prompt_tokens,
                cached_per_prompt(&self.cached, self.prompts),
                self.completion_tokens,
            );
            self.send(None, Some(u));
        }
        self.out.push_back(Event::default().data("[DONE]"));
        self.finished = true;
    }
}
