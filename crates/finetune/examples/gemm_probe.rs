//! GFLOP/s of the frozen products of a training step, at SmolLM2-135M's shapes (a
//! 210-token example): `x W^T` (forward) by gemm reading `W` transposed and by
//! aiaas-kernels' packed kernel, and `dy W` (backward) by gemm reading `W` as it is.
//! engine.rs runs the forward ones packed and the backward ones on gemm from these
//! figures.
//!
//!   RAYON_NUM_THREADS=2 gemm_probe [TOKENS]

use std::time::Instant;

use aiaas_kernels::PackedLinear;

/// Row-major `dst (m x n) = a (m x k) b (k x n)`, `a` and `b` given by (row, column)
/// strides.
struct Strided<'a>(&'a [f32], usize, usize);

fn product(dst: &mut [f32], (m, n, k): (usize, usize, usize), a: Strided, b: Strided) {
    assert!(dst.len() >= m * n);
    assert!((m - 1) * a.1 + (k - 1) * a.2 < a.0.len());
    assert!((k - 1) * b.1 + (n - 1) * b.2 < b.0.len());
    // Safety: the asserts above keep every access inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.0.as_ptr(),
            a.2 as isize,
            a.1 as isize,
            b.0.as_ptr(),
            b.2 as isize,
            b.1 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        )
    }
}

fn rate(flops: f64, mut f: impl FnMut()) -> f64 {
    f();
    let started = Instant::now();
    let rounds = 10;
    for _ in 0..rounds {
        f();
    }
    flops / (started.elapsed().as_secs_f64() / rounds as f64) / 1e9
}

fn main() {
    let t: usize = std::env::args()
        .nth(1)
        .map_or(210, |v| v.parse().expect("tokens"));
    println!(
        "{:>12} {:>6} {:>6} {:>12} {:>12} {:>12}",
        "projection", "out", "in", "fwd gemm", "fwd packed", "bwd gemm"
    );
    for (name, out, inp) in [
        ("qkv", 960usize, 576usize),
        ("o", 576, 576),
        ("gate_up", 3072, 576),
        ("down", 576, 1536),
        ("output", 49152, 576),
    ] {
        let w: Vec<f32> = (0..out * inp).map(|i| (i % 7) as f32 * 0.01).collect();
        let x: Vec<f32> = (0..t * inp).map(|i| (i % 5) as f32 * 0.01).collect();
        let dy: Vec<f32> = (0..t * out).map(|i| (i % 3) as f32 * 0.01).collect();
        let (mut y, mut dx) = (vec![0f32; t * out], vec![0f32; t * inp]);
        let flops = (2 * t * out * inp) as f64;
        let fwd = rate(flops, || {
            product(
                &mut y,
                (t, out, inp),
                Strided(&x, inp, 1),
                Strided(&w, 1, inp),
            )
        });
        let packed = if PackedLinear::supported() {
            let p = PackedLinear::new(&w, &vec![0.0; out], inp, out);
            format!("{:12.0}", rate(flops, || p.matmul_into(&x, t, &mut y, out)))
        } else {
            format!("{:>12}", "no AVX-512")
        };
        let bwd = rate(flops, || {
            product(
                &mut dx,
                (t, inp, out),
                Strided(&dy, out, 1),
                Strided(&w, inp, 1),
            )
        });
        println!("{name:>12} {out:6} {inp:6} {fwd:12.0} {packed} {bwd:12.0}");
    }
}
