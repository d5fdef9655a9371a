//! E-mail addresses: `local@label.label.tld`, with an ASCII local part (RFC 5321's common
//! subset; quoted local parts are too rare in our data to justify the false positives).

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::scan::{byte_at, byte_before, compiled, scan, word_at, Verdict};
use crate::{Finding, Kind};

/// Local part up to 64 characters (RFC 5321 limit) starting with a letter, digit or `_`
/// (so `zip -i@list.lst` is an option, not a mailbox), labels that neither start nor end
/// with `-`, and a letters-only TLD of 2+ characters (so `pkg@1.2.3` is not an address).
const PATTERN: &str = r"[A-Za-z0-9_][A-Za-z0-9._%+\-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}";

/// "TLDs" that are really file extensions: `icon@2x.png` is a retina asset, not a mailbox.
const FILE_EXTENSIONS: [&str; 12] = [
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "css", "js", "map", "tiff",
];

pub(super) fn find(text: &str, out: &mut Vec<Finding>) {
    static RE: OnceLock<Regex> = OnceLock::new();
    scan(compiled(&RE, PATTERN), text, Kind::Email, out, validate);
}

fn validate(text: &str, r: Range<usize>) -> Verdict {
    let at_sign = r.start + text[r.clone()].find('@').unwrap_or(0);
    // Every candidate with the same `@` has the same domain; a later start inside this
    // local part would only be rejected again for the byte before it.
    let reject = Verdict::Reject {
        resume: at_sign + 1,
    };
    // The regex never starts on `.`, so a local part over 64 characters or one glued to
    // more local-part characters shows up as a local-part byte just before the match.
    if byte_before(text, r.start).is_some_and(|b| is_local_byte(b) || b == b'@') {
        return reject;
    }
    if word_at(text, r.end) || matches!(byte_at(text, r.end), Some(b'-' | b'@')) {
        return reject;
    }
    // `a@b.com.x1`: the domain goes on in a form the pattern did not take.
    if byte_at(text, r.end) == Some(b'.') && word_at(text, r.end + 1) {
        return reject;
    }
    let domain = &text[at_sign + 1..r.end];
    let tld = domain.rsplit('.').next().unwrap_or(domain);
    if domain.len() > 253 || FILE_EXTENSIONS.iter().any(|e| tld.eq_ignore_ascii_case(e)) {
        return reject;
    }
    Verdict::Accept(r)
}

fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::found;
    use crate::Kind;

    fn emails(text: &str) -> Vec<String> {
        found(Kind::Email, text)
    }

    #[test]
    fn finds_common_addresses() {
        assert_eq!(
            emails("mail j.doe+tag@mail.example.co.uk now"),
            ["j.doe+tag@mail.example.co.uk"]
        );
        assert_eq!(
            emails("邮箱zhang.wei@example.cn。"),
            ["zhang.wei@example.cn"]
        );
        assert_eq!(
            emails("<A_B-c@Sub-Domain.Example.ORG>"),
            ["A_B-c@Sub-Domain.Example.ORG"]
        );
        assert_eq!(emails("to: x@y.io."), ["x@y.io"]);
        assert_eq!(emails("\"user\":\"li@qq.com\""), ["li@qq.com"]);
        assert_eq!(emails("a@b.io,c@d.io"), ["a@b.io", "c@d.io"]);
    }

    #[test]
    fn rejects_lookalikes() {
        for text in [
            "icon@2x.png",
            "npm i left-pad@1.3.0",
            "user@localhost",
            "x@y.c",
            "@example.com",
            "foo@bar",
            "a@b.com1",
            "a@b.comabcdefghijklmnopqrstuvwxyzabc",
            "a@-b.com",
            "zip -i@include.lst",
        ] {
            assert!(emails(text).is_empty(), "{text}: {:?}", emails(text));
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(emails(&long_local).is_empty());
        let max_local = format!("{}@example.com", "a".repeat(64));
        assert_eq!(emails(&max_local), [max_local]);
    }
}
