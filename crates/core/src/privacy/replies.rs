//! Masking what models return: replies streamed token by token, and whole texts.
//!
//! With the rules alone a reply is masked as it streams: [`StreamMasker`] holds back only
//! what could still grow into a finding. The NER detector reads context (a surname is a
//! surname because of the words around it), so with it a reply is held back to sentence
//! ends instead: each run of whole sentences, at least [`MIN_RELEASE`] bytes (so that
//! "Dr. Smith" or "12 Main St. Springfield" is rarely cut), is read by the NER model and
//! the rules together and then released. A reply with no sentence end is released at a
//! word break once [`MAX_HELD`] bytes wait. The rules' findings never span a sentence end
//! (e-mail addresses, phones, ids and cards contain no ". " or line break), so cutting
//! there keeps them whole.

use aiaas_privacy::{Finding, Policy, StreamMasker};

use super::{rule_detector, Privacy};
use crate::Result;

/// Bytes of whole sentences gathered before the NER model reads them.
pub const MIN_RELEASE: usize = 160;
/// Bytes held back at most while no sentence ends.
pub const MAX_HELD: usize = 2048;

/// How a model's replies are masked: the policy, whether the rules look, and the privacy
/// service that runs the NER detector when the policy names it.
#[derive(Clone)]
pub struct OutputMasking {
    policy: Policy,
    rules: bool,
    ner: Option<Privacy>,
}

impl OutputMasking {
    pub(crate) fn new(policy: Policy, rules: bool, ner: Option<Privacy>) -> OutputMasking {
        OutputMasking { policy, rules, ner }
    }

    /// Masking by the rules alone.
    #[cfg(test)]
    pub(crate) fn rules(policy: Policy) -> OutputMasking {
        OutputMasking::new(policy, true, None)
    }

    /// A masker for one streamed reply.
    pub fn stream(&self) -> ReplyMasker {
        match &self.ner {
            None => ReplyMasker::Rules(StreamMasker::new(
                rule_detector(self.rules, None),
                self.policy.clone(),
            )),
            Some(_) => ReplyMasker::Sentences {
                masking: self.clone(),
                held: String::new(),
            },
        }
    }

    /// Whole texts masked (a transcript's segments, say).
    pub async fn mask_texts(&self, texts: Vec<String>) -> Result<Vec<String>> {
        let found = match &self.ner {
            Some(privacy) => privacy.model_findings(&texts, None).await?,
            None => vec![Vec::new(); texts.len()],
        };
        let detector = rule_detector(self.rules, None);
        Ok(texts
            .iter()
            .zip(&found)
            .map(|(text, extra): (&String, &Vec<Finding>)| {
                detector.mask_with(text, extra, &self.policy).text
            })
            .collect())
    }
}

/// A transcript's segments masked (the transcript's text is theirs joined and trimmed
/// again, as the speech crate joins them). Word
/// timestamps cannot be masked word by word (a phone number spans several words), so
/// they are refused before transcribing while outputs are masked.
pub(crate) async fn mask_transcript(
    masking: &OutputMasking,
    transcript: &mut aiaas_engine::speech::Transcript,
) -> Result<()> {
    mask_segments(masking, &mut transcript.segments).await?;
    join_segments(transcript);
    Ok(())
}

/// Segments masked in place (streamed ones, one at a time).
pub(crate) async fn mask_segments(
    masking: &OutputMasking,
    segments: &mut [aiaas_engine::speech::Segment],
) -> Result<()> {
    let texts = segments.iter().map(|s| s.text.clone()).collect();
    let masked = masking.mask_texts(texts).await?;
    for (segment, text) in segments.iter_mut().zip(masked) {
        segment.text = text;
        // The token ids would spell out what was masked.
        segment.tokens.clear();
    }
    Ok(())
}

/// The transcript's text from its segments again.
pub(crate) fn join_segments(transcript: &mut aiaas_engine::speech::Transcript) {
    let text: String = transcript
        .segments
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    transcript.text = text.trim().to_string();
}

