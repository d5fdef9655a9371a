//! What to pull: a catalogue name, a local path or a Hugging Face repo id, parsed from
//! one argument (`aiaas pull ARG`, the API's `model` field).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::catalogue::Catalogue;
use crate::{derive_name, validate_name, HubError, Result};

/// The origin of a model to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullSource {
    /// A catalogue entry's name (`:latest` stripped).
    Catalogue(String),
    /// An existing `.gguf` file or model folder, absolute.
    Path(PathBuf),
    /// A Hugging Face model repo.
    HuggingFace(HfRepo),
}

/// A Hugging Face model repo at a revision (branch, tag or commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfRepo {
    /// `org/name` (or a legacy single-segment id).
    pub repo_id: String,
    /// `main` unless given.
    pub revision: String,
}

impl PullSource {
    /// Parses `arg`:
    /// - `hf:org/name[@revision]` is a Hugging Face repo;
    /// - `/…`, `./…`, `../…`, `~/…`, or any other existing path is a local file or folder;
    /// - a bare name (`smollm2-135m-instruct`, `gemma-3-270m:latest`) is a catalogue name
    ///   (a built-in name wins over a same-named file in the current folder);
    /// - `org/name[@revision]` that is not an existing path is a Hugging Face repo.
    pub fn parse(arg: &str) -> Result<PullSource> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let home = std::env::var_os("HOME").map(PathBuf::from);
        parse_with(arg, &cwd, home.as_deref())
    }

    /// The model name to install under when the caller gives none.
    pub fn default_name(&self) -> Option<String> {
        match self {
            PullSource::Catalogue(name) => Some(name.clone()),
            PullSource::Path(path) => {
                let stem = if path.is_dir() {
                    path.file_name()
                } else {
                    path.file_stem()
                };
                derive_name(&stem?.to_string_lossy())
            }
            PullSource::HuggingFace(repo) => derive_name(repo.name()),
        }
    }
}

impl fmt::Display for PullSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullSource::Catalogue(name) => write!(f, "{name}"),
            PullSource::Path(path) => write!(f, "{}", path.display()),
            PullSource::HuggingFace(repo) => write!(f, "{repo}"),
        }
    }
}

impl HfRepo {
    /// Parses `org/name[@revision]`.
    pub fn parse(text: &str) -> Result<HfRepo> {
        let (repo_id, revision) = match text.split_once('@') {
            Some((repo, rev)) => (repo, rev),
            None => (text, "main"),
        };
        let segments: Vec<&str> = repo_id.split('/').collect();
        if segments.len() > 2 || !segments.iter().all(|s| valid_repo_segment(s)) {
            return Err(HubError::InvalidInput(format!(
                "invalid Hugging Face repo id {repo_id:?}: expected org/name (letters, digits, \
                 '-', '_', '.'; at most 96 characters each)"
            )));
        }
        if !valid_revision(revision) {
            return Err(HubError::InvalidInput(format!(
                "invalid revision {revision:?}"
            )));
        }
        Ok(HfRepo {
            repo_id: repo_id.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The repo's own name (after the org).
    pub fn name(&self) -> &str {
        self.repo_id.rsplit('/').next().unwrap_or(&self.repo_id)
    }

    /// The repo's folder in a Hugging Face cache: `models--org--name`.
    pub(crate) fn cache_folder(&self) -> String {
        format!("models--{}", self.repo_id.replace('/', "--"))
    }
}

impl fmt::Display for HfRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hf:{}@{}", self.repo_id, self.revision)
    }
}

fn parse_with(arg: &str, cwd: &Path, home: Option<&Path>) -> Result<PullSource> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Err(HubError::InvalidInput("empty model source".into()));
    }
    if let Some(repo) = arg.strip_prefix("hf:") {
        return HfRepo::parse(repo).map(PullSource::HuggingFace);
    }
    let explicit_path = ["/", "./", "../", "~/"].iter().any(|p| arg.starts_with(p))
        || matches!(arg, "." | ".." | "~");
    let path = match (arg.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if explicit_path => home.join(rest.trim_start_matches('/')),
        _ => cwd.join(arg),
    };
    if explicit_path {
        return existing(&path).map(PullSource::Path);
    }
    if !arg.contains('/') {
        let name = arg.strip_suffix(":latest").unwrap_or(arg);
        if let Some((_, tag)) = name.split_once(':') {
            return Err(HubError::InvalidInput(format!(
                "unknown tag {tag:?}: catalogue models have only :latest"
            )));
        }
        let builtin = Catalogue::builtin().get(name).is_some();
        if !builtin && path.exists() {
            return existing(&path).map(PullSource::Path);
        }
        validate_name(name)?;
        return Ok(PullSource::Catalogue(name.to_string()));
    }
    if path.exists() {
        return existing(&path).map(PullSource::Path);
    }
    HfRepo::parse(arg).map(PullSource::HuggingFace)
}

