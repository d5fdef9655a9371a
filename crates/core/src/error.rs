//! The core's one error type. The API maps each variant to an HTTP status in one
//! exhaustive match; `Internal` detail is logged, never sent to clients.

use aiaas_engine::EngineError;
use aiaas_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after_secs: u64,
    },
    /// A key's or tenant's rate limit or quota: retry after the given time.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
        /// The limit that was reached (for `X-RateLimit-Limit`).
        limit: u32,
    },
    #[error("{0}")]
    Unavailable(String),
    /// A model is still loading: try again shortly.
    #[error("{message}")]
    Loading {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    TimedOut(String),
    /// A remote the server depends on failed or sent bad data (a model download).
    #[error("{0}")]
    BadUpstream(String),
    /// Stored data failed its integrity check (tampered with or truncated): not served.
    #[error("{0}")]
    Integrity(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => CoreError::Conflict(m),
            e @ StoreError::Integrity { .. } => CoreError::Integrity(e.to_string()),
            // The database is down or restarting: the request may simply be retried.
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "a store is unavailable");
                let which = match &e {
                    StoreError::Unavailable(m) if !m.starts_with("metadata") => "artifact store",
                    _ => "metadata database",
                };
                CoreError::Unavailable(format!("the {which} is unavailable; retry shortly"))
            }
            other => CoreError::Internal(other.to_string()),
        }
    }
}

impl From<EngineError> for CoreError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::QueueFull { .. } => CoreError::Overloaded {
                message: e.to_string(),
                retry_after_secs: 1,
            },
            EngineError::QueueTimeout { waited, .. } => CoreError::Overloaded {
                message: e.to_string(),
                retry_after_secs: waited.as_secs_f64().ceil().max(1.0) as u64,
            },
            EngineError::NotLoaded(_) | EngineError::Stopped(_) => {
                CoreError::Unavailable(e.to_string())
            }
            EngineError::Load(_) | EngineError::Inference(_) => CoreError::Internal(e.to_string()),
            EngineError::InvalidInput(m) => CoreError::InvalidInput(m),
        }
    }
}

impl From<aiaas_engine::llm::LlmError> for CoreError {
    fn from(e: aiaas_engine::llm::LlmError) -> Self {
        use aiaas_engine::llm::LlmError;
        match e {
            LlmError::InvalidRequest(m) => CoreError::InvalidInput(m),
            LlmError::ContextExceeded { .. } => CoreError::PayloadTooLarge(e.to_string()),
            LlmError::QueueFull { .. } => CoreError::Overloaded {
                message: e.to_string(),
                retry_after_secs: 1,
            },
            LlmError::QueueTimeout { waited, .. } => CoreError::Overloaded {
                message: e.to_string(),
                retry_after_secs: waited.as_secs_f64().ceil().max(1.0) as u64,
            },
            LlmError::Timeout => CoreError::TimedOut(e.to_string()),
            LlmError::Stopped(_) => CoreError::Unavailable(e.to_string()),
            LlmError::Load(_) | LlmError::Template(_) | LlmError::Decode(_) => {
                CoreError::Internal(e.to_string())
            }
        }
    }
}

impl From<tokio::task::JoinError> for CoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        CoreError::Internal(format!("background task failed: {e}"))
    }
}

impl From<std::io::Error> for CoreError {
    fn from(e: std::io::Error) -> Self {
        match aiaas_store::crypto_failure(&e) {
            Some(c) => CoreError::Integrity(format!("stored data failed its integrity check: {c}")),
            None => CoreError::Internal(format!("i/o error: {e}")),
        }
    }
}
