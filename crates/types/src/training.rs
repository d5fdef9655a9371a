//! Training configuration (what a user asks for), training events (what a job reports
//! while it runs) and the final report (what a model version records).

use serde::{Deserialize, Serialize};

/// Network architecture of a text classifier.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// Embedding -> global average pooling -> Dense(hidden, ReLU) -> Dense(classes).
    Avgpool,
    /// Embedding -> convolutions of several widths -> max-over-time -> Dense(classes).
    Textcnn,
    /// Embedding -> GRU (optionally bidirectional) -> Dense(classes).
    Gru,
    /// Embedding -> LSTM (optionally bidirectional) -> Dense(classes).
    Lstm,
    /// TF-IDF features -> multinomial logistic regression.
    TfidfLogreg,
    /// Train several candidates, keep the best on validation accuracy (then macro-F1).
    Auto,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Avgpool => "avgpool",
            Architecture::Textcnn => "textcnn",
            Architecture::Gru => "gru",
            Architecture::Lstm => "lstm",
            Architecture::TfidfLogreg => "tfidf-logreg",
            Architecture::Auto => "auto",
        }
    }

    /// Whether this architecture learns word embeddings (and so can use word2vec init).
    pub fn uses_embeddings(self) -> bool {
        !matches!(self, Architecture::TfidfLogreg)
    }
}

/// Word2Vec training mode.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Word2VecMode {
    SkipGram,
    Cbow,
}

/// Word2Vec with negative sampling, as in Mikolov et al. and gensim.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Word2VecParams {
    pub mode: Word2VecMode,
    pub vector_size: usize,
    pub window: usize,
    pub min_count: usize,
    pub negative: usize,
    pub epochs: usize,
    /// Sub-sampling threshold for frequent words (gensim's `sample`); 0 disables it.
    pub sample: f64,
    /// Initial learning rate (gensim's `alpha`), decaying linearly to `min_alpha`.
    pub alpha: f32,
    pub min_alpha: f32,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
}

impl Default for Word2VecParams {
    fn default() -> Self {
        Word2VecParams {
            mode: Word2VecMode::SkipGram,
            vector_size: 100,
            window: 5,
            min_count: 2,
            negative: 5,
            epochs: 5,
            sample: 1e-3,
            alpha: 0.025,
            min_alpha: 0.0001,
            threads: 0,
        }
    }
}

/// GloVe (Pennington, Socher and Manning, 2014): a weighted least-squares fit of word and
/// context vectors to the logarithm of the corpus's co-occurrence counts (each pair within
/// `window` words counted 1/distance), weighted by `min(1, (x / x_max)^alpha)`, trained by
/// AdaGrad over the non-zero counts as the reference glove.c does. A word's vector is its
/// word vector plus its context vector.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GloveParams {
    pub vector_size: usize,
    /// Words on each side counted as co-occurring.
    pub window: usize,
    pub min_count: usize,
    /// Keep at most this many words, the most frequent (glove.c's `-max-vocab`); 0: no
    /// limit but the embedding table's.
    pub max_vocab: usize,
    /// Passes over the co-occurrence counts.
    pub epochs: usize,
    /// Counts at or above this weigh fully.
    pub x_max: f64,
    pub alpha: f64,
    /// AdaGrad's initial step.
    pub learning_rate: f64,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
}

impl Default for GloveParams {
    fn default() -> Self {
        // glove.c's demo settings for a small corpus (x_max 10, 15 iterations), at the
        // classifier's width and word2vec's min_count.
        GloveParams {
            vector_size: 100,
            window: 10,
            min_count: 2,
            max_vocab: 0,
            epochs: 15,
            x_max: 10.0,
            alpha: 0.75,
            learning_rate: 0.05,
            threads: 0,
        }
    }
}

/// How the classifier's embedding table starts. In JSON: `{"init": "word2vec", ...params}`
/// (`init` may be left out: word2vec), `{"init": "glove", ...params}` or `{"init": "random"}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "init", rename_all = "kebab-case")]
pub enum EmbeddingInit {
    /// Train word2vec on the training texts first and copy its vectors in.
    Word2vec(Word2VecParams),
    /// Train GloVe on the training texts first and copy its vectors in.
    Glove(GloveParams),
    /// Random initialisation.
    Random,
}

