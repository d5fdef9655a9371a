//! One window's decoding: Whisper's logit rules (suppressed tokens, a blank start
//! suppressed, timestamps in pairs, never decreasing, forced when they outweigh any text
//! token, the first one bounded) and the two searches Whisper's transcribe uses: beam
//! search with patience at temperature zero, and several samples at a temperature,
//! all sequences of a window decoded as one batch.

use candle_core::{Device, Tensor};
use rand::distr::{weighted::WeightedIndex, Distribution};
use rand::rngs::StdRng;

use crate::model::{DecoderState, Whisper};
use crate::SpeechError;

/// The special tokens of a Whisper vocabulary.
#[derive(Debug, Clone)]
pub struct Specials {
    pub eot: u32,
    pub sot: u32,
    pub sot_prev: u32,
    pub no_speech: Option<u32>,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
    pub transcribe: u32,
    /// Language codes and their tokens (multilingual models).
    pub languages: Vec<(String, u32)>,
}

/// How one window is decoded.
#[derive(Debug, Clone)]
pub struct Search {
    /// 0 decodes by beam search, above 0 samples.
    pub temperature: f32,
    pub beam_size: usize,
    pub patience: f32,
    /// Samples drawn at a temperature above zero (the best is kept).
    pub best_of: usize,
    pub timestamps: bool,
    /// In timestamp steps (0.02 s): the latest a window's first timestamp may be.
    pub max_initial_timestamp: u32,
}

/// A decoded window.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The tokens after the prompt, the end token excluded.
    pub tokens: Vec<u32>,
    /// Sum of the tokens' log-probabilities, the end token's included.
    pub sum_logprob: f32,
    /// Probability of the no-speech token at the start position.
    pub no_speech_prob: f32,
}

/// Logits forbidden at every step, and the tokens forbidden first.
pub struct Rules<'a> {
    pub specials: &'a Specials,
    pub suppress: &'a [u32],
    pub begin_suppress: &'a [u32],
}

impl Rules<'_> {
    /// Apply the rules to one sequence's logits; `generated` are its tokens so far.
    fn apply(&self, search: &Search, logits: &mut [f32], generated: &[u32]) {
        let s = self.specials;
        if generated.is_empty() {
            for &t in self.begin_suppress {
                logits[t as usize] = f32::NEG_INFINITY;
            }
        }
        for &t in self.suppress {
            logits[t as usize] = f32::NEG_INFINITY;
        }
        let tb = s.timestamp_begin as usize;
        if !search.timestamps {
            logits[tb..].fill(f32::NEG_INFINITY);
            return;
        }
        logits[s.no_timestamps as usize] = f32::NEG_INFINITY;
        let is_ts = |t: u32| t >= s.timestamp_begin;
        let last = generated.last().is_some_and(|&t| is_ts(t));
        let penultimate = generated.len() < 2 || is_ts(generated[generated.len() - 2]);
        if last {
            if penultimate {
                logits[tb..].fill(f32::NEG_INFINITY);
            } else {
                logits[..s.eot as usize].fill(f32::NEG_INFINITY);
            }
        }
        if let Some(&latest) = generated.iter().rev().find(|&&t| is_ts(t)) {
            // Never backwards, and a segment is never empty.
            let floor = if last && !penultimate {
                latest
            } else {
                latest + 1
            } as usize;
            let n = logits.len();
            logits[tb..floor.min(n)].fill(f32::NEG_INFINITY);
        }
        if generated.is_empty() {
            logits[..tb].fill(f32::NEG_INFINITY);
            let last_allowed = tb + search.max_initial_timestamp as usize;
            if last_allowed + 1 < logits.len() {
                logits[last_allowed + 1..].fill(f32::NEG_INFINITY);
            }
        }
        // When the timestamps together outweigh every text token, emit one.
        let lse = |xs: &[f32]| {
            let m = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if m == f32::NEG_INFINITY {
                return m;
            }
            m + xs.iter().map(|x| (x - m).exp()).sum::<f32>().ln()
        };
        let text_max = logits[..tb]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        if lse(&logits[tb..]) > text_max {
            logits[..tb].fill(f32::NEG_INFINITY);
        }
    }
}

pub(crate) fn log_softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f32>().ln();
    row.iter().map(|x| x - lse).collect()
}

fn rows(logits: &Tensor) -> Result<Vec<Vec<f32>>, SpeechError> {
    Ok(logits.to_vec2::<f32>()?)
}

/// Decode one encoded window after `prompt` (whose `sot_at`-th token is the start of
/// transcript) with `search`; at most `max_new` tokens.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    model: &Whisper,
    window: &DecoderState,
    prompt: &[u32],
    sot_at: usize,
    rules: &Rules,
    search: &Search,
    max_new: usize,
    rng: &mut StdRng,
) -> Result<Decoded, SpeechError> {
    let mut state = window.fork();
    let input = Tensor::new(prompt, &Device::Cpu)?.unsqueeze(0)?;
    let all = rows(&model.decode_all(&mut state, &input)?)?;
    let no_speech_prob = rules.specials.no_speech.map_or(0.0, |t| {
        let lp = log_softmax(&all[sot_at]);
        lp[t as usize].exp()
    });
    let first = all.last().expect("a prompt has tokens").clone();
    let (tokens, sum_logprob) = if search.temperature > 0.0 {
        sample(model, state, first, rules, search, max_new, rng)?
    } else {
        beam(model, state, first, rules, search, max_new)?
    };
    Ok(Decoded {
        tokens,
        sum_logprob,
        no_speech_prob,
    })
}

