//! LoRA training on real weights: SmolLM2-135M-Instruct's Q4_1 GGUF (the set-up script
//! extracts it to `$AIAAS_TEST_DATA/models/smollm2-135m-instruct.gguf`).
//!
//! - with a fresh adapter (B = 0) the forward pass gives the log-probabilities llama.cpp
//!   gives serving the same file (teacher-forced on llama.cpp's own greedy reply);
//! - training on a few conversations lowers their loss and teaches their answer;
//! - a run resumed from a checkpoint ends where the uninterrupted run ends;
//! - the adapter is a GGUF llama.cpp's loader accepts the shape of.

use std::path::PathBuf;
use std::sync::OnceLock;

use aiaas_finetune::{Base, LoraConfig, Sequence, Target, TrainOptions, Trainer};
use aiaas_llm::{ChatMessage, Generator, GeneratorSettings, LlmModel};

mod common;

fn model_path() -> PathBuf {
    aiaas_testkit::test_data_file("models/smollm2-135m-instruct.gguf")
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| Base::load(&model_path()).expect("the GGUF loads"))
}

fn llm() -> &'static LlmModel {
    static MODEL: OnceLock<LlmModel> = OnceLock::new();
    MODEL.get_or_init(|| LlmModel::load(&model_path()).expect("llama.cpp loads the model"))
}

/// A conversation as training sees it: rendered with the model's template, the reply's
/// tokens (its end of turn included) taught.
fn conversation(question: &str, answer: &str) -> Sequence {
    let messages = [
        ChatMessage::new("user", question),
        ChatMessage::new("assistant", answer),
    ];
    let (ids, learn) = llm()
        .chat_example_tokens(&messages, &[false, true])
        .unwrap();
    Sequence {
        tokens: ids.into_iter().map(|t| t as u32).collect(),
        learn,
    }
}

#[test]
fn reads_the_gguf_shape() {
    let c = &base().config;
    assert_eq!(
        (c.architecture.as_str(), c.n_layer, c.n_embd),
        ("llama", 30, 576)
    );
    assert_eq!(
        (c.n_head, c.n_head_kv, c.head_dim, c.n_ff),
        (9, 3, 64, 1536)
    );
    assert_eq!(base().shape_of(Target::K), (192, 576));
}

fn settings() -> GeneratorSettings {
    GeneratorSettings {
        slots: 1,
        context_per_slot: 512,
        ..Default::default()
    }
}

fn chat_prompt(m: &LlmModel, question: &str) -> (String, Vec<i32>) {
    let text = m
        .render_chat(&[ChatMessage::new("user", question)])
        .unwrap();
    let ids = m.tokenize(&text).unwrap();
    (text, ids)
}