impl EmbeddingInit {
    /// The name `init` takes in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            EmbeddingInit::Word2vec(_) => "word2vec",
            EmbeddingInit::Glove(_) => "glove",
            EmbeddingInit::Random => "random",
        }
    }
}

impl<'de> Deserialize<'de> for EmbeddingInit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let init = match fields.remove("init") {
            None => "word2vec".to_string(),
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "embedding.init must be a string, got {other}"
                )))
            }
        };
        match init.as_str() {
            "word2vec" => Word2VecParams::deserialize(serde_json::Value::Object(fields))
                .map(EmbeddingInit::Word2vec)
                .map_err(|e| D::Error::custom(format!("embedding: {e}"))),
            "glove" => GloveParams::deserialize(serde_json::Value::Object(fields))
                .map(EmbeddingInit::Glove)
                .map_err(|e| D::Error::custom(format!("embedding: {e}"))),
            "random" if fields.is_empty() => Ok(EmbeddingInit::Random),
            "random" => Err(D::Error::custom(
                "embedding with init \"random\" takes no other fields (use embedding_dim for its width)",
            )),
            other => Err(D::Error::custom(format!(
                "unknown embedding.init {other:?}: use \"word2vec\", \"glove\" or \"random\""
            ))),
        }
    }
}

impl Default for EmbeddingInit {
    fn default() -> Self {
        EmbeddingInit::Word2vec(Word2VecParams::default())
    }
}

/// What `tfidf-logreg` counts as a term.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TfidfAnalyzer {
    /// Character n-grams when most letters of the training texts are CJK (Chinese,
    /// Japanese, Korean: no spaces between words, so a segmenter's mistakes cost words),
    /// word n-grams otherwise.
    #[default]
    Auto,
    /// n-grams of the tokenizer's words (unicode words; jieba for CJK ideographs).
    Word,
    /// n-grams of characters of the lower-cased text, whitespace runs as one space
    /// (scikit-learn's `analyzer="char"`).
    Char,
}

/// Settings of `tfidf-logreg`. Left out, the regularisation strength `c` and `min_df` are
/// searched on the validation split (every trial in the report); given, they are used.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TfidfOptions {
    pub analyzer: TfidfAnalyzer,
    /// Longest n-gram (shortest is 1): default 2.
    pub ngram_max: usize,
    /// Inverse L2 strength, scikit-learn's `C`; `None`: searched over 1, 10, 100.
    pub c: Option<f64>,
    /// Terms in fewer training texts are dropped; `None`: searched over 1 and 2.
    pub min_df: Option<usize>,
}

impl Default for TfidfOptions {
    fn default() -> Self {
        TfidfOptions {
            analyzer: TfidfAnalyzer::Auto,
            ngram_max: 2,
            c: None,
            min_df: None,
        }
    }
}

