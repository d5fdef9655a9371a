//! `y = x W^T + b` with `W` packed once, at load, into the layout the AVX-512 microkernel
//! streams: the classic prepacked-weight GEMM of inference runtimes (onnxruntime's MLAS).
//!
//! Why: a sentence of 30 tokens is a `30 x 384` activation against weights that no cache
//! holds (42 MB for MiniLM's six layers), so the time goes to reading weights. A general GEMM
//! repacks each weight on every call and, at so few rows, runs at half its speed; here each
//! 64-column panel of `W^T` lies contiguous, k-major, and is read straight once per 96 rows.
//!
//! Layout: panel `p` holds columns `64p..64p+64` of `W^T` as `[in_dim][64]`, zero-padded;
//! a tile of up to 6 rows x 64 columns accumulates in 24 zmm registers, starting from the
//! bias. Tasks (panel, block of rows) run on the current rayon pool. Without AVX-512 the
//! caller uses candle's matmul instead ([`PackedLinear::supported`]).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};
use rayon::prelude::*;

/// Columns per panel: four 16-lane vectors.
const NR: usize = 64;
/// Rows per microkernel tile.
const MR: usize = 6;
/// Activation values per task: its rows of `x` (plus the panel) stay in L2 while every
/// tile of the task streams the panel.
const TASK_INPUT_VALUES: usize = 64 * 1024;

/// Rows per task: enough tiles to reuse a panel from L2, few enough that the rows stay there.
fn rows_per_task(in_dim: usize) -> usize {
    (TASK_INPUT_VALUES / in_dim.max(1) / MR).max(1) * MR
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

    /// `x` is `[rows, in_dim]` row-major; returns `[rows, out_dim]`.
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert!(Self::supported(), "PackedLinear without AVX-512");
        assert_eq!(x.len(), rows * self.in_dim, "input shape");
        // Not zeroed: the tiles below write every element (all rows, all `out_dim` columns)
        // before `set_len` exposes them.
        let mut out: Vec<f32> = Vec::with_capacity(rows * self.out_dim);
        let n_panels = self.out_dim.div_ceil(NR);
        let task_rows = rows_per_task(self.in_dim);
        let row_blocks = rows.div_ceil(task_rows);
        let dst = SharedOut(out.as_mut_ptr());
        // Consecutive tasks share a panel, so a thread's run of tasks keeps it in L2.
        (0..n_panels * row_blocks).into_par_iter().for_each(|task| {
            let (p, block) = (task / row_blocks, task % row_blocks);
            let first = block * task_rows;
            let last = (first + task_rows).min(rows);
            let cols = (self.out_dim - p * NR).min(NR);
            let panel = &self.panels[p * self.in_dim * NR..(p + 1) * self.in_dim * NR];
            let bias = &self.bias[p * NR..(p + 1) * NR];
            let mut r = first;
            while r < last {
                let tile_rows = (last - r).min(MR);
                // Safety: the kernel reads `tile_rows` rows of `x` from row `r` (inside `x`,
                // checked above), `in_dim * NR` values of `panel` and `NR` of `bias` (their
                // exact lengths), and writes rows r..r+tile_rows, columns p*NR..p*NR+cols of
                // `out`, a rectangle no other task writes, inside its capacity; `out` outlives
                // the parallel loop.
                unsafe {
                    let a = x.as_ptr().add(r * self.in_dim);
                    let c = dst.at(r * self.out_dim + p * NR);
                    self.tile(tile_rows, a, panel.as_ptr(), bias.as_ptr(), c, cols);
                }
                r += tile_rows;
            }
        });
        // Safety: every element was written above (see the comment at the allocation).
        unsafe { out.set_len(rows * self.out_dim) };
        out
    }

    /// Dispatches a tile of `rows` (1..=MR) rows to the kernel monomorphised for it.
    ///
    /// # Safety
    /// As [`avx512::tile`], with `k = lda = in_dim` and `ldc = out_dim`; the CPU has
    /// AVX-512F (`forward` asserts [`PackedLinear::supported`]).
    unsafe fn tile(
        &self,
        rows: usize,
        a: *const f32,
        b: *const f32,
        bias: *const f32,
        c: *mut f32,
        cols: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            let (k, lda, ldc) = (self.in_dim, self.in_dim, self.out_dim);
            match rows {
                6 => avx512::tile::<6>(a, lda, b, k, bias, c, ldc, cols),
                5 => avx512::tile::<5>(a, lda, b, k, bias, c, ldc, cols),
                4 => avx512::tile::<4>(a, lda, b, k, bias, c, ldc, cols),
                3 => avx512::tile::<3>(a, lda, b, k, bias, c, ldc, cols),
                2 => avx512::tile::<2>(a, lda, b, k, bias, c, ldc, cols),
                _ => avx512::tile::<1>(a, lda, b, k, bias, c, ldc, cols),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (rows, a, b, bias, c, cols);
            unreachable!("PackedLinear::supported() is false off x86_64")
        }
    }
}

