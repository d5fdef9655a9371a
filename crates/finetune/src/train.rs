//! Training: batches of examples, gradients accumulated over a batch (each example run
//! alone, unpadded, as many side by side as there are threads, summed in the batch's
//! order; the loss normalised by the batch's taught tokens, so a batch weighs every
//! taught token alike, as a padded batch with a token-mean loss does), AdamW with
//! decoupled weight decay, the learning rate warmed up linearly over the first steps and
//! decayed linearly to zero, as Hugging Face's trainer does by default.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::base::Base;
use crate::engine::{score, zero_gradients, Dropout, Workspace};
use crate::lora::{LoraConfig, LoraWeights};
use crate::{FinetuneError, Result};

/// One training example: token ids, and per token whether the loss covers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub tokens: Vec<u32>,
    pub learn: Vec<bool>,
}

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub lora: LoraConfig,
    pub epochs: usize,
    /// Examples per optimiser step.
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Share of the steps the learning rate warms up over.
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            lora: LoraConfig::default(),
            epochs: 3,
            batch_size: 4,
            learning_rate: 2e-4,
            warmup_ratio: 0.1,
            weight_decay: 0.0,
            seed: 0,
        }
    }
}

/// What one optimiser step did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// 1-based.
    pub step: usize,
    pub total_steps: usize,
    /// 1-based.
    pub epoch: usize,
    /// Mean cross-entropy per taught token of the batch (before the step).
    pub train_loss: f32,
    /// Share of the batch's taught tokens the model ranked first.
    pub token_accuracy: f32,
    pub learning_rate: f64,
    pub tokens: usize,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// A training run over `examples` examples.
pub struct Trainer<'a> {
    base: &'a Base,
    lora: LoraWeights,
    options: TrainOptions,
    examples: usize,
    /// Optimiser steps taken.
    step: usize,
    /// AdamW's first and second moments per adapter pair: `(m_a, v_a, m_b, v_b)`.
    moments: Vec<[Vec<f32>; 4]>,
    /// The forward and backward passes' buffers, one per example in flight, reused from
    /// example to example.
    workspaces: Mutex<Vec<Workspace>>,
}

/// A run's state: resumable.
pub struct Checkpoint {
    /// safetensors: the adapter, the moments, the counters and options as metadata.
    pub bytes: Vec<u8>,
    pub step: usize,
}

