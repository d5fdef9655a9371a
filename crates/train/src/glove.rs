//! GloVe (Pennington, Socher and Manning, 2014) in Rust, following the reference glove.c:
//! symmetric co-occurrence counts within a window, each pair weighing 1/distance
//! (out-of-vocabulary words removed first, as word2vec and gensim do); the weighted
//! least-squares objective `sum f(x_ij) (w_i . c_j + b_i + b'_j - ln x_ij)^2` with
//! `f(x) = min(1, (x / x_max)^alpha)`; AdaGrad over the non-zero counts in one shuffled
//! order (accumulators start at 1, per-component steps clipped at 100, as glove.c); Hogwild
//! threads over the shared rows (word2vec's rows, so the races are defined behaviour); and
//! the word's vector is `w_i + c_i` (glove.c's `model 2`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use aiaas_types::{GloveParams, GloveReport, TrainEvent};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::word2vec::rows::{load, store, Row};
use crate::word2vec::{dot, thread_count, Corpus, HugeBuffer, Vocab, WordVectors};
use crate::{TrainControl, TrainError};

/// One non-zero co-occurrence count, with what every epoch needs of it precomputed.
#[derive(Clone, Copy)]
struct Pair {
    word: u32,
    context: u32,
    ln_x: f32,
    weight: f32,
}

/// glove.c's bound on one component of a step.
const GRAD_CLIP: f32 = 100.0;
/// Pairs between two looks at the cancel flag.
const CANCEL_EVERY: usize = 4096;

/// Train GloVe vectors on tokenised sentences. One thread gives a pure function of the
/// input and `seed`; several update the shared rows Hogwild (as glove.c).
pub fn train_glove(
    sentences: &[Vec<String>],
    params: &GloveParams,
    seed: u64,
    control: &TrainControl<'_>,
) -> Result<(WordVectors, GloveReport), TrainError> {
    let dim = params.vector_size;
    if dim == 0 || params.window == 0 || params.epochs == 0 {
        return Err(TrainError::InvalidConfig(
            "glove needs vector_size, window and epochs of at least 1".into(),
        ));
    }
    let started = Instant::now();
    let mut max_words = aiaas_types::MAX_EMBEDDING_WEIGHTS / dim;
    if params.max_vocab > 0 {
        max_words = max_words.min(params.max_vocab);
    }
    let vocab = Vocab::build(sentences, params.min_count.max(1), max_words);
    if vocab.words.is_empty() {
        return Err(TrainError::InvalidData(format!(
            "glove: no word occurs at least {} times in the training texts",
            params.min_count
        )));
    }
    let corpus = Corpus::encode(sentences, &vocab.index);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut pairs = cooccurrences(&corpus, params, control.cancel)?;
    if pairs.is_empty() {
        return Err(TrainError::InvalidData(
            "glove: no two vocabulary words occur within a window of each other".into(),
        ));
    }
    pairs.shuffle(&mut rng);
    let count_seconds = started.elapsed().as_secs_f64();

    // Each row: the vector, then its bias, padded to whole pairs of floats.
    let v = vocab.words.len();
    let stride = (dim + 1).next_multiple_of(2);
    let mut random_rows = || {
        let mut buf = HugeBuffer::zeroed(v * stride);
        for row in buf.chunks_exact_mut(stride) {
            for x in &mut row[..=dim] {
                *x = (rng.random::<f32>() - 0.5) / dim as f32;
            }
        }
        buf
    };
    let (mut words, mut contexts) = (random_rows(), random_rows());
    let ones = || {
        let mut buf = HugeBuffer::zeroed(v * stride);
        buf.fill(1.0);
        buf
    };
    let (mut words_sq, mut contexts_sq) = (ones(), ones());
    let shared = Shared {
        words: words.as_atomic_pairs(),
        contexts: contexts.as_atomic_pairs(),
        words_sq: words_sq.as_atomic_pairs(),
        contexts_sq: contexts_sq.as_atomic_pairs(),
        stride,
        dim,
        eta: params.learning_rate as f32,
    };
    let threads = thread_count(params.threads, pairs.len());
    let part = pairs.len().div_ceil(threads);
    let mut cost = Vec::with_capacity(params.epochs);
    for epoch in 1..=params.epochs {
        let total: Result<f64, TrainError> = std::thread::scope(|s| {
            let handles: Vec<_> = pairs
                .chunks(part)
                .map(|chunk| s.spawn(|| shared.pass(chunk, control.cancel)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(TrainError::Cancelled)))
                .sum()
        });
        let mean = total? / pairs.len() as f64;
        cost.push(mean);
        (control.on_event)(TrainEvent::GloveEpoch {
            epoch,
            epochs: params.epochs,
            cost: mean,
        });
    }
    let mut vectors = Vec::with_capacity(v * dim);
    for (w, c) in words
        .chunks_exact(stride)
        .zip(contexts.chunks_exact(stride))
    {
        vectors.extend(w[..dim].iter().zip(&c[..dim]).map(|(a, b)| a + b));
    }
    let report = GloveReport {
        vocabulary: v,
        pairs: pairs.len() as u64,
        epochs: params.epochs,
        cost,
        count_seconds,
        seconds: started.elapsed().as_secs_f64(),
    };
    let vectors = WordVectors {
        words: vocab.words,
        counts: vocab.counts,
        index: vocab.index,
        vectors,
        dim,
    };
    Ok((vectors, report))
}

