//! TextCNN (Kim, 2014, "Convolutional Neural Networks for Sentence Classification"):
//! Embedding -> one Conv1d per kernel width (ReLU) -> max over time -> concat -> dropout 0.5
//! (training only) -> Dense(classes), on candle with autograd and Adam.
//!
//! Each convolution is computed as k matmuls of shifted views of the embedded sequence
//! (`[B*(L-k+1), D]` times `[D, F]`), summed: only narrow/matmul/add, whose gradients are
//! simple and fast in candle (its conv1d path trained far worse and slower here). A width-k filter's weight is stored as
//! `conv{k}.weight` `[F, k*D]` with input index `position * D + channel`.

use candle_core::{Module, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::candle_util::{
    dropout_mask, id_batch, loss_and_correct, probabilities, Params, EMBEDDING,
};
use super::{NetSpec, StoredTensors};
use crate::fit::{Net, Predictor};
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
        let frozen: &[&str] = if freeze_embeddings { &[EMBEDDING] } else { &[] };
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
    fn forward(
        &self,
        inputs: &[&Vec<u32>],
        dropout: Option<&mut StdRng>,
    ) -> Result<Tensor, TrainError> {
        // Texts shorter than the widest kernel are padded so every convolution has an output.
        let (ids, _mask) = id_batch(inputs, self.widest(), false)?;
        let x = self.embedding.forward(&ids)?;
        self.forward_embedded(&x, dropout)
    }

    /// The widest convolution: texts are padded to at least this many positions.
    fn widest(&self) -> usize {
        self.convs.iter().map(|c| c.0).max().unwrap_or(1)
    }

    /// Logits from the token vectors `[B, L, D]` (L at least `widest()`).
    fn forward_embedded(
        &self,
        x: &Tensor,
        dropout: Option<&mut StdRng>,
    ) -> Result<Tensor, TrainError> {
        let (batch, len, dim) = x.dims3()?;
        let mut pooled = Vec::with_capacity(self.convs.len());
        for (k, w, b) in &self.convs {
            let windows = len + 1 - k;
            // Window position j of every output step: x[:, j..j+windows, :] times the
            // filters' j-th slice, summed over j. Made contiguous so both the matmul and the
            // gradient of the narrow (a cat along the time axis) take candle's fast paths.
            let mut y: Option<Tensor> = None;
            for j in 0..*k {
                let xj = x
                    .narrow(1, j, windows)?
                    .contiguous()?
                    .reshape((batch * windows, dim))?;
                let wj = w.narrow(1, j * dim, dim)?;
                let term = xj.matmul(&wj.t()?)?;
                y = Some(match y {
                    Some(acc) => (acc + term)?,
                    None => term,
                });
            }
            let y = y.ok_or_else(|| TrainError::Backend("empty kernel".into()))?;
            let y = y.broadcast_add(b)?.relu()?;
            pooled.push(y.reshape((batch, windows, ()))?.max(1)?);
        }
        let mut features = Tensor::cat(&pooled, 1)?;
        if let Some(rng) = dropout {
            let (rows, cols) = features.dims2()?;
            features = features.mul(&dropout_mask(rng, rows, cols, DROPOUT)?)?;
        }
        Ok(features
            .matmul(&self.out_w.t()?)?
            .broadcast_add(&self.out_b)?)
    }
}

impl TextCnn {
    /// Integrated gradients of class `target`'s logit for one text's ids (see
    /// `nets::integrated_gradients`).
    pub(crate) fn integrated_gradients(
        &self,
        ids: &[u32],
        target: usize,
        steps: usize,
    ) -> Result<(Vec<f32>, f32, f32), TrainError> {
        let (padded, mask) = id_batch(&[&ids.to_vec()], self.widest(), false)?;
        let x = self.embedding.forward(&padded)?;
        let (mut shares, at_text, at_base) = super::integrated_gradients(
            &x,
            &mask,
            |x| self.forward_embedded(x, None),
            target,
            steps,
        )?;
        shares.truncate(ids.len());
        Ok((shares, at_text, at_base))
    }
}

impl Predictor for TextCnn {
    type Input = Vec<u32>;

    fn predict(&self, inputs: &[&Vec<u32>]) -> Result<Vec<Vec<f32>>, TrainError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        probabilities(&self.forward(inputs, None)?)
    }
}

impl Net for TextCnn {
    type Snapshot = Vec<Tensor>;

    fn train_batch(
        &mut self,
        inputs: &[&Vec<u32>],
        labels: &[usize],
        rng: &mut StdRng,
    ) -> Result<(f64, usize), TrainError> {
        let logits = self.forward(inputs, Some(rng))?;
        let (loss, sum, correct) = loss_and_correct(&logits, labels)?;
        self.params.step(&loss, inputs)?;
        Ok((sum, correct))
    }

    fn snapshot(&self) -> Result<Vec<Tensor>, TrainError> {
        self.params.snapshot()
    }

    fn restore(&mut self, snapshot: Vec<Tensor>) -> Result<(), TrainError> {
        self.params.restore(snapshot)
    }
}
