//! Recurrent classifiers: Embedding -> GRU or LSTM (optionally bidirectional) -> masked mean of
//! the hidden states over the real tokens -> Dense(classes), on candle with autograd and Adam.
//!
//! The cells are written out here (PyTorch's gate equations and parameter layout) rather than
//! taken from `candle_nn::rnn`, so the input projection of the whole sequence is one matmul
//! and only the recurrent matmul runs per time step.

use aiaas_types::Architecture;
use candle_core::{Module, Tensor, Var, D};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::candle_util::{id_batch, loss_and_correct, probabilities, Params, EMBEDDING};
use super::{NetSpec, StoredTensors};
use crate::fit::{Net, Predictor};
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
        other => Err(TrainError::InvalidConfig(format!(
            "{} is not a recurrent network",
            other.as_str()
        ))),
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
            directions.push(Direction {
                w_ih,
                w_hh,
                b_ih,
                b_hh,
            });
        }
        let features = h * directions.len();
        let bound = 1.0 / (features as f32).sqrt();
        let out_w = params.uniform(&mut rng, "output.weight", &[spec.classes, features], bound)?;
        let out_b = params.uniform(&mut rng, "output.bias", &[spec.classes], bound)?;
        let frozen: &[&str] = if freeze_embeddings { &[EMBEDDING] } else { &[] };
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

    pub(crate) fn load(
        arch: Architecture,
        spec: &NetSpec,
        st: &StoredTensors,
    ) -> Result<Rnn, TrainError> {
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

    /// Logits `[B, classes]`.
    fn forward(&self, inputs: &[&Vec<u32>]) -> Result<Tensor, TrainError> {
        let (xi, mask) = self.project(inputs)?;
        let steps = (0..xi.dim(0)?)
            .map(|t| xi.get(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.recur(&steps, &mask)
    }

    /// Input projections of every time step and direction, `[L, directions, B, G*H]`, and the
    /// token mask `[B, L]`.
    fn project(&self, inputs: &[&Vec<u32>]) -> Result<(Tensor, Tensor), TrainError> {
        let mut projected = Vec::with_capacity(self.directions.len());
        let mut mask = None;
        for (i, dir) in self.directions.iter().enumerate() {
            // The backward direction reads each text's tokens reversed; the mask is the same
            // (real tokens first), and a mean over real positions does not depend on order.
            let (ids, m) = id_batch(inputs, 1, i == 1)?;
            // Time-major ([L, B, ...]) so each step's slice is contiguous.
            let x = self.embedding.forward(&ids.t()?.contiguous()?)?;
            // Input projections of every time step in one matmul: [L, B, G*H].
            projected.push(
                x.broadcast_matmul(&dir.w_ih.t()?)?
                    .broadcast_add(&dir.b_ih)?,
            );
            mask = Some(m);
        }
        let mask = mask.ok_or_else(|| TrainError::Backend("network has no direction".into()))?;
        Ok((Tensor::stack(&projected, 1)?, mask))
    }

    /// The recurrence over per-step input projections (`[directions, B, G*H]` each), then the
    /// masked mean and the output layer. Both directions run in the same time loop as one
    /// batched computation: half the candle ops of two loops, and per-op overhead dominates
    /// at these sizes.
    fn recur(&self, steps: &[Tensor], mask: &Tensor) -> Result<Tensor, TrainError> {
        let h = self.hidden;
        let dirs = self.directions.len();
        let len = steps.len();
        let b = mask.dim(0)?;
        let w_hh_t = Tensor::stack(
            &self
                .directions
                .iter()
                .map(|d| d.w_hh.t())
                .collect::<Result<Vec<_>, _>>()?,
            0,
        )?; // [dirs, H, G*H]
        let b_hh = Tensor::stack(
            &self.directions.iter().map(|d| &d.b_hh).collect::<Vec<_>>(),
            0,
        )?
        .unsqueeze(1)?; // [dirs, 1, G*H]
        let mut state = Tensor::zeros((dirs, b, h), candle_core::DType::F32, mask.device())?;
        let mut cell_state = state.clone();
        let mut states = Vec::with_capacity(len);
        for gi in steps {
            let gi = gi.clone();
            let gh = state.matmul(&w_hh_t)?.broadcast_add(&b_hh)?;
            state = match self.cell {
                Cell::Gru => {
                    // Reset and update gates share one sigmoid over their 2H columns.
                    let rz = sigmoid(&(gi.narrow(2, 0, 2 * h)? + gh.narrow(2, 0, 2 * h)?)?)?;
                    let (r, z) = (rz.narrow(2, 0, h)?, rz.narrow(2, h, h)?);
                    let n = (gi.narrow(2, 2 * h, h)? + (r * gh.narrow(2, 2 * h, h)?)?)?.tanh()?;
                    // h' = (1 - z) * n + z * h  =  n + z * (h - n)
                    (&n + (z * (&state - &n)?)?)?
                }
                Cell::Lstm => {
                    let g = (gi + gh)?;
                    let ifo = sigmoid(&Tensor::cat(
                        &[g.narrow(2, 0, 2 * h)?, g.narrow(2, 3 * h, h)?],
                        2,
                    )?)?;
                    let (i, f, o) = (
                        ifo.narrow(2, 0, h)?,
                        ifo.narrow(2, h, h)?,
                        ifo.narrow(2, 2 * h, h)?,
                    );
                    let c = g.narrow(2, 2 * h, h)?.tanh()?;
                    cell_state = ((f * &cell_state)? + (i * c)?)?;
                    (o * cell_state.tanh()?)?
                }
            };
            states.push(state.clone());
        }
        // Masked mean over time: padding comes after the real tokens, so states past a
        // text's end are simply not counted.
        let step_mask = mask.t()?.contiguous()?.reshape((len, 1, b, 1))?;
        let summed = Tensor::stack(&states, 0)?
            .broadcast_mul(&step_mask)?
            .sum(0)?; // [dirs, B, H]
        let count = mask
            .sum_keepdim(D::Minus1)?
            .clamp(1.0, f64::MAX)?
            .unsqueeze(0)?; // [1, B, 1]
        let pooled = summed
            .broadcast_div(&count)?
            .transpose(0, 1)?
            .reshape((b, dirs * h))?;
        Ok(pooled
            .matmul(&self.out_w.t()?)?
            .broadcast_add(&self.out_b)?)
    }
}

/// Logistic function (candle-nn's fused op, which has a gradient).
fn sigmoid(x: &Tensor) -> Result<Tensor, TrainError> {
    Ok(candle_nn::ops::sigmoid(x)?)
}

impl Rnn {
    /// Integrated gradients of class `target`'s logit for one text's ids (see
    /// `nets::integrated_gradients`): the backward direction reads the same token vectors
    /// in reverse, so both directions' gradients reach each token.
    pub(crate) fn integrated_gradients(
        &self,
        ids: &[u32],
        target: usize,
        steps: usize,
    ) -> Result<(Vec<f32>, f32, f32), TrainError> {
        let (padded, mask) = id_batch(&[&ids.to_vec()], 1, false)?;
        let x = self.embedding.forward(&padded)?; // [1, L, D]
        let len = x.dim(1)?;
        let reversed = Tensor::from_vec(
            (0..len as u32).rev().collect::<Vec<u32>>(),
            len,
            &candle_core::Device::Cpu,
        )?;
        let forward = |x: &Tensor| -> Result<Tensor, TrainError> {
            let batch = x.dim(0)?;
            let mut projected = Vec::with_capacity(self.directions.len());
            for (i, dir) in self.directions.iter().enumerate() {
                let xi = if i == 1 {
                    x.index_select(&reversed, 1)?
                } else {
                    x.clone()
                };
                // Time-major, as `project` lays it out: [L, B, G*H].
                let xt = xi.transpose(0, 1)?.contiguous()?;
                projected.push(
                    xt.broadcast_matmul(&dir.w_ih.t()?)?
                        .broadcast_add(&dir.b_ih)?,
                );
            }
            let xi = Tensor::stack(&projected, 1)?;
            let steps = (0..len).map(|t| xi.get(t)).collect::<Result<Vec<_>, _>>()?;
            let mask = Tensor::ones((batch, len), candle_core::DType::F32, x.device())?;
            self.recur(&steps, &mask)
        };
        let (mut shares, at_text, at_base) =
            super::integrated_gradients(&x, &mask, forward, target, steps)?;
        shares.truncate(ids.len());
        Ok((shares, at_text, at_base))
    }
}

impl Predictor for Rnn {
    type Input = Vec<u32>;

    fn predict(&self, inputs: &[&Vec<u32>]) -> Result<Vec<Vec<f32>>, TrainError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        probabilities(&self.forward(inputs)?)
    }
}

impl Net for Rnn {
    type Snapshot = Vec<Tensor>;

    fn train_batch(
        &mut self,
        inputs: &[&Vec<u32>],
        labels: &[usize],
        _rng: &mut StdRng,
    ) -> Result<(f64, usize), TrainError> {
        // Backpropagation in two phases. Slicing step t out of the projected sequence has a
        // gradient as large as the whole sequence (candle pads the slice's gradient back to
        // full size), which makes plain backprop through L slices cost O(L^2). So the
        // recurrence runs on detached per-step copies; their gradients are stacked and pushed
        // through the projection once.
        let (xi, mask) = self.project(inputs)?;
        let leaves = (0..xi.dim(0)?)
            .map(|t| Var::from_tensor(&xi.get(t)?.detach()))
            .collect::<Result<Vec<_>, _>>()?;
        let steps: Vec<Tensor> = leaves.iter().map(|v| v.as_tensor().clone()).collect();
        let logits = self.recur(&steps, &mask)?;
        let (loss, sum, correct) = loss_and_correct(&logits, labels)?;
        let mut grads = loss.backward()?;
        let step_grads = steps
            .iter()
            .map(|s| match grads.remove(s) {
                Some(g) => Ok(g),
                None => s.zeros_like(),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let surrogate = (&xi * Tensor::stack(&step_grads, 0)?)?.sum_all()?;
        grads.extend(surrogate.backward()?)?;
        self.params.apply(&grads, inputs)?;
        Ok((sum, correct))
    }

    fn snapshot(&self) -> Result<Vec<Tensor>, TrainError> {
        self.params.snapshot()
    }

    fn restore(&mut self, snapshot: Vec<Tensor>) -> Result<(), TrainError> {
        self.params.restore(snapshot)
    }
}
