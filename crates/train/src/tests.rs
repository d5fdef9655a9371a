//! End-to-end tests of `train` and `Classifier` on synthetic data, plus ignored benchmarks on the
//! BBC News corpus.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Instant;

use aiaas_types::{Architecture, EmbeddingInit, TrainConfig, TrainEvent, Word2VecParams};

use crate::pipeline::train_with_classifier;
use crate::{train, Classifier, LabelledText, TrainControl, TrainError, MODEL_FILE, WEIGHTS_FILE};

/// Three topics with distinct vocabularies plus shared filler words.
fn synthetic(n: usize, seed: u64) -> Vec<LabelledText> {
    let topics = [
        (
            "sport",
            ["goal", "match", "team", "league", "coach", "score"],
        ),
        (
            "tech",
            ["software", "chip", "phone", "internet", "computer", "data"],
        ),
        (
            "politics",
            ["vote", "minister", "election", "party", "law", "senate"],
        ),
    ];
    let filler = ["the", "a", "of", "and", "today", "new", "said"];
    let mut state = seed.wrapping_add(1);
    let mut next = move |m: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % m
    };
    (0..n)
        .map(|i| {
            let (label, words) = &topics[i % topics.len()];
            let len = 6 + next(8);
            let text: Vec<&str> = (0..len)
                .map(|_| {
                    if next(2) == 0 {
                        words[next(words.len())]
                    } else {
                        filler[next(filler.len())]
                    }
                })
                .collect();
            LabelledText {
                text: text.join(" ") + ".",
                label: label.to_string(),
            }
        })
        .collect()
}

fn quiet<R>(f: impl FnOnce(&TrainControl<'_>) -> R) -> R {
    let cancel = AtomicBool::new(false);
    let on_event = |_e: TrainEvent| {};
    f(&TrainControl {
        cancel: &cancel,
        on_event: &on_event,
    })
}

fn small_config(arch: Architecture) -> TrainConfig {
    TrainConfig {
        architecture: arch,
        embedding: EmbeddingInit::Word2vec(Word2VecParams {
            vector_size: 16,
            epochs: 3,
            threads: 1,
            min_count: 1,
            ..Word2VecParams::default()
        }),
        epochs: 15,
        batch_size: 16,
        learning_rate: 0.01,
        filters: 16,
        rnn_hidden: 8,
        ..TrainConfig::default()
    }
}

/// Train, check the report, and check that the saved files predict exactly like the
/// in-memory model.
fn train_and_roundtrip(arch: Architecture) -> Classifier {
    let rows = synthetic(240, 1);
    let test = synthetic(60, 2);
    let config = small_config(arch);
    let (model, in_memory) =
        quiet(|c| train_with_classifier(&config, &rows, Some(&test), c)).unwrap();
    let r = &model.report;
    assert_eq!(r.labels, vec!["politics", "sport", "tech"]);
    assert_eq!(r.train_samples + r.validation_samples, 240);
    assert_eq!(r.test_samples, 60);
    let chosen = r.chosen().unwrap();
    assert!(!chosen.curve.is_empty());
    for e in &chosen.curve {
        eprintln!("{arch:?} {e:?}");
    }
    let test_metrics = chosen.test.as_ref().unwrap();
    assert!(test_metrics.accuracy > 0.9, "{arch:?}: {test_metrics:?}");
    assert!(chosen.validation.is_some());

    let loaded = Classifier::from_files(&model.files).unwrap();
    assert_eq!(loaded.labels(), in_memory.labels());
    assert_eq!(loaded.architecture(), arch);
    let texts: Vec<&str> = test
        .iter()
        .map(|r| r.text.as_str())
        .chain(["", "?!"])
        .collect();
    let a = loaded.predict(&texts).unwrap();
    let b = in_memory.predict(&texts).unwrap();
    assert_eq!(a, b);
    for p in &a {
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|x| x.is_finite()));
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
    assert!(loaded.predict(&[]).unwrap().is_empty());
    loaded
}

