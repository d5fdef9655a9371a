//! The forward pass and loss of engine.rs again, on candle's tensors, with the adapter's
//! gradients from candle's autograd: the reference the hand-written backward pass is
//! tested against (the trainer's first implementation). Test-only.

use candle_core::{CpuStorage, CustomOp1, Device, IndexOp, Layout, Shape, Tensor, Var, D};
use rand::Rng;

use crate::base::{Arch, Base};
use crate::engine::Gradients;
use crate::lora::{LoraWeights, Target};
use crate::Result;

/// The reference's answer for one example.
pub(crate) struct Reference {
    pub(crate) loss: f64,
    pub(crate) logprobs: Vec<f32>,
    /// d (scale * loss) / d (A, B), per pair of `LoraWeights::pairs`.
    pub(crate) gradients: Gradients,
}

/// Dropout masks drawn as engine.rs draws them.
pub(crate) struct Dropout<'a, R: Rng> {
    pub(crate) p: f32,
    pub(crate) rng: &'a mut R,
}

impl<R: Rng> Dropout<'_, R> {
    fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let mut mask = Vec::new();
        crate::engine::dropout_factors(self.rng, self.p, x.elem_count(), &mut mask);
        Ok((x * Tensor::from_vec(mask, x.shape(), x.device())?)?)
    }
}

