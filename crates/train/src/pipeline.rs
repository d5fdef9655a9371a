//! A whole training job: validate the data, split it, train word2vec once, train each
//! candidate architecture, evaluate on validation and test, keep the best, write its files.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use aiaas_types::{
    Architecture, CandidateReport, EmbeddingInit, EpochStats, EvalMetrics, GloveParams,
    GloveReport, SearchReport, TrainConfig, TrainEvent, TrainReport, Trial, Word2VecParams,
    Word2VecReport,
};

use crate::fit::loss_and_accuracy;
use crate::fit::{fit, predict_all, Examples, FitOptions, Fitted, Net, Predictor};
use crate::glove::train_glove;
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
///
/// `auto` tries its candidates in order (the default order is cheapest first): each one's
/// configured settings (`tfidf-logreg` its own small grid), then, with `search`, a
/// network's other embedding initialisations, then its learning rate x3 and /3 with the
/// best initialisation so far. Search trials stop early on the validation loss. Under a
/// time budget a candidate's further trials stay within its share of the time left (that
/// divided by the candidates still to come), so every candidate gets its first trial. The
/// refit trains the winner's settings for its best trial's epochs.
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
    let auto = config.architecture == Architecture::Auto;
    let candidates = match config.architecture {
        Architecture::Auto => config.auto_candidates(),
        arch => vec![arch],
    };
    let searching = auto && config.search && !data.val.labels.is_empty();
    let budget = Budget::new(started, config.time_budget_secs.filter(|_| auto), searching);
    let mut embeddings = Embeddings::new(config, &data, &candidates)?;

    let mut outcomes: Vec<(CandidateReport, Classifier, Option<NetSettings>)> = Vec::new();
    let count = candidates.len();
    for (k, arch) in candidates.into_iter().enumerate() {
        // Every candidate gets its first trial unless the budget is spent (the first
        // candidate always: a job ends with a model).
        if k > 0 && !budget.allows(0.0) {
            budget.skip();
            continue;
        }
        // Its further trials only within its share of what is left, so that the later
        // candidates get theirs.
        let share = budget.remaining().map(|r| r / (count - k) as f64);
        let candidate_started = Instant::now();
        phase(control, &format!("train:{}", arch.as_str()));
        let search = if arch == Architecture::TfidfLogreg {
            let (report, classifier) = train_tfidf_candidate(config, &data, &budget, control)?;
            Search::finished(report, classifier)
        } else {
            let settings = NetSettings::configured(config);
            let trial = net_trial(
                arch,
                config,
                &settings,
                None,
                &data,
                &mut embeddings,
                &budget,
                control,
            )?;
            let mut search = Search::new(arch, settings, trial);
            for round in [Round::Init, Round::LearningRate] {
                if !searching {
                    break;
                }
                for settings in search.variations(round, config, embeddings.dim) {
                    let estimate = search.estimate() + embeddings.estimate(&settings.init);
                    let in_share = share
                        .is_none_or(|s| candidate_started.elapsed().as_secs_f64() + estimate <= s);
                    if !in_share || !budget.allows(estimate) {
                        budget.skip();
                        continue;
                    }
                    phase(
                        control,
                        &format!("train:{} {}", arch.as_str(), settings.label()),
                    );
                    let trial = net_trial(
                        arch,
                        config,
                        &settings,
                        Some(settings.label()),
                        &data,
                        &mut embeddings,
                        &budget,
                        control,
                    )?;
                    search.add(settings, trial);
                }
            }
            search
        };
        let val = search.report.validation.as_ref();
        (control.on_event)(TrainEvent::CandidateDone {
            architecture: arch,
            validation_macro_f1: val.map(|m| m.macro_f1),
            validation_accuracy: val.map(|m| m.accuracy),
        });
        outcomes.push(search.finish(searching));
        if auto && config.refit && !data.val.labels.is_empty() {
            // Kept only while the refit can still end in time (else it is skipped anyway,
            // and holding its time back would only leave candidates out).
            let leader = &outcomes[best_candidate(&outcomes)].0;
            let estimate = refit_estimate(leader, &data);
            budget.kept_back.set(0.0);
            if budget.allows_last(estimate) {
                budget.kept_back.set(estimate);
            }
        }
    }
    let best = best_candidate(&outcomes);
    let reports: Vec<CandidateReport> = outcomes.iter().map(|o| o.0.clone()).collect();
    let (winner_report, mut classifier, winner_settings) = outcomes.swap_remove(best);
    let mut refit = None;
    let mut refit_skipped = false;
    let mut vocabulary = embeddings.vocab.len();
    if auto && config.refit && !data.val.labels.is_empty() {
        let estimate = refit_estimate(&winner_report, &data);
        if budget.allows_last(estimate) {
            let (report, refitted, vocab) = refit_winner(
                config,
                &classifier,
                winner_settings.as_ref(),
                train_rows,
                test_rows,
                &budget,
                control,
            )?;
            classifier = refitted;
            refit = Some(report);
            vocabulary = vocab;
        } else {
            refit_skipped = true;
            phase(control, "refit skipped: time budget");
        }
    }
    phase(control, "save");
    let files = classifier.to_files()?;
    let search = (auto && config.search).then(|| SearchReport {
        time_budget_secs: config.time_budget_secs,
        seconds: started.elapsed().as_secs_f64(),
        trials: reports.iter().map(|r| r.trials.len().max(1)).sum(),
        skipped: budget.skipped.get(),
        cut_short: budget.cut_short.get(),
        refit_skipped,
    });
    let report = TrainReport {
        architecture: classifier.architecture(),
        labels: data.labels.clone(),
        train_samples: data.train.labels.len() as u64,
        validation_samples: data.val.labels.len() as u64,
        test_samples: data.test.labels.len() as u64,
        vocabulary,
        word2vec: embeddings.word2vec_report.clone(),
        glove: embeddings.glove_report.clone(),
        candidates: reports,
        refit,
        search,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((TrainedModel { report, files }, classifier))
}

