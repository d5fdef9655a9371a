//! What a model does (`Task`) and how its files are laid out (`Format`): together they
//! pick a model's loader and runtime. They are parsed once, where text enters (a stored
//! row, a catalogue entry, a request), and are enums everywhere after; each has one
//! spelling on the wire and in the database, plus the older spellings it still accepts.
//! `PiiMode` is the third such vocabulary: how personal data in a text is rewritten.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a model does; decides which API serves it and which runtime runs it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Text to one of a fixed set of labels (the classifiers aiaas trains).
    TextClassification,
    /// Instruction-tuned text generation with a chat template.
    Chat,
    /// Plain text continuation (base models).
    Completion,
    /// Text to a fixed-size vector.
    Embedding,
    /// A model of the user's own (uploaded ONNX): typed tensors in and out.
    Tensor,
    /// Images of pages to lines of text with their boxes.
    Ocr,
    /// Texts to the entities in them (names, addresses, ...) with character spans.
    TokenClassification,
    /// Audio to its transcript, with timed segments.
    SpeechToText,
}

impl Task {
    pub const ALL: [Task; 8] = [
        Task::TextClassification,
        Task::Chat,
        Task::Completion,
        Task::Embedding,
        Task::Tensor,
        Task::Ocr,
        Task::TokenClassification,
        Task::SpeechToText,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::TextClassification => "text-classification",
            Task::Chat => "chat",
            Task::Completion => "completion",
            Task::Embedding => "embedding",
            Task::Tensor => "tensor",
            Task::Ocr => "ocr",
            Task::TokenClassification => "token-classification",
            Task::SpeechToText => "speech-to-text",
        }
    }

    pub fn parse(text: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Served by a text generator (chat and completions).
    pub fn generates_text(self) -> bool {
        matches!(self, Task::Chat | Task::Completion)
    }
}

/// How a model's files are laid out, and so which loader reads them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// A classifier aiaas trained: `model.json` + safetensors weights.
    #[serde(rename = "aiaas-classifier")]
    AiaasClassifier,
    /// One `model.gguf` file (llama.cpp).
    #[serde(rename = "gguf")]
    Gguf,
    /// A Hugging Face sentence-transformers folder: `config.json`, `tokenizer.json`,
    /// `*.safetensors` (a BERT-family encoder).
    #[serde(rename = "hf-encoder", alias = "hf")]
    HfEncoder,
    /// One `model.onnx` file uploaded by a tenant, served on ONNX Runtime.
    #[serde(rename = "onnx")]
    Onnx,
    /// PaddleOCR's three networks as ONNX: `det.onnx`, `cls.onnx`, `rec.onnx` (the
    /// dictionary in the recogniser's metadata).
    #[serde(rename = "ppocr")]
    Ppocr,
    /// A token classifier as ONNX: `model.onnx`, `tokenizer.json`, `config.json` (its
    /// `id2label`).
    #[serde(rename = "onnx-token-classifier")]
    OnnxTokenClassifier,
    /// OpenAI's Whisper in Hugging Face's layout: `model.safetensors`, `config.json`,
    /// `tokenizer.json` (a pull converts faster-whisper's CTranslate2 `model.bin`).
    #[serde(rename = "whisper")]
    Whisper,
    /// A LoRA adapter a fine-tuning job trained for a library GGUF model: `adapter.gguf`
    /// (llama.cpp's GGUF adapter format), served on its base model's weights.
    #[serde(rename = "lora-adapter")]
    LoraAdapter,
}

impl Format {
    pub const ALL: [Format; 8] = [
        Format::AiaasClassifier,
        Format::Gguf,
        Format::HfEncoder,
        Format::Onnx,
        Format::Ppocr,
        Format::OnnxTokenClassifier,
        Format::Whisper,
        Format::LoraAdapter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::AiaasClassifier => "aiaas-classifier",
            Format::Gguf => "gguf",
            Format::HfEncoder => "hf-encoder",
            Format::Onnx => "onnx",
            Format::Ppocr => "ppocr",
            Format::OnnxTokenClassifier => "onnx-token-classifier",
            Format::Whisper => "whisper",
            Format::LoraAdapter => "lora-adapter",
        }
    }

    /// The canonical spelling, or `hf` (rows and catalogues written before the name).
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "hf" => Some(Format::HfEncoder),
            _ => Format::ALL.into_iter().find(|f| f.as_str() == text),
        }
    }
}

