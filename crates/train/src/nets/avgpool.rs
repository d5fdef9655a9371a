//! The founding example's network: Embedding -> masked mean over the real (non-padding) tokens
//! -> Dense(hidden, ReLU) -> Dense(classes) -> softmax, trained with cross-entropy and Adam.
//!
//! Implemented directly in Rust rather than on candle: the forward and backward passes touch
//! only the embedding rows of the words in the batch and never see padding (texts are not
//! padded at all), and the one pass over the whole table per step is a single vectorised Adam
//! loop, with no autograd graph or temporary tensors. Two classes still use a 2-way softmax,
//! so every architecture outputs one probability per label.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{glorot, softmax, to_safetensors, Adam, NetSpec, StoredTensors};
use crate::fit::{Net, Predictor};
use crate::metrics::argmax;
use crate::vocab::PAD;
use crate::word2vec::{axpy, dot};
use crate::TrainError;

#[derive(Debug, Clone)]
pub(crate) struct AvgPoolWeights {
    /// `vocab x dim`.
    emb: Vec<f32>,
    /// `hidden x dim` (output-major, like a torch/candle Linear).
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// `classes x hidden`.
    w2: Vec<f32>,
    b2: Vec<f32>,
}

pub(crate) struct AvgPool {
    vocab: usize,
    dim: usize,
    hidden: usize,
    classes: usize,
    w: AvgPoolWeights,
    train: Option<Box<TrainState>>,
}

/// Optimiser moments and gradient buffers, present only while training.
struct TrainState {
    adam: Adam,
    freeze_embeddings: bool,
    moments: AvgPoolWeights,
    second: AvgPoolWeights,
    grad: AvgPoolWeights,
    /// Whether each embedding row has gradient in the current batch.
    touched: Vec<bool>,
    /// Embedding rows touched by the current batch (to clear `emb_grad` cheaply).
    rows: Vec<u32>,
    /// Dense `vocab x dim` gradient buffer, zero outside `rows` (empty when frozen).
    emb_grad: Vec<f32>,
}

