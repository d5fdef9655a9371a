//! The decoder's forward pass with the adapter over one example (no padding), its loss
//! (the summed cross-entropy of the tokens the example teaches), and the backward pass
//! that gives the adapter's gradients: written out by hand on `gemm`.
//!
//! Why by hand: the base is frozen, so a training step needs the gradient of each
//! activation and of the adapter's small matrices only. A general autograd (candle's,
//! the first version of this crate) allocates a tensor per elementary operation and
//! runs each as its own pass; here each layer is a few matrix products on stacked
//! weights (query/key/value in one, gate/up in one) with the adapter's products written
//! into the same outputs, and the element-wise work (norms, RoPE, softmax, activation)
//! fused into single passes over buffers reused from step to step. A step of 210 tokens
//! of SmolLM2-135M (2 threads, every token taught) took 2.1 s on candle's autograd and
//! takes about 1.0 s here (crates/finetune/examples/step_time.rs); bench/finetune
//! compares the whole trainer with transformers + PEFT. The tests check the gradients against
//! candle's autograd on small random models of both families (reference.rs) and the
//! log-probabilities against llama.cpp serving the same GGUF (tests/).
//!
//! As llama.cpp runs a llama GGUF: RMS norm, RoPE on interleaved pairs (the converter
//! permuted the query and key rows for it), grouped-query attention with a causal mask,
//! SwiGLU feed-forward, tied or separate output projection. And as it runs a Gemma 3
//! (src/models/gemma3.cpp): embeddings times sqrt(width), each query and key head
//! RMS-normed, NeoX RoPE (halves, not pairs) with its own base on the sliding-window
//! layers, queries scaled by 1/sqrt(head size), the attention's and the feed-forward's
//! outputs RMS-normed before their residual adds, a GELU (tanh) gate. The converter
//! already folded Gemma's `1 + w` into the GGUF's norm weights.
//!
//! Each layer keeps what its backward pass needs (inputs of the norms and of the
//! adapter's products, the rotated queries and keys, the attention's output, the gate
//! and up projections); the attention's probabilities are recomputed per head in the
//! backward pass rather than kept, so memory grows with the tokens, not their square.

use std::cell::RefCell;

use aiaas_kernels::math;
use gemm::Parallelism;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use rayon::prelude::*;

use crate::base::{Arch, Base, BaseConfig, Layer, Matrix};
use crate::lora::{LoraWeights, Target};

/// What one example's forward pass gave.
pub(crate) struct Scored {
    /// Summed negative log-likelihood of the taught tokens.
    pub(crate) loss: f64,
    /// Each taught token's log-probability, in order.
    pub(crate) logprobs: Vec<f32>,
    pub(crate) tokens: usize,
    /// Taught tokens the model ranked first.
    pub(crate) correct: usize,
}

/// Dropout on the adapter's inputs, masks drawn from the trainer's generator, kept
/// values scaled by 1/(1-p). Each targeted projection draws its own mask, layer by
/// layer in `Target` order.
pub(crate) struct Dropout<'a, R: Rng> {
    pub(crate) p: f32,
    pub(crate) rng: &'a mut R,
}

/// The adapter's gradients, one `(dA, dB)` per pair of `LoraWeights::pairs`.
pub(crate) type Gradients = Vec<(Vec<f32>, Vec<f32>)>;

/// `n` dropout factors, 0 with probability `p` (to 1/65536) and 1/(1-p) otherwise. The
/// trainer's generator (ChaCha) seeds a xoshiro generator per mask, which gives four
/// draws from each 64-bit number: drawing each value from the trainer's generator made
/// the masks a tenth of a training step.
pub(crate) fn dropout_factors<R: Rng>(rng: &mut R, p: f32, n: usize, out: &mut Vec<f32>) {
    let mut fast = SmallRng::seed_from_u64(rng.random());
    let threshold = (p as f64 * 65536.0).round() as u64;
    let factor = 1.0 / (1.0 - p);
    resize(out, n);
    for chunk in out.chunks_mut(4) {
        let bits = fast.next_u64();
        for (i, f) in chunk.iter_mut().enumerate() {
            *f = if (bits >> (16 * i)) & 0xffff < threshold {
                0.0
            } else {
                factor
            };
        }
    }
}

pub(crate) fn zero_gradients(lora: &LoraWeights) -> Gradients {
    lora.pairs
        .iter()
        .map(|p| (vec![0.0; p.a.len()], vec![0.0; p.b.len()]))
        .collect()
}

/// Buffers kept between examples (a training run reuses them).
#[derive(Default)]
pub(crate) struct Workspace {
    layers: Vec<Saved>,
    x: Vec<f32>,
    dx: Vec<f32>,
    d_a: Vec<f32>,
    d_b: Vec<f32>,
    d_c: Vec<f32>,
    d_wide: Vec<f32>,
    d_u: Vec<f32>,
    dropped: Vec<f32>,
    tmp: Vec<f32>,
    rope_full: (Vec<f32>, Vec<f32>),
    rope_sliding: (Vec<f32>, Vec<f32>),
}

/// One layer's activations, as its backward pass needs them.
#[derive(Default)]
struct Saved {
    /// The layer's input (the residual stream), `t x d`.
    x: Vec<f32>,
    rstd1: Vec<f32>,
    /// RMS-normed input of the attention, `t x d`.
    h1: Vec<f32>,
    /// `[q | k | v]` as projected (before the head norms and RoPE), `t x (q + 2 kv)`.
    qkv: Vec<f32>,
    /// Gemma: the head norms' reciprocal RMS, `t x heads` and `t x kv heads`.
    rstd_q: Vec<f32>,
    rstd_k: Vec<f32>,
    /// Queries and keys as the attention uses them (normed, rotated).
    q: Vec<f32>,
    k: Vec<f32>,
    /// The attention's output, heads side by side, `t x q`.
    attn: Vec<f32>,
    /// The output projection's result (before the post-norm, Gemma), `t x d`.
    o: Vec<f32>,
    rstd_o: Vec<f32>,
    /// The residual stream after the attention, `t x d`.
    mid: Vec<f32>,
    rstd2: Vec<f32>,
    h2: Vec<f32>,
    /// `[gate | up]`, `t x 2ff`.
    gu: Vec<f32>,
    /// activation(gate) * up, `t x ff`.
    act: Vec<f32>,
    /// The down projection's result (before the post-norm, Gemma), `t x d`.
    down: Vec<f32>,
    rstd_d: Vec<f32>,
    /// Per target: the adapter's `x A^T` (`t x r`) and dropout factors (`t x in`, empty
    /// without dropout).
    u: [Vec<f32>; 7],
    keep: [Vec<f32>; 7],
    rstd_out: Vec<f32>,
}