/// Everything a training job needs to know besides the data.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub architecture: Architecture,
    pub embedding: EmbeddingInit,
    /// Keep the embedding table fixed during classifier training.
    pub freeze_embeddings: bool,
    /// Embedding width when `embedding` is `random` (word2vec's or GloVe's `vector_size`
    /// otherwise).
    pub embedding_dim: usize,
    /// Width of the hidden dense layer (the founding example's 24).
    pub hidden_units: usize,
    /// Convolution widths for `textcnn`.
    pub kernel_sizes: Vec<usize>,
    /// Filters per width for `textcnn`.
    pub filters: usize,
    /// Hidden size for `gru` / `lstm`.
    pub rnn_hidden: usize,
    pub bidirectional: bool,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Tokens kept per text (longer texts are truncated).
    pub max_len: usize,
    /// Words seen fewer times than this in training are out of vocabulary.
    pub min_count: usize,
    /// Fraction of the training data held out for validation.
    pub validation_split: f64,
    /// Stop after this many epochs without validation-loss improvement; `None` disables.
    pub early_stopping_patience: Option<usize>,
    pub seed: u64,
    /// Threads for the numeric work; 0 means one per available core.
    pub threads: usize,
    /// Candidates tried by `auto` (defaults to `auto_candidates()` when empty).
    pub candidates: Vec<Architecture>,
    /// For `auto`: once the winner is chosen on the validation split, train it again on
    /// training + validation data (as scikit-learn's `refit`); the kept model is the refit.
    pub refit: bool,
    /// Settings of `tfidf-logreg` (features, regularisation).
    pub tfidf: TfidfOptions,
    /// For `auto`: besides the configured settings, try a few others per network candidate
    /// on the validation split (the learning rate x3 and /3, the other embedding
    /// initialisations; epochs chosen by early stopping) and keep the best. Every trial is
    /// in the report.
    pub search: bool,
    /// For `auto`: a bound on the whole search in seconds (embedding training, every trial,
    /// and the refit, which is skipped when the time left would not cover it). A trial
    /// still running at the bound stops there with its best epoch so far; no trial starts
    /// that would not end in time. `None`: no bound.
    pub time_budget_secs: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            architecture: Architecture::Avgpool,
            embedding: EmbeddingInit::default(),
            freeze_embeddings: false,
            embedding_dim: 100,
            hidden_units: 24,
            kernel_sizes: vec![3, 4, 5],
            filters: 64,
            rnn_hidden: 64,
            bidirectional: true,
            epochs: 10,
            batch_size: 32,
            learning_rate: 0.001,
            max_len: 400,
            min_count: 1,
            validation_split: 0.2,
            early_stopping_patience: None,
            seed: 42,
            threads: 0,
            candidates: Vec::new(),
            refit: true,
            tfidf: TfidfOptions::default(),
            search: true,
            time_budget_secs: None,
        }
    }
}

/// Most classes a classifier is trained for: a confusion matrix and per-class weights grow
/// with it (squared for the matrix), so an upload with a label per row stops here with a
/// clear error instead of exhausting memory.
pub const MAX_CLASSES: usize = 1000;

/// Most weights in one embedding matrix (vocabulary x dimension): past it the least
/// frequent words are dropped (as gensim's `max_final_vocab`), so memory stays bounded
/// whatever vocabulary a data set brings.
pub const MAX_EMBEDDING_WEIGHTS: usize = 64 << 20;

/// Most values in one activation tensor of a batch (batch x length x width): TextCNN and
/// the recurrent networks hold a few of these, padded to the batch's longest text.
pub const MAX_BATCH_ACTIVATIONS: usize = 64 << 20;

