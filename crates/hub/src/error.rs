//! `HubError`, the one error type of the hub.

use std::io;

/// Errors of pulling and managing models. Variants are chosen so a caller can map each to
/// an HTTP status (see the crate docs).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Unknown catalogue name, missing path, repo or model.
    #[error("not found: {0}")]
    NotFound(String),
    /// A malformed argument or an unsupported model layout.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Downloaded or produced data does not match its expected sha256 or size.
    #[error("checksum mismatch for {what}: expected {expected}, got {actual}")]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },
    /// A remote could not be reached or answered with an error status.
    #[error("network error: {0}")]
    Network(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("pull cancelled")]
    Cancelled,
    /// A model of that name is installed (or being pulled) already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
}

impl HubError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> HubError {
        HubError::Io {
            context: context.into(),
            source,
        }
    }

    /// Malformed data where it should be well-formed (a verified wheel that is not a zip).
    pub(crate) fn corrupt(context: impl Into<String>, detail: impl ToString) -> HubError {
        HubError::io(
            context,
            io::Error::new(io::ErrorKind::InvalidData, detail.to_string()),
        )
    }
}
