//! [`StreamMasker`]: masking text that arrives in pieces (a model's reply streamed token by
//! token), so that no piece of personal data leaves unmasked because it was split across
//! two chunks.
//!
//! Each chunk is appended to a pending buffer. What can still grow into a finding stays
//! pending: the trailing run of characters a finding can contain (letters, digits and
//! `._%+-@:()[]`), and before it any digit groups joined by single spaces (a phone number
//! or card number written `138 0013 8000`). Everything before that is settled: it is
//! masked with the findings the detector sees over the whole buffer (so right-hand context
//! counts) and released. A short tail of released raw text is kept as left-hand context, so
//! the rules' "not inside a longer run" checks see the same neighbours as on the whole
//! text. Architecture invariant: the concatenated output equals [`Detector::mask`] over the
//! concatenated input, however the input was cut (checked over the labelled corpus).
//!
//! A pending buffer never grows past [`MAX_PENDING`] bytes: a model that emits an endless
//! run of digits gets its text released in pieces (still masked where findings are whole).

use crate::mask::{self, Policy};
use crate::{Counts, Detector};

/// Most bytes held back waiting for a possible finding to complete.
pub const MAX_PENDING: usize = 512;
/// Raw bytes of released text kept as left-hand context for the rules.
const CONTEXT: usize = 32;

/// Masks a text that arrives in chunks; see the module documentation.
#[derive(Debug, Clone)]
pub struct StreamMasker {
    detector: Detector,
    policy: Policy,
    /// Released raw text, its last few bytes only.
    context: String,
    pending: String,
    counts: Counts,
}

impl StreamMasker {
    pub fn new(detector: Detector, policy: Policy) -> Self {
        StreamMasker {
            detector,
            policy,
            context: String::new(),
            pending: String::new(),
            counts: Counts::new(),
        }
    }

    /// Takes the next chunk; returns the masked text that is now settled (often empty
    /// while a possible finding is still open).
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let mut cut = open_tail_start(&self.pending);
        if self.pending.len() - cut > MAX_PENDING {
            cut = floor_char_boundary(&self.pending, self.pending.len() - MAX_PENDING / 2);
        }
        self.release(cut)
    }

    /// The end of the text: releases everything still pending, masked.
    pub fn finish(&mut self) -> String {
        self.release(self.pending.len())
    }

    /// Findings rewritten so far, per kind.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Masks and releases `pending[..cut]`, moved earlier if it would cut a finding.
    fn release(&mut self, cut: usize) -> String {
        if cut == 0 {
            return String::new();
        }
        let offset = self.context.len();
        let joined = format!("{}{}", self.context, self.pending);
        let findings: Vec<_> = self
            .detector
            .find(&joined)
            .into_iter()
            .filter(|f| f.start >= offset)
            .map(|mut f| {
                f.start -= offset;
                f.end -= offset;
                f
            })
            .collect();
        let mut cut = cut;
        if let Some(f) = findings.iter().find(|f| f.start < cut && f.end > cut) {
            // A finding that straddles a forced cut is released whole rather than split.
            cut = if f.start == 0 { f.end } else { f.start };
        }
        let settled: Vec<_> = findings.into_iter().filter(|f| f.end <= cut).collect();
        let masked = mask::apply(&self.pending[..cut], &settled, &self.policy);
        for (kind, n) in masked.counts {
            *self.counts.entry(kind).or_insert(0) += n;
        }
        self.context.push_str(&self.pending[..cut]);
        let keep_from =
            ceil_char_boundary(&self.context, self.context.len().saturating_sub(CONTEXT));
        self.context.drain(..keep_from);
        self.pending.drain(..cut);
        masked.text
    }
}

/// Characters a finding can contain (apart from the spaces between digit groups).
fn is_finding_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._%+-@:()[]".contains(c)
}

/// Where the part of `text` that could still grow into a finding begins.
fn open_tail_start(text: &str) -> usize {
    let run_start = |end: usize| -> usize {
        text[..end]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_finding_char(c))
            .last()
            .map_or(end, |(i, _)| i)
    };
    let mut start = run_start(text.len());
    // Digit groups joined by single spaces: `+86 138 0013 8000`, `6222 0212 3456 7890`.
    loop {
        let next_is_digitish = text[start..]
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_digit() || c == '(' || c == '+');
        let Some(before) = start.checked_sub(1) else {
            break;
        };
        if !next_is_digitish || text.as_bytes()[before] != b' ' {
            break;
        }
        let prev_ends_digitish = text[..before]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_digit() || c == ')');
        if !prev_ends_digitish {
            break;
        }
        start = run_start(before);
    }
    start
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{detector, Mode};

    fn stream(chunks: &[&str], mode: Mode) -> String {
        let mut m = StreamMasker::new(detector().clone(), Policy::new(mode));
        let mut out: String = chunks.iter().map(|c| m.push(c)).collect();
        out.push_str(&m.finish());
        out
    }

    #[test]
    fn an_email_split_across_chunks_is_masked() {
        let out = stream(
            &["Write to jo", "hn.doe@exa", "mple.com today"],
            Mode::Label,
        );
        assert_eq!(out, "Write to [EMAIL] today");
    }

    #[test]
    fn a_spaced_phone_split_at_the_spaces_is_masked() {
        let chunks = ["Call +86", " 138", " 0013", " 8000", " now"];
        assert_eq!(stream(&chunks, Mode::Label), "Call [PHONE] now");
        let mut m = StreamMasker::new(detector().clone(), Policy::new(Mode::Label));
        // Nothing of the number is released before it is complete.
        let early: String = chunks[..4].iter().map(|c| m.push(c)).collect();
        assert_eq!(early, "Call ");
    }

    #[test]
    fn plain_words_are_released_without_waiting_for_the_end() {
        let mut m = StreamMasker::new(detector().clone(), Policy::new(Mode::Mask));
        assert_eq!(m.push("Hello there"), "Hello ");
        assert_eq!(m.push(", friend. "), "there, friend. ");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn counts_add_up_over_the_stream() {
        let mut m = StreamMasker::new(detector().clone(), Policy::new(Mode::Mask));
        let mut out = m.push("a@b.io and 192.168.1");
        out += &m.push(".20 end");
        out += &m.finish();
        assert_eq!(out, "a***@b.io and 192.168.*.* end");
        assert_eq!(m.counts().values().sum::<usize>(), 2);
    }

    #[test]
    fn an_endless_digit_run_is_released_in_bounded_pieces() {
        let mut m = StreamMasker::new(detector().clone(), Policy::new(Mode::Label));
        let mut released = 0;
        for _ in 0..1000 {
            released += m.push("7").len();
            assert!(m.pending.len() <= MAX_PENDING + 1);
        }
        released += m.finish().len();
        assert_eq!(released, 1000);
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let text = "联系我：13800138000，邮箱 张三@例子.中国 或 zhang@example.cn。".repeat(3);
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let chunks: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(
            stream(&chunks, Mode::Mask),
            detector().mask(&text, &Policy::new(Mode::Mask)).text
        );
    }
}
