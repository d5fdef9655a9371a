//! The aiaas side of `bench/run.sh`: word2vec throughput (CBOW and skip-gram), the
//! founding example (word2vec + avgpool, 10 epochs), `tfidf-logreg` and `auto` on the
//! fixed BBC News split, written as JSON. It also writes the tokenised split so the
//! Python peer (gensim + Keras) trains on exactly the same tokens.
//!
//! cargo run --release -p aiaas-train --example bench -- \
//!     --data DIR --tokens OUT_DIR --out OUT.json

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use aiaas_train::{train, train_word2vec, LabelledText, TrainControl};
use aiaas_types::{
    Architecture, EmbeddingInit, GloveParams, TrainConfig, TrainReport, Word2VecMode,
    Word2VecParams,
};
use serde_json::{json, Value};

fn main() {
    if let Err(e) = run() {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

struct Args {
    data: PathBuf,
    tokens: PathBuf,
    out: PathBuf,
    /// `--only word2vec` skips the classifiers (for quick word2vec measurements).
    only_word2vec: bool,
    /// `--w2v-repeats N`: word2vec runs per mode, median reported (default 5).
    w2v_repeats: usize,
}

fn args() -> Result<Args, String> {
    let mut data = None;
    let mut tokens = None;
    let mut out = None;
    let mut only_word2vec = false;
    let mut w2v_repeats = 5;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--data" => data = Some(PathBuf::from(value)),
            "--tokens" => tokens = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            "--only" if value == "word2vec" => only_word2vec = true,
            "--w2v-repeats" => {
                w2v_repeats = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--w2v-repeats needs a positive number")?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        data: data.ok_or("--data DIR is required")?,
        tokens: tokens.ok_or("--tokens DIR is required")?,
        out: out.ok_or("--out FILE is required")?,
        only_word2vec,
        w2v_repeats,
    })
}

fn read_csv(path: &Path) -> Result<Vec<LabelledText>, String> {
    let rows = aiaas_testkit::read_text_label_csv(path);
    Ok(rows.into_iter().map(LabelledText::from).collect())
}

/// Word vectors in word2vec's text format.
fn write_vectors(path: &Path, v: &aiaas_train::WordVectors) -> Result<(), String> {
    let mut text = format!("{} {}\n", v.len(), v.dim);
    for (word, row) in v.words.iter().zip(v.vectors.chunks_exact(v.dim)) {
        text.push_str(word);
        for x in row {
            text.push(' ');
            text.push_str(&x.to_string());
        }
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_tokens(path: &Path, rows: &[LabelledText]) -> Result<Vec<Vec<String>>, String> {
    let tokenised: Vec<Vec<String>> = rows
        .iter()
        .map(|r| aiaas_train::tokenize(&r.text))
        .collect();
    let mut text = String::new();
    for (r, t) in rows.iter().zip(&tokenised) {
        text.push_str(&r.label);
        text.push('\t');
        text.push_str(&t.join(" "));
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(tokenised)
}

/// The settings both sides use (gensim's names: vector_size, window, min_count, negative,
/// epochs, sample, alpha, min_alpha, workers).
fn w2v_params(mode: Word2VecMode) -> Word2VecParams {
    Word2VecParams {
        mode,
        vector_size: 100,
        window: 5,
        min_count: 2,
        negative: 5,
        epochs: 5,
        sample: 1e-3,
        alpha: 0.025,
        min_alpha: 0.0001,
        threads: 2,
    }
}

/// `auto`'s time budget here: enough for every candidate's first trial and most of the
/// search on a 2-core machine.
const AUTO_BUDGET: f64 = 300.0;

fn run() -> Result<(), String> {
    let a = args()?;
    let train_rows = read_csv(&a.data.join("bbc-train.csv"))?;
    let test_rows = read_csv(&a.data.join("bbc-test.csv"))?;
    std::fs::create_dir_all(&a.tokens).map_err(|e| e.to_string())?;
    let sentences = write_tokens(&a.tokens.join("train.tsv"), &train_rows)?;
    write_tokens(&a.tokens.join("test.tsv"), &test_rows)?;

    let cancel = AtomicBool::new(false);
    let quiet = |_e: aiaas_types::TrainEvent| {};
    let control = || TrainControl {
        cancel: &cancel,
        on_event: &quiet,
    };

    // Each mode runs `w2v_repeats` times on a fresh model; the median is reported, as on
    // the Python side.
    let mut w2v = serde_json::Map::new();
    for (name, mode) in [
        ("cbow", Word2VecMode::Cbow),
        ("skip-gram", Word2VecMode::SkipGram),
    ] {
        let mut runs = Vec::new();
        for repeat in 0..a.w2v_repeats {
            let (_, report) = train_word2vec(
                &sentences,
                &w2v_params(mode),
                42 + repeat as u64,
                &control(),
            )
            .map_err(|e| e.to_string())?;
            runs.push(report);
        }
        runs.sort_by(|a, b| a.words_per_second.total_cmp(&b.words_per_second));
        let median = &runs[runs.len() / 2];
        eprintln!(
            "word2vec {name}: {:.0} words/s (median of {})",
            median.words_per_second, a.w2v_repeats
        );
        w2v.insert(
            name.into(),
            json!({"words_per_second": median.words_per_second, "words": median.words, "seconds": median.seconds,
                   "runs": runs.iter().map(|r| r.words_per_second).collect::<Vec<_>>()}),
        );
    }

    if a.only_word2vec {
        let out = json!({"word2vec": w2v});
        std::fs::write(
            &a.out,
            serde_json::to_string_pretty(&out).unwrap_or_default(),
        )
        .map_err(|e| format!("{}: {e}", a.out.display()))?;
        return Ok(());
    }

    // GloVe on the 2,000 most frequent words, for bench/glove_reference.py (mittens on
    // the same counts); its vectors are written next to the tokens.
    let glove_params = GloveParams {
        vector_size: 50,
        min_count: 1,
        max_vocab: 2000,
        epochs: 50,
        threads: 2,
        ..GloveParams::default()
    };
    let (vectors, glove) = aiaas_train::train_glove(&sentences, &glove_params, 42, &control())
        .map_err(|e| e.to_string())?;
    write_vectors(&a.tokens.join("glove-vectors.txt"), &vectors)?;
    eprintln!(
        "glove: {} pairs x {} epochs in {:.2}s",
        glove.pairs, glove.epochs, glove.seconds
    );
    let glove_json = json!({"seconds": glove.seconds, "count_seconds": glove.count_seconds,
        "pairs": glove.pairs, "epochs": glove.epochs, "vocabulary": glove.vocabulary,
        "cost": glove.cost.last()});

    // The founding example: word2vec (skip-gram) init, avgpool, 10 epochs, batch 32,
    // Adam 1e-3, validation split 0.2 — the same settings as the Keras side.
    let founding = TrainConfig {
        architecture: Architecture::Avgpool,
        embedding: EmbeddingInit::Word2vec(w2v_params(Word2VecMode::SkipGram)),
        threads: 2,
        ..TrainConfig::default()
    };
    let avgpool = timed_train(&founding, &train_rows, &test_rows, control())?;
    let chosen = avgpool.chosen().ok_or("no avgpool candidate")?;
    let fit_seconds: f64 = chosen.curve.iter().map(|e| e.seconds).sum();
    let avgpool_json = json!({
        "train_seconds": fit_seconds,
        "candidate_seconds": chosen.train_seconds,
        "word2vec_seconds": avgpool.word2vec.as_ref().map(|w| w.seconds),
        "epochs": chosen.curve.len(),
        "accuracy": chosen.test.as_ref().map(|m| m.accuracy),
        "macro_f1": chosen.test.as_ref().map(|m| m.macro_f1),
    });
    eprintln!("avgpool: {avgpool_json}");

    let tfidf = timed_train(
        &TrainConfig {
            architecture: Architecture::TfidfLogreg,
            threads: 2,
            ..TrainConfig::default()
        },
        &train_rows,
        &test_rows,
        control(),
    )?;
    let started = Instant::now();
    let auto = timed_train(
        &TrainConfig {
            architecture: Architecture::Auto,
            threads: 2,
            time_budget_secs: Some(AUTO_BUDGET),
            ..TrainConfig::default()
        },
        &train_rows,
        &test_rows,
        control(),
    )?;
    let auto_seconds = started.elapsed().as_secs_f64();
    let summary = |r: &TrainReport, seconds: Option<f64>| -> Value {
        let c = r.chosen();
        json!({
            "chosen": r.architecture.as_str(),
            "accuracy": c.and_then(|c| c.test.as_ref()).map(|m| m.accuracy),
            "macro_f1": c.and_then(|c| c.test.as_ref()).map(|m| m.macro_f1),
            "train_seconds": seconds.unwrap_or(r.seconds),
            "search": r.search,
            "trials": r.candidates.iter().map(|c| c.trials.len()).sum::<usize>(),
            "candidates": r.candidates.iter().map(|c| json!({
                "architecture": c.architecture.as_str(),
                "validation_macro_f1": c.validation.as_ref().map(|m| m.macro_f1),
                "test_accuracy": c.test.as_ref().map(|m| m.accuracy),
                "train_seconds": c.train_seconds,
            })).collect::<Vec<_>>(),
        })
    };
    // The Chinese headlines (scripts/zh_news.py): tfidf-logreg and auto as shipped.
    let zh_train = read_csv(&a.data.join("zh-news-train.csv"))?;
    let zh_test = read_csv(&a.data.join("zh-news-test.csv"))?;
    let zh_tfidf = timed_train(
        &TrainConfig {
            architecture: Architecture::TfidfLogreg,
            threads: 2,
            ..TrainConfig::default()
        },
        &zh_train,
        &zh_test,
        control(),
    )?;
    let started = Instant::now();
    let zh_auto = timed_train(
        &TrainConfig {
            architecture: Architecture::Auto,
            threads: 2,
            time_budget_secs: Some(AUTO_BUDGET),
            ..TrainConfig::default()
        },
        &zh_train,
        &zh_test,
        control(),
    )?;
    let zh_auto_seconds = started.elapsed().as_secs_f64();
    let out = json!({
        "word2vec": w2v,
        "glove": glove_json,
        "avgpool": avgpool_json,
        "tfidf-logreg": summary(&tfidf, None),
        "auto": summary(&auto, Some(auto_seconds)),
        "zh-news": {
            "tfidf-logreg": summary(&zh_tfidf, None),
            "auto": summary(&zh_auto, Some(zh_auto_seconds)),
        },
    });
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(
        &a.out,
        serde_json::to_string_pretty(&out).unwrap_or_default(),
    )
    .map_err(|e| format!("{}: {e}", a.out.display()))?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

fn timed_train(
    config: &TrainConfig,
    train_rows: &[LabelledText],
    test_rows: &[LabelledText],
    control: TrainControl<'_>,
) -> Result<TrainReport, String> {
    let trained = train(config, train_rows, Some(test_rows), control).map_err(|e| e.to_string())?;
    Ok(trained.report)
}
