//! TextCNN (Kim, 2014, "Convolutional Neural Networks for Sentence Classification"):
//! Embedding -> one Conv1d per kernel width (ReLU) -> max over time -> concat -> dropout 0.5
//! (training only) -> Dense(classes), on candle with autograd and Adam.
//!
//! Each convolution is computed as one matmul over unfolded windows (`[B, L-k+1, k*D]` times
//! `[k*D, F]`): it uses only narrow/cat/matmul, whose gradients are simple, and lets the
//! matmul kernel do all the arithmetic. A width-k filter's weight is stored as
//! `conv{k}.weight` `[F, k*D]` with input index `position * D + channel`.

use candle_core::{Module, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::candle_util::{dropout_mask, id_batch, loss_and_correct, probabilities, Params};
use super::{NetSpec, StoredTensors};
use crate::fit::Net;
use crate::TrainError;

const DROPOUT: f32 = 0.5;

pub(crate) struct TextCnn {
    params: Params,
    embedding: candle_nn::Embedding,
    /// (kernel width, weight `[filters, width * dim]`, bias `[filters]`).
    convs: Vec<(usize, Tensor, Tensor)>,
    out_w: Tensor,
    out_b: Tensor,
}

impl TextCnn {
    pub(crate) fn new(
        spec: &NetSpec,
        embeddings: Vec<f32>,
        lr: f64,
        freeze_embeddings: bool,
        seed: u64,
    ) -> Result<TextCnn, TrainError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = Params::new();
        let (d, f) = (spec.embedding_dim, spec.filters);
        let emb = params.add("embedding.weight", embeddings, &[spec.vocab_size, d])?;
        let mut convs = Vec::new();
        for &k in &spec.kernel_sizes {
            // PyTorch's default Conv1d/Linear initialisation bound: 1/sqrt(fan_in).
            let bound = 1.0 / ((d * k) as f32).sqrt();
            let w = params.uniform(&mut rng, &format!("conv{k}.weight"), &[f, k * d], bound)?;
            let b = params.uniform(&mut rng, &format!("conv{k}.bias"), &[f], bound)?;
            convs.push((k, w, b));
        }
        let features = f * spec.kernel_sizes.len();
        let bound = 1.0 / (features as f32).sqrt();
        let out_w = params.uniform(&mut rng, "output.weight", &[spec.classes, features], bound)?;
        let out_b = params.uniform(&mut rng, "output.bias", &[spec.classes], bound)?;
        let frozen: &[&str] = if freeze_embeddings { &["embedding.weight"] } else { &[] };
        params.start_training(lr, frozen)?;
        Ok(TextCnn {
            params,
            embedding: candle_nn::Embedding::new(emb, d),
            convs,
            out_w,
            out_b,
        })
    }

    pub(crate) fn load(spec: &NetSpec, st: &StoredTensors) -> Result<TextCnn, TrainError> {
        let mut params = Params::new();
        let (d, f) = (spec.embedding_dim, spec.filters);
        let emb = params.load(st, "embedding.weight", &[spec.vocab_size, d])?;
        let mut convs = Vec::new();
        for &k in &spec.kernel_sizes {
            let w = params.load(st, &format!("conv{k}.weight"), &[f, k * d])?;
            let b = params.load(st, &format!("conv{k}.bias"), &[f])?;
            convs.push((k, w, b));
        }
        let features = f * spec.kernel_sizes.len();
        let out_w = params.load(st, "output.weight", &[spec.classes, features])?;
        let out_b = params.load(st, "output.bias", &[spec.classes])?;
        Ok(TextCnn {
            params,
            embedding: candle_nn::Embedding::new(emb, d),
            convs,
            out_w,
            out_b,
        })
    }

    pub(crate) fn save(&self) -> Result<Vec<u8>, TrainError> {
        self.params.save()
    }

    /// Logits `[B, classes]`; `dropout` carries the RNG when training.
    fn forward(&self, inputs: &[&Vec<u32>], dropout: Option<&mut StdRng>) -> Result<Tensor, TrainError> {
        let widest = self.convs.iter().map(|c| c.0).max().unwrap_or(1);
        // Texts shorter than the widest kernel are padded so every convolution has an output.
        let (ids, _mask) = id_batch(inputs, widest, false)?;
        let x = self.embedding.forward(&ids)?;
        let (batch, len, dim) = x.dims3()?;
        let mut pooled = Vec::with_capacity(self.convs.len());
        for (k, w, b) in &self.convs {
            let windows = len + 1 - k;
            let shifted: Vec<Tensor> = (0..*k)
                .map(|j| x.narrow(1, j, windows))
                .collect::<Result<_, _>>()?;
            // One [B*windows, k*D] x [k*D, F] matmul rather than B small ones.
            let unfolded = Tensor::cat(&shifted, 2)?.reshape((batch * windows, k * dim))?;
            let y = unfolded.matmul(&w.t()?)?.broadcast_add(b)?.relu()?;
            pooled.push(y.reshape((batch, windows, ()))?.max(1)?);
        }
        let mut features = Tensor::cat(&pooled, 1)?;
        if let Some(rng) = dropout {
            let (rows, cols) = features.dims2()?;
            features = features.mul(&dropout_mask(rng, rows, cols, DROPOUT)?)?;
        }
        Ok(features.matmul(&self.out_w.t()?)?.broadcast_add(&self.out_b)?)
    }
}

