//! Domain types shared by every layer: identifiers, roles, the caller's principal,
//! training configuration, training events and evaluation reports.
//!
//! This crate knows no I/O, no SQL, no HTTP and no candle: it is the vocabulary the
//! other crates speak to each other.

pub mod ids;
pub mod limits;
pub mod principal;
pub mod secret;
pub mod training;

pub use ids::new_id;
pub use limits::{IpNet, Limits};
pub use principal::{Permission, Principal, Role};
pub use secret::Secret;
pub use training::{
    Architecture, CandidateReport, ClassMetrics, EmbeddingInit, EpochStats, EvalMetrics,
    TrainConfig, TrainEvent, TrainReport, Word2VecMode, Word2VecParams, Word2VecReport,
};

/// Milliseconds since the Unix epoch: the one time representation in the store.
/// The UTC calendar date (year, month, day) of an epoch-milliseconds time (Howard
/// Hinnant's days-to-civil algorithm).
pub fn utc_date(epoch_ms: i64) -> (i64, u32, u32) {
    let z = epoch_ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
