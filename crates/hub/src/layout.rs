//! Recognising a model's layout and task from its files, and importing a local file or
//! folder (also a Hugging Face cache snapshot) into a staging folder.
//!
//! Supported layouts:
//! - a `.gguf` file: task `chat` when its metadata has `tokenizer.chat_template`, else
//!   `completion`; installed as `model.gguf`;
//! - a Hugging Face folder (`config.json`, `tokenizer.json`, `*.safetensors`) of a
//!   BERT-family encoder (sentence-transformers): task `embedding`.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::fsutil::link_or_copy;
use crate::gguf::read_gguf_metadata;
use crate::progress::{status, ByteMeter, CancelFlag, Emit};
use crate::{Format, HubError, ModelFile, Result, Task};

/// `model_type`s of encoders served as embedding models.
const EMBEDDING_MODEL_TYPES: &[&str] = &["bert", "roberta", "xlm-roberta", "distilbert", "mpnet"];

/// Optional files of a Hugging Face folder that are kept when present.
const HF_EXTRAS: &[&str] = &[
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "model.safetensors.index.json",
    "1_Pooling/config.json",
];

pub(crate) const SUPPORTED_LAYOUTS: &str = "supported layouts: a .gguf file (chat or completion), \
     or a Hugging Face folder with config.json, tokenizer.json and *.safetensors of a \
     BERT-family encoder (embedding: bert, roberta, xlm-roberta, distilbert, mpnet)";

/// What a set of files can be installed as.
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    /// The files of a complete Hugging Face folder, if the names make one.
    pub hf: Option<Vec<String>>,
    /// Single-file `.gguf` models (split GGUF shards are not supported).
    pub gguf: Vec<String>,
}

/// The chosen layout.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    Gguf { file: String },
    Hf { files: Vec<String> },
}

impl Layout {
    pub(crate) fn format(&self) -> Format {
        match self {
            Layout::Gguf { .. } => Format::Gguf,
            Layout::Hf { .. } => Format::HfEncoder,
        }
    }
}

/// Sorts relative file names (`/`-separated) into candidate layouts.
pub(crate) fn candidates(names: &[String]) -> Candidates {
    let has = |n: &str| names.iter().any(|x| x == n);
    let weights: Vec<String> = names
        .iter()
        .filter(|n| !n.contains('/') && n.ends_with(".safetensors"))
        .cloned()
        .collect();
    let hf = (has("config.json") && has("tokenizer.json") && !weights.is_empty()).then(|| {
        let mut files = vec!["config.json".to_string(), "tokenizer.json".to_string()];
        files.extend(weights);
        files.extend(HF_EXTRAS.iter().filter(|e| has(e)).map(|e| e.to_string()));
        files
    });
    let gguf = names
        .iter()
        .filter(|n| n.to_ascii_lowercase().ends_with(".gguf") && !is_gguf_shard(n))
        .cloned()
        .collect();
    Candidates { hf, gguf }
}

/// Chooses a layout: a supported Hugging Face folder, else a GGUF file. `hf_task` is the
/// verdict on the folder's `config.json` (`None` when there is no folder layout).
pub(crate) fn choose(candidates: Candidates, hf_task: Option<Result<Task>>) -> Result<Layout> {
    let hf_error = match (candidates.hf, hf_task) {
        (Some(files), Some(Ok(_))) => return Ok(Layout::Hf { files }),
        (_, Some(Err(e))) => Some(e),
        _ => None,
    };
    match candidates.gguf.as_slice() {
        [] => Err(hf_error.unwrap_or_else(|| {
            HubError::InvalidInput(format!("no model files found; {SUPPORTED_LAYOUTS}"))
        })),
        [one] => Ok(Layout::Gguf { file: one.clone() }),
        many => {
            let preferred: Vec<&String> = many
                .iter()
                .filter(|n| n.to_ascii_lowercase().contains("q4_k_m"))
                .collect();
            match preferred.as_slice() {
                [one] => Ok(Layout::Gguf {
                    file: (*one).clone(),
                }),
                _ => Err(HubError::InvalidInput(format!(
                    "several GGUF files and none is Q4_K_M ({}); pull a single .gguf file by path",
                    many.join(", ")
                ))),
            }
        }
    }
}

