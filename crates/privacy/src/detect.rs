//! [`Detector`]: runs the rules for a chosen set of kinds, reconciles their findings, and
//! masks texts and JSON documents with them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::mask::{self, Masked, Policy};
use crate::{rules, Counts, Finding, Kind};

/// Finds and masks PII of a chosen set of kinds.
///
/// The regexes behind it are compiled once per process and shared, so a `Detector` is just
/// a list of kinds: cheap to build per tenant policy, `Send + Sync`, cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detector {
    /// Structured kinds only, deduplicated, in [`Kind::STRUCTURED`] order.
    kinds: Vec<Kind>,
}

impl Detector {
    /// A detector for `kinds`. [`Kind::Person`] is accepted but has no built-in rule; pass
    /// NER spans to [`Detector::mask_with`] instead. Compiles the regexes on first use in
    /// the process, so the first request does not pay for it.
    pub fn new(kinds: &[Kind]) -> Self {
        let kinds: Vec<Kind> = Kind::STRUCTURED
            .into_iter()
            .filter(|k| kinds.contains(k))
            .collect();
        for &kind in &kinds {
            rules::find(kind, "", &mut Vec::new());
        }
        Detector { kinds }
    }

    /// The kinds this detector looks for.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The PII in `text`: byte offsets on char boundaries, sorted, non-overlapping.
    ///
    /// Where rules disagree about a stretch of text the longest finding wins, then the
    /// more specific kind (email, china_id, bank_card, phone, ipv6, ipv4): an 18-digit
    /// resident ID that also passes as a card number is an ID, and an IPv4-mapped IPv6
    /// address is not also an IPv4 address.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut all = Vec::new();
        for &kind in &self.kinds {
            rules::find(kind, text, &mut all);
        }
        keep_longest(all)
    }

    /// `text` with this detector's findings rewritten by `policy`.
    pub fn mask(&self, text: &str, policy: &Policy) -> Masked {
        mask::apply(text, &self.find(text), policy)
    }

    /// Like [`Detector::mask`], plus spans found elsewhere (an NER model's [`Kind::Person`]
    /// or [`Kind::Address`] spans, say). The rules' findings are exact and win: a span
    /// that overlaps one is dropped. Among the other spans the earliest start wins, then
    /// the longest, then the more specific kind. Spans that are empty, run past the text
    /// or cut a character in two are ignored rather than trusted.
    pub fn mask_with(&self, text: &str, extra: &[Finding], policy: &Policy) -> Masked {
        mask::apply(text, &self.find_with(text, extra), policy)
    }

    /// The findings [`Detector::mask_with`] rewrites.
    pub fn find_with(&self, text: &str, extra: &[Finding]) -> Vec<Finding> {
        let rules = self.find(text);
        let overlaps_a_rule =
            |f: &Finding| rules.iter().any(|r| r.start < f.end && f.start < r.end);
        let mut all: Vec<Finding> = keep_earliest(
            extra
                .iter()
                .filter(|f| is_valid_span(text, f) && !overlaps_a_rule(f))
                .cloned()
                .collect(),
        );
        all.extend(rules);
        all.sort_by_key(|f| f.start);
        all
    }

    /// Masks every string value in `value`, at any depth, in place, and returns the
    /// combined counts. Object keys are left alone (they are schema, not data), and so
    /// are numbers: a phone number stored as a JSON number is not found.
    pub fn mask_json(&self, value: &mut Value, policy: &Policy) -> Counts {
        let mut counts = Counts::new();
        // An explicit stack: a document built in code has no nesting limit, and recursion
        // on a hostile one would overflow the thread's stack.
        let mut pending = vec![value];
        while let Some(v) = pending.pop() {
            match v {
                Value::String(s) => {
                    let masked = self.mask(s, policy);
                    if !masked.counts.is_empty() {
                        *s = masked.text;
                        for (kind, n) in masked.counts {
                            *counts.entry(kind).or_insert(0) += n;
                        }
                    }
                }
                Value::Array(items) => pending.extend(items.iter_mut()),
                Value::Object(map) => pending.extend(map.values_mut()),
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
        counts
    }
}

impl Default for Detector {
    /// All structured kinds.
    fn default() -> Self {
        Detector::new(&Kind::STRUCTURED)
    }
}

fn is_valid_span(text: &str, f: &Finding) -> bool {
    f.start < f.end
        && f.end <= text.len()
        && text.is_char_boundary(f.start)
        && text.is_char_boundary(f.end)
}

/// Longest first, then kind precedence, then position; a finding is kept if it overlaps
/// none kept so far. Returns them sorted by start.
fn keep_longest(mut all: Vec<Finding>) -> Vec<Finding> {
    all.sort_by(|a, b| {
        b.len()
            .cmp(&a.len())
            .then(a.kind.precedence().cmp(&b.kind.precedence()))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: BTreeMap<usize, Finding> = BTreeMap::new();
    for f in all {
        // Kept spans are disjoint, so only the last one starting before `f` ends can
        // reach into it.
        let clashes = kept
            .range(..f.end)
            .next_back()
            .is_some_and(|(_, g)| g.end > f.start);
        if !clashes {
            kept.insert(f.start, f);
        }
    }
    kept.into_values().collect()
}

/// Earliest start first, then longest, then kind precedence; a finding is kept if it
/// starts at or after the end of the last one kept.
fn keep_earliest(mut all: Vec<Finding>) -> Vec<Finding> {
    all.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.len().cmp(&a.len()))
            .then(a.kind.precedence().cmp(&b.kind.precedence()))
    });
    let mut kept: Vec<Finding> = Vec::with_capacity(all.len());
    for f in all {
        if kept.last().is_none_or(|last| f.start >= last.end) {
            kept.push(f);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mode, PseudonymKey};

    fn spans(text: &str) -> Vec<(Kind, &str)> {
        crate::detector()
            .find(text)
            .into_iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    fn label() -> Policy {
        Policy::new(Mode::Label)
    }

    #[test]
    fn finds_every_kind_in_one_sentence() {
        let text =
            "请联系张先生，电话13812345678，邮箱zhang.wei@example.cn，身份证11010519491231002X，\
                    卡号6222021234567890128，IP 192.168.1.10 / 2001:db8::1。";
        assert_eq!(
            spans(text),
            [
                (Kind::Phone, "13812345678"),
                (Kind::Email, "zhang.wei@example.cn"),
                (Kind::ChinaId, "11010519491231002X"),
                (Kind::BankCard, "6222021234567890128"),
                (Kind::Ipv4, "192.168.1.10"),
                (Kind::Ipv6, "2001:db8::1"),
            ]
        );
    }

    #[test]
    fn china_id_beats_an_equally_long_card_reading() {
        // Find a valid ID that is also a Luhn-valid UnionPay number (prefix 62 is Gansu).
        let id = (0..1000)
            .map(|seq| with_check(&format!("62010219900101{seq:03}")))
            .find(|id| id.len() == 18 && crate::rules::test_support::is_card(id))
            .unwrap_or_default();
        assert!(!id.is_empty(), "no ID doubles as a card in the sample");
        assert_eq!(spans(&format!("no. {id}")), [(Kind::ChinaId, id.as_str())]);
        // And with the ID rule off, the same digits are a card.
        let cards = Detector::new(&[Kind::BankCard]).find(&id);
        assert_eq!(cards.first().map(|f| f.kind), Some(Kind::BankCard));
    }

    #[test]
    fn ipv6_with_ipv4_tail_is_one_finding() {
        assert_eq!(
            spans("peer ::ffff:192.0.2.128 up"),
            [(Kind::Ipv6, "::ffff:192.0.2.128")]
        );
    }

    #[test]
    fn longest_wins_then_precedence() {
        let f = |kind, start, end| Finding { kind, start, end };
        let kept = keep_longest(vec![
            f(Kind::Ipv4, 0, 5),
            f(Kind::Phone, 3, 12),
            f(Kind::BankCard, 3, 12),
            f(Kind::Email, 12, 14),
        ]);
        assert_eq!(kept, [f(Kind::BankCard, 3, 12), f(Kind::Email, 12, 14)]);
        let kept = keep_earliest(vec![
            f(Kind::Phone, 3, 12),
            f(Kind::Person, 0, 5),
            f(Kind::Person, 0, 2),
            f(Kind::Email, 12, 14),
        ]);
        assert_eq!(kept, [f(Kind::Person, 0, 5), f(Kind::Email, 12, 14)]);
    }

    #[test]
    fn mask_with_merges_ner_spans_and_ignores_bad_ones() {
        let text = "张伟的电话是13812345678";
        let person = Finding {
            kind: Kind::Person,
            start: 0,
            end: "张伟".len(),
        };
        let bad = [
            Finding {
                kind: Kind::Person,
                start: 1,
                end: 3,
            },
            Finding {
                kind: Kind::Person,
                start: 5,
                end: 500,
            },
            Finding {
                kind: Kind::Person,
                start: 4,
                end: 4,
            },
        ];
        let mut extra = vec![person];
        extra.extend(bad);
        let masked = crate::detector().mask_with(text, &extra, &Policy::new(Mode::Mask));
        assert_eq!(masked.text, "张**的电话是138****5678");
        assert_eq!(masked.counts.get(&Kind::Person), Some(&1));
        assert_eq!(masked.counts.get(&Kind::Phone), Some(&1));
        // An NER span overlapping a rule's finding: the rule's exact finding wins.
        let overlapping = Finding {
            kind: Kind::Person,
            start: "张伟的电话是".len() - 3,
            end: text.len(),
        };
        let masked = crate::detector().mask_with(text, &[overlapping], &label());
        assert_eq!(masked.text, "张伟的电话是[PHONE]");
    }

    #[test]
    fn modes_end_to_end() {
        let text = "mail Li.Na@Example.com or call +86 138-1234-5678 from 10.1.2.3";
        let d = crate::detector();
        assert_eq!(
            d.mask(text, &Policy::new(Mode::Mask)).text,
            "mail L***@Example.com or call +86 138-****-5678 from 10.1.*.*"
        );
        assert_eq!(
            d.mask(text, &label()).text,
            "mail [EMAIL] or call [PHONE] from [IPV4]"
        );
        let key = PseudonymKey::derive(b"master secret", "tenant-1");
        let policy = Policy::pseudonymise(key);
        let a = d.mask("call 13812345678", &policy).text;
        let b = d.mask("call +86 138 1234 5678", &policy).text;
        assert_eq!(a, b);
        assert!(a.starts_with("call [PHONE:"), "{a}");
    }

    #[test]
    fn utf8_around_findings() {
        let text = "🙂é电话13812345678😀ü邮箱a@b.cn中文";
        for f in crate::detector().find(text) {
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        let masked = crate::detector().mask(text, &Policy::new(Mode::Mask));
        assert_eq!(masked.text, "🙂é电话138****5678😀ü邮箱a***@b.cn中文");
    }

    #[test]
    fn subset_detector_only_finds_its_kinds() {
        let d = Detector::new(&[Kind::Email, Kind::Person, Kind::Email]);
        assert_eq!(d.kinds(), [Kind::Email]);
        let found = d.find("x@y.io 13812345678 10.0.0.1");
        assert_eq!(found.len(), 1);
        assert!(Detector::new(&[]).find("x@y.io").is_empty());
    }

    #[test]
    fn mask_json_masks_string_values_at_any_depth() {
        let mut doc = serde_json::json!({
            "user": {"email": "zhang@example.cn", "phones": ["13812345678", 13812345678u64]},
            "13812345678": "key stays",
            "note": "nothing here",
            "n": null,
        });
        let counts = crate::detector().mask_json(&mut doc, &label());
        assert_eq!(doc["user"]["email"], "[EMAIL]");
        assert_eq!(doc["user"]["phones"][0], "[PHONE]");
        assert_eq!(doc["user"]["phones"][1], 13812345678u64);
        assert_eq!(doc["13812345678"], "key stays");
        assert_eq!(doc["note"], "nothing here");
        assert_eq!(counts.get(&Kind::Email), Some(&1));
        assert_eq!(counts.get(&Kind::Phone), Some(&1));
    }

    #[test]
    fn mask_json_survives_deep_nesting() {
        let mut doc = Value::String("a@b.io".into());
        for _ in 0..100_000 {
            doc = Value::Array(vec![doc]);
        }
        let counts = crate::detector().mask_json(&mut doc, &label());
        assert_eq!(counts.get(&Kind::Email), Some(&1));
        // Dropping a 100k-deep Value recurses in serde_json's Drop; unwind it by hand.
        let mut cur = doc;
        while let Value::Array(mut items) = cur {
            cur = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn random_bytes_never_panic_and_stay_on_char_boundaries() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        // Bytes biased towards the characters the rules care about, so the rules'
        // validators actually run.
        const ALPHABET: &[u8] = b"0123456789012345678901234567890123456789 .:-+@()xXab_\n";
        for round in 0..3000 {
            let len = (rng.next() % 200) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.next() % 10 {
                    0 => (rng.next() & 0xff) as u8,
                    _ => ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize],
                })
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            let findings = crate::detector().find(&text);
            for pair in findings.windows(2) {
                assert!(
                    pair[0].end <= pair[1].start,
                    "round {round}: overlap in {text:?}"
                );
            }
            for f in &findings {
                assert!(f.start < f.end && f.end <= text.len());
                assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            }
            let _ = crate::detector().mask(&text, &Policy::new(Mode::Mask));
        }
    }

    #[test]
    fn a_megabyte_is_fast() {
        let line = "2024-01-15T12:30:45Z INFO user=zhang.wei@example.cn ip=192.168.1.10 \
                    phone=138-1234-5678 card=4111 1111 1111 1111 order=202311301381234567890 \
                    v2.10.0.1 mac=00:1a:2b:3c:4d:5e 请联系张先生 11010519491231002X\n";
        let text = line.repeat((1 << 20) / line.len() + 1);
        let started = std::time::Instant::now();
        let findings = crate::detector().find(&text);
        let took = started.elapsed();
        println!("1 MB of log lines: {} findings in {took:?}", findings.len());
        assert_eq!(findings.len(), 5 * text.matches('\n').count());
        // Generous: unoptimised test builds on a busy 2-core machine.
        assert!(took.as_secs_f64() < 10.0, "{took:?}");
    }

    #[test]
    fn adversarial_megabytes_are_fast() {
        // Inputs built to make candidate-and-reject loops go quadratic if a rule resumed
        // its search badly.
        let mb = 1 << 20;
        let inputs = [
            ("digits", "1".repeat(mb)),
            ("card-ish groups", "4111 ".repeat(mb / 5)),
            ("dotted digits", "1.".repeat(mb / 2)),
            ("colon hex", "a:".repeat(mb / 2)),
            ("at signs", "a.b@".repeat(mb / 4)),
            ("long local part", format!("{}@example.com", "a".repeat(mb))),
            ("long domain", format!("a@{}com", "b.".repeat(mb / 2))),
            ("plus digits", "+1 2".repeat(mb / 4)),
            ("cjk", "电话号码".repeat(mb / 12)),
        ];
        for (name, text) in &inputs {
            let started = std::time::Instant::now();
            let found = crate::detector().find(text).len();
            let took = started.elapsed();
            println!("1 MB of {name}: {found} findings in {took:?}");
            assert!(took.as_secs_f64() < 10.0, "{name}: {took:?}");
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn with_check(first17: &str) -> String {
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = first17
            .bytes()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        format!("{first17}{}", b"10X98765432"[(sum % 11) as usize] as char)
    }
}