/// Pages' lines masked, each line as a text.
pub(crate) async fn mask_lines(
    masking: &OutputMasking,
    pages: &mut [Vec<aiaas_engine::ocr::Line>],
) -> Result<()> {
    let texts = pages.iter().flatten().map(|l| l.text.clone()).collect();
    let masked = masking.mask_texts(texts).await?;
    for (line, text) in pages.iter_mut().flatten().zip(masked) {
        line.text = text;
    }
    Ok(())
}

impl std::fmt::Debug for OutputMasking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputMasking")
            .field("mode", &self.policy.effective_mode())
            .field("rules", &self.rules)
            .field("ner", &self.ner.is_some())
            .finish()
    }
}

/// Masks one reply as it streams; see the module documentation.
pub enum ReplyMasker {
    Rules(StreamMasker),
    Sentences {
        masking: OutputMasking,
        held: String,
    },
}

impl ReplyMasker {
    /// Takes the next piece of the reply; returns the masked text now settled (often
    /// empty while a sentence is still open).
    pub async fn push(&mut self, chunk: &str) -> Result<String> {
        match self {
            ReplyMasker::Rules(m) => Ok(m.push(chunk)),
            ReplyMasker::Sentences { masking, held } => {
                held.push_str(chunk);
                let Some(cut) = release_point(held) else {
                    return Ok(String::new());
                };
                let settled: String = held.drain(..cut).collect();
                Ok(masking.mask_texts(vec![settled]).await?.remove(0))
            }
        }
    }

    /// The end of the reply: everything still held, masked.
    pub async fn finish(&mut self) -> Result<String> {
        match self {
            ReplyMasker::Rules(m) => Ok(m.finish()),
            ReplyMasker::Sentences { masking, held } => {
                if held.is_empty() {
                    return Ok(String::new());
                }
                let rest = std::mem::take(held);
                Ok(masking.mask_texts(vec![rest]).await?.remove(0))
            }
        }
    }
}

/// Where the held text can be released up to: after its last sentence end, when at
/// least [`MIN_RELEASE`] bytes come before it; past [`MAX_HELD`] bytes, at the last word
/// break (or everything, for a text with none).
fn release_point(text: &str) -> Option<usize> {
    let mut last_end = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = match c {
            '\n' | '。' | '！' | '？' => Some(i + c.len_utf8()),
            '.' | '!' | '?' => match chars.peek() {
                Some(&(j, next)) if next.is_whitespace() => Some(j + next.len_utf8()),
                _ => None,
            },
            _ => None,
        };
        if end.is_some() {
            last_end = end;
        }
    }
    match last_end {
        Some(end) if end >= MIN_RELEASE => Some(end),
        _ if text.len() > MAX_HELD => Some(
            text.rfind(char::is_whitespace)
                .map(|i| i + text[i..].chars().next().map_or(1, char::len_utf8))
                .filter(|&i| i > 0)
                .unwrap_or(text.len()),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_released_at_sentence_ends_once_long_enough() {
        let short = "Mary Smith lives here. She is kind.";
        assert_eq!(release_point(short), None, "too short to release yet");
        let long = format!(
            "{}And the rest is still op",
            "A sentence of some length. ".repeat(8)
        );
        let cut = release_point(&long).unwrap();
        assert!(long[..cut].ends_with("length. "), "{:?}", &long[..cut]);
        assert_eq!(&long[cut..], "And the rest is still op");
        // An abbreviation's dot followed by a letter is no sentence end, nor is a dot
        // inside an e-mail address or a number.
        let text = format!("{}mail a.b@example.com or pay 3.50", "x".repeat(200));
        assert_eq!(release_point(&text), None);
        // Chinese full stops and line breaks end sentences too.
        let zh = "张伟住在北京。".repeat(10);
        assert_eq!(release_point(&zh), Some(zh.len()));
    }

    #[test]
    fn a_reply_without_sentence_ends_is_released_at_a_word_break() {
        let text = "word ".repeat(500) + "tail";
        let cut = release_point(&text).unwrap();
        assert_eq!(&text[cut..], "tail");
        let solid = "x".repeat(MAX_HELD + 1);
        assert_eq!(release_point(&solid), Some(solid.len()));
    }
}