impl AvgPool {
    /// A fresh network for training, starting from `embeddings` (`vocab x dim`).
    pub(crate) fn new(
        spec: &NetSpec,
        embeddings: Vec<f32>,
        learning_rate: f64,
        freeze_embeddings: bool,
        seed: u64,
    ) -> Result<AvgPool, TrainError> {
        let (v, d, h, c) = (
            spec.vocab_size,
            spec.embedding_dim,
            spec.hidden_units,
            spec.classes,
        );
        if embeddings.len() != v * d {
            return Err(TrainError::Backend(
                "embedding table has the wrong size".into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let w = AvgPoolWeights {
            emb: embeddings,
            w1: glorot(&mut rng, h, d),
            b1: vec![0.0; h],
            w2: glorot(&mut rng, c, h),
            b2: vec![0.0; c],
        };
        let zeros = AvgPoolWeights {
            emb: Vec::new(),
            w1: vec![0.0; h * d],
            b1: vec![0.0; h],
            w2: vec![0.0; c * h],
            b2: vec![0.0; c],
        };
        let moments = AvgPoolWeights {
            emb: if freeze_embeddings {
                Vec::new()
            } else {
                vec![0.0; v * d]
            },
            ..zeros.clone()
        };
        let state = TrainState {
            adam: Adam::new(learning_rate),
            freeze_embeddings,
            second: moments.clone(),
            moments,
            grad: zeros,
            touched: vec![false; v],
            rows: Vec::new(),
            emb_grad: if freeze_embeddings {
                Vec::new()
            } else {
                vec![0.0; v * d]
            },
        };
        Ok(AvgPool {
            vocab: v,
            dim: d,
            hidden: h,
            classes: c,
            w,
            train: Some(Box::new(state)),
        })
    }

    /// Rebuild for inference from stored weights.
    pub(crate) fn load(spec: &NetSpec, st: &StoredTensors) -> Result<AvgPool, TrainError> {
        let (v, d, h, c) = (
            spec.vocab_size,
            spec.embedding_dim,
            spec.hidden_units,
            spec.classes,
        );
        let w = AvgPoolWeights {
            emb: st.flat("embedding.weight", &[v, d])?,
            w1: st.flat("hidden.weight", &[h, d])?,
            b1: st.flat("hidden.bias", &[h])?,
            w2: st.flat("output.weight", &[c, h])?,
            b2: st.flat("output.bias", &[c])?,
        };
        Ok(AvgPool {
            vocab: v,
            dim: d,
            hidden: h,
            classes: c,
            w,
            train: None,
        })
    }

    pub(crate) fn save(&self) -> Result<Vec<u8>, TrainError> {
        let (v, d, h, c) = (self.vocab, self.dim, self.hidden, self.classes);
        to_safetensors(vec![
            ("embedding.weight", self.w.emb.clone(), vec![v, d]),
            ("hidden.weight", self.w.w1.clone(), vec![h, d]),
            ("hidden.bias", self.w.b1.clone(), vec![h]),
            ("output.weight", self.w.w2.clone(), vec![c, h]),
            ("output.bias", self.w.b2.clone(), vec![c]),
        ])
    }

    /// Masked mean of the embeddings of the non-padding tokens (zeros when there are none);
    /// returns the number of tokens averaged.
    fn pool(&self, ids: &[u32], out: &mut [f32]) -> usize {
        out.fill(0.0);
        let mut n = 0usize;
        for &id in ids {
            let id = id as usize;
            if id == PAD as usize || id >= self.vocab {
                continue;
            }
            axpy(1.0, &self.w.emb[id * self.dim..(id + 1) * self.dim], out);
            n += 1;
        }
        let inv = 1.0 / n.max(1) as f32;
        out.iter_mut().for_each(|x| *x *= inv);
        n
    }

    /// Dense layers from a pooled vector: pre-activations `z1` and class probabilities `p`.
    fn head(&self, pooled: &[f32], z1: &mut [f32], a1: &mut [f32], p: &mut [f32]) {
        let (d, h) = (self.dim, self.hidden);
        for (j, (z, a)) in z1.iter_mut().zip(a1.iter_mut()).enumerate() {
            *z = dot(&self.w.w1[j * d..(j + 1) * d], pooled) + self.w.b1[j];
            *a = z.max(0.0);
        }
        for (k, pk) in p.iter_mut().enumerate() {
            *pk = dot(&self.w.w2[k * h..(k + 1) * h], a1) + self.w.b2[k];
        }
        softmax(p);
    }
}

impl AvgPool {
    /// Integrated gradients of class `target`'s logit for one text's ids, from the baseline
    /// of all-zero token vectors (pooled vector 0) along the straight path, by the midpoint
    /// rule with `steps` points: per id, and the logit at the text and at the baseline.
    /// Ids the network skips (padding, out of vocabulary) get 0.
    pub(crate) fn integrated_gradients(
        &self,
        ids: &[u32],
        target: usize,
        steps: usize,
    ) -> (Vec<f32>, f32, f32) {
        let (d, h) = (self.dim, self.hidden);
        let mut pooled = vec![0.0; d];
        let n = self.pool(ids, &mut pooled);
        let logit = |q: &[f32]| -> f32 {
            let mut out = self.w.b2[target];
            for j in 0..h {
                let z = dot(&self.w.w1[j * d..(j + 1) * d], q) + self.w.b1[j];
                out += self.w.w2[target * h + j] * z.max(0.0);
            }
            out
        };
        // The gradient of the logit with respect to the pooled vector, averaged over the
        // path: W1^T (w2[target] * relu'(z1)) at each point.
        let mut grad = vec![0.0f32; d];
        let mut q = vec![0.0f32; d];
        for s in 0..steps.max(1) {
            let alpha = (s as f32 + 0.5) / steps.max(1) as f32;
            q.iter_mut().zip(&pooled).for_each(|(q, p)| *q = alpha * p);
            for j in 0..h {
                let row = &self.w.w1[j * d..(j + 1) * d];
                if dot(row, &q) + self.w.b1[j] > 0.0 {
                    axpy(
                        self.w.w2[target * h + j] / steps.max(1) as f32,
                        row,
                        &mut grad,
                    );
                }
            }
        }
        // Each token's vector enters the mean with weight 1/n.
        let inv = 1.0 / n.max(1) as f32;
        let shares = ids
            .iter()
            .map(|&id| {
                let id = id as usize;
                if id == PAD as usize || id >= self.vocab {
                    0.0
                } else {
                    dot(&self.w.emb[id * d..(id + 1) * d], &grad) * inv
                }
            })
            .collect();
        (shares, logit(&pooled), logit(&vec![0.0; d]))
    }
}

impl Predictor for AvgPool {
    type Input = Vec<u32>;

    fn predict(&self, inputs: &[&Vec<u32>]) -> Result<Vec<Vec<f32>>, TrainError> {
        let mut pooled = vec![0.0; self.dim];
        let (mut z1, mut a1) = (vec![0.0; self.hidden], vec![0.0; self.hidden]);
        Ok(inputs
            .iter()
            .map(|ids| {
                let mut p = vec![0.0; self.classes];
                self.pool(ids, &mut pooled);
                self.head(&pooled, &mut z1, &mut a1, &mut p);
                p
            })
            .collect())
    }
}

impl Net for AvgPool {
    type Snapshot = AvgPoolWeights;

    fn train_batch(
        &mut self,
        inputs: &[&Vec<u32>],
        labels: &[usize],
        _rng: &mut StdRng,
    ) -> Result<(f64, usize), TrainError> {
        let mut st = self
            .train
            .take()
            .ok_or_else(|| TrainError::Backend("network was loaded for inference only".into()))?;
        let result = self.step(&mut st, inputs, labels);
        self.train = Some(st);
        result
    }

    fn snapshot(&self) -> Result<AvgPoolWeights, TrainError> {
        Ok(self.w.clone())
    }

    fn restore(&mut self, snapshot: AvgPoolWeights) -> Result<(), TrainError> {
        self.w = snapshot;
        Ok(())
    }
}

impl AvgPool {
    /// Forward, backward and one Adam update over a batch (mean loss over the batch).
    fn step(
        &mut self,
        st: &mut TrainState,
        inputs: &[&Vec<u32>],
        labels: &[usize],
    ) -> Result<(f64, usize), TrainError> {
        let result = self.gradients(st, inputs, labels)?;
        self.apply(st);
        Ok(result)
    }

    /// Forward and backward: fills `st.grad` and `st.emb_grad` with the gradient of the
    /// mean cross-entropy over the batch; returns (summed loss, correct predictions).
    fn gradients(
        &mut self,
        st: &mut TrainState,
        inputs: &[&Vec<u32>],
        labels: &[usize],
    ) -> Result<(f64, usize), TrainError> {
        let (d, h, c) = (self.dim, self.hidden, self.classes);
        let scale = 1.0 / inputs.len().max(1) as f32;
        let g = &mut st.grad;
        g.w1.fill(0.0);
        g.b1.fill(0.0);
        g.w2.fill(0.0);
        g.b2.fill(0.0);
        let mut pooled = vec![0.0; d];
        let (mut z1, mut a1) = (vec![0.0; h], vec![0.0; h]);
        let mut p = vec![0.0; c];
        let mut dz1 = vec![0.0; h];
        let mut dpooled = vec![0.0; d];
        let (mut loss, mut correct) = (0.0f64, 0usize);
        for (ids, &y) in inputs.iter().zip(labels) {
            if y >= c {
                return Err(TrainError::Backend(format!("label index {y} out of range")));
            }
            let n = self.pool(ids, &mut pooled);
            self.head(&pooled, &mut z1, &mut a1, &mut p);
            loss -= f64::from(p[y].max(1e-12)).ln();
            correct += usize::from(argmax(&p) == y);
            // d(loss)/d(logits) = p - onehot(y), averaged over the batch.
            p[y] -= 1.0;
            p.iter_mut().for_each(|x| *x *= scale);
            dz1.fill(0.0);
            for (k, &pk) in p.iter().enumerate() {
                axpy(pk, &a1, &mut g.w2[k * h..(k + 1) * h]);
                g.b2[k] += pk;
                axpy(pk, &self.w.w2[k * h..(k + 1) * h], &mut dz1);
            }
            // ReLU gradient: nothing flows back through inactive units.
            for (dz, &z) in dz1.iter_mut().zip(&z1) {
                if z <= 0.0 {
                    *dz = 0.0;
                }
            }
            dpooled.fill(0.0);
            for (j, &dz) in dz1.iter().enumerate() {
                if dz != 0.0 {
                    axpy(dz, &pooled, &mut g.w1[j * d..(j + 1) * d]);
                    g.b1[j] += dz;
                    axpy(dz, &self.w.w1[j * d..(j + 1) * d], &mut dpooled);
                }
            }
            if st.freeze_embeddings || n == 0 {
                continue;
            }
            let share = 1.0 / n as f32;
            for &id in ids.iter() {
                if id == PAD || id as usize >= self.vocab {
                    continue;
                }
                let row = id as usize;
                if !st.touched[row] {
                    st.touched[row] = true;
                    st.rows.push(id);
                }
                axpy(share, &dpooled, &mut st.emb_grad[row * d..(row + 1) * d]);
            }
        }
        Ok((loss, correct))
    }

    /// One Adam update from the gradients, then clear the embedding gradient rows.
    fn apply(&mut self, st: &mut TrainState) {
        let g = &st.grad;
        let d = self.dim;
        st.adam.next_step();
        let (m, v) = (&mut st.moments, &mut st.second);
        st.adam.update(&mut self.w.w1, &g.w1, &mut m.w1, &mut v.w1);
        st.adam.update(&mut self.w.b1, &g.b1, &mut m.b1, &mut v.b1);
        st.adam.update(&mut self.w.w2, &g.w2, &mut m.w2, &mut v.w2);
        st.adam.update(&mut self.w.b2, &g.b2, &mut m.b2, &mut v.b2);
        if !st.freeze_embeddings {
            // Dense Adam semantics: rows outside the batch (zero gradient) keep moving with
            // their decaying momentum, as in Keras/PyTorch. Measured on BBC News this reaches
            // a lower validation loss in 10 epochs than lazy (batch-rows-only) Adam.
            st.adam
                .update(&mut self.w.emb, &st.emb_grad, &mut m.emb, &mut v.emb);
            for &row in &st.rows {
                let row = row as usize;
                st.emb_grad[row * d..(row + 1) * d].fill(0.0);
                st.touched[row] = false;
            }
            st.rows.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean cross-entropy of the batch under the current weights.
    fn loss(net: &AvgPool, inputs: &[&Vec<u32>], labels: &[usize]) -> f64 {
        let (mut pooled, mut z1, mut a1, mut p) = (
            vec![0.0; net.dim],
            vec![0.0; net.hidden],
            vec![0.0; net.hidden],
            vec![0.0; net.classes],
        );
        let mut total = 0.0;
        for (ids, &y) in inputs.iter().zip(labels) {
            net.pool(ids, &mut pooled);
            net.head(&pooled, &mut z1, &mut a1, &mut p);
            total -= f64::from(p[y]).ln();
        }
        total / inputs.len() as f64
    }

    /// The hand-written backward pass agrees with central finite differences for every
    /// parameter group, the embedding rows (with repeated and padding tokens) included.
    #[test]
    fn gradients_match_finite_differences() {
        let spec = NetSpec {
            vocab_size: 6,
            embedding_dim: 4,
            hidden_units: 5,
            classes: 3,
            kernel_sizes: Vec::new(),
            filters: 1,
            rnn_hidden: 1,
            bidirectional: false,
        };
        let mut rng = StdRng::seed_from_u64(3);
        let emb = glorot(&mut rng, 6, 4);
        let mut net = AvgPool::new(&spec, emb, 0.01, false, 11).unwrap();
        let docs = [vec![2u32, 3, 3, PAD], vec![4, 5], vec![1, 2, 5, 5, 4]];
        let inputs: Vec<&Vec<u32>> = docs.iter().collect();
        let labels = [0usize, 2, 1];
        let mut st = net.train.take().unwrap();
        net.gradients(&mut st, &inputs, &labels).unwrap();
        let h = 1e-3f32;
        let mut checked = 0;
        macro_rules! check {
            ($field:ident, $grad:expr) => {
                for i in 0..net.w.$field.len() {
                    let analytic = $grad[i];
                    let orig = net.w.$field[i];
                    net.w.$field[i] = orig + h;
                    let up = loss(&net, &inputs, &labels);
                    net.w.$field[i] = orig - h;
                    let down = loss(&net, &inputs, &labels);
                    net.w.$field[i] = orig;
                    let numeric = ((up - down) / (2.0 * f64::from(h))) as f32;
                    assert!(
                        (numeric - analytic).abs() < 2e-3 + 2e-2 * numeric.abs(),
                        "{}[{i}]: analytic {analytic} vs numeric {numeric}",
                        stringify!($field)
                    );
                    checked += 1;
                }
            };
        }
        let g = st.grad.clone();
        check!(w1, g.w1);
        check!(b1, g.b1);
        check!(w2, g.w2);
        check!(b2, g.b2);
        let emb_grad = st.emb_grad.clone();
        check!(emb, emb_grad);
        assert_eq!(checked, 20 + 5 + 15 + 3 + 24);
        // The padding row gets no gradient.
        assert!(emb_grad[..4].iter().all(|&x| x == 0.0));
    }
}
