//! Chat templates: the Jinja template a model ships in its GGUF metadata
//! (`tokenizer.chat_template`), rendered with minijinja the way Hugging Face's
//! `apply_chat_template` does, so each model sees exactly the prompt it was trained on
//! (llama.cpp's built-in template matching drops SmolLM2's default system message).

use minijinja::{context, Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::LlmError;

/// One turn of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// The text (empty for an assistant turn that only called tools).
    pub content: String,
    /// The tools an assistant turn called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` turn: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
            ..ChatMessage::default()
        }
    }
}

/// A call of a function tool: its id, the function's name and its arguments as JSON
/// text (as OpenAI's API carries them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What a chat template does with tools, found by rendering probes once at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TemplateCaps {
    /// It renders the `tools` it is given (a tool-trained model's template).
    pub tools: bool,
    /// It writes calls as `<tool_call>{"name": ..., "arguments": ...}</tool_call>`
    /// (Hermes, Qwen 2.5 and 3, SmolLM3, ...).
    pub hermes_calls: bool,
    /// It accepts a system turn.
    pub system: bool,
}

/// A compiled chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
    caps: TemplateCaps,
}

const PROBE: &str = "aiaas_probe_7c1e";

impl ChatTemplate {
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<ChatTemplate, LlmError> {
        let mut env = Environment::new();
        // Hugging Face renders with Python's Jinja: templates call str methods
        // (`.strip()`, `.startswith()`) and keep whitespace as written.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| LlmError::Template(e.to_string()))?;
        let mut t = ChatTemplate {
            env,
            bos: bos.to_string(),
            eos: eos.to_string(),
            caps: TemplateCaps::default(),
        };
        t.caps = t.probe(source);
        Ok(t)
    }

    pub fn caps(&self) -> TemplateCaps {
        self.caps
    }

    /// Render probes: does the template show tools it is given, and accept a system turn?
    fn probe(&self, source: &str) -> TemplateCaps {
        let user = [ChatMessage::new("user", "hi")];
        let tool = serde_json::json!([{"type": "function", "function": {
            "name": PROBE, "description": "probe",
            "parameters": {"type": "object", "properties": {}}}}]);
        let tools = self
            .render_with(&user, Some(&tool))
            .is_ok_and(|out| out.contains(PROBE));
        let system = [
            ChatMessage::new("system", PROBE),
            ChatMessage::new("user", "hi"),
        ];
        TemplateCaps {
            tools,
            hermes_calls: tools && source.contains("<tool_call>"),
            system: self.render(&system).is_ok_and(|out| out.contains(PROBE)),
        }
    }

    /// The prompt for `messages`, ending with the opening of the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        self.render_with(messages, None)
    }

    /// As `render`, with OpenAI-shaped `tools` given to the template as `tools` (what
    /// Hugging Face's `apply_chat_template(tools=...)` does).
    pub fn render_with(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
    ) -> Result<String, LlmError> {
        self.render_turns(messages, tools, true)
    }

    /// The conversation as the template writes it, with or without the opening of a
    /// next assistant turn (without: a finished conversation, as training reads it).
    pub fn render_turns(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String, LlmError> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| LlmError::Template(e.to_string()))?;
        let messages: Vec<serde_json::Value> = messages.iter().map(template_message).collect();
        template
            .render(context! {
                messages => messages,
                tools => tools.map(Value::from_serialize),
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos,
                eos_token => self.eos,
            })
            .map_err(|e| match e.kind() {
                // The template refused the conversation (e.g. roles not alternating):
                // the caller's request is what must change.
                ErrorKind::InvalidOperation => LlmError::InvalidRequest(format!(
                    "the model's chat template rejected these messages: {}",
                    e.detail().unwrap_or("no reason given")
                )),
                _ => LlmError::Template(e.to_string()),
            })
    }
}

/// A message as Hugging Face templates read it: tool calls in OpenAI's shape, with the
/// arguments as an object when they parse (templates print them with `tojson`).
fn template_message(m: &ChatMessage) -> serde_json::Value {
    let mut v = serde_json::json!({"role": m.role, "content": m.content});
    if !m.tool_calls.is_empty() {
        let calls: Vec<serde_json::Value> = m
            .tool_calls
            .iter()
            .map(|c| {
                let arguments = serde_json::from_str::<serde_json::Value>(&c.arguments)
                    .unwrap_or_else(|_| serde_json::Value::String(c.arguments.clone()));
                serde_json::json!({"id": c.id, "type": "function",
                    "function": {"name": c.name, "arguments": arguments}})
            })
            .collect();
        v["tool_calls"] = serde_json::Value::Array(calls);
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = serde_json::Value::String(id.clone());
    }
    v
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`: templates that print today's date (Llama 3's, Granite's), in
/// UTC, with the whole `strftime` format set; an unknown directive fails the render.
fn strftime_now(format: String) -> Result<Value, Error> {
    aiaas_types::format_utc(aiaas_types::now_ms(), &format)
        .map(Value::from)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage::new(role, content)
    }

    #[test]
    fn chatml_keeps_the_default_system_message() {
        let t = ChatTemplate::new(CHATML, "<|im_start|>", "<|im_end|>").unwrap();
        let out = t.render(&[msg("user", "Hi")]).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t
            .render(&[msg("system", "Be brief."), msg("user", "Hi")])
            .unwrap();
        assert!(out.starts_with("<|im_start|>system\nBe brief.<|im_end|>"));
        assert!(!out.contains("You are helpful."));
    }

    #[test]
    fn python_string_methods_and_exceptions() {
        let src = "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tools') }}{% endif %}{{ m['content'].strip() }}|{% endfor %}";
        let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        assert_eq!(t.render(&[msg("user", "  a  ")]).unwrap(), "<s>a|");
        let err = t.render(&[msg("tool", "x")]).unwrap_err();
        assert!(
            matches!(err, LlmError::InvalidRequest(ref m) if m.contains("no tools")),
            "{err}"
        );
    }

    #[test]
    fn dates_for_templates() {
        let s = strftime_now("%d %b %Y".into()).unwrap().to_string();
        assert_eq!(s.len(), 11, "{s}");
        // Formats templates use beyond the date: none comes out literally.
        for format in ["%A", "%H:%M", "%-d", "%B %-d, %Y"] {
            let s = strftime_now(format.into()).unwrap().to_string();
            assert!(!s.contains('%') && !s.is_empty(), "{format}: {s}");
        }
        let t = ChatTemplate::new(
            "{{ strftime_now('%A %-d %B') }}|{% for m in messages %}{{ m.content }}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        let out = t.render(&[msg("user", "hi")]).unwrap();
        let days = [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ];
        assert!(days.iter().any(|d| out.starts_with(d)), "{out}");
        assert!(!out.contains('%') && out.ends_with("|hi"), "{out}");
        let bad = ChatTemplate::new("{{ strftime_now('%K') }}", "", "").unwrap();
        assert!(
            bad.render(&[msg("user", "hi")]).is_err(),
            "an unknown directive fails"
        );
    }
}
