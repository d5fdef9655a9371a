//! The forward pass of a llama decoder with the adapter, over one example (no padding),
//! and its loss: the summed cross-entropy of the tokens the example teaches. Built from
//! candle's basic operations only, so its autograd gives the adapter's gradients.
//!
//! As llama.cpp runs a llama GGUF: RMS norm, RoPE on interleaved pairs (the converter
//! permuted the query and key rows for it), grouped-query attention with a causal mask,
//! SwiGLU feed-forward, tied or separate output projection.

use candle_core::{CpuStorage, CustomOp1, DType, Device, IndexOp, Layout, Shape, Tensor, D};
use rand::Rng;

use crate::base::Base;
use crate::lora::{LoraWeights, Target};
use crate::Result;

/// What one example's forward pass gave.
pub(crate) struct Scored {
    /// Summed negative log-likelihood of the taught tokens (a scalar in the graph).
    pub(crate) loss: Tensor,
    /// Each taught token's log-probability, in order.
    pub(crate) logprobs: Vec<f32>,
    pub(crate) tokens: usize,
    /// Taught tokens the model ranked first.
    pub(crate) correct: usize,
}

/// Dropout masks drawn from the trainer's generator (candle's own CPU generator cannot be
/// seeded), scaled by 1/(1-p).
pub(crate) struct Dropout<'a, R: Rng> {
    pub(crate) p: f32,
    pub(crate) rng: &'a mut R,
}

impl<R: Rng> Dropout<'_, R> {
    fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 / (1.0 - self.p);
        let n = x.elem_count();
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if self.rng.random::<f32>() < self.p {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        Ok((x * Tensor::from_vec(mask, x.shape(), x.device())?)?)
    }
}

/// The loss of one example: `tokens` (at least two), `learn[i]` whether token i is taught
/// (predicted from the tokens before it). `dropout` only while training.
pub(crate) fn score<R: Rng>(
    base: &Base,
    lora: &LoraWeights,
    tokens: &[u32],
    learn: &[bool],
    mut dropout: Option<Dropout<'_, R>>,
) -> Result<Scored> {
    let c = &base.config;
    let device = Device::Cpu;
    let t = tokens.len() - 1;
    let ids = Tensor::new(&tokens[..t], &device)?;
    let mut x = base.embed.index_select(&ids, 0)?;
    let (cos, sin) = rope_tables(t, c.head_dim, c.rope_base)?;
    let mask = causal_mask(t)?;
    let scale = lora.config.scale();
    let mut project = |x: &Tensor, layer: usize, target: Target| -> Result<Tensor> {
        let w = &base.layers[layer].proj[target as usize];
        let y = frozen_linear(x, w)?;
        match lora.pair(layer, target) {
            None => Ok(y),
            Some(pair) => {
                let input = match dropout.as_mut() {
                    Some(d) => d.apply(x)?,
                    None => x.clone(),
                };
                let delta = input.matmul(&pair.a.t()?)?.matmul(&pair.b.t()?)?;
                Ok((y + (delta * scale)?)?)
            }
        }
    };
    for (l, layer) in base.layers.iter().enumerate() {
        let h = rms_norm(&x, &layer.attn_norm, c.rms_eps)?;
        let q = project(&h, l, Target::Q)?;
        let k = project(&h, l, Target::K)?;
        let v = project(&h, l, Target::V)?;
        let heads = |x: Tensor, n: usize| -> Result<Tensor> {
            Ok(x.reshape((t, n, c.head_dim))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let q = rope(&heads(q, c.n_head)?, &cos, &sin)?;
        let k = rope(&heads(k, c.n_head_kv)?, &cos, &sin)?;
        let v = heads(v, c.n_head_kv)?;
        let (k, v) = if c.n_head_kv == c.n_head {
            (k, v)
        } else {
            let rep = c.n_head / c.n_head_kv;
            let repeat = |x: Tensor| -> Result<Tensor> {
                Ok(x.unsqueeze(1)?
                    .broadcast_as((c.n_head_kv, rep, t, c.head_dim))?
                    .contiguous()?
                    .reshape((c.n_head, t, c.head_dim))?)
            };
            (repeat(k)?, repeat(v)?)
        };
        let scores = (q.matmul(&k.t()?)? / (c.head_dim as f64).sqrt())?.broadcast_add(&mask)?;
        let attention = softmax(&scores)?.matmul(&v)?;
        let attention = attention.transpose(0, 1)?.reshape((t, c.n_embd))?;
        x = (x + project(&attention, l, Target::O)?)?;
        let h = rms_norm(&x, &layer.ffn_norm, c.rms_eps)?;
        let gate = project(&h, l, Target::Gate)?.silu()?;
        let up = project(&h, l, Target::Up)?;
        x = (x + project(&(gate * up)?, l, Target::Down)?)?;
    }
    // Only the positions whose next token is taught reach the output projection.
    let positions: Vec<u32> = (0..t).filter(|&p| learn[p + 1]).map(|p| p as u32).collect();
    let targets: Vec<u32> = positions.iter().map(|&p| tokens[p as usize + 1]).collect();
    let n = positions.len();
    if n == 0 {
        return Ok(Scored {
            loss: Tensor::zeros((), DType::F32, &device)?,
            logprobs: Vec::new(),
            tokens: 0,
            correct: 0,
        });
    }
    let x = rms_norm(&x, &base.out_norm, c.rms_eps)?;
    let x = x.index_select(&Tensor::new(positions.as_slice(), &device)?, 0)?;
    let logits = frozen_linear(&x, &base.output)?;
    let targets = Tensor::new(targets.as_slice(), &device)?;
    let predicted: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
    let correct = predicted
        .iter()
        .zip(targets.to_vec1::<u32>()?)
        .filter(|(p, t)| **p == *t)
        .count();
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_z = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let log_p = shifted.broadcast_sub(&log_z)?;
    let picked = log_p.gather(&targets.unsqueeze(1)?, 1)?;
    Ok(Scored {
        loss: picked.sum_all()?.neg()?,
        logprobs: picked.flatten_all()?.to_vec1()?,
        tokens: n,
        correct,
    })
}

/// `x W^T` for a frozen weight `W` (out, in): the gradient flows to `x` only. candle's
/// matmul backward also computes the weight's gradient (a GEMM and a buffer the size of
/// the weight, per projection and example), which a frozen base never uses: with it,
/// a training step did half again the work.
fn frozen_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(Frozen(w.clone()))?)
}

