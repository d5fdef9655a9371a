//! Turning a sequence's token bytes into reply text: whole UTF-8 characters only (a
//! token may end mid-character), and stop strings cut out, never emitted, even when a
//! stop string spans several tokens (text that might begin one is held back).

/// The reply text of one sequence as its tokens arrive.
#[derive(Debug, Default)]
pub(crate) struct ReplyText {
    stop: Vec<String>,
    /// Bytes of an unfinished UTF-8 character.
    partial: Vec<u8>,
    /// Decoded text not yet released (it may be the start of a stop string).
    held: String,
}

/// What one token added.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Text to release now (maybe empty).
    Text(String),
    /// A stop string was completed: release this text (what preceded it), then stop.
    Stopped(String),
}

impl ReplyText {
    pub(crate) fn new(stop: Vec<String>) -> ReplyText {
        ReplyText {
            stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
            ..ReplyText::default()
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) -> Step {
        self.partial.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.partial) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_some() => {
                // Invalid bytes (not merely unfinished): replace rather than stall.
                let text = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                self.held.push_str(&text);
                return self.release();
            }
            Err(e) => e.valid_up_to(),
        };
        let rest = self.partial.split_off(valid);
        let text = std::mem::replace(&mut self.partial, rest);
        // Valid by construction (checked above).
        self.held.push_str(&String::from_utf8_lossy(&text));
        self.release()
    }

    /// Everything still held, at the end of the sequence.
    pub(crate) fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.held);
        if !self.partial.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
        out
    }

    fn release(&mut self) -> Step {
        if let Some(at) = self
            .stop
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let before = self.held[..at].to_string();
            self.held.clear();
            return Step::Stopped(before);
        }
        // Hold back the longest tail that is a prefix of some stop string.
        let keep = self
            .stop
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        Step::Text(out)
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`, on char
/// boundaries.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = text.len().min(stop.len().saturating_sub(1));
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop.is_char_boundary(n)
                && text.ends_with(&stop[..n])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut ReplyText, parts: &[&[u8]]) -> (String, bool) {
        let mut out = String::new();
        for p in parts {
            match r.push(p) {
                Step::Text(t) => out.push_str(&t),
                Step::Stopped(t) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&r.finish());
        (out, false)
    }

    #[test]
    fn split_characters_are_joined() {
        let mut r = ReplyText::new(vec![]);
        let euro = "€".as_bytes();
        assert_eq!(r.push(&euro[..1]), Step::Text(String::new()));
        assert_eq!(r.push(&euro[1..]), Step::Text("€".into()));
    }

    #[test]
    fn stop_strings_across_tokens_are_never_emitted() {
        let mut r = ReplyText::new(vec!["\n\nUser:".into()]);
        let (text, stopped) = feed(&mut r, &[b"Hello", b" there\n", b"\nUs", b"er:", b" more"]);
        assert!(stopped);
        assert_eq!(text, "Hello there");
    }

    #[test]
    fn held_text_that_is_not_a_stop_is_released() {
        let mut r = ReplyText::new(vec!["END".into()]);
        assert_eq!(r.push(b"abc E"), Step::Text("abc ".into()));
        assert_eq!(r.push(b"N"), Step::Text(String::new()));
        assert_eq!(r.push(b"X"), Step::Text("ENX".into()));
        let (text, stopped) = feed(&mut ReplyText::new(vec!["END".into()]), &[b"xx EN"]);
        assert!(!stopped);
        assert_eq!(text, "xx EN", "held text is released at the end");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut r = ReplyText::new(vec!["b".into(), "a".into()]);
        assert_eq!(r.push(b"xab"), Step::Stopped("x".into()));
    }
}
