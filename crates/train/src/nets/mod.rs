//! Classifier networks, one file per architecture, and what they share: the network
//! hyper-parameters stored in model.json, embedding initialisation, softmax, plain-Rust Adam and
//! safetensors (de)serialisation.

pub(crate) mod avgpool;
pub(crate) mod candle_util;
pub(crate) mod rnn;
pub(crate) mod textcnn;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::vocab::TokenVocab;
use crate::word2vec::WordVectors;
use crate::TrainError;

/// Hyper-parameters needed to rebuild an embedding network (stored in model.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NetSpec {
    pub vocab_size: usize,
    pub embedding_dim: usize,
    pub classes: usize,
    pub hidden_units: usize,
    pub kernel_sizes: Vec<usize>,
    pub filters: usize,
    pub rnn_hidden: usize,
    pub bidirectional: bool,
}

/// Range of the uniform initialisation of embedding rows without a word2vec vector
/// (Keras' Embedding default).
const EMBEDDING_INIT: f32 = 0.05;

/// The starting embedding table: word2vec vectors where the word has one, small uniform noise
/// otherwise, and zeros for padding and unknown (so they do not bias a mean).
pub(crate) fn initial_embeddings(
    vocab: &TokenVocab,
    dim: usize,
    vectors: Option<&WordVectors>,
    seed: u64,
) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut table = Vec::with_capacity(vocab.len() * dim);
    for (i, word) in vocab.words().iter().enumerate() {
        let pretrained = vectors.and_then(|v| v.get(word)).filter(|v| v.len() == dim);
        match pretrained {
            _ if i < 2 => table.extend(std::iter::repeat_n(0.0, dim)),
            Some(v) => table.extend_from_slice(v),
            None => {
                table.extend((0..dim).map(|_| rng.random_range(-EMBEDDING_INIT..EMBEDDING_INIT)))
            }
        }
    }
    table
}

/// Glorot/Xavier uniform initialisation of a `fan_out x fan_in` matrix.
pub(crate) fn glorot(rng: &mut StdRng, fan_out: usize, fan_in: usize) -> Vec<f32> {
    let bound = (6.0 / (fan_in + fan_out) as f32).sqrt();
    (0..fan_in * fan_out)
        .map(|_| rng.random_range(-bound..bound))
        .collect()
}

/// In-place softmax, numerically stable.
pub(crate) fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        x.iter_mut().for_each(|v| *v /= sum);
    }
}

/// Adam (Kingma & Ba) with Keras' defaults, for the plain-Rust networks.
#[derive(Debug, Clone)]
pub(crate) struct Adam {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    step: i32,
    /// `lr * sqrt(1 - beta2^t) / (1 - beta1^t)` for the current step.
    lr_t: f32,
}

impl Adam {
    pub(crate) fn new(lr: f64) -> Adam {
        Adam {
            lr: lr as f32,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            step: 0,
            lr_t: 0.0,
        }
    }

    /// Start a new optimiser step (advances the bias correction).
    pub(crate) fn next_step(&mut self) {
        self.step += 1;
        let t = self.step;
        self.lr_t = self.lr * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t));
    }

    /// Apply one update to `param` from `grad`, with moment buffers `m` and `v`.
    pub(crate) fn update(&self, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if param.len() >= 4096 && std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports the features the function is compiled for.
                return unsafe { self.update_avx2(param, grad, m, v) };
            }
        }
        self.update_generic(param, grad, m, v)
    }

    /// The same loop compiled for AVX2: 8-wide sqrt/div for the big embedding table.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn update_avx2(&self, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
        self.update_generic(param, grad, m, v)
    }

    #[inline(always)]
    fn update_generic(&self, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
        let (b1, b2, eps, lr_t) = (self.beta1, self.beta2, self.eps, self.lr_t);
        for (((p, &g), m), v) in param.iter_mut().zip(grad).zip(m).zip(v) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= lr_t * *m / (v.sqrt() + eps);
        }
    }
}