/// Seconds refitting a candidate is expected to take: its kept trial's time, scaled from
/// the training rows to the training and validation rows.
fn refit_estimate(report: &CandidateReport, data: &Prepared) -> f64 {
    let kept = report
        .trials
        .iter()
        .find(|t| t.chosen)
        .map_or(report.train_seconds, |t| t.seconds);
    let train = data.train.labels.len().max(1) as f64;
    kept * (train + data.val.labels.len() as f64) / train
}

/// Patience of a search trial's early stopping when the configuration sets none.
const SEARCH_PATIENCE: usize = 2;

/// An `auto` job's time budget, and what it cost.
struct Budget {
    started: Instant,
    limit: Option<f64>,
    /// Whether trials stop early on the validation loss.
    searching: bool,
    skipped: Cell<usize>,
    cut_short: Cell<bool>,
    /// Seconds kept for refitting the best candidate so far.
    kept_back: Cell<f64>,
    /// Share of the budget kept for evaluating a trial cut short.
    reserve: f64,
}

/// Share of the budget kept back from training for the last evaluation and the save.
const BUDGET_RESERVE: f64 = 0.05;

impl Budget {
    fn new(started: Instant, limit: Option<f64>, searching: bool) -> Budget {
        Budget {
            started,
            limit,
            searching,
            skipped: Cell::new(0),
            cut_short: Cell::new(false),
            kept_back: Cell::new(0.0),
            reserve: BUDGET_RESERVE,
        }
    }

    /// The budget the refit runs under: the same end, nothing kept back.
    fn for_refit(&self) -> Budget {
        Budget {
            reserve: 0.0,
            ..Budget::new(self.started, self.limit, false)
        }
    }

    /// The time trials may use (the budget less its reserve and the refit's time).
    fn usable(&self) -> Option<f64> {
        self.limit
            .map(|l| l * (1.0 - self.reserve) - self.kept_back.get())
    }

    /// Whether work estimated at `seconds` would end within the budget.
    fn allows(&self, seconds: f64) -> bool {
        self.usable()
            .is_none_or(|u| self.started.elapsed().as_secs_f64() + seconds <= u)
    }

    /// Whether work estimated at `seconds` would end within the whole budget (the refit,
    /// last: the reserve was for evaluating a trial cut short, which is done by now).
    fn allows_last(&self, seconds: f64) -> bool {
        self.limit
            .is_none_or(|l| self.started.elapsed().as_secs_f64() + seconds <= l)
    }

