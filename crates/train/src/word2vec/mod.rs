//! Word2Vec with negative sampling (skip-gram and CBOW) in pure Rust, following the original
//! word2vec.c and gensim: min_count vocabulary, unigram^0.75 noise (alias sampling), gensim's frequent-word
//! sub-sampling, linear learning-rate decay, reduced (dynamic) windows and Hogwild threads.

pub(crate) mod rows;
pub(crate) mod sgd;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aiaas_types::{TrainEvent, Word2VecParams, Word2VecReport};
use rand::{Rng, SeedableRng};

pub(crate) use sgd::HugeBuffer;
pub(crate) use sgd::{axpy, dot};
use sgd::{Job, SharedWeights, SigmoidTable};

use crate::{TrainControl, TrainError};

/// Trained word vectors. `words` is in index order, sorted by corpus frequency (descending,
/// ties by word); `vectors` is row-major, `dim` floats per word.
#[derive(Debug, Clone)]
pub struct WordVectors {
    pub words: Vec<String>,
    pub counts: Vec<u64>,
    pub index: HashMap<String, u32>,
    pub vectors: Vec<f32>,
    pub dim: usize,
}

impl WordVectors {
    /// The vector of `word`, if it is in the vocabulary.
    pub fn get(&self, word: &str) -> Option<&[f32]> {
        let i = *self.index.get(word)? as usize;
        self.vectors.get(i * self.dim..(i + 1) * self.dim)
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Cosine similarity of two in-vocabulary words.
    pub fn similarity(&self, a: &str, b: &str) -> Option<f32> {
        let (x, y) = (self.get(a)?, self.get(b)?);
        let denom = (dot(x, x) * dot(y, y)).sqrt();
        Some(if denom > 0.0 { dot(x, y) / denom } else { 0.0 })
    }
}

/// Train word vectors on tokenised sentences. With `params.threads == 1` the result is a pure
/// function of the input and `seed`; with more threads, Hogwild updates make it vary slightly
/// from run to run (as in word2vec.c and gensim). Checks `control.cancel` every ~10k words and
/// emits `TrainEvent::Word2vecEpoch` after each epoch.
pub fn train_word2vec(
    sentences: &[Vec<String>],
    params: &Word2VecParams,
    seed: u64,
    control: &TrainControl<'_>,
) -> Result<(WordVectors, Word2VecReport), TrainError> {
    let dim = params.vector_size;
    if dim == 0 || params.window == 0 || params.epochs == 0 {
        return Err(TrainError::InvalidConfig(
            "word2vec needs vector_size, window and epochs of at least 1".into(),
        ));
    }
    let max_words = aiaas_types::MAX_EMBEDDING_WEIGHTS / dim;
    let vocab = Vocab::build(sentences, params.min_count.max(1), max_words);
    if vocab.words.is_empty() {
        return Err(TrainError::InvalidData(format!(
            "word2vec: no word occurs at least {} times in the training texts",
            params.min_count
        )));
    }
    let corpus = Corpus::encode(sentences, &vocab.index);
    let keep = keep_thresholds(&vocab.counts, params.sample);
    let noise = NoiseTable::new(&vocab.counts);
    let sigmoid = SigmoidTable::new();

    let v = vocab.words.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Rows are shared as pairs of floats (see sgd.rs): an odd dimension gets one padding
    // float per row, which stays zero (it only ever meets zeros).
    let stride = dim.next_multiple_of(2);
    let mut syn0 = input_vectors(v, dim, stride, &mut rng);
    let mut syn1 = HugeBuffer::zeroed(v * stride);

    let threads = thread_count(params.threads, corpus.sentences.len());
    let parts = corpus.partition(threads);
    let total_words = corpus.tokens.len() as u64 * params.epochs as u64;
    let progress = AtomicU64::new(0);
    let rng_states: Vec<u64> = (0..parts.len())
        .map(|t| seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t as u64 + 1)))
        .collect();
    let shared = SharedWeights {
        syn0: syn0.as_atomic_pairs(),
        syn1: syn1.as_atomic_pairs(),
    };
    let job = Job {
        corpus: &corpus,
        keep: &keep,
        noise: &noise,
        sigmoid: &sigmoid,
        params,
        dim: stride,
        total_words,
        progress: &progress,
        cancel: control.cancel,
    };

    let started = Instant::now();
    let effective = train_epochs(&job, &shared, &parts, rng_states, control)?;
    let seconds = started.elapsed().as_secs_f64();
    let report = Word2VecReport {
        mode: params.mode,
        vocabulary: v,
        words: effective,
        seconds,
        words_per_second: effective as f64 / seconds.max(1e-9),
    };
    let vectors = WordVectors {
        words: vocab.words,
        counts: vocab.counts,
        index: vocab.index,
        vectors: syn0
            .chunks_exact(stride)
            .flat_map(|row| &row[..dim])
            .copied()
            .collect(),
        dim,
    };
    Ok((vectors, report))
}

