//! Phone numbers: international numbers written with `+` (E.164, any country), and
//! mainland-China mobile numbers written without it (`13812345678`, `138-1234-5678`,
//! `0086 138 1234 5678`).
//!
//! Numbers without `+` are only taken when they are Chinese mobiles, because any other bare
//! digit string (order numbers, timestamps, amounts) is far more often not a phone.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::scan::{
    byte_before, compiled, digit_run_end, digits, glued_after, glued_before, scan, word_at,
    word_before, Verdict,
};
use crate::{Finding, Kind};

/// `+`, a country code starting 1-9, then digit groups joined by one space, dot or dash, or
/// by a parenthesised area code (`+1 (415) 555-2671`). Length is checked afterwards.
const INTERNATIONAL: &str =
    r"\+[1-9][0-9]{0,14}(?:(?:[ .\-]?\([0-9]{1,5}\)[ .\-]?|[ .\-])[0-9]{1,14}){0,7}";

/// Optional `86` / `0086` / `+86` prefix, then `1[3-9]` and nine more digits, grouped 3-4-4
/// by optional spaces or dashes.
const CHINA_MOBILE: &str = r"(?:(?:\+|00)?86[ \-]?)?1[3-9][0-9](?:[ \-]?[0-9]{4}){2}";

/// E.164 allows at most 15 digits; below 7 it is an offset or an arithmetic term.
const E164_DIGITS: std::ops::RangeInclusive<usize> = 7..=15;

pub(super) fn find(text: &str, out: &mut Vec<Finding>) {
    static INTL: OnceLock<Regex> = OnceLock::new();
    static CN: OnceLock<Regex> = OnceLock::new();
    // Two passes: a `+86 …` number is found by both, and the detector's overlap
    // resolution keeps one copy; a rule's own output must stay non-overlapping, so merge.
    let mut intl = Vec::new();
    scan(
        compiled(&INTL, INTERNATIONAL),
        text,
        Kind::Phone,
        &mut intl,
        validate_international,
    );
    let mut cn = Vec::new();
    scan(
        compiled(&CN, CHINA_MOBILE),
        text,
        Kind::Phone,
        &mut cn,
        validate_china_mobile,
    );
    merge_disjoint(intl, cn, out);
}

fn validate_international(text: &str, r: Range<usize>) -> Verdict {
    let reject = Verdict::Reject {
        resume: r.start + 1,
    };
    // `5+1234567` is arithmetic, `a+1234567` an identifier.
    if word_before(text, r.start) || byte_before(text, r.start) == Some(b'+') {
        return reject;
    }
    if word_at(text, r.end) || glued_after(text, r.end) {
        return reject;
    }
    // `+1 415 555 2671 2 times`: no numbering plan ends on a one-digit group after a
    // space, so that digit is the next word, not part of the number.
    let candidate = &text[r.clone()];
    let end = match candidate.rfind(|c: char| !c.is_ascii_digit()) {
        Some(i) if i + 2 == candidate.len() && candidate.as_bytes()[i] == b' ' => r.start + i,
        _ => r.end,
    };
    if !E164_DIGITS.contains(&digits(&text[r.start..end]).len()) {
        return reject;
    }
    Verdict::Accept(r.start..end)
}

fn validate_china_mobile(text: &str, r: Range<usize>) -> Verdict {
    // A later candidate starting inside this first digit run would have a digit before it.
    let first_digit = r.start + usize::from(text.as_bytes()[r.start] == b'+');
    let reject = Verdict::Reject {
        resume: digit_run_end(text, first_digit),
    };
    let before_ok = !word_before(text, r.start)
        && byte_before(text, r.start) != Some(b'+')
        && !glued_before(text, r.start);
    if !before_ok || word_at(text, r.end) || glued_after(text, r.end) {
        return reject;
    }
    Verdict::Accept(r)
}

/// Merges two sorted, internally disjoint finding lists, dropping any finding of `b` that
/// overlaps one of `a` unless it is longer (then it replaces it).
fn merge_disjoint(a: Vec<Finding>, b: Vec<Finding>, out: &mut Vec<Finding>) {
    let mut all: Vec<Finding> = a.into_iter().chain(b).collect();
    all.sort_by(|x, y| x.start.cmp(&y.start).then(y.len().cmp(&x.len())));
    let mut kept: Vec<Finding> = Vec::with_capacity(all.len());
    for f in all {
        match kept.last_mut() {
            Some(last) if f.start < last.end => {
                if f.len() > last.len() {
                    *last = f;
                }
            }
            _ => kept.push(f),
        }
    }
    out.extend(kept);
}

