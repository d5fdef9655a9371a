//! The name a runtime has in the engine. The engine keys runtimes by a string; this is
//! the one place that string is made and read back, so the models and library services
//! never format or split keys by hand.

use std::fmt;

/// Which model a loaded runtime serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum RuntimeKey {
    /// One version of a tenant's trained model (`<model id>:<version>`).
    Version { model_id: String, version: i64 },
    /// A library model, installation-wide (`lib:<name>`).
    Library { name: String },
}

const LIBRARY: &str = "lib:";

impl RuntimeKey {
    pub(crate) fn version(model_id: &str, version: i64) -> RuntimeKey {
        RuntimeKey::Version {
            model_id: model_id.to_string(),
            version,
        }
    }

    pub(crate) fn library(name: &str) -> RuntimeKey {
        RuntimeKey::Library {
            name: name.to_string(),
        }
    }

    /// The key of an engine entry; `None` for a name this module did not make.
    pub(crate) fn parse(key: &str) -> Option<RuntimeKey> {
        if let Some(name) = key.strip_prefix(LIBRARY) {
            return Some(RuntimeKey::library(name));
        }
        let (model_id, version) = key.rsplit_once(':')?;
        Some(RuntimeKey::version(model_id, version.parse().ok()?))
    }

    /// The library model's name, for a library runtime.
    pub(crate) fn library_name(key: &str) -> Option<String> {
        match RuntimeKey::parse(key)? {
            RuntimeKey::Library { name } => Some(name),
            RuntimeKey::Version { .. } => None,
        }
    }

    /// The trained model's id and version, for a version runtime.
    pub(crate) fn model_version(key: &str) -> Option<(String, i64)> {
        match RuntimeKey::parse(key)? {
            RuntimeKey::Version { model_id, version } => Some((model_id, version)),
            RuntimeKey::Library { .. } => None,
        }
    }
}

impl fmt::Display for RuntimeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeKey::Version { model_id, version } => write!(f, "{model_id}:{version}"),
            RuntimeKey::Library { name } => write!(f, "{LIBRARY}{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_written() {
        for key in [
            RuntimeKey::version("0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b", 12),
            RuntimeKey::library("qwen2.5-0.5b-instruct"),
            RuntimeKey::library("org:model"),
        ] {
            assert_eq!(RuntimeKey::parse(&key.to_string()), Some(key));
        }
        assert_eq!(RuntimeKey::parse("no-version"), None);
        assert_eq!(RuntimeKey::parse("m:latest"), None);
        assert_eq!(RuntimeKey::library_name("lib:x"), Some("x".into()));
        assert_eq!(RuntimeKey::library_name("m:1"), None);
        assert_eq!(RuntimeKey::model_version("m:1"), Some(("m".into(), 1)));
    }
}