    /// Seconds of the usable budget left (`None`: no budget).
    fn remaining(&self) -> Option<f64> {
        self.usable()
            .map(|u| (u - self.started.elapsed().as_secs_f64()).max(0.0))
    }

    /// When a running fit must stop.
    fn deadline(&self) -> Option<Instant> {
        self.usable()
            .map(|u| self.started + std::time::Duration::from_secs_f64(u))
    }

    fn skip(&self) {
        self.skipped.set(self.skipped.get() + 1);
    }
}

/// The settings a network trial varies.
#[derive(Clone)]
struct NetSettings {
    learning_rate: f64,
    init: EmbeddingInit,
    /// Epochs to train (the refit: the chosen trial's best epoch); `None`: the configured.
    epochs: Option<usize>,
}

impl NetSettings {
    fn configured(config: &TrainConfig) -> NetSettings {
        NetSettings {
            learning_rate: config.learning_rate,
            init: config.embedding.clone(),
            epochs: None,
        }
    }

    fn label(&self) -> String {
        format!("lr={} init={}", self.learning_rate, self.init.name())
    }
}

/// The search's rounds after each candidate's first trial.
#[derive(Clone, Copy)]
enum Round {
    /// The other embedding initialisations, at the configured learning rate.
    Init,
    /// The learning rate x3 and /3, with the best initialisation so far.
    LearningRate,
}

/// One network trial's outcome.
struct NetTrial {
    evals: Evals,
    classifier: Classifier,
    /// Fitting and evaluating (embedding training not included).
    seconds: f64,
    /// The epoch whose weights the net kept, and the epochs run.
    best_epoch: usize,
    epochs_run: usize,
    cut_short: bool,
}

/// One candidate's trials so far and the best of them.
struct Search {
    /// The kept trial's report (its `trials` and `train_seconds` cover every trial).
    report: CandidateReport,
    classifier: Classifier,
    /// For networks: how the search stands.
    net: Option<NetSearch>,
}

struct NetSearch {
    /// The configured settings (the first trial).
    configured: NetSettings,
    /// The best trial's settings, with its best epoch as `epochs`.
    best: NetSettings,
    best_score: (f64, f64),
    /// The first trial's seconds: the estimate of the next.
    first_seconds: f64,
}

impl Search {
    fn finished(report: CandidateReport, classifier: Classifier) -> Search {
        Search {
            report,
            classifier,
            net: None,
        }
    }

    fn new(arch: Architecture, settings: NetSettings, trial: NetTrial) -> Search {
        let mut report = empty_report(arch);
        report.train_seconds = trial.seconds;
        let score = (
            trial.evals.1.as_ref().map_or(f64::NAN, |v| v.accuracy),
            val_loss_at(&trial.evals.0, trial.best_epoch),
        );
        let mut search = Search {
            report,
            classifier: trial.classifier,
            net: Some(NetSearch {
                configured: settings.clone(),
                best: NetSettings {
                    epochs: Some(trial.best_epoch),
                    ..settings.clone()
                },
                best_score: score,
                first_seconds: trial.seconds,
            }),
        };
        let (curve, validation, test) = trial.evals;
        search.report.trials.push(net_trial_record(
            &settings,
            score,
            trial.seconds,
            (trial.best_epoch, trial.epochs_run, trial.cut_short),
        ));
        search.report.trials[0].chosen = true;
        search.report.curve = curve;
        search.report.validation = validation;
        search.report.test = test;
        search
    }

    /// Record a further trial; keep it when it beats the best on validation accuracy
    /// (then loss).
    fn add(&mut self, settings: NetSettings, trial: NetTrial) {
        let Some(net) = self.net.as_mut() else {
            return;
        };
        let score = (
            trial.evals.1.as_ref().map_or(f64::NAN, |v| v.accuracy),
            val_loss_at(&trial.evals.0, trial.best_epoch),
        );
        self.report.train_seconds += trial.seconds;
        self.report.trials.push(net_trial_record(
            &settings,
            score,
            trial.seconds,
            (trial.best_epoch, trial.epochs_run, trial.cut_short),
        ));
        let better = score.0 > net.best_score.0
            || (score.0 == net.best_score.0 && score.1 < net.best_score.1);
        if better {
            for t in &mut self.report.trials {
                t.chosen = false;
            }
            if let Some(last) = self.report.trials.last_mut() {
                last.chosen = true;
            }
            net.best = NetSettings {
                epochs: Some(trial.best_epoch),
                ..settings
            };
            net.best_score = score;
            let (curve, validation, test) = trial.evals;
            self.report.curve = curve;
            self.report.validation = validation;
            self.report.test = test;
            self.classifier = trial.classifier;
        }
    }