struct Frozen(Tensor);

impl CustomOp1 for Frozen {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (t, d) = layout.shape().dims2()?;
        let (CpuStorage::F32(data), Some((from, to))) = (storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("frozen-linear takes a contiguous f32 matrix");
        };
        let x = Tensor::from_slice(&data[from..to], (t, d), &Device::Cpu)?;
        let y = x.matmul(&self.0.t()?)?;
        let out = self.0.dim(0)?;
        Ok((
            CpuStorage::F32(y.flatten_all()?.to_vec1()?),
            Shape::from((t, out)),
        ))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.0)?))
    }
}

fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&(mean_square + eps)?.sqrt()?)?
        .broadcast_mul(weight)?)
}

/// Softmax over the last dimension; the shift by the maximum is a constant of the graph
/// (it cancels in the gradient).
fn softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// 0 on and below the diagonal, a large negative number above it.
fn causal_mask(t: usize) -> Result<Tensor> {
    let mask: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { -1e9 } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(mask, (t, t), &Device::Cpu)?)
}

/// cos and sin of position x frequency, (t, head_dim / 2).
fn rope_tables(t: usize, head_dim: usize, base: f32) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for p in 0..t {
        for i in 0..half {
            let freq = 1.0 / (base as f64).powf(2.0 * i as f64 / head_dim as f64);
            let angle = p as f64 * freq;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (t, half), &Device::Cpu)?,
        Tensor::from_vec(sin, (t, half), &Device::Cpu)?,
    ))
}

/// RoPE on interleaved pairs (x[2i], x[2i+1]) of (heads, t, head_dim).
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (h, t, d) = x.dims3()?;
    let pairs = x.reshape((h, t, d / 2, 2))?;
    let even = pairs.i((.., .., .., 0))?;
    let odd = pairs.i((.., .., .., 1))?;
    let first = (even.broadcast_mul(cos)? - odd.broadcast_mul(sin)?)?;
    let second = (even.broadcast_mul(sin)? + odd.broadcast_mul(cos)?)?;
    Ok(Tensor::stack(&[first, second], 3)?.reshape((h, t, d))?)
}