/// The task of a Hugging Face folder from its `config.json` bytes.
pub(crate) fn hf_task_from_bytes(config_json: &[u8], has_pooling: bool) -> Result<Task> {
    let config: Value = serde_json::from_slice(config_json)
        .map_err(|e| HubError::InvalidInput(format!("config.json is not valid JSON: {e}")))?;
    hf_task(&config, has_pooling)
}

/// The task of a Hugging Face folder from its `config.json`; an error for families
/// this platform does not serve from safetensors.
pub(crate) fn hf_task(config: &Value, has_pooling: bool) -> Result<Task> {
    let model_type = config
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    if has_pooling || EMBEDDING_MODEL_TYPES.contains(&model_type) {
        Ok(Task::Embedding)
    } else {
        Err(HubError::InvalidInput(format!(
            "unsupported Hugging Face model (model_type {model_type:?}); {SUPPORTED_LAYOUTS}. \
             For chat or completion models use a GGUF file"
        )))
    }
}

/// A model assembled in a staging folder, before it is installed.
pub(crate) struct Assembled {
    pub task: Task,
    pub format: Format,
    pub files: Vec<ModelFile>,
    pub license: Option<String>,
    pub defaults: Value,
}

/// Imports a local `.gguf` file or model folder into `staging` (hard links when possible).
pub(crate) fn import_local(
    src: &Path,
    staging: &Path,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<Assembled> {
    let (format, copies) = plan_import(src)?;
    if let (Format::Gguf, Some((gguf, _))) = (format, copies.first()) {
        // Refuse a broken file before copying gigabytes.
        read_gguf_metadata(gguf)?;
    }
    let mut files = Vec::with_capacity(copies.len());
    for (from, name) in &copies {
        cancel.check()?;
        let size = fs::metadata(from).map(|m| m.len()).ok();
        let mut meter = ByteMeter::start(emit, format!("copying {name}"), size);
        files.push(link_or_copy(
            from,
            &staging.join(name),
            name,
            &mut meter,
            cancel,
        )?);
        meter.finish();
    }
    let mut assembled = inspect(staging, format)?;
    assembled.files = files;
    status(
        emit,
        format!("recognised a {} {} model", assembled.format, assembled.task),
    );
    Ok(assembled)
}

/// The format of a local model and its files: (source path, name in the model folder).
fn plan_import(src: &Path) -> Result<(Format, Vec<(PathBuf, String)>)> {
    let meta = fs::metadata(src)
        .map_err(|_| HubError::NotFound(format!("no such file or folder: {}", src.display())))?;
    if !meta.is_dir() {
        return if src
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            Ok((Format::Gguf, vec![(src.to_path_buf(), "model.gguf".into())]))
        } else {
            Err(HubError::InvalidInput(format!(
                "{} is not a model; {SUPPORTED_LAYOUTS}",
                src.display()
            )))
        };
    }
    let names = list_model_files(src)?;
    let found = candidates(&names);
    let verdict = found.hf.as_ref().map(|_| {
        let config =
            fs::read(src.join("config.json")).map_err(|e| HubError::io("read config.json", e))?;
        hf_task_from_bytes(&config, src.join("1_Pooling/config.json").is_file())
    });
    let layout = choose(found, verdict)?;
    let copies = match &layout {
        Layout::Gguf { file } => vec![(src.join(file), "model.gguf".into())],
        Layout::Hf { files } => files.iter().map(|f| (src.join(f), f.clone())).collect(),
    };
    Ok((layout.format(), copies))
}

