//! The crate's one error type.

/// What can go wrong reading privacy configuration (detection and masking never fail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivacyError {
    /// A pseudonym key given as text is not 64 hex characters. The offending text is not
    /// echoed: it may be most of a real key.
    #[error("pseudonym key must be 64 hex characters (32 bytes)")]
    InvalidKey,
    /// A PII kind name is none of the wire names or labels (at most 32 characters kept).
    #[error("unknown PII kind {0:?}")]
    UnknownKind(String),
}
