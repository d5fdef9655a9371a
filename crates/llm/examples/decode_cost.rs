//! What one decode step costs by the number of positions it computes logits for: the
//! figure that decides how long a speculative draft pays. Prefills a prompt, then times
//! decode calls of 1..=16 tokens after it (each removed again), median of repeats.
//!
//! `cargo run --release -p aiaas-llm --example decode_cost -- model.gguf [threads] [last]`
//! (`last`: logits at the last position only, which leaves out the output layer's share).

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: decode_cost model.gguf [threads] [last]");
    let threads: i32 = args.next().map(|t| t.parse().unwrap()).unwrap_or(2);
    // "last": logits for the last position only (the cost of the model without its head).
    let last_only = args.next().as_deref() == Some("last");
    let mut backend = LlamaBackend::init().unwrap();
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default()).unwrap();
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(2048))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_swa_full(true);
    let mut ctx = model.new_context(&backend, params).unwrap();
    let text = "The committee met on Tuesday to review the budget for the coming year. ".repeat(20);
    let prompt = model.vocab().tokenize(text.as_bytes(), true, true);
    let mut batch = LlamaBatch::new(512, 1);
    for (i, t) in prompt.iter().enumerate() {
        batch
            .add(*t, i as i32, &[0], i + 1 == prompt.len())
            .unwrap();
    }
    ctx.decode(&mut batch).unwrap();
    let p = prompt.len() as i32;
    println!("prompt {} tokens, {threads} threads", prompt.len());
    println!("positions  ms/step  ms/position  step/1-token");
    let mut one = 0.0;
    for n in [1usize, 2, 3, 4, 5, 6, 8, 9, 12, 16] {
        let mut times = Vec::new();
        for _ in 0..15 {
            batch.clear();
            for k in 0..n {
                batch
                    .add(prompt[k + 1], p + k as i32, &[0], !last_only || k + 1 == n)
                    .unwrap();
            }
            let t = Instant::now();
            ctx.decode(&mut batch).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            ctx.clear_kv_cache_seq(Some(0), Some(p as u32), None)
                .unwrap();
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let ms = times[times.len() / 2];
        if n == 1 {
            one = ms;
        }
        println!("{n:9}  {ms:7.2}  {:11.2}  {:12.2}", ms / n as f64, ms / one);
    }
}
