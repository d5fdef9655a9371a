//! Response bodies for what the core computes (predictions, previews, masking results,
//! the catalogue, running models, what a GGUF says about itself): the API's shapes,
//! built by `From` from the core's values.

use std::collections::BTreeMap;

use aiaas_core::{CatalogueItem, ClassPrediction, LoadedModel, MaskedText, ModelInfo};
use aiaas_core::{PreviewRow, RuntimeKind};
use aiaas_privacy::Finding;
use aiaas_types::Task;
use serde::Serialize;

/// One text's prediction.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Prediction {
    pub label: String,
    pub confidence: f32,
    pub probabilities: BTreeMap<String, f32>,
    /// With `explain`: `{method, target, score, base, tokens: [{token, start, end,
    /// attribution}]}` (offsets in characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub explanation: Option<aiaas_core::Explanation>,
}

impl From<ClassPrediction> for Prediction {
    fn from(p: ClassPrediction) -> Prediction {
        Prediction {
            label: p.label,
            confidence: p.confidence,
            probabilities: p.probabilities,
            explanation: p.explanation,
        }
    }
}

/// `POST /api/v1/models/{name}/predict`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Predictions {
    pub model: String,
    pub version: i64,
    pub labels: Vec<String>,
    pub predictions: Vec<Prediction>,
}

impl From<aiaas_core::Predictions> for Predictions {
    fn from(p: aiaas_core::Predictions) -> Predictions {
        Predictions {
            model: p.model,
            version: p.version,
            labels: p.labels,
            predictions: super::all(p.predictions),
        }
    }
}

/// A task model's answers (`image-classification`, `tabular`): one per image or row.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TaskPredictions {
    pub model: String,
    pub version: i64,
    pub task: String,
    pub predictions: Vec<TaskPrediction>,
}

/// One image's or row's answer: its top class (when the model classifies), the best
/// classes, and a tabular model's outputs by name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TaskPrediction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_k: Vec<RankedClass>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub outputs: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RankedClass {
    pub label: String,
    pub index: usize,
    pub score: f32,
}

impl From<aiaas_core::Ranked> for RankedClass {
    fn from(r: aiaas_core::Ranked) -> RankedClass {
        RankedClass {
            label: r.label,
            index: r.index,
            score: r.score,
        }
    }
}

impl From<aiaas_core::TaskAnswer> for TaskPredictions {
    fn from(a: aiaas_core::TaskAnswer) -> TaskPredictions {
        TaskPredictions {
            model: a.model,
            version: a.version,
            task: a.task.to_string(),
            predictions: a
                .predictions
                .into_iter()
                .map(|p| TaskPrediction {
                    label: p.top.as_ref().map(|t| t.label.clone()),
                    index: p.top.as_ref().map(|t| t.index),
                    score: p.top.as_ref().map(|t| t.score),
                    top_k: super::all(p.top_k),
                    outputs: p.outputs,
                })
                .collect(),
        }
    }
}

/// An OCR model's reading (`POST /api/v1/models/{name}/predict` with images, on a
/// library model of task `ocr`): one per image, in the order given.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PageReadings {
    pub model: String,
    /// `ocr`.
    pub task: String,
    pub predictions: Vec<PageReading>,
}

/// One page: its full text (lines in reading order; a row's lines joined by spaces, rows
/// by newlines) and its lines.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PageReading {
    pub text: String,
    pub lines: Vec<TextLine>,
}

/// A line of text: what it says, the recogniser's confidence (0-1), and its box's
/// corners in the image's pixels (top-left, top-right, bottom-right, bottom-left).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TextLine {
    pub text: String,
    pub confidence: f32,
    #[serde(rename = "box")]
    pub corners: [[f32; 2]; 4],
}