/// Score of a finished sequence: its log-probability over its length (Whisper's
/// default ranking, length penalty 1).
fn ranked(tokens: &[u32], sum: f32) -> f32 {
    sum / tokens.len().max(1) as f32
}

fn beam(
    model: &Whisper,
    mut state: DecoderState,
    first: Vec<f32>,
    rules: &Rules,
    search: &Search,
    max_new: usize,
) -> Result<(Vec<u32>, f32), SpeechError> {
    let eot = rules.specials.eot;
    let size = search.beam_size.max(1);
    let wanted = ((size as f32 * search.patience).round() as usize).max(1);
    // Live beams: tokens and summed log-probability.
    let mut beams: Vec<(Vec<u32>, f32)> = vec![(Vec::new(), 0.0)];
    let mut finished: Vec<(Vec<u32>, f32)> = Vec::new();
    let mut logits = vec![first];
    for _ in 0..max_new {
        let mut candidates: Vec<(usize, u32, f32)> = Vec::new();
        for (b, (tokens, sum)) in beams.iter().enumerate() {
            let row = &mut logits[b];
            rules.apply(search, row, tokens);
            let lp = log_softmax(row);
            let mut best: Vec<(u32, f32)> = lp
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(t, &v)| (t as u32, v))
                .collect();
            let keep = (2 * size).min(best.len());
            if keep == 0 {
                continue;
            }
            best.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1));
            best.truncate(keep);
            candidates.extend(best.into_iter().map(|(t, v)| (b, t, sum + v)));
        }
        // CTranslate2's rule (faster-whisper's engine): of the 2 x beam best candidates,
        // an end among the first `beam` finishes that hypothesis and the next candidate
        // that does not end takes its place; ends ranked lower are not hypotheses.
        candidates.sort_by(|a, b| b.2.total_cmp(&a.2));
        candidates.truncate(2 * size);
        let mut next: Vec<(Vec<u32>, f32)> = Vec::new();
        let mut origin: Vec<u32> = Vec::new();
        let mut secondary = size;
        for k in 0..size.min(candidates.len()) {
            let (mut b, mut t, mut score) = candidates[k];
            if t == eot {
                finished.push((beams[b].0.clone(), score));
                while secondary < candidates.len() && candidates[secondary].1 == eot {
                    secondary += 1;
                }
                let Some(&replacement) = candidates.get(secondary) else {
                    continue;
                };
                secondary += 1;
                (b, t, score) = replacement;
            }
            let mut tokens = beams[b].0.clone();
            tokens.push(t);
            next.push((tokens, score));
            origin.push(b as u32);
        }
        if finished.len() >= wanted || next.is_empty() {
            break;
        }
        state.select(&origin)?;
        let last: Vec<u32> = next
            .iter()
            .map(|(t, _)| *t.last().expect("one token"))
            .collect();
        let input = Tensor::new(last.as_slice(), &Device::Cpu)?.unsqueeze(1)?;
        logits = rows(&model.decode(&mut state, &input)?)?;
        beams = next;
    }
    if finished.is_empty() {
        finished = beams;
    }
    Ok(finished
        .into_iter()
        .max_by(|a, b| ranked(&a.0, a.1).total_cmp(&ranked(&b.0, b.1)))
        .expect("at least one sequence"))
}

fn sample(
    model: &Whisper,
    mut state: DecoderState,
    first: Vec<f32>,
    rules: &Rules,
    search: &Search,
    max_new: usize,
    rng: &mut StdRng,
) -> Result<(Vec<u32>, f32), SpeechError> {
    let eot = rules.specials.eot;
    let n = search.best_of.max(1);
    state.select(&vec![0; n])?;
    let mut seqs: Vec<(Vec<u32>, f32, bool)> = vec![(Vec::new(), 0.0, false); n];
    let mut logits = vec![first; n];
    for _ in 0..max_new {
        for (i, (tokens, sum, done)) in seqs.iter_mut().enumerate() {
            if *done {
                continue;
            }
            let row = &mut logits[i];
            rules.apply(search, row, tokens);
            let lp = log_softmax(row);
            let scaled: Vec<f32> = row
                .iter()
                .map(|&v| {
                    if v.is_finite() {
                        v / search.temperature
                    } else {
                        f32::NEG_INFINITY
                    }
                })
                .collect();
            let p = log_softmax(&scaled);
            let weights: Vec<f32> = p.iter().map(|v| v.exp()).collect();
            let t = WeightedIndex::new(&weights)
                .map_err(|e| SpeechError::Model(format!("sampling: {e}")))?
                .sample(rng) as u32;
            *sum += lp[t as usize];
            if t == eot {
                *done = true;
            } else {
                tokens.push(t);
            }
        }
        if seqs.iter().all(|s| s.2) {
            break;
        }
        // Finished sequences keep being fed (their end token) to keep the batch whole;
        // their results are not read.
        let last: Vec<u32> = seqs
            .iter()
            .map(|(t, _, done)| {
                if *done {
                    eot
                } else {
                    *t.last().unwrap_or(&eot)
                }
            })
            .collect();
        let input = Tensor::new(last.as_slice(), &Device::Cpu)?.unsqueeze(1)?;
        logits = rows(&model.decode(&mut state, &input)?)?;
    }
    Ok(seqs
        .into_iter()
        .map(|(t, s, _)| (t, s))
        .max_by(|a, b| ranked(&a.0, a.1).total_cmp(&ranked(&b.0, b.1)))
        .expect("at least one sample"))
}
