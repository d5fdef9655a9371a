//! Word2Vec with negative sampling (skip-gram and CBOW) in pure Rust, following the original
//! word2vec.c and gensim: min_count vocabulary, unigram^0.75 noise (alias sampling), gensim's frequent-word
//! sub-sampling, linear learning-rate decay, reduced (dynamic) windows and Hogwild threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use aiaas_types::{TrainEvent, Word2VecMode, Word2VecParams, Word2VecReport};
use rand::{Rng, SeedableRng};

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
    let mut syn0 = HugeBuffer::zeroed(v * dim);
    for x in syn0.iter_mut() {
        *x = (rng.random::<f32>() - 0.5) / dim as f32;
    }
    let mut syn1 = HugeBuffer::zeroed(v * dim);

    let threads = match params.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(corpus.sentences.len().max(1));
    let parts = corpus.partition(threads);
    let total_words = corpus.tokens.len() as u64 * params.epochs as u64;
    let progress = AtomicU64::new(0);
    let mut rng_states: Vec<u64> = (0..parts.len())
        .map(|t| seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t as u64 + 1)))
        .collect();
    let shared = SharedWeights {
        syn0: syn0.as_mut_ptr(),
        syn1: syn1.as_mut_ptr(),
    };
    let job = Job {
        corpus: &corpus,
        keep: &keep,
        noise: &noise,
        sigmoid: &sigmoid,
        params,
        dim,
        total_words,
        progress: &progress,
        cancel: control.cancel,
    };

    let started = Instant::now();
    let mut effective = 0u64;
    for epoch in 0..params.epochs {
        let epoch_start = Instant::now();
        let results: Vec<(u64, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .iter()
                .zip(&rng_states)
                .map(|(range, &state)| {
                    let job = &job;
                    let shared = &shared;
                    let range = range.clone();
                    s.spawn(move || job.run(shared, range, state))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or((0, 0)))
                .collect()
        });
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
        vectors: syn0.to_vec(),
        dim,
    };
    Ok((vectors, report))
}

struct Vocab {
    words: Vec<String>,
    counts: Vec<u64>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// The words seen `min_count` times or more, the `max_words` most frequent of them.
    fn build(sentences: &[Vec<String>], min_count: usize, max_words: usize) -> Vocab {
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
struct Corpus {
    tokens: Vec<u32>,
    sentences: Vec<std::ops::Range<usize>>,
}

const MAX_SENTENCE: usize = 10_000;

impl Corpus {
    fn encode(sentences: &[Vec<String>], index: &HashMap<String, u32>) -> Corpus {
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

/// A zeroed f32 buffer aligned to 2 MiB and, on Linux, marked for transparent huge pages:
/// word2vec touches random rows of two matrices of several MB, and with 4 KiB pages
/// nearly every row access is also a TLB miss. (NumPy does the same for gensim's arrays.)
struct HugeBuffer {
    ptr: std::ptr::NonNull<f32>,
    len: usize,
    layout: std::alloc::Layout,
}

const HUGE_PAGE: usize = 2 * 1024 * 1024;

impl HugeBuffer {
    fn zeroed(len: usize) -> HugeBuffer {
        let bytes = (len.max(1) * std::mem::size_of::<f32>()).next_multiple_of(HUGE_PAGE);
        let layout = match std::alloc::Layout::from_size_align(bytes, HUGE_PAGE) {
            Ok(l) => l,
            Err(_) => std::alloc::Layout::new::<f32>(),
        };
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) } as *mut f32;
        let Some(ptr) = std::ptr::NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout);
        };
        #[cfg(target_os = "linux")]
        // SAFETY: the range is exactly the allocation just made; the advice only affects
        // how the kernel backs it. Failure (e.g. THP disabled) is harmless.
        unsafe {
            libc::madvise(raw.cast(), layout.size(), libc::MADV_HUGEPAGE);
        }
        HugeBuffer { ptr, len, layout }
    }

    fn as_mut_ptr(&mut self) -> *mut f32 {
        self.ptr.as_ptr()
    }
}

impl std::ops::Deref for HugeBuffer {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `ptr` points to at least `len` zero-initialised (or since written) f32s.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for HugeBuffer {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for HugeBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) }
    }
}

// SAFETY: HugeBuffer owns its allocation like a Vec<f32>.
unsafe impl Send for HugeBuffer {}
unsafe impl Sync for HugeBuffer {}

const MAX_EXP: f32 = 6.0;
const EXP_TABLE_SIZE: usize = 1000;

/// Precomputed logistic function on [-MAX_EXP, MAX_EXP], as in word2vec.c.
struct SigmoidTable {
    table: Vec<f32>,
}

impl SigmoidTable {
    fn new() -> SigmoidTable {
        let table = (0..EXP_TABLE_SIZE)
            .map(|i| {
                let x = (i as f32 / EXP_TABLE_SIZE as f32 * 2.0 - 1.0) * MAX_EXP;
                let e = x.exp();
                e / (e + 1.0)
            })
            .collect();
        SigmoidTable { table }
    }

