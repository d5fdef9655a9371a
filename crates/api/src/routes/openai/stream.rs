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

use super::{
    cached_per_prompt, chat_logprobs, completion_logprobs, created, fingerprint, finish, usage,
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
    let object = match kind {
        Kind::Chat => "chat.completion.chunk",
        Kind::Completion => "text_completion",
    };
    let mut chunks = Chunks {
        envelope: json!({
            "id": id, "object": object, "created": created(), "model": g.model,
            "system_fingerprint": fingerprint(), "choices": [],
        }),
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
            chunks.push(
                json!([{"index": i, "delta": {"role": "assistant", "content": ""},
                "logprobs": null, "finish_reason": null}]),
            );
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

/// What the stream has sent so far, and the chunks waiting to go.
struct Chunks {
    /// `id`, `object`, `created`, `model`, `system_fingerprint`: the same on every chunk.
    envelope: Value,
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
    fn push(&mut self, choices: Value) {
        self.push_with_usage(choices, None);
    }

    fn push_with_usage(&mut self, choices: Value, usage_v: Option<Value>) {
        let mut v = self.envelope.clone();
        v["choices"] = choices;
        if self.include_usage {
            v["usage"] = usage_v.unwrap_or(Value::Null);
        }
        self.out.push_back(Event::default().data(v.to_string()));
    }

    fn on_event(&mut self, i: usize, event: GenEvent) {
        let logprobs = |l: &[aiaas_core::TokenLogprob], kind: Kind| match (l.is_empty(), kind) {
            (true, _) => Value::Null,
            (false, Kind::Chat) => chat_logprobs(l),
            (false, Kind::Completion) => completion_logprobs(l, 0),
        };
        let piece = match event {
            GenEvent::Text { text, logprobs: l } => match self.kind {
                Kind::Chat => json!([{"index": i, "delta": {"content": text},
                    "logprobs": logprobs(&l, Kind::Chat), "finish_reason": null}]),
                Kind::Completion => json!([{"index": i, "text": text,
                    "logprobs": logprobs(&l, Kind::Completion), "finish_reason": null}]),
            },
            GenEvent::Done { reason, usage: u } => {
                self.ended += 1;
                self.completion_tokens += u.completion_tokens;
                if let Some(c) = self.cached.get_mut(i) {
                    *c = u.cached_tokens;
                }
                match self.kind {
                    Kind::Chat => json!([{"index": i, "delta": {}, "logprobs": null,
                        "finish_reason": finish(Some(reason))}]),
                    Kind::Completion => json!([{"index": i, "text": "", "logprobs": null,
                        "finish_reason": finish(Some(reason))}]),
                }
            }
            GenEvent::Error(e) => {
                self.error(e.into());
                return;
            }
        };
        self.push(piece);
        if self.ended == self.cached.len() {
            self.end();
        }
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
            let u = usage(
                self.prompt_tokens,
                cached_per_prompt(&self.cached, self.prompts),
                self.completion_tokens,
            );
            self.push_with_usage(json!([]), Some(u));
        }
        self.out.push_back(Event::default().data("[DONE]"));
        self.finished = true;
    }
}
