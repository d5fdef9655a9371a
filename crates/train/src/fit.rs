//! The epoch loop shared by every architecture: seeded shuffling, mini-batches, cancellation,
//! validation loss/accuracy per epoch, progress events and early stopping with best-weight restore.

use std::sync::atomic::Ordering;
use std::time::Instant;

use aiaas_types::{Architecture, EpochStats, TrainEvent};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::metrics::argmax;
use crate::{TrainControl, TrainError};

/// A classifier over inputs of type `Input` (token ids, sparse features, ...).
pub(crate) trait Predictor {
    type Input;

    /// Class probabilities per input (inference mode: no dropout).
    fn predict(&self, inputs: &[&Self::Input]) -> Result<Vec<Vec<f32>>, TrainError>;
}

/// A classifier trained by mini-batch gradient steps.
pub(crate) trait Net: Predictor {
    type Snapshot;

    /// One optimiser step on a batch; returns (sum of per-example losses, correct predictions).
    fn train_batch(
        &mut self,
        inputs: &[&Self::Input],
        labels: &[usize],
        rng: &mut StdRng,
    ) -> Result<(f64, usize), TrainError>;

    fn snapshot(&self) -> Result<Self::Snapshot, TrainError>;
    fn restore(&mut self, snapshot: Self::Snapshot) -> Result<(), TrainError>;
}

pub(crate) struct FitOptions {
    pub architecture: Architecture,
    pub epochs: usize,
    pub batch_size: usize,
    pub patience: Option<usize>,
    pub seed: u64,
    /// A time budget's end: the batch that finds it passed ends the epoch, and that epoch
    /// is the last (the net keeps its best epoch so far, as with early stopping).
    pub deadline: Option<Instant>,
    /// Which of a search's trials this is (in the epoch events).
    pub trial: Option<String>,
}

/// What [`fit`] did: the learning curve, and whether the deadline cut it short.
pub(crate) struct Fitted {
    pub curve: Vec<EpochStats>,
    pub cut_short: bool,
}

/// Examples of one split: inputs and label indices.
pub(crate) struct Examples<'a, I> {
    pub inputs: Vec<&'a I>,
    pub labels: Vec<usize>,
}

/// Train `net` for the configured epochs (or until the deadline); returns the learning
/// curve. With early stopping the net ends holding the weights of its best validation-loss
/// epoch.
pub(crate) fn fit<N: Net>(
    net: &mut N,
    train: &Examples<'_, N::Input>,
    validation: Option<&Examples<'_, N::Input>>,
    opts: &FitOptions,
    control: &TrainControl<'_>,
) -> Result<Fitted, TrainError> {
    let n = train.inputs.len();
    if n == 0 {
        return Err(TrainError::InvalidData("no training examples".into()));
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut curve = Vec::with_capacity(opts.epochs);
    let validation = validation.filter(|v| !v.inputs.is_empty());
    let mut best: Option<(f64, N::Snapshot)> = None;
    let mut since_best = 0usize;
    let batch_size = opts.batch_size.max(1);
    let mut batch_inputs = Vec::with_capacity(batch_size);
    let mut batch_labels = Vec::with_capacity(batch_size);
    let mut cut_short = false;
    for epoch in 1..=opts.epochs {
        let started = Instant::now();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        for chunk in order.chunks(batch_size) {
            if control.cancel.load(Ordering::Relaxed) {
                return Err(TrainError::Cancelled);
            }
            // At least one batch, so that a cut epoch still has statistics.
            if seen > 0 && opts.deadline.is_some_and(|d| Instant::now() >= d) {
                cut_short = true;
                break;
            }
            seen += chunk.len();
            batch_inputs.clear();
            batch_labels.clear();
            batch_inputs.extend(chunk.iter().map(|&i| train.inputs[i]));
            batch_labels.extend(chunk.iter().map(|&i| train.labels[i]));
            let (l, c) = net.train_batch(&batch_inputs, &batch_labels, &mut rng)?;
            loss_sum += l;
            correct += c;
        }
        let (val_loss, val_accuracy) = match validation {
            Some(v) => {
                let (l, a) = loss_and_accuracy(net, v, control)?;
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            val_loss,
            val_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::debug!(
            architecture = opts.architecture.as_str(),
            ?stats,
            "epoch done"
        );
        (control.on_event)(TrainEvent::Epoch {
            architecture: opts.architecture,
            epochs: opts.epochs,
            trial: opts.trial.clone(),
            stats: stats.clone(),
        });
        curve.push(stats);
        if let (Some(patience), Some(vl)) = (opts.patience, val_loss) {
            if best.as_ref().is_none_or(|(b, _)| vl < *b) {
                best = Some((vl, net.snapshot()?));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= patience {
                    break;
                }
            }
        }
        if cut_short || opts.deadline.is_some_and(|d| Instant::now() >= d) {
            cut_short |= epoch < opts.epochs;
            break;
        }
    }
    if let Some((_, snapshot)) = best {
        net.restore(snapshot)?;
    }
    Ok(Fitted { curve, cut_short })
}

/// Batch size for inference passes (no gradients, so larger than training batches).
pub(crate) const PREDICT_BATCH: usize = 128;

/// Probabilities for every input, in inference batches, checking for cancellation.
pub(crate) fn predict_all<N: Predictor>(
    net: &N,
    inputs: &[&N::Input],
    control: &TrainControl<'_>,
) -> Result<Vec<Vec<f32>>, TrainError> {
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(PREDICT_BATCH) {
        if control.cancel.load(Ordering::Relaxed) {
            return Err(TrainError::Cancelled);
        }
        out.extend(net.predict(chunk)?);
    }
    Ok(out)
}

/// Mean cross-entropy and accuracy of `net` on `examples`.
pub(crate) fn loss_and_accuracy<N: Predictor>(
    net: &N,
    examples: &Examples<'_, N::Input>,
    control: &TrainControl<'_>,
) -> Result<(f64, f64), TrainError> {
    let probs = predict_all(net, &examples.inputs, control)?;
    let n = probs.len().max(1) as f64;
    let mut loss = 0.0;
    let mut correct = 0usize;
    for (p, &y) in probs.iter().zip(&examples.labels) {
        loss -= f64::from(p.get(y).copied().unwrap_or(0.0).max(1e-12)).ln();
        correct += usize::from(argmax(p) == y);
    }
    Ok((loss / n, correct as f64 / n))
}
