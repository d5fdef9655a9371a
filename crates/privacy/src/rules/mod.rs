//! The built-in detection rules, one module per structured kind.
//!
//! Each rule appends its own non-overlapping findings in text order; reconciling rules
//! with each other is [`crate::Detector::find`]'s job.

mod bank_card;
mod china_id;
mod email;
mod ip;
pub(crate) mod phone;

use crate::{Finding, Kind};

/// Appends `kind`'s findings in `text` to `out`. [`Kind::Person`] has no rule.
pub(crate) fn find(kind: Kind, text: &str, out: &mut Vec<Finding>) {
    match kind {
        Kind::Email => email::find(text, out),
        Kind::Phone => phone::find(text, out),
        Kind::ChinaId => china_id::find(text, out),
        Kind::BankCard => bank_card::find(text, out),
        Kind::Ipv4 => ip::find_v4(text, out),
        Kind::Ipv6 => ip::find_v6(text, out),
        Kind::Person | Kind::Address | Kind::Url | Kind::IdNumber | Kind::BankAccount => {}
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::{Finding, Kind};

    /// The substrings one rule finds in `text`.
    pub(crate) fn found(kind: Kind, text: &str) -> Vec<String> {
        let mut out: Vec<Finding> = Vec::new();
        super::find(kind, text, &mut out);
        out.iter()
            .map(|f| text[f.start..f.end].to_string())
            .collect()
    }

    /// Whether `digits` passes the card rule's length, issuer and Luhn checks.
    pub(crate) fn is_card(digits: &str) -> bool {
        super::bank_card::is_card_number(digits)
    }
}