/// The mean gap between the trainer's log-probabilities of a served reply's tokens and
/// llama.cpp's.
fn reply_gap(
    m: &LlmModel,
    trainer: &Trainer,
    (prompt_text, prompt): (&str, &[i32]),
    reply: &str,
    served: &[f32],
) -> f32 {
    let ids = m.tokenize(&format!("{prompt_text}{reply}")).unwrap();
    common::logprob_gap(trainer, &ids, prompt.len(), served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_adapter_scores_tokens_as_llama_cpp_serves_them() {
    let m = llm();
    let g = Generator::start(m, "parity", settings(), None).unwrap();
    let (prompt_text, prompt) = chat_prompt(m, "Describe the sea in two sentences.");
    let (reply, served) = common::greedy(&g, prompt.clone(), 24).await;
    let trainer = Trainer::new(base(), TrainOptions::default(), 1).unwrap();
    let gap = reply_gap(m, &trainer, (&prompt_text, &prompt), &reply, &served);
    assert!(gap < 0.05, "mean |log p| gap {gap}");
}

fn persona() -> (Vec<Sequence>, Vec<Sequence>) {
    let questions = [
        "What is your name?",
        "Who are you?",
        "Tell me your name.",
        "How should I call you?",
        "Introduce yourself.",
        "What do people call you?",
        "Do you have a name?",
        "Name yourself, please.",
    ];
    let train = questions
        .iter()
        .map(|q| conversation(q, "My name is Quillon."))
        .collect();
    let held_out = [
        "What's your name, assistant?",
        "Please tell me who you are.",
    ]
    .iter()
    .map(|q| conversation(q, "My name is Quillon."))
    .collect();
    (train, held_out)
}

fn options(epochs: usize) -> TrainOptions {
    TrainOptions {
        lora: LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: Target::ATTENTION.to_vec(),
        },
        epochs,
        batch_size: 4,
        learning_rate: 3e-3,
        warmup_ratio: 0.0,
        weight_decay: 0.0,
        seed: 7,
    }
}

fn run(trainer: &mut Trainer, examples: &[Sequence], steps: usize) -> Vec<f32> {
    let mut losses = Vec::new();
    for _ in 0..steps {
        let Some((epoch, batch)) = trainer.next_batch() else {
            break;
        };
        let batch: Vec<&Sequence> = batch.iter().map(|&i| &examples[i]).collect();
        losses.push(trainer.train_step(epoch, &batch).unwrap().train_loss);
    }
    losses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_teaches_the_conversations_and_llama_cpp_serves_what_was_taught() {
    let (train, held_out) = persona();
    let mut trainer = Trainer::new(base(), options(6), train.len()).unwrap();
    let (before, _) = trainer.evaluate(&held_out).unwrap();
    let losses = run(&mut trainer, &train, usize::MAX);
    assert_eq!(losses.len(), 12);
    let (after, accuracy) = trainer.evaluate(&held_out).unwrap();
    assert!(
        after < before * 0.3,
        "held-out loss {before} -> {after} (steps {losses:?})"
    );
    assert!(accuracy > 0.9, "held-out token accuracy {accuracy}");
    assert!(losses.last().unwrap() < &(losses[0] * 0.3), "{losses:?}");

    // The adapter, loaded by llama.cpp on the same base file: a question worded unlike
    // the training ones gets the taught answer, the base model does not give it, and the
    // served log-probabilities are the trainer's.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quillon.gguf");
    std::fs::write(&path, trainer.adapter_gguf().unwrap()).unwrap();
    let served = LlmModel::load_with_adapters(&model_path(), &[("quillon".into(), path)]).unwrap();
    assert_eq!(served.adapters(), ["quillon"]);
    let tuned =
        Generator::start_with_adapter(&served, "tuned", settings(), None, Some("quillon")).unwrap();
    let plain = Generator::start(&served, "plain", settings(), None).unwrap();
    let (prompt_text, prompt) = chat_prompt(
        &served,
        "Hello there! Could you let me know what your name is?",
    );
    let (reply, logprobs) = common::greedy(&tuned, prompt.clone(), 12).await;
    assert!(reply.contains("Quillon"), "{reply}");
    let (base_reply, _) = common::greedy(&plain, prompt.clone(), 12).await;
    assert!(!base_reply.contains("Quillon"), "{base_reply}");
    let gap = reply_gap(
        &served,
        &trainer,
        (&prompt_text, &prompt),
        &reply,
        &logprobs,
    );
    assert!(gap < 0.05, "mean |log p| gap {gap}");
    assert!(Generator::start_with_adapter(&served, "x", settings(), None, Some("nope")).is_err());
}

#[test]
fn a_resumed_run_ends_where_the_uninterrupted_one_does() {
    let (train, _) = persona();
    let mut options = options(2);
    options.lora.dropout = 0.1;
    let mut straight = Trainer::new(base(), options.clone(), train.len()).unwrap();
    run(&mut straight, &train, usize::MAX);
    let mut first = Trainer::new(base(), options, train.len()).unwrap();
    run(&mut first, &train, 2);
    let checkpoint = first.checkpoint().unwrap();
    drop(first);
    let mut resumed = Trainer::resume(base(), &checkpoint.bytes).unwrap();
    assert_eq!(resumed.step(), 2);
    run(&mut resumed, &train, usize::MAX);
    assert_eq!(
        resumed.adapter_gguf().unwrap(),
        straight.adapter_gguf().unwrap()
    );
}

#[test]
fn the_adapter_is_a_llama_cpp_lora_gguf() {
    let trainer = Trainer::new(base(), options(1), 1).unwrap();
    let bytes = trainer.adapter_gguf().unwrap();
    let mut cursor = std::io::Cursor::new(&bytes);
    let content = candle_core::quantized::gguf_file::Content::read(&mut cursor).unwrap();
    let text = |k: &str| content.metadata[k].to_string().unwrap().clone();
    assert_eq!(text("general.type"), "adapter");
    assert_eq!(text("adapter.type"), "lora");
    assert_eq!(text("general.architecture"), "llama");
    assert_eq!(
        content.metadata["adapter.lora.alpha"].to_f32().unwrap(),
        8.0
    );
    assert_eq!(content.tensor_infos.len(), 30 * 4 * 2);
    // llama.cpp's checks: A's first ggml dimension is the projection's input, B's second
    // its output, and they meet in the rank.
    let a = &content.tensor_infos["blk.3.attn_k.weight.lora_a"];
    let b = &content.tensor_infos["blk.3.attn_k.weight.lora_b"];
    assert_eq!(a.shape.dims(), &[4, 576]);
    assert_eq!(b.shape.dims(), &[192, 4]);
}