    /// What a round tries next for a network (nothing for `tfidf-logreg`).
    fn variations(&self, round: Round, config: &TrainConfig, dim: usize) -> Vec<NetSettings> {
        let Some(net) = &self.net else {
            return Vec::new();
        };
        match round {
            Round::Init => ["word2vec", "glove", "random"]
                .into_iter()
                .filter(|name| *name != net.configured.init.name())
                .map(|name| NetSettings {
                    init: other_init(name, &net.configured.init, config, dim),
                    ..net.configured.clone()
                })
                .collect(),
            Round::LearningRate => [3.0, 1.0 / 3.0]
                .into_iter()
                .map(|f| net.configured.learning_rate * f)
                .filter(|lr| (1e-6..=10.0).contains(lr))
                .map(|learning_rate| NetSettings {
                    learning_rate,
                    init: net.best.init.clone(),
                    epochs: None,
                })
                .collect(),
        }
    }

    /// Seconds the next trial of this candidate is expected to take.
    fn estimate(&self) -> f64 {
        self.net.as_ref().map_or(0.0, |n| n.first_seconds)
    }

    /// The candidate's report (trials listed when there was a choice), its kept model, and
    /// for a network the kept settings.
    fn finish(mut self, searching: bool) -> (CandidateReport, Classifier, Option<NetSettings>) {
        if self.net.is_some() && !searching {
            self.report.trials.clear();
        }
        (self.report, self.classifier, self.net.map(|n| n.best))
    }
}

/// The validation loss of a curve's epoch `epoch` (1-based).
fn val_loss_at(curve: &[EpochStats], epoch: usize) -> f64 {
    curve
        .get(epoch.saturating_sub(1))
        .and_then(|e| e.val_loss)
        .unwrap_or(f64::NAN)
}

fn net_trial_record(
    settings: &NetSettings,
    (val_accuracy, val_loss): (f64, f64),
    seconds: f64,
    (best_epoch, epochs_run, cut_short): (usize, usize, bool),
) -> Trial {
    let mut s = serde_json::Map::new();
    s.insert(
        "learning_rate".into(),
        serde_json::json!(settings.learning_rate),
    );
    s.insert("init".into(), serde_json::json!(settings.init.name()));
    s.insert("epochs".into(), serde_json::json!(best_epoch));
    s.insert("epochs_run".into(), serde_json::json!(epochs_run));
    if cut_short {
        s.insert("cut_short".into(), serde_json::json!(true));
    }
    Trial {
        settings: s,
        val_accuracy,
        val_loss,
        seconds,
        chosen: false,
    }
}

/// An embedding initialisation of kind `name` at width `dim`, taking `min_count` and
/// `threads` from the configured one where it has them.
fn other_init(
    name: &str,
    configured: &EmbeddingInit,
    config: &TrainConfig,
    dim: usize,
) -> EmbeddingInit {
    let (min_count, threads) = match configured {
        EmbeddingInit::Word2vec(p) => (p.min_count, p.threads),
        EmbeddingInit::Glove(p) => (p.min_count, p.threads),
        EmbeddingInit::Random => (Word2VecParams::default().min_count, config.threads),
    };
    match name {
        "word2vec" => EmbeddingInit::Word2vec(Word2VecParams {
            vector_size: dim,
            min_count,
            threads,
            ..Word2VecParams::default()
        }),
        "glove" => EmbeddingInit::Glove(GloveParams {
            vector_size: dim,
            min_count,
            threads,
            ..GloveParams::default()
        }),
        _ => EmbeddingInit::Random,
    }
}