/// Reads task, license and default parameters from installed files.
pub(crate) fn inspect(dir: &Path, format: Format) -> Result<Assembled> {
    match format {
        Format::AiaasClassifier => Err(HubError::InvalidInput(format!(
            "{} holds a classifier trained by aiaas: deploy it through /api/v1/models, \
             the library holds pulled models only",
            dir.display()
        ))),
        Format::Onnx => Err(HubError::InvalidInput(format!(
            "{} holds an ONNX model: upload it to a tenant with POST /api/v1/models/{{name}}/versions",
            dir.display()
        ))),
        Format::LoraAdapter => Err(HubError::InvalidInput(format!(
            "{} holds a LoRA adapter: adapters are made by fine-tuning jobs \
             (POST /v1/fine_tuning/jobs), the library holds pulled models only",
            dir.display()
        ))),
        Format::Gguf => {
            let meta = read_gguf_metadata(&dir.join("model.gguf"))?;
            let mut defaults = Map::new();
            if let Some(n) = meta.context_length() {
                defaults.insert("context_length".into(), json!(n));
            }
            // What fine-tuning checks a base model against.
            if let Some(a) = meta.architecture() {
                defaults.insert("architecture".into(), json!(a));
            }
            Ok(Assembled {
                task: if meta.has_chat_template() {
                    Task::Chat
                } else {
                    Task::Completion
                },
                format,
                files: Vec::new(),
                license: meta.license().map(str::to_string),
                defaults: Value::Object(defaults),
            })
        }
        Format::Ppocr => fixed_files(
            dir,
            format,
            Task::Ocr,
            "a PaddleOCR model",
            &["det.onnx", "cls.onnx", "rec.onnx"],
        ),
        Format::Whisper => fixed_files(
            dir,
            format,
            Task::SpeechToText,
            "a Whisper model",
            &["model.safetensors", "tokenizer.json", "config.json"],
        ),
        Format::OnnxTokenClassifier => fixed_files(
            dir,
            format,
            Task::TokenClassification,
            "an ONNX token classifier",
            &["model.onnx", "tokenizer.json", "config.json"],
        ),
        Format::HfEncoder => {
            let config = read_json(&dir.join("config.json"))?.unwrap_or(Value::Null);
            let pooling = read_json(&dir.join("1_Pooling/config.json"))?;
            let task = hf_task(&config, pooling.is_some())?;
            Ok(Assembled {
                task,
                format,
                files: Vec::new(),
                license: None,
                defaults: embedding_defaults(dir, &config, pooling.as_ref())?,
            })
        }
    }
}

/// A layout of fixed file names and one task: every file there, or a 400 naming the
/// missing one.
fn fixed_files(
    dir: &Path,
    format: Format,
    task: Task,
    what: &str,
    files: &[&str],
) -> Result<Assembled> {
    if let Some(file) = files.iter().find(|f| !dir.join(f).is_file()) {
        return Err(HubError::InvalidInput(format!(
            "{} is not {what}: {file} is missing",
            dir.display()
        )));
    }
    Ok(Assembled {
        task,
        format,
        files: Vec::new(),
        license: None,
        defaults: Value::Object(Map::new()),
    })
}

