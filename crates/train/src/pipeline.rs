//! A whole training job: validate the data, split it, train word2vec once, train each
//! candidate architecture, evaluate on validation and test, keep the best, write its files.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use aiaas_types::{
    Architecture, CandidateReport, EmbeddingInit, EpochStats, EvalMetrics, TrainConfig, TrainEvent,
    TrainReport, Trial, Word2VecReport,
};

use crate::fit::loss_and_accuracy;
use crate::fit::{fit, predict_all, Examples, FitOptions, Net, Predictor};
use crate::metrics::{argmax, evaluate};
use crate::model::{Body, Classifier, ModelSpec, TokenizerSpec};
use crate::nets::avgpool::AvgPool;
use crate::nets::rnn::{Rnn, RNN_MAX_LEN};
use crate::nets::textcnn::TextCnn;
use crate::nets::{initial_embeddings, NetSpec};
use crate::split::stratified_split;
use crate::text::tokenize;
use crate::tfidf::{train_logreg, Analyzer, Logreg, TfidfVectorizer, DEFAULT_C};
use crate::vocab::TokenVocab;
use crate::word2vec::{train_word2vec, WordVectors};
use crate::{LabelledText, TrainControl, TrainError, TrainedModel};

/// Train a text classifier. The validation split (`config.validation_split`) is carved from
/// `train_rows`, stratified by label and deterministic for `config.seed`; `test_rows`, when
/// given, is evaluated and reported per candidate.
pub fn train(
    config: &TrainConfig,
    train_rows: &[LabelledText],
    test_rows: Option<&[LabelledText]>,
    control: TrainControl<'_>,
) -> Result<TrainedModel, TrainError> {
    train_with_classifier(config, train_rows, test_rows, &control).map(|(m, _)| m)
}

