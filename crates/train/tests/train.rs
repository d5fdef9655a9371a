//! The crate's public API end to end: train each architecture on a small data set mixing
//! English and Chinese, store the files, load them back, predict; cancellation and
//! damaged files.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use aiaas_train::{
    train, Classifier, LabelledText, TrainControl, TrainError, MODEL_FILE, WEIGHTS_FILE,
};
use aiaas_types::{Architecture, EmbeddingInit, TrainConfig, TrainEvent, Word2VecParams};

fn rows() -> Vec<LabelledText> {
    let sport = [
        "the team won the match",
        "a late goal in the final",
        "足球比赛进球",
        "the striker scored again",
    ];
    let money = [
        "shares fell on the market",
        "the bank raised interest rates",
        "股票市场上涨",
        "profits and loans grew",
    ];
    let mut out = Vec::new();
    for i in 0..12 {
        for (label, texts) in [("sport", &sport), ("money", &money)] {
            out.push(LabelledText {
                text: format!("{} {}", texts[i % texts.len()], i),
                label: label.to_string(),
            });
        }
    }
    out
}

fn config(arch: Architecture) -> TrainConfig {
    TrainConfig {
        architecture: arch,
        epochs: 15,
        batch_size: 8,
        learning_rate: 0.01,
        embedding_dim: 16,
        rnn_hidden: 8,
        filters: 8,
        threads: 1,
        embedding: EmbeddingInit::Word2vec(Word2VecParams {
            vector_size: 16,
            min_count: 1,
            epochs: 3,
            threads: 1,
            ..Word2VecParams::default()
        }),
        ..TrainConfig::default()
    }
}

#[test]
fn every_architecture_round_trips_through_its_files() {
    let data = rows();
    for arch in [
        Architecture::TfidfLogreg,
        Architecture::Avgpool,
        Architecture::Textcnn,
        Architecture::Gru,
        Architecture::Lstm,
    ] {
        let cancel = AtomicBool::new(false);
        let events = Mutex::new(Vec::new());
        let on_event = |e: TrainEvent| events.lock().unwrap().push(e);
        let trained = train(
            &config(arch),
            &data,
            Some(&data),
            TrainControl {
                cancel: &cancel,
                on_event: &on_event,
            },
        )
        .unwrap_or_else(|e| panic!("{arch:?}: {e}"));
        assert_eq!(trained.report.architecture, arch);
        assert!(trained.files.contains_key(MODEL_FILE) && trained.files.contains_key(WEIGHTS_FILE));
        let test = trained.report.chosen().unwrap().test.as_ref().unwrap();
        assert!(
            test.accuracy >= 0.9,
            "{arch:?} fits its own training data: {}",
            test.accuracy
        );
        assert!(events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, TrainEvent::Epoch { .. })));

        let loaded = Classifier::from_files(&trained.files).unwrap();
        assert_eq!(loaded.labels(), ["money".to_string(), "sport".to_string()]);
        let probs = loaded
            .predict(&["the striker scored a goal", "股票 银行", ""])
            .unwrap();
        assert_eq!(probs.len(), 3);
        for p in &probs {
            assert!(
                (p.iter().sum::<f32>() - 1.0).abs() < 1e-4,
                "{arch:?}: {p:?}"
            );
            assert!(p.iter().all(|x| x.is_finite()));
        }
        assert!(
            probs[0][1] > probs[0][0],
            "{arch:?}: sport text scored {:?}",
            probs[0]
        );
        assert!(loaded.predict(&[]).unwrap().is_empty());
    }
}

#[test]
fn a_set_cancel_flag_stops_training() {
    let cancel = AtomicBool::new(true);
    let on_event = |_e: TrainEvent| {};
    let result = train(
        &config(Architecture::Avgpool),
        &rows(),
        None,
        TrainControl {
            cancel: &cancel,
            on_event: &on_event,
        },
    );
    assert!(
        matches!(result, Err(TrainError::Cancelled)),
        "{:?}",
        result.err()
    );
}

#[test]
fn damaged_model_files_are_refused_with_a_reason() {
    let cancel = AtomicBool::new(false);
    let on_event = |_e: TrainEvent| {};
    let trained = train(
        &config(Architecture::Avgpool),
        &rows(),
        None,
        TrainControl {
            cancel: &cancel,
            on_event: &on_event,
        },
    )
    .unwrap();
    let mut files = trained.files.clone();
    let weights = files.get_mut(WEIGHTS_FILE).unwrap();
    weights.truncate(weights.len() / 2);
    assert!(matches!(
        Classifier::from_files(&files),
        Err(TrainError::InvalidModel(_))
    ));
    let mut files = trained.files.clone();
    files.remove(MODEL_FILE);
    match Classifier::from_files(&files) {
        Err(TrainError::InvalidModel(m)) => assert!(m.contains(MODEL_FILE), "{m}"),
        other => panic!("expected InvalidModel, got {:?}", other.err()),
    }
}

#[test]
fn one_thread_and_one_seed_give_the_same_model_for_every_architecture() {
    let data = rows();
    for arch in [
        Architecture::TfidfLogreg,
        Architecture::Avgpool,
        Architecture::Textcnn,
        Architecture::Gru,
        Architecture::Lstm,
    ] {
        let run = || {
            let cancel = AtomicBool::new(false);
            let on_event = |_e: TrainEvent| {};
            train(
                &config(arch),
                &data,
                None,
                TrainControl {
                    cancel: &cancel,
                    on_event: &on_event,
                },
            )
            .unwrap()
            .files
        };
        assert_eq!(run(), run(), "{arch:?} is not reproducible");
    }
}
