//! Domain types shared by every layer: identifiers, roles, the caller's principal,
//! model tasks and formats, PII modes, training configuration, training events and evaluation reports.
//!
//! This crate knows no I/O, no SQL, no HTTP and no candle: it is the vocabulary the
//! other crates speak to each other.

pub mod ids;
pub mod limits;
pub mod model;
pub mod principal;
pub mod secret;
pub mod time;
pub mod training;

pub use ids::new_id;
pub use limits::{IpNet, Limits};
pub use model::{Format, PiiMode, Task, UnknownName};
pub use principal::{Permission, Principal, Role};
pub use secret::Secret;
pub use time::{format_utc, next_month_start_ms, now_ms, utc_date, utc_day, utc_stamp};
pub use training::{
    Architecture, CandidateReport, ClassFeatures, ClassMetrics, EmbeddingInit, EpochStats,
    EvalMetrics, FeatureWeight, GloveParams, GloveReport, SearchReport, TfidfAnalyzer,
    TfidfOptions, TrainConfig, TrainEvent, TrainReport, Trial, Word2VecMode, Word2VecParams,
    Word2VecReport, MAX_BATCH_ACTIVATIONS, MAX_CLASSES, MAX_EMBEDDING_WEIGHTS,
};