/// How personal data found in a text is rewritten.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiMode {
    /// Keep the shape and a little of the value, enough for support staff to tell records
    /// apart: `138****5678`, `j***@example.com`, `192.168.*.*`.
    Mask,
    /// Replace with the kind's label: `[PHONE]`.
    Label,
    /// Replace with a keyed token, `[PHONE:1f3a9c0b7d2e]`: the same value always gives the
    /// same token under one key (so joins and counts across records still work), and
    /// nothing without the key maps tokens back.
    #[serde(alias = "pseudonymize")]
    Pseudonymise,
}

impl PiiMode {
    /// The spellings every route and setting accepts: `mask`, `label`, `pseudonymise`
    /// (or `pseudonymize`).
    pub fn parse(text: &str) -> Option<PiiMode> {
        match text {
            "mask" => Some(PiiMode::Mask),
            "label" => Some(PiiMode::Label),
            "pseudonymise" | "pseudonymize" => Some(PiiMode::Pseudonymise),
            _ => None,
        }
    }

    /// The name it is stored and shown under.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiMode::Mask => "mask",
            PiiMode::Label => "label",
            PiiMode::Pseudonymise => "pseudonymise",
        }
    }
}

/// Text that names no known task, format or mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {text:?}; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub text: String,
    pub expected: String,
}

macro_rules! text_enum {
    ($t:ty, $what:literal, $all:expr) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = UnknownName;

            fn from_str(text: &str) -> Result<$t, UnknownName> {
                <$t>::parse(text).ok_or_else(|| UnknownName {
                    what: $what,
                    text: text.to_string(),
                    expected: $all
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
    };
}

text_enum!(Task, "task", Task::ALL);
text_enum!(Format, "format", Format::ALL);
text_enum!(
    PiiMode,
    "PII mode",
    [PiiMode::Mask, PiiMode::Label, PiiMode::Pseudonymise]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_each_way() {
        for t in Task::ALL {
            assert_eq!(t.as_str().parse::<Task>(), Ok(t));
            let json = serde_json::to_value(t).expect("serialise");
            assert_eq!(json, serde_json::json!(t.as_str()));
        }
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            let json = serde_json::to_value(f).expect("serialise");
            assert_eq!(json, serde_json::json!(f.as_str()));
        }
        for m in [PiiMode::Mask, PiiMode::Label, PiiMode::Pseudonymise] {
            let json = serde_json::to_value(m).expect("serialise");
            assert_eq!(json, serde_json::json!(m.as_str()));
            assert_eq!(m.as_str().parse::<PiiMode>(), Ok(m));
        }
    }

    #[test]
    fn older_spellings_are_still_read() {
        assert_eq!(Format::parse("hf"), Some(Format::HfEncoder));
        let f: Format = serde_json::from_str("\"hf\"").expect("hf");
        assert_eq!(f, Format::HfEncoder);
        assert_eq!(PiiMode::parse("pseudonymize"), Some(PiiMode::Pseudonymise));
        let m: PiiMode = serde_json::from_str("\"pseudonymize\"").expect("pseudonymize");
        assert_eq!(m, PiiMode::Pseudonymise);
    }

    #[test]
    fn unknown_names_say_what_is_expected() {
        let e = "tflite".parse::<Format>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown format \"tflite\"; expected one of: aiaas-classifier, gguf, hf-encoder, onnx, ppocr, onnx-token-classifier, whisper, lora-adapter"
        );
        assert!("Chat".parse::<Task>().is_err());
        assert!("".parse::<PiiMode>().is_err());
    }
}