/// The output pointer, shared by tasks that write disjoint rectangles of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// Safety: see the disjointness argument at the one use in `forward`.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `offset` is inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

impl CustomOp1 for PackedLinear {
    fn name(&self) -> &'static str {
        "packed-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = super::f32_rows(storage, layout, self.in_dim, self.name())?;
        let rows = x.len() / self.in_dim.max(1);
        let out = self.forward(x, rows);
        Ok((CpuStorage::F32(out), Shape::from((rows, self.out_dim))))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::NR;

    /// `c[R x cols] = a[R x k] * b[k x NR] + bias`, `a` and `c` row-major with leading
    /// dimensions `lda`/`ldc`, `b` one packed panel.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a` has R rows of `k` values at stride `lda`; `b` has `k * NR`
    /// values; `bias` has NR; `c` has R rows of `cols <= NR` writable values at stride `ldc`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile<const R: usize>(
        a: *const f32,
        lda: usize,
        b: *const f32,
        k: usize,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        cols: usize,
    ) {
        let init = [
            _mm512_loadu_ps(bias),
            _mm512_loadu_ps(bias.add(16)),
            _mm512_loadu_ps(bias.add(32)),
            _mm512_loadu_ps(bias.add(48)),
        ];
        let mut acc = [init; R];
        for kk in 0..k {
            let bp = b.add(kk * NR);
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            let b2 = _mm512_loadu_ps(bp.add(32));
            let b3 = _mm512_loadu_ps(bp.add(48));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + kk));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
                row[2] = _mm512_fmadd_ps(av, b2, row[2]);
                row[3] = _mm512_fmadd_ps(av, b3, row[3]);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let dst = c.add(r * ldc);
            for (j, v) in row.iter().enumerate() {
                let col = 16 * j;
                if col + 16 <= cols {
                    _mm512_storeu_ps(dst.add(col), *v);
                } else if col < cols {
                    let mask: __mmask16 = (1u16 << (cols - col)) - 1;
                    _mm512_mask_storeu_ps(dst.add(col), mask, *v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_product_on_ragged_shapes() {
        if !PackedLinear::supported() {
            eprintln!("no AVX-512 here: PackedLinear is not used");
            return;
        }
        for &(rows, in_dim, out_dim) in &[(1, 3, 5), (7, 17, 70), (100, 40, 128), (13, 384, 130)] {
            let w: Vec<f32> = (0..in_dim * out_dim)
                .map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0)
                .collect();
            let b: Vec<f32> = (0..out_dim).map(|i| i as f32 / 10.0).collect();
            let x: Vec<f32> = (0..rows * in_dim)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
                .collect();
            let got = PackedLinear::new(&w, &b, in_dim, out_dim).forward(&x, rows);
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
                std::hint::black_box(l.forward(&x, rows));
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(l.forward(&x, rows));
                }
                let s = t.elapsed().as_secs_f64() / reps as f64;
                println!(
                    "rows={rows} {k}x{n} hot: {:.3} ms, {:.1} GFLOP/s",
                    s * 1e3,
                    flops / s / 1e9
                );
            }
        }
    }
}
