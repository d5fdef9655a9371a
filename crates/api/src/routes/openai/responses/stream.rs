//! A streamed response: OpenAI's typed server-sent events, each an `event:` line naming
//! its `type` and a JSON `data:` with a `sequence_number`. Text streams as
//! `response.output_text.delta`s while it is generated; with tools the reply is held
//! until it ends, then sent as its items (text, then each call with its arguments). The
//! last event is `response.completed` (or `response.incomplete`); the response is
//! stored before it is sent. Dropping the body (the client left) cancels generation.

use std::collections::VecDeque;
use std::convert::Infallible;

use aiaas_core::{FinishReason, GenEvent, Generation};
use aiaas_types::Principal;
use axum::response::sse::{Event, Sse};
use futures_util::{Stream, StreamExt};
use serde_json::{json, Map, Value};

use super::reply::{OutputItem, OutputText, ResponseUsage, StreamEvent};
use super::{item_id, output_items, Draft};
use crate::AppState;

pub(super) fn events(
    s: AppState,
    p: Principal,
    draft: Draft,
    g: Generation,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut state = Events {
        s,
        p,
        prompt_tokens: g.prompt_tokens.iter().sum(),
        tools: g.tools,
        message_id: item_id("msg"),
        text: String::new(),
        opened: false,
        sequence: 0,
        out: VecDeque::new(),
        finished: false,
        draft,
    };
    let created = state.draft.response(Vec::new(), None);
    state.send("response.created", json!({"response": created}));
    state.send("response.in_progress", json!({"response": created}));
    let stream =
        futures_util::stream::unfold((g.events, state), |(mut events, mut st)| async move {
            loop {
                if let Some(event) = st.out.pop_front() {
                    return Some((Ok(event), (events, st)));
                }
                if st.finished {
                    return None;
                }
                match events.next().await {
                    Some((_, GenEvent::Text { text, .. })) => st.on_text(text),
                    Some((_, GenEvent::Done { reason, usage })) => {
                        let usage = ResponseUsage::new(
                            st.prompt_tokens,
                            usage.cached_tokens,
                            usage.completion_tokens,
                        );
                        // One choice: nothing follows its `Done`.
                        st.finish(reason, usage).await;
                    }
                    Some((_, GenEvent::Error(e))) => st.fail(e.into()),
                    // Kept inside the generation's events; nothing to stream.
                    Some((_, GenEvent::Started)) => {}
                    None => st.fail(aiaas_core::CoreError::Internal(
                        "generation ended early".into(),
                    )),
                }
            }
        });
    Sse::new(stream)
}

struct Events {
    s: AppState,
    p: Principal,
    draft: Draft,
    prompt_tokens: usize,
    tools: Option<aiaas_core::ToolSyntax>,
    /// The id of the message item text streams into.
    message_id: String,
    /// The reply so far.
    text: String,
    /// Whether the message item has been announced.
    opened: bool,
    sequence: u64,
    out: VecDeque<Event>,
    finished: bool,
}

impl Events {
    fn send(&mut self, kind: &'static str, fields: Value) {
        let fields: Map<String, Value> = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let event = StreamEvent {
            kind,
            sequence_number: self.sequence,
            fields,
        };
        self.sequence += 1;
        let data = serde_json::to_string(&event).unwrap_or_default();
        self.out.push_back(Event::default().event(kind).data(data));
    }

    fn message(&self, status: &str, text: &str) -> OutputItem {
        OutputItem::Message {
            id: self.message_id.clone(),
            status: status.into(),
            role: "assistant".into(),
            content: if status == "in_progress" {
                Vec::new()
            } else {
                vec![OutputText::new(text.to_string())]
            },
        }
    }

    /// Announce the message item and its text part.
    fn open_message(&mut self, output_index: usize) {
        let item = self.message("in_progress", "");
        self.send(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
        let id = self.message_id.clone();
        self.send(
            "response.content_part.added",
            json!({"item_id": id, "output_index": output_index, "content_index": 0,
                "part": OutputText::new(String::new())}),
        );
        self.opened = true;
    }

    fn on_text(&mut self, text: String) {
        self.text.push_str(&text);
        if self.tools.is_some() || text.is_empty() {
            return; // with tools, the reply is parsed when it ends
        }
        if !self.opened {
            self.open_message(0);
        }
        let id = self.message_id.clone();
        self.send(
            "response.output_text.delta",
            json!({"item_id": id, "output_index": 0, "content_index": 0, "delta": text}),
        );
    }

    /// Close the message item with its whole text.
    fn close_message(&mut self, output_index: usize, text: &str) {
        let id = self.message_id.clone();
        self.send(
            "response.output_text.done",
            json!({"item_id": id, "output_index": output_index, "content_index": 0, "text": text}),
        );
        self.send(
            "response.content_part.done",
            json!({"item_id": id, "output_index": output_index, "content_index": 0,
                "part": OutputText::new(text.to_string())}),
        );
        let item = self.message("completed", text);
        self.send(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
    }

    async fn finish(&mut self, reason: FinishReason, usage: ResponseUsage) {
        let output = output_items(&self.text, self.tools, self.message_id.clone());
        for (index, item) in output.iter().enumerate() {
            match item {
                OutputItem::Message { content, .. } => {
                    // Text streamed already, or (with tools) sent now in one delta.
                    let text: String = content.iter().map(|c| c.text.as_str()).collect();
                    if !self.opened {
                        self.open_message(index);
                        if !text.is_empty() {
                            let mid = self.message_id.clone();
                            self.send(
                                "response.output_text.delta",
                                json!({"item_id": mid, "output_index": index,
                                    "content_index": 0, "delta": text}),
                            );
                        }
                    }
                    self.close_message(index, &text);
                }
                OutputItem::FunctionCall { .. } => self.send_call(index, item.clone()),
            }
        }
        let cut = reason == FinishReason::Length;
        let response = self.draft.response(output, Some((usage, cut)));
        if let Err(e) = self.draft.keep(&self.s, &self.p, &response).await {
            self.fail(e.error);
            return;
        }
        let kind = if cut {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.send(kind, json!({"response": response}));
        self.finished = true;
    }

    fn send_call(&mut self, index: usize, item: OutputItem) {
        let OutputItem::FunctionCall {
            id,
            call_id,
            name,
            arguments,
            ..
        } = &item
        else {
            return;
        };
        let (id, arguments) = (id.clone(), arguments.clone());
        let opening = OutputItem::FunctionCall {
            id: id.clone(),
            call_id: call_id.clone(),
            name: name.clone(),
            arguments: String::new(),
            status: "in_progress".into(),
        };
        self.send(
            "response.output_item.added",
            json!({"output_index": index, "item": opening}),
        );
        self.send(
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": arguments}),
        );
        self.send(
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": index, "arguments": arguments}),
        );
        self.send(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
    }

    /// An error ends the stream with an `error` event (a fixed message for a 5xx).
    fn fail(&mut self, e: aiaas_core::CoreError) {
        let err = crate::error::ApiError::openai(e);
        let (status, code) = crate::error::status_of(&err.error);
        let message = if status.is_server_error() {
            "internal error".to_string()
        } else {
            err.error.to_string()
        };
        self.send(
            "error",
            json!({"code": code, "message": message, "param": null}),
        );
        self.finished = true;
    }
}