impl Net for TextCnn {
    type Input = Vec<u32>;
    type Snapshot = Vec<Tensor>;

    fn train_batch(
        &mut self,
        inputs: &[&Vec<u32>],
        labels: &[usize],
        rng: &mut StdRng,
    ) -> Result<(f64, usize), TrainError> {
        let logits = self.forward(inputs, Some(rng))?;
        let (loss, sum, correct) = loss_and_correct(&logits, labels)?;
        self.params.step(&loss)?;
        Ok((sum, correct))
    }

    fn predict(&self, inputs: &[&Vec<u32>]) -> Result<Vec<Vec<f32>>, TrainError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        probabilities(&self.forward(inputs, None)?)
    }

    fn snapshot(&self) -> Result<Vec<Tensor>, TrainError> {
        self.params.snapshot()
    }

    fn restore(&mut self, snapshot: Vec<Tensor>) -> Result<(), TrainError> {
        self.params.restore(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "timing probe"]
    fn timing_probe() {
        let spec = NetSpec { vocab_size: 18000, embedding_dim: 100, classes: 5, hidden_units: 24, kernel_sizes: vec![3, 4, 5], filters: 64, rnn_hidden: 64, bidirectional: true };
        let emb = vec![0.01; 18000 * 100];
        let mut net = TextCnn::new(&spec, emb, 1e-3, false, 1).unwrap();
        let seqs: Vec<Vec<u32>> = (0..32).map(|i| (0..400).map(|j| ((i * 400 + j) % 17999 + 1) as u32).collect()).collect();
        let refs: Vec<&Vec<u32>> = seqs.iter().collect();
        let labels: Vec<usize> = (0..32).map(|i| i % 5).collect();
        let mut rng = StdRng::seed_from_u64(1);
        {
            let x = Tensor::randn(0f32, 1.0, (32, 400, 100), &candle_core::Device::Cpu).unwrap();
            let w = Tensor::randn(0f32, 1.0, (64, 500), &candle_core::Device::Cpu).unwrap();
            for _ in 0..2 {
                let t = std::time::Instant::now();
                let sh: Vec<Tensor> = (0..5).map(|j| x.narrow(1, j, 396).unwrap()).collect();
                let u = Tensor::cat(&sh, 2).unwrap().reshape((32 * 396, 500)).unwrap();
                let t1 = t.elapsed();
                let y = u.matmul(&w.t().unwrap()).unwrap();
                let t2 = t.elapsed();
                let y = y.relu().unwrap().reshape((32, 396, 64)).unwrap().max(1).unwrap();
                let t3 = t.elapsed();
                let ids = Tensor::from_vec(refs.iter().flat_map(|r| r.iter().copied()).collect::<Vec<u32>>(), (32, 400), &candle_core::Device::Cpu).unwrap();
                let e = net.embedding.forward(&ids).unwrap();
                let t4 = t.elapsed();
                eprintln!("cat {t1:?} matmul {:?} relu+max {:?} emb {:?} {:?}", t2 - t1, t3 - t2, t4 - t3, (y.dims(), e.dims()));
            }
        }
        for _ in 0..2 {
            let t = std::time::Instant::now();
            let logits = net.forward(&refs, Some(&mut rng)).unwrap();
            let t1 = t.elapsed();
            let (loss, _, _) = super::super::candle_util::loss_and_correct(&logits, &labels).unwrap();
            let grads = loss.backward().unwrap();
            let t2 = t.elapsed();
            drop(grads);
            net.train_batch(&refs, &labels, &mut rng).unwrap();
            let t3 = t.elapsed();
            eprintln!("forward {t1:?} +backward {t2:?} full step {:?}", t3 - t2);
        }
    }
}
