//! The sentence-transformers model folder: which modules the pipeline has (modules.json),
//! how token vectors are pooled (1_Pooling/config.json), whether the result is L2-normalised
//! (a `Normalize` module), and the sequence limit (sentence_bert_config.json).
//!
//! Layout reference: <https://sbert.net/docs/sentence_transformer/usage/custom_models.html>.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{EmbedError, Result};
use crate::pooling::Pooling;

/// What the optional sentence-transformers files say about the pipeline after the encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pipeline {
    pub pooling: Pooling,
    pub normalize: bool,
    /// `max_seq_length` from sentence_bert_config.json, when the file exists.
    pub max_seq_length: Option<usize>,
}

impl Pipeline {
    /// Reads the pipeline description of `dir`. A folder without modules.json is a plain
    /// Hugging Face encoder: mean pooling, no normalisation (sentence-transformers' default).
    pub fn read(dir: &Path) -> Result<Self> {
        let modules_path = dir.join("modules.json");
        let modules: Vec<Module> = if modules_path.is_file() {
            read_json(&modules_path)?
        } else {
            Vec::new()
        };
        let mut pooling_dir = PathBuf::from("1_Pooling");
        let mut normalize = false;
        for module in &modules {
            match module.kind.rsplit('.').next().unwrap_or_default() {
                "Transformer" => {}
                "Pooling" => pooling_dir = PathBuf::from(&module.path),
                "Normalize" => normalize = true,
                other => {
                    return Err(EmbedError::Unsupported(format!(
                        "sentence-transformers module `{other}` ({}) is not supported",
                        module.kind
                    )))
                }
            }
        }
        let pooling_path = dir.join(pooling_dir).join("config.json");
        let pooling = if pooling_path.is_file() {
            read_json::<PoolingConfig>(&pooling_path)?.mode()?
        } else {
            Pooling::Mean
        };
        let st_path = dir.join("sentence_bert_config.json");
        let max_seq_length = if st_path.is_file() {
            read_json::<SentenceBertConfig>(&st_path)?.max_seq_length
        } else {
            None
        };
        Ok(Self {
            pooling,
            normalize,
            max_seq_length,
        })
    }
}

/// Reads and parses one JSON file, naming the file in either error.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| EmbedError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| EmbedError::Json {
        path: path.to_owned(),
        source,
    })
}

#[derive(Debug, Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PoolingConfig {
    pooling_mode_cls_token: bool,
    pooling_mode_mean_tokens: bool,
    pooling_mode_max_tokens: bool,
    pooling_mode_mean_sqrt_len_tokens: bool,
    pooling_mode_weightedmean_tokens: bool,
    pooling_mode_lasttoken: bool,
}

impl PoolingConfig {
    fn mode(&self) -> Result<Pooling> {
        let unsupported = [
            (
                self.pooling_mode_mean_sqrt_len_tokens,
                "mean_sqrt_len_tokens",
            ),
            (self.pooling_mode_weightedmean_tokens, "weightedmean_tokens"),
            (self.pooling_mode_lasttoken, "lasttoken"),
        ];
        if let Some((_, name)) = unsupported.iter().find(|(on, _)| *on) {
            return Err(EmbedError::Unsupported(format!("pooling mode `{name}`")));
        }
        let modes = [
            (self.pooling_mode_mean_tokens, Pooling::Mean),
            (self.pooling_mode_cls_token, Pooling::Cls),
            (self.pooling_mode_max_tokens, Pooling::Max),
        ];
        let mut on = modes.iter().filter(|(on, _)| *on).map(|(_, mode)| *mode);
        match (on.next(), on.next()) {
            (Some(mode), None) => Ok(mode),
            // sentence-transformers concatenates several modes; no model we serve does that.
            (Some(_), Some(_)) => Err(EmbedError::Unsupported(
                "more than one pooling mode (concatenated poolings)".into(),
            )),
            (None, _) => Err(EmbedError::Unsupported("no pooling mode set".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn bare_folder_means_mean_pooling_without_normalisation() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = Pipeline::read(dir.path()).unwrap();
        assert_eq!(pipeline.pooling, Pooling::Mean);
        assert!(!pipeline.normalize);
        assert_eq!(pipeline.max_seq_length, None);
    }

    #[test]
    fn reads_modules_pooling_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "modules.json",
            r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
                {"idx":1,"name":"1","path":"1_Pool","type":"sentence_transformers.models.Pooling"},
                {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
        );
        write(
            dir.path(),
            "1_Pool/config.json",
            r#"{"word_embedding_dimension":8,"pooling_mode_cls_token":true}"#,
        );
        write(
            dir.path(),
            "sentence_bert_config.json",
            r#"{"max_seq_length":128}"#,
        );
        let pipeline = Pipeline::read(dir.path()).unwrap();
        assert_eq!(pipeline.pooling, Pooling::Cls);
        assert!(pipeline.normalize);
        assert_eq!(pipeline.max_seq_length, Some(128));
    }

    #[test]
    fn rejects_what_would_change_the_vectors() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "modules.json",
            r#"[{"path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#,
        );
        assert!(matches!(
            Pipeline::read(dir.path()),
            Err(EmbedError::Unsupported(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"pooling_mode_mean_tokens":true,"pooling_mode_max_tokens":true}"#,
        );
        assert!(matches!(
            Pipeline::read(dir.path()),
            Err(EmbedError::Unsupported(_))
        ));
    }
}
