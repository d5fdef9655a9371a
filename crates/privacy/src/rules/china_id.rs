//! Mainland-China resident identity card numbers (GB 11643-1999): six region digits, a
//! birth date `YYYYMMDD`, three sequence digits and an ISO 7064 MOD 11-2 check character.
//! The date and the check character together reject all but about 1 in 40 random 18-digit
//! strings, so order numbers and the like almost never pass.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::scan::{compiled, is_word_byte, run_end, scan, word_at, word_before, Verdict};
use crate::{Finding, Kind};

const PATTERN: &str = r"[1-9][0-9]{16}[0-9Xx]";

/// ISO 7064 MOD 11-2 weights for the first 17 digits (2^(17-i) mod 11).
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for each weighted sum mod 11.
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

pub(super) fn find(text: &str, out: &mut Vec<Finding>) {
    static RE: OnceLock<Regex> = OnceLock::new();
    scan(compiled(&RE, PATTERN), text, Kind::ChinaId, out, validate);
}

fn validate(text: &str, r: Range<usize>) -> Verdict {
    // Any later candidate starting inside this letter/digit run has a word byte before
    // it and would be rejected too, so skip the whole run.
    let reject = Verdict::Reject {
        resume: run_end(text, r.start, is_word_byte),
    };
    if word_before(text, r.start) || word_at(text, r.end) || !is_china_id(&text[r.clone()]) {
        return reject;
    }
    Verdict::Accept(r)
}

/// Whether `s` is exactly a valid 18-character resident ID number.
pub(crate) fn is_china_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return false;
    }
    let n = |range: Range<usize>| {
        b[range]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    if !is_real_date(n(6..10), n(10..12), n(12..14)) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize] == b[17].to_ascii_uppercase()
}

fn is_real_date(year: u32, month: u32, day: u32) -> bool {
    if !(1900..=2099).contains(&year) {
        return false;
    }
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::found;

    fn ids(text: &str) -> Vec<String> {
        found(Kind::ChinaId, text)
    }

    #[test]
    fn accepts_valid_numbers() {
        // The GB 11643 sample number, and a leap-day birth.
        assert!(is_china_id("11010519491231002X"));
        assert!(is_china_id("11010519491231002x"));
        assert_eq!(ids("身份证号11010519491231002X。"), ["11010519491231002X"]);
        let leap = with_check("11010520000229001");
        assert_eq!(ids(&format!("id={leap},")), [leap]);
    }

    #[test]
    fn rejects_bad_check_or_date() {
        assert!(!is_china_id("110105194912310021"));
        // 1900 is not a leap year; 2000 is.
        assert!(!is_china_id(&with_check("11010519000229001")));
        assert!(is_china_id(&with_check("11010520000229001")));
        assert!(!is_china_id(&with_check("11010519491301001")));
        assert!(!is_china_id(&with_check("11010519490431001")));
        assert!(!is_china_id(&with_check("11010518991231001")));
        assert!(!is_china_id(&with_check("11010521000101001")));
        assert!(!is_china_id(&with_check("01010519491231002")));
    }

    #[test]
    fn needs_clean_boundaries() {
        assert!(ids("A11010519491231002X").is_empty());
        assert!(ids("11010519491231002X1").is_empty());
        assert!(ids("911010519491231002X").is_empty());
        assert!(ids("11010519491231002XY").is_empty());
        assert_eq!(ids("(11010519491231002X)"), ["11010519491231002X"]);
    }

    #[test]
    fn a_digit_megabyte_is_cheap_and_empty() {
        assert!(ids(&"1".repeat(1 << 20)).is_empty());
    }

    /// Appends the correct check character to 17 digits.
    fn with_check(first17: &str) -> String {
        let sum: u32 = first17
            .bytes()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        format!("{first17}{}", CHECK_CHARS[(sum % 11) as usize] as char)
    }
}
