//! LoRA fine-tuning of a GGUF decoder (llama architecture: SmolLM2, Llama, Mistral; and
//! Gemma 3).
//!
//! - base.rs: the base model's weights read from its GGUF and dequantised to f32 (the
//!   values llama.cpp multiplies by when it serves the same file), frozen;
//! - lora.rs: the adapter (rank `r` matrices `A` (r x in) and `B` (out x r) per targeted
//!   projection, `B` zero at the start, so training starts from the base model exactly),
//!   written as llama.cpp's GGUF LoRA adapter (`general.type = adapter`, tensors
//!   `blk.N.attn_q.weight.lora_a` ...; llama.cpp scales by `alpha / r`, as here);
//! - engine.rs: the forward pass with the adapter (RMS norm, interleaved RoPE as
//!   llama.cpp applies it to GGUF weights, grouped-query causal attention, SwiGLU; for
//!   Gemma 3 its scaled embeddings, query and key norms, post-norms, GELU, NeoX RoPE and
//!   sliding-window layers), the loss summed over the tokens the example teaches, and
//!   the backward pass to the adapter's gradients, written out by hand on `gemm`
//!   (reference.rs, test-only, computes the same with candle's autograd);
//! - train.rs: AdamW (decoupled weight decay) with linear warm-up and decay, gradient
//!   accumulation over a batch of examples (each example run alone: no padding), seeded
//!   LoRA initialisation, dropout and epoch order, so a run is reproducible; checkpoints
//!   hold the adapter, the optimiser's moments and the counters, and a run resumed from
//!   one continues exactly as it would have.
//!
//! Tokenising and rendering conversations with the model's chat template is the
//! caller's (the same code serving uses): a training example reaches this crate as token
//! ids and, per token, whether the loss covers it.

mod base;
mod engine;
mod lora;
#[cfg(test)]
mod reference;
mod train;

pub use base::{Arch, Base, BaseConfig, Sliding};

/// The `general.architecture` values of the GGUF models the trainer implements.
pub const ARCHITECTURES: [&str; 2] = ["llama", "gemma3"];
pub use lora::{LoraConfig, Target};
pub use train::{epoch_order, Checkpoint, Sequence, StepReport, TrainOptions, Trainer};

#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = FinetuneError> = std::result::Result<T, E>;
