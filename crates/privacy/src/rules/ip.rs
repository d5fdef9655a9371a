//! IP addresses. IPv4: dotted quads with octets 0-255 in canonical form, not part of a
//! longer dotted number (version strings). IPv6: runs of hex digits and colons that the
//! standard library parses as an address and that are unmistakably IPv6 (`::` or eight
//! groups), which rules out times and MAC addresses.

use std::net::Ipv6Addr;
use std::ops::Range;
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;

use crate::scan::{
    byte_at, byte_before, compiled, digit_run_end, scan, word_at, word_before, Verdict,
};
use crate::{Finding, Kind};

const V4_PATTERN: &str = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}";

/// A maximal hex-and-colon run containing a colon, with an optional dotted-quad tail for
/// IPv4-mapped forms (`::ffff:192.0.2.1`); the standard parser does the real check.
const V6_PATTERN: &str = r"[0-9A-Fa-f:]*:[0-9A-Fa-f:]*(?:\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})?";

pub(super) fn find_v4(text: &str, out: &mut Vec<Finding>) {
    static RE: OnceLock<Regex> = OnceLock::new();
    scan(
        compiled(&RE, V4_PATTERN),
        text,
        Kind::Ipv4,
        out,
        validate_v4,
    );
}

pub(super) fn find_v6(text: &str, out: &mut Vec<Finding>) {
    static RE: OnceLock<Regex> = OnceLock::new();
    scan(
        compiled(&RE, V6_PATTERN),
        text,
        Kind::Ipv6,
        out,
        validate_v6,
    );
}

fn validate_v4(text: &str, r: Range<usize>) -> Verdict {
    let reject = Verdict::Reject {
        resume: dotted_number_end(text, r.start),
    };
    // `v1.2.3.4`, `1.2.3.4.5` and `10.0.19045.1` are versions: no word byte next to the
    // address, and no `.` that continues it into a fifth component.
    let dotted_before = byte_before(text, r.start) == Some(b'.')
        && r.start >= 2
        && byte_at(text, r.start - 2).is_some_and(|b| b.is_ascii_alphanumeric());
    let dotted_after = byte_at(text, r.end) == Some(b'.') && word_at(text, r.end + 1);
    if word_before(text, r.start) || word_at(text, r.end) || dotted_before || dotted_after {
        return reject;
    }
    if !text[r.clone()].split('.').all(is_octet) {
        return reject;
    }
    Verdict::Accept(r)
}

/// The end of the dotted number starting at `i` (`1.2.3.4.5`): every candidate starting
/// inside it has a digit, or a `.` after a digit, before it, and is rejected like the first.
fn dotted_number_end(text: &str, i: usize) -> usize {
    let mut j = digit_run_end(text, i);
    while byte_at(text, j) == Some(b'.') && byte_at(text, j + 1).is_some_and(|b| b.is_ascii_digit())
    {
        j = digit_run_end(text, j + 1);
    }
    j
}

/// 0-255 written without leading zeros (`01` is octal in some parsers, so not canonical).
fn is_octet(s: &str) -> bool {
    !(s.len() > 1 && s.starts_with('0')) && s.parse::<u8>().is_ok()
}

fn validate_v6(text: &str, r: Range<usize>) -> Verdict {
    // The candidate is a maximal run: nothing starting inside it can do better.
    let reject = Verdict::Reject { resume: r.end };
    let (mut start, mut end) = (r.start, r.end);
    // A lone colon at either end is punctuation (`host:2001:db8::1`, `addr 2001:db8::1:`).
    let run = &text[start..end];
    if run.starts_with(':') && !run.starts_with("::") {
        start += 1;
    }
    if run.ends_with(':') && !run.ends_with("::") && end > start {
        end -= 1;
    }
    if start >= end {
        return reject;
    }
    if start == r.start && (word_before(text, start) || byte_before(text, start) == Some(b'.')) {
        return reject;
    }
    if end == r.end
        && (word_at(text, end) || (byte_at(text, end) == Some(b'.') && word_at(text, end + 1)))
    {
        return reject;
    }
    let candidate = &text[start..end];
    if is_ipv6(candidate) {
        Verdict::Accept(start..end)
    } else {
        reject
    }
}

