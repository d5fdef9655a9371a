//! Shared candle plumbing for the autograd networks (TextCNN, GRU/LSTM): named parameters with
//! seeded initialisation, Adam, weight snapshots, safetensors I/O and padded id batches.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::Rng;

use super::{to_safetensors, StoredTensors};
use crate::metrics::argmax;
use crate::TrainError;

/// The parameters of one network, in a fixed order, plus its optimiser while training.
/// candle's own random initialisers are not seedable on the CPU, so every tensor is
/// initialised here from the job's seeded RNG (same seed, same model).
pub(crate) struct Params {
    vars: Vec<(String, Var, Vec<usize>)>,
    opt: Option<AdamW>,
}

impl Params {
    pub(crate) fn new() -> Params {
        Params {
            vars: Vec::new(),
            opt: None,
        }
    }

    /// Add a parameter with the given values.
    pub(crate) fn add(&mut self, name: &str, data: Vec<f32>, shape: &[usize]) -> Result<Tensor, TrainError> {
        let var = Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu)?)?;
        let t = var.as_tensor().clone();
        self.vars.push((name.to_string(), var, shape.to_vec()));
        Ok(t)
    }

    /// Add a parameter drawn uniformly from `[-bound, bound)`.
    pub(crate) fn uniform(
        &mut self,
        rng: &mut StdRng,
        name: &str,
        shape: &[usize],
        bound: f32,
    ) -> Result<Tensor, TrainError> {
        let n = shape.iter().product();
        let data = (0..n).map(|_| rng.random_range(-bound..bound.max(1e-12))).collect();
        self.add(name, data, shape)
    }

    /// Add a parameter from stored weights (inference; no gradients needed).
    pub(crate) fn load(&mut self, st: &StoredTensors, name: &str, shape: &[usize]) -> Result<Tensor, TrainError> {
        let data = st.flat(name, shape)?;
        self.add(name, data, shape)
    }

    /// Create the Adam optimiser over every parameter except those named in `frozen`.
    pub(crate) fn start_training(&mut self, lr: f64, frozen: &[&str]) -> Result<(), TrainError> {
        let vars = self
            .vars
            .iter()
            .filter(|(n, _, _)| !frozen.contains(&n.as_str()))
            .map(|(_, v, _)| v.clone())
            .collect();
        let params = ParamsAdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
        };
        self.opt = Some(AdamW::new(vars, params)?);
        Ok(())
    }

    /// Backpropagate `loss` and update the parameters.
    pub(crate) fn step(&mut self, loss: &Tensor) -> Result<(), TrainError> {
        let opt = self
            .opt
            .as_mut()
            .ok_or_else(|| TrainError::Backend("network was loaded for inference only".into()))?;
        opt.backward_step(loss)?;
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Result<Vec<Tensor>, TrainError> {
        self.vars
            .iter()
            .map(|(_, v, _)| v.as_tensor().copy().map_err(TrainError::from))
            .collect()
    }

    pub(crate) fn restore(&self, snapshot: Vec<Tensor>) -> Result<(), TrainError> {
        for ((_, v, _), t) in self.vars.iter().zip(snapshot) {
            v.set(&t)?;
        }
        Ok(())
    }

    pub(crate) fn save(&self) -> Result<Vec<u8>, TrainError> {
        let mut arrays = Vec::with_capacity(self.vars.len());
        for (name, v, shape) in &self.vars {
            let data = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            arrays.push((name.as_str(), data, shape.clone()));
        }
        to_safetensors(arrays)
    }
}

/// A batch of id sequences padded (with 0) to the longest one, or to `min_len` if longer:
/// ids `[B, L]` (u32) and mask `[B, L]` (f32, 1 for real tokens). With `reversed`, each
/// sequence's real tokens are reversed in place (padding stays at the end), which is what a
/// backward RNN direction reads.
pub(crate) fn id_batch(inputs: &[&Vec<u32>], min_len: usize, reversed: bool) -> Result<(Tensor, Tensor), TrainError> {
    let len = inputs.iter().map(|s| s.len()).max().unwrap_or(0).max(min_len).max(1);
    let mut ids = vec![0u32; inputs.len() * len];
    let mut mask = vec![0f32; inputs.len() * len];
    for (b, seq) in inputs.iter().enumerate() {
        let row = &mut ids[b * len..b * len + seq.len()];
        row.copy_from_slice(seq);
        if reversed {
            row.reverse();
        }
        mask[b * len..b * len + seq.len()].fill(1.0);
    }
    let shape = (inputs.len(), len);
    Ok((
        Tensor::from_vec(ids, shape, &Device::Cpu)?,
        Tensor::from_vec(mask, shape, &Device::Cpu)?,
    ))
}

/// Mean cross-entropy of `logits` `[B, C]` against `labels`, the batch's summed loss and the
/// number of correct predictions.
pub(crate) fn loss_and_correct(logits: &Tensor, labels: &[usize]) -> Result<(Tensor, f64, usize), TrainError> {
    let targets = Tensor::from_vec(
        labels.iter().map(|&l| l as u32).collect::<Vec<u32>>(),
        labels.len(),
        &Device::Cpu,
    )?;
    let loss = candle_nn::loss::cross_entropy(logits, &targets)?;
    let mean = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
    let rows = logits.to_vec2::<f32>()?;
    let correct = rows
        .iter()
        .zip(labels)
        .filter(|(r, &l)| argmax(r) == l)
        .count();
    Ok((loss, mean * labels.len() as f64, correct))
}

/// Row-wise softmax probabilities of `logits` `[B, C]`.
pub(crate) fn probabilities(logits: &Tensor) -> Result<Vec<Vec<f32>>, TrainError> {
    Ok(candle_nn::ops::softmax_last_dim(logits)?.to_vec2::<f32>()?)
}

/// Inverted-dropout mask `[rows, cols]`: 0 with probability `p`, else `1 / (1 - p)`, from the
/// job's seeded RNG (candle's CPU dropout is not seedable).
pub(crate) fn dropout_mask(rng: &mut StdRng, rows: usize, cols: usize, p: f32) -> Result<Tensor, TrainError> {
    let keep = 1.0 / (1.0 - p);
    let data = (0..rows * cols)
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { keep })
        .collect();
    Ok(Tensor::from_vec(data, (rows, cols), &Device::Cpu)?)
}
