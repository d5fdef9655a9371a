//! Payment card numbers (PANs): 13-19 digits, written solid or in groups, with a Luhn check
//! digit and a prefix some issuer network actually uses. The prefix test is what keeps
//! epoch-millisecond timestamps (13 digits starting `1`) and date-based order numbers
//! (starting `20…`) out, since one in ten of those passes Luhn by chance.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::scan::{
    byte_before, compiled, digit_run_end, digits, glued_after, glued_before, scan, word_at,
    word_before, Verdict,
};
use crate::{Finding, Kind};

/// Solid 13-19 digits; or groups of four joined by one space or dash (the last group may
/// be short: 19-digit UnionPay cards print as 4-4-4-4-3); or Amex/Diners 4-6-5 and 4-6-4.
const PATTERN: &str = r"[0-9]{13,19}|[0-9]{4}(?:[ \-][0-9]{4}){2,3}(?:[ \-][0-9]{1,3})?|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4,5}";

pub(super) fn find(text: &str, out: &mut Vec<Finding>) {
    static RE: OnceLock<Regex> = OnceLock::new();
    scan(compiled(&RE, PATTERN), text, Kind::BankCard, out, validate);
}

fn validate(text: &str, r: Range<usize>) -> Verdict {
    // A later candidate starting inside the first digit group would have a digit before it.
    let reject = Verdict::Reject {
        resume: digit_run_end(text, r.start),
    };
    // `+4915112345678` is a phone number, `A-1234…` or `12-1234…` part of a longer code.
    if word_before(text, r.start)
        || byte_before(text, r.start) == Some(b'+')
        || glued_before(text, r.start)
    {
        return reject;
    }
    let candidate = &text[r.clone()];
    let mut separators = candidate.bytes().filter(|b| !b.is_ascii_digit());
    if let Some(first) = separators.next() {
        if separators.any(|b| b != first) {
            return reject;
        }
    }
    // A grouped number may have run into a following number (`… 7890 2023`): try the
    // candidate, then shorter ones ending at a group boundary, longest first. The digits
    // before a boundary are a prefix of the candidate's digits.
    let all_digits = digits(candidate);
    let ends = std::iter::once(r.end).chain(
        candidate
            .bytes()
            .enumerate()
            .rev()
            .filter(|(_, b)| !b.is_ascii_digit())
            .map(|(i, _)| r.start + i),
    );
    for end in ends {
        let digit_count = end - r.start - separators_before(candidate, end - r.start);
        if digit_count < 13 {
            break;
        }
        if word_at(text, end) || glued_after(text, end) {
            continue;
        }
        if is_card_number(&all_digits[..digit_count]) {
            return Verdict::Accept(r.start..end);
        }
    }
    reject
}

fn separators_before(candidate: &str, i: usize) -> usize {
    candidate.as_bytes()[..i]
        .iter()
        .filter(|b| !b.is_ascii_digit())
        .count()
}

/// Whether `digits` (ASCII digits only) is a plausible card number: length, issuer prefix
/// and Luhn check all agree.
pub(crate) fn is_card_number(digits: &str) -> bool {
    (13..=19).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && issuer_accepts(digits)
        && luhn_ok(digits)
}

/// Issuer networks by IIN prefix and the lengths they issue (ISO/IEC 7812 registrations
/// as published by the networks).
fn issuer_accepts(d: &str) -> bool {
    let len = d.len();
    let prefix = |n: usize| d[..n].parse::<u32>().unwrap_or(0);
    let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
    let visa = p1 == 4 && matches!(len, 13 | 16 | 19);
    let mastercard = ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16;
    let amex = matches!(p2, 34 | 37) && len == 15;
    let discover =
        (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65) && (16..=19).contains(&len);
    let unionpay = p2 == 62 && (16..=19).contains(&len);
    let jcb = (3528..=3589).contains(&p4) && (16..=19).contains(&len);
    let diners = (matches!(p2, 36 | 38) || (300..=305).contains(&p3)) && (14..=19).contains(&len);
    let maestro = (p2 == 50 || (56..=58).contains(&p2) || p1 == 6) && (13..=19).contains(&len);
    visa || mastercard || amex || discover || unionpay || jcb || diners || maestro
}

fn luhn_ok(d: &str) -> bool {
    let sum: u32 = d
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let v = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = v * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::found;

    fn cards(text: &str) -> Vec<String> {
        found(Kind::BankCard, text)
    }

    #[test]
    fn finds_test_cards_of_each_network() {
        for c in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "3530111333300000",
            "36227206271667",
            "6222021234567890128",
            "6222 0212 3456 7890 128",
            "5105105105105100",
            "4222222222222",
        ] {
            assert!(is_card_number(&digits(c)), "{c} should be valid");
            assert_eq!(cards(&format!("卡号{c}，")), [c], "{c}");
            assert_eq!(cards(&format!("card: {c}.")), [c], "{c}");
        }
    }

    #[test]
    fn rejects_non_cards() {
        for text in [
            "4111111111111112",
            "ts 1701345912123",
            "order 2023113012345678",
            "202311301381234567890",
            "IMEI 356938035643809",
            "ISBN 9787111547426",
            "4111-1111 1111-1111",
            "x4111111111111111",
            "4111111111111111x",
            "+4111111111111",
            "12-4111111111111111",
        ] {
            let got = cards(text);
            assert!(got.is_empty(), "{text}: {got:?}");
        }
    }

    #[test]
    fn grouped_card_followed_by_another_number() {
        assert_eq!(cards("4111 1111 1111 1111 2025"), ["4111 1111 1111 1111"]);
    }

    #[test]
    fn a_digit_megabyte_is_cheap_and_empty() {
        assert!(cards(&"4".repeat(1 << 20)).is_empty());
    }
}
