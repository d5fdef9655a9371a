//! The BERT encoder (post-LayerNorm transformer with absolute positions), inference only,
//! as in Hugging Face `transformers/models/bert/modeling_bert.py` (`BertModel` without the
//! pooler): BERT itself and the sentence encoders built on it (all-MiniLM-L6-v2, BGE and
//! E5 small/base).
//!
//! Layout for speed on CPU: hidden states stay `[batch * seq_len, hidden]` contiguous from
//! embedding to output; Q, K and V are one `[hidden, 3 * hidden]` weight (one matmul);
//! weights are packed once at load for the AVX-512 kernel (aiaas-kernels' linear.rs), or
//! transposed to `[in, out]` for candle's matmul elsewhere; activation, residual and
//! LayerNorm run fused in place on each matmul's output (aiaas-kernels).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::error::{EmbedError, Result};
use aiaas_kernels::{Activation, Attention, Dense, PackedLinear, ResidualNorm};

/// The fields of Hugging Face `config.json` the encoder uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

impl Config {
    fn validate(&self) -> Result<()> {
        if let Some(kind) = self.model_type.as_deref() {
            if kind != "bert" {
                return Err(EmbedError::Unsupported(format!(
                    "model_type `{kind}` (only `bert`)"
                )));
            }
        }
        if self.position_embedding_type != "absolute" {
            return Err(EmbedError::Unsupported(format!(
                "position_embedding_type `{}`",
                self.position_embedding_type
            )));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(EmbedError::Unsupported(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        Ok(())
    }
}

/// A loaded BERT encoder.
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    cfg: Config,
}

/// One padded batch of token ids: `[batch, seq_len]` row-major, with an additive attention
/// mask (0 for a token, a large negative for padding).
pub struct BertInput<'a> {
    pub ids: &'a [u32],
    pub type_ids: &'a [u32],
    pub additive_mask: &'a [f32],
    pub batch: usize,
    pub seq_len: usize,
}

impl Bert {
    /// Loads the weights under `vb` (names as in `BertModel`: `embeddings.*`, `encoder.*`;
    /// a `bert.` prefix, as in task-head checkpoints, is accepted).
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        Self::load_with(vb, cfg, PackedLinear::supported())
    }

    /// `load` with candle's generic linear layers whatever the CPU (as without AVX-512).
    pub fn load_portable(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        Self::load_with(vb, cfg, false)
    }

    /// `load`, choosing the linear-layer kernel (`packed` needs AVX-512).
    fn load_with(vb: VarBuilder, cfg: &Config, packed: bool) -> Result<Self> {
        cfg.validate()?;
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            return Err(EmbedError::Unsupported(
                "no `embeddings.word_embeddings.weight` in the safetensors".into(),
            ));
        };
        let embeddings = Embeddings::load(vb.pp("embeddings"), cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), cfg, packed))
            .collect::<Result<_>>()?;
        Ok(Self {
            embeddings,
            layers,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The last hidden states, `[batch * seq_len, hidden_size]`.
    pub fn forward(&self, input: &BertInput) -> Result<Tensor> {
        let n = input.batch * input.seq_len;
        if input.ids.len() != n || input.type_ids.len() != n || input.additive_mask.len() != n {
            return Err(EmbedError::Config(format!(
                "batch of {} x {} with {} ids, {} type ids, {} mask values",
                input.batch,
                input.seq_len,
                input.ids.len(),
                input.type_ids.len(),
                input.additive_mask.len()
            )));
        }
        if input.seq_len > self.cfg.max_position_embeddings {
            return Err(EmbedError::TooLong {
                index: 0,
                tokens: input.seq_len,
                max: self.cfg.max_position_embeddings,
            });
        }
        let dev = &Device::Cpu;
        let mask = Tensor::from_slice(input.additive_mask, (input.batch, input.seq_len), dev)?;
        let attention = Attention {
            batch: input.batch,
            seq_len: input.seq_len,
            heads: self.cfg.num_attention_heads,
            head_dim: self.cfg.hidden_size / self.cfg.num_attention_heads,
        };
        let mut hidden = self.embeddings.forward(input)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &mask, &attention)?;
        }
        Ok(hidden)
    }
}