impl TrainConfig {
    /// Check ranges; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        fn range<T: PartialOrd + std::fmt::Display>(
            name: &str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<(), String> {
            if v < lo || v > hi {
                return Err(format!("{name} must be between {lo} and {hi}, got {v}"));
            }
            Ok(())
        }
        range("epochs", self.epochs, 1, 1000)?;
        range("batch_size", self.batch_size, 1, 4096)?;
        range("learning_rate", self.learning_rate, 1e-6, 10.0)?;
        range("max_len", self.max_len, 1, 10_000)?;
        range("embedding_dim", self.embedding_dim, 2, 1024)?;
        range("hidden_units", self.hidden_units, 1, 4096)?;
        range("filters", self.filters, 1, 1024)?;
        range("rnn_hidden", self.rnn_hidden, 1, 1024)?;
        range("min_count", self.min_count, 1, 1_000_000)?;
        range("validation_split", self.validation_split, 0.0, 0.9)?;
        range("threads", self.threads, 0, 256)?;
        // Each setting has its range, and so does their product: one activation tensor.
        let width = self
            .embedding_dim
            .max(self.filters)
            .max(4 * self.rnn_hidden);
        let activations = self.batch_size * self.max_len * width;
        if activations > MAX_BATCH_ACTIVATIONS {
            return Err(format!(
                "batch_size x max_len x the widest layer (embedding_dim, filters or 4 x \
                 rnn_hidden) is {activations}, more than {MAX_BATCH_ACTIVATIONS}: lower \
                 batch_size or max_len"
            ));
        }
        if self.kernel_sizes.is_empty() || self.kernel_sizes.iter().any(|&k| k == 0 || k > 32) {
            return Err("kernel_sizes must be a non-empty list of widths between 1 and 32".into());
        }
        if let Some(p) = self.early_stopping_patience {
            range("early_stopping_patience", p, 1, 1000)?;
        }
        range("tfidf.ngram_max", self.tfidf.ngram_max, 1, 5)?;
        if let Some(c) = self.tfidf.c {
            range("tfidf.c", c, 1e-4, 1e6)?;
        }
        if let Some(m) = self.tfidf.min_df {
            range("tfidf.min_df", m, 1, 1_000_000)?;
        }
        if self.candidates.contains(&Architecture::Auto) {
            return Err("candidates cannot contain auto".into());
        }
        if !self.candidates.is_empty() && self.architecture != Architecture::Auto {
            return Err(format!(
                "candidates apply only to architecture auto, not {}",
                self.architecture.as_str()
            ));
        }
        if let Some(t) = self.time_budget_secs {
            range("time_budget_secs", t, 1.0, 7.0 * 24.0 * 3600.0)?;
            if self.architecture != Architecture::Auto {
                return Err(format!(
                    "time_budget_secs applies only to architecture auto, not {}",
                    self.architecture.as_str()
                ));
            }
        }
        if let EmbeddingInit::Glove(g) = &self.embedding {
            range("embedding.vector_size", g.vector_size, 2, 1024)?;
            range("embedding.window", g.window, 1, 50)?;
            range("embedding.min_count", g.min_count, 1, 1_000_000)?;
            range("embedding.max_vocab", g.max_vocab, 0, 100_000_000)?;
            range("embedding.epochs", g.epochs, 1, 200)?;
            range("embedding.x_max", g.x_max, 1e-3, 1e9)?;
            range("embedding.alpha", g.alpha, 0.0, 2.0)?;
            range("embedding.learning_rate", g.learning_rate, 1e-6, 1.0)?;
            range("embedding.threads", g.threads, 0, 256)?;
        }
        if let EmbeddingInit::Word2vec(w) = &self.embedding {
            range("embedding.vector_size", w.vector_size, 2, 1024)?;
            range("embedding.window", w.window, 1, 50)?;
            range("embedding.min_count", w.min_count, 1, 1_000_000)?;
            range("embedding.negative", w.negative, 1, 50)?;
            range("embedding.epochs", w.epochs, 1, 100)?;
            range("embedding.sample", w.sample, 0.0, 1.0)?;
            range("embedding.alpha", w.alpha, 1e-6, 1.0)?;
            // Decays from alpha to min_alpha: a larger or negative one would diverge.
            range("embedding.min_alpha", w.min_alpha, 0.0, w.alpha)?;
            range("embedding.threads", w.threads, 0, 256)?;
        }
        Ok(())
    }

    /// The architectures `auto` trains. By default the recurrent networks are left out:
    /// on CPU they cost minutes per data set of news size and rarely win on topic
    /// classification; name them in `candidates` to include them.
    pub fn auto_candidates(&self) -> Vec<Architecture> {
        if self.candidates.is_empty() {
            vec![
                Architecture::TfidfLogreg,
                Architecture::Avgpool,
                Architecture::Textcnn,
            ]
        } else {
            self.candidates.clone()
        }
    }
}

/// One epoch of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub seconds: f64,
}

/// Precision, recall and F1 for one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Evaluation of a classifier on one labelled split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub samples: u64,
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// Labels in the order of the confusion matrix's rows and columns.
    pub labels: Vec<String>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word2VecReport {
    pub mode: Word2VecMode,
    pub vocabulary: usize,
    /// Words processed over all epochs (after sub-sampling, like gensim's effective words).
    pub words: u64,
    pub seconds: f64,
    pub words_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GloveReport {
    pub vocabulary: usize,
    /// Non-zero co-occurrence counts (ordered pairs of words) trained on.
    pub pairs: u64,
    pub epochs: usize,
    /// The weighted least-squares cost per pair after each epoch (half the weighted
    /// squared error, as glove.c prints it).
    pub cost: Vec<f64>,
    /// Counting co-occurrences.
    pub count_seconds: f64,
    /// Counting and training.
    pub seconds: f64,
}

/// The result of training one architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateReport {
    pub architecture: Architecture,
    /// Settings tried on the validation split before the kept one (`tfidf-logreg`'s `c`
    /// and `min_df`), in the order tried; empty when nothing was searched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
    /// Global importance where the model defines it (`tfidf-logreg`: per class, the terms
    /// with the largest weights toward it, and against it); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_features: Vec<ClassFeatures>,
    pub curve: Vec<EpochStats>,
    pub validation: Option<EvalMetrics>,
    pub test: Option<EvalMetrics>,
    pub train_seconds: f64,
}

