//! CPU kernels of the transformer encoders (aiaas-embed's BERT, aiaas-speech's Whisper),
//! as candle custom ops on contiguous `[rows, cols]` tensors:
//! the linear layer with prepacked weights (linear.rs, AVX-512), attention straight from the
//! fused QKV projection (attention.rs), and, in place on each projection's fresh output,
//! activation (plus bias on the non-AVX-512 path) and residual + LayerNorm (here).
//!
//! Why not candle's element-wise ops: each is a separate pass and allocation, broadcasting a
//! bias goes through a strided path, `gelu_erf` calls a scalar erf per element (the largest
//! single cost of a BERT layer on CPU after the matmuls), and `layer_norm` uses a one-pass
//! variance. These loops auto-vectorise (math.rs) and split rows over the current rayon pool.

mod attention;
mod dense;
mod linear;
pub mod math;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout};
use rayon::prelude::*;
use serde::Deserialize;

pub use attention::Attention;
pub use dense::Dense;
pub use linear::PackedLinear;

/// A feed-forward activation, named as in Hugging Face `config.json` (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Activation {
    /// Exact GELU, `x Φ(x)` with the error function (BERT's "gelu").
    #[serde(rename = "gelu")]
    Gelu,
    /// GELU's tanh approximation.
    #[serde(alias = "gelu_new", alias = "gelu_pytorch_tanh", rename = "gelu_fast")]
    GeluTanh,
    #[serde(rename = "relu")]
    Relu,
    /// No activation (only the bias is added).
    #[serde(skip)]
    Identity,
}

impl Activation {
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Gelu => 0.5 * x * (1.0 + math::erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Activation::GeluTanh => {
                const C: f32 = 0.797_884_6; // sqrt(2 / pi)
                0.5 * x * (1.0 + math::tanh(C * (x + 0.044_715 * x * x * x)))
            }
            Activation::Relu => x.max(0.0),
            Activation::Identity => x,
        }
    }
}

/// `x = act(x + bias)` in place, `x` being `[rows, cols]` (`bias`, when given, has `cols`
/// values).
pub struct BiasActivation<'a> {
    pub bias: Option<&'a [f32]>,
    pub cols: usize,
    pub act: Activation,
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let x = f32_rows_mut(storage, layout, self.cols, self.name())?;
        // One match per call, not per element: each arm is its own vectorised loop.
        match (self.act, self.bias) {
            (Activation::Gelu, bias) => {
                add_bias_then(x, self.cols, bias, |v| Activation::Gelu.apply(v))
            }
            (Activation::GeluTanh, bias) => {
                add_bias_then(x, self.cols, bias, |v| Activation::GeluTanh.apply(v))
            }
            (Activation::Relu, bias) => add_bias_then(x, self.cols, bias, |v| v.max(0.0)),
            (Activation::Identity, Some(bias)) => add_bias_then(x, self.cols, Some(bias), |v| v),
            (Activation::Identity, None) => {}
        }
        Ok(())
    }
}

fn add_bias_then(x: &mut [f32], cols: usize, bias: Option<&[f32]>, f: impl Fn(f32) -> f32 + Sync) {
    match bias {
        Some(bias) => for_each_row(x, cols, |row| {
            for (v, b) in row.iter_mut().zip(bias) {
                *v = f(*v + b);
            }
        }),
        None => for_each_row(x, cols, |row| row.iter_mut().for_each(|v| *v = f(*v))),
    }
}

/// `y = LayerNorm(y + residual) * gamma + beta` in place (post-LN BERT's "add & norm"),
/// `y` and `residual` being `[rows, gamma.len()]`.
pub struct ResidualNorm<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

impl InplaceOp2 for ResidualNorm<'_> {
    fn name(&self) -> &'static str {
        "residual-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let cols = self.gamma.len();
        let residual = f32_rows(s2, l2, cols, self.name())?;
        let y = f32_rows_mut(s1, l1, cols, self.name())?;
        if residual.len() != y.len() {
            candle_core::bail!(
                "{}: residual has {} values, input {}",
                self.name(),
                residual.len(),
                y.len()
            );
        }
        for_each_row_pair(y, residual, cols, |row, res| {
            for (v, r) in row.iter_mut().zip(res) {
                *v += r;
            }
            // Two passes (mean, then squared deviations): BERT activations have large
            // means, where E[x^2] - E[x]^2 loses digits.
            let mean = math::sum(row) / cols as f32;
            let var = math::sum_sq_dev(row, mean) / cols as f32;
            let inv_std = 1.0 / (var + self.eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(self.gamma).zip(self.beta) {
                *v = (*v - mean) * inv_std * g + b;
            }
        });
        Ok(())
    }
}

