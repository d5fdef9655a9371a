//! The frozen base model: a llama-architecture GGUF read with candle's GGUF reader, every
//! weight dequantised to f32 by the same block formats llama.cpp uses, so training sees
//! exactly the values serving multiplies by. Weights keep candle's row-major layout of
//! the GGUF tensors: a projection is (out, in) and is applied as `x W^T`.

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};

use crate::lora::Target;
use crate::{FinetuneError, Result};

/// The base model's shape, from its GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseConfig {
    pub architecture: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab: usize,
    pub rope_base: f32,
    pub rms_eps: f64,
}

pub(crate) struct Layer {
    pub(crate) attn_norm: Tensor,
    pub(crate) ffn_norm: Tensor,
    /// q, k, v, o, gate, up, down, in `Target` order.
    pub(crate) proj: [Tensor; 7],
}

/// A base model's weights, frozen.
pub struct Base {
    pub config: BaseConfig,
    pub(crate) embed: Tensor,
    pub(crate) layers: Vec<Layer>,
    pub(crate) out_norm: Tensor,
    /// The output projection (the token embeddings where they are tied).
    pub(crate) output: Tensor,
}

impl Base {
    /// Read a GGUF file. Only the llama architecture (SmolLM2, Llama, Mistral-style
    /// decoders) is trained here.
    pub fn load(path: &Path) -> Result<Base> {
        let mut file = std::fs::File::open(path)?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| {
            FinetuneError::Model(format!("{}: not a GGUF file: {e}", path.display()))
        })?;
        let meta = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| FinetuneError::Model(format!("the GGUF has no {key}")))
        };
        let architecture = meta("general.architecture")?.to_string()?.clone();
        if architecture != "llama" {
            return Err(FinetuneError::Model(format!(
                "fine-tuning trains llama-architecture models (SmolLM2, Llama, Mistral); this one is {architecture:?}"
            )));
        }
        let count =
            |key: &str| -> Result<usize> { Ok(meta(&format!("llama.{key}"))?.to_u32()? as usize) };
        let n_embd = count("embedding_length")?;
        let n_head = count("attention.head_count")?;
        let rope_base = match content.metadata.get("llama.rope.freq_base") {
            Some(v) => v.to_f32()?,
            None => 10_000.0,
        };
        let rms_eps = meta("llama.attention.layer_norm_rms_epsilon")?.to_f32()? as f64;
        let device = Device::Cpu;
        let mut tensor = |name: &str| -> Result<Tensor> {
            let q = content
                .tensor(&mut file, name, &device)
                .map_err(|e| FinetuneError::Model(format!("the GGUF's tensor {name}: {e}")))?;
            Ok(q.dequantize(&device)?)
        };
        let embed = tensor("token_embd.weight")?;
        let n_layer = count("block_count")?;
        let mut layers = Vec::with_capacity(n_layer);
        for l in 0..n_layer {
            let mut proj = Vec::with_capacity(7);
            for target in Target::ALL {
                proj.push(tensor(&format!("blk.{l}.{}.weight", target.gguf_name()))?);
            }
            let proj: [Tensor; 7] = proj
                .try_into()
                .map_err(|_| FinetuneError::Model("a layer lacks a projection".into()))?;
            layers.push(Layer {
                attn_norm: tensor(&format!("blk.{l}.attn_norm.weight"))?,
                ffn_norm: tensor(&format!("blk.{l}.ffn_norm.weight"))?,
                proj,
            });
        }
        let out_norm = tensor("output_norm.weight")?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            tensor("output.weight")?
        } else {
            embed.clone()
        };
        let (vocab, _) = embed.dims2()?;
        let config = BaseConfig {
            architecture,
            n_layer,
            n_embd,
            n_head,
            n_head_kv: count("attention.head_count_kv").unwrap_or(n_head),
            head_dim: n_embd / n_head,
            n_ff: count("feed_forward_length")?,
            vocab,
            rope_base,
            rms_eps,
        };
        let base = Base {
            config,
            embed,
            layers,
            out_norm,
            output,
        };
        base.check()?;
        Ok(base)
    }

    /// (out, in) of a projection.
    pub fn shape_of(&self, target: Target) -> (usize, usize) {
        let dims = self.layers[0].proj[target as usize].dims();
        (dims[0], dims[1])
    }

    fn check(&self) -> Result<()> {
        let c = &self.config;
        let kv = c.n_head_kv * c.head_dim;
        let want = [
            (Target::Q, (c.n_embd, c.n_embd)),
            (Target::K, (kv, c.n_embd)),
            (Target::V, (kv, c.n_embd)),
            (Target::O, (c.n_embd, c.n_embd)),
            (Target::Gate, (c.n_ff, c.n_embd)),
            (Target::Up, (c.n_ff, c.n_embd)),
            (Target::Down, (c.n_embd, c.n_ff)),
        ];
        for (target, shape) in want {
            if self.shape_of(target) != shape {
                return Err(FinetuneError::Model(format!(
                    "the GGUF's {} is {:?}, its metadata implies {shape:?}",
                    target.gguf_name(),
                    self.shape_of(target)
                )));
            }
        }
        if !c.n_head.is_multiple_of(c.n_head_kv) || !c.head_dim.is_multiple_of(2) {
            return Err(FinetuneError::Model("unsupported attention heads".into()));
        }
        Ok(())
    }
}
