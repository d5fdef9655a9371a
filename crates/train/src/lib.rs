//! Text-classifier training and inference: tokenisation, word2vec, the classifier networks
//! (average pooling and TF-IDF + logistic regression in plain Rust with sparse updates; TextCNN
//! and GRU/LSTM on candle with autograd), evaluation metrics, and the model files a trained
//! version is stored as.
//!
//! Entry points: [`train`] (a whole job: split, word2vec, one or several architectures,
//! evaluation, files) and [`Classifier`] (load the files back and predict).
//!
//! Determinism: splits, initialisation, shuffling and dropout all come from `config.seed`.
//! Word2vec with one thread is deterministic; with several it is Hogwild (as word2vec.c and
//! gensim), so "same seed, same model" needs `threads = 1` (word2vec uses
//! `Word2VecParams::threads`, or `TrainConfig::threads` when that is 0). candle's CPU kernels
//! pick their own thread count.

pub mod glove;
pub mod metrics;
pub mod text;
pub mod word2vec;

mod explain;
mod fit;
mod model;
mod nets;
mod pipeline;
mod split;
mod tfidf;
mod vocab;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

pub use explain::{
    ExplainMethod, ExplainOptions, Explanation, TokenAttribution, DEFAULT_IG_STEPS, MAX_IG_STEPS,
};
pub use glove::train_glove;
pub use metrics::evaluate;
pub use model::Classifier;
pub use pipeline::train;
pub use text::{tokenize, tokenize_spans};
pub use word2vec::{train_word2vec, WordVectors};

/// One training example.
#[derive(Debug, Clone)]
pub struct LabelledText {
    pub text: String,
    pub label: String,
}

impl From<(String, String)> for LabelledText {
    fn from((text, label): (String, String)) -> Self {
        LabelledText { text, label }
    }
}

/// The files of a trained model version, by name ("weights.safetensors", "model.json").
pub type ModelFiles = BTreeMap<String, Vec<u8>>;

/// Name of the weights file in [`ModelFiles`].
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// Name of the description file (architecture, labels, vocabulary, tokenizer) in [`ModelFiles`].
pub const MODEL_FILE: &str = "model.json";

/// How a running job is steered and observed.
pub struct TrainControl<'a> {
    /// Checked at least once per batch; when set, training returns [`TrainError::Cancelled`].
    pub cancel: &'a AtomicBool,
    /// Receives progress events.
    pub on_event: &'a (dyn Fn(aiaas_types::TrainEvent) + Sync),
}

/// The outcome of a training job: its report and the kept model's files.
#[derive(Debug, Clone)]
pub struct TrainedModel {
    pub report: aiaas_types::TrainReport,
    pub files: ModelFiles,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid data: {0}")]
    InvalidData(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("training cancelled")]
    Cancelled,
    #[error("model files are invalid: {0}")]
    InvalidModel(String),
    #[error("numeric backend error: {0}")]
    Backend(String),
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Backend(e.to_string())
    }
}

#[cfg(test)]
mod tests;
