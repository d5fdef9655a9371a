//! Rewriting findings by policy: shape-keeping masks, type labels, and keyed pseudonyms.

use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::key::PseudonymKey;
use crate::rules::phone;
use crate::scan::digits;
use crate::{Counts, Finding, Kind};

/// How findings are rewritten (the shared vocabulary: `aiaas_types::PiiMode`).
pub use aiaas_types::PiiMode as Mode;

/// A tenant's masking policy.
///
/// [`Mode::Pseudonymise`] needs a key; without one the policy falls back to
/// [`Mode::Label`] rather than failing, because masking runs on log and audit paths where
/// an error would mean writing the unmasked text or nothing. Use [`Policy::effective_mode`]
/// to see what will happen, and validate tenant configuration where it is loaded.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub key: Option<PseudonymKey>,
}

impl Policy {
    /// A policy for `mode` with no key.
    pub fn new(mode: Mode) -> Self {
        Policy { mode, key: None }
    }

    /// Pseudonymisation under `key`.
    pub fn pseudonymise(key: PseudonymKey) -> Self {
        Policy {
            mode: Mode::Pseudonymise,
            key: Some(key),
        }
    }

    /// The mode actually applied: `Label` for `Pseudonymise` without a key.
    pub fn effective_mode(&self) -> Mode {
        match (self.mode, &self.key) {
            (Mode::Pseudonymise, None) => Mode::Label,
            (mode, _) => mode,
        }
    }
}

impl Default for Policy {
    /// Label mode: reveals nothing and needs no key.
    fn default() -> Self {
        Policy::new(Mode::Label)
    }
}

/// A masked text and how many findings of each kind were rewritten.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Masked {
    pub text: String,
    pub counts: Counts,
}

/// Rewrites `findings` (sorted, non-overlapping, on char boundaries) in `text`.
pub(crate) fn apply(text: &str, findings: &[Finding], policy: &Policy) -> Masked {
    let mut out = String::with_capacity(text.len());
    let mut counts = Counts::new();
    let mut copied_to = 0;
    for f in findings {
        out.push_str(&text[copied_to..f.start]);
        out.push_str(&rewrite(f.kind, &text[f.start..f.end], policy));
        *counts.entry(f.kind).or_insert(0) += 1;
        copied_to = f.end;
    }
    out.push_str(&text[copied_to..]);
    Masked { text: out, counts }
}

/// The replacement for one value of `kind`.
fn rewrite(kind: Kind, value: &str, policy: &Policy) -> String {
    match (policy.effective_mode(), &policy.key) {
        (Mode::Mask, _) => mask(kind, value),
        (Mode::Pseudonymise, Some(key)) => {
            let label = kind.label();
            format!("[{label}:{}]", key.token(label, &normalise(kind, value)))
        }
        (Mode::Label | Mode::Pseudonymise, _) => format!("[{}]", kind.label()),
    }
}

/// The shape-keeping mask of one value.
fn mask(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Email => {
            let (local, domain) = value.split_once('@').unwrap_or((value, ""));
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        Kind::Phone => mask_digits(value, phone::mask_keep_prefix(value), 4),
        Kind::ChinaId | Kind::BankCard => mask_digits(value, 6, 4),
        Kind::Ipv4 => {
            let mut octets = value.split('.');
            let a = octets.next().unwrap_or("*");
            let b = octets.next().unwrap_or("*");
            format!("{a}.{b}.*.*")
        }
        Kind::Ipv6 => match value.split_once(':') {
            Some(("", _)) | None => "::****".to_string(),
            Some((first, _)) => format!("{first}:****"),
        },
        Kind::Person => {
            let first: String = value.trim().chars().take(1).collect();
            format!("{first}**")
        }
        // Nothing of an address, URL or account number is safe to keep.
        Kind::Address | Kind::Url | Kind::IdNumber | Kind::BankAccount => {
            format!("[{}]", kind.label())
        }
    }
}

