//! Recurrent classifiers: Embedding -> GRU or LSTM (optionally bidirectional) -> masked mean of
//! the hidden states over the real tokens -> Dense(classes), on candle with autograd and Adam.
//!
//! The cells are written out here (PyTorch's gate equations and parameter layout) rather than
//! taken from `candle_nn::rnn`, so the input projection of the whole sequence is one matmul
//! and only the recurrent matmul runs per time step.

use aiaas_types::Architecture;
use candle_core::{Module, Tensor, D};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::candle_util::{id_batch, loss_and_correct, probabilities, Params};
use super::{NetSpec, StoredTensors};
use crate::fit::Net;
use crate::TrainError;

/// Tokens an RNN reads per text: stepping through time one token at a time makes long
/// sequences slow, and the first 200 tokens carry the topic of a news-length text.
pub(crate) const RNN_MAX_LEN: usize = 200;

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Gru,
    Lstm,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }
}

/// One direction's weights: input `[G*H, D]`, recurrent `[G*H, H]`, biases `[G*H]`.
struct Direction {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

pub(crate) struct Rnn {
    cell: Cell,
    hidden: usize,
    params: Params,
    embedding: candle_nn::Embedding,
    directions: Vec<Direction>,
    out_w: Tensor,
    out_b: Tensor,
}

fn cell_of(arch: Architecture) -> Result<Cell, TrainError> {
    match arch {
        Architecture::Gru => Ok(Cell::Gru),
        Architecture::Lstm => Ok(Cell::Lstm),
        other => Err(TrainError::InvalidConfig(format!("{} is not a recurrent network", other.as_str()))),
    }
}

const DIRECTION_NAMES: [&str; 2] = ["forward", "backward"];

impl Rnn {
    pub(crate) fn new(
        arch: Architecture,
        spec: &NetSpec,
        embeddings: Vec<f32>,
        lr: f64,
        freeze_embeddings: bool,
        seed: u64,
    ) -> Result<Rnn, TrainError> {
        let cell = cell_of(arch)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = Params::new();
        let (d, h) = (spec.embedding_dim, spec.rnn_hidden);
        let gh = cell.gates() * h;
        let emb = params.add("embedding.weight", embeddings, &[spec.vocab_size, d])?;
        let bound = 1.0 / (h as f32).sqrt();
        let mut directions = Vec::new();
        for name in &DIRECTION_NAMES[..1 + usize::from(spec.bidirectional)] {
            let w_ih = params.uniform(&mut rng, &format!("{name}.w_ih"), &[gh, d], bound)?;
            let w_hh = params.uniform(&mut rng, &format!("{name}.w_hh"), &[gh, h], bound)?;
            let mut b = vec![0.0; gh];
            if cell == Cell::Lstm {
                // Forget-gate bias 1 (Jozefowicz et al., 2015): remember by default early on.
                b[h..2 * h].fill(1.0);
            }
            let b_ih = params.add(&format!("{name}.b_ih"), b, &[gh])?;
            let b_hh = params.add(&format!("{name}.b_hh"), vec![0.0; gh], &[gh])?;
            directions.push(Direction { w_ih, w_hh, b_ih, b_hh });
        }
        let features = h * directions.len();
        let bound = 1.0 / (features as f32).sqrt();
        let out_w = params.uniform(&mut rng, "output.weight", &[spec.classes, features], bound)?;
        let out_b = params.uniform(&mut rng, "output.bias", &[spec.classes], bound)?;
        let frozen: &[&str] = if freeze_embeddings { &["embedding.weight"] } else { &[] };
        params.start_training(lr, frozen)?;
        Ok(Rnn {
            cell,
            hidden: h,
            params,
            embedding: candle_nn::Embedding::new(emb, d),
            directions,
            out_w,
            out_b,
        })
    }

    pub(crate) fn load(arch: Architecture, spec: &NetSpec, st: &StoredTensors) -> Result<Rnn, TrainError> {
        let cell = cell_of(arch)?;
        let mut params = Params::new();
        let (d, h) = (spec.embedding_dim, spec.rnn_hidden);
        let gh = cell.gates() * h;
        let emb = params.load(st, "embedding.weight", &[spec.vocab_size, d])?;
        let mut directions = Vec::new();
        for name in &DIRECTION_NAMES[..1 + usize::from(spec.bidirectional)] {
            directions.push(Direction {
                w_ih: params.load(st, &format!("{name}.w_ih"), &[gh, d])?,
                w_hh: params.load(st, &format!("{name}.w_hh"), &[gh, h])?,
                b_ih: params.load(st, &format!("{name}.b_ih"), &[gh])?,
                b_hh: params.load(st, &format!("{name}.b_hh"), &[gh])?,
            });
        }
        let features = h * directions.len();
        let out_w = params.load(st, "output.weight", &[spec.classes, features])?;
        let out_b = params.load(st, "output.bias", &[spec.classes])?;
        Ok(Rnn {
            cell,
            hidden: h,
            params,
            embedding: candle_nn::Embedding::new(emb, d),
            directions,
            out_w,
            out_b,
        })
    }

