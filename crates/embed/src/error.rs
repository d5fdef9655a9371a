//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong loading a model folder or embedding texts.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file of the model folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the model folder is not what a sentence-transformers folder holds.
    #[error("cannot parse {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The folder describes a model this crate does not run (architecture, activation,
    /// pooling mode, missing or misshapen weights).
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// The tokenizer could not be loaded or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// With `truncate: false`, a text is longer than the model takes.
    #[error("text {index} has {tokens} tokens, more than the model's maximum of {max}")]
    TooLong {
        index: usize,
        tokens: usize,
        max: usize,
    },
    /// A text produced no tokens at all (only possible with tokenizers that add no special
    /// tokens), so there is nothing to pool.
    #[error("text {index} produced no tokens")]
    NoTokens { index: usize },
    /// The configured options are out of range.
    #[error("invalid embedder configuration: {0}")]
    Config(String),
    /// A tensor operation failed.
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = EmbedError> = std::result::Result<T, E>;