/// Whether `s` is an IPv6 address in one of the forms people write: compressed (`::`) or
/// all eight groups (the last two may be a dotted quad).
///
/// Letters-only forms (`::`, `A::D`, `cd::`, getopt's `ab:c::`) are valid addresses but in
/// text they are C++ scopes, option strings and the like; real addresses, even `::1`,
/// virtually always contain a decimal digit, so one is required.
fn is_ipv6(s: &str) -> bool {
    let colons = s.bytes().filter(|&b| b == b':').count();
    let has_v4_tail = s.contains('.');
    let full = colons == 7 || (has_v4_tail && colons == 6);
    (s.contains("::") || full)
        && s.bytes().any(|b| b.is_ascii_digit())
        && !is_byte_dump(s)
        && Ipv6Addr::from_str(s).is_ok()
}

/// Eight groups of exactly two hex digits (`aa:bb:cc:dd:ee:ff:00:11`) parse as IPv6 but
/// are an EUI-64 identifier or a colon-separated hex dump; real addresses practically
/// never print that way.
fn is_byte_dump(s: &str) -> bool {
    !s.contains("::") && s.split(':').all(|g| g.len() == 2)
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::found;
    use crate::Kind;

    fn v4(text: &str) -> Vec<String> {
        found(Kind::Ipv4, text)
    }

    fn v6(text: &str) -> Vec<String> {
        found(Kind::Ipv6, text)
    }

    #[test]
    fn finds_ipv4() {
        assert_eq!(
            v4("from 192.168.1.10 to 10.0.0.1."),
            ["192.168.1.10", "10.0.0.1"]
        );
        assert_eq!(v4("登录IP：8.8.8.8，"), ["8.8.8.8"]);
        assert_eq!(v4("ip=0.0.0.0:8080"), ["0.0.0.0"]);
        assert_eq!(v4("[255.255.255.255]"), ["255.255.255.255"]);
    }

    #[test]
    fn rejects_ipv4_lookalikes() {
        for text in [
            "1.2.3.4.5",
            "v1.2.3.4",
            "v2.10.0.1",
            "build 10.0.19045.1",
            "256.1.1.1",
            "256.300.1.1",
            "192.168.01.1",
            "1234.1.1.1",
            "1.2.3.4567",
            "price 1,234,567.89",
            "2024.01.15",
            "lib.1.2.3.4",
            "1.2.3.4.nip.io",
        ] {
            assert!(v4(text).is_empty(), "{text}: {:?}", v4(text));
        }
    }

    #[test]
    fn finds_ipv6() {
        for a in [
            "2001:db8:85a3::8a2e:370:7334",
            "2001:0db8:0000:0000:0000:ff00:0042:8329",
            "fe80::1ff:fe23:4567:890a",
            "::1",
            "::ffff:192.0.2.128",
            "2001:DB8::1",
            "64:ff9b::192.0.2.33",
        ] {
            assert_eq!(v6(&format!("addr {a} ok")), [a], "{a}");
            assert_eq!(v6(&format!("[{a}]:443")), [a], "{a}");
            assert_eq!(v6(&format!("地址{a}，")), [a], "{a}");
        }
        assert_eq!(v6("host:2001:db8::1"), ["2001:db8::1"]);
        assert_eq!(v6("peer 2001:db8::1: refused"), ["2001:db8::1"]);
    }

    #[test]
    fn rejects_ipv6_lookalikes() {
        for text in [
            "12:30:45",
            "at 23:59:59.999",
            "00:1a:2b:3c:4d:5e",
            "00:1A:2B:3C:4D:5E",
            "std::vector",
            "Vec::new()",
            "Foo::Bar",
            "a ::",
            "{\"a\":1,\"b\":2}",
            "1:2:3:4:5:6:7",
            "2001:db8:::1",
            "ab:cd:ef:01:23:45:67:89:ab",
            "aa:bb:cc:dd:ee:ff:00:11",
            "A::D is suitable",
            "-B::",
            "getopt -o 'ab:c::'",
            "cd::*",
            "dead:beef::cafe",
        ] {
            assert!(v6(text).is_empty(), "{text}: {:?}", v6(text));
        }
    }

    #[test]
    fn colon_megabyte_is_cheap() {
        assert!(v6(&"a:".repeat(1 << 19)).is_empty());
        assert!(v4(&"1.".repeat(1 << 19)).is_empty());
    }
}
