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

/// `strftime_now(format)`: templates that print today's date (Llama 3's). Only the
/// formats those templates use are supported; the date is UTC.
fn strftime_now(format: String) -> Result<Value, Error> {
    let (y, m, d) = aiaas_types::utc_date(aiaas_types::now_ms());
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let month_name = MONTHS[(m - 1) as usize];
    let out = format
        .replace("%Y", &y.to_string())
        .replace("%m", &format!("{m:02}"))
        .replace("%d", &format!("{d:02}"))
        .replace("%B", month_name)
        .replace("%b", &month_name[..3]);
    Ok(Value::from(out))
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
        assert_eq!(aiaas_types::utc_date(0), (1970, 1, 1));
        assert_eq!(aiaas_types::utc_date(20_000 * 86_400_000), (2024, 10, 4));
        let s = strftime_now("%d %b %Y".into()).unwrap().to_string();
        assert_eq!(s.len(), 11, "{s}");
    }
}