/// Loads and concatenates the `[out, in]` weights and biases of `parts` along `out`, as
/// one layer (Q, K and V as one matmul).
fn load_dense(
    vb: &VarBuilder,
    parts: &[&str],
    dims: (usize, &[usize]),
    packed: bool,
) -> Result<Dense> {
    let (in_dim, out_dims) = dims;
    let mut weights = Vec::with_capacity(parts.len());
    let mut bias = Vec::new();
    for (part, &out) in parts.iter().zip(out_dims) {
        let vb = vb.pp(*part);
        weights.push(vb.get((out, in_dim), "weight").map_err(shape_err(part))?);
        bias.extend(
            vb.get(out, "bias")
                .map_err(shape_err(part))?
                .to_vec1::<f32>()?,
        );
    }
    Ok(Dense::new(&Tensor::cat(&weights, 0)?, bias, packed)?)
}

/// `weight` and `bias` of a LayerNorm, as plain vectors for the fused kernel.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        let get = |name: &str| -> Result<Vec<f32>> {
            Ok(vb
                .get(dim, name)
                .map_err(shape_err("LayerNorm"))?
                .to_vec1::<f32>()?)
        };
        Ok(Self {
            gamma: get("weight")?,
            beta: get("bias")?,
            eps: eps as f32,
        })
    }

    /// `y = norm(y + residual)`, in place.
    fn add_and_norm(&self, y: &Tensor, residual: &Tensor) -> Result<()> {
        let op = ResidualNorm {
            gamma: &self.gamma,
            beta: &self.beta,
            eps: self.eps,
        };
        Ok(y.inplace_op2(residual, &op)?)
    }
}

struct Embeddings {
    words: Tensor,
    positions: Tensor,
    token_types: Tensor,
    norm: Norm,
}

impl Embeddings {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let h = cfg.hidden_size;
        let get = |name: &str, rows: usize| -> Result<Tensor> {
            vb.pp(name)
                .get((rows, h), "weight")
                .map_err(shape_err(name))
        };
        Ok(Self {
            words: get("word_embeddings", cfg.vocab_size)?,
            positions: get("position_embeddings", cfg.max_position_embeddings)?,
            token_types: get("token_type_embeddings", cfg.type_vocab_size)?,
            norm: Norm::load(vb.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
        })
    }

    /// `norm(word + position + token type)`, `[batch * seq_len, hidden]`.
    fn forward(&self, input: &BertInput) -> Result<Tensor> {
        let dev = &Device::Cpu;
        let vocab = self.words.dim(0)? as u32;
        let types = self.token_types.dim(0)? as u32;
        // index_select does not check its indices; a bad id must be an error, not a panic.
        if let Some(bad) = input.ids.iter().find(|&&id| id >= vocab) {
            return Err(EmbedError::Tokenizer(format!(
                "token id {bad} outside the vocabulary of {vocab}"
            )));
        }
        if let Some(bad) = input.type_ids.iter().find(|&&id| id >= types) {
            return Err(EmbedError::Tokenizer(format!(
                "token type {bad} outside {types} types"
            )));
        }
        let ids = Tensor::from_slice(input.ids, input.ids.len(), dev)?;
        let type_ids = Tensor::from_slice(input.type_ids, input.type_ids.len(), dev)?;
        let hidden = self.words.dim(1)?;
        let words = self.words.index_select(&ids, 0)?;
        let rest = self
            .token_types
            .index_select(&type_ids, 0)?
            .reshape((input.batch, input.seq_len, hidden))?
            .broadcast_add(&self.positions.narrow(0, 0, input.seq_len)?)?
            .reshape((input.batch * input.seq_len, hidden))?
            .contiguous()?;
        self.norm.add_and_norm(&words, &rest)?;
        Ok(words)
    }
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    act: Activation,
    output: Dense,
    output_norm: Norm,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &Config, packed: bool) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let eps = cfg.layer_norm_eps;
        let attn = vb.pp("attention");
        Ok(Self {
            qkv: load_dense(
                &attn.pp("self"),
                &["query", "key", "value"],
                (h, &[h, h, h]),
                packed,
            )?,
            attention_out: load_dense(&attn.pp("output"), &["dense"], (h, &[h]), packed)?,
            attention_norm: Norm::load(attn.pp("output").pp("LayerNorm"), h, eps)?,
            intermediate: load_dense(&vb.pp("intermediate"), &["dense"], (h, &[i]), packed)?,
            act: cfg.hidden_act,
            output: load_dense(&vb.pp("output"), &["dense"], (i, &[h]), packed)?,
            output_norm: Norm::load(vb.pp("output").pp("LayerNorm"), h, eps)?,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor, attention: &Attention) -> Result<Tensor> {
        let qkv = self.qkv.forward(x, Activation::Identity)?;
        let context = qkv.apply_op2_no_bwd(mask, attention)?;
        let attended = self.attention_out.forward(&context, Activation::Identity)?;
        self.attention_norm.add_and_norm(&attended, x)?;
        let inner = self.intermediate.forward(&attended, self.act)?;
        let out = self.output.forward(&inner, Activation::Identity)?;
        self.output_norm.add_and_norm(&out, &attended)?;
        Ok(out)
    }
}