/// A strided read-only matrix view: element (i, j) at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// Row-major with `cols` values a row.
    fn rows(data: &'a [f32], cols: usize) -> View<'a> {
        View {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` values a row.
    fn transposed(data: &'a [f32], cols: usize) -> View<'a> {
        View {
            data,
            rs: 1,
            cs: cols,
        }
    }

    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (m x n, rows `dst_rs` apart) = [dst +] alpha * a (m x k) * b (k x n)`.
#[allow(clippy::too_many_arguments)]
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: View,
    b: View,
    alpha: f32,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst_rs >= n && (m - 1) * dst_rs + n <= dst.len(),
        "matmul: dst"
    );
    assert!(a.covers(m, k) && b.covers(k, n), "matmul: operands");
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if parallel {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // Safety: every element read or written lies inside its slice (asserted above: the
    // last row and column of each strided view are in bounds, strides are non-negative),
    // and `dst` is borrowed mutably, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        )
    }
}

fn resize(v: &mut Vec<f32>, n: usize) {
    v.resize(n, 0.0);
}

/// Row-wise RMS norm times `w`: `y = x / rms(x) * w`, keeping each row's 1/rms.
fn rms_norm(x: &[f32], w: &[f32], eps: f64, y: &mut Vec<f32>, rstd: &mut Vec<f32>) {
    let n = w.len();
    resize(y, x.len());
    resize(rstd, x.len() / n);
    for ((x, y), r) in x
        .chunks_exact(n)
        .zip(y.chunks_exact_mut(n))
        .zip(rstd.iter_mut())
    {
        let mean = math::dot(x, x) as f64 / n as f64;
        *r = (1.0 / (mean + eps).sqrt()) as f32;
        for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
            *y = x * *r * w;
        }
    }
}

/// The RMS norm's backward pass: `dx [+]= r (w dy) - x r^3 sum(w dy x) / n` per row.
fn rms_norm_backward(x: &[f32], rstd: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32], add: bool) {
    let n = w.len();
    for (((x, dy), dx), &r) in x
        .chunks_exact(n)
        .zip(dy.chunks_exact(n))
        .zip(dx.chunks_exact_mut(n))
        .zip(rstd)
    {
        let mut dot = 0f32;
        for ((x, dy), w) in x.iter().zip(dy).zip(w) {
            dot += x * dy * w;
        }
        let c = r * r * r * dot / n as f32;
        for (((dx, x), dy), w) in dx.iter_mut().zip(x).zip(dy).zip(w) {
            let g = r * w * dy - x * c;
            if add {
                *dx += g;
            } else {
                *dx = g;
            }
        }
    }
}

/// cos and sin of position x frequency, `t x head_dim / 2`; positions times `scale`
/// (linear RoPE scaling).
fn rope_tables(t: usize, head_dim: usize, base: f32, scale: f32, out: &mut (Vec<f32>, Vec<f32>)) {
    let half = head_dim / 2;
    out.0.clear();
    out.1.clear();
    for p in 0..t {
        for i in 0..half {
            let freq = 1.0 / (base as f64).powf(2.0 * i as f64 / head_dim as f64);
            let angle = p as f64 * scale as f64 * freq;
            out.0.push(angle.cos() as f32);
            out.1.push(angle.sin() as f32);
        }
    }
}