/// Every epoch over the corpus, reporting each one's speed. Returns the words trained.
fn train_epochs(
    job: &Job<'_>,
    shared: &SharedWeights<'_>,
    parts: &[std::ops::Range<usize>],
    mut rng_states: Vec<u64>,
    control: &TrainControl<'_>,
) -> Result<u64, TrainError> {
    let params = job.params;
    let mut effective = 0u64;
    for epoch in 0..params.epochs {
        let epoch_start = Instant::now();
        let results = run_epoch(job, shared, parts, &rng_states);
        if control.cancel.load(Ordering::Relaxed) {
            return Err(TrainError::Cancelled);
        }
        let epoch_words: u64 = results.iter().map(|r| r.0).sum();
        for (state, r) in rng_states.iter_mut().zip(&results) {
            *state = r.1;
        }
        effective += epoch_words;
        let secs = epoch_start.elapsed().as_secs_f64().max(1e-9);
        (control.on_event)(TrainEvent::Word2vecEpoch {
            epoch: epoch + 1,
            epochs: params.epochs,
            words_per_second: epoch_words as f64 / secs,
        });
    }
    Ok(effective)
}

/// The input vectors, small random values (the reference initialisation); padding
/// floats stay zero.
fn input_vectors(words: usize, dim: usize, stride: usize, rng: &mut impl Rng) -> HugeBuffer {
    let mut syn0 = HugeBuffer::zeroed(words * stride);
    for row in syn0.chunks_exact_mut(stride) {
        for x in &mut row[..dim] {
            *x = (rng.random::<f32>() - 0.5) / dim as f32;
        }
    }
    syn0
}

/// Threads to train on: as asked (0: one per core), never more than sentences.
pub(crate) fn thread_count(asked: usize, sentences: usize) -> usize {
    match asked {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(sentences.max(1))
}

/// One pass over the corpus, one thread per part (Hogwild over the shared weights).
/// Returns each thread's words trained and its random state after.
fn run_epoch(
    job: &Job<'_>,
    shared: &SharedWeights<'_>,
    parts: &[std::ops::Range<usize>],
    rng_states: &[u64],
) -> Vec<(u64, u64)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .zip(rng_states)
            .map(|(range, &state)| {
                let range = range.clone();
                s.spawn(move || job.run(shared, range, state))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 0)))
            .collect()
    })
}

pub(crate) struct Vocab {
    pub(crate) words: Vec<String>,
    pub(crate) counts: Vec<u64>,
    pub(crate) index: HashMap<String, u32>,
}

impl Vocab {
    /// The words seen `min_count` times or more, the `max_words` most frequent of them.
    pub(crate) fn build(sentences: &[Vec<String>], min_count: usize, max_words: usize) -> Vocab {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for s in sentences {
            for w in s {
                *counts.entry(w.as_str()).or_insert(0) += 1;
            }
        }
        let mut kept: Vec<(&str, u64)> = counts
            .into_iter()
            .filter(|&(_, c)| c >= min_count as u64)
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        kept.truncate(max_words);
        let words: Vec<String> = kept.iter().map(|(w, _)| w.to_string()).collect();
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Vocab {
            counts: kept.iter().map(|k| k.1).collect(),
            words,
            index,
        }
    }
}

/// The corpus as word indices (out-of-vocabulary words removed before windowing, as in gensim),
/// with sentence boundaries. Long sentences are split at 10,000 words like gensim does.
pub(crate) struct Corpus {
    pub(crate) tokens: Vec<u32>,
    pub(crate) sentences: Vec<std::ops::Range<usize>>,
}

const MAX_SENTENCE: usize = 10_000;