fn existing(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path)
        .map_err(|_| HubError::NotFound(format!("no such file or folder: {}", path.display())))
}

/// Hugging Face's rules: letters, digits, `-_.`; no `--` or `..`; `-`/`.` not at either end.
fn valid_repo_segment(s: &str) -> bool {
    (1..=96).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.contains("--")
        && !s.contains("..")
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

/// A branch, tag or commit; may contain `/` (`refs/pr/1`) but never `..` or empty parts.
fn valid_revision(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && s.split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(arg: &str, cwd: &Path) -> Result<PullSource> {
        parse_with(arg, cwd, Some(Path::new("/nonexistent-home")))
    }

    #[test]
    fn catalogue_names_and_tags() {
        let cwd = tempfile::tempdir().expect("tempdir");
        let cat = |n: &str| PullSource::Catalogue(n.to_string());
        assert_eq!(
            parse_in("smollm2-135m-instruct", cwd.path()).ok(),
            Some(cat("smollm2-135m-instruct"))
        );
        assert_eq!(
            parse_in(" gemma-3-270m:latest ", cwd.path()).ok(),
            Some(cat("gemma-3-270m"))
        );
        // Unknown names parse; the puller answers NotFound.
        assert_eq!(
            parse_in("not-in-catalogue", cwd.path()).ok(),
            Some(cat("not-in-catalogue"))
        );
        for bad in ["", "gemma-3-270m:q8", "Upper", ".hidden", "a b"] {
            assert!(
                matches!(parse_in(bad, cwd.path()), Err(HubError::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paths() {
        let cwd = tempfile::tempdir().expect("tempdir");
        let cwd = cwd.path().canonicalize().expect("canonical");
        std::fs::write(cwd.join("my.gguf"), b"GGUF").expect("write");
        std::fs::create_dir_all(cwd.join("org/folder")).expect("mkdir");
        std::fs::write(cwd.join("smollm2-135m-instruct"), b"x").expect("write");

        let path = |p: PathBuf| Some(PullSource::Path(p));
        assert_eq!(parse_in("my.gguf", &cwd).ok(), path(cwd.join("my.gguf")));
        assert_eq!(parse_in("./my.gguf", &cwd).ok(), path(cwd.join("my.gguf")));
        assert_eq!(
            parse_in("org/folder", &cwd).ok(),
            path(cwd.join("org/folder"))
        );
        let abs = cwd.join("my.gguf").display().to_string();
        assert_eq!(parse_in(&abs, &cwd).ok(), path(cwd.join("my.gguf")));
        // A built-in name wins over a same-named file.
        assert!(matches!(
            parse_in("smollm2-135m-instruct", &cwd),
            Ok(PullSource::Catalogue(_))
        ));
        for missing in ["./nope.gguf", "/nonexistent/x.gguf", "~/x.gguf"] {
            assert!(
                matches!(parse_in(missing, &cwd), Err(HubError::NotFound(_))),
                "{missing}"
            );
        }
        let src = parse_in("my.gguf", &cwd).expect("path");
        assert_eq!(src.default_name().as_deref(), Some("my"));
    }

    #[test]
    fn hugging_face_ids() {
        let cwd = tempfile::tempdir().expect("tempdir");
        let hf = |id: &str, rev: &str| {
            Some(PullSource::HuggingFace(HfRepo {
                repo_id: id.into(),
                revision: rev.into(),
            }))
        };
        assert_eq!(
            parse_in("hf:org/name", cwd.path()).ok(),
            hf("org/name", "main")
        );
        assert_eq!(
            parse_in("Org/Name-v1.5", cwd.path()).ok(),
            hf("Org/Name-v1.5", "main")
        );
        assert_eq!(
            parse_in("hf:org/name@v1.0", cwd.path()).ok(),
            hf("org/name", "v1.0")
        );
        assert_eq!(
            parse_in("org/name@refs/pr/1", cwd.path()).ok(),
            hf("org/name", "refs/pr/1")
        );
        assert_eq!(parse_in("hf:gpt2", cwd.path()).ok(), hf("gpt2", "main"));
        for bad in [
            "hf:",
            "hf:a/b/c",
            "hf:org/na me",
            "a/b@",
            "hf:org/x@../y",
            "org/-x",
            "org/a--b",
            "hf:a/b@x//y",
        ] {
            assert!(
                matches!(parse_in(bad, cwd.path()), Err(HubError::InvalidInput(_))),
                "{bad}"
            );
        }
        let src = parse_in("hf:Org/All-MiniLM", cwd.path()).expect("hf");
        assert_eq!(src.default_name().as_deref(), Some("all-minilm"));
        assert_eq!(src.to_string(), "hf:Org/All-MiniLM@main");
        if let PullSource::HuggingFace(repo) = src {
            assert_eq!(repo.cache_folder(), "models--Org--All-MiniLM");
        }
    }
}