/// The symmetric co-occurrence counts: every pair of words within `window` of each other
/// in a sentence adds 1/distance both ways (a word next to itself adds it twice, as
/// glove.c). Counted once per unordered pair, then expanded to both orders.
fn cooccurrences(
    corpus: &Corpus,
    params: &GloveParams,
    cancel: &AtomicBool,
) -> Result<Vec<Pair>, TrainError> {
    // FxHash: the keys are two word indices, nothing an attacker picks can collide them
    // into one bucket beyond what the vocabulary cap allows, and SipHash would double the
    // counting time.
    let mut counts: rustc_hash::FxHashMap<u64, f32> = rustc_hash::FxHashMap::default();
    for (n, range) in corpus.sentences.iter().enumerate() {
        if n % 256 == 0 && cancel.load(Ordering::Relaxed) {
            return Err(TrainError::Cancelled);
        }
        let sentence = &corpus.tokens[range.clone()];
        for (p, &a) in sentence.iter().enumerate() {
            let end = (p + params.window + 1).min(sentence.len());
            for (d, &b) in sentence[p + 1..end].iter().enumerate() {
                let key = (u64::from(a.min(b)) << 32) | u64::from(a.max(b));
                *counts.entry(key).or_insert(0.0) += 1.0 / (d + 1) as f32;
            }
        }
    }
    let x_max = params.x_max as f32;
    let alpha = params.alpha as f32;
    let pair = |word: u32, context: u32, x: f32| Pair {
        word,
        context,
        ln_x: x.ln(),
        weight: if x < x_max {
            (x / x_max).powf(alpha)
        } else {
            1.0
        },
    };
    // In key order, so that the seeded shuffle sees the same list every run.
    let mut keys: Vec<(u64, f32)> = counts.into_iter().collect();
    keys.sort_unstable_by_key(|k| k.0);
    let mut pairs = Vec::with_capacity(keys.len() * 2);
    for (key, x) in keys {
        let (a, b) = ((key >> 32) as u32, key as u32);
        if a == b {
            pairs.push(pair(a, a, 2.0 * x));
        } else {
            pairs.push(pair(a, b, x));
            pairs.push(pair(b, a, x));
        }
    }
    Ok(pairs)
}

/// The four matrices every thread updates at once: word and context rows (vector and
/// bias) and their AdaGrad accumulators.
struct Shared<'a> {
    words: &'a [std::sync::atomic::AtomicU64],
    contexts: &'a [std::sync::atomic::AtomicU64],
    words_sq: &'a [std::sync::atomic::AtomicU64],
    contexts_sq: &'a [std::sync::atomic::AtomicU64],
    /// Floats per row.
    stride: usize,
    dim: usize,
    eta: f32,
}

