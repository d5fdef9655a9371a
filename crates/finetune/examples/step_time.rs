//! Time training steps on a GGUF (bench/finetune runs it beside PEFT):
//!
//!   step_time MODEL.gguf TOKENS STEPS [DROPOUT]
//!
//! Prints one JSON line per step: seconds and tokens (one example of TOKENS tokens,
//! every token taught; the default adapter, its dropout DROPOUT, 0.05 by default).

use std::time::Instant;

use aiaas_finetune::{Base, LoraConfig, Sequence, TrainOptions, Trainer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (model, tokens, steps, dropout) = match &args[..] {
        [_, m, t, s] => (m, t, s, "0.05"),
        [_, m, t, s, d] => (m, t, s, d.as_str()),
        _ => {
            eprintln!("usage: step_time MODEL.gguf TOKENS STEPS [DROPOUT]");
            std::process::exit(2);
        }
    };
    let base = Base::load(std::path::Path::new(model)).expect("model");
    let n: usize = tokens.parse().expect("tokens");
    let vocab = base.config.vocab as u32;
    let sequence = Sequence {
        tokens: (0..n as u32).map(|i| (i * 7919 + 13) % vocab).collect(),
        learn: vec![true; n],
    };
    let options = TrainOptions {
        batch_size: 1,
        lora: LoraConfig {
            dropout: dropout.parse().expect("dropout"),
            ..LoraConfig::default()
        },
        ..TrainOptions::default()
    };
    let steps: usize = steps.parse().expect("steps");
    let mut trainer = Trainer::new(&base, options, steps).expect("trainer");
    for _ in 0..steps {
        let started = Instant::now();
        let report = trainer.train_step(1, &[&sequence]).expect("step");
        println!(
            "{}",
            serde_json::json!({"seconds": started.elapsed().as_secs_f64(), "tokens": n, "loss": report.train_loss})
        );
    }
}
