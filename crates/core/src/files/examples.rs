//! Fine-tuning files: OpenAI's two formats, one JSON object per line.
//!
//! - chat: `{"messages": [{"role": "system" | "user" | "assistant", "content": "...",
//!   "weight": 0 | 1}, ...]}`, `content` a string or a list of text parts, `weight` on
//!   assistant messages only (0: shown to the model but not learnt), `name` allowed;
//!   every example needs an assistant message to learn from, and no assistant message
//!   may be empty;
//! - completions (for base models): `{"prompt": "...", "completion": "..."}`, the
//!   completion not empty.
//!
//! Every line of a file is one format (the first example's). The first bad line is
//! reported by its number (1-based, as editors count) with what is wrong, so a person
//! can fix it; blank lines are skipped. The same parser reads a stored file back for
//! training, so what was accepted at upload is what is trained on.

use std::io::BufRead;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{CoreError, Result};

/// Longest line (one example) accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// What a fine-tuning file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExampleFormat {
    Chat,
    Completions,
}

impl ExampleFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExampleFormat::Chat => "chat",
            ExampleFormat::Completions => "completions",
        }
    }

    pub fn parse(text: &str) -> Option<ExampleFormat> {
        match text {
            "chat" => Some(ExampleFormat::Chat),
            "completions" => Some(ExampleFormat::Completions),
            _ => None,
        }
    }
}

/// A message's author in a training conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of a training conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingMessage {
    pub role: Role,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Assistant messages: whether the model learns this reply (1, the default) or only
    /// reads it (0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
}

impl TrainingMessage {
    /// Whether the loss covers this message's tokens.
    pub fn learnt(&self) -> bool {
        self.role == Role::Assistant && self.weight != Some(0)
    }
}

/// One training example.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Example {
    Chat { messages: Vec<TrainingMessage> },
    Completion { prompt: String, completion: String },
}

impl Example {
    pub fn format(&self) -> ExampleFormat {
        match self {
            Example::Chat { .. } => ExampleFormat::Chat,
            Example::Completion { .. } => ExampleFormat::Completions,
        }
    }

    /// Every text of the example, to be masked in place.
    pub fn texts_mut(&mut self) -> Vec<&mut String> {
        match self {
            Example::Chat { messages } => messages.iter_mut().map(|m| &mut m.content).collect(),
            Example::Completion { prompt, completion } => vec![prompt, completion],
        }
    }
}

/// A file's examples, all of one format.
#[derive(Debug, Clone, PartialEq)]
pub struct Examples {
    pub format: ExampleFormat,
    pub examples: Vec<Example>,
}

