//! The crate seen from outside: precision and recall of the built-in rules over the
//! labelled corpus (`tests/fixtures/privacy/corpus.jsonl`, written by `make_corpus.py`),
//! and masking of the same corpus through the public API.
//!
//! `cargo test -p aiaas-privacy -- --nocapture` prints the per-kind table.

use std::collections::{BTreeMap, BTreeSet};

use aiaas_privacy::{detector, Detector, Kind, Mode, Policy, PseudonymKey, StreamMasker};

/// The labelled corpus, under the manifest folder as cargo gives it when it runs the test
/// (the binary may have been built from another checkout sharing the target folder).
fn corpus_path() -> String {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    format!("{manifest}/../../tests/fixtures/privacy/corpus.jsonl")
}

/// Both bounds, for every structured kind.
const REQUIRED: f64 = 0.99;
const MIN_POSITIVES: usize = 40;

#[derive(serde::Deserialize)]
struct Line {
    text: String,
    entities: Vec<Entity>,
}

#[derive(serde::Deserialize)]
struct Entity {
    kind: Kind,
    value: String,
}

type Span = (Kind, usize, usize);

#[derive(Default)]
struct Tally {
    true_pos: usize,
    false_pos: usize,
    false_neg: usize,
}

impl Tally {
    fn precision(&self) -> f64 {
        ratio(self.true_pos, self.true_pos + self.false_pos)
    }

    fn recall(&self) -> f64 {
        ratio(self.true_pos, self.true_pos + self.false_neg)
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

fn load() -> Vec<Line> {
    let path = corpus_path();
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    raw.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("corpus line {}: {e}", n + 1))
        })
        .collect()
}

/// The labelled spans of one line: each value searched for from the end of the previous
/// one, as the generator guarantees.
fn expected_spans(n: usize, line: &Line) -> BTreeSet<Span> {
    let mut cursor = 0;
    let mut spans = BTreeSet::new();
    for e in &line.entities {
        let Some(at) = line.text[cursor..].find(&e.value).map(|i| i + cursor) else {
            panic!("corpus line {}: {:?} not found in order", n + 1, e.value);
        };
        spans.insert((e.kind, at, at + e.value.len()));
        cursor = at + e.value.len();
    }
    spans
}

#[test]
fn corpus_precision_and_recall() {
    let lines = load();
    assert!(lines.len() >= 300, "corpus has only {} lines", lines.len());
    let mut tallies: BTreeMap<Kind, Tally> = Kind::STRUCTURED
        .into_iter()
        .map(|k| (k, Tally::default()))
        .collect();
    let mut mistakes = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let expected = expected_spans(n, line);
        let found: BTreeSet<Span> = detector()
            .find(&line.text)
            .into_iter()
            .map(|f| (f.kind, f.start, f.end))
            .collect();
        for span @ &(kind, start, end) in &found {
            let tally = tallies.entry(kind).or_default();
            if expected.contains(span) {
                tally.true_pos += 1;
            } else {
                tally.false_pos += 1;
                mistakes.push(format!(
                    "FP {kind} {:?} in line {}",
                    &line.text[start..end],
                    n + 1
                ));
            }
        }
        for &(kind, start, end) in expected.difference(&found) {
            tallies.entry(kind).or_default().false_neg += 1;
            mistakes.push(format!(
                "FN {kind} {:?} in line {}",
                &line.text[start..end],
                n + 1
            ));
        }
    }

    println!("\nPII corpus: {} lines ({})", lines.len(), corpus_path());
    println!(
        "{:<10} {:>6} {:>4} {:>4} {:>9} {:>7}",
        "kind", "TP", "FP", "FN", "precision", "recall"
    );
    for (kind, t) in &tallies {
        println!(
            "{:<10} {:>6} {:>4} {:>4} {:>9.4} {:>7.4}",
            kind.name(),
            t.true_pos,
            t.false_pos,
            t.false_neg,
            t.precision(),
            t.recall()
        );
    }
    for m in mistakes.iter().take(40) {
        println!("  {m}");
    }

    for kind in Kind::STRUCTURED {
        let t = &tallies[&kind];
        assert!(
            t.true_pos + t.false_neg >= MIN_POSITIVES,
            "{kind}: only {} labelled positives",
            t.true_pos + t.false_neg
        );
        assert!(
            t.precision() >= REQUIRED,
            "{kind}: precision {:.4}",
            t.precision()
        );
        assert!(t.recall() >= REQUIRED, "{kind}: recall {:.4}", t.recall());
    }
}

#[test]
fn label_mode_removes_every_labelled_value() {
    let policy = Policy::new(Mode::Label);
    for line in load() {
        let masked = detector().mask(&line.text, &policy);
        for e in &line.entities {
            assert!(
                !masked.text.contains(&e.value),
                "{:?} survived in {:?}",
                e.value,
                masked.text
            );
        }
        let masked_total: usize = masked.counts.values().sum();
        assert!(masked_total >= line.entities.len());
    }
}

#[test]
fn pseudonyms_join_across_lines_but_not_tenants() {
    let tenant_a = Policy::pseudonymise(PseudonymKey::derive(b"master", "a"));
    let tenant_b = Policy::pseudonymise(PseudonymKey::derive(b"master", "b"));
    let d = Detector::default();
    let one = d.mask("电话 138-1234-5678", &tenant_a).text;
    let two = d.mask("电话 +86 13812345678", &tenant_a).text;
    let other = d.mask("电话 138-1234-5678", &tenant_b).text;
    assert_eq!(one, two);
    assert_ne!(one, other);
}

#[test]
fn detector_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Detector>();
    assert_send_sync::<Policy>();
    let handles: Vec<_> = (0..4)
        .map(|i| std::thread::spawn(move || detector().find(&format!("n{i} 13812345678")).len()))
        .collect();
    for h in handles {
        assert_eq!(h.join().ok(), Some(1));
    }
}

/// Streaming a line in pieces masks it exactly as masking it whole does, wherever it is
/// cut: one character at a time, at every single cut point, and at pseudo-random cuts.
#[test]
fn streamed_masking_equals_whole_text_masking() {
    let policy = Policy::new(Mode::Mask);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    let run = |chunks: &[&str]| {
        let mut m = StreamMasker::new(detector().clone(), policy.clone());
        let mut out: String = chunks.iter().map(|c| m.push(c)).collect();
        out.push_str(&m.finish());
        out
    };
    for line in load() {
        let whole = detector().mask(&line.text, &policy).text;
        let bounds: Vec<usize> = (0..=line.text.len())
            .filter(|&i| line.text.is_char_boundary(i))
            .collect();
        let by_char: Vec<&str> = bounds.windows(2).map(|w| &line.text[w[0]..w[1]]).collect();
        assert_eq!(run(&by_char), whole, "one char at a time: {:?}", line.text);
        for &cut in &bounds {
            let (a, b) = line.text.split_at(cut);
            assert_eq!(run(&[a, b]), whole, "cut at {cut}: {:?}", line.text);
        }
        for _ in 0..20 {
            let mut cuts: Vec<usize> = (0..4).map(|_| bounds[next(bounds.len())]).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut from = 0;
            for c in cuts.into_iter().chain([line.text.len()]) {
                pieces.push(&line.text[from..c]);
                from = c;
            }
            assert_eq!(run(&pieces), whole, "cuts {pieces:?}");
        }
    }
}
