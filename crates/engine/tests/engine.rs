//! Integration tests of `Engine` through its public API on real trained classifiers:
//! batched answers equal direct predictions, dynamic batching shows in the metrics,
//! back-pressure (`QueueFull`), unknown keys, unload and corrupt model files.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aiaas_engine::{BatchSettings, Classifier, Engine, EngineError, Metrics, ModelFiles};
use aiaas_train::{LabelledText, TrainControl, MODEL_FILE, WEIGHTS_FILE};
use aiaas_types::{Architecture, EmbeddingInit, TrainConfig, TrainEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batched_answers_equal_direct_predictions() {
    for arch in [Architecture::TfidfLogreg, Architecture::Avgpool] {
        let files = model_files(arch);
        let direct = Classifier::from_files(files).unwrap();
        let engine = Arc::new(Engine::new(Arc::new(Metrics::new())));
        let settings = BatchSettings {
            max_batch: 16,
            max_delay: Duration::from_millis(10),
            queue_capacity: 1024,
            max_queue_time: None,
        };
        engine
            .load_classifier("m", "model", files, settings)
            .unwrap();
        assert_eq!(engine.labels("m").unwrap(), direct.labels());

        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..6u64 {
            let engine = engine.clone();
            tasks.spawn(async move {
                let mut answers = Vec::new();
                for i in 0..15u64 {
                    let texts = request_texts(task * 100 + i);
                    let got = engine.classify("m", texts.clone(), None).await;
                    answers.push((texts, got));
                }
                answers
            });
        }
        let mut sent_texts = 0;
        while let Some(joined) = tasks.join_next().await {
            for (texts, got) in joined.unwrap() {
                let got = got.unwrap_or_else(|e| panic!("{arch:?}: {e}"));
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let want = direct.predict(&refs).unwrap();
                let got: Vec<Vec<f32>> = got.into_iter().map(|p| p.probabilities).collect();
                assert_eq!(got, want, "{arch:?}: answer for {texts:?}");
                sent_texts += texts.len();
            }
        }
        let text = engine.metrics().render();
        let batch = r#"aiaas_inference_batch_size_sum{model="model"}"#;
        assert_eq!(metric(&text, batch), Some(sent_texts as f64), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_arriving_together_share_a_batch() {
    let files = model_files(Architecture::TfidfLogreg);
    let engine = Arc::new(Engine::new(Arc::new(Metrics::new())));
    let settings = BatchSettings {
        max_batch: 64,
        max_delay: Duration::from_millis(500),
        queue_capacity: 64,
        max_queue_time: None,
    };
    engine
        .load_classifier("m", "together", files, settings)
        .unwrap();
    let direct = Classifier::from_files(files).unwrap();

    let results = concurrent(&engine, "m", (0..8).map(|i| vec![topic_text(i)]).collect()).await;
    for (texts, got) in &results {
        let got = got.as_ref().unwrap();
        let want = direct.predict(&[texts[0].as_str()]).unwrap();
        assert_eq!(got[0].probabilities, want[0]);
    }

    let text = engine.metrics().render();
    let batches = metric(
        &text,
        r#"aiaas_inference_batch_size_count{model="together"}"#,
    )
    .unwrap();
    let singles = metric(
        &text,
        r#"aiaas_inference_batch_size_bucket{model="together",le="1"}"#,
    )
    .unwrap();
    let texts = metric(&text, r#"aiaas_inference_batch_size_sum{model="together"}"#).unwrap();
    assert_eq!(texts, 8.0, "{text}");
    assert!(
        batches < 8.0,
        "eight requests ran in {batches} batches:\n{text}"
    );
    assert!(
        batches - singles >= 1.0,
        "no batch held more than one text:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_never_exceed_max_batch() {
    let files = model_files(Architecture::TfidfLogreg);
    let engine = Arc::new(Engine::new(Arc::new(Metrics::new())));
    let settings = BatchSettings {
        max_batch: 4,
        max_delay: Duration::from_millis(300),
        queue_capacity: 64,
        max_queue_time: None,
    };
    engine
        .load_classifier("m", "small", files, settings)
        .unwrap();
    let results = concurrent(&engine, "m", (0..10).map(|i| vec![topic_text(i)]).collect()).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()));

    let text = engine.metrics().render();
    let batches = metric(&text, r#"aiaas_inference_batch_size_count{model="small"}"#).unwrap();
    let up_to_4 = metric(
        &text,
        r#"aiaas_inference_batch_size_bucket{model="small",le="4"}"#,
    )
    .unwrap();
    assert_eq!(
        up_to_4, batches,
        "a batch was larger than max_batch:\n{text}"
    );
    assert!(
        batches >= 3.0,
        "ten texts cannot fit in fewer than three batches of four:\n{text}"
    );
    assert_eq!(
        metric(&text, r#"aiaas_inference_batch_size_sum{model="small"}"#),
        Some(10.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_refuses_at_once_and_recovers() {
    let files = model_files(Architecture::TfidfLogreg);
    let engine = Arc::new(Engine::new(Arc::new(Metrics::new())));
    let settings = BatchSettings {
        max_batch: 32,
        max_delay: Duration::from_millis(300),
        queue_capacity: 1,
        max_queue_time: None,
    };
    engine
        .load_classifier("m", "tight", files, settings)
        .unwrap();
    let direct = Classifier::from_files(files).unwrap();

    let results = concurrent(&engine, "m", (0..6).map(|i| vec![topic_text(i)]).collect()).await;
    let mut refused = 0;
    let mut answered = 0;
    for (texts, r) in &results {
        match r {
            Ok(p) => {
                answered += 1;
                assert_eq!(
                    p[0].probabilities,
                    direct.predict(&[texts[0].as_str()]).unwrap()[0]
                );
            }
            Err(EngineError::QueueFull { model, .. }) => {
                refused += 1;
                assert_eq!(model, "tight");
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert!(answered >= 1, "no request was admitted");
    assert!(refused >= 1, "six requests at once passed a queue of one");
    let text = engine.metrics().render();
    assert_eq!(
        metric(&text, r#"aiaas_inference_rejections_total{model="tight"}"#),
        Some(refused as f64),
        "{text}"
    );

    // Once the admitted request has been answered and accounted, capacity is free again.
    wait_until("the queue drains", || engine.loaded()[0].in_flight == 0).await;
    let again = engine
        .classify("m", vec![topic_text(1)], None)
        .await
        .unwrap();
    assert_eq!(
        again[0].probabilities,
        direct.predict(&[topic_text(1).as_str()]).unwrap()[0]
    );
}

#[tokio::test]
async fn an_unknown_key_is_not_loaded() {
    let engine = Engine::new(Arc::new(Metrics::new()));
    engine
        .load_classifier(
            "known",
            "known",
            model_files(Architecture::TfidfLogreg),
            BatchSettings::default(),
        )
        .unwrap();
    match engine.classify("unknown", vec!["goal".into()], None).await {
        Err(EngineError::NotLoaded(key)) => assert_eq!(key, "unknown"),
        other => panic!("expected NotLoaded, got {other:?}"),
    }
    assert!(!engine.is_loaded("unknown"));
    assert!(engine.labels("unknown").is_none());
    assert!(engine.is_loaded("known"));
}

#[tokio::test]
async fn unload_stops_a_runtime_once() {
    let engine = Engine::new(Arc::new(Metrics::new()));
    let files = model_files(Architecture::TfidfLogreg);
    let settings = BatchSettings::default();
    engine
        .load_classifier("a", "model-a", files, settings)
        .unwrap();
    engine
        .load_classifier("b", "model-b", files, settings)
        .unwrap();
    let keys: Vec<String> = engine.loaded().into_iter().map(|m| m.key).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(models_loaded(&engine), Some(2.0));

    assert!(engine.unload("a"));
    assert!(!engine.unload("a"));
    assert!(!engine.is_loaded("a"));
    assert!(matches!(
        engine.classify("a", vec!["vote".into()], None).await,
        Err(EngineError::NotLoaded(_))
    ));
    assert_eq!(engine.loaded().len(), 1);
    assert_eq!(models_loaded(&engine), Some(1.0));
    // The other runtime is untouched.
    assert_eq!(
        engine
            .classify("b", vec!["vote".into()], None)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unload_lets_a_queued_request_finish() {
    let files = model_files(Architecture::TfidfLogreg);
    let engine = Arc::new(Engine::new(Arc::new(Metrics::new())));
    let settings = BatchSettings {
        max_batch: 32,
        max_delay: Duration::from_millis(300),
        queue_capacity: 8,
        max_queue_time: None,
    };
    engine.load_classifier("m", "m", files, settings).unwrap();
    let text = topic_text(2);
    let pending = {
        let engine = engine.clone();
        let text = text.clone();
        tokio::spawn(async move { engine.classify("m", vec![text], None).await })
    };
    wait_until("the request is queued", || {
        engine.loaded().first().is_some_and(|m| m.in_flight == 1)
    })
    .await;
    let e = engine.clone();
    assert!(tokio::task::spawn_blocking(move || e.unload("m"))
        .await
        .unwrap());
    let answer = pending.await.unwrap().unwrap();
    let want = Classifier::from_files(files)
        .unwrap()
        .predict(&[text.as_str()])
        .unwrap();
    assert_eq!(answer[0].probabilities, want[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_sending_one_request_at_a_time_is_never_refused() {
    let engine = Engine::new(Arc::new(Metrics::new()));
    let settings = BatchSettings {
        max_batch: 1,
        max_delay: Duration::ZERO,
        queue_capacity: 1,
        max_queue_time: None,
    };
    engine
        .load_classifier("m", "m", model_files(Architecture::TfidfLogreg), settings)
        .unwrap();
    // The admission slot is released before the answer is sent, so the next request of
    // the same caller always finds it free.
    for i in 0..2000u64 {
        let answer = engine.classify("m", vec![topic_text(i)], None).await;
        assert!(answer.is_ok(), "request {i}: {:?}", answer.err());
    }
}

#[tokio::test]
async fn reloading_a_key_replaces_its_settings() {
    let engine = Engine::new(Arc::new(Metrics::new()));
    let files = model_files(Architecture::TfidfLogreg);
    engine
        .load_classifier("m", "v1", files, BatchSettings::default())
        .unwrap();
    let second = BatchSettings {
        max_batch: 3,
        max_delay: Duration::ZERO,
        queue_capacity: 7,
        max_queue_time: None,
    };
    engine.load_classifier("m", "v2", files, second).unwrap();
    let loaded = engine.loaded();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].label, "v2");
    assert_eq!(loaded[0].batch, Some(second));
    assert_eq!(models_loaded(&engine), Some(1.0));
    assert!(engine
        .classify("m", Vec::new(), None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn corrupt_files_are_a_load_error_and_keep_the_old_runtime() {
    let engine = Engine::new(Arc::new(Metrics::new()));
    let good = model_files(Architecture::TfidfLogreg);
    let mut garbage_weights = good.clone();
    garbage_weights.insert(WEIGHTS_FILE.into(), b"not safetensors".to_vec());
    let mut broken_json = good.clone();
    broken_json.insert(MODEL_FILE.into(), b"{\"labels\":".to_vec());
    let mut missing = good.clone();
    missing.remove(MODEL_FILE);
    for (what, files) in [
        ("garbage weights", &garbage_weights),
        ("broken model.json", &broken_json),
        ("missing model.json", &missing),
        ("no files", &ModelFiles::new()),
    ] {
        match engine.load_classifier("bad", "bad", files, BatchSettings::default()) {
            Err(EngineError::Load(_)) => {}
            other => panic!("{what}: expected a load error, got {other:?}"),
        }
        assert!(!engine.is_loaded("bad"), "{what}");
    }
    assert!(engine.loaded().is_empty());

    engine
        .load_classifier("m", "m", good, BatchSettings::default())
        .unwrap();
    assert!(matches!(
        engine.load_classifier("m", "m2", &garbage_weights, BatchSettings::default()),
        Err(EngineError::Load(_))
    ));
    assert_eq!(engine.loaded()[0].label, "m");
    assert_eq!(
        engine
            .classify("m", vec![topic_text(0)], None)
            .await
            .unwrap()
            .len(),
        1
    );
}

// ---- helpers ----

/// Model files of a small classifier trained once per architecture for the whole binary.
fn model_files(arch: Architecture) -> &'static ModelFiles {
    static TFIDF: OnceLock<ModelFiles> = OnceLock::new();
    static AVGPOOL: OnceLock<ModelFiles> = OnceLock::new();
    let cell = match arch {
        Architecture::TfidfLogreg => &TFIDF,
        Architecture::Avgpool => &AVGPOOL,
        other => panic!("no fixture for {other:?}"),
    };
    cell.get_or_init(|| train_small(arch))
}

fn train_small(arch: Architecture) -> ModelFiles {
    let config = TrainConfig {
        architecture: arch,
        embedding: EmbeddingInit::Random,
        embedding_dim: 16,
        hidden_units: 8,
        epochs: 4,
        batch_size: 16,
        learning_rate: 0.01,
        threads: 1,
        ..TrainConfig::default()
    };
    let rows: Vec<LabelledText> = (0..90)
        .map(|i| LabelledText {
            text: topic_text(i),
            label: TOPICS[i as usize % TOPICS.len()].0.to_string(),
        })
        .collect();
    let cancel = AtomicBool::new(false);
    let on_event = |_: TrainEvent| {};
    let control = TrainControl {
        cancel: &cancel,
        on_event: &on_event,
    };
    let model = aiaas_train::train(&config, &rows, None, control).unwrap();
    assert_eq!(model.report.labels, ["politics", "sport", "tech"]);
    model.files
}

const TOPICS: [(&str, [&str; 5]); 3] = [
    ("sport", ["goal", "match", "team", "league", "coach"]),
    ("tech", ["software", "chip", "phone", "internet", "data"]),
    (
        "politics",
        ["vote", "minister", "election", "party", "senate"],
    ),
];
const FILLER: [&str; 5] = ["the", "a", "of", "today", "said"];

/// A deterministic text of topic `i % 3`, different for every `i`.
fn topic_text(i: u64) -> String {
    let words = TOPICS[i as usize % TOPICS.len()].1;
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let mut next = move |m: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % m
    };
    let len = 4 + next(6);
    (0..len)
        .map(|_| {
            if next(2) == 0 {
                words[next(5)]
            } else {
                FILLER[next(5)]
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One to four texts for request `n`, including unseen words and an empty text now and then.
fn request_texts(n: u64) -> Vec<String> {
    let count = 1 + (n % 4) as usize;
    (0..count as u64)
        .map(|j| match (n + j) % 7 {
            0 => String::new(),
            1 => format!("{} unseenword{n}", topic_text(n * 10 + j)),
            _ => topic_text(n * 10 + j),
        })
        .collect()
}

type Answer = Result<Vec<aiaas_engine::Prediction>, EngineError>;

/// Send every request from its own task at once; answers in request order.
async fn concurrent(
    engine: &Arc<Engine>,
    key: &str,
    requests: Vec<Vec<String>>,
) -> Vec<(Vec<String>, Answer)> {
    let handles: Vec<_> = requests
        .into_iter()
        .map(|texts| {
            let engine = engine.clone();
            let key = key.to_string();
            tokio::spawn(async move {
                let got = engine.classify(&key, texts.clone(), None).await;
                (texts, got)
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The value of the sample whose name and labels are exactly `series`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn models_loaded(engine: &Engine) -> Option<f64> {
    metric(&engine.metrics().render(), "aiaas_models_loaded")
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