impl Corpus {
    pub(crate) fn encode(sentences: &[Vec<String>], index: &HashMap<String, u32>) -> Corpus {
        let mut tokens = Vec::new();
        let mut ranges = Vec::new();
        for s in sentences {
            let start = tokens.len();
            tokens.extend(s.iter().filter_map(|w| index.get(w).copied()));
            let mut a = start;
            while a < tokens.len() {
                let b = (a + MAX_SENTENCE).min(tokens.len());
                ranges.push(a..b);
                a = b;
            }
        }
        Corpus {
            tokens,
            sentences: ranges,
        }
    }

    /// Contiguous runs of sentences with about the same number of words, one per thread.
    fn partition(&self, parts: usize) -> Vec<std::ops::Range<usize>> {
        let total = self.tokens.len().max(1);
        let mut out = Vec::with_capacity(parts);
        let mut start = 0;
        for p in 1..=parts {
            let goal = total * p / parts;
            let mut end = start;
            while end < self.sentences.len() && (p == parts || self.sentences[end].end <= goal) {
                end += 1;
            }
            out.push(start..end);
            start = end;
        }
        out.retain(|r| !r.is_empty());
        out
    }
}

/// gensim's sub-sampling: keep probability `(sqrt(f/t) + 1) * t/f` with `t = sample * total`,
/// stored as a 32-bit threshold compared against a random 32-bit number.
fn keep_thresholds(counts: &[u64], sample: f64) -> Vec<u64> {
    let total: u64 = counts.iter().sum();
    if sample <= 0.0 {
        return vec![1u64 << 32; counts.len()];
    }
    let threshold = if sample < 1.0 {
        sample * total as f64
    } else {
        sample
    };
    counts
        .iter()
        .map(|&c| {
            let c = c as f64;
            let p = ((c / threshold).sqrt() + 1.0) * (threshold / c);
            (p.min(1.0) * 4_294_967_296.0).round() as u64
        })
        .collect()
}

/// Noise distribution `count^0.75`, sampled in O(1) with Vose's alias method. Its two
/// arrays have one entry per word (a few hundred KB for a 16k vocabulary), so they stay in
/// the cache, where word2vec.c's 10^8-entry unigram table costs a cache miss per draw.
struct NoiseTable {
    /// Probability (scaled to 2^32) of keeping column `i` rather than its alias.
    keep: Vec<u32>,
    alias: Vec<u32>,
}

