//! Latency of one explanation per text on BBC News test articles (about 400 words):
//! tfidf-logreg's exact attributions, avgpool's integrated gradients (64 steps) and
//! occlusion on both, against a
//! plain prediction of the same text. Prints one line per method.
//!
//! ```sh
//! cargo run --release -p aiaas-train --example explain_time -- DATA_DIR [TEXTS]
//! ```
//! DATA_DIR holds bbc-train.csv and bbc-test.csv (scripts/setup.sh puts them in
//! ~/.cache/aiaas-data-cache).

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use aiaas_train::{train, Classifier, ExplainMethod, ExplainOptions, LabelledText, TrainControl};
use aiaas_types::{Architecture, EmbeddingInit, TfidfOptions, TrainConfig};

fn read(path: &std::path::Path) -> Vec<LabelledText> {
    let rows = aiaas_testkit::read_text_label_csv(path);
    rows.into_iter().map(LabelledText::from).collect()
}

fn fit(config: &TrainConfig, rows: &[LabelledText]) -> Classifier {
    let cancel = AtomicBool::new(false);
    let control = TrainControl {
        cancel: &cancel,
        on_event: &|_| {},
    };
    let files = train(config, rows, None, control).expect("train").files;
    Classifier::from_files(&files).expect("load")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: explain_time DATA_DIR [TEXTS]"));
    let count: usize = args.next().map_or(50, |n| n.parse().expect("TEXTS"));
    let rows = read(&dir.join("bbc-train.csv"));
    let test = read(&dir.join("bbc-test.csv"));
    let texts: Vec<&str> = test.iter().take(count).map(|r| r.text.as_str()).collect();
    let tfidf = fit(
        &TrainConfig {
            architecture: Architecture::TfidfLogreg,
            tfidf: TfidfOptions {
                c: Some(10.0),
                min_df: Some(2),
                ..TfidfOptions::default()
            },
            ..TrainConfig::default()
        },
        &rows,
    );
    let avgpool = fit(
        &TrainConfig {
            architecture: Architecture::Avgpool,
            embedding: EmbeddingInit::Random,
            ..TrainConfig::default()
        },
        &rows,
    );
    let words: usize = texts.iter().map(|t| aiaas_train::tokenize(t).len()).sum();
    println!(
        "{} texts, {:.0} words each on average",
        texts.len(),
        words as f64 / texts.len() as f64
    );
    for (name, model, method) in [
        ("tfidf-logreg predict only", &tfidf, None),
        ("tfidf-logreg exact", &tfidf, Some(ExplainMethod::Exact)),
        (
            "tfidf-logreg occlusion",
            &tfidf,
            Some(ExplainMethod::Occlusion),
        ),
        ("avgpool predict only", &avgpool, None),
        (
            "avgpool integrated grads",
            &avgpool,
            Some(ExplainMethod::IntegratedGradients),
        ),
        (
            "avgpool occlusion",
            &avgpool,
            Some(ExplainMethod::Occlusion),
        ),
    ] {
        let started = Instant::now();
        for text in &texts {
            match method {
                None => drop(model.predict(&[text]).expect("predict")),
                Some(method) => {
                    let opts = ExplainOptions {
                        method,
                        ..ExplainOptions::default()
                    };
                    drop(model.explain(text, &opts).expect("explain"));
                }
            }
        }
        let ms = started.elapsed().as_secs_f64() * 1e3 / texts.len() as f64;
        println!("{name:<28} {ms:>8.2} ms per text");
    }
}
