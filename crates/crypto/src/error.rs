//! The crate's one error type, and its conversions to and from `std::io::Error` so that
//! a tamper verdict survives a trip through `Read`/`Write` plumbing.

use std::io;
use std::path::PathBuf;

use crate::keyring::KeyId;

pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

/// Everything that can go wrong while encrypting, decrypting or managing keys.
///
/// Messages never contain key material or plaintext; they may contain key ids and paths.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The bytes do not start with the `AIAASENC` magic: a plaintext (legacy) file.
    #[error("not an encrypted object (no AIAASENC header)")]
    NotEncrypted,
    #[error("encrypted object uses format version {0}, which this build cannot read")]
    UnsupportedVersion(u8),
    /// A header field holds a value no writer produces (e.g. a zero chunk size).
    #[error("encrypted object header is malformed: {0}")]
    InvalidHeader(&'static str),
    /// The object (or sealed value) names a master key the ring does not hold.
    #[error("encrypted with master key {0}, which is not in the key ring")]
    UnknownKey(KeyId),
    /// The wrapped data key failed authentication: the header was edited, or the ring's key
    /// with this id has a different secret than the one that encrypted the object.
    #[error(
        "encrypted object header failed authentication under master key {key} \
         (header edited, or the key's secret differs from the one that encrypted it)"
    )]
    HeaderTampered { key: KeyId },
    /// The stream ended before its final chunk.
    #[error("encrypted object is truncated (final chunk missing)")]
    Truncated,
    /// Chunk `chunk` (0-based) failed authentication: modified, reordered, duplicated,
    /// cut short inside the chunk, or followed by appended bytes.
    #[error("encrypted object chunk {chunk} failed authentication (tampered or cut short)")]
    Tampered { chunk: u64 },
    #[error("chunk size {0} is out of range (1 byte ..= 16 MiB)")]
    InvalidChunkSize(u32),
    #[error("invalid key id {0:?}: use 1-32 characters from A-Z a-z 0-9 _ -")]
    InvalidKeyId(String),
    /// The key-ring JSON or environment value is unusable; the message names the field but
    /// never echoes a secret.
    #[error("invalid key ring: {0}")]
    InvalidKeyRing(String),
    #[error("key ring file {path} has mode {mode:o}, readable by group or others; run `chmod 600 {path}`")]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("refusing to overwrite existing file {0}")]
    FileExists(PathBuf),
    #[error("master key {0} is the active key and cannot be retired; rotate first")]
    RetireActive(KeyId),
    #[error("master key {0} appears twice in the key ring")]
    DuplicateKey(KeyId),
    #[error("sealed value is malformed: {0}")]
    MalformedValue(&'static str),
    /// Authentication failed: edited value, or a value copied from another column/row.
    #[error("sealed value failed authentication (edited, or sealed for a different context)")]
    ValueTampered,
    /// The system RNG or an AEAD primitive refused to work; not caused by the data.
    #[error("cryptographic primitive failed: {0}")]
    Primitive(&'static str),
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for CryptoError {
    /// Unwraps a `CryptoError` that a `Decryptor` packed into an `io::Error`, so
    /// `decrypt_to_vec` and friends report `Tampered` rather than an opaque I/O failure.
    fn from(err: io::Error) -> Self {
        if !err.get_ref().is_some_and(|inner| inner.is::<CryptoError>()) {
            return CryptoError::Io(err);
        }
        let kind = err.kind();
        match err
            .into_inner()
            .map(|inner| inner.downcast::<CryptoError>())
        {
            Some(Ok(crypto)) => *crypto,
            Some(Err(other)) => CryptoError::Io(io::Error::new(kind, other)),
            None => CryptoError::Io(io::Error::from(kind)),
        }
    }
}

impl From<CryptoError> for io::Error {
    /// Verdicts become `InvalidData` (downcastable back to `CryptoError`); genuine I/O errors
    /// pass through unchanged so callers still see e.g. `NotFound`.
    fn from(err: CryptoError) -> Self {
        match err {
            CryptoError::Io(io) => io,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_round_trip_through_io_error() {
        let io: io::Error = CryptoError::Tampered { chunk: 3 }.into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
        assert!(io.get_ref().is_some_and(|e| e.is::<CryptoError>()));
        assert!(matches!(
            CryptoError::from(io),
            CryptoError::Tampered { chunk: 3 }
        ));
    }

    #[test]
    fn plain_io_errors_stay_io_errors() {
        let io = io::Error::new(io::ErrorKind::NotFound, "gone");
        let back: io::Error = CryptoError::from(io).into();
        assert_eq!(back.kind(), io::ErrorKind::NotFound);
    }
}