    /// Gradient scale `(label - sigmoid(f)) * alpha`, saturating outside the table like word2vec.c.
    #[inline(always)]
    fn gradient(&self, f: f32, label: f32, alpha: f32) -> f32 {
        if f > MAX_EXP {
            (label - 1.0) * alpha
        } else if f < -MAX_EXP {
            label * alpha
        } else {
            let i = ((f + MAX_EXP) * (EXP_TABLE_SIZE as f32 / MAX_EXP / 2.0)) as usize;
            (label - self.table[i.min(EXP_TABLE_SIZE - 1)]) * alpha
        }
    }
}

/// The two weight matrices shared by all worker threads, Hogwild style.
///
/// Soundness note: workers read and write rows of these matrices without synchronisation,
/// exactly like word2vec.c and gensim. Two threads rarely touch the same row at once (rows are
/// per word, and updates are small), and when they do the worst outcome is a lost or mixed
/// float update, which SGD tolerates; every index is bounds-checked against the vocabulary, so
/// no access goes outside the buffers, which outlive the scoped threads.
struct SharedWeights {
    syn0: *mut f32,
    syn1: *mut f32,
}

// SAFETY: see the note on `SharedWeights`: concurrent access is intentional (Hogwild), all
// indices are in bounds, and the buffers outlive every thread (std::thread::scope).
unsafe impl Sync for SharedWeights {}
unsafe impl Send for SharedWeights {}

struct Job<'a> {
    corpus: &'a Corpus,
    keep: &'a [u64],
    noise: &'a NoiseTable,
    sigmoid: &'a SigmoidTable,
    params: &'a Word2VecParams,
    dim: usize,
    total_words: u64,
    progress: &'a AtomicU64,
    cancel: &'a AtomicBool,
}

/// Words a worker processes between updates of the shared progress counter (and alpha).
const PROGRESS_CHUNK: u64 = 10_000;

