//! The adapter: per targeted projection of every layer, `A` (r x in) and `B` (out x r),
//! so the projection becomes `x W^T + (alpha / r) * (x A^T) B^T`. `A` starts uniform in
//! +-1/sqrt(in) (PEFT's default, Kaiming-uniform with a = sqrt(5)), `B` at zero.

use std::collections::HashMap;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
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

/// One projection's pair, row-major: `a` is `rank x inp`, `b` is `out x rank`.
pub(crate) struct Pair {
    pub(crate) layer: usize,
    pub(crate) target: Target,
    pub(crate) inp: usize,
    pub(crate) out: usize,
    pub(crate) a: Vec<f32>,
    pub(crate) b: Vec<f32>,
}

impl Pair {
    /// The GGUF names of `a` and `b`.
    pub(crate) fn names(&self) -> (String, String) {
        let stem = format!("blk.{}.{}.weight", self.layer, self.target.gguf_name());
        (format!("{stem}.lora_a"), format!("{stem}.lora_b"))
    }
}

/// The adapter's matrices, trainable.
pub(crate) struct LoraWeights {
    pub(crate) config: LoraConfig,
    /// By layer, then target.
    pub(crate) pairs: Vec<Pair>,
    /// `layer * 7 + target` to the pair's index.
    index: Vec<Option<usize>>,
}

impl LoraWeights {
    /// A fresh adapter, `A` drawn from `seed`.
    pub(crate) fn init(base: &Base, config: LoraConfig, seed: u64) -> Result<LoraWeights> {
        config.check()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut targets = config.targets.clone();
        targets.sort();
        targets.dedup();
        let mut pairs = Vec::new();
        let mut index = vec![None; base.config.n_layer * Target::ALL.len()];
        for layer in 0..base.config.n_layer {
            for &target in &targets {
                let (out, inp) = base.shape_of(target);
                let bound = 1.0 / (inp as f32).sqrt();
                let a: Vec<f32> = (0..config.rank * inp)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                index[layer * Target::ALL.len() + target as usize] = Some(pairs.len());
                pairs.push(Pair {
                    layer,
                    target,
                    inp,
                    out,
                    a,
                    b: vec![0.0; out * config.rank],
                });
            }
        }
        Ok(LoraWeights {
            config: LoraConfig { targets, ..config },
            pairs,
            index,
        })
    }

    /// The index of a projection's pair in `pairs`.
    pub(crate) fn find(&self, layer: usize, target: Target) -> Option<usize> {
        self.index[layer * Target::ALL.len() + target as usize]
    }

    /// Every matrix as a tensor by its GGUF name, in name order.
    pub(crate) fn named(&self) -> Result<Vec<(String, Tensor)>> {
        let r = self.config.rank;
        let mut out = Vec::with_capacity(self.pairs.len() * 2);
        for pair in &self.pairs {
            let (a, b) = pair.names();
            out.push((a, Tensor::from_slice(&pair.a, (r, pair.inp), &Device::Cpu)?));
            out.push((b, Tensor::from_slice(&pair.b, (pair.out, r), &Device::Cpu)?));
        }
        out.sort_by(|x, y| x.0.cmp(&y.0));
        Ok(out)
    }

    /// Put saved values back (a checkpoint's).
    pub(crate) fn assign(&mut self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let r = self.config.rank;
        for pair in &mut self.pairs {
            let (a, b) = pair.names();
            let shapes = [(r, pair.inp), (pair.out, r)];
            for ((name, dst), shape) in [(a, &mut pair.a), (b, &mut pair.b)].into_iter().zip(shapes)
            {
                let value = saved
                    .get(&name)
                    .ok_or_else(|| FinetuneError::Model(format!("the checkpoint lacks {name}")))?;
                if value.dims() != [shape.0, shape.1] {
                    return Err(FinetuneError::Model(format!(
                        "the checkpoint's {name} is {:?}, the adapter's {shape:?}",
                        value.dims()
                    )));
                }
                *dst = value.flatten_all()?.to_vec1()?;
            }
        }
        Ok(())
    }

    /// The adapter as llama.cpp loads it (`--lora`, `llama_adapter_lora_init`).
    pub(crate) fn to_gguf(&self, architecture: &str) -> Result<Vec<u8>> {
        let tensors: Vec<(String, QTensor)> = self
            .named()?
            .into_iter()
            .map(|(name, t)| Ok((name, QTensor::quantize(&t, GgmlDType::F32)?)))
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
