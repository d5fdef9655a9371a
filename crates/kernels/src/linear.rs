//! `y = act(x W^T + b)` with `W` packed once, at load, into the layout the AVX-512
//! microkernel streams: the classic prepacked-weight GEMM of inference runtimes
//! (onnxruntime's MLAS), with the activation applied as each tile leaves the cache.
//!
//! Why: a sentence of 30 tokens is a `30 x 384` activation against weights that no core's
//! cache holds (42 MB for MiniLM's six layers), so the time goes to reading weights. A
//! general GEMM repacks each weight on every call and, at so few rows, runs at half its
//! speed; here each 64-column panel of `W^T` lies contiguous, k-major, and is read from
//! memory once per call: a task walks its panel in blocks of `KB` rows of `W^T` and runs
//! every row tile of its rows over a block before the next one, the first tile prefetching
//! the next block (or the next panel) into L2, so reading weights overlaps computing.
//!
//! Layout: panel `p` holds columns `64p..64p+64` of `W^T` as `[in_dim][64]`, zero-padded;
//! a tile of up to 6 rows x 64 columns accumulates in 24 zmm registers, starting from the
//! bias (first block) or the task's partial sums (later blocks), which live in a small
//! task-local buffer; the activation is applied when that buffer is copied out. Tasks
//! (panel, block of rows) run on the current rayon pool. Without AVX-512 the caller uses
//! candle's matmul instead ([`PackedLinear::supported`]).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::Activation;

/// Columns per panel: four 16-lane vectors.
const NR: usize = 64;
/// Rows per microkernel tile.
const MR: usize = 6;
/// Rows of a panel per block: `KB * NR * 4` bytes = 32 KiB (64 and 256 measured no
/// better on a Sapphire Rapids Xeon).
const KB: usize = 128;
/// Activation values per task: its rows of `x` stay in L2 while its tiles stream the panel.
const TASK_INPUT_VALUES: usize = 64 * 1024;

/// Rows per task: enough tiles to reuse each block of the panel, few enough that the rows
/// (and the task's partial sums) stay in L2.
fn rows_per_task(in_dim: usize) -> usize {
    (TASK_INPUT_VALUES / in_dim.max(1) / MR).max(1) * MR
}

