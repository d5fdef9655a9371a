//! Explanations on real data: tfidf-logreg's exact attributions reproduce its logits, the
//! offsets point at the right characters in English and Chinese, occlusion explains a
//! neural network, and both are faithful: cutting the three tokens with the largest
//! attributions lowers the class's probability more than cutting three others, on at
//! least 90% of the BBC test split (each article's first 40 words).

use std::sync::atomic::AtomicBool;

use aiaas_train::{
    train, Classifier, ExplainMethod, ExplainOptions, Explanation, LabelledText, TrainControl,
    TrainError,
};
use aiaas_types::{Architecture, EmbeddingInit, TfidfOptions, TrainConfig};

fn read(name: &str) -> Vec<LabelledText> {
    let path = aiaas_testkit::test_data_file(name);
    let rows = aiaas_testkit::read_text_label_csv(&path);
    rows.into_iter().map(LabelledText::from).collect()
}

fn fit(config: &TrainConfig, rows: &[LabelledText]) -> Classifier {
    let cancel = AtomicBool::new(false);
    let files = train(
        config,
        rows,
        None,
        TrainControl {
            cancel: &cancel,
            on_event: &|_| {},
        },
    )
    .unwrap()
    .files;
    Classifier::from_files(&files).unwrap()
}

/// tfidf-logreg with the search's usual winner fixed (keeps the test quick).
fn tfidf(rows: &[LabelledText]) -> Classifier {
    fit(
        &TrainConfig {
            architecture: Architecture::TfidfLogreg,
            tfidf: TfidfOptions {
                c: Some(10.0),
                min_df: Some(2),
                ..TfidfOptions::default()
            },
            ..TrainConfig::default()
        },
        rows,
    )
}

fn softmax(xs: &[f32]) -> Vec<f32> {
    let max = xs.iter().cloned().fold(f32::MIN, f32::max);
    let e: Vec<f32> = xs.iter().map(|x| (x - max).exp()).collect();
    let total: f32 = e.iter().sum();
    e.iter().map(|v| v / total).collect()
}

fn explain(
    model: &Classifier,
    text: &str,
    method: ExplainMethod,
    target: Option<&str>,
) -> Explanation {
    let opts = ExplainOptions {
        method,
        target: target.map(str::to_string),
        ..ExplainOptions::default()
    };
    model.explain(text, &opts).unwrap()
}

/// The characters of `text` from `start` to `end` (character offsets).
fn chars(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

#[test]
fn tfidf_attributions_reproduce_the_logits() {
    let rows = read("bbc-train.csv");
    let model = tfidf(&rows);
    for row in read("bbc-test.csv").iter().take(40) {
        let probabilities = model.predict(&[row.text.as_str()]).unwrap().remove(0);
        // Every class's logit from its explanation; their softmax is the prediction.
        let logits: Vec<f32> = model
            .labels()
            .iter()
            .map(|label| {
                let e = explain(&model, &row.text, ExplainMethod::Exact, Some(label));
                assert_eq!(e.method, ExplainMethod::Exact);
                let sum: f32 = e.tokens.iter().map(|t| t.attribution).sum();
                assert!(
                    (e.base + sum - e.score).abs() < 1e-4,
                    "{} + {sum} vs {}",
                    e.base,
                    e.score
                );
                e.score
            })
            .collect();
        for (p, q) in softmax(&logits).iter().zip(&probabilities) {
            assert!(
                (p - q).abs() < 1e-5,
                "softmax of the explained logits {p} vs {q}"
            );
        }
        // Offsets: each token is the text's characters there, lower-cased.
        let e = explain(&model, &row.text, ExplainMethod::Auto, None);
        assert!(e.tokens.len() > 10);
        for t in &e.tokens {
            assert_eq!(chars(&row.text, t.start, t.end).to_lowercase(), t.token);
        }
    }
}

#[test]
fn offsets_point_at_chinese_characters_and_words() {
    let rows = read("zh-news-train.csv");
    let model = tfidf(&rows); // auto: character n-grams for Chinese
    let text = "北京 Olympics：中国队夺得金牌！";
    let e = explain(&model, text, ExplainMethod::Exact, None);
    let expected: Vec<String> = text
        .chars()
        .map(|c| c.to_lowercase().collect::<String>())
        .collect();
    let got: Vec<String> = e
        .tokens
        .iter()
        .map(|t| chars(text, t.start, t.end).to_lowercase())
        .collect();
    assert_eq!(got.len(), expected.len(), "{:?}", e.tokens);
    for t in &e.tokens {
        assert_eq!(chars(text, t.start, t.end).to_lowercase(), t.token);
    }
    // Occlusion over jieba's words: the offsets cover whole words.
    let e = explain(&model, text, ExplainMethod::Occlusion, None);
    let words: Vec<String> = e
        .tokens
        .iter()
        .map(|t| chars(text, t.start, t.end))
        .collect();
    assert!(
        words.contains(&"北京".to_string()) && words.contains(&"Olympics".to_string()),
        "{words:?}"
    );
    for t in &e.tokens {
        assert_eq!(chars(text, t.start, t.end).to_lowercase(), t.token);
    }
}

/// The share of texts where cutting the top-3 attributed tokens lowers the explained
/// class's probability more than cutting 3 of the other tokens picked at random.
fn faithfulness(model: &Classifier, texts: &[&str], method: ExplainMethod) -> f64 {
    let mut wins = 0;
    let mut counted = 0;
    let mut seed = 42u64;
    for text in texts {
        let e = explain(model, text, method, None);
        let target = model.labels().iter().position(|l| *l == e.target).unwrap();
        // Words only (a character model's tokens are characters; cut words for both).
        let mut order: Vec<usize> = (0..e.tokens.len()).collect();
        order.sort_by(|&a, &b| e.tokens[b].attribution.total_cmp(&e.tokens[a].attribution));
        if order.len() < 6 {
            continue;
        }
        let top: Vec<usize> = order[..3].to_vec();
        // Three of the other tokens at random (a fixed-seed generator, so runs agree).
        let mut rest: Vec<usize> = order[3..].to_vec();
        let mut others = Vec::new();
        for _ in 0..3 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            others.push(rest.swap_remove((seed >> 33) as usize % rest.len()));
        }
        let cut = |picked: &[usize]| -> String {
            let mut out = String::new();
            for (i, c) in text.chars().enumerate() {
                let inside = picked
                    .iter()
                    .any(|&k| e.tokens[k].start <= i && i < e.tokens[k].end);
                out.push(if inside { ' ' } else { c });
            }
            out
        };
        let p = model.predict(&[&cut(&top), &cut(&others)]).unwrap();
        counted += 1;
        wins += usize::from(p[0][target] < p[1][target]);
    }
    wins as f64 / counted as f64
}