impl Job<'_> {
    /// One epoch over `sentences` for one worker; returns (effective words, final RNG state).
    fn run(&self, w: &SharedWeights, sentences: std::ops::Range<usize>, rng: u64) -> (u64, u64) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports the features the function is compiled for.
                return unsafe { self.run_avx2(w, sentences, rng) };
            }
        }
        self.run_generic(w, sentences, rng)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(
        &self,
        w: &SharedWeights,
        sentences: std::ops::Range<usize>,
        rng: u64,
    ) -> (u64, u64) {
        self.run_generic(w, sentences, rng)
    }

    #[inline(always)]
    fn run_generic(
        &self,
        w: &SharedWeights,
        sentences: std::ops::Range<usize>,
        mut rng: u64,
    ) -> (u64, u64) {
        let dim = self.dim;
        let v = self.keep.len();
        let mut sentence: Vec<u32> = Vec::with_capacity(MAX_SENTENCE);
        let mut neu1 = vec![0f32; dim];
        let mut neu1e = vec![0f32; dim];
        let mut effective = 0u64;
        let mut since_update = 0u64;
        let mut alpha = self.alpha(self.progress.load(Ordering::Relaxed));
        for si in sentences {
            let Some(range) = self.corpus.sentences.get(si) else {
                continue;
            };
            let raw = &self.corpus.tokens[range.clone()];
            sentence.clear();
            for &word in raw {
                rng = next_random(rng);
                if self.keep[word as usize] >= (rng >> 16) & 0xFFFF_FFFF {
                    sentence.push(word);
                }
            }
            effective += sentence.len() as u64;
            since_update += raw.len() as u64;
            if since_update >= PROGRESS_CHUNK {
                let done = self.progress.fetch_add(since_update, Ordering::Relaxed) + since_update;
                since_update = 0;
                alpha = self.alpha(done);
                if self.cancel.load(Ordering::Relaxed) {
                    break;
                }
            }
            let ctx = Ctx { w, v, dim, alpha };
            rng = match self.params.mode {
                Word2VecMode::SkipGram => self.skipgram(&ctx, &sentence, &mut neu1e, rng),
                Word2VecMode::Cbow => self.cbow(&ctx, &sentence, &mut neu1, &mut neu1e, rng),
            };
        }
        self.progress.fetch_add(since_update, Ordering::Relaxed);
        (effective, rng)
    }

    fn alpha(&self, done: u64) -> f32 {
        let p = &self.params;
        let frac = (done as f64 / self.total_words.max(1) as f64).min(1.0) as f32;
        (p.alpha - (p.alpha - p.min_alpha) * frac).max(p.min_alpha)
    }

    /// Skip-gram as in word2vec.c: each context word's input vector predicts the centre word.
    #[inline(always)]
    fn skipgram(&self, c: &Ctx, sen: &[u32], neu1e: &mut [f32], mut rng: u64) -> u64 {
        let window = self.params.window;
        for (pos, &word) in sen.iter().enumerate() {
            rng = next_random(rng);
            let b = bounded(rng, window);
            let lo = pos.saturating_sub(window - b);
            let hi = (pos + window - b).min(sen.len() - 1);
            for (cpos, &ctx_word) in sen.iter().enumerate().take(hi + 1).skip(lo) {
                if cpos == pos {
                    continue;
                }
                neu1e.fill(0.0);
                // SAFETY: row indices are < v (see `SharedWeights`).
                let l1 = unsafe { c.row0(ctx_word) };
                rng = self.negative_pass(c, word, l1, neu1e, rng);
                axpy(1.0, neu1e, l1);
            }
        }
        rng
    }

    /// CBOW with the mean of the context vectors (gensim's cbow_mean=1).
    #[inline(always)]
    fn cbow(&self, c: &Ctx, sen: &[u32], neu1: &mut [f32], neu1e: &mut [f32], mut rng: u64) -> u64 {
        let window = self.params.window;
        for (pos, &word) in sen.iter().enumerate() {
            rng = next_random(rng);
            let b = bounded(rng, window);
            let lo = pos.saturating_sub(window - b);
            let hi = (pos + window - b).min(sen.len() - 1);
            neu1.fill(0.0);
            let mut count = 0usize;
            for (cpos, &ctx_word) in sen.iter().enumerate().take(hi + 1).skip(lo) {
                if cpos != pos {
                    // SAFETY: in-bounds row (see `SharedWeights`).
                    axpy(1.0, unsafe { c.row0(ctx_word) }, neu1);
                    count += 1;
                }
            }
            if count == 0 {
                continue;
            }
            let inv = 1.0 / count as f32;
            neu1.iter_mut().for_each(|x| *x *= inv);
            neu1e.fill(0.0);
            rng = self.negative_pass(c, word, neu1, neu1e, rng);
            for (cpos, &ctx_word) in sen.iter().enumerate().take(hi + 1).skip(lo) {
                if cpos != pos {
                    // SAFETY: in-bounds row (see `SharedWeights`).
                    axpy(1.0, neu1e, unsafe { c.row0(ctx_word) });
                }
            }
        }
        rng
    }

    /// One positive and `negative` noise targets against hidden vector `l1`; accumulates the
    /// input-side gradient in `neu1e` and updates the output vectors in place.
    #[inline(always)]
    fn negative_pass(
        &self,
        c: &Ctx,
        word: u32,
        l1: &[f32],
        neu1e: &mut [f32],
        mut rng: u64,
    ) -> u64 {
        // Draw the targets first and prefetch their rows: the loop is bound by cache misses
        // on random output vectors, and this lets those misses overlap.
        let mut targets = [0u32; MAX_NEGATIVE + 1];
        let mut n = 0;
        targets[n] = word;
        n += 1;
        for _ in 0..self.params.negative.min(MAX_NEGATIVE) {
            rng = next_random(rng);
            let column = rng;
            rng = next_random(rng);
            let t = self.noise.sample(column, rng);
            if t != word {
                targets[n] = t;
                n += 1;
                c.prefetch1(t);
            }
        }
        for (d, &target) in targets[..n].iter().enumerate() {
            let label = if d == 0 { 1.0 } else { 0.0 };
            // SAFETY: in-bounds row (see `SharedWeights`).
            let l2 = unsafe { c.row1(target) };
            let g = self.sigmoid.gradient(dot(l1, l2), label, c.alpha);
            axpy(g, l2, neu1e);
            axpy(g, l1, l2);
        }
        rng
    }
}

/// Most negative samples per target honoured (the configuration allows up to 50).
const MAX_NEGATIVE: usize = 64;

/// Per-sentence view of the shared weights.
struct Ctx<'a> {
    w: &'a SharedWeights,
    v: usize,
    dim: usize,
    alpha: f32,
}

impl Ctx<'_> {
    /// # Safety
    /// Hogwild access; see `SharedWeights`.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn row0(&self, word: u32) -> &mut [f32] {
        let i = (word as usize).min(self.v - 1);
        std::slice::from_raw_parts_mut(self.w.syn0.add(i * self.dim), self.dim)
    }

    /// Hint the CPU to start loading output row `word`.
    #[inline(always)]
    fn prefetch1(&self, word: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let i = (word as usize).min(self.v - 1);
            // SAFETY: the address is inside the syn1 buffer; prefetching never faults and
            // does not access memory in the Rust sense.
            unsafe {
                let p = self.w.syn1.add(i * self.dim) as *const i8;
                for line in (0..self.dim * 4).step_by(64) {
                    std::arch::x86_64::_mm_prefetch(p.add(line), std::arch::x86_64::_MM_HINT_T0);
                }
            }
        }
    }

    /// # Safety
    /// Hogwild access; see `SharedWeights`.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn row1(&self, word: u32) -> &mut [f32] {
        let i = (word as usize).min(self.v - 1);
        std::slice::from_raw_parts_mut(self.w.syn1.add(i * self.dim), self.dim)
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

/// Dot product with sixteen independent accumulators (two 8-lane vectors), so the
/// compiler can vectorise it and two FMA chains overlap.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = 0.0;
    for i in 0..8 {
        s += acc[i] + acc[i + 8];
    }
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y += a * x`.
#[inline(always)]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
mod tests {
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