/// How many leading digits a mask keeps: the country code and the start of the national
/// number for `+` numbers, and everything before the last 8 digits otherwise (`138` of a
/// Chinese mobile, `86138` with a prefix), so the mask shows the carrier and region but
/// never the subscriber.
pub(crate) fn mask_keep_prefix(number: &str) -> usize {
    let total = digits(number).len();
    if !number.starts_with('+') {
        return total.saturating_sub(8);
    }
    let groups: Vec<&str> = number[1..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let first = groups.first().map_or(0, |g| g.len());
    let keep = match groups.get(1) {
        // Written with the country code set apart (`+44 20 …`, `+1 (415) …`): keep it and
        // at most three digits of the next group.
        Some(next) if first <= 3 => first + next.len().min(3),
        _ => country_code_len(&digits(number)) + 3,
    };
    // At least three subscriber digits stay hidden besides the last four shown.
    keep.min(total.saturating_sub(7))
}

/// The pseudonym form: country code and national number as one digit string, so
/// `+86 138-1234-5678`, `008613812345678` and `13812345678` are one person.
pub(crate) fn normalise(number: &str) -> String {
    let d = digits(number);
    if number.starts_with('+') {
        d
    } else if let Some(rest) = d.strip_prefix("00") {
        rest.to_string()
    } else if d.len() == 11 {
        format!("86{d}")
    } else {
        d
    }
}

/// Length of the ITU country code that `digits` (no `+`) starts with: 1 for zone 1 (NANP)
/// and 7 (Russia, Kazakhstan), 2 for the assigned two-digit codes, 3 for the rest.
fn country_code_len(digits: &str) -> usize {
    const TWO_DIGIT: [&str; 44] = [
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGIT.iter().any(|p| digits.starts_with(p)) {
        2
    } else {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::found;

    fn phones(text: &str) -> Vec<String> {
        found(Kind::Phone, text)
    }

    #[test]
    fn finds_china_mobiles_in_many_spellings() {
        for p in [
            "13812345678",
            "138-1234-5678",
            "138 1234 5678",
            "+86 138 1234 5678",
            "+8613812345678",
            "0086 13812345678",
            "8613812345678",
            "+86-199-0000-1111",
        ] {
            assert_eq!(phones(&format!("电话{p}，谢谢")), [p], "{p}");
            assert_eq!(phones(&format!("tel: {p}.")), [p], "{p}");
        }
    }

    #[test]
    fn finds_international_numbers() {
        for p in [
            "+44 20 7946 0958",
            "+1 (415) 555-2671",
            "+1-800-555-0199",
            "+49 30 123456",
            "+33 1 23 45 67 89",
            "+81.3.1234.5678",
        ] {
            assert_eq!(phones(&format!("call {p} today")), [p], "{p}");
        }
        assert_eq!(phones("call +1 415 555 2671 2 times"), ["+1 415 555 2671"]);
    }

    #[test]
    fn rejects_digit_runs_that_are_not_phones() {
        for text in [
            "order 202311301381234567890",
            "id 110105194912310020",
            "card 6222021234567890",
            "10012345678",
            "11012345678",
            "12812345678",
            "ts=1701345912123",
            "ts=1701345912",
            "2023-13812345678",
            "13812345678-01",
            "0.13812345678",
            "ORD13812345678",
            "13812345678abc",
            "tz +08:00",
            "5+1234567",
            "+123456",
            "+1234567890123456",
            "1381234567",
        ] {
            assert!(phones(text).is_empty(), "{text}: {:?}", phones(text));
        }
    }

    #[test]
    fn a_digit_megabyte_is_cheap_and_empty() {
        let text = "1381234567".repeat(100_000);
        assert!(phones(&text).is_empty());
    }

    #[test]
    fn mask_prefix_keeps_country_code_and_area() {
        assert_eq!(mask_keep_prefix("13812345678"), 3);
        assert_eq!(mask_keep_prefix("8613812345678"), 5);
        assert_eq!(mask_keep_prefix("0086 13812345678"), 7);
        assert_eq!(mask_keep_prefix("+44 20 7946 0958"), 4);
        assert_eq!(mask_keep_prefix("+1 (415) 555-2671"), 4);
        assert_eq!(mask_keep_prefix("+8613812345678"), 5);
        assert_eq!(mask_keep_prefix("+86 13812345678"), 5);
        assert_eq!(mask_keep_prefix("+14155552671"), 4);
    }

    #[test]
    fn normalised_forms_agree() {
        let n = normalise("13812345678");
        for p in [
            "+86 138 1234 5678",
            "138-1234-5678",
            "0086 13812345678",
            "8613812345678",
        ] {
            assert_eq!(normalise(p), n, "{p}");
        }
        assert_eq!(normalise("+1 (415) 555-2671"), "14155552671");
    }
}
