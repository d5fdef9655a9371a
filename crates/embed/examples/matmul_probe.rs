use candle_core::{Device, Tensor};
use std::time::Instant;
fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let m: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(30);
    // The model's 24 matrices, [in, out] contiguous, cycled like a forward pass.
    let shapes = [(384usize, 1152usize), (384, 384), (384, 1536), (1536, 384)];
    for copies in [1usize, 6] {
        let ws: Vec<(Tensor, Tensor)> = (0..copies).flat_map(|_| shapes.iter()).map(|&(k, n)| {
            let w = Tensor::randn(0f32, 1.0, (k, n), &dev).unwrap();
            (Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap(), w)
        }).collect();
        let flops: f64 = ws.iter().map(|(x, w)| 2.0 * (m * x.dim(1).unwrap() * w.dim(1).unwrap()) as f64).sum();
        for (x, w) in &ws { let _ = x.matmul(w)?; }
        let reps = (4e9 / flops).max(3.0) as usize;
        let t = Instant::now();
        for _ in 0..reps { for (x, w) in &ws { let _ = x.matmul(w)?; } }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!("m={m} layers={copies}: {:.3} ms per pass, {:.1} GFLOP/s", s * 1e3, flops / s / 1e9);
    }
    Ok(())
}
