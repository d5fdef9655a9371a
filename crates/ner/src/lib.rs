//! Named-entity recognition with a BERT token classifier exported to ONNX (the model
//! folder: `model.onnx`, `tokenizer.json`, `config.json` with `id2label`), on ONNX
//! Runtime, with Hugging Face's token-classification pipeline after it:
//!
//! - texts tokenised with the model's own tokenizer (the `tokenizers` crate, the same
//!   code as Python's), character offsets into the original text; a text longer than
//!   the model's window is cut into windows of `max_length` tokens overlapping by
//!   `stride` tokens;
//! - every window of every text run as one padded batch, scores by softmax;
//! - tokens aggregated into entities (aggregate.rs) by the `simple`, `first`, `max` or
//!   `average` strategy, windows' overlapping entities resolved (the longer, then the
//!   higher score, wins).

use std::collections::HashMap;
use std::path::Path;

use aiaas_onnx::{OnnxError, OnnxModel, Runtime, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationDirection};

mod aggregate;

pub use aggregate::Aggregation;

/// The files of a token-classification model folder.
pub const MODEL_FILE: &str = "model.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const CONFIG_FILE: &str = "config.json";

/// Windows run through the model at once.
const MAX_WINDOWS_PER_RUN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum NerError {
    #[error("{0}")]
    Model(String),
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("the text cannot be tokenised: {0}")]
    Tokenize(String),
    #[error("{0}")]
    InvalidInput(String),
}

/// An entity found in a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    /// The model's label, without its B-/I- prefix (`GIVEN_NAME`, `CITY`, ...).
    pub label: String,
    /// The mean (`simple`) or the word's (`first`, `max`, `average`) probability.
    pub score: f32,
    /// Character offsets into the text (Unicode scalar values, as Python counts).
    pub start: usize,
    pub end: usize,
    /// The text between them.
    pub text: String,
}

/// How texts are read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NerOptions {
    pub aggregation: Aggregation,
    /// Tokens shared by consecutive windows of a long text.
    pub stride: usize,
}

impl Default for NerOptions {
    fn default() -> Self {
        NerOptions {
            aggregation: Aggregation::Simple,
            stride: 128,
        }
    }
}

#[derive(Deserialize)]
struct Config {
    id2label: HashMap<String, String>,
    #[serde(default)]
    max_position_embeddings: Option<usize>,
}

/// A loaded token-classification model.
pub struct Ner {
    model: OnnxModel,
    tokenizer: Tokenizer,
    labels: Vec<String>,
    /// Tokens per window, special tokens included.
    max_length: usize,
    unk_id: Option<u32>,
    pad_id: u32,
    /// Which of `input_ids`, `attention_mask`, `token_type_ids` the graph takes.
    inputs: Vec<String>,
}

