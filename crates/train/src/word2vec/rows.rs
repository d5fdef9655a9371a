//! Reading and writing rows of the shared weight matrices while other threads do the
//! same (Hogwild). A row is `dim` floats stored as `dim / 2` `AtomicU64` pairs.
//!
//! Portable form: one relaxed atomic per pair. Sound, but LLVM never vectorises atomics,
//! and the pair-by-pair copies into a scratch buffer then read by vector loads stall on
//! store forwarding: about half of word2vec's speed goes (`bench/word2vec.sh`).
//!
//! x86-64 with AVX (what `target-cpu=native` enables on the machines this runs on): the
//! rows move eight floats at a time with `vmovups` in inline assembly. Each float is a
//! naturally aligned 4-byte element, and x86-64 reads and writes such an element whole
//! even inside a wider or line-crossing vector access, so every instruction is
//! equivalent to eight relaxed atomic loads or stores of one float each: exactly the
//! accesses the portable form makes, in a form the hardware executes at full width.
//! Inline assembly is opaque to the compiler's memory model, so no data race arises in
//! Rust's sense (the argument `atomic-memcpy` and `atomic-maybe-uninit` rest on). Element
//! atomicity is all Hogwild needs: a row may mix two threads' updates, never a torn float.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One row of a shared matrix: `dim / 2` pairs of floats (`dim` is even here).
pub(crate) type Row<'a> = &'a [AtomicU64];

/// The two floats of a pair: the first in the low half, as `HugeBuffer` lays them out on
/// a little-endian machine (on a big-endian one every row is permuted the same way, which
/// changes no dot product).
#[inline(always)]
fn unpack(bits: u64) -> [f32; 2] {
    [
        f32::from_bits(bits as u32),
        f32::from_bits((bits >> 32) as u32),
    ]
}

#[inline(always)]
fn pack(pair: &[f32]) -> u64 {
    u64::from(pair[0].to_bits()) | (u64::from(pair[1].to_bits()) << 32)
}

/// Floats moved per vector instruction, and the pairs they make.
#[cfg(all(target_arch = "x86_64", target_feature = "avx"))]
const LANES: usize = 8;
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx")))]
const LANES: usize = 0;

/// How many floats of a `floats`-long row the vector path covers (a multiple of 8).
#[inline(always)]
fn vector_part(floats: usize) -> usize {
    match LANES {
        0 => 0,
        n => floats / n * n,
    }
}

/// `out = row`.
#[inline(always)]
pub(crate) fn load(row: Row<'_>, out: &mut [f32]) {
    let n = vector_part(out.len().min(row.len() * 2));
    if n > 0 {
        // SAFETY: `n` floats are inside both `row` and `out` (see `vector_part`).
        unsafe { simd::copy(row.as_ptr().cast(), out.as_mut_ptr(), n / 8) };
    }
    for (o, a) in out[n..].chunks_exact_mut(2).zip(&row[n / 2..]) {
        o.copy_from_slice(&unpack(a.load(Relaxed)));
    }
}

/// `row = values`.
#[inline(always)]
pub(crate) fn store(row: Row<'_>, values: &[f32]) {
    let n = vector_part(values.len().min(row.len() * 2));
    if n > 0 {
        // SAFETY: as in `load`; the destination is the shared row (see the module docs).
        unsafe { simd::copy(values.as_ptr(), row.as_ptr().cast_mut().cast(), n / 8) };
    }
    for (a, v) in row[n / 2..].iter().zip(values[n..].chunks_exact(2)) {
        a.store(pack(v), Relaxed);
    }
}

/// `acc += row`.
#[inline(always)]
pub(super) fn add_row(row: Row<'_>, acc: &mut [f32]) {
    let n = vector_part(acc.len().min(row.len() * 2));
    if n > 0 {
        // SAFETY: as in `load`; `acc` is this thread's own buffer.
        unsafe { simd::add_into(acc.as_mut_ptr(), row.as_ptr().cast(), n / 8) };
    }
    for (s, a) in acc[n..].chunks_exact_mut(2).zip(&row[n / 2..]) {
        let [x, y] = unpack(a.load(Relaxed));
        s[0] += x;
        s[1] += y;
    }
}

/// `row += x`, read afresh: another thread may have moved the row meanwhile.
#[inline(always)]
pub(super) fn add_to_row(row: Row<'_>, x: &[f32]) {
    let n = vector_part(x.len().min(row.len() * 2));
    if n > 0 {
        // SAFETY: as in `store`.
        unsafe { simd::add_into(row.as_ptr().cast_mut().cast(), x.as_ptr(), n / 8) };
    }
    for (a, xi) in row[n / 2..].iter().zip(x[n..].chunks_exact(2)) {
        let [r0, r1] = unpack(a.load(Relaxed));
        a.store(pack(&[r0 + xi[0], r1 + xi[1]]), Relaxed);
    }
}