fn embedding_defaults(dir: &Path, config: &Value, pooling: Option<&Value>) -> Result<Value> {
    let mut out = Map::new();
    if let Some(dim) = config.get("hidden_size") {
        out.insert("dimensions".into(), dim.clone());
    }
    let st = read_json(&dir.join("sentence_bert_config.json"))?;
    let max_len = st
        .as_ref()
        .and_then(|c| c.get("max_seq_length"))
        .or_else(|| config.get("max_position_embeddings"));
    if let Some(n) = max_len {
        out.insert("max_seq_length".into(), n.clone());
    }
    let mode = pooling.and_then(|p| {
        [
            ("pooling_mode_cls_token", "cls"),
            ("pooling_mode_mean_tokens", "mean"),
            ("pooling_mode_max_tokens", "max"),
        ]
        .into_iter()
        .find(|(key, _)| p.get(key).and_then(Value::as_bool) == Some(true))
        .map(|(_, mode)| mode)
    });
    out.insert("pooling".into(), json!(mode.unwrap_or("mean")));
    let modules = fs::read_to_string(dir.join("modules.json")).unwrap_or_default();
    out.insert(
        "normalize".into(),
        json!(modules.contains("models.Normalize")),
    );
    Ok(Value::Object(out))
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            HubError::InvalidInput(format!("{} is not valid JSON: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HubError::io(format!("read {}", path.display()), e)),
    }
}

/// Files a model folder may hold: its top-level files and the known nested ones.
pub(crate) fn list_model_files(dir: &Path) -> Result<Vec<String>> {
    let entries =
        fs::read_dir(dir).map_err(|e| HubError::io(format!("list {}", dir.display()), e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| HubError::io(format!("list {}", dir.display()), e))?;
        // `metadata` follows symlinks (Hugging Face snapshots are links into blobs/).
        if fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.extend(
        HF_EXTRAS
            .iter()
            .filter(|e| e.contains('/') && dir.join(e).is_file())
            .map(|e| e.to_string()),
    );
    names.sort();
    Ok(names)
}

/// `name-00001-of-00003.gguf`: one shard of a split model.
fn is_gguf_shard(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let stem = lower.trim_end_matches(".gguf");
    let mut parts = stem.rsplitn(4, '-');
    let (total, of, index) = (parts.next(), parts.next(), parts.next());
    let digits =
        |s: Option<&str>| s.is_some_and(|s| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit()));
    of == Some("of") && digits(total) && digits(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hf_folders_and_gguf_files_are_recognised() {
        let c = candidates(&names(&[
            "config.json",
            "tokenizer.json",
            "model.safetensors",
            "README.md",
            "1_Pooling/config.json",
            "onnx/model.safetensors",
        ]));
        assert_eq!(
            c.hf.as_deref(),
            Some(
                &names(&[
                    "config.json",
                    "tokenizer.json",
                    "model.safetensors",
                    "1_Pooling/config.json"
                ])[..]
            )
        );
        assert!(c.gguf.is_empty());
        assert!(candidates(&names(&["config.json", "model.safetensors"]))
            .hf
            .is_none());

        let layout =
            choose(candidates(&names(&["a.Q8_0.gguf", "a.Q4_K_M.gguf"])), None).expect("one");
        assert_eq!(
            layout,
            Layout::Gguf {
                file: "a.Q4_K_M.gguf".into()
            }
        );
        assert!(choose(candidates(&names(&["a.gguf", "b.gguf"])), None).is_err());
        assert!(choose(candidates(&names(&["m-00001-of-00002.gguf"])), None).is_err());
        assert!(choose(candidates(&names(&["README.md"])), None).is_err());
    }

    #[test]
    fn hf_tasks() {
        assert_eq!(
            hf_task_from_bytes(br#"{"model_type":"bert"}"#, false).ok(),
            Some(Task::Embedding)
        );
        assert_eq!(
            hf_task_from_bytes(br#"{"model_type":"xlm-roberta"}"#, false).ok(),
            Some(Task::Embedding)
        );
        assert_eq!(
            hf_task_from_bytes(br#"{"model_type":"new"}"#, true).ok(),
            Some(Task::Embedding)
        );
        let err = hf_task_from_bytes(br#"{"model_type":"llama"}"#, false).expect_err("unsupported");
        assert!(err.to_string().contains("supported layouts"), "{err}");
        // An unsupported folder that also holds a GGUF file installs the GGUF file.
        let mixed = candidates(&names(&[
            "config.json",
            "tokenizer.json",
            "model.safetensors",
            "m.gguf",
        ]));
        let verdict = Some(hf_task_from_bytes(br#"{"model_type":"llama"}"#, false));
        assert_eq!(
            choose(mixed, verdict).ok(),
            Some(Layout::Gguf {
                file: "m.gguf".into()
            })
        );
    }

    #[test]
    fn shards_are_detected() {
        assert!(is_gguf_shard("Model-Q4_K_M-00001-of-00003.gguf"));
        assert!(!is_gguf_shard("model-q4_k_m.gguf"));
        assert!(!is_gguf_shard("of-00003.gguf"));
    }
}
