//! PII detection and masking: finds e-mail addresses, phone numbers, mainland-China
//! resident ID numbers, bank-card numbers and IPv4/IPv6 addresses in free text, and rewrites
//! them as a tenant's [`Policy`] says (shape-keeping mask, type label, or keyed pseudonym).
//!
//! The platform runs this over log lines, audit entries, model inputs and outputs (per
//! tenant policy), dataset uploads and the `/api/v1/privacy/mask` endpoint.
//!
//! How detection works: each rule in `rules/` has one regex that finds *candidates*
//! (regex crate: finite automata, linear in the text, no backtracking), then checks what a
//! regex cannot (checksums, calendar dates, octet ranges, issuer prefixes, "not inside a
//! longer digit run") in Rust. Rules that disagree about a stretch of text are reconciled
//! by [`Detector::find`]: the longest finding wins, ties go to the more specific kind.
//!
//! Architecture invariants:
//! - [`Finding`] offsets are byte offsets on `char` boundaries, sorted and non-overlapping.
//! - Nothing here panics on any input text, and the work done is linear in its length.
//! - [`Kind::Person`] is never produced by the regex rules; it exists so spans found by an
//!   NER model elsewhere can be masked through [`Detector::mask_with`].
//! - The pseudonym key never reaches a log: [`PseudonymKey`]'s `Debug` prints `***`.

mod detect;
mod error;
mod key;
mod mask;
mod rules;
mod scan;
mod stream;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

pub use detect::Detector;
pub use error::PrivacyError;
pub use key::PseudonymKey;
pub use mask::{Masked, Mode, Policy};
pub use stream::{StreamMasker, MAX_PENDING};

/// How many findings of each kind were masked.
pub type Counts = BTreeMap<Kind, usize>;

/// A category of personal data.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Email,
    Phone,
    ChinaId,
    BankCard,
    Ipv4,
    Ipv6,
    /// A person's name. Only an NER model finds these; see [`Detector::mask_with`].
    Person,
}

impl Kind {
    /// The kinds the built-in rules detect (everything but [`Kind::Person`]).
    pub const STRUCTURED: [Kind; 6] = [
        Kind::Email,
        Kind::Phone,
        Kind::ChinaId,
        Kind::BankCard,
        Kind::Ipv4,
        Kind::Ipv6,
    ];

    /// The label masked text shows: `EMAIL`, `PHONE`, `ID_CN`, `BANK_CARD`, `IPV4`, `IPV6`,
    /// `PERSON`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::ChinaId => "ID_CN",
            Kind::BankCard => "BANK_CARD",
            Kind::Ipv4 => "IPV4",
            Kind::Ipv6 => "IPV6",
            Kind::Person => "PERSON",
        }
    }

    /// The wire name (the serde form): `email`, `phone`, `china_id`, `bank_card`, `ipv4`,
    /// `ipv6`, `person`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::ChinaId => "china_id",
            Kind::BankCard => "bank_card",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Person => "person",
        }
    }

    /// Reads a kind from its wire name or its label, in any letter case (`"phone"`,
    /// `"PHONE"`, `"china_id"`, `"ID_CN"`), so tenant policies can use either spelling.
    pub fn parse(s: &str) -> Option<Kind> {
        const ALL: [Kind; 7] = [
            Kind::Email,
            Kind::Phone,
            Kind::ChinaId,
            Kind::BankCard,
            Kind::Ipv4,
            Kind::Ipv6,
            Kind::Person,
        ];
        let s = s.trim();
        ALL.into_iter()
            .find(|k| s.eq_ignore_ascii_case(k.name()) || s.eq_ignore_ascii_case(k.label()))
    }

    /// Tie-break between rules that claim the same stretch of text with equally long
    /// findings: lower wins. An 18-digit string valid as a resident ID may also pass Luhn
    /// with a UnionPay prefix; the ID reading is the more specific one.
    pub(crate) fn precedence(self) -> u8 {
        match self {
            Kind::Email => 0,
            Kind::ChinaId => 1,
            Kind::BankCard => 2,
            Kind::Phone => 3,
            Kind::Ipv6 => 4,
            Kind::Ipv4 => 5,
            Kind::Person => 6,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for Kind {
    type Err = PrivacyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::parse(s).ok_or_else(|| PrivacyError::UnknownKind(s.chars().take(32).collect()))
    }
}

/// One piece of personal data in a text: `text[start..end]`, byte offsets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Finding {
    /// The span's length in bytes.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span is empty (never true for the rules' own findings).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The process-wide detector for all structured kinds, for callers with no per-tenant kind
/// selection. Regexes compile on first use.
pub fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(Detector::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_parse_accepts_names_and_labels() {
        for kind in Kind::STRUCTURED.into_iter().chain([Kind::Person]) {
            assert_eq!(Kind::parse(kind.name()), Some(kind));
            assert_eq!(Kind::parse(kind.label()), Some(kind));
            assert_eq!(Kind::parse(&kind.label().to_lowercase()), Some(kind));
        }
        assert_eq!(Kind::parse("id_cn"), Some(Kind::ChinaId));
        assert_eq!(Kind::parse("ssn"), None);
        assert!("nope".parse::<Kind>().is_err());
    }

    #[test]
    fn kind_serde_is_snake_case() {
        let json = serde_json::to_string(&Kind::BankCard).unwrap_or_default();
        assert_eq!(json, "\"bank_card\"");
        let back: Kind = serde_json::from_str("\"china_id\"").unwrap_or(Kind::Person);
        assert_eq!(back, Kind::ChinaId);
        for kind in Kind::STRUCTURED {
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
    }

    #[test]
    fn shared_detector_covers_structured_kinds() {
        assert_eq!(detector().kinds(), &Kind::STRUCTURED[..]);
    }
}
