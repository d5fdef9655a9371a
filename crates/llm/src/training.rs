//! Training examples as the model reads them: a conversation rendered with the model's
//! own chat template (the code serving renders prompts with, so training and serving
//! see identical text), tokenised, and each token marked taught or not. A reply is
//! taught from the first token after its turn's opening (what serving's prompt ends
//! with) to the end of its turn as the template closes it (the end-of-turn token
//! included, so the model learns to stop).

use crate::{ChatMessage, LlmError, LlmModel};

impl LlmModel {
    /// A conversation's tokens and, per token, whether the loss covers it: the replies
    /// of the messages whose `learn` is true (assistant messages only).
    pub fn chat_example_tokens(
        &self,
        messages: &[ChatMessage],
        learn: &[bool],
    ) -> Result<(Vec<i32>, Vec<bool>), LlmError> {
        let template = self.template.as_ref().ok_or_else(|| {
            LlmError::InvalidRequest(
                "this model has no chat template: train it on prompt/completion examples".into(),
            )
        })?;
        if learn.len() != messages.len() {
            return Err(LlmError::InvalidRequest(
                "one learn flag per message".into(),
            ));
        }
        let whole = template.render_turns(messages, None, false)?;
        // Where each taught reply starts and ends in the whole text.
        let mut cuts: Vec<(usize, usize)> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if !learn[i] {
                continue;
            }
            if m.role != "assistant" {
                return Err(LlmError::InvalidRequest(format!(
                    "message {} is a {} message; only assistant replies are taught",
                    i + 1,
                    m.role
                )));
            }
            let start = template.render_turns(&messages[..i], None, true)?;
            let end = template.render_turns(&messages[..=i], None, false)?;
            if !whole.starts_with(&start) || !whole.starts_with(&end) || end.len() <= start.len() {
                return Err(LlmError::Template(
                    "the chat template does not render a conversation as the sum of its turns, so replies cannot be told apart for training".into(),
                ));
            }
            cuts.push((start.len(), end.len()));
        }
        // The text in pieces, each taught or not, tokenised piece by piece.
        let mut pieces: Vec<(&str, bool)> = Vec::new();
        let mut at = 0;
        for (start, end) in cuts {
            pieces.push((&whole[at..start], false));
            pieces.push((&whole[start..end], true));
            at = end;
        }
        pieces.push((&whole[at..], false));
        let mut ids = Vec::new();
        let mut taught = Vec::new();
        for (text, learn) in pieces {
            if text.is_empty() {
                continue;
            }
            let tokens = if ids.is_empty() {
                self.tokenize(text)?
            } else {
                self.tokenize_more(text)
            };
            taught.extend(std::iter::repeat_n(learn, tokens.len()));
            ids.extend(tokens);
        }
        Ok((ids, taught))
    }

    /// A completions example (for base models): the prompt, then the completion and the
    /// end-of-sequence token, which are taught.
    pub fn completion_example_tokens(
        &self,
        prompt: &str,
        completion: &str,
    ) -> Result<(Vec<i32>, Vec<bool>), LlmError> {
        let mut ids = if prompt.is_empty() {
            // The BOS the model wants, if any.
            self.tokenize("")?
        } else {
            self.tokenize(prompt)?
        };
        let mut taught = vec![false; ids.len()];
        let mut reply = self.tokenize_more(completion);
        reply.push(self.model.vocab().eos().0);
        taught.extend(std::iter::repeat_n(true, reply.len()));
        ids.extend(reply);
        Ok((ids, taught))
    }

    /// Tokens of text that continues earlier text: no BOS, special tokens parsed.
    fn tokenize_more(&self, text: &str) -> Vec<i32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, true)
            .iter()
            .map(|t| t.0)
            .collect()
    }
}
