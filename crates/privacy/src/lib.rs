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
//! - [`Kind::Person`], [`Kind::Address`], [`Kind::Url`], [`Kind::IdNumber`] and
//!   [`Kind::BankAccount`] are never produced by the regex rules; they exist so spans an
//!   NER model found elsewhere can be masked through [`Detector::mask_with`], where the
//!   rules' exact findings win over the model's.
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
    /// A postal address (building number, street, unit, city, state, zip code). NER only.
    Address,
    /// A web address. NER only.
    Url,
    /// A government, tax, passport or driving-licence number. NER only.
    IdNumber,
    /// A bank account or routing number. NER only.
    BankAccount,
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

    /// The kinds only an NER model finds.
    pub const FROM_MODELS: [Kind; 5] = [
        Kind::Person,
        Kind::Address,
        Kind::Url,
        Kind::IdNumber,
        Kind::BankAccount,
    ];

    /// Every kind.
    pub const ALL: [Kind; 11] = [
        Kind::Email,
        Kind::Phone,
        Kind::ChinaId,
        Kind::BankCard,
        Kind::Ipv4,
        Kind::Ipv6,
        Kind::Person,
        Kind::Address,
        Kind::Url,
        Kind::IdNumber,
        Kind::BankAccount,
    ];

    /// The label masked text shows: `EMAIL`, `PHONE`, `ID_CN`, `BANK_CARD`, `IPV4`, `IPV6`,
    /// `PERSON`, `ADDRESS`, `URL`, `ID_NUMBER`, `BANK_ACCOUNT`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::ChinaId => "ID_CN",
            Kind::BankCard => "BANK_CARD",
            Kind::Ipv4 => "IPV4",
            Kind::Ipv6 => "IPV6",
            Kind::Person => "PERSON",
            Kind::Address => "ADDRESS",
            Kind::Url => "URL",
            Kind::IdNumber => "ID_NUMBER",
            Kind::BankAccount => "BANK_ACCOUNT",
        }
    }

    /// The wire name (the serde form): `email`, `phone`, `china_id`, `bank_card`, `ipv4`,
    /// `ipv6`, `person`, `address`, `url`, `id_number`, `bank_account`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::ChinaId => "china_id",
            Kind::BankCard => "bank_card",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Person => "person",
            Kind::Address => "address",
            Kind::Url => "url",
            Kind::IdNumber => "id_number",
            Kind::BankAccount => "bank_account",
        }
    }

    /// The kind of an NER model's entity label (`GIVEN_NAME`, `SURNAME` -> person;
    /// `BUILDING_NUMBER`, `STREET_NAME`, `SECONDARY_ADDRESS`, `CITY`, `STATE`, `ZIP_CODE`
    /// -> address; `EMAIL`, `PHONE`, `URL`; `TAX_ID`, `GOVERNMENT_ID`, `PASSPORT`,
    /// `DRIVERS_LICENSE` -> id number; `BANK_ACCOUNT`, `ROUTING_NUMBER` -> bank account;
    /// the common spellings `PER`/`PERSON`, `LOC`/`ADDRESS` too). `None` for labels of no
    /// personal kind.
    pub fn of_entity(label: &str) -> Option<Kind> {
        let label = label.trim().to_ascii_uppercase();
        let label = label
            .strip_prefix("B-")
            .or_else(|| label.strip_prefix("I-"))
            .unwrap_or(&label);
        Some(match label {
            "GIVEN_NAME" | "SURNAME" | "FIRST_NAME" | "LAST_NAME" | "PER" | "PERSON" | "NAME" => {
                Kind::Person
            }
            "BUILDING_NUMBER" | "STREET_NAME" | "STREET" | "SECONDARY_ADDRESS" | "CITY"
            | "STATE" | "ZIP_CODE" | "POSTCODE" | "ADDRESS" | "LOC" => Kind::Address,
            "EMAIL" => Kind::Email,
            "PHONE" | "PHONE_NUMBER" => Kind::Phone,
            "URL" => Kind::Url,
            "TAX_ID" | "GOVERNMENT_ID" | "PASSPORT" | "DRIVERS_LICENSE" | "SSN" => Kind::IdNumber,
            "BANK_ACCOUNT" | "ROUTING_NUMBER" | "IBAN" => Kind::BankAccount,
            _ => return None,
        })
    }

    /// Reads a kind from its wire name or its label, in any letter case (`"phone"`,
    /// `"PHONE"`, `"china_id"`, `"ID_CN"`), so tenant policies can use either spelling.
    pub fn parse(s: &str) -> Option<Kind> {
        let s = s.trim();
        Kind::ALL
            .into_iter()
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
            Kind::IdNumber => 6,
            Kind::BankAccount => 7,
            Kind::Url => 8,
            Kind::Person => 9,
            Kind::Address => 10,
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

/// A model's findings with the pieces of one entity joined: consecutive findings of one
/// kind separated only by spaces (and, for addresses, commas) become one, so `Mary` +
/// `Smith` is one person and `221` + `Baker Street` + `Springfield` + `IL` + `62704` one
/// address. `findings` must be on `text`'s char boundaries; the result is sorted.
pub fn join_entities(text: &str, mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by_key(|f| (f.start, f.end));
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        if let Some(last) = out.last_mut() {
            let gap = text.get(last.end.min(f.start)..f.start).unwrap_or("x");
            let joins = |c: char| c.is_whitespace() || (f.kind == Kind::Address && c == ',');
            if last.kind == f.kind && f.start >= last.end && gap.chars().all(joins) {
                last.end = last.end.max(f.end);
                continue;
            }
        }
        out.push(f);
    }
    out
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
        for kind in Kind::ALL {
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
    fn pieces_of_one_entity_are_joined() {
        let text = "Mary Smith, 221 Baker Street, Springfield, IL 62704. Bob";
        let at = |kind, s: &str| {
            let start = text.find(s).unwrap_or(0);
            Finding {
                kind,
                start,
                end: start + s.len(),
            }
        };
        let joined = join_entities(
            text,
            vec![
                at(Kind::Address, "Springfield"),
                at(Kind::Person, "Mary"),
                at(Kind::Person, "Smith"),
                at(Kind::Address, "221"),
                at(Kind::Address, "Baker Street"),
                at(Kind::Address, "IL"),
                at(Kind::Address, "62704"),
                at(Kind::Person, "Bob"),
            ],
        );
        let spans: Vec<&str> = joined.iter().map(|f| &text[f.start..f.end]).collect();
        // Names do not join across a comma, nor across a full stop.
        assert_eq!(
            spans,
            [
                "Mary Smith",
                "221 Baker Street, Springfield, IL 62704",
                "Bob"
            ]
        );
    }

    #[test]
    fn entity_labels_map_to_kinds() {
        assert_eq!(Kind::of_entity("B-GIVEN_NAME"), Some(Kind::Person));
        assert_eq!(Kind::of_entity("SURNAME"), Some(Kind::Person));
        assert_eq!(Kind::of_entity("ZIP_CODE"), Some(Kind::Address));
        assert_eq!(Kind::of_entity("i-street_name"), Some(Kind::Address));
        assert_eq!(Kind::of_entity("PASSPORT"), Some(Kind::IdNumber));
        assert_eq!(Kind::of_entity("ROUTING_NUMBER"), Some(Kind::BankAccount));
        assert_eq!(Kind::of_entity("EMAIL"), Some(Kind::Email));
        assert_eq!(Kind::of_entity("O"), None);
        assert_eq!(Kind::of_entity("MISC"), None);
    }

    #[test]
    fn shared_detector_covers_structured_kinds() {
        assert_eq!(detector().kinds(), &Kind::STRUCTURED[..]);
    }
}