/// Below this many values per task, splitting over threads costs more than it saves.
const MIN_VALUES_PER_TASK: usize = 16 * 1024;

fn rows_per_task(rows: usize, cols: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let by_work = MIN_VALUES_PER_TASK.div_ceil(cols.max(1));
    let by_threads = rows.div_ceil(threads * 4);
    by_work.max(by_threads).max(1)
}

fn for_each_row(x: &mut [f32], cols: usize, f: impl Fn(&mut [f32]) + Sync) {
    let rows = x.len() / cols.max(1);
    x.par_chunks_mut(rows_per_task(rows, cols) * cols)
        .for_each(|block| block.chunks_exact_mut(cols).for_each(&f));
}

fn for_each_row_pair(
    y: &mut [f32],
    other: &[f32],
    cols: usize,
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) {
    let rows = y.len() / cols.max(1);
    let block = rows_per_task(rows, cols) * cols;
    y.par_chunks_mut(block)
        .zip(other.par_chunks(block))
        .for_each(|(ys, os)| {
            ys.chunks_exact_mut(cols)
                .zip(os.chunks_exact(cols))
                .for_each(|(y, o)| f(y, o))
        });
}

/// The contiguous f32 values of a `[rows, cols]` tensor.
fn f32_rows<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    cols: usize,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("{op}: expected f32, got {:?}", s.dtype())
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: input must be contiguous")
    };
    check_cols(l, cols, op)?;
    Ok(&data[start..end])
}

fn f32_rows_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    cols: usize,
    op: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let dtype = s.dtype();
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("{op}: expected f32, got {dtype:?}")
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: input must be contiguous")
    };
    check_cols(l, cols, op)?;
    Ok(&mut data[start..end])
}

fn check_cols(l: &Layout, cols: usize, op: &str) -> candle_core::Result<()> {
    match l.dims().last() {
        Some(&last) if last == cols => Ok(()),
        _ => candle_core::bail!("{op}: expected rows of {cols} values, shape {:?}", l.dims()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn bias_gelu_matches_reference() {
        let x = Tensor::new(&[[-3f32, -0.5, 0.0], [0.5, 1.0, 4.0]], &Device::Cpu).unwrap();
        let bias = [0.25f32, 0.0, -1.0];
        let op = BiasActivation {
            bias: Some(&bias),
            cols: 3,
            act: Activation::Gelu,
        };
        x.inplace_op1(&op).unwrap();
        let got: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let input = [-3f32, -0.5, 0.0, 0.5, 1.0, 4.0];
        for (i, (g, v)) in got.iter().zip(input).enumerate() {
            let v = (v + bias[i % 3]) as f64;
            let want = 0.5 * v * (1.0 + libm_erf(v / std::f64::consts::SQRT_2));
            assert!((*g as f64 - want).abs() < 1e-6, "{i}: {g} vs {want}");
        }
    }

    // erf(x) for the few points above via candle's f64 erf (an independent implementation).
    fn libm_erf(x: f64) -> f64 {
        candle_core::cpu::erf::erf_f64(x)
    }

    #[test]
    fn residual_norm_normalises_rows() {
        let y = Tensor::new(&[[1f32, 2., 3., 4.], [10., 10., 10., 50.]], &Device::Cpu).unwrap();
        let r = Tensor::new(&[[1f32, 0., -1., 0.], [0., 0., 0., 0.]], &Device::Cpu).unwrap();
        let (gamma, beta) = ([1f32, 1., 2., 1.], [0f32, 0., 0., 1.]);
        let op = ResidualNorm {
            gamma: &gamma,
            beta: &beta,
            eps: 1e-12,
        };
        y.inplace_op2(&r, &op).unwrap();
        let got: Vec<Vec<f32>> = y.to_vec2().unwrap();
        // Row 0 is [2, 2, 2, 4]: mean 2.5, std sqrt(0.75).
        let s = 0.75f32.sqrt();
        let want0 = [-0.5 / s, -0.5 / s, -1.0 / s, 1.5 / s + 1.0];
        for (g, w) in got[0].iter().zip(want0) {
            assert!((g - w).abs() < 1e-5, "{got:?}");
        }
        // Row 1: mean 20, std sqrt(300); the first three are -1/sqrt(3) times 1, 1, 2.
        assert!(
            (got[1].iter().take(3).sum::<f32>() + 4.0 / 3f32.sqrt()).abs() < 1e-4,
            "{got:?}"
        );
    }
}