/// Turns a missing or misshapen tensor into a clear `Unsupported` error.
fn shape_err(name: &str) -> impl Fn(candle_core::Error) -> EmbedError + '_ {
    move |e| EmbedError::Unsupported(format!("weights for `{name}`: {e}"))
}

/// Reads `model.safetensors` into a VarBuilder (f32 on the CPU).
pub(crate) fn load_weights(path: &std::path::Path) -> Result<VarBuilder<'static>> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| EmbedError::Unsupported(format!("cannot read {}: {e}", path.display())))?;
    let tensors = tensors
        .into_iter()
        .map(|(name, t)| {
            let t = if t.dtype().is_float() {
                t.to_dtype(DType::F32)?
            } else {
                t
            };
            Ok((name, t))
        })
        .collect::<Result<std::collections::HashMap<_, _>>>()?;
    Ok(VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A 2-layer BERT with random weights, under Hugging Face's tensor names.
    fn tiny() -> (Config, HashMap<String, Tensor>) {
        let cfg: Config = serde_json::from_str(
            r#"{"vocab_size":50,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,
                "intermediate_size":64,"hidden_act":"gelu","max_position_embeddings":16}"#,
        )
        .unwrap();
        let mut w = HashMap::new();
        let mut put = |name: String, shape: &[usize]| {
            let t = Tensor::randn(0f32, 0.5, shape, &Device::Cpu).unwrap();
            w.insert(name, t);
        };
        let (h, i) = (32, 64);
        put("embeddings.word_embeddings.weight".into(), &[50, h]);
        put("embeddings.position_embeddings.weight".into(), &[16, h]);
        put("embeddings.token_type_embeddings.weight".into(), &[2, h]);
        let mut norm = |p: &str| {
            put(format!("{p}.LayerNorm.weight"), &[h]);
            put(format!("{p}.LayerNorm.bias"), &[h]);
        };
        norm("embeddings");
        for l in 0..2 {
            let p = format!("encoder.layer.{l}");
            norm(&format!("{p}.attention.output"));
            norm(&format!("{p}.output"));
        }
        let mut put = |name: String, shape: &[usize]| {
            let t = Tensor::randn(0f32, 0.5, shape, &Device::Cpu).unwrap();
            w.insert(name, t);
        };
        for l in 0..2 {
            let p = format!("encoder.layer.{l}");
            for (name, out, inp) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", i, h),
                ("output.dense", h, i),
            ] {
                put(format!("{p}.{name}.weight"), &[out, inp]);
                put(format!("{p}.{name}.bias"), &[out]);
            }
        }
        (cfg, w)
    }

    fn run(model: &Bert) -> Vec<f32> {
        // Two sequences of 5 and 3 tokens, the second padded.
        let ids = [1, 7, 9, 4, 2, 1, 30, 2, 0, 0];
        let mask = [0., 0., 0., 0., 0., 0., 0., 0., f32::MIN, f32::MIN];
        let input = BertInput {
            ids: &ids,
            type_ids: &[0; 10],
            additive_mask: &mask,
            batch: 2,
            seq_len: 5,
        };
        model
            .forward(&input)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn packed_and_candle_linear_layers_agree() {
        let (cfg, w) = tiny();
        let vb = |w: &HashMap<String, Tensor>| {
            VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu)
        };
        if !PackedLinear::supported() {
            // Only candle's path can run here: `load` must have picked it.
            let default = run(&Bert::load(vb(&w), &cfg).unwrap());
            let portable = run(&Bert::load_portable(vb(&w), &cfg).unwrap());
            assert_eq!(default, portable);
            return;
        }
        let packed = run(&Bert::load_with(vb(&w), &cfg, true).unwrap());
        let candle = run(&Bert::load_with(vb(&w), &cfg, false).unwrap());
        let real = 8 * 32; // padded rows may differ; they are never pooled
        let diff = packed[..real]
            .iter()
            .zip(&candle[..real])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "largest difference {diff}");
    }

    #[test]
    fn rejects_other_architectures() {
        let (mut cfg, w) = tiny();
        cfg.position_embedding_type = "relative_key".into();
        let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
        assert!(matches!(
            Bert::load(vb, &cfg),
            Err(EmbedError::Unsupported(_))
        ));
    }
}