impl Examples {
    /// The examples as JSON Lines again (after masking).
    pub fn to_jsonl(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.examples {
            // A derived Serialize of strings and small integers cannot fail.
            if let Ok(line) = serde_json::to_vec(e) {
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
        }
        out
    }
}

/// Read and check every line of a fine-tuning file.
pub fn read_examples(mut reader: impl BufRead) -> Result<Examples> {
    let mut examples: Vec<Example> = Vec::new();
    let mut format = None;
    let mut buf = Vec::new();
    let mut number = 0usize;
    loop {
        buf.clear();
        // At most one byte past the limit is read into memory per line.
        let n = std::io::Read::take(&mut reader, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE_BYTES {
            return Err(bad(
                number + 1,
                format!("is longer than {MAX_LINE_BYTES} bytes (one example per line)"),
            ));
        }
        number += 1;
        let line = std::str::from_utf8(&buf)
            .map_err(|e| bad(number, format!("is not UTF-8 text ({e})")))?
            .trim();
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let example = example(line).map_err(|why| bad(number, why))?;
        match format {
            None => format = Some(example.format()),
            Some(f) if f != example.format() => {
                return Err(bad(
                    number,
                    format!(
                        "is a {} example, but the file's first example is a {} one: use one format per file",
                        example.format().as_str(),
                        f.as_str()
                    ),
                ))
            }
            Some(_) => {}
        }
        examples.push(example);
    }
    let format = format.ok_or_else(|| {
        CoreError::InvalidInput(
            "the file has no examples: one JSON object per line, {\"messages\": [...]} or {\"prompt\": ..., \"completion\": ...}"
                .into(),
        )
    })?;
    Ok(Examples { format, examples })
}

fn bad(line: usize, why: impl std::fmt::Display) -> CoreError {
    CoreError::InvalidInput(format!("line {line} {why}"))
}

/// One line's example, or what is wrong with it (phrased to follow "line N ").
fn example(line: &str) -> std::result::Result<Example, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("is not valid JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("is not a JSON object: each line is one example, {\"messages\": [...]}".into());
    };
    if object.contains_key("messages") {
        let messages = object.remove("messages");
        refuse_other_keys(&object, "a chat example has only \"messages\"")?;
        return chat(messages.unwrap_or(Value::Null));
    }
    if object.contains_key("prompt") || object.contains_key("completion") {
        let prompt = text_field(&mut object, "prompt")?;
        let completion = text_field(&mut object, "completion")?;
        refuse_other_keys(
            &object,
            "a completions example has only \"prompt\" and \"completion\"",
        )?;
        if completion.trim().is_empty() {
            return Err("has an empty \"completion\": there is nothing to learn".into());
        }
        return Ok(Example::Completion { prompt, completion });
    }
    Err("has neither \"messages\" (a chat example) nor \"prompt\" and \"completion\"".into())
}

fn refuse_other_keys(object: &Map<String, Value>, what: &str) -> std::result::Result<(), String> {
    match object.keys().next() {
        Some(key) => Err(format!("has an unknown field {key:?} ({what})")),
        None => Ok(()),
    }
}

fn text_field(object: &mut Map<String, Value>, key: &str) -> std::result::Result<String, String> {
    match object.remove(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("has a \"{key}\" that is not a string")),
        None => Err(format!("has no \"{key}\"")),
    }
}

fn chat(messages: Value) -> std::result::Result<Example, String> {
    let Value::Array(items) = messages else {
        return Err("has \"messages\" that is not a list".into());
    };
    if items.is_empty() {
        return Err("has no messages".into());
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = i + 1;
        let Value::Object(mut m) = item else {
            return Err(format!("message {at} is not a JSON object"));
        };
        let role = match m.remove("role") {
            Some(Value::String(r)) => match r.as_str() {
                "system" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(format!(
                        "message {at} has the role {other:?}; use system, user or assistant"
                    ))
                }
            },
            Some(_) => return Err(format!("message {at} has a role that is not a string")),
            None => return Err(format!("message {at} has no role")),
        };
        let content = match m.remove("content") {
            Some(Value::String(s)) => s,
            Some(Value::Array(parts)) => {
                text_parts(parts).map_err(|why| format!("message {at} {why}"))?
            }
            Some(Value::Null) | None => {
                let why = if m.contains_key("tool_calls") {
                    "has tool calls, which are not trained on here"
                } else {
                    "has no content"
                };
                return Err(format!("message {at} ({}) {why}", role_name(role)));
            }
            Some(_) => {
                return Err(format!(
                    "message {at} has content that is neither text nor a list of text parts"
                ))
            }
        };
        let name = match m.remove("name") {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => None,
            Some(_) => return Err(format!("message {at} has a name that is not a string")),
        };
        let weight = match m.remove("weight") {
            None | Some(Value::Null) => None,
            Some(_) if role != Role::Assistant => {
                return Err(format!(
                    "message {at} ({}) has a weight; only assistant messages are weighted",
                    role_name(role)
                ));
            }
            Some(w) => match w.as_u64() {
                Some(0) => Some(0),
                Some(1) => Some(1),
                _ => return Err(format!("message {at} has the weight {w}; use 0 or 1")),
            },
        };
        if let Some(key) = m.keys().next() {
            return Err(format!(
                "message {at} has an unknown field {key:?} (a message has role, content, name and weight)"
            ));
        }
        if role == Role::Assistant && content.trim().is_empty() {
            return Err(format!("message {at} (assistant) is empty"));
        }
        out.push(TrainingMessage {
            role,
            content,
            name,
            weight,
        });
    }
    if !out.iter().any(TrainingMessage::learnt) {
        return Err(
            "has no assistant message to learn from (every example needs one with weight 1)".into(),
        );
    }
    Ok(Example::Chat { messages: out })
}