impl<'a> Trainer<'a> {
    pub fn new(base: &'a Base, options: TrainOptions, examples: usize) -> Result<Trainer<'a>> {
        check(&options, examples)?;
        let lora = LoraWeights::init(base, options.lora.clone(), options.seed)?;
        let moments = lora
            .pairs
            .iter()
            .map(|p| {
                let (a, b) = (vec![0.0; p.a.len()], vec![0.0; p.b.len()]);
                [a.clone(), a, b.clone(), b]
            })
            .collect();
        Ok(Trainer {
            base,
            lora,
            options,
            examples,
            step: 0,
            moments,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    /// Continue a run from its checkpoint (same base, options and examples).
    pub fn resume(base: &'a Base, checkpoint: &[u8]) -> Result<Trainer<'a>> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(checkpoint)
            .map_err(|e| FinetuneError::Model(format!("not a checkpoint: {e}")))?;
        let info = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("aiaas.trainer"))
            .ok_or_else(|| FinetuneError::Model("not a checkpoint of this trainer".into()))?;
        let state: SavedState = serde_json::from_str(info)
            .map_err(|e| FinetuneError::Model(format!("the checkpoint's state: {e}")))?;
        let mut trainer = Trainer::new(base, state.options, state.examples)?;
        let saved = candle_core::safetensors::load_buffer(checkpoint, &Device::Cpu)?;
        trainer.lora.assign(&saved)?;
        for (pair, moments) in trainer.lora.pairs.iter().zip(trainer.moments.iter_mut()) {
            let (a, b) = pair.names();
            let names = [
                format!("adam.m.{a}"),
                format!("adam.v.{a}"),
                format!("adam.m.{b}"),
                format!("adam.v.{b}"),
            ];
            for (key, dst) in names.iter().zip(moments.iter_mut()) {
                let value = saved
                    .get(key)
                    .ok_or_else(|| FinetuneError::Model(format!("the checkpoint lacks {key}")))?;
                let value: Vec<f32> = value.flatten_all()?.to_vec1()?;
                if value.len() != dst.len() {
                    return Err(FinetuneError::Model(format!(
                        "the checkpoint's {key} has {} values, the adapter's {}",
                        value.len(),
                        dst.len()
                    )));
                }
                *dst = value;
            }
        }
        trainer.step = state.step;
        Ok(trainer)
    }

    pub fn options(&self) -> &TrainOptions {
        &self.options
    }

    /// Optimiser steps per epoch, and in all.
    pub fn steps_per_epoch(&self) -> usize {
        self.examples.div_ceil(self.options.batch_size)
    }

    pub fn total_steps(&self) -> usize {
        self.steps_per_epoch() * self.options.epochs
    }

    /// Steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The examples of the next step (indices into the training set), or None when the
    /// run is over.
    pub fn next_batch(&self) -> Option<(usize, Vec<usize>)> {
        if self.step >= self.total_steps() {
            return None;
        }
        let per_epoch = self.steps_per_epoch();
        let epoch = self.step / per_epoch;
        let order = epoch_order(self.examples, self.options.seed, epoch);
        let at = (self.step % per_epoch) * self.options.batch_size;
        let end = (at + self.options.batch_size).min(self.examples);
        Some((epoch + 1, order[at..end].to_vec()))
    }

    /// The learning rate of step `step` (0-based): linear warm-up, then linear decay.
    pub fn learning_rate(&self, step: usize) -> f64 {
        let total = self.total_steps().max(1);
        let warmup = (self.options.warmup_ratio * total as f64).ceil() as usize;
        let peak = self.options.learning_rate;
        if step < warmup {
            peak * (step + 1) as f64 / warmup as f64
        } else {
            peak * (total - step) as f64 / (total - warmup).max(1) as f64
        }
    }

    /// One optimiser step over `batch`.
    pub fn train_step(&mut self, epoch: usize, batch: &[&Sequence]) -> Result<StepReport> {
        let taught: usize = batch.iter().map(|s| taught(s)).sum();
        if taught == 0 {
            return Err(FinetuneError::InvalidInput(
                "the batch teaches no token".into(),
            ));
        }
        for sequence in batch {
            check_sequence(sequence, self.base.config.vocab)?;
        }
        // Each example's dropout masks come from the seed, the step and the example's
        // place in the batch alone, so a resumed run draws what the uninterrupted one
        // would have, whatever the threads.
        let step_seed =
            self.options.seed ^ (self.step as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let scale = 1.0 / taught as f32;
        let parts = self.run_examples(batch, |index, sequence, workspace| {
            let mut rng = StdRng::seed_from_u64(
                step_seed ^ (index as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            );
            let mut grads = zero_gradients(&self.lora);
            let dropout = Dropout {
                p: self.options.lora.dropout,
                rng: &mut rng,
            };
            let scored = score(
                self.base,
                &self.lora,
                &sequence.tokens,
                &sequence.learn,
                Some(dropout),
                Some((&mut grads, scale)),
                workspace,
            );
            (grads, scored.loss, scored.correct)
        });
        // Summed in the batch's order: the same result whatever ran where.
        let (mut loss, mut correct) = (0f64, 0usize);
        let mut grads = zero_gradients(&self.lora);
        for (part, l, c) in parts {
            loss += l;
            correct += c;
            for ((da, db), (pa, pb)) in grads.iter_mut().zip(part) {
                add(da, &pa);
                add(db, &pb);
            }
        }
        let lr = self.learning_rate(self.step);
        self.step += 1;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        let decay = (1.0 - lr * self.options.weight_decay) as f32;
        let (b1, b2, eps, lr32) = (BETA1 as f32, BETA2 as f32, EPS as f32, lr as f32);
        let (c1, c2) = (c1 as f32, c2 as f32);
        for ((pair, (da, db)), [ma, va, mb, vb]) in self
            .lora
            .pairs
            .iter_mut()
            .zip(&grads)
            .zip(self.moments.iter_mut())
        {
            for (w, g, m, v) in [(&mut pair.a, da, ma, va), (&mut pair.b, db, mb, vb)] {
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    let update = (*m / c1) / ((*v / c2).sqrt() + eps);
                    *w = *w * decay - lr32 * update;
                }
            }
        }
        Ok(StepReport {
            step: self.step,
            total_steps: self.total_steps(),
            epoch,
            train_loss: (loss / taught as f64) as f32,
            token_accuracy: correct as f32 / taught as f32,
            learning_rate: lr,
            tokens: taught,
        })
    }

    /// Mean loss per taught token and token accuracy of `sequences` (no dropout).
    pub fn evaluate(&self, sequences: &[Sequence]) -> Result<(f32, f32)> {
        for s in sequences {
            check_sequence(s, self.base.config.vocab)?;
        }
        let refs: Vec<&Sequence> = sequences.iter().collect();
        let scores = self.run_examples(&refs, |_, s, workspace| {
            score::<StdRng>(
                self.base, &self.lora, &s.tokens, &s.learn, None, None, workspace,
            )
        });
        let (mut loss, mut tokens, mut correct) = (0f64, 0usize, 0usize);
        for scored in scores {
            loss += scored.loss;
            tokens += scored.tokens;
            correct += scored.correct;
        }
        if tokens == 0 {
            return Err(FinetuneError::InvalidInput(
                "the examples teach no token".into(),
            ));
        }
        Ok((
            (loss / tokens as f64) as f32,
            correct as f32 / tokens as f32,
        ))
    }

    /// The log-probability of each taught token of `sequence` under the model with the
    /// adapter as it is now (no dropout).
    pub fn token_logprobs(&self, sequence: &Sequence) -> Result<Vec<f32>> {
        check_sequence(sequence, self.base.config.vocab)?;
        let mut scores = self.run_examples(&[sequence], |_, s, workspace| {
            score::<StdRng>(
                self.base, &self.lora, &s.tokens, &s.learn, None, None, workspace,
            )
        });
        Ok(scores.remove(0).logprobs)
    }

    /// `f(index, example, buffers)` for every example, as many at once as the thread pool
    /// has threads (each example's products still split over threads left idle); the
    /// results in the examples' order. Examples run side by side keep both cores busy
    /// where one example's serial stretches (norms, RoPE, small products) would leave one
    /// idle: about 1.15x the tokens/s of one example at a time on 2 cores (bench/finetune).
    fn run_examples<T: Send>(
        &self,
        examples: &[&Sequence],
        f: impl Fn(usize, &Sequence, &mut Workspace) -> T + Sync,
    ) -> Vec<T> {
        let at_once = rayon::current_num_threads().max(1);
        let mut out = Vec::with_capacity(examples.len());
        for (g, group) in examples.chunks(at_once).enumerate() {
            let part: Vec<T> = group
                .par_iter()
                .enumerate()
                .map(|(i, sequence)| {
                    let taken = self.lock_workspaces().pop();
                    let mut workspace = taken.unwrap_or_default();
                    let result = f(g * at_once + i, sequence, &mut workspace);
                    self.lock_workspaces().push(workspace);
                    result
                })
                .collect();
            out.extend(part);
        }
        out
    }

    fn lock_workspaces(&self) -> std::sync::MutexGuard<'_, Vec<Workspace>> {
        self.workspaces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run's state now.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let mut tensors: Vec<(String, Tensor)> = self.lora.named()?;
        let r = self.lora.config.rank;
        for (pair, [ma, va, mb, vb]) in self.lora.pairs.iter().zip(&self.moments) {
            let (a, b) = pair.names();
            for (name, m, v, shape) in [(a, ma, va, (r, pair.inp)), (b, mb, vb, (pair.out, r))] {
                tensors.push((
                    format!("adam.m.{name}"),
                    Tensor::from_slice(m, shape, &Device::Cpu)?,
                ));
                tensors.push((
                    format!("adam.v.{name}"),
                    Tensor::from_slice(v, shape, &Device::Cpu)?,
                ));
            }
        }
        let state = SavedState {
            options: self.options.clone(),
            examples: self.examples,
            step: self.step,
        };
        let info = serde_json::to_string(&state)
            .map_err(|e| FinetuneError::Model(format!("saving the state: {e}")))?;
        let metadata = HashMap::from([("aiaas.trainer".to_string(), info)]);
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
                .map_err(|e| FinetuneError::Model(format!("writing the checkpoint: {e}")))?;
        Ok(Checkpoint {
            bytes,
            step: self.step,
        })
    }

    /// The adapter in llama.cpp's GGUF adapter format.
    pub fn adapter_gguf(&self) -> Result<Vec<u8>> {
        self.lora.to_gguf(&self.base.config.architecture)
    }
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    options: TrainOptions,
    examples: usize,
    step: usize,
}

/// The order examples are seen in during `epoch` (0-based): a shuffle seeded by the
/// run's seed and the epoch.
pub fn epoch_order(examples: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..examples).collect();
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ epoch as u64);
    order.shuffle(&mut rng);
    order
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn taught(s: &Sequence) -> usize {
    s.learn.iter().skip(1).filter(|l| **l).count()
}

fn check(options: &TrainOptions, examples: usize) -> Result<()> {
    options.lora.check()?;
    if examples == 0 {
        return Err(FinetuneError::InvalidInput("no training examples".into()));
    }
    if !(1..=100).contains(&options.epochs) {
        return Err(FinetuneError::InvalidInput(format!(
            "epochs must be 1-100, got {}",
            options.epochs
        )));
    }
    if !(1..=256).contains(&options.batch_size) {
        return Err(FinetuneError::InvalidInput(format!(
            "batch size must be 1-256, got {}",
            options.batch_size
        )));
    }
    if !(options.learning_rate > 0.0 && options.learning_rate < 1.0) {
        return Err(FinetuneError::InvalidInput(format!(
            "the learning rate must be above 0 and below 1, got {}",
            options.learning_rate
        )));
    }
    if !(0.0..1.0).contains(&options.warmup_ratio) || options.weight_decay < 0.0 {
        return Err(FinetuneError::InvalidInput(
            "warm-up ratio must be in [0, 1) and weight decay at least 0".into(),
        ));
    }
    Ok(())
}

fn check_sequence(s: &Sequence, vocab: usize) -> Result<()> {
    if s.tokens.len() < 2 || s.tokens.len() != s.learn.len() {
        return Err(FinetuneError::InvalidInput(
            "an example needs at least two tokens and a mask as long".into(),
        ));
    }
    if let Some(id) = s.tokens.iter().find(|&&id| id as usize >= vocab) {
        return Err(FinetuneError::InvalidInput(format!(
            "token id {id} is outside the model's vocabulary of {vocab}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::base::Arch;
    use crate::lora::Target;

    /// Examples run side by side (as many as the pool has threads) give exactly what
    /// one at a time gives: the adapter after two steps is the same bytes.
    #[test]
    fn a_step_is_the_same_whatever_the_threads() {
        let base = crate::engine::tests::tiny(Arch::Gemma3);
        let mut rng = StdRng::seed_from_u64(4);
        let examples: Vec<Sequence> = [7usize, 40, 12, 33, 9]
            .iter()
            .map(|&n| Sequence {
                tokens: (0..n).map(|_| rng.random_range(0..50)).collect(),
                learn: (0..n).map(|i| i % 2 == 1).collect(),
            })
            .collect();
        let refs: Vec<&Sequence> = examples.iter().collect();
        let options = TrainOptions {
            lora: LoraConfig {
                rank: 4,
                alpha: 8.0,
                dropout: 0.1,
                targets: Target::ALL.to_vec(),
            },
            batch_size: 5,
            learning_rate: 1e-2,
            ..TrainOptions::default()
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut trainer = Trainer::new(&base, options.clone(), refs.len()).unwrap();
                let losses = [
                    trainer.train_step(1, &refs).unwrap().train_loss,
                    trainer.train_step(1, &refs).unwrap().train_loss,
                ];
                assert!(losses[1] < losses[0], "{losses:?}");
                (losses, trainer.adapter_gguf().unwrap())
            })
        };
        let (one, three) = (run(1), run(3));
        assert_eq!(one.0, three.0, "losses");
        assert!(one.1 == three.1, "the adapters differ");
    }
}
