//! Sampling: the per-sequence llama.cpp sampler chain (penalties → grammar → top-p →
//! temperature → draw), and log-probabilities computed from the raw logits.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use serde::Serialize;

use crate::LlmError;

/// How to pick each next token (OpenAI's parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (always the most likely token).
    pub temperature: f32,
    pub top_p: f32,
    /// Same seed, same prompt, same parameters: same text.
    pub seed: Option<u64>,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            seed: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
        }
    }
}

impl SamplingParams {
    pub fn validate(&self) -> Result<(), LlmError> {
        let bad = |m: &str| Err(LlmError::InvalidRequest(m.to_string()));
        if !(0.0..=2.0).contains(&self.temperature) {
            return bad("temperature must be between 0 and 2");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be greater than 0 and at most 1");
        }
        if !(-2.0..=2.0).contains(&self.presence_penalty) {
            return bad("presence_penalty must be between -2 and 2");
        }
        if !(-2.0..=2.0).contains(&self.frequency_penalty) {
            return bad("frequency_penalty must be between -2 and 2");
        }
        Ok(())
    }
}

/// How many generated tokens the presence/frequency penalties look back over.
const PENALTY_WINDOW: i32 = 4096;

/// The sampler chain of one sequence. `grammar` is GBNF with root rule `root`, applied
/// from the start or once its trigger pattern matches.
pub(crate) fn build_sampler(
    model: &LlamaModel,
    params: &SamplingParams,
    grammar: Option<&crate::Constraint>,
    seed: u32,
) -> Result<LlamaSampler, LlmError> {
    let mut chain = Vec::new();
    if params.presence_penalty != 0.0 || params.frequency_penalty != 0.0 {
        chain.push(LlamaSampler::penalties(
            model.n_vocab(),
            PENALTY_WINDOW,
            1.0,
            params.frequency_penalty,
            params.presence_penalty,
        ));
    }
    if let Some(g) = grammar {
        let invalid = |e| LlmError::InvalidRequest(format!("the grammar is invalid: {e}"));
        let sampler = match &g.trigger {
            None => LlamaSampler::grammar(model, &g.gbnf, "root").map_err(invalid)?,
            Some(pattern) => LlamaSampler::grammar_lazy_patterns(
                model,
                &g.gbnf,
                "root",
                std::slice::from_ref(pattern),
                &[],
            )
            .map_err(invalid)?,
        };
        chain.push(sampler);
    }
    if params.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if params.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(params.top_p, 1));
        }
        chain.push(LlamaSampler::temp(params.temperature));
        chain.push(LlamaSampler::dist(seed));
    }
    Ok(LlamaSampler::chain_simple(chain))
}

/// A sampled token's log-probability and its most likely alternatives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprob {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopLogprob {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

/// log-softmax of the model's raw logits: the chosen token's value and the `top` best
/// (id, value) pairs, most likely first.
pub(crate) fn logprobs(logits: &[f32], chosen: usize, top: usize) -> (f32, Vec<(usize, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_z = max + sum.ln() as f32;
    let chosen_lp = logits.get(chosen).map_or(f32::NEG_INFINITY, |l| l - log_z);
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(top + 1);
    if top > 0 {
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        let k = top.min(idx.len());
        idx.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
        idx.truncate(k);
        idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        best = idx.into_iter().map(|i| (i, logits[i] - log_z)).collect();
    }
    (chosen_lp, best)
}

/// Index of the largest value (the first one on ties, as llama.cpp's greedy sampler).
pub(crate) fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in values.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best
}

/// A seed for a request that gave none.
pub(crate) fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// The log-probability entry of a sampled `token` (its text `bytes`) with the `top` most
/// likely alternatives, from the logits it was sampled from.
pub(crate) fn token_logprob(
    model: &LlamaModel,
    logits: &[f32],
    token: llama_cpp_2::token::LlamaToken,
    bytes: &[u8],
    top: usize,
) -> TokenLogprob {
    let (lp, best) = logprobs(logits, token.0 as usize, top);
    TokenLogprob {
        token: String::from_utf8_lossy(bytes).into_owned(),
        bytes: bytes.to_vec(),
        logprob: lp,
        top_logprobs: best
            .into_iter()
            .map(|(id, logprob)| {
                let b = crate::piece_bytes(model, llama_cpp_2::token::LlamaToken(id as i32), false);
                TopLogprob {
                    token: String::from_utf8_lossy(&b).into_owned(),
                    bytes: b,
                    logprob,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_and_top_k() {
        let logits = [1.0f32, 3.0, 2.0, 0.0];
        let (lp, top) = logprobs(&logits, 1, 2);
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        assert!((lp - (3.0f32.exp() / z).ln()).abs() < 1e-5);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        let total: f32 = logits.iter().map(|&l| (l - z.ln()).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
        let (_, none) = logprobs(&logits, 0, 0);
        assert!(none.is_empty());
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.5, 2.0, -1.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -3.0]), 1);
    }

    #[test]
    fn parameters_are_checked() {
        let ok = SamplingParams::default();
        assert!(ok.validate().is_ok());
        for bad in [
            SamplingParams {
                temperature: 2.5,
                ..ok.clone()
            },
            SamplingParams {
                top_p: 0.0,
                ..ok.clone()
            },
            SamplingParams {
                presence_penalty: -3.0,
                ..ok.clone()
            },
            SamplingParams {
                frequency_penalty: 2.1,
                ..ok.clone()
            },
        ] {
            assert!(matches!(bad.validate(), Err(LlmError::InvalidRequest(_))));
        }
    }
}