/// `[{"type": "text", "text": "..."}, ...]` joined.
fn text_parts(parts: Vec<Value>) -> std::result::Result<String, String> {
    let mut text = String::new();
    for part in parts {
        match (
            part.get("type").and_then(Value::as_str),
            part.get("text").and_then(Value::as_str),
        ) {
            (Some("text"), Some(t)) => text.push_str(t),
            (Some(kind), _) if kind != "text" => {
                return Err(format!("has a {kind:?} part; only text is trained on here"))
            }
            _ => {
                return Err(
                    "has a content part that is not {\"type\": \"text\", \"text\": ...}".into(),
                )
            }
        }
    }
    Ok(text)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Examples> {
        read_examples(text.as_bytes())
    }

    fn error(text: &str) -> String {
        match read(text) {
            Err(CoreError::InvalidInput(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn chat_and_completion_files_read_back_as_they_were_written() {
        let chat = concat!(
            r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!", "weight": 1}]}"#,
            "\n\n",
            r#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}, {"role": "assistant", "content": "Draft", "weight": 0}, {"role": "assistant", "content": "Final"}]}"#,
            "\n"
        );
        let got = read(chat).unwrap();
        assert_eq!(got.format, ExampleFormat::Chat);
        assert_eq!(got.examples.len(), 2);
        let Example::Chat { messages } = &got.examples[1] else {
            panic!()
        };
        assert_eq!(messages[0].content, "Hi there");
        assert!(!messages[1].learnt() && messages[2].learnt() && !messages[0].learnt());
        // Written back and read again: the same examples.
        assert_eq!(read_examples(&got.to_jsonl()[..]).unwrap(), got);
        let completions = "{\"prompt\": \"2+2=\", \"completion\": \"4\"}\n{\"prompt\": \"\", \"completion\": \"x\"}";
        let got = read(completions).unwrap();
        assert_eq!(got.format, ExampleFormat::Completions);
        assert_eq!(read_examples(&got.to_jsonl()[..]).unwrap(), got);
    }

    #[test]
    fn each_bad_line_is_named_with_what_is_wrong() {
        let ok = r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#;
        let cases = [
            ("{not json", "line 2 is not valid JSON"),
            ("[1, 2]", "line 2 is not a JSON object"),
            (r#"{"messages": []}"#, "line 2 has no messages"),
            (
                r#"{"messages": [{"role": "tool", "content": "x"}]}"#,
                "line 2 message 1 has the role \"tool\"",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "  "}]}"#,
                "line 2 message 2 (assistant) is empty",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "x"}]}"#,
                "line 2 has no assistant message to learn from",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "x", "weight": 1}, {"role": "assistant", "content": "y"}]}"#,
                "only assistant messages are weighted",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 2}]}"#,
                "use 0 or 1",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "extra": 1}"#,
                "unknown field \"extra\"",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": []}]}"#,
                "tool calls",
            ),
            (
                r#"{"prompt": "a", "completion": "b"}"#,
                "line 2 is a completions example, but the file's first example is a chat one",
            ),
            (r#"{"text": "a"}"#, "line 2 has neither"),
        ];
        for (line, want) in cases {
            let m = error(&format!("{ok}\n{line}\n"));
            assert!(m.contains(want), "{line}: {m}");
        }
        assert!(error("").contains("no examples"));
        assert!(error("\n \n").contains("no examples"));
        let long = format!(
            "{ok}\n{{\"prompt\": \"{}\", \"completion\": \"b\"}}\n",
            "a".repeat(MAX_LINE_BYTES)
        );
        assert!(
            error(&long).contains("line 2 is longer than"),
            "{}",
            error(&long)
        );
        assert!(error("{\"prompt\": \"a\", \"completion\": \"\"}")
            .contains("line 1 has an empty \"completion\""));
        let mut not_utf8 = format!("{ok}\n").into_bytes();
        not_utf8.extend_from_slice(b"{\"prompt\": \"\xff\", \"completion\": \"b\"}\n");
        match read_examples(&not_utf8[..]) {
            Err(CoreError::InvalidInput(m)) => assert!(m.starts_with("line 2 is not UTF-8"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