impl NoiseTable {
    fn new(counts: &[u64]) -> NoiseTable {
        let n = counts.len().max(1);
        let powers: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
        let total: f64 = powers.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut scaled: Vec<f64> = powers.iter().map(|p| p * n as f64 / total).collect();
        scaled.resize(n, 1.0);
        let mut keep = vec![u32::MAX; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep[s] = (scaled[s] * 4_294_967_295.0) as u32;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        NoiseTable { keep, alias }
    }

    /// A word drawn from the noise distribution, using two LCG states' high bits.
    #[inline(always)]
    fn sample(&self, column_bits: u64, coin_bits: u64) -> u32 {
        let i = bounded(column_bits, self.keep.len());
        let coin = ((coin_bits >> 16) & 0xFFFF_FFFF) as u32;
        if coin < self.keep[i] {
            i as u32
        } else {
            self.alias[i]
        }
    }
}

/// word2vec.c's linear congruential generator: cheap enough for the inner loop.
#[inline(always)]
fn next_random(state: u64) -> u64 {
    state.wrapping_mul(25_214_903_917).wrapping_add(11)
}

/// A number in `0..n` from the high bits of an LCG state, by multiply-shift rather than `%`
/// (a 64-bit division per draw is a measurable share of the inner loop).
#[inline(always)]
fn bounded(state: u64, n: usize) -> usize {
    ((((state >> 16) & 0xFFFF_FFFF) * n as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use aiaas_types::Word2VecMode;

    use super::*;

    #[test]
    fn noise_samples_follow_count_to_the_three_quarters() {
        let counts = [1000u64, 100, 10, 1, 500];
        let table = NoiseTable::new(&counts);
        let weights: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
        let total: f64 = weights.iter().sum();
        let mut seen = [0u64; 5];
        let mut rng = 7u64;
        let draws = 400_000;
        for _ in 0..draws {
            rng = next_random(rng);
            let column = rng;
            rng = next_random(rng);
            seen[table.sample(column, rng) as usize] += 1;
        }
        for i in 0..5 {
            let expected = weights[i] / total;
            let got = seen[i] as f64 / draws as f64;
            assert!(
                (got - expected).abs() < 0.01,
                "word {i}: {got} vs {expected}"
            );
        }
    }
    use rand::seq::IndexedRandom;

    /// Two topics with disjoint vocabularies: words of one topic co-occur only with each other.
    fn corpus(seed: u64) -> Vec<Vec<String>> {
        let animals = ["cat", "dog", "horse", "cow", "sheep", "goat", "pig", "duck"];
        let tools = [
            "hammer", "saw", "drill", "wrench", "pliers", "chisel", "file", "axe",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..600)
            .map(|i| {
                let topic: &[&str] = if i % 2 == 0 { &animals } else { &tools };
                (0..12)
                    .map(|_| topic.choose(&mut rng).map_or("x", |w| *w).to_string())
                    .collect()
            })
            .collect()
    }

    fn control_parts() -> (AtomicBool, impl Fn(TrainEvent) + Sync) {
        (AtomicBool::new(false), |_e: TrainEvent| {})
    }

    fn check_mode(mode: Word2VecMode) {
        let (cancel, on_event) = control_parts();
        let control = TrainControl {
            cancel: &cancel,
            on_event: &on_event,
        };
        let params = Word2VecParams {
            mode,
            vector_size: 32,
            epochs: 10,
            threads: 1,
            sample: 0.0,
            ..Word2VecParams::default()
        };
        let (wv, report) = train_word2vec(&corpus(1), &params, 7, &control).unwrap();
        assert_eq!(wv.len(), 16);
        assert_eq!(report.words, 600 * 12 * 10);
        let same = wv.similarity("cat", "dog").unwrap();
        let other = wv.similarity("cat", "hammer").unwrap();
        assert!(same > other + 0.2, "{mode:?}: same {same} other {other}");
        let (wv2, _) = train_word2vec(&corpus(1), &params, 7, &control).unwrap();
        assert_eq!(wv.vectors, wv2.vectors, "threads=1 must be deterministic");
    }

    #[test]
    fn skipgram_groups_cooccurring_words() {
        check_mode(Word2VecMode::SkipGram);
    }

    #[test]
    fn cbow_groups_cooccurring_words() {
        check_mode(Word2VecMode::Cbow);
    }

    /// Rows are shared as pairs of floats: an odd dimension carries a padding float that
    /// must stay out of the vectors and out of the learning.
    #[test]
    fn odd_dimensions_learn_like_even_ones() {
        let (cancel, on_event) = control_parts();
        let control = TrainControl {
            cancel: &cancel,
            on_event: &on_event,
        };
        let params = Word2VecParams {
            vector_size: 33,
            epochs: 10,
            threads: 1,
            sample: 0.0,
            ..Word2VecParams::default()
        };
        let (wv, _) = train_word2vec(&corpus(3), &params, 7, &control).unwrap();
        assert_eq!(wv.vectors.len(), wv.len() * 33);
        assert!(wv.vectors.iter().all(|x| x.is_finite()));
        let same = wv.similarity("cat", "dog").unwrap();
        let other = wv.similarity("cat", "hammer").unwrap();
        assert!(same > other + 0.2, "same {same} other {other}");
    }

    #[test]
    fn vocabulary_is_sorted_by_frequency_and_respects_min_count() {
        let s: Vec<Vec<String>> = vec!["a b b c c c d".split(' ').map(String::from).collect()];
        let (cancel, on_event) = control_parts();
        let control = TrainControl {
            cancel: &cancel,
            on_event: &on_event,
        };
        let params = Word2VecParams {
            min_count: 2,
            threads: 2,
            ..Word2VecParams::default()
        };
        let (wv, _) = train_word2vec(&s, &params, 1, &control).unwrap();
        assert_eq!(wv.words, vec!["c", "b"]);
        assert!(wv.get("a").is_none());
        assert_eq!(wv.get("b").map(<[f32]>::len), Some(100));
    }

    #[test]
    fn cancellation_is_reported() {
        let cancel = AtomicBool::new(true);
        let on_event = |_e: TrainEvent| {};
        let control = TrainControl {
            cancel: &cancel,
            on_event: &on_event,
        };
        let r = train_word2vec(&corpus(2), &Word2VecParams::default(), 1, &control);
        assert!(matches!(r, Err(TrainError::Cancelled)));
    }
}
