//! Multi-head self-attention straight from the fused QKV projection.
//!
//! Input `[batch * seq_len, 3 * hidden]` (rows `[q | k | v]`, each `heads * head_dim`), plus
//! an additive mask `[batch, seq_len]` (0 for a token, a large negative for padding); output
//! the context `[batch * seq_len, hidden]`, heads side by side, ready for the output
//! projection. Each (sequence, head) pair is one task on the current rayon pool; its two
//! products run as gemm calls on strided views of the input, so no head is ever copied out
//! or transposed.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::math;

/// Shapes of one attention call.
pub struct Attention {
    pub batch: usize,
    pub seq_len: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl CustomOp2 for Attention {
    fn name(&self) -> &'static str {
        "fused-qkv-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let hidden = self.heads * self.head_dim;
        let rows = self.batch * self.seq_len;
        let qkv = super::f32_rows(s1, l1, 3 * hidden, self.name())?;
        let mask = super::f32_rows(s2, l2, self.seq_len, self.name())?;
        if qkv.len() != rows * 3 * hidden || mask.len() != rows {
            candle_core::bail!(
                "{}: shapes {:?} and {:?} do not match batch {} x seq_len {}",
                self.name(),
                l1.dims(),
                l2.dims(),
                self.batch,
                self.seq_len
            );
        }
        let heads: Vec<Vec<f32>> = (0..self.batch * self.heads)
            .into_par_iter()
            .map(|task| {
                let (b, h) = (task / self.heads, task % self.heads);
                let mask = &mask[b * self.seq_len..(b + 1) * self.seq_len];
                self.one_head(qkv, mask, b, h)
            })
            .collect();
        let mut out = vec![0f32; rows * hidden];
        for (task, ctx) in heads.iter().enumerate() {
            let (b, h) = (task / self.heads, task % self.heads);
            let rows_out = out[b * self.seq_len * hidden..].chunks_exact_mut(hidden);
            for (dst, src) in rows_out.zip(ctx.chunks_exact(self.head_dim)) {
                dst[h * self.head_dim..(h + 1) * self.head_dim].copy_from_slice(src);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, hidden))))
    }
}

impl Attention {
    /// `softmax(q k^T / sqrt(d) + mask) v` for head `h` of sequence `b`: `[seq_len, head_dim]`.
    fn one_head(&self, qkv: &[f32], mask: &[f32], b: usize, h: usize) -> Vec<f32> {
        let (l, d) = (self.seq_len, self.head_dim);
        let row = 3 * self.heads * d; // stride between tokens in `qkv`
        let base = b * l * row + h * d;
        let q = &qkv[base..];
        let k = &qkv[base + self.heads * d..];
        let v = &qkv[base + 2 * self.heads * d..];
        // The last element each strided view reads, (l-1) rows down and d-1 across, is
        // inside its slice: the gemm calls below stay in bounds.
        debug_assert!(v.len() > (l - 1) * row + d - 1);
        let scale = 1.0 / (d as f32).sqrt();
        let mut scores = vec![0f32; l * l];
        // Safety: dst is l x l contiguous; q is (l x d) at row stride `row`; k^T is
        // (d x l), element (i, j) = k[j * row + i]; all inside their slices (see above).
        unsafe {
            gemm(
                l,
                l,
                d,
                scores.as_mut_ptr(),
                1,
                l as isize,
                false,
                q.as_ptr(),
                1,
                row as isize,
                k.as_ptr(),
                row as isize,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
        for s in scores.chunks_exact_mut(l) {
            softmax_masked(s, mask);
        }
        let mut ctx = vec![0f32; l * d];
        // Safety: dst is l x d contiguous; scores l x l contiguous; v is (l x d) at row
        // stride `row`, inside its slice (see above).
        unsafe {
            gemm(
                l,
                d,
                l,
                ctx.as_mut_ptr(),
                1,
                d as isize,
                false,
                scores.as_ptr(),
                1,
                l as isize,
                v.as_ptr(),
                1,
                row as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
        ctx
    }
}

/// In place: `s = softmax(s + mask)`.
fn softmax_masked(s: &mut [f32], mask: &[f32]) {
    for (x, m) in s.iter_mut().zip(mask) {
        *x += m;
    }
    let max = math::max(s);
    for x in s.iter_mut() {
        *x = math::exp(*x - max);
    }
    let inv = 1.0 / math::sum(s);
    for x in s.iter_mut() {
        *x *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Naive attention over the same layout, in f64.
    fn reference(qkv: &[f32], mask: &[f32], a: &Attention) -> Vec<f32> {
        let (l, d, nh) = (a.seq_len, a.head_dim, a.heads);
        let (hidden, row) = (nh * d, 3 * nh * d);
        let mut out = vec![0f32; a.batch * l * hidden];
        for b in 0..a.batch {
            for h in 0..nh {
                for i in 0..l {
                    let at = |t: usize, part: usize, e: usize| {
                        qkv[(b * l + t) * row + part * hidden + h * d + e] as f64
                    };
                    let logits: Vec<f64> = (0..l)
                        .map(|j| {
                            (0..d).map(|e| at(i, 0, e) * at(j, 1, e)).sum::<f64>()
                                / (d as f64).sqrt()
                                + mask[b * l + j] as f64
                        })
                        .collect();
                    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let w: Vec<f64> = logits.iter().map(|x| (x - max).exp()).collect();
                    let total: f64 = w.iter().sum();
                    for e in 0..d {
                        let c: f64 = (0..l).map(|j| w[j] / total * at(j, 2, e)).sum();
                        out[(b * l + i) * hidden + h * d + e] = c as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_naive_attention_with_padding() {
        let a = Attention {
            batch: 2,
            seq_len: 5,
            heads: 3,
            head_dim: 4,
        };
        let n = a.batch * a.seq_len * 3 * a.heads * a.head_dim;
        let qkv: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 97) as f32 / 97.0 - 0.5) * 3.0)
            .collect();
        let mut mask = vec![0f32; a.batch * a.seq_len];
        mask[8] = f32::MIN; // the second sequence has two padding positions
        mask[9] = f32::MIN;
        let dev = Device::Cpu;
        let t = Tensor::from_vec(
            qkv.clone(),
            (a.batch * a.seq_len, 3 * a.heads * a.head_dim),
            &dev,
        )
        .unwrap();
        let m = Tensor::from_vec(mask.clone(), (a.batch, a.seq_len), &dev).unwrap();
        let got: Vec<f32> = t
            .apply_op2_no_bwd(&m, &a)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = reference(&qkv, &mask, &a);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-5, "{i}: {g} vs {w}");
        }
    }
}
