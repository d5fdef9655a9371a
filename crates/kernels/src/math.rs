//! Scalar math written so that loops over slices auto-vectorise: no libm calls (`expf`,
//! `erff`, `roundf`, `fmaf` are opaque calls that keep LLVM from vectorising a loop), and
//! reductions with explicit lanes (LLVM never reorders a float sum by itself).

use std::f32::consts::LOG2_E;

/// `e^x` to about 2 ulp for `x` in [-87, 88]; smaller inputs give ~1e-38 instead of 0
/// (harmless in softmax), larger ones saturate at e^88.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Cephes' expf: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial.
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let p = p * r * r + r + 1.0;
    // 2^n from the bits of `t` (= 1.5 * 2^23 + n, so its bits are 0x4B40_0000 + n): no
    // float-to-int conversion, whose saturating `as` semantics LLVM does not vectorise.
    // n is in [-126, 127], so n + 127 is a normal exponent.
    let exponent = t.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23;
    p * f32::from_bits(exponent)
}

/// The error function to about 1 ulp (Norbert Juffa's erff: a polynomial in x^2 below
/// 0.9277, `1 - exp(poly)` above). Both branches are computed and one selected, so a loop
/// over it vectorises.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let t = x.abs();
    let s = x * x;
    let r = -1.728_534_7e-5 * t + 3.831_971_3e-4;
    let u = -3.883_964_4e-3 * t + 2.425_462_2e-2;
    let r = r * s + u;
    let r = r * t - 1.067_778_8e-1;
    let r = r * t - 6.348_467e-1;
    let r = r * t - 1.287_175_1e-1;
    let r = r * t - t;
    let large = (1.0 - exp(r)).copysign(x);
    let p = -5.967_617e-4;
    let p = p * s + 4.991_194_2e-3;
    let p = p * s - 2.676_813_5e-2;
    let p = p * s + 1.128_199_3e-1;
    let p = p * s - 3.761_253_4e-1;
    let p = p * s + 1.283_791_7e-1;
    let small = p * x + x;
    if t > 0.927_734_4 {
        large
    } else {
        small
    }
}

/// `tanh(x)`, as `1 - 2 / (e^{2x} + 1)` (saturates cleanly at ±1).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

const LANES: usize = 16;

/// Sum of a slice, in 16 lanes.
#[inline]
pub fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Dot product of two slices of one length, in 16 lanes.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Sum of squared deviations from `mean`, in 16 lanes.
#[inline]
pub fn sum_sq_dev(xs: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest: f32 = chunks
        .remainder()
        .iter()
        .map(|x| (x - mean) * (x - mean))
        .sum();
    for chunk in chunks {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += (x - mean) * (x - mean);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Largest element (NEG_INFINITY for an empty slice), in 16 lanes.
#[inline]
pub fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = if x > *a { x } else { *a };
        }
    }
    acc.iter().fold(rest, |m, &x| m.max(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_f64_at_every_length() {
        for n in [0, 1, 15, 16, 17, 384, 1000] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-4, "n = {n}");
        }
        // Slices of different lengths: the shorter one's length.
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0, 1.0]), 3.0);
    }

    #[test]
    fn exp_matches_std() {
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let (ours, std) = (exp(x), x.exp());
            assert!(
                ((ours - std) / std).abs() < 5e-7,
                "exp({x}) = {ours}, std {std}"
            );
        }
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(f32::MIN) < 1e-37);
    }

    #[test]
    fn erf_and_tanh_match_f64() {
        for i in -600..=600 {
            let x = i as f32 / 100.0;
            let want = erf_f64(x as f64);
            assert!(
                (erf(x) as f64 - want).abs() < 1.5e-7,
                "erf({x}): {} vs {want}",
                erf(x)
            );
            assert!(
                (tanh(x) as f64 - (x as f64).tanh()).abs() < 3e-7,
                "tanh({x})"
            );
        }
    }

    /// candle's f64 erf (a port of Boost's), an implementation independent of ours.
    fn erf_f64(x: f64) -> f64 {
        candle_core::cpu::erf::erf_f64(x)
    }

    #[test]
    fn reductions() {
        let xs: Vec<f32> = (0..37).map(|i| i as f32).collect();
        assert_eq!(sum(&xs), 666.0);
        assert_eq!(max(&xs), 36.0);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert!((sum_sq_dev(&[1.0, 3.0], 2.0) - 2.0).abs() < 1e-6);
    }
}