/// `dot(row, x)`, read in place.
#[inline(always)]
pub(super) fn dot_row(row: Row<'_>, x: &[f32]) -> f32 {
    let n = fma_part(x.len().min(row.len() * 2));
    let mut sum = 0.0;
    if n > 0 {
        // SAFETY: as in `load`.
        sum = unsafe { simd::dot(row.as_ptr().cast(), x.as_ptr(), n / 8) };
    }
    for (a, xi) in row[n / 2..].iter().zip(x[n..].chunks_exact(2)) {
        let [r0, r1] = unpack(a.load(Relaxed));
        sum += r0 * xi[0] + r1 * xi[1];
    }
    sum
}

/// One step on an output row, in place: `grad += g * row`, then `row += g * hidden`
/// (the gradient takes the row as it was).
#[inline(always)]
pub(super) fn train_row(row: Row<'_>, g: f32, hidden: &[f32], grad: &mut [f32]) {
    let floats = hidden.len().min(grad.len()).min(row.len() * 2);
    let n = fma_part(floats);
    if n > 0 {
        // SAFETY: as in `store`; `hidden` and `grad` are this thread's own buffers.
        unsafe {
            simd::train(
                row.as_ptr().cast_mut().cast(),
                g,
                hidden.as_ptr(),
                grad.as_mut_ptr(),
                n / 8,
            )
        };
    }
    let tail = row[n / 2..floats / 2].iter();
    for ((a, h), e) in tail
        .zip(hidden[n..].chunks_exact(2))
        .zip(grad[n..].chunks_exact_mut(2))
    {
        let [r0, r1] = unpack(a.load(Relaxed));
        e[0] += g * r0;
        e[1] += g * r1;
        a.store(pack(&[r0 + g * h[0], r1 + g * h[1]]), Relaxed);
    }
}

/// How many floats the fused multiply-add path covers (none without FMA).
#[inline(always)]
fn fma_part(floats: usize) -> usize {
    if cfg!(target_feature = "fma") {
        vector_part(floats)
    } else {
        0
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx"))]
mod simd {
    use std::arch::asm;

    /// Copy `chunks` blocks of eight floats from `src` to `dst`.
    ///
    /// # Safety
    /// Both ranges hold `chunks * 8` floats, 4-byte aligned; `chunks > 0`.
    #[inline(always)]
    pub(super) unsafe fn copy(src: *const f32, dst: *mut f32, chunks: usize) {
        asm!(
            "2:",
            "vmovups {t}, ymmword ptr [{src}]",
            "vmovups ymmword ptr [{dst}], {t}",
            "add {src}, 32",
            "add {dst}, 32",
            "dec {n}",
            "jnz 2b",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            n = inout(reg) chunks => _,
            t = out(ymm_reg) _,
            options(nostack),
        );
    }

    /// `dst += src` over `chunks` blocks of eight floats.
    ///
    /// # Safety
    /// As `copy`.
    #[inline(always)]
    pub(super) unsafe fn add_into(dst: *mut f32, src: *const f32, chunks: usize) {
        asm!(
            "2:",
            "vmovups {t}, ymmword ptr [{dst}]",
            "vaddps {t}, {t}, ymmword ptr [{src}]",
            "vmovups ymmword ptr [{dst}], {t}",
            "add {src}, 32",
            "add {dst}, 32",
            "dec {n}",
            "jnz 2b",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            n = inout(reg) chunks => _,
            t = out(ymm_reg) _,
            options(nostack),
        );
    }

    /// `sum(a[i] * b[i])` over `chunks` blocks of eight floats (two accumulators).
    ///
    /// # Safety
    /// As `copy`; the CPU has FMA.
    #[inline(always)]
    pub(super) unsafe fn dot(a: *const f32, b: *const f32, chunks: usize) -> f32 {
        use std::arch::x86_64::*;
        let (acc0, acc1): (__m256, __m256);
        asm!(
            "vxorps {acc0}, {acc0}, {acc0}",
            "vxorps {acc1}, {acc1}, {acc1}",
            "test {n}, 1",
            "jz 2f",
            "vmovups {t}, ymmword ptr [{a}]",
            "vfmadd231ps {acc0}, {t}, ymmword ptr [{b}]",
            "add {a}, 32",
            "add {b}, 32",
            "2:",
            "shr {n}, 1",
            "jz 4f",
            "3:",
            "vmovups {t}, ymmword ptr [{a}]",
            "vfmadd231ps {acc0}, {t}, ymmword ptr [{b}]",
            "vmovups {t}, ymmword ptr [{a} + 32]",
            "vfmadd231ps {acc1}, {t}, ymmword ptr [{b} + 32]",
            "add {a}, 64",
            "add {b}, 64",
            "dec {n}",
            "jnz 3b",
            "4:",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            n = inout(reg) chunks => _,
            t = out(ymm_reg) _,
            acc0 = out(ymm_reg) acc0,
            acc1 = out(ymm_reg) acc1,
            options(nostack),
        );
        // SAFETY (intrinsics): AVX is enabled for this build (the module's cfg).
        let v = _mm256_add_ps(acc0, acc1);
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let h = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)))
    }

    /// `grad += g * row; row += g * hidden` over `chunks` blocks of eight floats.
    ///
    /// # Safety
    /// As `copy`; the CPU has FMA.
    #[inline(always)]
    pub(super) unsafe fn train(
        row: *mut f32,
        g: f32,
        hidden: *const f32,
        grad: *mut f32,
        chunks: usize,
    ) {
        asm!(
            "vbroadcastss {gv}, {g}",
            "2:",
            "vmovups {t}, ymmword ptr [{row}]",
            "vmovups {e}, ymmword ptr [{grad}]",
            "vfmadd231ps {e}, {gv}, {t}",
            "vmovups ymmword ptr [{grad}], {e}",
            "vfmadd231ps {t}, {gv}, ymmword ptr [{hidden}]",
            "vmovups ymmword ptr [{row}], {t}",
            "add {row}, 32",
            "add {grad}, 32",
            "add {hidden}, 32",
            "dec {n}",
            "jnz 2b",
            row = inout(reg) row => _,
            grad = inout(reg) grad => _,
            hidden = inout(reg) hidden => _,
            n = inout(reg) chunks => _,
            g = in(xmm_reg) g,
            gv = out(ymm_reg) _,
            t = out(ymm_reg) _,
            e = out(ymm_reg) _,
            options(nostack),
        );
    }
}

