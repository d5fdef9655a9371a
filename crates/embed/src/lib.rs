//! Sentence embeddings from BERT-family encoders in sentence-transformers model folders
//! (all-MiniLM-L6-v2 and its kin), on candle, CPU.
//!
//! [`Embedder::load`] reads a folder (config.json, tokenizer.json, model.safetensors, and
//! the optional modules.json, 1_Pooling/config.json, sentence_bert_config.json);
//! [`Embedder::embed`] turns texts into vectors: tokenize (truncating or refusing over-long
//! texts), sort by length and run sub-batches padded only to their longest member (cut
//! where that saves padding: batching.rs), pool under the attention mask, L2-normalise
//! when the folder says so, and return the vectors in the caller's order.
//!
//! Speed: the encoder (bert.rs) keeps activations contiguous, fuses Q/K/V into one
//! projection, runs linear layers on weights packed once at load for an AVX-512 kernel
//! (candle's matmul on other CPUs) and fuses the element-wise steps (aiaas-kernels).
//!
//! Threads: all numeric work (tokenizer, matmuls, kernels) runs on the embedder's own rayon
//! pool, sized to the threads the process may use unless [`EmbedderConfig::threads`] says
//! otherwise. `embed` blocks; call it from a blocking thread, not an async worker.

mod batching;
mod bert;
mod error;
mod folder;
mod pooling;
mod tokenize;

use std::path::Path;

pub use aiaas_kernels::Activation;
pub use bert::Config as BertConfig;
pub use error::{EmbedError, Result};
pub use pooling::Pooling;

use bert::{Bert, BertInput};
use folder::Pipeline;
use tokenize::{PaddedBatch, TextTokenizer, Tokenized};

/// How an [`Embedder`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderConfig {
    /// Most texts in one forward pass; a larger `embed` call runs in several (default 32).
    pub max_batch: usize,
    /// Threads for the numeric work; `None` means every thread the process may use.
    pub threads: Option<usize>,
    /// Cut a call's texts, sorted by length, into sub-batches where that saves padding
    /// (default); when false, sub-batches are simply `max_batch` texts of the sorted order.
    pub split_by_length: bool,
    /// Use candle's generic linear layers even where the packed AVX-512 kernel runs (the
    /// path every CPU without AVX-512 takes; default false).
    pub portable_kernels: bool,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            max_batch: 32,
            threads: None,
            split_by_length: true,
            portable_kernels: false,
        }
    }
}

/// Options of one [`Embedder::embed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbedOptions {
    /// Cut texts longer than [`Embedder::max_tokens`] to that length; when false (the
    /// default) such a text fails the call with [`EmbedError::TooLong`].
    pub truncate: bool,
}

/// One text's vector and how it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub vector: Vec<f32>,
    /// Tokens the model read, special tokens included (after truncation).
    pub tokens: usize,
    /// Whether the text was cut to fit.
    pub truncated: bool,
}

/// A sentence encoder loaded from a model folder.
pub struct Embedder {
    model: Bert,
    tokenizer: TextTokenizer,
    pipeline: Pipeline,
    max_tokens: usize,
    max_batch: usize,
    split_by_length: bool,
    pool: rayon::ThreadPool,
}

impl Embedder {
    /// Loads the model folder `dir` with the default [`EmbedderConfig`].
    pub fn load(dir: &Path) -> Result<Embedder> {
        Self::load_with(dir, EmbedderConfig::default())
    }

    /// Loads the model folder `dir`.
    pub fn load_with(dir: &Path, config: EmbedderConfig) -> Result<Embedder> {
        if config.max_batch == 0 || config.threads == Some(0) {
            return Err(EmbedError::Config(format!(
                "max_batch and threads must be at least 1, got {config:?}"
            )));
        }
        let bert_config: BertConfig = folder::read_json(&dir.join("config.json"))?;
        let pipeline = Pipeline::read(dir)?;
        let max_tokens = pipeline
            .max_seq_length
            .map_or(bert_config.max_position_embeddings, |m| {
                m.min(bert_config.max_position_embeddings)
            });
        let tokenizer = TextTokenizer::load(&dir.join("tokenizer.json"), max_tokens)?;
        let weights = bert::load_weights(&dir.join("model.safetensors"))?;
        let model = if config.portable_kernels {
            Bert::load_portable(weights, &bert_config)?
        } else {
            Bert::load(weights, &bert_config)?
        };
        let threads = config
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("aiaas-embed-{i}"))
            .build()
            .map_err(|e| EmbedError::Config(format!("cannot start {threads} threads: {e}")))?;
        Ok(Embedder {
            model,
            tokenizer,
            pipeline,
            max_tokens,
            max_batch: config.max_batch,
            split_by_length: config.split_by_length,
            pool,
        })
    }

    /// Length of the vectors.
    pub fn dimensions(&self) -> usize {
        self.model.config().hidden_size
    }

    /// Most tokens (special tokens included) the model reads of one text.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// How token vectors are pooled.
    pub fn pooling(&self) -> Pooling {
        self.pipeline.pooling
    }

    /// Whether vectors are L2-normalised.
    pub fn normalizes(&self) -> bool {
        self.pipeline.normalize
    }

    /// Embeds `texts`, returning one [`Embedding`] per text in the same order.
    pub fn embed(&self, texts: &[&str], opts: EmbedOptions) -> Result<Vec<Embedding>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.install(|| {
            let tokenized = self.tokenizer.encode(texts, opts.truncate)?;
            // Similar lengths share a sub-batch, so little of any batch is padding.
            let mut order: Vec<usize> = (0..texts.len()).collect();
            order.sort_by_key(|&i| tokenized[i].ids.len());
            let lengths: Vec<usize> = order.iter().map(|&i| tokenized[i].ids.len()).collect();
            let mut out: Vec<Option<Embedding>> = vec![None; texts.len()];
            for range in batching::plan(&lengths, self.max_batch, self.split_by_length) {
                let chunk = &order[range];
                let items: Vec<&Tokenized> = chunk.iter().map(|&i| &tokenized[i]).collect();
                let vectors = self.embed_batch(&items)?;
                for ((&i, vector), item) in chunk.iter().zip(vectors).zip(&items) {
                    out[i] = Some(Embedding {
                        vector,
                        tokens: item.ids.len(),
                        truncated: item.truncated(),
                    });
                }
            }
            Ok(out.into_iter().flatten().collect())
        })
    }

    /// Vectors of one sub-batch, in its order.
    fn embed_batch(&self, items: &[&Tokenized]) -> Result<Vec<Vec<f32>>> {
        let batch = PaddedBatch::new(items, self.model.config().pad_token_id);
        let additive_mask: Vec<f32> = batch
            .mask
            .iter()
            .map(|&m| if m > 0.0 { 0.0 } else { f32::MIN })
            .collect();
        let hidden = self.model.forward(&BertInput {
            ids: &batch.ids,
            type_ids: &batch.type_ids,
            additive_mask: &additive_mask,
            batch: batch.batch,
            seq_len: batch.seq_len,
        })?;
        let hidden: Vec<f32> = hidden.flatten_all()?.to_vec1()?;
        let mut vectors =
            self.pipeline
                .pooling
                .pool(&hidden, &batch.mask, batch.seq_len, self.dimensions());
        if self.pipeline.normalize {
            vectors.iter_mut().for_each(|v| pooling::l2_normalize(v));
        }
        Ok(vectors)
    }
}
