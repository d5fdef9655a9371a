//! The aiaas side of bench/finetune: train a LoRA adapter on a chat fine-tuning file and
//! time it, then time decoding with the adapter against the base model alone.
//!
//!   finetune_bench MODEL.gguf DATA.jsonl OUT_DIR [--epochs N] [--batch N] [--threads N]
//!
//! Writes OUT_DIR/sequences.json (the token sequences, taught masks, batches and options
//! the peer trains on) and OUT_DIR/adapter.gguf; prints one JSON object.

use std::path::{Path, PathBuf};
use std::time::Instant;

use aiaas_finetune::{Base, LoraConfig, Sequence, Target, TrainOptions, Trainer};
use aiaas_llm::{
    ChatMessage, GenEvent, GenerateRequest, Generator, GeneratorSettings, LlmModel, SamplingParams,
};
use serde_json::{json, Value};

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// The file's conversations as training sees them (the serving template's rendering).
fn sequences(llm: &LlmModel, data: &Path) -> Vec<Sequence> {
    let text = std::fs::read_to_string(data).expect("the data file");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            let messages = v["messages"].as_array().expect("messages");
            let chat: Vec<ChatMessage> = messages
                .iter()
                .map(|m| {
                    ChatMessage::new(
                        m["role"].as_str().unwrap_or("user"),
                        m["content"].as_str().unwrap_or(""),
                    )
                })
                .collect();
            let learn: Vec<bool> = messages
                .iter()
                .map(|m| m["role"] == "assistant" && m["weight"] != 0)
                .collect();
            let (ids, learn) = llm.chat_example_tokens(&chat, &learn).expect("rendered");
            Sequence {
                tokens: ids.into_iter().map(|t| t as u32).collect(),
                learn,
            }
        })
        .collect()
}

