//! The frozen base model: a llama or gemma3 GGUF read with candle's GGUF reader, every
//! weight dequantised to f32 by the same block formats llama.cpp uses, so training sees
//! exactly the values serving multiplies by. Weights keep candle's row-major layout of
//! the GGUF tensors: a projection is (out, in) and is applied as `x W^T`.

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};

use crate::lora::Target;
use crate::{FinetuneError, Result};

/// The decoder families trained here, as llama.cpp names them in `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// SmolLM2, Llama, Mistral-style decoders: SwiGLU, RoPE on interleaved pairs.
    Llama,
    /// Gemma 3: scaled embeddings, RMS-normed queries and keys, norms after attention
    /// and feed-forward, GELU-gated feed-forward, NeoX RoPE, sliding-window layers.
    Gemma3,
}

/// The base model's shape, from its GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseConfig {
    pub architecture: String,
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab: usize,
    pub rope_base: f32,
    /// Positions are multiplied by this on the full-attention layers (linear RoPE
    /// scaling; 1 without).
    pub rope_scale: f32,
    pub rms_eps: f64,
    /// Sliding-window layers: the window (a token sees the `window` tokens up to and
    /// including itself), their RoPE base, and which layers use it.
    pub sliding: Option<Sliding>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sliding {
    pub window: usize,
    pub rope_base: f32,
    pub layers: Vec<bool>,
}

impl BaseConfig {
    /// Queries are multiplied by this before the dot products.
    pub fn attention_scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    /// The embeddings are multiplied by this (Gemma: sqrt of the width).
    pub fn embed_scale(&self) -> f64 {
        match self.arch {
            Arch::Llama => 1.0,
            Arch::Gemma3 => (self.n_embd as f64).sqrt(),
        }
    }

    pub fn is_sliding(&self, layer: usize) -> bool {
        self.sliding.as_ref().is_some_and(|s| s.layers[layer])
    }
}

pub(crate) struct Layer {
    pub(crate) attn_norm: Tensor,
    pub(crate) ffn_norm: Tensor,
    /// q, k, v, o, gate, up, down, in `Target` order.
    pub(crate) proj: [Tensor; 7],
    /// Gemma 3: RMS norms of each query and key head, of the attention's and of the
    /// feed-forward's output.
    pub(crate) q_norm: Option<Tensor>,
    pub(crate) k_norm: Option<Tensor>,
    pub(crate) post_attn_norm: Option<Tensor>,
    pub(crate) post_ffn_norm: Option<Tensor>,
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
    /// Read a GGUF file of the llama (SmolLM2, Llama, Mistral-style decoders) or gemma3
    /// architecture.
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
        let arch = match architecture.as_str() {
            "llama" => Arch::Llama,
            "gemma3" => Arch::Gemma3,
            other => {
                return Err(FinetuneError::Model(format!(
                    "fine-tuning trains llama-architecture models (SmolLM2, Llama, Mistral) and Gemma 3; this one is {other:?}"
                )))
            }
        };
        let prefix = architecture.clone();
        let key = |k: &str| format!("{prefix}.{k}");
        let optional = |k: &str| content.metadata.get(&key(k));
        let count = |k: &str| -> Result<usize> { Ok(meta(&key(k))?.to_u32()? as usize) };
        let n_embd = count("embedding_length")?;
        let n_head = count("attention.head_count")?;
        let n_layer = count("block_count")?;
        let rope_base = match optional("rope.freq_base") {
            Some(v) => v.to_f32()?,
            None => 10_000.0,
        };
        let linear_scaling = optional("rope.scaling.type")
            .and_then(|v| v.to_string().ok())
            .is_some_and(|t| t == "linear");
        let rope_scale = match optional("rope.scaling.factor") {
            Some(f) if linear_scaling => 1.0 / f.to_f32()?,
            _ => 1.0,
        };
        let rms_eps = meta(&key("attention.layer_norm_rms_epsilon"))?.to_f32()? as f64;
        let head_dim = match optional("attention.key_length") {
            Some(v) => v.to_u32()? as usize,
            None => n_embd / n_head,
        };
        // As llama.cpp reads a Gemma 3: a window on five layers of every six (or as the
        // file's pattern says), those layers with their own RoPE base (10000 by default).
        let sliding = match (arch, optional("attention.sliding_window")) {
            (Arch::Gemma3, Some(w)) if w.to_u32()? > 0 => {
                let pattern = match optional("attention.sliding_window_pattern") {
                    Some(p) => p.to_u32()? as usize,
                    None => 6,
                };
                Some(Sliding {
                    window: w.to_u32()? as usize,
                    rope_base: match optional("rope.freq_base_swa") {
                        Some(v) => v.to_f32()?,
                        None => 10_000.0,
                    },
                    layers: (0..n_layer)
                        .map(|l| pattern == 0 || l % pattern < pattern - 1)
                        .collect(),
                })
            }
            _ => None,
        };
        let device = Device::Cpu;
        let mut tensor = |name: &str| -> Result<Tensor> {
            let q = content
                .tensor(&mut file, name, &device)
                .map_err(|e| FinetuneError::Model(format!("the GGUF's tensor {name}: {e}")))?;
            Ok(q.dequantize(&device)?)
        };
        let embed = tensor("token_embd.weight")?;
        let mut layers = Vec::with_capacity(n_layer);
        for l in 0..n_layer {
            let mut proj = Vec::with_capacity(7);
            for target in Target::ALL {
                proj.push(tensor(&format!("blk.{l}.{}.weight", target.gguf_name()))?);
            }
            let proj: [Tensor; 7] = proj
                .try_into()
                .map_err(|_| FinetuneError::Model("a layer lacks a projection".into()))?;
            let mut gemma = |name: &str| -> Result<Option<Tensor>> {
                match arch {
                    Arch::Llama => Ok(None),
                    Arch::Gemma3 => Ok(Some(tensor(&format!("blk.{l}.{name}.weight"))?)),
                }
            };
            let (q_norm, k_norm, post_attn_norm, post_ffn_norm) = (
                gemma("attn_q_norm")?,
                gemma("attn_k_norm")?,
                gemma("post_attention_norm")?,
                gemma("post_ffw_norm")?,
            );
            layers.push(Layer {
                attn_norm: tensor(&format!("blk.{l}.attn_norm.weight"))?,
                ffn_norm: tensor(&format!("blk.{l}.ffn_norm.weight"))?,
                proj,
                q_norm,
                k_norm,
                post_attn_norm,
                post_ffn_norm,
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
            arch,
            n_layer,
            n_embd,
            n_head,
            n_head_kv: count("attention.head_count_kv").unwrap_or(n_head),
            head_dim,
            n_ff: count("feed_forward_length")?,
            vocab,
            rope_base,
            rope_scale,
            rms_eps,
            sliding,
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
        let q = c.n_head * c.head_dim;
        let want = [
            (Target::Q, (q, c.n_embd)),
            (Target::K, (kv, c.n_embd)),
            (Target::V, (kv, c.n_embd)),
            (Target::O, (c.n_embd, q)),
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
