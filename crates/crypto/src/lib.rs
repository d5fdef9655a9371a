//! Envelope encryption at rest for every artifact the platform stores (datasets, model
//! weights, backups, request samples) and for secret database columns.
//!
//! Each object gets a random AES-256-GCM data key; the data key is wrapped by a master key
//! from a [`KeyRing`] and stored in the object's fixed-size header (layout in `header.rs`),
//! followed by the payload in authenticated chunks (construction in `stream.rs`). Rotating
//! the master key only rewrites headers ([`rewrap_file`]); payload bytes never change.
//!
//! Architecture invariants:
//! - No plaintext leaves a [`Decryptor`] before its chunk authenticated; failures are
//!   sticky, and every malformed input maps to a distinct [`CryptoError`] variant.
//! - Key material is zeroized on drop and never printed: `Debug` shows `***`, errors show
//!   key ids only.
//! - The API is synchronous `std::io`, so it runs in blocking tasks over any storage.

mod atomic_write;
mod base64url;
mod error;
mod header;
mod key_file;
mod keyring;
mod random;
mod rewrap;
mod stream;
mod value;

pub use error::{CryptoError, Result};
pub use header::{FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_CHUNK_SIZE};
pub use keyring::{KeyId, KeyRing, MasterKey, MASTER_KEY_LEN, MAX_KEY_ID_LEN};
pub use rewrap::{rewrap_file, rewrap_header};
pub use stream::{
    ciphertext_len, decrypt_to_vec, encrypt, encrypt_to_vec, encrypt_with, header_key_id,
    is_encrypted, verify, Decryptor, EncryptOptions, Encryptor, VerifyReport, DEFAULT_CHUNK_SIZE,
};
pub use value::{open_value, reseal_value, seal_value};