impl From<aiaas_core::PageLines> for PageReadings {
    fn from(p: aiaas_core::PageLines) -> PageReadings {
        PageReadings {
            model: p.model,
            task: Task::Ocr.as_str().to_string(),
            predictions: p
                .pages
                .into_iter()
                .map(|lines| PageReading {
                    text: aiaas_core::page_text(&lines),
                    lines: lines
                        .into_iter()
                        .map(|l| TextLine {
                            text: l.text,
                            confidence: l.confidence,
                            corners: l.quad,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A token classifier's answer (`POST /api/v1/models/{name}/predict` with texts, on a
/// library model of task `token-classification`): one per text, in the order given.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EntityPredictions {
    pub model: String,
    /// `token-classification`.
    pub task: String,
    /// `simple`, `first`, `max` or `average`.
    pub aggregation: String,
    pub predictions: Vec<TextEntities>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TextEntities {
    pub entities: Vec<FoundEntity>,
}

/// An entity: the model's label (`GIVEN_NAME`, `CITY`, ...), its score (0-1), its span as
/// character offsets into the text (Unicode code points, end exclusive) and the text.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FoundEntity {
    pub label: String,
    pub score: f32,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

impl From<aiaas_core::EntityAnswer> for EntityPredictions {
    fn from(a: aiaas_core::EntityAnswer) -> EntityPredictions {
        let aggregation = serde_json::to_value(a.aggregation)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        EntityPredictions {
            model: a.model,
            task: Task::TokenClassification.as_str().to_string(),
            aggregation,
            predictions: a
                .entities
                .into_iter()
                .map(|entities| TextEntities {
                    entities: entities
                        .into_iter()
                        .map(|e| FoundEntity {
                            label: e.label,
                            score: e.score,
                            start: e.start,
                            end: e.end,
                            text: e.text,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// One row of a data set preview.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PreviewLine {
    pub line: u64,
    pub text: String,
    pub label: String,
}

impl From<PreviewRow> for PreviewLine {
    fn from(r: PreviewRow) -> PreviewLine {
        PreviewLine {
            line: r.line,
            text: r.text,
            label: r.label,
        }
    }
}

/// A catalogue model and whether it is installed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CatalogueEntry {
    pub name: String,
    pub description: String,
    pub task: Task,
    pub license: String,
    pub download_bytes: u64,
    pub installed: bool,
}

impl From<CatalogueItem> for CatalogueEntry {
    fn from(c: CatalogueItem) -> CatalogueEntry {
        CatalogueEntry {
            name: c.name,
            description: c.description,
            task: c.task,
            license: c.license,
            download_bytes: c.download_bytes,
            installed: c.installed,
        }
    }
}

/// One masked text and what was found in the original.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Masked {
    pub text: String,
    /// Each finding: `kind`, and the byte range `start..end` in the original text.
    #[schema(value_type = Vec<Object>)]
    pub findings: Vec<Finding>,
}

impl From<MaskedText> for Masked {
    fn from(m: MaskedText) -> Masked {
        Masked {
            text: m.text,
            findings: m.findings,
        }
    }
}

/// A loaded model as `GET /api/v1/ps` reports it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunningModel {
    pub key: String,
    pub label: String,
    /// `classifier`, `generator`, `embedder`, `tensor` or `ocr`.
    #[schema(value_type = String)]
    pub kind: RuntimeKind,
    pub in_flight: usize,
    pub slots_busy: Option<usize>,
    pub slots: Option<usize>,
    pub memory_bytes: u64,
    /// Seconds since the last request ended (zero while one runs).
    pub idle_for: f64,
}

impl From<LoadedModel> for RunningModel {
    fn from(m: LoadedModel) -> RunningModel {
        RunningModel {
            key: m.key,
            label: m.label,
            kind: m.kind,
            in_flight: m.in_flight,
            slots_busy: m.slots_busy,
            slots: m.slots,
            memory_bytes: m.memory_bytes,
            idle_for: m.idle_for.as_secs_f64(),
        }
    }
}

/// What a loaded GGUF says about itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct GgufInfo {
    pub architecture: String,
    pub name: Option<String>,
    pub parameters: u64,
    pub size_bytes: u64,
    pub context_length: u32,
    pub vocab_size: i32,
    pub embedding_length: i32,
    pub layers: u32,
    pub attention_heads: u32,
    pub kv_heads: u32,
    pub chat_template: Option<String>,
}

impl From<ModelInfo> for GgufInfo {
    fn from(i: ModelInfo) -> GgufInfo {
        GgufInfo {
            architecture: i.architecture,
            name: i.name,
            parameters: i.parameters,
            size_bytes: i.size_bytes,
            context_length: i.context_length,
            vocab_size: i.vocab_size,
            embedding_length: i.embedding_length,
            layers: i.layers,
            attention_heads: i.attention_heads,
            kv_heads: i.kv_heads,
            chat_template: i.chat_template,
        }
    }
}
