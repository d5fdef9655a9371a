//! What the trainer's tests share: llama.cpp's greedy continuation with its
//! log-probabilities, and how far the trainer's log-probabilities of the same tokens are.

use aiaas_finetune::{Sequence, Trainer};
use aiaas_llm::{GenEvent, GenerateRequest, Generator, SamplingParams};

/// llama.cpp's greedy continuation (at most `max_tokens`) and its tokens' log-probabilities.
pub async fn greedy(g: &Generator, prompt: Vec<i32>, max_tokens: usize) -> (String, Vec<f32>) {
    let request = GenerateRequest {
        prompt,
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
    let mut rx = g.submit(request).unwrap();
    let (mut text, mut served) = (String::new(), Vec::new());
    while let Some(ev) = rx.recv().await {
        match ev {
            GenEvent::Text { text: t, logprobs } => {
                text.push_str(&t);
                served.extend(logprobs.into_iter().map(|l| l.logprob));
            }
            GenEvent::Done { .. } => break,
            GenEvent::Error(e) => panic!("{e}"),
            GenEvent::Started => {}
        }
    }
    (text, served)
}

/// The mean gap between the trainer's log-probabilities of the tokens after the first
/// `prompt_len` of `ids` and llama.cpp's `served` ones for them (llama.cpp multiplies
/// quantised weights by quantised activations, training the same dequantised weights
/// in f32).
pub fn logprob_gap(trainer: &Trainer, ids: &[i32], prompt_len: usize, served: &[f32]) -> f32 {
    assert_eq!(
        ids.len(),
        prompt_len + served.len(),
        "the reply tokenises back to the tokens served"
    );
    let sequence = Sequence {
        tokens: ids.iter().map(|&t| t as u32).collect(),
        learn: (0..ids.len()).map(|i| i >= prompt_len).collect(),
    };
    let ours = trainer.token_logprobs(&sequence).unwrap();
    assert_eq!(ours.len(), served.len());
    ours.iter()
        .zip(served)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / ours.len() as f32
}