/// Replaces every digit (and an ID's `X` check character) except the first `keep_head`
/// and the last `keep_tail` with `*`, leaving separators where they were.
fn mask_digits(value: &str, keep_head: usize, keep_tail: usize) -> String {
    let is_digit = |c: char| c.is_ascii_digit() || c == 'X' || c == 'x';
    let total = value.chars().filter(|&c| is_digit(c)).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if !is_digit(c) {
                return c;
            }
            seen += 1;
            if seen <= keep_head || seen > total.saturating_sub(keep_tail) {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// The form a value is pseudonymised in, so the same datum written two ways gives one
/// token: no separators, one letter case, one spelling of an address.
fn normalise(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Email => value.to_lowercase(),
        Kind::Phone => phone::normalise(value),
        Kind::ChinaId => value.to_ascii_uppercase(),
        Kind::BankCard => digits(value),
        Kind::Ipv4 => value.to_string(),
        // Display is RFC 5952's canonical text: lower case, zeros compressed.
        Kind::Ipv6 => Ipv6Addr::from_str(value)
            .map(|a| a.to_string())
            .unwrap_or_else(|_| value.to_ascii_lowercase()),
        Kind::Person | Kind::Address => value
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
        Kind::Url => value.trim_end_matches('/').to_lowercase(),
        Kind::IdNumber | Kind::BankAccount => value
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One set of spellings for every route: the same words parse, and deserialise.
    #[test]
    fn modes_have_one_set_of_spellings() {
        for (text, mode) in [
            ("mask", Mode::Mask),
            ("label", Mode::Label),
            ("pseudonymise", Mode::Pseudonymise),
            ("pseudonymize", Mode::Pseudonymise),
        ] {
            assert_eq!(Mode::parse(text), Some(mode), "{text}");
            let json = serde_json::Value::String(text.into());
            assert_eq!(
                serde_json::from_value::<Mode>(json).unwrap(),
                mode,
                "{text}"
            );
            assert_eq!(Mode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(Mode::parse("Mask"), None);
        assert!(serde_json::from_value::<Mode>(serde_json::json!("redact")).is_err());
    }

    #[test]
    fn masks_keep_the_documented_shape() {
        let cases = [
            (Kind::Phone, "13812345678", "138****5678"),
            (Kind::Phone, "138-1234-5678", "138-****-5678"),
            (Kind::Phone, "+44 20 7946 0958", "+44 20 **** 0958"),
            (Kind::Phone, "+1 (415) 555-2671", "+1 (415) ***-2671"),
            (Kind::Phone, "+86 138 1234 5678", "+86 138 **** 5678"),
            (Kind::Email, "john.doe@example.com", "j***@example.com"),
            (Kind::ChinaId, "11010519491231002X", "110105********002X"),
            (Kind::BankCard, "6222021234561234", "622202******1234"),
            (Kind::BankCard, "4111 1111 1111 1111", "4111 11** **** 1111"),
            (Kind::Ipv4, "192.168.1.10", "192.168.*.*"),
            (Kind::Ipv6, "2001:db8::1", "2001:****"),
            (Kind::Ipv6, "::1", "::****"),
            (Kind::Person, "张伟", "张**"),
            (Kind::Person, "Alice Smith", "A**"),
        ];
        for (kind, value, expected) in cases {
            assert_eq!(mask(kind, value), expected, "{kind:?} {value}");
        }
    }

    #[test]
    fn labels() {
        let policy = Policy::new(Mode::Label);
        for kind in Kind::STRUCTURED.into_iter().chain([Kind::Person]) {
            assert_eq!(rewrite(kind, "x", &policy), format!("[{}]", kind.label()));
        }
    }

    #[test]
    fn pseudonymise_without_key_falls_back_to_label() {
        let policy = Policy::new(Mode::Pseudonymise);
        assert_eq!(policy.effective_mode(), Mode::Label);
        assert_eq!(rewrite(Kind::Phone, "13812345678", &policy), "[PHONE]");
    }

    #[test]
    fn pseudonyms_are_stable_across_spellings_and_differ_across_keys() {
        let a = Policy::pseudonymise(PseudonymKey::derive(b"master", "tenant-a"));
        let b = Policy::pseudonymise(PseudonymKey::derive(b"master", "tenant-b"));
        let same = |kind, x, y| rewrite(kind, x, &a) == rewrite(kind, y, &a);
        assert!(same(Kind::Phone, "13812345678", "+86 138-1234-5678"));
        assert!(same(Kind::Phone, "0086 13812345678", "138 1234 5678"));
        assert!(same(
            Kind::Email,
            "Zhang.Wei@Example.CN",
            "zhang.wei@example.cn"
        ));
        assert!(same(
            Kind::BankCard,
            "4111 1111 1111 1111",
            "4111-1111-1111-1111"
        ));
        assert!(same(Kind::Ipv6, "2001:DB8:0:0::1", "2001:db8::1"));
        assert!(same(
            Kind::ChinaId,
            "11010519491231002x",
            "11010519491231002X"
        ));
        assert!(!same(Kind::Phone, "13812345678", "13812345679"));
        let token = rewrite(Kind::Phone, "13812345678", &a);
        assert_ne!(token, rewrite(Kind::Phone, "13812345678", &b));
        assert!(token.starts_with("[PHONE:") && token.ends_with(']'));
        assert_eq!(token.len(), "[PHONE:]".len() + 12);
        // The same digits as a different kind are a different datum.
        let as_card = rewrite(Kind::BankCard, "13812345678", &a);
        assert_ne!(token[7..19], as_card[11..23]);
    }

    #[test]
    fn apply_counts_and_splices() {
        let text = "a 13812345678 b x@y.io c";
        let findings = [
            Finding {
                kind: Kind::Phone,
                start: 2,
                end: 13,
            },
            Finding {
                kind: Kind::Email,
                start: 16,
                end: 22,
            },
        ];
        let masked = apply(text, &findings, &Policy::new(Mode::Label));
        assert_eq!(masked.text, "a [PHONE] b [EMAIL] c");
        assert_eq!(masked.counts.get(&Kind::Phone), Some(&1));
        assert_eq!(masked.counts.get(&Kind::Email), Some(&1));
    }
}