#[test]
fn avgpool_trains_saves_and_loads() {
    train_and_roundtrip(Architecture::Avgpool);
}

#[test]
fn tfidf_logreg_trains_saves_and_loads() {
    train_and_roundtrip(Architecture::TfidfLogreg);
}

#[test]
fn textcnn_trains_saves_and_loads() {
    train_and_roundtrip(Architecture::Textcnn);
}

#[test]
fn gru_trains_saves_and_loads() {
    train_and_roundtrip(Architecture::Gru);
}

#[test]
fn lstm_trains_saves_and_loads() {
    train_and_roundtrip(Architecture::Lstm);
}

#[test]
fn same_seed_gives_the_same_model() {
    let rows = synthetic(120, 3);
    let config = small_config(Architecture::Avgpool);
    let a = quiet(|c| {
        train(
            &config,
            &rows,
            None,
            TrainControl {
                cancel: c.cancel,
                on_event: c.on_event,
            },
        )
    })
    .unwrap();
    let b = quiet(|c| {
        train(
            &config,
            &rows,
            None,
            TrainControl {
                cancel: c.cancel,
                on_event: c.on_event,
            },
        )
    })
    .unwrap();
    assert_eq!(a.files, b.files);
}

#[test]
fn auto_keeps_the_best_validation_candidate_and_reports_all() {
    let rows = synthetic(180, 4);
    let config = TrainConfig {
        architecture: Architecture::Auto,
        candidates: vec![Architecture::TfidfLogreg, Architecture::Avgpool],
        ..small_config(Architecture::Auto)
    };
    let events = Mutex::new(Vec::new());
    let cancel = AtomicBool::new(false);
    let on_event = |e: TrainEvent| events.lock().unwrap().push(e);
    let model = train(
        &config,
        &rows,
        None,
        TrainControl {
            cancel: &cancel,
            on_event: &on_event,
        },
    )
    .unwrap();
    let r = &model.report;
    assert_eq!(r.candidates.len(), 2);
    let score = |i: usize| {
        let v = r.candidates[i].validation.as_ref().unwrap();
        (v.accuracy, v.macro_f1)
    };
    let winner = if score(1) > score(0) { 1 } else { 0 };
    assert_eq!(r.architecture, r.candidates[winner].architecture);
    assert_eq!(
        Classifier::from_files(&model.files).unwrap().architecture(),
        r.architecture
    );
    let events = events.into_inner().unwrap();
    let done = events
        .iter()
        .filter(|e| matches!(e, TrainEvent::CandidateDone { .. }))
        .count();
    assert_eq!(done, 2);
    assert!(events
        .iter()
        .any(|e| matches!(e, TrainEvent::Word2vecEpoch { .. })));
    assert!(events.iter().any(|e| matches!(
        e,
        TrainEvent::Epoch {
            architecture: Architecture::Avgpool,
            ..
        }
    )));
    assert!(matches!(&events[0], TrainEvent::Phase { name } if name == "prepare"));
    // The winner is trained again on training + validation data and that is the kept model.
    let refit = r.refit.as_ref().expect("auto refits its winner by default");
    assert_eq!(refit.architecture, r.architecture);
    assert!(
        refit.validation.is_none(),
        "the refit has no validation split left"
    );
    assert_eq!(r.chosen(), Some(refit));
    let refit_phase = format!("refit:{}", r.architecture.as_str());
    assert!(events
        .iter()
        .any(|e| matches!(e, TrainEvent::Phase { name } if *name == refit_phase)));
}