/// [`train`], also returning the kept model in memory (tests compare it with the saved files).
pub(crate) fn train_with_classifier(
    config: &TrainConfig,
    train_rows: &[LabelledText],
    test_rows: Option<&[LabelledText]>,
    control: &TrainControl<'_>,
) -> Result<(TrainedModel, Classifier), TrainError> {
    let started = Instant::now();
    config.validate().map_err(TrainError::InvalidConfig)?;
    phase(control, "prepare");
    let data = Prepared::new(config, train_rows, test_rows.unwrap_or(&[]))?;
    let candidates = match config.architecture {
        Architecture::Auto => config.auto_candidates(),
        arch => vec![arch],
    };
    let embeddings = EmbeddingContext::new(config, &data, &candidates, control)?;

    let mut outcomes: Vec<(CandidateReport, Classifier)> = Vec::new();
    for arch in candidates {
        phase(control, &format!("train:{}", arch.as_str()));
        let outcome = train_candidate(arch, config, &data, &embeddings, control)?;
        let val = outcome.0.validation.as_ref();
        (control.on_event)(TrainEvent::CandidateDone {
            architecture: arch,
            validation_macro_f1: val.map(|m| m.macro_f1),
            validation_accuracy: val.map(|m| m.accuracy),
        });
        outcomes.push(outcome);
    }
    let best = best_candidate(&outcomes);
    let reports: Vec<CandidateReport> = outcomes.iter().map(|o| o.0.clone()).collect();
    let (_, mut classifier) = outcomes.swap_remove(best);
    let mut refit = None;
    let mut vocabulary = embeddings.vocab.len();
    if config.architecture == Architecture::Auto && config.refit && !data.val.labels.is_empty() {
        let (report, refitted, vocab) =
            refit_winner(config, &classifier, train_rows, test_rows, control)?;
        classifier = refitted;
        refit = Some(report);
        vocabulary = vocab;
    }
    phase(control, "save");
    let files = classifier.to_files()?;
    let report = TrainReport {
        architecture: classifier.architecture(),
        labels: data.labels.clone(),
        train_samples: data.train.labels.len() as u64,
        validation_samples: data.val.labels.len() as u64,
        test_samples: data.test.labels.len() as u64,
        vocabulary,
        word2vec: embeddings.report.clone(),
        candidates: reports,
        refit,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((TrainedModel { report, files }, classifier))
}

/// Train the chosen architecture again on all the training rows (no validation split), as
/// scikit-learn's `refit`: selection used the validation split, the kept model uses it too.
fn refit_winner(
    config: &TrainConfig,
    winner: &Classifier,
    train_rows: &[LabelledText],
    test_rows: Option<&[LabelledText]>,
    control: &TrainControl<'_>,
) -> Result<(CandidateReport, Classifier, usize), TrainError> {
    let arch = winner.architecture();
    phase(control, &format!("refit:{}", arch.as_str()));
    let refit_config = TrainConfig {
        architecture: arch,
        validation_split: 0.0,
        early_stopping_patience: None,
        // The settings the search chose, not a new search (there is no validation split).
        tfidf: winner
            .tfidf_options()
            .unwrap_or_else(|| config.tfidf.clone()),
        ..config.clone()
    };
    let data = Prepared::new(&refit_config, train_rows, test_rows.unwrap_or(&[]))?;
    let embeddings = EmbeddingContext::new(&refit_config, &data, &[arch], control)?;
    let (report, classifier) = train_candidate(arch, &refit_config, &data, &embeddings, control)?;
    Ok((report, classifier, embeddings.vocab.len()))
}

fn phase(control: &TrainControl<'_>, name: &str) {
    (control.on_event)(TrainEvent::Phase {
        name: name.to_string(),
    });
}

/// Index of the best candidate: highest validation macro-F1, ties to the first. Without a
/// validation split, the highest final training accuracy decides instead.
fn best_candidate(outcomes: &[(CandidateReport, Classifier)]) -> usize {
    let score = |r: &CandidateReport| match &r.validation {
        Some(v) => v.macro_f1,
        None => r.curve.last().map_or(0.0, |e| e.train_accuracy),
    };
    let mut best = 0;
    for (i, (r, _)) in outcomes.iter().enumerate() {
        if score(r) > score(&outcomes[best].0) {
            best = i;
        }
    }
    best
}

/// Tokenised texts and label indices of one split.
#[derive(Default)]
struct Split {
    /// The raw texts (character n-grams are taken from these).
    texts: Vec<String>,
    tokens: Vec<Vec<String>>,
    labels: Vec<usize>,
}

struct Prepared {
    labels: Vec<String>,
    train: Split,
    val: Split,
    test: Split,
}

impl Prepared {
    fn new(
        config: &TrainConfig,
        rows: &[LabelledText],
        test_rows: &[LabelledText],
    ) -> Result<Prepared, TrainError> {
        if rows.is_empty() {
            return Err(TrainError::InvalidData(
                "the training data set is empty".into(),
            ));
        }
        let labels: Vec<String> = rows
            .iter()
            .map(|r| r.label.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if labels.len() < 2 {
            return Err(TrainError::InvalidData(format!(
                "a classifier needs at least two classes, but every training row has the label {:?}",
                labels.first().map_or("", String::as_str)
            )));
        }
        if labels.len() > aiaas_types::MAX_CLASSES {
            return Err(TrainError::InvalidData(format!(
                "a classifier is trained for at most {} classes; this data set has {} labels \
                 (is the label column the right one?)",
                aiaas_types::MAX_CLASSES,
                labels.len()
            )));
        }
        let index: HashMap<&str, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let unseen: BTreeSet<&str> = test_rows
            .iter()
            .map(|r| r.label.as_str())
            .filter(|l| !index.contains_key(l))
            .collect();
        if !unseen.is_empty() {
            let list: Vec<&str> = unseen.into_iter().take(10).collect();
            return Err(TrainError::InvalidData(format!(
                "the test set has labels that never occur in the training data: {}",
                list.join(", ")
            )));
        }
        let y: Vec<usize> = rows.iter().map(|r| index[r.label.as_str()]).collect();
        let (train_idx, val_idx) = stratified_split(&y, config.validation_split, config.seed);
        let split = |idx: &[usize]| Split {
            texts: idx.iter().map(|&i| rows[i].text.clone()).collect(),
            tokens: idx.iter().map(|&i| tokenize(&rows[i].text)).collect(),
            labels: idx.iter().map(|&i| y[i]).collect(),
        };
        let test = Split {
            texts: test_rows.iter().map(|r| r.text.clone()).collect(),
            tokens: test_rows.iter().map(|r| tokenize(&r.text)).collect(),
            labels: test_rows.iter().map(|r| index[r.label.as_str()]).collect(),
        };
        Ok(Prepared {
            train: split(&train_idx),
            val: split(&val_idx),
            test,
            labels,
        })
    }
}

/// What the embedding networks share: the token vocabulary and (optionally) word2vec vectors
/// trained on the training split only.
struct EmbeddingContext {
    vocab: TokenVocab,
    vectors: Option<WordVectors>,
    report: Option<Word2VecReport>,
    dim: usize,
}

impl EmbeddingContext {
    fn new(
        config: &TrainConfig,
        data: &Prepared,
        candidates: &[Architecture],
        control: &TrainControl<'_>,
    ) -> Result<EmbeddingContext, TrainError> {
        let max_words = aiaas_types::MAX_EMBEDDING_WEIGHTS / config.embedding_dim.max(1);
        let vocab = TokenVocab::build(&data.train.tokens, config.min_count, max_words);
        let needs_embeddings = candidates.iter().any(|a| a.uses_embeddings());
        // Only padding and unknown: every text would look the same to the network.
        if needs_embeddings && vocab.len() <= 2 {
            return Err(TrainError::InvalidData(format!(
                "no word occurs at least min_count={} times in the training texts; lower min_count",
                config.min_count
            )));
        }
        let (vectors, report, dim) = match &config.embedding {
            EmbeddingInit::Word2vec(params) if needs_embeddings => {
                phase(control, "word2vec");
                let mut params = params.clone();
                if params.threads == 0 {
                    params.threads = config.threads;
                }
                let (v, r) = train_word2vec(&data.train.tokens, &params, config.seed, control)?;
                (Some(v), Some(r), params.vector_size)
            }
            EmbeddingInit::Word2vec(params) => (None, None, params.vector_size),
            EmbeddingInit::Random => (None, None, config.embedding_dim),
        };
        Ok(EmbeddingContext {
            vocab,
            vectors,
            report,
            dim,
        })
    }
}

fn train_candidate(
    arch: Architecture,
    config: &TrainConfig,
    data: &Prepared,
    emb: &EmbeddingContext,
    control: &TrainControl<'_>,
) -> Result<(CandidateReport, Classifier), TrainError> {
    let started = Instant::now();
    let opts = FitOptions {
        architecture: arch,
        epochs: config.epochs,
        batch_size: config.batch_size,
        patience: config.early_stopping_patience,
        seed: config.seed ^ 0x5EED_F0BA_7C4E_5EED,
    };
    if arch == Architecture::TfidfLogreg {
        let (evals, classifier, trials) = train_tfidf(config, data, control)?;
        let mut report = report(arch, evals, started);
        report.trials = trials;
        report.top_features = classifier.top_features(TOP_FEATURES);
        return Ok((report, classifier));
    }

    // Recurrent networks step through time one token at a time; long sequences make them
    // slow without helping much (news topics are clear early), so they read at most
    // RNN_MAX_LEN tokens.
    let max_len = match arch {
        Architecture::Gru | Architecture::Lstm => config.max_len.min(RNN_MAX_LEN),
        _ => config.max_len,
    };
    let encode = |s: &Split| -> Vec<Vec<u32>> {
        s.tokens
            .iter()
            .map(|t| emb.vocab.encode(t, max_len))
            .collect()
    };
    let splits = [encode(&data.train), encode(&data.val), encode(&data.test)];
    let spec = NetSpec {
        vocab_size: emb.vocab.len(),
        embedding_dim: emb.dim,
        classes: data.labels.len(),
        hidden_units: config.hidden_units,
        kernel_sizes: config.kernel_sizes.clone(),
        filters: config.filters,
        rnn_hidden: config.rnn_hidden,
        bidirectional: config.bidirectional,
    };
    let table = initial_embeddings(&emb.vocab, emb.dim, emb.vectors.as_ref(), config.seed);
    let (lr, freeze, seed) = (config.learning_rate, config.freeze_embeddings, config.seed);
    let (evals, body) = match arch {
        Architecture::Avgpool => {
            let mut net = AvgPool::new(&spec, table, lr, freeze, seed)?;
            let evals = run(&mut net, &opts, data, splits.each_ref(), control)?;
            (evals, Body::Avgpool(net))
        }
        Architecture::Textcnn => {
            let mut net = TextCnn::new(&spec, table, lr, freeze, seed)?;
            let evals = run(&mut net, &opts, data, splits.each_ref(), control)?;
            (evals, Body::Textcnn(net))
        }
        _ => {
            let mut net = Rnn::new(arch, &spec, table, lr, freeze, seed)?;
            let evals = run(&mut net, &opts, data, splits.each_ref(), control)?;
            (evals, Body::Rnn(net))
        }
    };
    let model_spec = ModelSpec {
        format_version: 1,
        architecture: arch,
        labels: data.labels.clone(),
        tokenizer: TokenizerSpec::new(Some(max_len)),
        vocabulary: emb.vocab.words().to_vec(),
        net: Some(spec),
        tfidf: None,
    };
    Ok((
        report(arch, evals, started),
        Classifier::new(model_spec, body),
    ))
}

/// The TF-IDF + logistic regression baseline: no word vectors, no network. With a
/// validation split and no fixed `c`/`min_df`, every pair of the small grid below is fitted
/// and the one with the best validation accuracy (then loss) is kept; every one is a trial
/// in the report.
fn train_tfidf(
    config: &TrainConfig,
    data: &Prepared,
    control: &TrainControl<'_>,
) -> Result<(Evals, Classifier, Vec<Trial>), TrainError> {
    let opts = &config.tfidf;
    let texts: Vec<&str> = data.train.texts.iter().map(String::as_str).collect();
    let analyzer = Analyzer::resolve(opts.analyzer, opts.ngram_max, &texts);
    let terms = |s: &Split| -> Vec<Vec<String>> {
        s.texts
            .iter()
            .zip(&s.tokens)
            .map(|(text, tokens)| analyzer.terms(text, Some(tokens)))
            .collect()
    };
    let (train_terms, val_terms, test_terms) =
        (terms(&data.train), terms(&data.val), terms(&data.test));
    let has_val = !data.val.labels.is_empty();
    // The defaults first: ties keep them.
    let cs = match opts.c {
        Some(c) => vec![c],
        None if has_val => vec![DEFAULT_C, 1.0, 100.0],
        None => vec![DEFAULT_C],
    };
    let default_min_df = TfidfVectorizer::default_min_df(data.train.labels.len());
    let min_dfs = match opts.min_df {
        Some(m) => vec![m],
        None if has_val => vec![default_min_df, 3 - default_min_df],
        None => vec![default_min_df],
    };
    let searching = cs.len() * min_dfs.len() > 1;
    let classes = data.labels.len();
    let mut trials = Vec::new();
    let mut best: Option<Fitted> = None;
    let mut first_error = None;
    for &min_df in &min_dfs {
        let vectorizer = match TfidfVectorizer::fit(&train_terms, analyzer, min_df, classes) {
            Ok(v) => v,
            // A min_df no term reaches, on a tiny corpus: the other one may still work.
            Err(e) if searching => {
                first_error.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let train: Vec<_> = train_terms
            .iter()
            .map(|t| vectorizer.transform(t))
            .collect();
        let val: Vec<_> = val_terms.iter().map(|t| vectorizer.transform(t)).collect();
        let train_ex = examples(&train, &data.train);
        let val_ex = (!val.is_empty()).then(|| examples(&val, &data.val));
        for &c in &cs {
            if searching {
                phase(control, &format!("tfidf-logreg:c={c},min_df={min_df}"));
            }
            let started = Instant::now();
            let (net, curve) = train_logreg(
                vectorizer.len(),
                classes,
                &train_ex,
                val_ex.as_ref(),
                c,
                control,
            )?;
            let (val_loss, val_accuracy) = match &val_ex {
                Some(v) => loss_and_accuracy(&net, v, control)?,
                None => (f64::NAN, f64::NAN),
            };
            let mut settings = serde_json::Map::new();
            settings.insert("analyzer".into(), serde_json::json!(analyzer.kind));
            settings.insert("ngram_max".into(), serde_json::json!(analyzer.ngram_max));
            settings.insert("c".into(), serde_json::json!(c));
            settings.insert("min_df".into(), serde_json::json!(min_df));
            trials.push(Trial {
                settings,
                val_accuracy,
                val_loss,
                seconds: started.elapsed().as_secs_f64(),
                chosen: false,
            });
            let better = best.as_ref().is_none_or(|b| {
                val_accuracy > b.val_accuracy
                    || (val_accuracy == b.val_accuracy && val_loss < b.val_loss)
            });
            if better {
                let index = trials.len() - 1;
                best = Some(Fitted {
                    val_accuracy,
                    val_loss,
                    trial: index,
                    vectorizer: vectorizer.clone(),
                    net,
                    curve,
                    c,
                });
            }
        }
    }
    let Some(Fitted {
        trial: index,
        vectorizer,
        net,
        curve,
        c,
        ..
    }) = best
    else {
        return Err(first_error.unwrap_or_else(|| {
            TrainError::InvalidData("no TF-IDF setting could be fitted".into())
        }));
    };
    trials[index].chosen = true;
    if !searching {
        trials.clear();
    }
    let val: Vec<_> = val_terms.iter().map(|t| vectorizer.transform(t)).collect();
    let val_ex = (!val.is_empty()).then(|| examples(&val, &data.val));
    let test: Vec<_> = test_terms.iter().map(|t| vectorizer.transform(t)).collect();
    let evals = evaluate_splits(&net, curve, data, val_ex.as_ref(), &test, control)?;
    let spec = ModelSpec {
        format_version: 1,
        architecture: Architecture::TfidfLogreg,
        labels: data.labels.clone(),
        tokenizer: TokenizerSpec::new(None),
        vocabulary: vectorizer.terms().to_vec(),
        net: None,
        tfidf: Some(vectorizer.spec(c)),
    };
    let body = Body::Tfidf(vectorizer, net);
    Ok((evals, Classifier::new(spec, body), trials))
}

/// Features per class and direction in a tfidf-logreg report.
const TOP_FEATURES: usize = 20;

/// The best TF-IDF fit so far in `train_tfidf`'s search.
struct Fitted {
    val_accuracy: f64,
    val_loss: f64,
    /// Its index among the trials.
    trial: usize,
    vectorizer: TfidfVectorizer,
    net: Logreg,
    curve: Vec<EpochStats>,
    c: f64,
}

fn examples<'a, I>(inputs: &'a [I], s: &Split) -> Examples<'a, I> {
    Examples {
        inputs: inputs.iter().collect(),
        labels: s.labels.clone(),
    }
}

type Evals = (Vec<EpochStats>, Option<EvalMetrics>, Option<EvalMetrics>);

/// Fit on the training split, then evaluate on validation and test (when present).
fn run<N: Net>(
    net: &mut N,
    opts: &FitOptions,
    data: &Prepared,
    [train, val, test]: [&Vec<N::Input>; 3],
    control: &TrainControl<'_>,
) -> Result<Evals, TrainError> {
    let train_ex = examples(train, &data.train);
    let val_ex = (!val.is_empty()).then(|| examples(val, &data.val));
    let curve = fit(net, &train_ex, val_ex.as_ref(), opts, control)?;
    evaluate_splits(net, curve, data, val_ex.as_ref(), test, control)
}

/// Metrics of a trained model on the validation and test splits (when present).
fn evaluate_splits<P: Predictor>(
    net: &P,
    curve: Vec<EpochStats>,
    data: &Prepared,
    val: Option<&Examples<'_, P::Input>>,
    test: &[P::Input],
    control: &TrainControl<'_>,
) -> Result<Evals, TrainError> {
    phase(control, "evaluate");
    let eval = |ex: &Examples<'_, P::Input>| -> Result<EvalMetrics, TrainError> {
        let probs = predict_all(net, &ex.inputs, control)?;
        let predicted: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
        Ok(evaluate(&data.labels, &ex.labels, &predicted))
    };
    let validation = val.map(eval).transpose()?;
    let test_ex = (!test.is_empty()).then(|| examples(test, &data.test));
    let test = test_ex.as_ref().map(eval).transpose()?;
    Ok((curve, validation, test))
}

fn report(
    arch: Architecture,
    (curve, validation, test): Evals,
    started: Instant,
) -> CandidateReport {
    CandidateReport {
        architecture: arch,
        trials: Vec::new(),
        top_features: Vec::new(),
        curve,
        validation,
        test,
        train_seconds: started.elapsed().as_secs_f64(),
    }
}