thread_local! {
    /// A task's partial sums, `[rows, NR]`, kept per thread between calls.
    static SUMS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A linear layer with its weight packed for the AVX-512 kernel.
pub struct PackedLinear {
    in_dim: usize,
    out_dim: usize,
    /// `[panels][in_dim][NR]`.
    panels: Vec<f32>,
    /// `[panels * NR]`, zero-padded.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Whether this CPU runs the kernel.
    pub fn supported() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Packs `weight` (`[out_dim, in_dim]` row-major, PyTorch's layout) and `bias`.
    pub fn new(weight: &[f32], bias: &[f32], in_dim: usize, out_dim: usize) -> Self {
        assert_eq!(weight.len(), in_dim * out_dim, "weight shape");
        assert_eq!(bias.len(), out_dim, "bias shape");
        let n_panels = out_dim.div_ceil(NR);
        let mut panels = vec![0f32; n_panels * in_dim * NR];
        for (o, row) in weight.chunks_exact(in_dim).enumerate() {
            let (p, lane) = (o / NR, o % NR);
            let panel = &mut panels[p * in_dim * NR..(p + 1) * in_dim * NR];
            for (k, &w) in row.iter().enumerate() {
                panel[k * NR + lane] = w;
            }
        }
        let mut padded_bias = vec![0f32; n_panels * NR];
        padded_bias[..out_dim].copy_from_slice(bias);
        Self {
            in_dim,
            out_dim,
            panels,
            bias: padded_bias,
        }
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// `act(x W^T + b)` for `x` of `[rows, in_dim]` (contiguous f32).
    pub fn apply(&self, x: &Tensor, act: Activation) -> candle_core::Result<Tensor> {
        x.apply_op1_no_bwd(&WithActivation { linear: self, act })
    }

    /// `x` is `[rows, in_dim]` row-major; returns `act(x W^T + b)`, `[rows, out_dim]`.
    fn forward(&self, x: &[f32], rows: usize, act: Activation) -> Vec<f32> {
        let mut out = vec![0f32; rows * self.out_dim];
        self.forward_into(x, rows, act, &mut out, self.out_dim);
        out
    }

    /// `out = x W^T + b` for `x` of `[rows, in_dim]` row-major, into the first `out_dim`
    /// columns of `out`'s rows, which lie `out_stride` apart (a matrix the result is a
    /// column block of, as a fused projection's output is).
    pub fn matmul_into(&self, x: &[f32], rows: usize, out: &mut [f32], out_stride: usize) {
        self.forward_into(x, rows, Activation::Identity, out, out_stride);
    }

    fn forward_into(
        &self,
        x: &[f32],
        rows: usize,
        act: Activation,
        out: &mut [f32],
        out_stride: usize,
    ) {
        assert!(Self::supported(), "PackedLinear without AVX-512");
        assert_eq!(x.len(), rows * self.in_dim, "input shape");
        if rows == 0 {
            return;
        }
        assert!(
            out_stride >= self.out_dim && out.len() >= (rows - 1) * out_stride + self.out_dim,
            "output shape"
        );
        let n_panels = self.out_dim.div_ceil(NR);
        let task_rows = rows_per_task(self.in_dim);
        let row_blocks = rows.div_ceil(task_rows);
        let dst = SharedOut(out.as_mut_ptr());
        // Consecutive tasks share a panel, so a thread's run of tasks keeps it in L2.
        (0..n_panels * row_blocks).into_par_iter().for_each(|task| {
            let (p, block) = (task / row_blocks, task % row_blocks);
            let first = block * task_rows;
            let last = (first + task_rows).min(rows);
            let panel = &self.panels[p * self.in_dim * NR..(p + 1) * self.in_dim * NR];
            let bias = &self.bias[p * NR..(p + 1) * NR];
            let next = if p + 1 < n_panels && block + 1 == row_blocks {
                &self.panels[(p + 1) * self.in_dim * NR..(p + 2) * self.in_dim * NR]
            } else {
                &panel[..0]
            };
            let cols = (self.out_dim - p * NR).min(NR);
            SUMS.with_borrow_mut(|sums| {
                // Every value is written by the first block before it is read.
                sums.resize(sums.len().max((last - first) * NR), 0.0);
                let sums = &mut sums[..(last - first) * NR];
                let x = &x[first * self.in_dim..last * self.in_dim];
                self.panel_rows(x, panel, next, bias, sums);
                for (i, row) in sums.chunks_exact(NR).enumerate() {
                    // Safety: row first+i, columns p*NR..p*NR+cols of `out` lie inside it
                    // (asserted above: the last row starts at (rows-1) * out_stride and
                    // has out_dim columns) and belong to this task alone (one panel, one
                    // block of rows); `out` outlives the parallel loop. `row` has NR
                    // values; the CPU has AVX-512F (asserted above).
                    unsafe {
                        let dst = dst.at((first + i) * out_stride + p * NR);
                        store_row(row.as_ptr(), dst, cols, act);
                    }
                }
            });
        });
    }

    /// `sums = x W_p^T + bias` for the rows of `x` (`[rows, in_dim]`) and one packed panel,
    /// `sums` being `[rows, NR]`: block by block of the panel, every row tile per block.
    fn panel_rows(&self, x: &[f32], panel: &[f32], next: &[f32], bias: &[f32], sums: &mut [f32]) {
        let k = self.in_dim;
        let rows = x.len() / k.max(1);
        assert_eq!(sums.len(), rows * NR, "partial sums");
        assert_eq!(panel.len(), k * NR, "panel");
        assert_eq!(bias.len(), NR, "bias");
        for kb in (0..k).step_by(KB) {
            let klen = KB.min(k - kb);
            // What the first tile of this block prefetches: the next block, or the start of
            // the panel this thread most likely takes next.
            let ahead = if kb + klen < k {
                &panel[(kb + klen) * NR..]
            } else {
                next
            };
            let pf_rows = (ahead.len() / NR).min(klen);
            let mut r = 0;
            while r < rows {
                let tile_rows = (rows - r).min(MR);
                let acc = sums[r * NR..].as_mut_ptr();
                let (init, init_ld) = if kb == 0 {
                    (bias.as_ptr(), 0)
                } else {
                    (acc as *const f32, NR)
                };
                // Safety: the kernel reads `tile_rows` rows of `klen` values of `x` from
                // row r, column kb (inside `x`: r + tile_rows <= rows, kb + klen <= k),
                // `klen * NR` values of the panel from row kb (inside it), NR values of
                // `init` per row (the bias, or these rows of `sums`), and writes
                // `tile_rows` rows of NR values of `sums` from row r (inside it).
                unsafe {
                    tile(
                        tile_rows,
                        x.as_ptr().add(r * k + kb),
                        k,
                        panel.as_ptr().add(kb * NR),
                        klen,
                        init,
                        init_ld,
                        acc,
                        ahead.as_ptr(),
                        if r == 0 { pf_rows } else { 0 },
                    );
                }
                r += tile_rows;
            }
        }
    }
}

/// Dispatches a tile of `rows` (1..=MR) rows to the kernel monomorphised for it.
///
/// # Safety
/// As [`avx512::tile`]; the CPU has AVX-512F (callers assert [`PackedLinear::supported`]).
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    rows: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    k: usize,
    init: *const f32,
    init_ld: usize,
    c: *mut f32,
    pf: *const f32,
    pf_rows: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        match rows {
            6 => avx512::tile::<6>(a, lda, b, k, init, init_ld, c, pf, pf_rows),
            5 => avx512::tile::<5>(a, lda, b, k, init, init_ld, c, pf, pf_rows),
            4 => avx512::tile::<4>(a, lda, b, k, init, init_ld, c, pf, pf_rows),
            3 => avx512::tile::<3>(a, lda, b, k, init, init_ld, c, pf, pf_rows),
            2 => avx512::tile::<2>(a, lda, b, k, init, init_ld, c, pf, pf_rows),
            _ => avx512::tile::<1>(a, lda, b, k, init, init_ld, c, pf, pf_rows),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, a, lda, b, k, init, init_ld, c, pf, pf_rows);
        unreachable!("PackedLinear::supported() is false off x86_64")
    }
}

/// `dst[..cols] = act(src[..cols])`, `src` having NR values.
///
/// # Safety
/// As [`avx512::store_row`]; the CPU has AVX-512F.
unsafe fn store_row(src: *const f32, dst: *mut f32, cols: usize, act: Activation) {
    #[cfg(target_arch = "x86_64")]
    {
        avx512::store_row(src, dst, cols, act)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (src, dst, cols, act);
        unreachable!("PackedLinear::supported() is false off x86_64")
    }
}

/// The output pointer, shared by tasks that write disjoint rectangles of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// Safety: see the disjointness argument at the one use in `forward_with`.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `offset` is inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// The layer applied with an activation, as a candle op.
struct WithActivation<'a> {
    linear: &'a PackedLinear,
    act: Activation,
}

