//! Shared candle plumbing for the autograd networks (TextCNN, GRU/LSTM): named parameters with
//! seeded initialisation, Adam, weight snapshots, safetensors I/O and padded id batches.

use candle_core::backprop::GradStore;
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
    embedding: Option<SparseEmbedding>,
}

/// Name of the embedding table, which gets the row-sparse Adam of [`SparseEmbedding`].
pub(crate) const EMBEDDING: &str = "embedding.weight";

/// Lazy (row-sparse) Adam for the embedding table, like the average-pooling network's: only
/// the rows of the words in a batch are updated. A dense candle AdamW step over a
/// 20k x 100 table costs more than the rest of a TextCNN step's optimiser work combined.
struct SparseEmbedding {
    var: Var,
    shape: Vec<usize>,
    host: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    adam: super::Adam,
    touched: Vec<bool>,
}

impl Params {
    pub(crate) fn new() -> Params {
        Params {
            vars: Vec::new(),
            opt: None,
            embedding: None,
        }
    }

    /// Add a parameter with the given values.
    pub(crate) fn add(
        &mut self,
        name: &str,
        data: Vec<f32>,
        shape: &[usize],
    ) -> Result<Tensor, TrainError> {
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
        let data = (0..n)
            .map(|_| rng.random_range(-bound..bound.max(1e-12)))
            .collect();
        self.add(name, data, shape)
    }

    /// Add a parameter from stored weights (inference; no gradients needed).
    pub(crate) fn load(
        &mut self,
        st: &StoredTensors,
        name: &str,
        shape: &[usize],
    ) -> Result<Tensor, TrainError> {
        let data = st.flat(name, shape)?;
        self.add(name, data, shape)
    }

    /// Create the Adam optimisers: row-sparse for the embedding table (unless frozen), candle's
    /// AdamW (no weight decay) for the rest; parameters named in `frozen` stay fixed.
    pub(crate) fn start_training(&mut self, lr: f64, frozen: &[&str]) -> Result<(), TrainError> {
        let trainable = |n: &str| !frozen.contains(&n);
        let vars = self
            .vars
            .iter()
            .filter(|(n, _, _)| trainable(n) && n != EMBEDDING)
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
        if let Some((_, var, shape)) = self
            .vars
            .iter()
            .find(|(n, _, _)| n == EMBEDDING && trainable(n))
        {
            let host = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            self.embedding = Some(SparseEmbedding {
                var: var.clone(),
                shape: shape.clone(),
                m: vec![0.0; host.len()],
                v: vec![0.0; host.len()],
                host,
                adam: super::Adam::new(lr),
                touched: vec![false; shape.first().copied().unwrap_or(0)],
            });
        }
        Ok(())
    }

    /// Backpropagate `loss` and update the parameters; `inputs` are the batch's token ids (the
    /// embedding rows that can have a gradient).
    pub(crate) fn step(&mut self, loss: &Tensor, inputs: &[&Vec<u32>]) -> Result<(), TrainError> {
        self.apply(&loss.backward()?, inputs)
    }

    /// Update the parameters from already computed gradients.
    pub(crate) fn apply(
        &mut self,
        grads: &GradStore,
        inputs: &[&Vec<u32>],
    ) -> Result<(), TrainError> {
        let opt = self
            .opt
            .as_mut()
            .ok_or_else(|| TrainError::Backend("network was loaded for inference only".into()))?;
        opt.step(grads)?;
        let Some(emb) = self.embedding.as_mut() else {
            return Ok(());
        };
        let Some(grad) = grads.get(&emb.var) else {
            return Ok(());
        };
        let grad = grad.flatten_all()?.to_vec1::<f32>()?;
        let dim = emb.shape.get(1).copied().unwrap_or(1);
        let rows = emb.touched.len();
        emb.adam.next_step();
        for &id in inputs.iter().flat_map(|s| s.iter()) {
            let row = id as usize;
            if row >= rows || emb.touched[row] {
                continue;
            }
            emb.touched[row] = true;
            let r = row * dim..(row + 1) * dim;
            emb.adam.update(
                &mut emb.host[r.clone()],
                &grad[r.clone()],
                &mut emb.m[r.clone()],
                &mut emb.v[r],
            );
        }
        for &id in inputs.iter().flat_map(|s| s.iter()) {
            if let Some(t) = emb.touched.get_mut(id as usize) {
                *t = false;
            }
        }
        emb.var.set(&Tensor::from_slice(
            &emb.host,
            emb.shape.as_slice(),
            &Device::Cpu,
        )?)?;
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Result<Vec<Tensor>, TrainError> {
        self.vars
            .iter()
            .map(|(_, v, _)| v.as_tensor().copy().map_err(TrainError::from))
            .collect()
    }

    pub(crate) fn restore(&mut self, snapshot: Vec<Tensor>) -> Result<(), TrainError> {
        for ((_, v, _), t) in self.vars.iter().zip(snapshot) {
            v.set(&t)?;
        }
        if let Some(emb) = self.embedding.as_mut() {
            emb.host = emb.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
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
pub(crate) fn id_batch(
    inputs: &[&Vec<u32>],
    min_len: usize,
    reversed: bool,
) -> Result<(Tensor, Tensor), TrainError> {
    let len = inputs
        .iter()
        .map(|s| s.len())
        .max()
        .unwrap_or(0)
        .max(min_len)
        .max(1);
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
pub(crate) fn loss_and_correct(
    logits: &Tensor,
    labels: &[usize],
) -> Result<(Tensor, f64, usize), TrainError> {
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
pub(crate) fn dropout_mask(
    rng: &mut StdRng,
    rows: usize,
    cols: usize,
    p: f32,
) -> Result<Tensor, TrainError> {
    let keep = 1.0 / (1.0 - p);
    let data = (0..rows * cols)
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { keep })
        .collect();
    Ok(Tensor::from_vec(data, (rows, cols), &Device::Cpu)?)
}