/// A class's most important features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassFeatures {
    pub label: String,
    /// Largest weights first.
    pub toward: Vec<FeatureWeight>,
    /// Most negative weights first.
    pub against: Vec<FeatureWeight>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureWeight {
    /// The term (a word, a space-joined word bigram, or characters).
    pub feature: String,
    pub weight: f32,
}

/// One setting tried in a search, scored on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The settings, by name (`{"c": 10.0, "min_df": 2, "analyzer": "char"}`).
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub val_accuracy: f64,
    pub val_loss: f64,
    pub seconds: f64,
    /// Whether this is the setting kept.
    pub chosen: bool,
}

/// What a finished training job records and a model version keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The architecture of the kept model (for `auto`, the winner).
    pub architecture: Architecture,
    pub labels: Vec<String>,
    pub train_samples: u64,
    pub validation_samples: u64,
    pub test_samples: u64,
    pub vocabulary: usize,
    pub word2vec: Option<Word2VecReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glove: Option<GloveReport>,
    pub candidates: Vec<CandidateReport>,
    /// For `auto` with `refit`: the winner trained again on training + validation data;
    /// this is the kept model, and its `test` metrics are the model's.
    #[serde(default)]
    pub refit: Option<CandidateReport>,
    /// For `auto` with `search`: what the search spent and left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchReport>,
    pub seconds: f64,
}

/// How an `auto` search went against its time budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    pub time_budget_secs: Option<f64>,
    /// From the first embedding or trial to the kept model (the refit included).
    pub seconds: f64,
    /// Trials run (every candidate's, `tfidf-logreg`'s grid included).
    pub trials: usize,
    /// Trials not started because they would not have ended within the budget.
    pub skipped: usize,
    /// A trial was stopped by the budget (it keeps its best epoch so far).
    pub cut_short: bool,
    /// The refit was left out for lack of time (the kept model is the searched one).
    pub refit_skipped: bool,
}

impl TrainReport {
    /// The kept model's report: the refit when there is one, else the chosen candidate.
    pub fn chosen(&self) -> Option<&CandidateReport> {
        self.refit.as_ref().or_else(|| {
            self.candidates
                .iter()
                .find(|c| c.architecture == self.architecture)
        })
    }
}