impl CustomOp1 for WithActivation<'_> {
    fn name(&self) -> &'static str {
        "packed-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let l = self.linear;
        let x = super::f32_rows(storage, layout, l.in_dim, self.name())?;
        let rows = x.len() / l.in_dim.max(1);
        let out = l.forward(x, rows, self.act);
        Ok((CpuStorage::F32(out), Shape::from((rows, l.out_dim))))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::NR;
    use crate::Activation;

    /// `dst[..cols] = act(src[..cols])` (`cols <= NR`), 16 lanes at a time: the activation
    /// in 512-bit vectors (LLVM auto-vectorises the scalar versions in math.rs to 256 bits
    /// on the CPUs that have AVX-512, so this is twice as wide).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `src` has NR readable values, `dst` `cols` writable ones.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn store_row(src: *const f32, dst: *mut f32, cols: usize, act: Activation) {
        for j in (0..cols).step_by(16) {
            let x = _mm512_loadu_ps(src.add(j));
            let y = match act {
                Activation::Gelu => gelu(x),
                Activation::GeluTanh => gelu_tanh(x),
                Activation::Relu => _mm512_max_ps(x, _mm512_setzero_ps()),
                Activation::Identity => x,
            };
            let n = (cols - j).min(16);
            let mask: __mmask16 = if n == 16 { !0 } else { (1u16 << n) - 1 };
            _mm512_mask_storeu_ps(dst.add(j), mask, y);
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn splat(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }

    /// `a * b + c`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }

    /// [`crate::math::exp`] in 16 lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(_mm512_max_ps(x, splat(-87.0)), splat(88.0));
        let round = splat(12_582_912.0);
        let t = fma(x, splat(std::f32::consts::LOG2_E), round);
        let n = _mm512_sub_ps(t, round);
        let r = fma(n, splat(-0.693_359_4), x);
        let r = fma(n, splat(2.121_944_4e-4), r);
        let mut p = splat(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = fma(p, r, splat(c));
        }
        let p = fma(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, splat(1.0)));
        let bits = _mm512_slli_epi32::<23>(_mm512_sub_epi32(
            _mm512_castps_si512(t),
            _mm512_set1_epi32(0x4B40_0000 - 127),
        ));
        _mm512_mul_ps(p, _mm512_castsi512_ps(bits))
    }

    /// [`crate::math::erf`] in 16 lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn erf(x: __m512) -> __m512 {
        let sign = _mm512_set1_epi32(i32::MIN);
        let t = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(x)));
        let s = _mm512_mul_ps(x, x);
        let r = fma(splat(-1.728_534_7e-5), t, splat(3.831_971_3e-4));
        let u = fma(splat(-3.883_964_4e-3), t, splat(2.425_462_2e-2));
        let r = fma(r, s, u);
        let r = fma(r, t, splat(-1.067_778_8e-1));
        let r = fma(r, t, splat(-6.348_467e-1));
        let r = fma(r, t, splat(-1.287_175_1e-1));
        let r = fma(r, t, _mm512_sub_ps(_mm512_setzero_ps(), t));
        let large = _mm512_sub_ps(splat(1.0), exp(r));
        // copysign(large, x)
        let large = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_andnot_si512(sign, _mm512_castps_si512(large)),
            _mm512_and_si512(sign, _mm512_castps_si512(x)),
        ));
        let mut p = splat(-5.967_617e-4);
        for c in [
            4.991_194_2e-3,
            -2.676_813_5e-2,
            1.128_199_3e-1,
            -3.761_253_4e-1,
            1.283_791_7e-1,
        ] {
            p = fma(p, s, splat(c));
        }
        let small = fma(p, x, x);
        let is_large = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(t, splat(0.927_734_4));
        _mm512_mask_blend_ps(is_large, small, large)
    }

    /// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn gelu(x: __m512) -> __m512 {
        let e = erf(_mm512_mul_ps(x, splat(std::f32::consts::FRAC_1_SQRT_2)));
        _mm512_mul_ps(_mm512_mul_ps(splat(0.5), x), _mm512_add_ps(splat(1.0), e))
    }

    /// GELU's tanh form, `tanh(y) = 1 - 2 / (e^{2y} + 1)` as in math.rs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn gelu_tanh(x: __m512) -> __m512 {
        let cube = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
        let y = _mm512_mul_ps(splat(0.797_884_6), fma(splat(0.044_715), cube, x));
        let e = exp(_mm512_add_ps(y, y));
        let tanh = _mm512_sub_ps(
            splat(1.0),
            _mm512_div_ps(splat(2.0), _mm512_add_ps(e, splat(1.0))),
        );
        _mm512_mul_ps(
            _mm512_mul_ps(splat(0.5), x),
            _mm512_add_ps(splat(1.0), tanh),
        )
    }

    /// `c[R x NR] = init[R x NR] + a[R x k] * b[k x NR]`: `a` row-major with leading
    /// dimension `lda`, `b` `k` rows of one packed panel, `init` rows at stride `init_ld`
    /// (0: one row for all, the bias), `c` R rows of NR values at stride NR. `init` may be
    /// `c` itself (it is read before anything is written).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a` has R rows of `k` values at stride `lda`; `b` has `k * NR`
    /// values; `init` has R rows of NR values at stride `init_ld`; `c` has R * NR writable
    /// values; `pf` has `pf_rows * NR` values (prefetched into L2 as the loop goes, one
    /// row of the panel per step of `k`; `pf_rows <= k`).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile<const R: usize>(
        a: *const f32,
        lda: usize,
        b: *const f32,
        k: usize,
        init: *const f32,
        init_ld: usize,
        c: *mut f32,
        pf: *const f32,
        pf_rows: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            let src = init.add(r * init_ld);
            for (j, v) in row.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(src.add(16 * j));
            }
        }
        for kk in 0..k {
            let bp = b.add(kk * NR);
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            let b2 = _mm512_loadu_ps(bp.add(32));
            let b3 = _mm512_loadu_ps(bp.add(48));
            if kk < pf_rows {
                let p = pf.add(kk * NR) as *const i8;
                _mm_prefetch::<_MM_HINT_T1>(p);
                _mm_prefetch::<_MM_HINT_T1>(p.add(64));
                _mm_prefetch::<_MM_HINT_T1>(p.add(128));
                _mm_prefetch::<_MM_HINT_T1>(p.add(192));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + kk));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
                row[2] = _mm512_fmadd_ps(av, b2, row[2]);
                row[3] = _mm512_fmadd_ps(av, b3, row[3]);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let dst = c.add(r * NR);
            for (j, v) in row.iter().enumerate() {
                _mm512_storeu_ps(dst.add(16 * j), *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the CPU lacks AVX-512 the kernel cannot run, and must refuse rather than
    /// execute instructions the CPU does not have (callers then take candle's path,
    /// tested by their own crates): checks that it does, and returns true.
    pub(super) fn refused_without_avx512() -> bool {
        if PackedLinear::supported() {
            return false;
        }
        let l = PackedLinear::new(&[1.0; 6], &[0.0; 2], 3, 2);
        let refused = std::panic::catch_unwind(|| l.forward(&[1.0; 3], 1, Activation::Identity));
        assert!(
            refused.is_err(),
            "the packed kernel ran on a CPU without AVX-512"
        );
        true
    }

    #[test]
    fn matches_a_naive_product_on_ragged_shapes() {
        if refused_without_avx512() {
            return;
        }
        for &(rows, in_dim, out_dim) in &[
            (1, 3, 5),
            (7, 17, 70),
            (100, 40, 128),
            (13, 384, 130),
            (200, 130, 64),
        ] {
            let w: Vec<f32> = (0..in_dim * out_dim)
                .map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0)
                .collect();
            let b: Vec<f32> = (0..out_dim).map(|i| i as f32 / 10.0).collect();
            let x: Vec<f32> = (0..rows * in_dim)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
                .collect();
            let got =
                PackedLinear::new(&w, &b, in_dim, out_dim).forward(&x, rows, Activation::Identity);
            for r in 0..rows {
                for o in 0..out_dim {
                    let want: f32 = b[o]
                        + (0..in_dim)
                            .map(|k| x[r * in_dim + k] * w[o * in_dim + k])
                            .sum::<f32>();
                    let g = got[r * out_dim + o];
                    assert!(
                        (g - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{rows}x{in_dim}x{out_dim} [{r},{o}]: {g} vs {want}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod fused {
    use super::tests::refused_without_avx512;
    use super::*;

    #[test]
    fn vector_activations_match_the_scalar_ones() {
        if refused_without_avx512() {
            return;
        }
        let xs: Vec<f32> = (-1000..1000).map(|i| i as f32 / 100.0).collect();
        for act in [
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Relu,
            Activation::Identity,
        ] {
            for chunk in xs.chunks(NR) {
                let mut src = [0f32; NR];
                src[..chunk.len()].copy_from_slice(chunk);
                // One more slot than written: the masked store must leave it alone.
                let mut dst = vec![f32::NAN; chunk.len() + 1];
                // Safety: src has NR values, dst at least chunk.len(); AVX-512 checked above.
                unsafe { store_row(src.as_ptr(), dst.as_mut_ptr(), chunk.len(), act) };
                assert!(dst[chunk.len()].is_nan(), "wrote past cols");
                for (x, y) in chunk.iter().zip(&dst) {
                    let want = act.apply(*x);
                    assert!(
                        (y - want).abs() <= 2e-6 * (1.0 + want.abs()),
                        "{act:?}({x}) = {y}, scalar {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn applies_the_activation_to_every_output() {
        if refused_without_avx512() {
            return;
        }
        let (rows, in_dim, out_dim) = (9, 70, 90);
        let w: Vec<f32> = (0..in_dim * out_dim)
            .map(|i| ((i * 13 % 19) as f32 - 9.0) / 20.0)
            .collect();
        let b: Vec<f32> = (0..out_dim).map(|i| (i as f32 - 45.0) / 30.0).collect();
        let x: Vec<f32> = (0..rows * in_dim)
            .map(|i| ((i * 11 % 7) as f32 - 3.0) / 4.0)
            .collect();
        let l = PackedLinear::new(&w, &b, in_dim, out_dim);
        let plain = l.forward(&x, rows, Activation::Identity);
        for act in [Activation::Gelu, Activation::GeluTanh, Activation::Relu] {
            let got = l.forward(&x, rows, act);
            assert!(plain.iter().any(|&v| v < -0.5), "some outputs are negative");
            for (g, p) in got.iter().zip(&plain) {
                let want = act.apply(*p);
                assert!(
                    (g - want).abs() <= 2e-6 * (1.0 + want.abs()),
                    "{act:?} of {p}: {g} vs {want}"
                );
            }
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release -p aiaas-embed --lib -- --ignored packed_speed --nocapture`
    #[test]
    #[ignore]
    fn packed_speed() {
        let shapes = [(384usize, 1152usize), (384, 384), (384, 1536), (1536, 384)];
        for rows in [30usize, 2592] {
            for &(k, n) in &shapes {
                let w: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.01).collect();
                let x: Vec<f32> = (0..rows * k).map(|i| (i % 5) as f32 * 0.01).collect();
                let l = PackedLinear::new(&w, &vec![0.0; n], k, n);
                let flops = 2.0 * (rows * k * n) as f64;
                let reps = (2e9 / flops).max(3.0) as usize;
                std::hint::black_box(l.forward(&x, rows, Activation::Identity));
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(l.forward(&x, rows, Activation::Identity));
                }
                let s = t.elapsed().as_secs_f64() / reps as f64;
                println!(
                    "rows={rows} {k}x{n} hot: {:.3} ms, {:.1} GFLOP/s",
                    s * 1e3,
                    flops / s / 1e9
                );
            }
        }
        // As in a model: six layers' weights (42 MB, beyond any core's cache) in turn.
        for rows in [8usize, 30, 64] {
            let layers: Vec<PackedLinear> = (0..6)
                .flat_map(|_| shapes)
                .map(|(k, n)| {
                    let w: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.01).collect();
                    PackedLinear::new(&w, &vec![0.0; n], k, n)
                })
                .collect();
            let x: Vec<f32> = (0..rows * 1536).map(|i| (i % 5) as f32 * 0.01).collect();
            let flops: f64 = shapes
                .iter()
                .map(|(k, n)| 12.0 * (rows * k * n) as f64)
                .sum();
            let pass = || {
                for l in &layers {
                    std::hint::black_box(l.forward(
                        &x[..rows * l.in_dim],
                        rows,
                        Activation::Identity,
                    ));
                }
            };
            pass();
            let mut best = f64::MAX;
            for _ in 0..20 {
                let t = std::time::Instant::now();
                for _ in 0..5 {
                    pass();
                }
                best = best.min(t.elapsed().as_secs_f64() / 5.0);
            }
            println!(
                "rows={rows} six layers cold: {:.3} ms, {:.1} GFLOP/s (best of 20)",
                best * 1e3,
                flops / best / 1e9
            );
        }
    }
}