/// Train the chosen architecture again on all the training rows (no validation split), as
/// scikit-learn's `refit`, with the settings the search chose (not a new search: there is
/// no validation split): `tfidf-logreg`'s features and `c`, a network's learning rate,
/// embedding initialisation and best trial's epochs.
fn refit_winner(
    config: &TrainConfig,
    winner: &Classifier,
    net: Option<&NetSettings>,
    train_rows: &[LabelledText],
    test_rows: Option<&[LabelledText]>,
    budget: &Budget,
    control: &TrainControl<'_>,
) -> Result<(CandidateReport, Classifier, usize), TrainError> {
    let arch = winner.architecture();
    phase(control, &format!("refit:{}", arch.as_str()));
    let mut refit_config = TrainConfig {
        architecture: arch,
        validation_split: 0.0,
        early_stopping_patience: None,
        tfidf: winner
            .tfidf_options()
            .unwrap_or_else(|| config.tfidf.clone()),
        ..config.clone()
    };
    if let Some(net) = net {
        refit_config.learning_rate = net.learning_rate;
        refit_config.embedding = net.init.clone();
        refit_config.epochs = net.epochs.unwrap_or(config.epochs);
        // The width the search trained at (random vectors take `embedding_dim`).
        refit_config.embedding_dim = embedding_width(config);
    }
    let data = Prepared::new(&refit_config, train_rows, test_rows.unwrap_or(&[]))?;
    let mut embeddings = Embeddings::new(&refit_config, &data, &[arch])?;
    // Refit's own budget: the same deadline, no early stopping (no validation split).
    let refit_budget = budget.for_refit();
    let (report, classifier) = if arch == Architecture::TfidfLogreg {
        train_tfidf_candidate(&refit_config, &data, &refit_budget, control)?
    } else {
        let settings = NetSettings::configured(&refit_config);
        let trial = net_trial(
            arch,
            &refit_config,
            &settings,
            None,
            &data,
            &mut embeddings,
            &refit_budget,
            control,
        )?;
        budget
            .cut_short
            .set(budget.cut_short.get() || trial.cut_short);
        let mut report = empty_report(arch);
        report.train_seconds = trial.seconds;
        (report.curve, report.validation, report.test) = trial.evals;
        (report, trial.classifier)
    };
    Ok((report, classifier, embeddings.vocab.len()))
}

fn phase(control: &TrainControl<'_>, name: &str) {
    (control.on_event)(TrainEvent::Phase {
        name: name.to_string(),
    });
}