impl Shared<'_> {
    fn row<'m>(&self, m: &'m [std::sync::atomic::AtomicU64], i: u32) -> Row<'m> {
        let pairs = self.stride / 2;
        &m[i as usize * pairs..(i as usize + 1) * pairs]
    }

    /// One AdaGrad step per pair of `chunk`; returns the chunk's cost (before the steps).
    fn pass(&self, chunk: &[Pair], cancel: &AtomicBool) -> Result<f64, TrainError> {
        let (dim, eta) = (self.dim, self.eta);
        let mut w = vec![0.0f32; self.stride];
        let mut c = vec![0.0f32; self.stride];
        let mut w_sq = vec![0.0f32; self.stride];
        let mut c_sq = vec![0.0f32; self.stride];
        let mut cost = 0.0f64;
        for (n, p) in chunk.iter().enumerate() {
            if n % CANCEL_EVERY == 0 && cancel.load(Ordering::Relaxed) {
                return Err(TrainError::Cancelled);
            }
            let (wr, cr) = (
                self.row(self.words, p.word),
                self.row(self.contexts, p.context),
            );
            load(wr, &mut w);
            load(cr, &mut c);
            let diff = dot(&w[..dim], &c[..dim]) + w[dim] + c[dim] - p.ln_x;
            let fdiff = p.weight * diff;
            if !fdiff.is_finite() {
                continue;
            }
            cost += f64::from(0.5 * fdiff * diff);
            let g = eta * fdiff;
            let (wsr, csr) = (
                self.row(self.words_sq, p.word),
                self.row(self.contexts_sq, p.context),
            );
            load(wsr, &mut w_sq);
            load(csr, &mut c_sq);
            for k in 0..dim {
                let dw = (g * c[k]).clamp(-GRAD_CLIP, GRAD_CLIP);
                let dc = (g * w[k]).clamp(-GRAD_CLIP, GRAD_CLIP);
                w[k] -= dw / w_sq[k].sqrt();
                c[k] -= dc / c_sq[k].sqrt();
                w_sq[k] += dw * dw;
                c_sq[k] += dc * dc;
            }
            w[dim] -= g / w_sq[dim].sqrt();
            c[dim] -= g / c_sq[dim].sqrt();
            w_sq[dim] += g * g;
            c_sq[dim] += g * g;
            store(wr, &w);
            store(cr, &c);
            store(wsr, &w_sq);
            store(csr, &c_sq);
        }
        Ok(cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet<R>(f: impl FnOnce(&TrainControl<'_>) -> R) -> R {
        let cancel = AtomicBool::new(false);
        f(&TrainControl {
            cancel: &cancel,
            on_event: &|_| {},
        })
    }

    fn corpus(words: &[&str]) -> Vec<Vec<String>> {
        vec![words.iter().map(|w| w.to_string()).collect()]
    }

    #[test]
    fn counts_are_symmetric_and_weighted_by_distance() {
        let sentences = corpus(&["a", "b", "a", "c"]);
        let vocab = Vocab::build(&sentences, 1, 100);
        let corpus = Corpus::encode(&sentences, &vocab.index);
        let params = GloveParams {
            window: 2,
            x_max: 1.0,
            ..GloveParams::default()
        };
        let pairs = quiet(|c| cooccurrences(&corpus, &params, c.cancel)).unwrap();
        let id = |w: &str| vocab.index[w];
        let x = |a: &str, b: &str| {
            pairs
                .iter()
                .find(|p| p.word == id(a) && p.context == id(b))
                .map(|p| p.ln_x.exp())
        };
        // a-b at distances 1 and 1, a-a at 2 (both ways: 2 x 1/2), a-c at 1 and 3, b-c at 2.
        let close = |got: Option<f32>, want: f32| (got.unwrap() - want).abs() < 1e-5;
        assert!(close(x("a", "b"), 2.0) && close(x("b", "a"), 2.0));
        assert!(close(x("a", "a"), 1.0));
        assert!(close(x("a", "c"), 1.0) && close(x("c", "a"), 1.0));
        assert!(close(x("b", "c"), 0.5));
        assert_eq!(x("b", "b"), None);
        assert_eq!(x("c", "c"), None);
        // Counts of at least x_max weigh fully, smaller ones less.
        let weight = |a: &str, b: &str| {
            pairs
                .iter()
                .find(|p| p.word == id(a) && p.context == id(b))
                .unwrap()
                .weight
        };
        assert_eq!(weight("a", "b"), 1.0);
        assert!((weight("b", "c") - 0.5f32.powf(0.75)).abs() < 1e-6);
    }

    /// Two kinds of sentences sharing no word: GloVe must put each kind's words near each
    /// other and far from the other kind's, and the cost must fall.
    #[test]
    fn learns_which_words_go_together_and_is_seeded() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let topics = [
            ["goal", "match", "team", "coach", "league", "striker"],
            ["shares", "market", "profit", "bank", "investor", "stock"],
        ];
        let sentences: Vec<Vec<String>> = (0..400)
            .map(|i| {
                let topic = &topics[i % 2];
                (0..12)
                    .map(|_| topic[rng.random_range(0..topic.len())].to_string())
                    .collect()
            })
            .collect();
        let params = GloveParams {
            vector_size: 16,
            window: 4,
            epochs: 30,
            threads: 1,
            ..GloveParams::default()
        };
        let (vectors, report) = quiet(|c| train_glove(&sentences, &params, 7, c)).unwrap();
        assert_eq!(report.cost.len(), 30);
        assert!(
            report.cost[29] < report.cost[0] * 0.5,
            "cost {:?}",
            report.cost
        );
        let sim = |a, b| vectors.similarity(a, b).unwrap();
        for (same, other) in [("goal", "team"), ("shares", "profit")]
            .iter()
            .zip([("goal", "profit"), ("shares", "coach")])
        {
            assert!(
                sim(same.0, same.1) > sim(other.0, other.1) + 0.3,
                "{same:?} {} vs {other:?} {}",
                sim(same.0, same.1),
                sim(other.0, other.1)
            );
        }
        let (again, _) = quiet(|c| train_glove(&sentences, &params, 7, c)).unwrap();
        assert_eq!(again.vectors, vectors.vectors);
        let (other_seed, _) = quiet(|c| train_glove(&sentences, &params, 8, c)).unwrap();
        assert_ne!(other_seed.vectors, vectors.vectors);
    }

    #[test]
    fn cancellation_and_empty_vocabularies_are_errors() {
        let sentences = corpus(&["one", "two", "one", "two"]);
        let params = GloveParams {
            min_count: 5,
            ..GloveParams::default()
        };
        assert!(matches!(
            quiet(|c| train_glove(&sentences, &params, 1, c)),
            Err(TrainError::InvalidData(_))
        ));
        let cancel = AtomicBool::new(true);
        let control = TrainControl {
            cancel: &cancel,
            on_event: &|_| {},
        };
        let result = train_glove(&sentences, &GloveParams::default(), 1, &control);
        assert!(matches!(result, Err(TrainError::Cancelled)));
    }
}