/// Without AVX the vector part is empty and these are never called.
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx")))]
mod simd {
    pub(super) unsafe fn copy(_: *const f32, _: *mut f32, _: usize) {
        unreachable!("no vector path without AVX")
    }
    pub(super) unsafe fn add_into(_: *mut f32, _: *const f32, _: usize) {
        unreachable!("no vector path without AVX")
    }
    pub(super) unsafe fn dot(_: *const f32, _: *const f32, _: usize) -> f32 {
        unreachable!("no vector path without AVX")
    }
    pub(super) unsafe fn train(_: *mut f32, _: f32, _: *const f32, _: *mut f32, _: usize) {
        unreachable!("no vector path without AVX")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row length, through the vector part and the pair tail alike.
    #[test]
    fn rows_read_write_and_add_like_plain_floats() {
        for dim in (2..=42).step_by(2) {
            let shared: Vec<AtomicU64> = (0..dim / 2 + 1).map(|_| AtomicU64::new(0)).collect();
            let row = &shared[..dim / 2];
            let values: Vec<f32> = (0..dim).map(|i| i as f32 * 0.5 - 3.0).collect();
            store(row, &values);
            let mut back = vec![0f32; dim];
            load(row, &mut back);
            assert_eq!(back, values, "dim {dim}");
            let ones = vec![1f32; dim];
            add_to_row(row, &ones);
            let mut acc = vec![10f32; dim];
            add_row(row, &mut acc);
            let want: Vec<f32> = values.iter().map(|v| v + 1.0 + 10.0).collect();
            assert_eq!(acc, want, "dim {dim}");
            // The pair past the row is never touched.
            assert_eq!(shared[dim / 2].load(Relaxed), 0, "dim {dim}");
        }
    }

    /// The in-place dot product and update agree with the same sums on plain floats.
    #[test]
    fn dot_and_train_in_place_match_plain_arithmetic() {
        for dim in (2..=50).step_by(2) {
            let shared: Vec<AtomicU64> = (0..dim / 2 + 1).map(|_| AtomicU64::new(0)).collect();
            let row = &shared[..dim / 2];
            let r: Vec<f32> = (0..dim).map(|i| (i % 7) as f32 * 0.25 - 0.5).collect();
            let hidden: Vec<f32> = (0..dim).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
            store(row, &r);
            let want: f32 = r.iter().zip(&hidden).map(|(a, b)| a * b).sum();
            // Sums of quarters and halves: exact in any order.
            assert_eq!(dot_row(row, &hidden), want, "dim {dim}");
            let mut grad = vec![1f32; dim];
            train_row(row, 0.5, &hidden, &mut grad);
            let grad_want: Vec<f32> = r.iter().map(|x| 1.0 + 0.5 * x).collect();
            let row_want: Vec<f32> = r.iter().zip(&hidden).map(|(x, h)| x + 0.5 * h).collect();
            assert_eq!(grad, grad_want, "dim {dim}");
            let mut back = vec![0f32; dim];
            load(row, &mut back);
            assert_eq!(back, row_want, "dim {dim}");
            assert_eq!(shared[dim / 2].load(Relaxed), 0, "dim {dim}");
        }
    }
}
