//! Domain types shared by every layer: identifiers, roles, the caller's principal,
//! training configuration, training events and evaluation reports.
//!
//! This crate knows no I/O, no SQL, no HTTP and no candle: it is the vocabulary the
//! other crates speak to each other.

pub mod ids;
pub mod principal;
pub mod secret;
pub mod training;

pub use ids::new_id;
pub use principal::{Permission, Principal, Role};
pub use secret::Secret;
pub use training::{
    Architecture, CandidateReport, ClassMetrics, EmbeddingInit, EpochStats, EvalMetrics,
    TrainConfig, TrainEvent, TrainReport, Word2VecMode, Word2VecParams, Word2VecReport,
};

/// Milliseconds since the Unix epoch: the one time representation in the store.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
