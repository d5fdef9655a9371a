//! Chat templates: the Jinja template a model ships in its GGUF metadata
//! (`tokenizer.chat_template`), rendered with minijinja the way Hugging Face's
//! `apply_chat_template` does, so each model sees exactly the prompt it was trained on
//! (llama.cpp's built-in template matching drops SmolLM2's default system message).

use minijinja::{context, Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::LlmError;

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A compiled chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

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
        Ok(ChatTemplate {
            env,
            bos: bos.to_string(),
            eos: eos.to_string(),
        })
    }

    /// The prompt for `messages`, ending with the opening of the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| LlmError::Template(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
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
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
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