#[test]
fn auto_searches_each_network_and_refits_the_chosen_settings() {
    let rows = synthetic(180, 8);
    let config = TrainConfig {
        candidates: vec![Architecture::TfidfLogreg, Architecture::Avgpool],
        ..small_config(Architecture::Auto)
    };
    let (model, _) = quiet(|c| train_with_classifier(&config, &rows, None, c)).unwrap();
    let r = &model.report;
    let avgpool = &r.candidates[1];
    // The configured trial, the other two initialisations, the learning rate x3 and /3.
    let tried: Vec<(String, f64)> = avgpool
        .trials
        .iter()
        .map(|t| {
            (
                t.settings["init"].as_str().unwrap().to_string(),
                t.settings["learning_rate"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tried.len(), 5, "{tried:?}");
    assert_eq!(
        &tried[..3].iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        &["word2vec", "glove", "random"]
    );
    assert!(tried[..3].iter().all(|t| t.1 == 0.01));
    let lrs: Vec<f64> = tried[3..].iter().map(|t| t.1).collect();
    assert!((lrs[0] - 0.03).abs() < 1e-12 && (lrs[1] - 0.01 / 3.0).abs() < 1e-12);
    // The learning-rate trials use the best initialisation of the first three.
    let best_init = avgpool.trials[..3]
        .iter()
        .max_by(|a, b| {
            a.val_accuracy
                .total_cmp(&b.val_accuracy)
                .then(b.val_loss.total_cmp(&a.val_loss))
        })
        .unwrap()
        .settings["init"]
        .clone();
    assert!(tried[3..]
        .iter()
        .all(|t| t.0 == best_init.as_str().unwrap()));
    // Early stopping chose each trial's epochs; exactly one trial is kept, and the
    // candidate's validation figures are its.
    assert!(avgpool.trials.iter().all(|t| {
        let (e, run) = (
            t.settings["epochs"].as_u64().unwrap(),
            t.settings["epochs_run"].as_u64().unwrap(),
        );
        e >= 1 && e <= run && run <= 15
    }));
    let chosen: Vec<_> = avgpool.trials.iter().filter(|t| t.chosen).collect();
    assert_eq!(chosen.len(), 1);
    assert_eq!(
        avgpool.validation.as_ref().unwrap().accuracy,
        chosen[0].val_accuracy
    );
    assert!(avgpool
        .trials
        .iter()
        .all(|t| t.val_accuracy <= chosen[0].val_accuracy));
    assert!(r.glove.is_some() && r.word2vec.is_some());
    let search = r.search.as_ref().unwrap();
    assert_eq!(search.trials, r.candidates[0].trials.len() + 5);
    assert_eq!(
        (search.skipped, search.cut_short, search.refit_skipped),
        (0, false, false)
    );
    // The refit trains the winner again for its chosen trial's epochs.
    let refit = r.refit.as_ref().unwrap();
    if r.architecture == Architecture::Avgpool {
        assert_eq!(
            refit.curve.len() as u64,
            chosen[0].settings["epochs"].as_u64().unwrap()
        );
    }
    // Without `search`, one trial per network and none listed.
    let plain = TrainConfig {
        search: false,
        ..config
    };
    let (model, _) = quiet(|c| train_with_classifier(&plain, &rows, None, c)).unwrap();
    assert!(model.report.candidates[1].trials.is_empty());
    assert!(model.report.glove.is_none());
}

#[test]
fn a_time_budget_bounds_the_search() {
    let rows = synthetic(600, 9);
    // Left alone, textcnn would train 1000 epochs: the budget must stop it, leave avgpool
    // out, and end the job in time.
    let config = TrainConfig {
        candidates: vec![Architecture::Textcnn, Architecture::Avgpool],
        epochs: 1000,
        early_stopping_patience: Some(1000),
        time_budget_secs: Some(1.0),
        ..small_config(Architecture::Auto)
    };
    let started = Instant::now();
    let (model, _) = quiet(|c| train_with_classifier(&config, &rows, None, c)).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let r = &model.report;
    let search = r.search.as_ref().unwrap();
    assert!(search.seconds <= 1.0, "{search:?}");
    assert!(seconds < 1.5, "the job took {seconds}s");
    assert!(search.cut_short && search.skipped >= 1, "{search:?}");
    assert_eq!(r.candidates.len(), 1, "avgpool had no time left");
    let trial = &r.candidates[0].trials[0];
    assert_eq!(trial.settings["cut_short"], serde_json::json!(true));
    assert!(trial.settings["epochs_run"].as_u64().unwrap() < 1000);
    // The cut model is a working one.
    assert_eq!(
        Classifier::from_files(&model.files).unwrap().architecture(),
        Architecture::Textcnn
    );
}

#[test]
fn auto_without_refit_keeps_the_selected_candidate() {
    let rows = synthetic(120, 6);
    let config = TrainConfig {
        candidates: vec![Architecture::TfidfLogreg, Architecture::Avgpool],
        refit: false,
        ..small_config(Architecture::Auto)
    };
    let (model, _) = quiet(|c| train_with_classifier(&config, &rows, None, c)).unwrap();
    assert!(model.report.refit.is_none());
    let chosen = model.report.chosen().unwrap();
    assert_eq!(chosen.architecture, model.report.architecture);
    assert!(chosen.validation.is_some());
}

#[test]
fn rejects_single_class_and_unseen_test_labels() {
    let mut rows = synthetic(30, 5);
    let config = small_config(Architecture::Avgpool);
    let test = vec![LabelledText {
        text: "x".into(),
        label: "weather".into(),
    }];
    let e = quiet(|c| train_with_classifier(&config, &rows, Some(&test), c))
        .err()
        .unwrap();
    assert!(
        matches!(&e, TrainError::InvalidData(m) if m.contains("weather")),
        "{e}"
    );
    rows.iter_mut().for_each(|r| r.label = "one".into());
    let e = quiet(|c| train_with_classifier(&config, &rows, None, c))
        .err()
        .unwrap();
    assert!(
        matches!(&e, TrainError::InvalidData(m) if m.contains("at least two classes")),
        "{e}"
    );
    let bad = TrainConfig {
        batch_size: 0,
        ..config.clone()
    };
    let e = quiet(|c| train_with_classifier(&bad, &synthetic(30, 5), None, c))
        .err()
        .unwrap();
    assert!(matches!(e, TrainError::InvalidConfig(_)));
    // A min_count no word reaches leaves nothing to learn from: refused, not trained.
    let sparse = TrainConfig {
        min_count: 1_000_000,
        ..config.clone()
    };
    let e = quiet(|c| train_with_classifier(&sparse, &synthetic(30, 5), None, c))
        .err()
        .unwrap();
    assert!(
        matches!(&e, TrainError::InvalidData(m) if m.contains("min_count")),
        "{e}"
    );
    // A label per row (the wrong column?) stops with a clear error, not exhausted memory.
    let per_row: Vec<LabelledText> = (0..2 * (aiaas_types::MAX_CLASSES + 1))
        .map(|i| LabelledText {
            text: format!("text number {i}"),
            label: format!("label-{}", i / 2),
        })
        .collect();
    let e = quiet(|c| train_with_classifier(&config, &per_row, None, c))
        .err()
        .unwrap();
    assert!(
        matches!(&e, TrainError::InvalidData(m) if m.contains("at most 1000 classes")),
        "{e}"
    );
}

/// Vocabularies are capped by the embedding's size budget, the most frequent words kept.
#[test]
fn vocabularies_keep_the_most_frequent_words_within_the_budget() {
    let toks = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    let texts = [toks("a a a b b c d"), toks("a b c")];
    let v = crate::vocab::TokenVocab::build(&texts, 1, 4);
    assert_eq!(v.words(), ["<pad>", "<unk>", "a", "b"]);
}

#[test]
fn empty_texts_and_no_validation_split_are_fine() {
    let mut rows = synthetic(90, 6);
    rows[0].text = "!!!".into();
    rows[1].text = String::new();
    let config = TrainConfig {
        validation_split: 0.0,
        early_stopping_patience: Some(2),
        ..small_config(Architecture::Avgpool)
    };
    let (model, clf) = quiet(|c| train_with_classifier(&config, &rows, None, c)).unwrap();
    let chosen = model.report.chosen().unwrap();
    assert!(chosen.validation.is_none());
    assert!(chosen
        .curve
        .iter()
        .all(|e| e.val_loss.is_none() && e.train_loss.is_finite()));
    assert_eq!(chosen.curve.len(), config.epochs);
    assert!(clf.predict(&[""]).unwrap()[0].iter().all(|p| p.is_finite()));
}

#[test]
fn cancellation_stops_training() {
    let cancel = AtomicBool::new(true);
    let on_event = |_e: TrainEvent| {};
    let r = train(
        &small_config(Architecture::Avgpool),
        &synthetic(60, 7),
        None,
        TrainControl {
            cancel: &cancel,
            on_event: &on_event,
        },
    );
    assert!(matches!(r, Err(TrainError::Cancelled)));
}

#[test]
fn corrupt_or_missing_files_are_invalid_model() {
    let rows = synthetic(60, 8);
    let model =
        quiet(|c| train_with_classifier(&small_config(Architecture::Avgpool), &rows, None, c))
            .unwrap()
            .0;
    let mut files = model.files.clone();
    files.remove(WEIGHTS_FILE);
    assert!(matches!(
        Classifier::from_files(&files),
        Err(TrainError::InvalidModel(_))
    ));
    let mut files = model.files.clone();
    files.insert(WEIGHTS_FILE.into(), b"garbage".to_vec());
    assert!(matches!(
        Classifier::from_files(&files),
        Err(TrainError::InvalidModel(_))
    ));
    let mut files = model.files.clone();
    files.insert(MODEL_FILE.into(), b"{".to_vec());
    assert!(matches!(
        Classifier::from_files(&files),
        Err(TrainError::InvalidModel(_))
    ));
}

// ---- BBC News benchmarks (ignored: they need the converted corpus) ----

fn read_bbc(name: &str) -> Vec<LabelledText> {
    let path = aiaas_testkit::test_data_file(name);
    let rows = aiaas_testkit::read_text_label_csv(&path);
    rows.into_iter().map(LabelledText::from).collect()
}

fn bbc_run(config: &TrainConfig) -> (crate::TrainedModel, f64) {
    // BBC_CORPUS=zh-news: the Chinese headlines instead.
    let corpus = std::env::var("BBC_CORPUS").unwrap_or_else(|_| "bbc".into());
    let (train_rows, test_rows) = (
        read_bbc(&format!("{corpus}-train.csv")),
        read_bbc(&format!("{corpus}-test.csv")),
    );
    let started = Instant::now();
    let cancel = AtomicBool::new(false);
    let on_event = |e: TrainEvent| match e {
        TrainEvent::Epoch { .. } | TrainEvent::Word2vecEpoch { .. } | TrainEvent::Phase { .. } => {
            eprintln!("{:>7.2}s {e:?}", started.elapsed().as_secs_f64())
        }
        _ => {}
    };
    let model = train(
        config,
        &train_rows,
        Some(&test_rows),
        TrainControl {
            cancel: &cancel,
            on_event: &on_event,
        },
    )
    .unwrap();
    (model, started.elapsed().as_secs_f64())
}

fn print_summary(model: &crate::TrainedModel, secs: f64) {
    let r = &model.report;
    if let Some(w) = &r.word2vec {
        eprintln!(
            "word2vec: {} words in {:.2}s = {:.0} words/s, vocab {}",
            w.words, w.seconds, w.words_per_second, w.vocabulary
        );
    }
    for c in &r.candidates {
        let t = c.test.as_ref().unwrap();
        eprintln!(
            "{:?}: train {:.2}s test accuracy {:.4} macro-F1 {:.4}",
            c.architecture, c.train_seconds, t.accuracy, t.macro_f1
        );
    }
    if let Some(t) = r.refit.as_ref().and_then(|c| c.test.as_ref()) {
        eprintln!(
            "refit: test accuracy {:.4} macro-F1 {:.4}",
            t.accuracy, t.macro_f1
        );
    }
    eprintln!("total {secs:.2}s, kept {:?}", r.architecture);
}

#[test]
#[ignore = "needs the BBC News CSVs; run with --ignored --nocapture"]
fn bbc_avgpool_reaches_target() {
    let (model, secs) = bbc_run(&TrainConfig::default());
    print_summary(&model, secs);
    let t = model.report.chosen().unwrap().test.as_ref().unwrap();
    assert!(t.accuracy >= 0.93 && t.macro_f1 >= 0.93, "{t:?}");
}

#[test]
#[ignore = "needs the BBC News CSVs; run with --ignored --nocapture"]
fn bbc_tfidf_logreg() {
    let (model, secs) = bbc_run(&TrainConfig {
        architecture: Architecture::TfidfLogreg,
        ..TrainConfig::default()
    });
    print_summary(&model, secs);
    assert!(
        model
            .report
            .chosen()
            .unwrap()
            .test
            .as_ref()
            .unwrap()
            .accuracy
            >= 0.95
    );
}

#[test]
#[ignore = "needs the BBC News CSVs; run with --ignored --nocapture"]
fn bbc_other_architectures() {
    let arch = match std::env::var("BBC_ARCH").as_deref() {
        Ok("gru") => Architecture::Gru,
        Ok("lstm") => Architecture::Lstm,
        Ok("auto") => Architecture::Auto,
        Ok("avgpool") => Architecture::Avgpool,
        _ => Architecture::Textcnn,
    };
    let epochs = std::env::var("BBC_EPOCHS")
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(5);
    let embedding = match std::env::var("BBC_EMBEDDING").as_deref() {
        Ok("random") => EmbeddingInit::Random,
        Ok("glove") => EmbeddingInit::Glove(aiaas_types::GloveParams::default()),
        Ok("cbow") => EmbeddingInit::Word2vec(Word2VecParams {
            mode: aiaas_types::Word2VecMode::Cbow,
            ..Word2VecParams::default()
        }),
        _ => EmbeddingInit::default(),
    };
    let (model, secs) = bbc_run(&TrainConfig {
        architecture: arch,
        epochs,
        embedding,
        time_budget_secs: std::env::var("BBC_BUDGET")
            .ok()
            .and_then(|b| b.parse().ok()),
        ..TrainConfig::default()
    });
    print_summary(&model, secs);
    for c in &model.report.candidates {
        for t in &c.trials {
            eprintln!("  {:?} {t:?}", c.architecture);
        }
    }
    eprintln!("glove {:?}", model.report.glove);
    eprintln!("search {:?}", model.report.search);
}

#[test]
#[ignore = "needs the BBC News CSVs; run with --ignored --nocapture"]
fn bbc_word2vec_speed() {
    let rows = read_bbc("bbc-train.csv");
    let sentences: Vec<Vec<String>> = rows.iter().map(|r| crate::tokenize(&r.text)).collect();
    for mode in [
        aiaas_types::Word2VecMode::SkipGram,
        aiaas_types::Word2VecMode::Cbow,
    ] {
        let params = Word2VecParams {
            mode,
            threads: 2,
            ..Word2VecParams::default()
        };
        let (_, report) = quiet(|c| crate::train_word2vec(&sentences, &params, 1, c)).unwrap();
        eprintln!("{mode:?}: {report:?}");
    }
}

#[test]
fn early_stopping_restores_the_best_epoch() {
    let rows = synthetic(150, 9);
    let config = TrainConfig {
        epochs: 40,
        learning_rate: 0.05,
        early_stopping_patience: Some(2),
        ..small_config(Architecture::Avgpool)
    };
    let (model, _) = quiet(|c| train_with_classifier(&config, &rows, None, c)).unwrap();
    let chosen = model.report.chosen().unwrap();
    let best = chosen
        .curve
        .iter()
        .min_by(|a, b| a.val_loss.unwrap().total_cmp(&b.val_loss.unwrap()))
        .unwrap();
    assert!(
        chosen.curve.len() < 40,
        "patience 2 should stop before 40 epochs"
    );
    assert_eq!(chosen.curve.len(), best.epoch + 2);
    assert_eq!(
        Some(chosen.validation.as_ref().unwrap().accuracy),
        best.val_accuracy
    );
}