/// The loss of one example (`tokens`, `learn[i]` whether token i is taught) and the
/// gradients of `scale * loss`; `dropout` draws its masks as engine.rs does.
pub(crate) fn score<R: Rng>(
    base: &Base,
    lora: &LoraWeights,
    tokens: &[u32],
    learn: &[bool],
    mut dropout: Option<Dropout<'_, R>>,
    grad_scale: f64,
) -> Result<Reference> {
    let c = &base.config;
    let device = Device::Cpu;
    let t = tokens.len() - 1;
    let matrix = |m: &crate::base::Matrix| Tensor::from_slice(&m.data, (m.rows, m.cols), &device);
    let vector = |v: &[f32]| Tensor::from_slice(v, v.len(), &device);
    let vars: Vec<(Var, Var)> = lora
        .pairs
        .iter()
        .map(|p| -> Result<(Var, Var)> {
            let r = lora.config.rank;
            Ok((
                Var::from_tensor(&Tensor::from_slice(&p.a, (r, p.inp), &device)?)?,
                Var::from_tensor(&Tensor::from_slice(&p.b, (p.out, r), &device)?)?,
            ))
        })
        .collect::<Result<_>>()?;
    let ids = Tensor::new(&tokens[..t], &device)?;
    let mut x = matrix(&base.embed)?.index_select(&ids, 0)?;
    if c.embed_scale() != 1.0 {
        x = (x * c.embed_scale())?;
    }
    let full = (
        rope_tables(t, c.head_dim, c.rope_base, c.rope_scale)?,
        causal_mask(t, None)?,
    );
    let sliding = match &c.sliding {
        Some(s) => Some((
            rope_tables(t, c.head_dim, s.rope_base, 1.0)?,
            causal_mask(t, Some(s.window))?,
        )),
        None => None,
    };
    let neox = c.arch == Arch::Gemma3;
    let scale = lora.config.scale();
    let mut project = |x: &Tensor, layer: usize, target: Target| -> Result<Tensor> {
        let (out, inp) = base.shape_of(target);
        let w = Tensor::from_slice(base.layers[layer].weight(c, target).0, (out, inp), &device)?;
        let y = frozen_linear(x, &w)?;
        match lora.find(layer, target).map(|i| &vars[i]) {
            None => Ok(y),
            Some((a, b)) => {
                let input = match dropout.as_mut() {
                    Some(d) => d.apply(x)?,
                    None => x.clone(),
                };
                let delta = input.matmul(&a.t()?)?.matmul(&b.t()?)?;
                Ok((y + (delta * scale)?)?)
            }
        }
    };
    for (l, layer) in base.layers.iter().enumerate() {
        let ((cos, sin), mask) = match &sliding {
            Some(s) if c.is_sliding(l) => (&s.0, &s.1),
            _ => (&full.0, &full.1),
        };
        let h = rms_norm(&x, &vector(&layer.attn_norm)?, c.rms_eps)?;
        let q = project(&h, l, Target::Q)?;
        let k = project(&h, l, Target::K)?;
        let v = project(&h, l, Target::V)?;
        let heads = |x: Tensor, n: usize, norm: Option<&Vec<f32>>| -> Result<Tensor> {
            let x = x.reshape((t, n, c.head_dim))?;
            let x = match norm {
                Some(w) => rms_norm(&x, &vector(w)?, c.rms_eps)?,
                None => x,
            };
            Ok(x.transpose(0, 1)?.contiguous()?)
        };
        let rotate = |x: &Tensor| {
            if neox {
                rope_neox(x, cos, sin)
            } else {
                rope(x, cos, sin)
            }
        };
        let q = rotate(&heads(q, c.n_head, layer.q_norm.as_ref())?)?;
        let k = rotate(&heads(k, c.n_head_kv, layer.k_norm.as_ref())?)?;
        let v = heads(v, c.n_head_kv, None)?;
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
        let scores = (q.matmul(&k.t()?)? * c.attention_scale())?.broadcast_add(mask)?;
        let attention = softmax(&scores)?.matmul(&v)?;
        let attention = attention
            .transpose(0, 1)?
            .reshape((t, c.n_head * c.head_dim))?;
        let mut out = project(&attention, l, Target::O)?;
        if let Some(w) = &layer.post_attn_norm {
            out = rms_norm(&out, &vector(w)?, c.rms_eps)?;
        }
        x = (x + out)?;
        let h = rms_norm(&x, &vector(&layer.ffn_norm)?, c.rms_eps)?;
        let gate = project(&h, l, Target::Gate)?;
        let gate = match c.arch {
            Arch::Llama => gate.silu()?,
            Arch::Gemma3 => gate.gelu()?,
        };
        let up = project(&h, l, Target::Up)?;
        let mut out = project(&(gate * up)?, l, Target::Down)?;
        if let Some(w) = &layer.post_ffn_norm {
            out = rms_norm(&out, &vector(w)?, c.rms_eps)?;
        }
        x = (x + out)?;
    }
    // Only the positions whose next token is taught reach the output projection.
    let positions: Vec<u32> = (0..t).filter(|&p| learn[p + 1]).map(|p| p as u32).collect();
    let targets: Vec<u32> = positions.iter().map(|&p| tokens[p as usize + 1]).collect();
    let x = rms_norm(&x, &vector(&base.out_norm)?, c.rms_eps)?;
    let x = x.index_select(&Tensor::new(positions.as_slice(), &device)?, 0)?;
    let logits = frozen_linear(&x, &matrix(base.output())?)?;
    let targets = Tensor::new(targets.as_slice(), &device)?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_z = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let log_p = shifted.broadcast_sub(&log_z)?;
    let picked = log_p.gather(&targets.unsqueeze(1)?, 1)?;
    let loss = picked.sum_all()?.neg()?;
    let store = (&loss * grad_scale)?.backward()?;
    let gradients = vars
        .iter()
        .map(|(a, b)| -> Result<(Vec<f32>, Vec<f32>)> {
            let grad = |v: &Var| -> Result<Vec<f32>> {
                Ok(match store.get(v.as_tensor()) {
                    Some(g) => g.flatten_all()?.to_vec1()?,
                    None => vec![0.0; v.elem_count()],
                })
            };
            Ok((grad(a)?, grad(b)?))
        })
        .collect::<Result<_>>()?;
    Ok(Reference {
        loss: loss.to_scalar::<f32>()? as f64,
        logprobs: picked.flatten_all()?.to_vec1()?,
        gradients,
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

/// 0 where query i (row) sees key j (column): j <= i, and within the `window` tokens up
/// to i when there is one (llama.cpp masks i - j >= window); a large negative number
/// elsewhere.
fn causal_mask(t: usize, window: Option<usize>) -> Result<Tensor> {
    let mask: Vec<f32> = (0..t * t)
        .map(|n| {
            let (i, j) = (n / t, n % t);
            if j > i || window.is_some_and(|w| i - j >= w) {
                -1e9
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(mask, (t, t), &Device::Cpu)?)
}

/// cos and sin of position x frequency, (t, head_dim / 2); positions times `scale`
/// (linear RoPE scaling).
fn rope_tables(t: usize, head_dim: usize, base: f32, scale: f32) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for p in 0..t {
        for i in 0..half {
            let freq = 1.0 / (base as f64).powf(2.0 * i as f64 / head_dim as f64);
            let angle = p as f64 * scale as f64 * freq;
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

/// RoPE on halves (x[i], x[i + d/2]) of (heads, t, head_dim): llama.cpp's NeoX mode.
fn rope_neox(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.dim(2)?;
    let first = x.narrow(2, 0, d / 2)?;
    let second = x.narrow(2, d / 2, d / 2)?;
    let a = (first.broadcast_mul(cos)? - second.broadcast_mul(sin)?)?;
    let b = (first.broadcast_mul(sin)? + second.broadcast_mul(cos)?)?;
    Ok(Tensor::cat(&[a, b], 2)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sliding_mask_sees_the_window_up_to_each_token() {
        let m: Vec<Vec<f32>> = causal_mask(4, Some(2)).unwrap().to_vec2().unwrap();
        let seen: Vec<Vec<bool>> = m
            .iter()
            .map(|r| r.iter().map(|&v| v == 0.0).collect())
            .collect();
        assert_eq!(
            seen,
            vec![
                vec![true, false, false, false],
                vec![true, true, false, false],
                vec![false, true, true, false],
                vec![false, false, true, true],
            ]
        );
        let full: Vec<Vec<f32>> = causal_mask(3, None).unwrap().to_vec2().unwrap();
        assert_eq!(full[2], vec![0.0, 0.0, 0.0]);
        assert!(full[0][1] < -1e8);
    }

    #[test]
    fn neox_rotation_turns_halves_and_keeps_the_norm() {
        let (cos, sin) = rope_tables(3, 4, 10_000.0, 1.0).unwrap();
        let x = Tensor::new(
            &[[[1f32, 2., 3., 4.], [1., 2., 3., 4.], [0.5, -1., 2., 0.]]],
            &Device::Cpu,
        )
        .unwrap();
        let y = rope_neox(&x, &cos, &sin).unwrap();
        let v: Vec<Vec<f32>> = y.squeeze(0).unwrap().to_vec2().unwrap();
        // Position 0 is not turned.
        assert_eq!(v[0], vec![1., 2., 3., 4.]);
        // Position 1, frequency 1 for the first pair (x0, x2): turned by one radian.
        let (c, s) = (1f32.cos(), 1f32.sin());
        assert!((v[1][0] - (c - 3. * s)).abs() < 1e-5);
        assert!((v[1][2] - (s + 3. * c)).abs() < 1e-5);
        for (a, b) in [[1f32, 2., 3., 4.], [0.5, -1., 2., 0.]]
            .iter()
            .zip([&v[1], &v[2]])
        {
            let n = |x: &[f32]| x.iter().map(|v| v * v).sum::<f32>();
            assert!((n(a) - n(b)).abs() < 1e-4);
        }
    }
}
