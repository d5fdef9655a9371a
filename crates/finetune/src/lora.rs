//! The adapter: per targeted projection of every layer, `A` (r x in) and `B` (out x r),
//! so the projection becomes `x W^T + (alpha / r) * (x A^T) B^T`. `A` starts uniform in
//! +-1/sqrt(in) (PEFT's default, Kaiming-uniform with a = sqrt(5)), `B` at zero.

use std::collections::HashMap;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::base::Base;
use crate::{FinetuneError, Result};

/// A projection an adapter can target, by its GGUF name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    Q = 0,
    K = 1,
    V = 2,
    O = 3,
    Gate = 4,
    Up = 5,
    Down = 6,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];
    /// The attention projections: the default targets.
    pub const ATTENTION: [Target; 4] = [Target::Q, Target::K, Target::V, Target::O];

    pub fn gguf_name(self) -> &'static str {
        match self {
            Target::Q => "attn_q",
            Target::K => "attn_k",
            Target::V => "attn_v",
            Target::O => "attn_output",
            Target::Gate => "ffn_gate",
            Target::Up => "ffn_up",
            Target::Down => "ffn_down",
        }
    }

    /// Hugging Face's (PEFT's) name.
    pub fn hf_name(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    /// The short name: `q`, `k`, `v`, `o`, `gate`, `up`, `down`.
    pub fn short_name(self) -> &'static str {
        let hf = self.hf_name();
        &hf[..hf.len() - "_proj".len()]
    }

    /// The short, GGUF or Hugging Face name.
    pub fn parse(name: &str) -> Option<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.short_name() == name || t.hf_name() == name || t.gguf_name() == name)
    }
}

/// The adapter's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f32,
    /// Dropout on the adapter's input while training.
    pub dropout: f32,
    pub targets: Vec<Target>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: Target::ATTENTION.to_vec(),
        }
    }
}

impl LoraConfig {
    pub fn check(&self) -> Result<()> {
        if !(1..=256).contains(&self.rank) {
            return Err(FinetuneError::InvalidInput(format!(
                "rank must be 1-256, got {}",
                self.rank
            )));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(FinetuneError::InvalidInput("alpha must be above 0".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(FinetuneError::InvalidInput(
                "dropout must be at least 0 and below 1".into(),
            ));
        }
        if self.targets.is_empty() {
            return Err(FinetuneError::InvalidInput(
                "name at least one target projection".into(),
            ));
        }
        Ok(())
    }

    pub fn scale(&self) -> f64 {
        (self.alpha / self.rank as f32) as f64
    }
}

/// One projection's pair.
pub(crate) struct Pair {
    pub(crate) a: Var,
    pub(crate) b: Var,
}

/// The adapter's matrices, trainable.
pub(crate) struct LoraWeights {
    pub(crate) config: LoraConfig,
    pairs: HashMap<(usize, Target), Pair>,
}

impl LoraWeights {
    /// A fresh adapter, `A` drawn from `seed`.
    pub(crate) fn init(base: &Base, config: LoraConfig, seed: u64) -> Result<LoraWeights> {
        config.check()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut pairs = HashMap::new();
        let mut targets = config.targets.clone();
        targets.sort();
        targets.dedup();
        for layer in 0..base.config.n_layer {
            for &target in &targets {
                let (out, inp) = base.shape_of(target);
                let bound = 1.0 / (inp as f32).sqrt();
                let a: Vec<f32> = (0..config.rank * inp)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                let a = Var::from_tensor(&Tensor::from_vec(a, (config.rank, inp), &Device::Cpu)?)?;
                let b = Var::zeros((out, config.rank), candle_core::DType::F32, &Device::Cpu)?;
                pairs.insert((layer, target), Pair { a, b });
            }
        }
        Ok(LoraWeights {
            config: LoraConfig { targets, ..config },
            pairs,
        })
    }

    pub(crate) fn pair(&self, layer: usize, target: Target) -> Option<&Pair> {
        self.pairs.get(&(layer, target))
    }

    /// Every matrix by its GGUF tensor name, in name order.
    pub(crate) fn named(&self) -> Vec<(String, &Var)> {
        let mut out = Vec::with_capacity(self.pairs.len() * 2);
        for (&(layer, target), pair) in &self.pairs {
            let stem = format!("blk.{layer}.{}.weight", target.gguf_name());
            out.push((format!("{stem}.lora_a"), &pair.a));
            out.push((format!("{stem}.lora_b"), &pair.b));
        }
        out.sort_by(|x, y| x.0.cmp(&y.0));
        out
    }

    /// Put saved values back (a checkpoint's).
    pub(crate) fn assign(&self, saved: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.named() {
            let value = saved
                .get(&name)
                .ok_or_else(|| FinetuneError::Model(format!("the checkpoint lacks {name}")))?;
            if value.dims() != var.dims() {
                return Err(FinetuneError::Model(format!(
                    "the checkpoint's {name} is {:?}, the adapter's {:?}",
                    value.dims(),
                    var.dims()
                )));
            }
            var.set(value)?;
        }
        Ok(())
    }

    /// The adapter as llama.cpp loads it (`--lora`, `llama_adapter_lora_init`).
    pub(crate) fn to_gguf(&self, architecture: &str) -> Result<Vec<u8>> {
        let named = self.named();
        let tensors: Vec<(String, QTensor)> = named
            .iter()
            .map(|(name, var)| {
                Ok((
                    name.clone(),
                    QTensor::quantize(var.as_tensor(), GgmlDType::F32)?,
                ))
            })
            .collect::<Result<_>>()?;
        let general_type = gguf_file::Value::String("adapter".into());
        let arch = gguf_file::Value::String(architecture.into());
        let adapter_type = gguf_file::Value::String("lora".into());
        let alpha = gguf_file::Value::F32(self.config.alpha);
        let metadata = [
            ("general.architecture", &arch),
            ("general.type", &general_type),
            ("adapter.type", &adapter_type),
            ("adapter.lora.alpha", &alpha),
        ];
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut out = std::io::Cursor::new(Vec::new());
        gguf_file::write(&mut out, &metadata, &refs)?;
        Ok(out.into_inner())
    }
}