impl Ner {
    /// Load a model folder with `threads` intra-op threads (0: ONNX Runtime's default).
    pub fn load(runtime: &Runtime, dir: &Path, threads: usize) -> Result<Ner, NerError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| NerError::Model(format!("cannot read {name}: {e}")))
        };
        let config: Config = serde_json::from_slice(&read(CONFIG_FILE)?)
            .map_err(|e| NerError::Model(format!("{CONFIG_FILE}: {e}")))?;
        let mut labels = vec![String::new(); config.id2label.len()];
        for (id, label) in config.id2label {
            let i: usize = id
                .parse()
                .ok()
                .filter(|i| *i < labels.len())
                .ok_or_else(|| NerError::Model(format!("{CONFIG_FILE}: bad label id {id:?}")))?;
            labels[i] = label;
        }
        let tokenizer = Tokenizer::from_bytes(read(TOKENIZER_FILE)?)
            .map_err(|e| NerError::Model(format!("{TOKENIZER_FILE}: {e}")))?;
        let model = OnnxModel::load(runtime, &read(MODEL_FILE)?, threads)?;
        let inputs: Vec<String> = model
            .signature()
            .inputs
            .iter()
            .map(|s| s.name.clone())
            .collect();
        for name in &inputs {
            if !["input_ids", "attention_mask", "token_type_ids"].contains(&name.as_str()) {
                return Err(NerError::Model(format!(
                    "the model takes an input `{name}`; a token classifier takes input_ids, \
                     attention_mask and token_type_ids"
                )));
            }
        }
        let classes = model
            .signature()
            .outputs
            .first()
            .and_then(|o| o.dims.last().copied())
            .unwrap_or(-1);
        if classes > 0 && classes as usize != labels.len() {
            return Err(NerError::Model(format!(
                "the model scores {classes} classes, its configuration names {}",
                labels.len()
            )));
        }
        let unk_id = tokenizer.token_to_id("[UNK]");
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        Ok(Ner {
            model,
            tokenizer,
            labels,
            max_length: config.max_position_embeddings.unwrap_or(512).min(512),
            unk_id,
            pad_id,
            inputs,
        })
    }

    /// The labels the model gives (B-/I- prefixed, and `O`).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Tokens per window, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The entities of each text.
    pub fn recognise(
        &self,
        texts: &[&str],
        options: NerOptions,
    ) -> Result<Vec<Vec<Entity>>, NerError> {
        let windows_of = self.tokenise(texts, options.stride)?;
        // Every window of every text, run in padded batches of windows of similar length
        // (a batch costs its longest window times its size: one long window among short
        // ones would pad them all), the scores put back in order.
        let all: Vec<&tokenizers::Encoding> = windows_of.iter().flatten().collect();
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by_key(|&i| all[i].len());
        let mut scored: Vec<Option<Vec<f32>>> = vec![None; all.len()];
        for batch in order.chunks(MAX_WINDOWS_PER_RUN) {
            let windows: Vec<&tokenizers::Encoding> = batch.iter().map(|&i| all[i]).collect();
            for (&i, s) in batch.iter().zip(self.run(&windows)?) {
                scored[i] = Some(s);
            }
        }
        let mut scores = scored.into_iter().flatten();
        let mut out = Vec::with_capacity(texts.len());
        for (text, windows) in texts.iter().zip(&windows_of) {
            let chars: Vec<char> = text.chars().collect();
            let mut entities = Vec::new();
            for window in windows {
                let probabilities = scores
                    .next()
                    .ok_or_else(|| NerError::Model("a window was not scored".into()))?;
                let tokens = aggregate::tokens(
                    window,
                    &probabilities,
                    self.labels.len(),
                    &chars,
                    self.unk_id,
                    &self.tokenizer,
                );
                entities.extend(aggregate::entities(
                    &tokens,
                    &self.labels,
                    options.aggregation,
                ));
            }
            if windows.len() > 1 {
                entities = aggregate::resolve_overlaps(entities);
            }
            out.push(
                entities
                    .into_iter()
                    .map(|e| Entity {
                        text: chars[e.start.min(chars.len())..e.end.min(chars.len())]
                            .iter()
                            .collect(),
                        ..e
                    })
                    .collect(),
            );
        }
        Ok(out)
    }

    /// Each text's windows (with their special tokens and character offsets).
    fn tokenise(
        &self,
        texts: &[&str],
        stride: usize,
    ) -> Result<Vec<Vec<tokenizers::Encoding>>, NerError> {
        let content = self.max_length.saturating_sub(2);
        if stride >= content {
            return Err(NerError::InvalidInput(format!(
                "stride must be less than {content} tokens (the model's window less its special tokens)"
            )));
        }
        // Tokenised whole, then cut into windows, then each window given its special
        // tokens: what the tokenizer's own truncation with a stride gives, done by hand
        // because the crate's release (0.23.2) stops tokenising at the first window when
        // truncation is set and so loses the later windows (fixed in 0.23.3, its test
        // `truncation_keeps_every_overflowing_chunk`).
        let mut tokenizer = self.tokenizer.clone();
        tokenizer
            .with_truncation(None)
            .map_err(|e| NerError::Tokenize(e.to_string()))?;
        tokenizer.with_padding(None);
        texts
            .iter()
            .map(|t| {
                let mut whole = tokenizer
                    .encode_char_offsets(*t, false)
                    .map_err(|e| NerError::Tokenize(e.to_string()))?;
                whole.truncate(content, stride, TruncationDirection::Right);
                let rest = whole.take_overflowing();
                std::iter::once(whole)
                    .chain(rest)
                    .map(|w| {
                        tokenizer
                            .post_process(w, None, true)
                            .map_err(|e| NerError::Tokenize(e.to_string()))
                    })
                    .collect()
            })
            .collect()
    }

    /// Softmax scores of each window's tokens (`[tokens][labels]`, flattened per window).
    fn run(&self, windows: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>, NerError> {
        let longest = windows.iter().map(|w| w.len()).max().unwrap_or(0);
        let n = windows.len();
        let mut ids = vec![i64::from(self.pad_id); n * longest];
        let mut mask = vec![0i64; n * longest];
        let mut types = vec![0i64; n * longest];
        for (r, w) in windows.iter().enumerate() {
            for (c, ((&id, &m), &t)) in w
                .get_ids()
                .iter()
                .zip(w.get_attention_mask())
                .zip(w.get_type_ids())
                .enumerate()
            {
                ids[r * longest + c] = i64::from(id);
                mask[r * longest + c] = i64::from(m);
                types[r * longest + c] = i64::from(t);
            }
        }
        let shape = vec![n, longest];
        let inputs = self
            .inputs
            .iter()
            .map(|name| {
                let data = match name.as_str() {
                    "input_ids" => ids.clone(),
                    "attention_mask" => mask.clone(),
                    _ => types.clone(),
                };
                Tensor::new(name, shape.clone(), TensorData::Int64(data))
            })
            .collect();
        let out = self.model.run(inputs, None)?;
        let logits = out
            .into_iter()
            .next()
            .ok_or_else(|| NerError::Model("the model gave no output".into()))?;
        let classes = self.labels.len();
        if logits.shape != [n, longest, classes] {
            return Err(NerError::Model(format!(
                "the model's output has shape {:?}, not [{n}, {longest}, {classes}]",
                logits.shape
            )));
        }
        let TensorData::Fp32(values) = logits.data else {
            return Err(NerError::Model("the model's output is not FP32".into()));
        };
        Ok(windows
            .iter()
            .enumerate()
            .map(|(r, w)| {
                let rows = &values[r * longest * classes..(r * longest + w.len()) * classes];
                rows.chunks(classes).flat_map(softmax).collect()
            })
            .collect())
    }
}

/// Softmax as NumPy computes it in float32 (shifted by the maximum).
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|v| v / sum).collect()
}