/// Progress reported while a job runs; stored per job and streamed as SSE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrainEvent {
    /// A phase begins: "prepare", "word2vec", "train:<arch>", "evaluate", "save".
    Phase {
        name: String,
    },
    Word2vecEpoch {
        epoch: usize,
        epochs: usize,
        words_per_second: f64,
    },
    GloveEpoch {
        epoch: usize,
        epochs: usize,
        cost: f64,
    },
    Epoch {
        architecture: Architecture,
        epochs: usize,
        /// For `auto`'s search: the trial's settings ("lr=0.003 init=glove"); absent for
        /// a candidate's first trial.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trial: Option<String>,
        #[serde(flatten)]
        stats: EpochStats,
    },
    CandidateDone {
        architecture: Architecture,
        validation_macro_f1: Option<f64>,
        validation_accuracy: Option<f64>,
    },
    Log {
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_follow_the_founding_example() {
        let c: TrainConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.architecture, Architecture::Avgpool);
        assert_eq!(c.hidden_units, 24);
        assert_eq!(c.epochs, 10);
        assert_eq!(c.batch_size, 32);
        assert!(matches!(c.embedding, EmbeddingInit::Word2vec(_)));
        c.validate().unwrap();
    }

    #[test]
    fn config_parses_nested_word2vec_and_rejects_unknown_fields() {
        let c: TrainConfig = serde_json::from_str(
            r#"{"architecture":"tfidf-logreg","embedding":{"init":"word2vec","mode":"cbow","epochs":3}}"#,
        )
        .unwrap();
        assert_eq!(c.architecture, Architecture::TfidfLogreg);
        match c.embedding {
            EmbeddingInit::Word2vec(w) => {
                assert_eq!(w.mode, Word2VecMode::Cbow);
                assert_eq!(w.epochs, 3);
                assert_eq!(w.window, 5);
            }
            other => panic!("expected word2vec, got {other:?}"),
        }
        assert!(serde_json::from_str::<TrainConfig>(r#"{"epoch":3}"#).is_err());
    }

    #[test]
    fn embedding_init_defaults_to_word2vec_and_checks_its_fields() {
        let c: TrainConfig = serde_json::from_str(r#"{"embedding":{"mode":"cbow"}}"#).unwrap();
        assert!(
            matches!(c.embedding, EmbeddingInit::Word2vec(ref w) if w.mode == Word2VecMode::Cbow)
        );
        let c: TrainConfig = serde_json::from_str(r#"{"embedding":{"init":"random"}}"#).unwrap();
        assert_eq!(c.embedding, EmbeddingInit::Random);
        let c: TrainConfig =
            serde_json::from_str(r#"{"embedding":{"init":"glove","x_max":100}}"#).unwrap();
        assert!(
            matches!(c.embedding, EmbeddingInit::Glove(ref g) if g.x_max == 100.0 && g.window == 10)
        );
        c.validate().unwrap();
        let back: TrainConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        for bad in [
            r#"{"embedding":{"init":"fasttext"}}"#,
            r#"{"embedding":{"init":"glove","mode":"cbow"}}"#,
            r#"{"embedding":{"init":"random","window":3}}"#,
            r#"{"embedding":{"windows":3}}"#,
            r#"{"embedding":{"init":3}}"#,
        ] {
            assert!(serde_json::from_str::<TrainConfig>(bad).is_err(), "{bad}");
        }
        // Serialising and parsing back gives the same configuration.
        let c = TrainConfig::default();
        let back: TrainConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn candidates_need_auto() {
        let c = TrainConfig {
            candidates: vec![Architecture::Gru],
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("auto"));
        let c = TrainConfig {
            time_budget_secs: Some(60.0),
            ..TrainConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .contains("time_budget_secs applies only"));
        let c = TrainConfig {
            architecture: Architecture::Auto,
            time_budget_secs: Some(0.5),
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("time_budget_secs"));
        let c = TrainConfig {
            architecture: Architecture::Auto,
            time_budget_secs: Some(60.0),
            ..TrainConfig::default()
        };
        c.validate().unwrap();
    }

    #[test]
    fn validation_names_the_field() {
        let c = TrainConfig {
            validation_split: 0.95,
            ..TrainConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(e.contains("validation_split"), "{e}");
        let c = TrainConfig {
            batch_size: 0,
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("batch_size"));
    }

    /// Settings each in range can still multiply into one tensor no machine holds.
    #[test]
    fn the_product_of_batch_settings_is_bounded() {
        let c = TrainConfig {
            batch_size: 4096,
            max_len: 10_000,
            embedding_dim: 1024,
            ..TrainConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(e.contains("batch_size") && e.contains("max_len"), "{e}");
        let c = TrainConfig {
            batch_size: 256,
            max_len: 1000,
            embedding_dim: 256,
            ..TrainConfig::default()
        };
        c.validate().unwrap();
    }

    #[test]
    fn min_alpha_lies_between_zero_and_alpha() {
        for (min_alpha, ok) in [
            (0.0, true),
            (0.0001, true),
            (0.025, true),
            (-0.01, false),
            (0.5, false),
            (1e30, false),
        ] {
            let c: TrainConfig = serde_json::from_value(
                serde_json::json!({"embedding": {"alpha": 0.025, "min_alpha": min_alpha}}),
            )
            .unwrap();
            assert_eq!(c.validate().is_ok(), ok, "{min_alpha}");
            if !ok {
                assert!(c.validate().unwrap_err().contains("min_alpha"));
            }
        }
    }

    #[test]
    fn epoch_event_serialises_flat() {
        let e = TrainEvent::Epoch {
            architecture: Architecture::Avgpool,
            epochs: 10,
            trial: None,
            stats: EpochStats {
                epoch: 1,
                train_loss: 0.5,
                train_accuracy: 0.8,
                val_loss: Some(0.4),
                val_accuracy: Some(0.85),
                seconds: 1.0,
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "epoch");
        assert_eq!(v["architecture"], "avgpool");
        assert_eq!(v["val_accuracy"], 0.85);
        assert!(v.get("trial").is_none());
        let back: TrainEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