/// Index of the best candidate: highest validation accuracy (scikit-learn's default
/// score for classifiers, and what the trials within a candidate are ranked by), then
/// macro-F1, ties to the first. Without a validation split, the highest final training
/// accuracy decides instead.
fn best_candidate<T>(outcomes: &[(CandidateReport, Classifier, T)]) -> usize {
    let score = |r: &CandidateReport| match &r.validation {
        Some(v) => (v.accuracy, v.macro_f1),
        None => (r.curve.last().map_or(0.0, |e| e.train_accuracy), 0.0),
    };
    let mut best = 0;
    for (i, (r, _, _)) in outcomes.iter().enumerate() {
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

/// What the embedding networks share: the token vocabulary, and the pre-trained vectors
/// of each initialisation tried (trained on the training split only, once per job).
struct Embeddings {
    vocab: TokenVocab,
    /// The configured width (every initialisation the search tries has it).
    dim: usize,
    trained: Vec<(&'static str, Option<WordVectors>, f64)>,
    word2vec_report: Option<Word2VecReport>,
    glove_report: Option<GloveReport>,
}

impl Embeddings {
    fn new(
        config: &TrainConfig,
        data: &Prepared,
        candidates: &[Architecture],
    ) -> Result<Embeddings, TrainError> {
        // Rows of the embedding table, at the width it is trained at.
        let max_words = aiaas_types::MAX_EMBEDDING_WEIGHTS / embedding_width(config).max(1);
        let vocab = TokenVocab::build(&data.train.tokens, config.min_count, max_words);
        let needs_embeddings = candidates.iter().any(|a| a.uses_embeddings());
        // Only padding and unknown: every text would look the same to the network.
        if needs_embeddings && vocab.len() <= 2 {
            return Err(TrainError::InvalidData(format!(
                "no word occurs at least min_count={} times in the training texts; lower min_count",
                config.min_count
            )));
        }
        Ok(Embeddings {
            vocab,
            dim: embedding_width(config),
            trained: Vec::new(),
            word2vec_report: None,
            glove_report: None,
        })
    }

    /// Train `init`'s vectors if this is the first trial that uses them.
    fn prepare(
        &mut self,
        init: &EmbeddingInit,
        config: &TrainConfig,
        data: &Prepared,
        control: &TrainControl<'_>,
    ) -> Result<(), TrainError> {
        let name = init.name();
        if !self.trained.iter().any(|t| t.0 == name) {
            let started = Instant::now();
            let vectors = match init {
                EmbeddingInit::Word2vec(params) => {
                    phase(control, "word2vec");
                    let mut params = params.clone();
                    if params.threads == 0 {
                        params.threads = config.threads;
                    }
                    let (v, r) = train_word2vec(&data.train.tokens, &params, config.seed, control)?;
                    self.word2vec_report = Some(r);
                    Some(v)
                }
                EmbeddingInit::Glove(params) => {
                    phase(control, "glove");
                    let mut params = params.clone();
                    if params.threads == 0 {
                        params.threads = config.threads;
                    }
                    let (v, r) = train_glove(&data.train.tokens, &params, config.seed, control)?;
                    self.glove_report = Some(r);
                    Some(v)
                }
                EmbeddingInit::Random => None,
            };
            self.trained
                .push((name, vectors, started.elapsed().as_secs_f64()));
        }
        Ok(())
    }

    /// `init`'s vectors, once prepared (none for random ones).
    fn vectors(&self, init: &EmbeddingInit) -> Option<&WordVectors> {
        let name = init.name();
        self.trained
            .iter()
            .find(|t| t.0 == name)
            .and_then(|t| t.1.as_ref())
    }

    /// Seconds training `init`'s vectors would take: none once trained or for random
    /// vectors, else twice the slowest so far (GloVe's counting makes it the slower).
    fn estimate(&self, init: &EmbeddingInit) -> f64 {
        if matches!(init, EmbeddingInit::Random) || self.trained.iter().any(|t| t.0 == init.name())
        {
            return 0.0;
        }
        2.0 * self.trained.iter().map(|t| t.2).fold(0.0, f64::max)
    }
}

/// The embedding width a configuration trains at.
fn embedding_width(config: &TrainConfig) -> usize {
    match &config.embedding {
        EmbeddingInit::Word2vec(p) => p.vector_size,
        EmbeddingInit::Glove(p) => p.vector_size,
        EmbeddingInit::Random => config.embedding_dim,
    }
}

/// Train network `arch` with `settings` (`label` names a search trial in its events).
#[allow(clippy::too_many_arguments)]
fn net_trial(
    arch: Architecture,
    config: &TrainConfig,
    settings: &NetSettings,
    label: Option<String>,
    data: &Prepared,
    emb: &mut Embeddings,
    budget: &Budget,
    control: &TrainControl<'_>,
) -> Result<NetTrial, TrainError> {
    let dim = emb.dim;
    emb.prepare(&settings.init, config, data, control)?;
    let emb = &*emb;
    let vectors = emb.vectors(&settings.init);
    let started = Instant::now();
    let opts = FitOptions {
        architecture: arch,
        epochs: settings.epochs.unwrap_or(config.epochs),
        batch_size: config.batch_size,
        patience: match budget.searching {
            true => Some(config.early_stopping_patience.unwrap_or(SEARCH_PATIENCE)),
            false => config.early_stopping_patience,
        },
        seed: config.seed ^ 0x5EED_F0BA_7C4E_5EED,
        deadline: budget.deadline(),
        trial: label,
    };
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
        embedding_dim: dim,
        classes: data.labels.len(),
        hidden_units: config.hidden_units,
        kernel_sizes: config.kernel_sizes.clone(),
        filters: config.filters,
        rnn_hidden: config.rnn_hidden,
        bidirectional: config.bidirectional,
    };
    let table = initial_embeddings(&emb.vocab, dim, vectors, config.seed);
    let (lr, freeze, seed) = (
        settings.learning_rate,
        config.freeze_embeddings,
        config.seed,
    );
    let (fitted, evals, body) = match arch {
        Architecture::Avgpool => {
            let mut net = AvgPool::new(&spec, table, lr, freeze, seed)?;
            let (fitted, evals) = run(&mut net, &opts, data, splits.each_ref(), control)?;
            (fitted, evals, Body::Avgpool(net))
        }
        Architecture::Textcnn => {
            let mut net = TextCnn::new(&spec, table, lr, freeze, seed)?;
            let (fitted, evals) = run(&mut net, &opts, data, splits.each_ref(), control)?;
            (fitted, evals, Body::Textcnn(net))
        }
        _ => {
            let mut net = Rnn::new(arch, &spec, table, lr, freeze, seed)?;
            let (fitted, evals) = run(&mut net, &opts, data, splits.each_ref(), control)?;
            (fitted, evals, Body::Rnn(net))
        }
    };
    budget
        .cut_short
        .set(budget.cut_short.get() || fitted.cut_short);
    let model_spec = ModelSpec {
        format_version: 1,
        architecture: arch,
        labels: data.labels.clone(),
        tokenizer: TokenizerSpec::new(Some(max_len)),
        vocabulary: emb.vocab.words().to_vec(),
        net: Some(spec),
        tfidf: None,
    };
    // The epoch the net kept: the best validation loss with early stopping, else the last.
    let epochs_run = fitted.curve.len();
    let best_epoch = match opts.patience {
        Some(_) => fitted
            .curve
            .iter()
            .filter_map(|e| e.val_loss.map(|l| (e.epoch, l)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(epochs_run, |(e, _)| e),
        None => epochs_run,
    };
    Ok(NetTrial {
        evals,
        classifier: Classifier::new(model_spec, body),
        seconds: started.elapsed().as_secs_f64(),
        best_epoch,
        epochs_run,
        cut_short: fitted.cut_short,
    })
}

/// `tfidf-logreg` as a candidate: its grid (when searched) as the trials.
fn train_tfidf_candidate(
    config: &TrainConfig,
    data: &Prepared,
    budget: &Budget,
    control: &TrainControl<'_>,
) -> Result<(CandidateReport, Classifier), TrainError> {
    let started = Instant::now();
    let (evals, classifier, trials) = train_tfidf(config, data, budget, control)?;
    let mut report = empty_report(Architecture::TfidfLogreg);
    (report.curve, report.validation, report.test) = evals;
    report.trials = trials;
    report.top_features = classifier.top_features(TOP_FEATURES);
    report.train_seconds = started.elapsed().as_secs_f64();
    Ok((report, classifier))
}

/// The TF-IDF + logistic regression baseline: no word vectors, no network. With a
/// validation split and no fixed `c`/`min_df`, every pair of the small grid below is fitted
/// and the one with the best validation accuracy (then loss) is kept; every one is a trial
/// in the report.
fn train_tfidf(
    config: &TrainConfig,
    data: &Prepared,
    budget: &Budget,
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
    let mut best: Option<TfidfFit> = None;
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
            // The first setting always; the others while the budget lasts (estimated by
            // the last one's time).
            let last = trials.last().map(|t: &Trial| t.seconds);
            if last.is_some_and(|secs| !budget.allows(secs)) {
                budget.skip();
                continue;
            }
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
                best = Some(TfidfFit {
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
    let Some(TfidfFit {
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
struct TfidfFit {
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
) -> Result<(Fitted, Evals), TrainError> {
    let train_ex = examples(train, &data.train);
    let val_ex = (!val.is_empty()).then(|| examples(val, &data.val));
    let mut fitted = fit(net, &train_ex, val_ex.as_ref(), opts, control)?;
    let curve = std::mem::take(&mut fitted.curve);
    let evals = evaluate_splits(net, curve, data, val_ex.as_ref(), test, control)?;
    fitted.curve = evals.0.clone();
    Ok((fitted, evals))
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

/// A candidate's report before its results are filled in.
fn empty_report(arch: Architecture) -> CandidateReport {
    CandidateReport {
        architecture: arch,
        trials: Vec::new(),
        top_features: Vec::new(),
        curve: Vec::new(),
        validation: None,
        test: None,
        train_seconds: 0.0,
    }
}
