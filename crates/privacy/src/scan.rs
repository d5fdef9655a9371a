//! The candidate-then-validate loop every rule shares, and the byte-level neighbour tests
//! behind "not inside a longer run".
//!
//! The regex crate has no look-around, so a rule's regex only proposes candidates; the
//! rule's validator then looks at the candidate and its neighbours and either accepts a
//! span or says where to search next. Choosing that resume point well (past the digit run
//! a rejected candidate sits in, not just one byte on) keeps a megabyte of digits from
//! costing a million regex searches.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::{Finding, Kind};

/// A validator's decision on one candidate.
pub(crate) enum Verdict {
    /// The span (inside the candidate) is a finding.
    Accept(Range<usize>),
    /// Not a finding; search again from this byte offset. Offsets at or before the
    /// candidate's start are moved past it, so the loop always advances.
    Reject { resume: usize },
}

/// Compiles a built-in pattern once per process.
pub(crate) fn compiled(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // The patterns are constants covered by unit tests, not user input.
    cell.get_or_init(|| match Regex::new(pattern) {
        Ok(re) => re,
        Err(e) => panic!("built-in PII pattern does not compile: {e}"),
    })
}

/// Runs `re` over `text` and appends every candidate `validate` accepts, as `kind`.
pub(crate) fn scan(
    re: &Regex,
    text: &str,
    kind: Kind,
    out: &mut Vec<Finding>,
    validate: impl Fn(&str, Range<usize>) -> Verdict,
) {
    let mut pos = 0;
    while pos <= text.len() {
        let Some(m) = re.find_at(text, pos) else {
            break;
        };
        let past_start = next_char_boundary(text, m.start());
        pos = match validate(text, m.range()) {
            Verdict::Accept(span) => {
                debug_assert!(span.start >= m.start() && span.end <= m.end());
                debug_assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
                if span.start < span.end {
                    out.push(Finding {
                        kind,
                        start: span.start,
                        end: span.end,
                    });
                }
                span.end.max(past_start)
            }
            Verdict::Reject { resume } => resume.max(past_start),
        };
        if !text.is_char_boundary(pos.min(text.len())) {
            pos = next_char_boundary(text, pos);
        }
    }
}

/// The byte just before `i`, if any.
pub(crate) fn byte_before(text: &str, i: usize) -> Option<u8> {
    i.checked_sub(1)
        .and_then(|j| text.as_bytes().get(j).copied())
}

/// The byte at `i`, if any.
pub(crate) fn byte_at(text: &str, i: usize) -> Option<u8> {
    text.as_bytes().get(i).copied()
}

/// ASCII letter, digit or underscore: what makes a match part of a longer token. Bytes of
/// non-ASCII characters are not word bytes, so Chinese text may touch a finding directly
/// (`电话13812345678`).
pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether the byte before `i` is a word byte.
pub(crate) fn word_before(text: &str, i: usize) -> bool {
    byte_before(text, i).is_some_and(is_word_byte)
}

/// Whether the byte at `i` is a word byte.
pub(crate) fn word_at(text: &str, i: usize) -> bool {
    byte_at(text, i).is_some_and(is_word_byte)
}

/// Whether the match starting at `i` continues a number written with `.` or `-` before it
/// (`2023-13812345678`, `0.110105…`): then it is a piece of that number.
pub(crate) fn glued_before(text: &str, i: usize) -> bool {
    matches!(byte_before(text, i), Some(b'.' | b'-'))
        && i >= 2
        && byte_at(text, i - 2).is_some_and(|b| b.is_ascii_digit())
}

/// Whether the match ending at `i` is followed by `.` or `-` and another digit.
pub(crate) fn glued_after(text: &str, i: usize) -> bool {
    matches!(byte_at(text, i), Some(b'.' | b'-'))
        && byte_at(text, i + 1).is_some_and(|b| b.is_ascii_digit())
}

/// The end of the run of bytes matching `pred` that starts at `i` (`i` itself if none).
pub(crate) fn run_end(text: &str, i: usize, pred: impl Fn(u8) -> bool) -> usize {
    let bytes = text.as_bytes();
    let mut j = i;
    while j < bytes.len() && pred(bytes[j]) {
        j += 1;
    }
    j
}

/// The end of the ASCII-digit run starting at `i`.
pub(crate) fn digit_run_end(text: &str, i: usize) -> usize {
    run_end(text, i, |b| b.is_ascii_digit())
}

/// The ASCII digits of `s`, in order.
pub(crate) fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn next_char_boundary(text: &str, i: usize) -> usize {
    let mut j = i + 1;
    while j < text.len() && !text.is_char_boundary(j) {
        j += 1;
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_tests() {
        let t = "ab 12-345 x";
        assert!(word_before(t, 1));
        assert!(!word_before(t, 0));
        assert!(!word_before(t, 3));
        assert!(glued_before(t, 6));
        assert!(!glued_before(t, 3));
        assert!(glued_after(t, 5));
        assert!(!glued_after(t, 9));
        assert_eq!(digit_run_end(t, 6), 9);
        assert_eq!(digit_run_end(t, 0), 0);
        assert!(!word_before("电话1", "电话".len()));
    }

    #[test]
    fn scan_advances_past_multibyte_resume_points() {
        static RE: OnceLock<Regex> = OnceLock::new();
        let re = compiled(&RE, "[0-9]");
        let mut out = Vec::new();
        // A validator that asks to resume inside a multibyte character must not stall or
        // panic the loop.
        scan(re, "1电2", Kind::Phone, &mut out, |_, r| Verdict::Reject {
            resume: r.start + 2,
        });
        assert!(out.is_empty());
    }
}