    pub(crate) fn save(&self) -> Result<Vec<u8>, TrainError> {
        self.params.save()
    }

    fn forward(&self, inputs: &[&Vec<u32>]) -> Result<Tensor, TrainError> {
        let mut pooled = Vec::with_capacity(self.directions.len());
        for (i, dir) in self.directions.iter().enumerate() {
            // The backward direction reads each text's tokens reversed; the mask is the same
            // (real tokens first), and a mean over real positions does not depend on order.
            let (ids, mask) = id_batch(inputs, 1, i == 1)?;
            pooled.push(self.run_direction(dir, &ids, &mask)?);
        }
        let features = Tensor::cat(&pooled, 1)?;
        Ok(features.matmul(&self.out_w.t()?)?.broadcast_add(&self.out_b)?)
    }

    /// Masked mean of the hidden states of one direction: `[B, H]`.
    fn run_direction(&self, dir: &Direction, ids: &Tensor, mask: &Tensor) -> Result<Tensor, TrainError> {
        let (b, len) = ids.dims2()?;
        let h = self.hidden;
        let x = self.embedding.forward(ids)?;
        // Input projections of every time step in one matmul: [B, L, G*H].
        let xi = x
            .broadcast_matmul(&dir.w_ih.t()?)?
            .broadcast_add(&dir.b_ih)?;
        let w_hh_t = dir.w_hh.t()?;
        let mut state = Tensor::zeros((b, h), candle_core::DType::F32, x.device())?;
        let mut cell_state = state.clone();
        let mut sum = state.clone();
        for t in 0..len {
            let gi = xi.narrow(1, t, 1)?.squeeze(1)?;
            let gh = state.matmul(&w_hh_t)?.broadcast_add(&dir.b_hh)?;
            let m = mask.narrow(1, t, 1)?;
            state = match self.cell {
                Cell::Gru => {
                    let r = sigmoid(&(gi.narrow(1, 0, h)? + gh.narrow(1, 0, h)?)?)?;
                    let z = sigmoid(&(gi.narrow(1, h, h)? + gh.narrow(1, h, h)?)?)?;
                    let n = (gi.narrow(1, 2 * h, h)? + (r * gh.narrow(1, 2 * h, h)?)?)?.tanh()?;
                    // h' = (1 - z) * n + z * h  =  n + z * (h - n)
                    (&n + (z * (&state - &n)?)?)?
                }
                Cell::Lstm => {
                    let g = (gi + gh)?;
                    let i = sigmoid(&g.narrow(1, 0, h)?)?;
                    let f = sigmoid(&g.narrow(1, h, h)?)?;
                    let c = g.narrow(1, 2 * h, h)?.tanh()?;
                    let o = sigmoid(&g.narrow(1, 3 * h, h)?)?;
                    cell_state = ((f * &cell_state)? + (i * c)?)?;
                    (o * cell_state.tanh()?)?
                }
            };
            // Padding comes after the real tokens, so states past the end are simply not
            // counted in the mean.
            sum = (sum + state.broadcast_mul(&m)?)?;
        }
        let count = mask.sum_keepdim(D::Minus1)?.clamp(1.0, f64::MAX)?;
        Ok(sum.broadcast_div(&count)?)
    }
}

/// Logistic function from differentiable primitives.
fn sigmoid(x: &Tensor) -> Result<Tensor, TrainError> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

impl Net for Rnn {
    type Input = Vec<u32>;
    type Snapshot = Vec<Tensor>;

    fn train_batch(
        &mut self,
        inputs: &[&Vec<u32>],
        labels: &[usize],
        _rng: &mut StdRng,
    ) -> Result<(f64, usize), TrainError> {
        let logits = self.forward(inputs)?;
        let (loss, sum, correct) = loss_and_correct(&logits, labels)?;
        self.params.step(&loss)?;
        Ok((sum, correct))
    }

    fn predict(&self, inputs: &[&Vec<u32>]) -> Result<Vec<Vec<f32>>, TrainError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        probabilities(&self.forward(inputs)?)
    }

    fn snapshot(&self) -> Result<Vec<Tensor>, TrainError> {
        self.params.snapshot()
    }

    fn restore(&mut self, snapshot: Vec<Tensor>) -> Result<(), TrainError> {
        self.params.restore(snapshot)
    }
}