/// The process's resident set (Linux), 0 where it cannot be read.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Greedy decode of `max_tokens` tokens per prompt; tokens per second over all.
async fn decode_rate(g: &Generator, prompts: &[Vec<i32>], max_tokens: usize) -> (f64, usize) {
    let (mut tokens, mut seconds) = (0usize, 0f64);
    for prompt in prompts {
        let request = GenerateRequest {
            prompt: prompt.clone(),
            sampling: SamplingParams {
                temperature: 0.0,
                ..SamplingParams::default()
            },
            max_tokens: Some(max_tokens),
            stop: Vec::new(),
            grammar: None,
            logprobs: Some(0),
            timeout: None,
            cache_scope: String::new(),
        };
        let mut rx = g.submit(request).expect("admitted");
        let mut first: Option<Instant> = None;
        let mut n = 0usize;
        while let Some(ev) = rx.recv().await {
            match ev {
                GenEvent::Text { logprobs, .. } => {
                    // Decode speed: from the first token on (the prompt's prefill apart).
                    if first.is_none() {
                        first = Some(Instant::now());
                    } else {
                        n += logprobs.len();
                    }
                }
                GenEvent::Done { .. } => break,
                GenEvent::Error(e) => panic!("{e}"),
                GenEvent::Started => {}
            }
        }
        if let Some(t) = first {
            seconds += t.elapsed().as_secs_f64();
            tokens += n;
        }
    }
    (tokens as f64 / seconds, tokens)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: finetune_bench MODEL.gguf DATA.jsonl OUT_DIR [--epochs N] [--batch N] [--threads N]");
        std::process::exit(2);
    }
    let (model, data, out) = (
        Path::new(&args[1]),
        Path::new(&args[2]),
        PathBuf::from(&args[3]),
    );
    let epochs = flag(&args, "--epochs", 2);
    let batch = flag(&args, "--batch", 4);
    let threads = flag(&args, "--threads", 2);
    let llm = LlmModel::load(model).expect("llama.cpp loads the model");
    let train = sequences(&llm, data);
    let base = Base::load(model).expect("the trainer loads the model");
    let options = TrainOptions {
        lora: LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: Target::ATTENTION.to_vec(),
        },
        epochs,
        batch_size: batch,
        learning_rate: 1e-3,
        warmup_ratio: 0.1,
        weight_decay: 0.0,
        seed: 7,
    };
    let mut trainer = Trainer::new(&base, options.clone(), train.len()).expect("trainer");
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut losses = Vec::new();
    let (mut timed_tokens, mut timed_s) = (0usize, 0f64);
    let mut step_rates = Vec::new();
    while let Some((epoch, picked)) = trainer.next_batch() {
        let refs: Vec<&Sequence> = picked.iter().map(|&i| &train[i]).collect();
        let tokens: usize = refs.iter().map(|s| s.tokens.len()).sum();
        let started = Instant::now();
        let report = trainer.train_step(epoch, &refs).expect("step");
        let dt = started.elapsed().as_secs_f64();
        // The first step warms caches on both sides and is left out.
        if !batches.is_empty() {
            timed_tokens += tokens;
            timed_s += dt;
            step_rates.push(tokens as f64 / dt);
        }
        eprintln!(
            "{}",
            json!({"step": report.step, "loss": report.train_loss, "seconds": dt, "tokens": tokens})
        );
        losses.push(report.train_loss);
        batches.push(picked);
    }
    let per_epoch = trainer.steps_per_epoch();
    let last = &losses[losses.len() - per_epoch..];
    let dump = json!({
        "options": options,
        "sequences": train.iter().map(|s| json!({"tokens": s.tokens, "learn": s.learn})).collect::<Vec<_>>(),
        "batches": batches,
    });
    std::fs::write(out.join("sequences.json"), dump.to_string()).expect("sequences.json");
    let adapter = out.join("adapter.gguf");
    std::fs::write(&adapter, trainer.adapter_gguf().expect("adapter")).expect("adapter.gguf");

    // Decode: the same prompts through the base model's context and the adapter's.
    let served = LlmModel::load_with_adapters(model, &[("tuned".into(), adapter)]).expect("served");
    let settings = GeneratorSettings {
        slots: 1,
        context_per_slot: 1024,
        threads: threads as i32,
        ..Default::default()
    };
    // Memory: what a context costs (each adapter in use gets one over the shared
    // weights), read as the process's resident set after each starts and decodes.
    let adapter_bytes = std::fs::metadata(out.join("adapter.gguf")).map_or(0, |m| m.len());
    let before = rss_bytes();
    let base_g = Generator::start(&served, "base", settings, None).expect("base generator");
    let prompts: Vec<Vec<i32>> = [
        "Write a long story about a lighthouse keeper and a storm.",
        "Explain in detail how a refrigerator works.",
        "Describe a walk through a busy market, sight by sight.",
    ]
    .iter()
    .map(|q| {
        let text = served
            .render_chat(&[ChatMessage::new("user", q)])
            .expect("prompt");
        served.tokenize(&text).expect("tokens")
    })
    .collect();
    let max_tokens = 128;
    // Warm both, then alternate rounds so drift on a shared machine hits both alike.
    decode_rate(&base_g, &prompts[..1], 16).await;
    let with_base = rss_bytes();
    let tuned_g = Generator::start_with_adapter(&served, "tuned", settings, None, Some("tuned"))
        .expect("tuned");
    decode_rate(&tuned_g, &prompts[..1], 16).await;
    let with_adapter = rss_bytes();
    // Five rounds; in each, every prompt decoded by both, back to back, the order
    // swapped from round to round; each pair gives one ratio, so a burst of load on this
    // shared machine spoils a pair, not the comparison (the median sets it aside).
    let rounds = 5;
    let (mut b, mut t, mut tokens) = (0f64, 0f64, 0usize);
    let mut ratios = Vec::new();
    for round in 0..rounds {
        for prompt in prompts.chunks(1) {
            let (rb, nb, rt, nt) = if round % 2 == 0 {
                let (rb, nb) = decode_rate(&base_g, prompt, max_tokens).await;
                let (rt, nt) = decode_rate(&tuned_g, prompt, max_tokens).await;
                (rb, nb, rt, nt)
            } else {
                let (rt, nt) = decode_rate(&tuned_g, prompt, max_tokens).await;
                let (rb, nb) = decode_rate(&base_g, prompt, max_tokens).await;
                (rb, nb, rt, nt)
            };
            let pairs = (rounds * prompts.len()) as f64;
            b += rb / pairs;
            t += rt / pairs;
            tokens += nb.min(nt);
            ratios.push(rt / rb);
        }
    }
    ratios.sort_by(f64::total_cmp);
    let median_ratio = ratios[ratios.len() / 2];
    println!(
        "{}",
        json!({
            "tokens_per_second": timed_tokens as f64 / timed_s,
            "step_rates": step_rates,
            "final_loss": last.iter().sum::<f32>() / last.len() as f32,
            "first_loss": losses[0],
            "steps": losses.len(),
            "batch_size": batch,
            "threads": threads,
            "tokens": train.iter().map(|s| s.tokens.len()).sum::<usize>(),
            "decode": {"base": b, "adapter": t, "tokens": tokens, "pairs": ratios.len(), "median_ratio": median_ratio},
            "memory": {
                "context_per_slot": settings.context_per_slot,
                "base_context_bytes": with_base.saturating_sub(before),
                "adapter_context_bytes": with_adapter.saturating_sub(with_base),
                "adapter_file_bytes": adapter_bytes,
            },
        })
    );
}