#[test]
fn attributions_are_faithful_on_the_bbc_test_split() {
    let rows = read("bbc-train.csv");
    // The first 40 words of each test article: in a whole article (about 400 words) three
    // words hardly move a confident prediction, whichever they are.
    let test: Vec<String> = read("bbc-test.csv")
        .iter()
        .map(|r| {
            r.text
                .split_whitespace()
                .take(40)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let texts: Vec<&str> = test.iter().map(String::as_str).collect();
    let model = tfidf(&rows);
    let exact = faithfulness(&model, &texts, ExplainMethod::Exact);
    eprintln!(
        "tfidf-logreg, exact: faithful on {:.1}% of {} texts",
        exact * 100.0,
        texts.len()
    );
    assert!(exact >= 0.9, "{exact}");

    let avgpool = fit(
        &TrainConfig {
            architecture: Architecture::Avgpool,
            embedding: EmbeddingInit::Random,
            epochs: 10,
            ..TrainConfig::default()
        },
        &rows,
    );
    let sample: Vec<&str> = texts.iter().step_by(4).copied().collect();
    let gradients = faithfulness(&avgpool, &sample, ExplainMethod::IntegratedGradients);
    eprintln!(
        "avgpool, integrated gradients: faithful on {:.1}% of {} texts",
        gradients * 100.0,
        sample.len()
    );
    assert!(gradients >= 0.9, "{gradients}");
    let occlusion = faithfulness(&avgpool, &sample, ExplainMethod::Occlusion);
    eprintln!(
        "avgpool, occlusion: faithful on {:.1}% of {} texts",
        occlusion * 100.0,
        sample.len()
    );
    assert!(occlusion >= 0.9, "{occlusion}");
    // No exact decomposition for a network: a clear error, not a guess.
    let err = avgpool
        .explain(
            texts[0],
            &ExplainOptions {
                method: ExplainMethod::Exact,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, TrainError::InvalidData(m) if m.contains("occlusion")),
        "{err}"
    );
}

#[test]
fn top_k_and_target_are_honoured() {
    let model = tfidf(&read("bbc-train.csv"));
    let text = "The striker scored twice as the team won the cup final at Wembley";
    let all = explain(&model, text, ExplainMethod::Exact, Some("sports"));
    assert_eq!(all.target, "sports");
    let top = model
        .explain(
            text,
            &ExplainOptions {
                top_k: Some(3),
                target: Some("sports".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(top.tokens.len(), 3);
    let mut largest: Vec<f32> = all.tokens.iter().map(|t| t.attribution.abs()).collect();
    largest.sort_by(|a, b| b.total_cmp(a));
    for t in &top.tokens {
        assert!(t.attribution.abs() >= largest[2], "{t:?}");
    }
    // In text order.
    assert!(top.tokens.windows(2).all(|w| w[0].start < w[1].start));
    let err = model
        .explain(
            text,
            &ExplainOptions {
                target: Some("weather".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("weather"), "{err}");
}

#[test]
fn top_features_name_each_topics_words() {
    let model = tfidf(&read("bbc-train.csv"));
    let top = model.top_features(10);
    assert_eq!(top.len(), model.labels().len());
    for class in &top {
        assert_eq!((class.toward.len(), class.against.len()), (10, 10));
        assert!(class.toward.windows(2).all(|w| w[0].weight >= w[1].weight));
        assert!(class.against.windows(2).all(|w| w[0].weight <= w[1].weight));
        assert!(class.toward[9].weight > 0.0 && class.against[9].weight < 0.0);
    }
    let sports = top.iter().find(|c| c.label == "sports").unwrap();
    let words: Vec<&str> = sports.toward.iter().map(|f| f.feature.as_str()).collect();
    let expected = [
        "match", "cup", "game", "players", "club", "coach", "season", "win", "champion",
    ];
    assert!(words.iter().any(|w| expected.contains(w)), "{words:?}");
}

/// The networks on a small slice of BBC News (the first 60 words of 400 articles), quick
/// to train even for the recurrent ones.
fn small_bbc() -> (Vec<LabelledText>, Vec<String>) {
    let short = |r: &LabelledText| {
        r.text
            .split_whitespace()
            .take(60)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rows: Vec<LabelledText> = read("bbc-train.csv")
        .iter()
        .take(400)
        .map(|r| LabelledText {
            text: short(r),
            label: r.label.clone(),
        })
        .collect();
    let test = read("bbc-test.csv").iter().take(12).map(short).collect();
    (rows, test)
}

#[test]
fn integrated_gradients_are_complete_for_every_network() {
    let (rows, test) = small_bbc();
    for arch in [
        Architecture::Avgpool,
        Architecture::Textcnn,
        Architecture::Gru,
        Architecture::Lstm,
    ] {
        let model = fit(
            &TrainConfig {
                architecture: arch,
                embedding: EmbeddingInit::Random,
                embedding_dim: 32,
                filters: 16,
                rnn_hidden: 16,
                epochs: 4,
                ..TrainConfig::default()
            },
            &rows,
        );
        let mut worst = 0f32;
        for text in &test {
            let e = explain(&model, text, ExplainMethod::Auto, None);
            assert_eq!(e.method, ExplainMethod::IntegratedGradients);
            let gap = e.completeness_gap.unwrap();
            let sum: f32 = e.tokens.iter().map(|t| t.attribution).sum();
            assert!(
                (sum - (e.score - e.base) - gap).abs() < 1e-3,
                "the gap is what it says"
            );
            // Relative to the change it explains (at least 1 logit).
            let relative = gap.abs() / (e.score - e.base).abs().max(1.0);
            worst = worst.max(relative);
            for t in &e.tokens {
                assert_eq!(chars(text, t.start, t.end).to_lowercase(), t.token);
            }
        }
        // `score` is the network's logit: the softmax of every class's is the prediction.
        let text = test[0].as_str();
        let scores: Vec<f32> = model
            .labels()
            .iter()
            .map(|l| explain(&model, text, ExplainMethod::IntegratedGradients, Some(l)).score)
            .collect();
        let probabilities = model.predict(&[text]).unwrap().remove(0);
        for (p, q) in softmax(&scores).iter().zip(&probabilities) {
            assert!(
                (p - q).abs() < 1e-4,
                "{arch:?}: softmax of the scores {p} vs {q}"
            );
        }
        let e = explain(&model, text, ExplainMethod::Auto, None);
        assert!(
            e.tokens.iter().any(|t| t.attribution.abs() > 1e-3),
            "{arch:?}: {e:?}"
        );
        eprintln!(
            "{arch:?}: largest completeness gap {:.5} of score - base (64 steps)",
            worst
        );
        assert!(worst <= IG_TOLERANCE, "{arch:?}: gap {worst}");
    }
}

/// The stated tolerance of integrated gradients' completeness at the default 64 steps:
/// the attributions add up to the logit's change within 5% of it (or of 1 logit).
const IG_TOLERANCE: f32 = 0.05;