/// Serialise named f32 arrays (with shapes) as safetensors bytes.
pub(crate) fn to_safetensors(
    arrays: Vec<(&str, Vec<f32>, Vec<usize>)>,
) -> Result<Vec<u8>, TrainError> {
    let mut tensors = Vec::with_capacity(arrays.len());
    for (name, data, shape) in arrays {
        tensors.push((
            name.to_string(),
            Tensor::from_vec(data, shape, &Device::Cpu)?,
        ));
    }
    safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), None)
        .map_err(|e| TrainError::Backend(format!("cannot serialise weights: {e}")))
}

/// Named tensors of a safetensors file.
pub(crate) struct StoredTensors(HashMap<String, Tensor>);

impl StoredTensors {
    pub(crate) fn parse(bytes: &[u8]) -> Result<StoredTensors, TrainError> {
        candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map(StoredTensors)
            .map_err(|e| TrainError::InvalidModel(format!("weights.safetensors is corrupt: {e}")))
    }

    /// The tensor `name`, checked to have exactly `shape`.
    pub(crate) fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor, TrainError> {
        let t = self
            .0
            .get(name)
            .ok_or_else(|| TrainError::InvalidModel(format!("weights lack tensor {name}")))?;
        if t.dims() != shape {
            return Err(TrainError::InvalidModel(format!(
                "tensor {name} has shape {:?}, model.json implies {shape:?}",
                t.dims()
            )));
        }
        t.to_dtype(candle_core::DType::F32)
            .map_err(TrainError::from)
    }

    /// The tensor `name` as a flat f32 vector, checked to have exactly `shape`.
    pub(crate) fn flat(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, TrainError> {
        Ok(self.tensor(name, shape)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// Integrated gradients (Sundararajan et al., 2017) of class `target`'s logit for one text
/// given as token vectors `x` `[1, L, D]` with `mask` `[1, L]` (1 for real tokens): from the
/// baseline where every real token's vector is zero (padding positions keep theirs) along
/// the straight path, the gradients averaged at `steps` midpoints, all points in one
/// batched forward and backward pass. Returns each position's attribution (the path
/// integral dotted with its vector), the logit at the text and at the baseline; the
/// attributions add up to their difference as `steps` grows (the completeness axiom).
pub(crate) fn integrated_gradients(
    x: &Tensor,
    mask: &Tensor,
    forward: impl Fn(&Tensor) -> Result<Tensor, TrainError>,
    target: usize,
    steps: usize,
) -> Result<(Vec<f32>, f32, f32), TrainError> {
    let steps = steps.max(1);
    let (_, len, dim) = x.dims3()?;
    let real = x.broadcast_mul(&mask.unsqueeze(2)?)?; // [1, L, D]
    let fixed = (x - &real)?; // padding positions only
    let alphas: Vec<f32> = (0..steps)
        .map(|s| (s as f32 + 0.5) / steps as f32)
        .chain([1.0, 0.0])
        .collect();
    let count = alphas.len();
    let alphas = Tensor::from_vec(alphas, (count, 1, 1), &Device::Cpu)?;
    let points = alphas
        .broadcast_mul(&real)?
        .broadcast_add(&fixed)?
        .contiguous()?; // [steps + 2, L, D]
    let var = candle_core::Var::from_tensor(&points)?;
    let logits = forward(var.as_tensor())?; // [steps + 2, C]
    let chosen = logits.narrow(1, target, 1)?.squeeze(1)?; // [steps + 2]
    let values: Vec<f32> = chosen.to_vec1()?;
    // Only the midpoints' gradients enter the integral.
    let grads = chosen.narrow(0, 0, steps)?.sum_all()?.backward()?;
    let grad = grads
        .get(var.as_tensor())
        .ok_or_else(|| TrainError::Backend("no gradient for the token vectors".into()))?
        .narrow(0, 0, steps)?
        .mean(0)?; // [L, D]
    let shares = (grad * real.squeeze(0)?)?.sum(1)?.to_vec1::<f32>()?;
    debug_assert_eq!(shares.len(), len);
    let _ = dim;
    Ok((shares, values[steps], values[steps + 1]))
}