/// Rotates `heads` heads of each row of `x` (rows `rs` apart, heads from column 0):
/// interleaved pairs (x[2i], x[2i+1]), or halves (x[i], x[i + d/2]) for NeoX; by the
/// negative angle for the backward pass.
fn rope(
    x: &mut [f32],
    rs: usize,
    heads: usize,
    d: usize,
    tables: &(Vec<f32>, Vec<f32>),
    neox: bool,
    inverse: bool,
) {
    let half = d / 2;
    let sign = if inverse { -1.0 } else { 1.0 };
    for (p, row) in x.chunks_mut(rs).enumerate() {
        let (cos, sin) = (
            &tables.0[p * half..(p + 1) * half],
            &tables.1[p * half..(p + 1) * half],
        );
        for h in 0..heads {
            let head = &mut row[h * d..(h + 1) * d];
            for i in 0..half {
                let (a, b) = if neox {
                    (i, i + half)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let (c, s) = (cos[i], sign * sin[i]);
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
        }
    }
}

/// The first key position query `i` sees (keys `first..=i`).
fn first_key(i: usize, window: Option<usize>) -> usize {
    match window {
        Some(w) => (i + 1).saturating_sub(w),
        None => 0,
    }
}

thread_local! {
    /// A head's scores or probabilities, and their gradient, `t x t` each.
    static SCORES: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The attention's shapes for one layer.
#[derive(Clone, Copy)]
struct Heads {
    t: usize,
    n: usize,
    n_kv: usize,
    d: usize,
    scale: f32,
    window: Option<usize>,
}

/// Queries per block of the attention: a block's scores cover the keys its queries see
/// (up to its last query; from the window's start), so a causal mask costs no products.
const QUERY_BLOCK: usize = 32;

impl Heads {
    /// The blocks of queries, `(first, end)`, and the first key each block sees.
    fn blocks(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        (0..self.t).step_by(QUERY_BLOCK).map(|i0| {
            (
                i0,
                (i0 + QUERY_BLOCK).min(self.t),
                first_key(i0, self.window),
            )
        })
    }

    /// Head `h`'s attention probabilities for queries `i0..i1` over keys `k0..i1`:
    /// `softmax(scale q k^T)` within each query's causal window, zero outside it, into `p`
    /// (`(i1 - i0) x (i1 - k0)`).
    fn probabilities(
        &self,
        q: &[f32],
        k: &[f32],
        h: usize,
        (i0, i1, k0): (usize, usize, usize),
        p: &mut Vec<f32>,
    ) {
        let d = self.d;
        let g = h / (self.n / self.n_kv);
        let w = i1 - k0;
        resize(p, (i1 - i0) * w);
        matmul(
            (i1 - i0, w, d),
            p,
            w,
            false,
            View::rows(&q[i0 * self.n * d + h * d..], self.n * d),
            View::transposed(&k[k0 * self.n_kv * d + g * d..], self.n_kv * d),
            self.scale,
            false,
        );
        for (r, row) in p.chunks_exact_mut(w).enumerate() {
            let i = i0 + r;
            let (first, last) = (first_key(i, self.window) - k0, i - k0);
            let seen = &mut row[first..=last];
            let max = math::max(seen);
            for v in seen.iter_mut() {
                *v = math::exp(*v - max);
            }
            let inv = 1.0 / math::sum(seen);
            for v in seen.iter_mut() {
                *v *= inv;
            }
            row[..first].fill(0.0);
            row[last + 1..].fill(0.0);
        }
    }

    /// Every head's `p v`, heads side by side into `out` (`t x n d`); `v` rows of values
    /// `v.rs` apart, head `g` from column `g d`.
    fn forward(&self, q: &[f32], k: &[f32], v: View, out: &mut Vec<f32>) {
        let (t, d) = (self.t, self.d);
        let heads: Vec<Vec<f32>> = (0..self.n)
            .into_par_iter()
            .map(|h| {
                let g = h / (self.n / self.n_kv);
                let mut o = vec![0f32; t * d];
                SCORES.with_borrow_mut(|(p, _)| {
                    for block in self.blocks() {
                        let (i0, i1, k0) = block;
                        self.probabilities(q, k, h, block, p);
                        let v = View {
                            data: &v.data[k0 * v.rs + g * d..],
                            ..v
                        };
                        matmul(
                            (i1 - i0, d, i1 - k0),
                            &mut o[i0 * d..],
                            d,
                            false,
                            View::rows(p, i1 - k0),
                            v,
                            1.0,
                            false,
                        );
                    }
                });
                o
            })
            .collect();
        resize(out, t * self.n * d);
        scatter(&heads, out, self.n * d, d);
    }

    /// The gradients of the queries, keys and values from the output's (`d_out`, `t x n
    /// d`), written into `dqkv` (`t x (n + 2 n_kv) d`, rows `[dq | dk | dv]`).
    fn backward(
        &self,
        q: &[f32],
        k: &[f32],
        v: View,
        out: &[f32],
        d_out: &[f32],
        dqkv: &mut [f32],
    ) {
        let (t, d) = (self.t, self.d);
        let width = self.n * d;
        let kd = self.n_kv * d;
        let parts: Vec<[Vec<f32>; 3]> = (0..self.n)
            .into_par_iter()
            .map(|h| {
                let g = h / (self.n / self.n_kv);
                let mut dq = vec![0f32; t * d];
                let mut dk = vec![0f32; t * d];
                let mut dv = vec![0f32; t * d];
                SCORES.with_borrow_mut(|(p, ds)| {
                    for block in self.blocks() {
                        let (i0, i1, k0) = block;
                        let (rows, w) = (i1 - i0, i1 - k0);
                        self.probabilities(q, k, h, block, p);
                        let d_o = View::rows(&d_out[i0 * width + h * d..], width);
                        // dP = dO V^T; dS = P (dP - rowsum(dO o)) scale (zero where P is).
                        let v_t = View {
                            data: &v.data[k0 * v.rs + g * d..],
                            rs: v.cs,
                            cs: v.rs,
                        };
                        resize(ds, rows * w);
                        matmul((rows, w, d), ds, w, false, d_o, v_t, 1.0, false);
                        for (r, (p_row, ds_row)) in
                            p.chunks_exact(w).zip(ds.chunks_exact_mut(w)).enumerate()
                        {
                            let at = (i0 + r) * width + h * d;
                            let delta = math::dot(&out[at..at + d], &d_out[at..at + d]);
                            for (ds, &p) in ds_row.iter_mut().zip(p_row) {
                                *ds = p * (*ds - delta) * self.scale;
                            }
                        }
                        let q_h = View::rows(&q[i0 * width + h * d..], width);
                        let k_g = View::rows(&k[k0 * kd + g * d..], kd);
                        matmul(
                            (rows, d, w),
                            &mut dq[i0 * d..],
                            d,
                            false,
                            View::rows(ds, w),
                            k_g,
                            1.0,
                            false,
                        );
                        matmul(
                            (w, d, rows),
                            &mut dk[k0 * d..],
                            d,
                            true,
                            View::transposed(ds, w),
                            q_h,
                            1.0,
                            false,
                        );
                        matmul(
                            (w, d, rows),
                            &mut dv[k0 * d..],
                            d,
                            true,
                            View::transposed(p, w),
                            d_o,
                            1.0,
                            false,
                        );
                    }
                });
                [dq, dk, dv]
            })
            .collect();
        let row = (self.n + 2 * self.n_kv) * d;
        let per_group = self.n / self.n_kv;
        for (h, [dq, dk, dv]) in parts.iter().enumerate() {
            let g = h / per_group;
            // The first head of a group writes its keys' and values' gradients, the
            // others add theirs.
            let first = h % per_group == 0;
            let (kcol, vcol) = (width + g * d, width + self.n_kv * d + g * d);
            for (p, dst) in dqkv.chunks_exact_mut(row).enumerate() {
                let src = p * d..(p + 1) * d;
                dst[h * d..(h + 1) * d].copy_from_slice(&dq[src.clone()]);
                for (col, part) in [(kcol, dk), (vcol, dv)] {
                    let (dst, src) = (&mut dst[col..col + d], &part[src.clone()]);
                    if first {
                        dst.copy_from_slice(src);
                    } else {
                        add(dst, src);
                    }
                }
            }
        }
    }
}

/// Copies part `h` (`t x d`) into columns `h d..(h + 1) d` of `out` (rows `rs` apart).
fn scatter(parts: &[Vec<f32>], out: &mut [f32], rs: usize, d: usize) {
    for (h, part) in parts.iter().enumerate() {
        let c = h * d;
        for (dst, src) in out.chunks_exact_mut(rs).zip(part.chunks_exact(d)) {
            dst[c..c + d].copy_from_slice(src);
        }
    }
}

/// SiLU and its derivative.
#[inline(always)]
fn silu(g: f32) -> (f32, f32) {
    let s = 1.0 / (1.0 + math::exp(-g));
    (g * s, s * (1.0 + g * (1.0 - s)))
}

/// GELU's tanh form and its derivative.
#[inline(always)]
fn gelu_tanh(g: f32) -> (f32, f32) {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    let th = math::tanh(C * (g + 0.044_715 * g * g * g));
    let f = 0.5 * g * (1.0 + th);
    let df = 0.5 * (1.0 + th) + 0.5 * g * (1.0 - th * th) * C * (1.0 + 3.0 * 0.044_715 * g * g);
    (f, df)
}

/// `act = f(gate) * up` row by row (`gu` rows are `[gate | up]`), f the family's gate
/// activation: SiLU (llama) or GELU's tanh form (Gemma).
fn gated(arch: Arch, gu: &[f32], act: &mut [f32], ff: usize) {
    fn rows(gu: &[f32], act: &mut [f32], ff: usize, f: impl Fn(f32) -> (f32, f32) + Sync) {
        act.par_chunks_mut(ff * ROWS_PER_TASK)
            .zip(gu.par_chunks(2 * ff * ROWS_PER_TASK))
            .for_each(|(act, gu)| {
                for (a, gu) in act.chunks_exact_mut(ff).zip(gu.chunks_exact(2 * ff)) {
                    let (g, u) = gu.split_at(ff);
                    for i in 0..ff {
                        a[i] = f(g[i]).0 * u[i];
                    }
                }
            });
    }
    match arch {
        Arch::Llama => rows(gu, act, ff, silu),
        Arch::Gemma3 => rows(gu, act, ff, gelu_tanh),
    }
}

/// The gradients of `[gate | up]` (`d_gu`) from that of `f(gate) * up` (`d_act`).
fn gated_backward(arch: Arch, gu: &[f32], d_act: &[f32], d_gu: &mut [f32], ff: usize) {
    fn rows(
        gu: &[f32],
        d_act: &[f32],
        d_gu: &mut [f32],
        ff: usize,
        f: impl Fn(f32) -> (f32, f32) + Sync,
    ) {
        d_gu.par_chunks_mut(2 * ff * ROWS_PER_TASK)
            .zip(gu.par_chunks(2 * ff * ROWS_PER_TASK))
            .zip(d_act.par_chunks(ff * ROWS_PER_TASK))
            .for_each(|((d_gu, gu), d_act)| {
                for ((d_gu, gu), da) in d_gu
                    .chunks_exact_mut(2 * ff)
                    .zip(gu.chunks_exact(2 * ff))
                    .zip(d_act.chunks_exact(ff))
                {
                    let (dg, du) = d_gu.split_at_mut(ff);
                    let (g, u) = gu.split_at(ff);
                    let (dg, du, g, u, da) =
                        (&mut dg[..ff], &mut du[..ff], &g[..ff], &u[..ff], &da[..ff]);
                    for i in 0..ff {
                        let (f, df) = f(g[i]);
                        dg[i] = da[i] * u[i] * df;
                        du[i] = da[i] * f;
                    }
                }
            });
    }
    match arch {
        Arch::Llama => rows(gu, d_act, d_gu, ff, silu),
        Arch::Gemma3 => rows(gu, d_act, d_gu, ff, gelu_tanh),
    }
}

/// Rows of work for the element-wise passes over `t x ff` buffers, per rayon task.
const ROWS_PER_TASK: usize = 16;

/// The adapter's input for one projection: which saved buffer, and its width.
fn lora_input(s: &Saved, target: Target) -> &[f32] {
    match target {
        Target::Q | Target::K | Target::V => &s.h1,
        Target::O => &s.attn,
        Target::Gate | Target::Up => &s.h2,
        Target::Down => &s.act,
    }
}

/// The loss of one example: `tokens` (at least two), `learn[i]` whether token i is taught
/// (predicted from the tokens before it). `dropout` only while training; with
/// `backward` = (gradients, scale), adds the gradients of `scale * loss` to them.
pub(crate) fn score<R: Rng>(
    base: &Base,
    lora: &LoraWeights,
    tokens: &[u32],
    learn: &[bool],
    mut dropout: Option<Dropout<'_, R>>,
    backward: Option<(&mut Gradients, f32)>,
    ws: &mut Workspace,
) -> Scored {
    let c = &base.config;
    let t = tokens.len() - 1;
    let (dm, ff) = (c.n_embd, c.n_ff);
    let (qd, kd) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
    let qkv_w = qd + 2 * kd;
    let training = backward.is_some();
    let scale = lora.config.scale() as f32;
    let rank = lora.config.rank;
    let neox = c.arch == Arch::Gemma3;

    // Only the positions whose next token is taught reach the output projection.
    let positions: Vec<usize> = (0..t).filter(|&p| learn[p + 1]).collect();
    if positions.is_empty() {
        return Scored {
            loss: 0.0,
            logprobs: Vec::new(),
            tokens: 0,
            correct: 0,
        };
    }

    let Workspace {
        layers,
        x,
        dx,
        d_a,
        d_b,
        d_c,
        d_wide,
        d_u,
        dropped,
        tmp,
        rope_full,
        rope_sliding,
    } = ws;
    rope_tables(t, c.head_dim, c.rope_base, c.rope_scale, rope_full);
    if let Some(s) = &c.sliding {
        rope_tables(t, c.head_dim, s.rope_base, 1.0, rope_sliding);
    }
    let kept = if training { c.n_layer } else { 1 };
    if layers.len() < kept {
        layers.resize_with(kept, Saved::default);
    }

    // Embeddings.
    resize(x, t * dm);
    let embed_scale = c.embed_scale() as f32;
    for (row, &id) in x.chunks_exact_mut(dm).zip(tokens) {
        let id = id as usize;
        row.copy_from_slice(&base.embed.data[id * dm..(id + 1) * dm]);
        if embed_scale != 1.0 {
            row.iter_mut().for_each(|v| *v *= embed_scale);
        }
    }

    for (l, layer) in base.layers.iter().enumerate() {
        let s = &mut layers[if training { l } else { 0 }];
        let heads = heads_of(c, l, t);
        let tables = if c.is_sliding(l) {
            &*rope_sliding
        } else {
            &*rope_full
        };
        s.x.clone_from(x);
        rms_norm(&s.x, &layer.attn_norm, c.rms_eps, &mut s.h1, &mut s.rstd1);
        frozen(layer, 0, &layer.qkv, &s.h1, t, &mut s.qkv);
        for target in [Target::Q, Target::K, Target::V] {
            lora_forward(
                lora,
                layer,
                c,
                l,
                target,
                t,
                s,
                &mut dropout,
                SavedOut::Qkv,
                scale,
                rank,
                dropped,
            );
        }
        // Queries and keys: head norms (Gemma), then RoPE.
        resize(&mut s.q, t * qd);
        resize(&mut s.k, t * kd);
        for ((row, q), k) in s
            .qkv
            .chunks_exact(qkv_w)
            .zip(s.q.chunks_exact_mut(qd))
            .zip(s.k.chunks_exact_mut(kd))
        {
            q.copy_from_slice(&row[..qd]);
            k.copy_from_slice(&row[qd..qd + kd]);
        }
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            let q = s.q.clone();
            rms_norm(&q, qn, c.rms_eps, &mut s.q, &mut s.rstd_q);
            let k = s.k.clone();
            rms_norm(&k, kn, c.rms_eps, &mut s.k, &mut s.rstd_k);
        }
        rope(&mut s.q, qd, c.n_head, c.head_dim, tables, neox, false);
        rope(&mut s.k, kd, c.n_head_kv, c.head_dim, tables, neox, false);
        let v = View::rows(&s.qkv[qd + kd..], qkv_w);
        heads.forward(&s.q, &s.k, v, &mut s.attn);
        // Output projection, post-norm (Gemma), residual.
        frozen(layer, 1, &layer.o, &s.attn, t, &mut s.o);
        lora_forward(
            lora,
            layer,
            c,
            l,
            Target::O,
            t,
            s,
            &mut dropout,
            SavedOut::O,
            scale,
            rank,
            dropped,
        );
        match &layer.post_attn_norm {
            Some(w) => {
                rms_norm(&s.o, w, c.rms_eps, tmp, &mut s.rstd_o);
                add(x, tmp);
            }
            None => add(x, &s.o),
        }
        s.mid.clone_from(x);
        rms_norm(&s.mid, &layer.ffn_norm, c.rms_eps, &mut s.h2, &mut s.rstd2);
        frozen(layer, 2, &layer.gate_up, &s.h2, t, &mut s.gu);
        for target in [Target::Gate, Target::Up] {
            lora_forward(
                lora,
                layer,
                c,
                l,
                target,
                t,
                s,
                &mut dropout,
                SavedOut::GateUp,
                scale,
                rank,
                dropped,
            );
        }
        resize(&mut s.act, t * ff);
        gated(c.arch, &s.gu, &mut s.act, ff);
        frozen(layer, 3, &layer.down, &s.act, t, &mut s.down);
        lora_forward(
            lora,
            layer,
            c,
            l,
            Target::Down,
            t,
            s,
            &mut dropout,
            SavedOut::Down,
            scale,
            rank,
            dropped,
        );
        match &layer.post_ffn_norm {
            Some(w) => {
                rms_norm(&s.down, w, c.rms_eps, tmp, &mut s.rstd_d);
                add(x, tmp);
            }
            None => add(x, &s.down),
        }
    }

    // The output norm and projection, in blocks of taught positions.
    let last = &mut layers[0];
    let mut normed = Vec::new();
    rms_norm(
        x,
        &base.out_norm,
        c.rms_eps,
        &mut normed,
        &mut last.rstd_out,
    );
    let output = base.output();
    let vocab = output.rows;
    let block = (BLOCK_LOGITS / vocab).clamp(1, 256);
    let mut selected = vec![0f32; positions.len() * dm];
    for (dst, &p) in selected.chunks_exact_mut(dm).zip(&positions) {
        dst.copy_from_slice(&normed[p * dm..(p + 1) * dm]);
    }
    let (mut loss, mut correct) = (0f64, 0usize);
    let mut logprobs = Vec::with_capacity(positions.len());
    let mut d_selected = if training {
        vec![0f32; selected.len()]
    } else {
        Vec::new()
    };
    let grad_scale = backward.as_ref().map_or(0.0, |b| b.1);
    let mut logits = Vec::new();
    for (b, rows) in positions.chunks(block).enumerate() {
        let n = rows.len();
        let first = b * block;
        resize(&mut logits, n * vocab);
        matmul(
            (n, vocab, dm),
            &mut logits,
            vocab,
            false,
            View::rows(&selected[first * dm..], dm),
            View::transposed(&output.data, dm),
            1.0,
            true,
        );
        let results: Vec<(f32, bool)> = logits
            .par_chunks_mut(vocab)
            .zip(rows.par_iter())
            .map(|(row, &p)| {
                let target = tokens[p + 1] as usize;
                let max = math::max(row);
                let picked = row[target];
                // The first maximum, as argmax picks it.
                let top = row.iter().position(|&v| v == max).unwrap_or(0);
                for v in row.iter_mut() {
                    *v = math::exp(*v - max);
                }
                let sum = math::sum(row);
                let log_z = max + sum.ln();
                if training {
                    // d loss / d logit = softmax - one-hot.
                    let inv = grad_scale / sum;
                    row.iter_mut().for_each(|v| *v *= inv);
                    row[target] -= grad_scale;
                }
                (picked - log_z, top == target)
            })
            .collect();
        for (lp, hit) in results {
            loss -= lp as f64;
            logprobs.push(lp);
            correct += hit as usize;
        }
        if training {
            matmul(
                (n, dm, vocab),
                &mut d_selected[first * dm..],
                dm,
                false,
                View::rows(&logits, vocab),
                View::rows(&output.data, dm),
                1.0,
                true,
            );
        }
    }
    let scored = Scored {
        loss,
        logprobs,
        tokens: positions.len(),
        correct,
    };
    let Some((grads, _)) = backward else {
        return scored;
    };

    // Backward: dx is the loss's gradient with respect to the residual stream.
    let mut d_normed = vec![0f32; t * dm];
    for (src, &p) in d_selected.chunks_exact(dm).zip(&positions) {
        d_normed[p * dm..(p + 1) * dm].copy_from_slice(src);
    }
    resize(dx, t * dm);
    rms_norm_backward(x, &layers[0].rstd_out, &base.out_norm, &d_normed, dx, false);
    for (l, layer) in base.layers.iter().enumerate().rev() {
        let s = &layers[l];
        let heads = heads_of(c, l, t);
        let tables = if c.is_sliding(l) {
            &*rope_sliding
        } else {
            &*rope_full
        };
        // Feed-forward: dx reaches the down projection (through its post-norm, Gemma).
        let d_down: &[f32] = match &layer.post_ffn_norm {
            Some(w) => {
                resize(d_a, t * dm);
                rms_norm_backward(&s.down, &s.rstd_d, w, dx, d_a, false);
                d_a
            }
            None => dx,
        };
        resize(d_wide, t * 2 * ff);
        let d_act: &mut Vec<f32> = d_b;
        resize(d_act, t * ff);
        matmul(
            (t, ff, dm),
            d_act,
            ff,
            false,
            View::rows(d_down, dm),
            View::rows(&layer.down.data, ff),
            1.0,
            true,
        );
        lora_backward(
            lora,
            grads,
            l,
            Target::Down,
            s,
            d_down,
            dm,
            0,
            d_act,
            scale,
            d_u,
            dropped,
        );
        gated_backward(c.arch, &s.gu, d_act, d_wide, ff);
        let dh2: &mut Vec<f32> = d_c;
        resize(dh2, t * dm);
        matmul(
            (t, dm, 2 * ff),
            dh2,
            dm,
            false,
            View::rows(d_wide, 2 * ff),
            View::rows(&layer.gate_up.data, dm),
            1.0,
            true,
        );
        lora_backward(
            lora,
            grads,
            l,
            Target::Gate,
            s,
            d_wide,
            2 * ff,
            0,
            dh2,
            scale,
            d_u,
            dropped,
        );
        lora_backward(
            lora,
            grads,
            l,
            Target::Up,
            s,
            d_wide,
            2 * ff,
            ff,
            dh2,
            scale,
            d_u,
            dropped,
        );
        rms_norm_backward(&s.mid, &s.rstd2, &layer.ffn_norm, dh2, dx, true);

        // Attention.
        let d_o: &[f32] = match &layer.post_attn_norm {
            Some(w) => {
                resize(d_a, t * dm);
                rms_norm_backward(&s.o, &s.rstd_o, w, dx, d_a, false);
                d_a
            }
            None => dx,
        };
        let d_attn: &mut Vec<f32> = d_b;
        resize(d_attn, t * qd);
        matmul(
            (t, qd, dm),
            d_attn,
            qd,
            false,
            View::rows(d_o, dm),
            View::rows(&layer.o.data, qd),
            1.0,
            true,
        );
        lora_backward(
            lora,
            grads,
            l,
            Target::O,
            s,
            d_o,
            dm,
            0,
            d_attn,
            scale,
            d_u,
            dropped,
        );
        resize(d_wide, t * qkv_w);
        let v = View::rows(&s.qkv[qd + kd..], qkv_w);
        heads.backward(&s.q, &s.k, v, &s.attn, d_attn, d_wide);
        rope(d_wide, qkv_w, c.n_head, c.head_dim, tables, neox, true);
        rope(
            &mut d_wide[qd..],
            qkv_w,
            c.n_head_kv,
            c.head_dim,
            tables,
            neox,
            true,
        );
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            // The head norms' backward pass, on each head of each row in place.
            let d = c.head_dim;
            for (p, row) in d_wide.chunks_exact_mut(qkv_w).enumerate() {
                let pre = &s.qkv[p * qkv_w..(p + 1) * qkv_w];
                for (h, w, rstd, from) in [
                    (c.n_head, qn, &s.rstd_q, 0),
                    (c.n_head_kv, kn, &s.rstd_k, qd),
                ] {
                    for i in 0..h {
                        let cols = from + i * d..from + (i + 1) * d;
                        let dy = row[cols.clone()].to_vec();
                        rms_norm_backward(
                            &pre[cols.clone()],
                            &rstd[p * h + i..p * h + i + 1],
                            w,
                            &dy,
                            &mut row[cols],
                            false,
                        );
                    }
                }
            }
        }
        let dh1: &mut Vec<f32> = d_c;
        resize(dh1, t * dm);
        matmul(
            (t, dm, qkv_w),
            dh1,
            dm,
            false,
            View::rows(d_wide, qkv_w),
            View::rows(&layer.qkv.data, dm),
            1.0,
            true,
        );
        for target in [Target::Q, Target::K, Target::V] {
            let col = layer.weight(c, target).1;
            lora_backward(
                lora, grads, l, target, s, d_wide, qkv_w, col, dh1, scale, d_u, dropped,
            );
        }
        rms_norm_backward(&s.x, &s.rstd1, &layer.attn_norm, dh1, dx, true);
    }
    scored
}

/// Logits computed at once: blocks of taught positions of at most this many values.
const BLOCK_LOGITS: usize = 1 << 23;

/// `out = x W^T` for a frozen projection (`which` indexes `Layer::packed`).
fn frozen(layer: &Layer, which: usize, w: &Matrix, x: &[f32], t: usize, out: &mut Vec<f32>) {
    resize(out, t * w.rows);
    match &layer.packed {
        Some(packed) => packed[which].matmul_into(x, t, out, w.rows),
        None => matmul(
            (t, w.rows, w.cols),
            out,
            w.rows,
            false,
            View::rows(x, w.cols),
            View::transposed(&w.data, w.cols),
            1.0,
            true,
        ),
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn heads_of(c: &BaseConfig, l: usize, t: usize) -> Heads {
    Heads {
        t,
        n: c.n_head,
        n_kv: c.n_head_kv,
        d: c.head_dim,
        scale: c.attention_scale() as f32,
        window: c
            .sliding
            .as_ref()
            .filter(|_| c.is_sliding(l))
            .map(|s| s.window),
    }
}

/// Where a projection's output is saved.
#[derive(Clone, Copy)]
enum SavedOut {
    Qkv,
    O,
    GateUp,
    Down,
}

/// Adds the adapter's `scale (x' A^T) B^T` to a projection's output, `x'` its input
/// after dropout; saves `x' A^T` and the dropout factors for the backward pass.
#[allow(clippy::too_many_arguments)]
fn lora_forward<R: Rng>(
    lora: &LoraWeights,
    layer: &Layer,
    c: &BaseConfig,
    l: usize,
    target: Target,
    t: usize,
    s: &mut Saved,
    dropout: &mut Option<Dropout<'_, R>>,
    dst: SavedOut,
    scale: f32,
    rank: usize,
    dropped: &mut Vec<f32>,
) {
    let Some(i) = lora.find(l, target) else {
        return;
    };
    let pair = &lora.pairs[i];
    let col = layer.weight(c, target).1;
    let mut keep = std::mem::take(&mut s.keep[target as usize]);
    let mut u = std::mem::take(&mut s.u[target as usize]);
    let input = lora_input(s, target);
    let x: &[f32] = match dropout.as_mut().filter(|d| d.p > 0.0) {
        Some(d) => {
            dropout_factors(d.rng, d.p, input.len(), &mut keep);
            resize(dropped, input.len());
            for ((o, x), k) in dropped.iter_mut().zip(input).zip(&keep) {
                *o = x * k;
            }
            dropped
        }
        None => {
            keep.clear();
            input
        }
    };
    resize(&mut u, t * rank);
    matmul(
        (t, rank, pair.inp),
        &mut u,
        rank,
        false,
        View::rows(x, pair.inp),
        View::transposed(&pair.a, pair.inp),
        1.0,
        true,
    );
    let (out, width) = match dst {
        SavedOut::Qkv => (
            &mut s.qkv,
            c.n_head * c.head_dim + 2 * c.n_head_kv * c.head_dim,
        ),
        SavedOut::O => (&mut s.o, c.n_embd),
        SavedOut::GateUp => (&mut s.gu, 2 * c.n_ff),
        SavedOut::Down => (&mut s.down, c.n_embd),
    };
    matmul(
        (t, pair.out, rank),
        &mut out[col..],
        width,
        true,
        View::rows(&u, rank),
        View::transposed(&pair.b, rank),
        scale,
        true,
    );
    s.keep[target as usize] = keep;
    s.u[target as usize] = u;
}

/// The adapter's backward pass for one projection: `dy` is the gradient of the
/// projection's output (columns `col..` of rows `width` apart); adds dA and dB to
/// `grads` and the adapter's share of the input's gradient to `dx`.
#[allow(clippy::too_many_arguments)]
fn lora_backward(
    lora: &LoraWeights,
    grads: &mut Gradients,
    l: usize,
    target: Target,
    s: &Saved,
    dy: &[f32],
    width: usize,
    col: usize,
    dx: &mut [f32],
    scale: f32,
    d_u: &mut Vec<f32>,
    dropped: &mut Vec<f32>,
) {
    let Some(i) = lora.find(l, target) else {
        return;
    };
    let pair = &lora.pairs[i];
    let (r, t) = (lora.config.rank, dx.len() / pair.inp);
    let u = &s.u[target as usize];
    let keep = &s.keep[target as usize];
    let input = lora_input(s, target);
    let x: &[f32] = if keep.is_empty() {
        input
    } else {
        resize(dropped, input.len());
        for ((o, x), k) in dropped.iter_mut().zip(input).zip(keep) {
            *o = x * k;
        }
        dropped
    };
    let dy = &dy[col..];
    let (da, db) = &mut grads[i];
    // dB += scale dy^T u; du = scale dy B; dA += du^T x'; dx += (du A) * keep.
    matmul(
        (pair.out, r, t),
        db,
        r,
        true,
        View::transposed(dy, width),
        View::rows(u, r),
        scale,
        true,
    );
    resize(d_u, t * r);
    matmul(
        (t, r, pair.out),
        d_u,
        r,
        false,
        View::rows(dy, width),
        View::rows(&pair.b, r),
        scale,
        true,
    );
    matmul(
        (r, pair.inp, t),
        da,
        pair.inp,
        true,
        View::transposed(d_u, r),
        View::rows(x, pair.inp),
        1.0,
        true,
    );
    if keep.is_empty() {
        matmul(
            (t, pair.inp, r),
            dx,
            pair.inp,
            true,
            View::rows(d_u, r),
            View::rows(&pair.a, pair.inp),
            1.0,
            true,
        );
    } else {
        // `dropped` (x', read above) is free again: it takes du A, which dx adds where the
        // mask kept x.
        let tmp = dropped;
        matmul(
            (t, pair.inp, r),
            tmp,
            pair.inp,
            false,
            View::rows(d_u, r),
            View::rows(&pair.a, pair.inp),
            1.0,
            true,
        );
        for ((dx, v), k) in dx.iter_mut().zip(tmp.iter()).zip(keep) {
            *dx += v * k;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::base::Sliding;
    use crate::lora::LoraConfig;
    use crate::reference;

    fn random(rng: &mut StdRng, n: usize, centre: f32, spread: f32) -> Vec<f32> {
        (0..n)
            .map(|_| centre + rng.random_range(-spread..spread))
            .collect()
    }

    fn matrix(rng: &mut StdRng, rows: usize, cols: usize) -> Matrix {
        let spread = 1.5 / (cols as f32).sqrt();
        Matrix {
            rows,
            cols,
            data: random(rng, rows * cols, 0.0, spread),
        }
    }

    /// A small random decoder: two layers, grouped-query heads; the Gemma one with a
    /// sliding window of 3 on its first layer and tied output, the llama one with RoPE
    /// scaling and its own output projection.
    pub(crate) fn tiny(arch: Arch) -> Base {
        let mut rng = StdRng::seed_from_u64(arch as u64 + 1);
        let gemma = arch == Arch::Gemma3;
        let (n_layer, d, heads, kv, hd, ff, vocab) =
            (2, 32, 4, 2, if gemma { 12 } else { 8 }, 48, 50);
        let config = BaseConfig {
            architecture: if gemma { "gemma3" } else { "llama" }.into(),
            arch,
            n_layer,
            n_embd: d,
            n_head: heads,
            n_head_kv: kv,
            head_dim: hd,
            n_ff: ff,
            vocab,
            rope_base: 10_000.0,
            rope_scale: if gemma { 1.0 } else { 0.5 },
            rms_eps: 1e-6,
            sliding: gemma.then(|| Sliding {
                window: 3,
                rope_base: 100.0,
                layers: vec![true, false],
            }),
        };
        let mut norm = |n: usize| random(&mut rng, n, 1.0, 0.3);
        let norms: Vec<[Vec<f32>; 6]> = (0..n_layer)
            .map(|_| [norm(d), norm(d), norm(hd), norm(hd), norm(d), norm(d)])
            .collect();
        let out_norm = norm(d);
        let layers = norms
            .into_iter()
            .map(|[attn, ffn, qn, kn, pa, pf]| Layer {
                attn_norm: attn,
                ffn_norm: ffn,
                qkv: matrix(&mut rng, (heads + 2 * kv) * hd, d),
                o: matrix(&mut rng, d, heads * hd),
                gate_up: matrix(&mut rng, 2 * ff, d),
                down: matrix(&mut rng, d, ff),
                q_norm: gemma.then_some(qn),
                k_norm: gemma.then_some(kn),
                post_attn_norm: gemma.then_some(pa),
                post_ffn_norm: gemma.then_some(pf),
                packed: None,
            })
            .map(|mut l: Layer| {
                l.pack();
                l
            })
            .collect();
        Base {
            config,
            embed: matrix(&mut rng, vocab, d),
            layers,
            out_norm,
            output: (!gemma).then(|| matrix(&mut rng, vocab, d)),
        }
    }

    /// An adapter on every projection with `B` non-zero (a fresh one's is zero, which
    /// would leave `A`'s gradient zero and untested).
    fn adapter(base: &Base) -> LoraWeights {
        let config = LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: Target::ALL.to_vec(),
        };
        let mut lora = LoraWeights::init(base, config, 3).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        for pair in &mut lora.pairs {
            pair.b = random(&mut rng, pair.b.len(), 0.0, 0.3);
        }
        lora
    }

    fn close(what: &str, ours: &[f32], theirs: &[f32]) {
        assert_eq!(ours.len(), theirs.len(), "{what}");
        let largest = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = ours
            .iter()
            .zip(theirs)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(largest > 0.0, "{what}: the reference gradient is zero");
        assert!(
            worst <= 1e-3 * largest.max(1e-3),
            "{what}: off by {worst} (largest value {largest})"
        );
    }

    #[test]
    fn gradients_match_candle_autograd_on_both_families() {
        for arch in [Arch::Llama, Arch::Gemma3] {
            let base = tiny(arch);
            let lora = adapter(&base);
            let mut ws = Workspace::default();
            // Examples through one workspace (the second shorter, so stale buffer contents
            // would show), with and without dropout; the last spans three blocks of
            // queries.
            for (n, p) in [(13usize, 0.0f32), (9, 0.3), (75, 0.1)] {
                let mut rng = StdRng::seed_from_u64(n as u64);
                let tokens: Vec<u32> = (0..n).map(|_| rng.random_range(0..50)).collect();
                let learn: Vec<bool> = (0..n).map(|i| i > 2 && i % 3 != 0).collect();
                let mut grads = zero_gradients(&lora);
                let (mut r1, mut r2) = (StdRng::seed_from_u64(5), StdRng::seed_from_u64(5));
                let ours = score(
                    &base,
                    &lora,
                    &tokens,
                    &learn,
                    Some(Dropout { p, rng: &mut r1 }),
                    Some((&mut grads, 0.25)),
                    &mut ws,
                );
                let theirs = reference::score(
                    &base,
                    &lora,
                    &tokens,
                    &learn,
                    Some(reference::Dropout { p, rng: &mut r2 }),
                    0.25,
                )
                .unwrap();
                let what = format!("{arch:?}, {n} tokens, dropout {p}");
                assert!(
                    (ours.loss - theirs.loss).abs() <= 1e-4 * theirs.loss.abs(),
                    "{what}: loss {} vs {}",
                    ours.loss,
                    theirs.loss
                );
                close(
                    &format!("{what}: log-probabilities"),
                    &ours.logprobs,
                    &theirs.logprobs,
                );
                assert_eq!(ours.tokens, learn[1..].iter().filter(|l| **l).count());
                for (pair, ((da, db), (ra, rb))) in
                    lora.pairs.iter().zip(grads.iter().zip(&theirs.gradients))
                {
                    let name = format!("{what}: layer {} {:?}", pair.layer, pair.target);
                    close(&format!("{name} dA"), da, ra);
                    close(&format!("{name} dB"), db, rb);
                }
                // Scoring alone (evaluation) gives the same loss.
                let alone = score::<StdRng>(&base, &lora, &tokens, &learn, None, None, &mut ws);
                if p == 0.0 {
                    assert_eq!(alone.loss, ours.loss, "{what}: evaluation");
                }
            }
        }
    }

    #[test]
    fn dropout_drops_its_share_and_scales_the_rest() {
        let mut factors = Vec::new();
        dropout_factors(&mut StdRng::seed_from_u64(1), 0.1, 100_003, &mut factors);
        assert_eq!(factors.len(), 100_003);
        let dropped = factors.iter().filter(|f| **f == 0.0).count() as f64 / 100_003.0;
        assert!((dropped - 0.1).abs() < 0.005, "dropped {dropped}");
        assert!(factors
            .iter()
            .all(|f| *f == 0.0 || (*f - 1.0 / 0.9).abs() < 1e-6));
        let mut again = Vec::new();
        dropout_factors(&mut StdRng::seed_from_u64(1), 0.1, 100_003, &mut again);
        assert_eq!(factors, again, "the same seed draws the same mask");
    }
}
