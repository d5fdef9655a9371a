//! The inner loop of word2vec: the two weight matrices every worker thread updates at once
//! (Hogwild), and one epoch's pass of skip-gram or CBOW with negative sampling over them.
//!
//! The matrices are shared as relaxed atomics, each `AtomicU64` holding two `f32`s:
//! threads read and write rows without locks, exactly as word2vec.c and gensim do, but
//! the races are defined behaviour in Rust instead of undefined. Rows move through
//! rows.rs (eight floats per instruction where the CPU has AVX) into local buffers, where
//! the arithmetic is vectorised. `bench/word2vec.sh` measures this against the unsound
//! raw-pointer version (README: word2vec).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use aiaas_types::{Word2VecMode, Word2VecParams};

use super::rows::{add_row, add_to_row, dot_row, load, train_row, Row};
use super::{bounded, next_random, Corpus, NoiseTable, MAX_SENTENCE};

/// A zeroed f32 buffer aligned to 2 MiB and, on Linux, marked for transparent huge pages:
/// word2vec touches random rows of two matrices of several MB, and with 4 KiB pages
/// nearly every row access is also a TLB miss. (NumPy does the same for gensim's arrays.)
pub(crate) struct HugeBuffer {
    ptr: std::ptr::NonNull<f32>,
    len: usize,
    layout: std::alloc::Layout,
}

const HUGE_PAGE: usize = 2 * 1024 * 1024;

impl HugeBuffer {
    pub(crate) fn zeroed(len: usize) -> HugeBuffer {
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

    /// The buffer as atomic pairs of floats, for threads that update it at once (an odd
    /// last float is left out). The `&mut` borrow keeps every plain access out while the
    /// atomic view lives.
    pub(crate) fn as_atomic_pairs(&mut self) -> &[AtomicU64] {
        // SAFETY: AtomicU64 has the size and bit validity of u64 (two f32s); the buffer is
        // aligned to 2 MiB, so every pair is 8-byte aligned; the memory is initialised
        // and exclusively borrowed for the view's lifetime (what the unstable
        // `AtomicU64::from_mut_slice` does).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU64>(), self.len / 2) }
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
pub(super) struct SigmoidTable {
    table: Vec<f32>,
}

impl SigmoidTable {
    pub(super) fn new() -> SigmoidTable {
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

/// The two weight matrices shared by all worker threads, Hogwild style: input vectors
/// (`syn0`) and output vectors (`syn1`), `dim` floats per word, row-major.
pub(super) struct SharedWeights<'a> {
    pub(super) syn0: &'a [AtomicU64],
    pub(super) syn1: &'a [AtomicU64],
}

pub(super) struct Job<'a> {
    pub(super) corpus: &'a Corpus,
    pub(super) keep: &'a [u64],
    pub(super) noise: &'a NoiseTable,
    pub(super) sigmoid: &'a SigmoidTable,
    pub(super) params: &'a Word2VecParams,
    pub(super) dim: usize,
    pub(super) total_words: u64,
    pub(super) progress: &'a AtomicU64,
    pub(super) cancel: &'a AtomicBool,
}

/// Words a worker processes between updates of the shared progress counter (and alpha).
const PROGRESS_CHUNK: u64 = 10_000;

/// A worker's scratch vectors, `dim` floats each.
struct Scratch {
    /// The hidden vector: a context word's input vector, or CBOW's context mean.
    l1: Vec<f32>,
    /// The gradient for the input side.
    neu1e: Vec<f32>,
}

impl Job<'_> {
    /// One epoch over `sentences` for one worker; returns (effective words, final RNG state).
    pub(super) fn run(
        &self,
        w: &SharedWeights<'_>,
        sentences: std::ops::Range<usize>,
        rng: u64,
    ) -> (u64, u64) {
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
        w: &SharedWeights<'_>,
        sentences: std::ops::Range<usize>,
        rng: u64,
    ) -> (u64, u64) {
        self.run_generic(w, sentences, rng)
    }

    #[inline(always)]
    fn run_generic(
        &self,
        w: &SharedWeights<'_>,
        sentences: std::ops::Range<usize>,
        mut rng: u64,
    ) -> (u64, u64) {
        let dim = self.dim;
        let v = self.keep.len();
        let mut sentence: Vec<u32> = Vec::with_capacity(MAX_SENTENCE);
        let mut scratch = Scratch {
            l1: vec![0f32; dim],
            neu1e: vec![0f32; dim],
        };
        let mut effective = 0u64;
        let mut since_update = 0u64;
        let mut alpha = self.alpha(self.progress.load(Relaxed));
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
                let done = self.progress.fetch_add(since_update, Relaxed) + since_update;
                since_update = 0;
                alpha = self.alpha(done);
                if self.cancel.load(Relaxed) {
                    break;
                }
            }
            let ctx = Ctx { w, v, dim, alpha };
            rng = match self.params.mode {
                Word2VecMode::SkipGram => self.skipgram(&ctx, &sentence, &mut scratch, rng),
                Word2VecMode::Cbow => self.cbow(&ctx, &sentence, &mut scratch, rng),
            };
        }
        self.progress.fetch_add(since_update, Relaxed);
        (effective, rng)
    }

    fn alpha(&self, done: u64) -> f32 {
        let p = &self.params;
        let frac = (done as f64 / self.total_words.max(1) as f64).min(1.0) as f32;
        (p.alpha - (p.alpha - p.min_alpha) * frac).max(p.min_alpha)
    }

    /// Skip-gram as in word2vec.c: each context word's input vector predicts the centre word.
    #[inline(always)]
    fn skipgram(&self, c: &Ctx, sen: &[u32], s: &mut Scratch, mut rng: u64) -> u64 {
        let window = self.params.window;
        for (pos, &word) in sen.iter().enumerate() {
            rng = next_random(rng);
            let (lo, hi) = reduced_window(pos, sen.len(), window, rng);
            for (cpos, &ctx_word) in sen.iter().enumerate().take(hi + 1).skip(lo) {
                if cpos == pos {
                    continue;
                }
                s.neu1e.fill(0.0);
                let input = c.row0(ctx_word);
                load(input, &mut s.l1);
                rng = self.negative_pass(c, word, s, rng);
                add_to_row(input, &s.neu1e);
            }
        }
        rng
    }

    /// CBOW with the mean of the context vectors (gensim's cbow_mean=1).
    #[inline(always)]
    fn cbow(&self, c: &Ctx, sen: &[u32], s: &mut Scratch, mut rng: u64) -> u64 {
        let window = self.params.window;
        for (pos, &word) in sen.iter().enumerate() {
            rng = next_random(rng);
            let (lo, hi) = reduced_window(pos, sen.len(), window, rng);
            s.l1.fill(0.0);
            let mut count = 0usize;
            for (cpos, &ctx_word) in sen.iter().enumerate().take(hi + 1).skip(lo) {
                if cpos != pos {
                    add_row(c.row0(ctx_word), &mut s.l1);
                    count += 1;
                }
            }
            if count == 0 {
                continue;
            }
            let inv = 1.0 / count as f32;
            s.l1.iter_mut().for_each(|x| *x *= inv);
            s.neu1e.fill(0.0);
            rng = self.negative_pass(c, word, s, rng);
            for (cpos, &ctx_word) in sen.iter().enumerate().take(hi + 1).skip(lo) {
                if cpos != pos {
                    add_to_row(c.row0(ctx_word), &s.neu1e);
                }
            }
        }
        rng
    }

    /// One positive and `negative` noise targets against the hidden vector `s.l1`;
    /// accumulates the input-side gradient in `s.neu1e` and updates the output vectors.
    #[inline(always)]
    fn negative_pass(&self, c: &Ctx, word: u32, s: &mut Scratch, mut rng: u64) -> u64 {
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
            let output = c.row1(target);
            let g = self
                .sigmoid
                .gradient(dot_row(output, &s.l1), label, c.alpha);
            train_row(output, g, &s.l1, &mut s.neu1e);
        }
        rng
    }
}

/// The context around `pos` (inclusive bounds), shrunk by a random 0..window as in
/// word2vec.c (nearer words count more often).
#[inline(always)]
fn reduced_window(pos: usize, len: usize, window: usize, rng: u64) -> (usize, usize) {
    let b = bounded(rng, window);
    (
        pos.saturating_sub(window - b),
        (pos + window - b).min(len - 1),
    )
}

/// Most negative samples per target honoured (the configuration allows up to 50).
const MAX_NEGATIVE: usize = 64;

/// Per-sentence view of the shared weights.
struct Ctx<'a> {
    w: &'a SharedWeights<'a>,
    v: usize,
    dim: usize,
    alpha: f32,
}

impl Ctx<'_> {
    /// Input row `word` (clamped into the vocabulary: every index is in bounds).
    #[inline(always)]
    fn row0(&self, word: u32) -> Row<'_> {
        let (i, pairs) = ((word as usize).min(self.v - 1), self.dim / 2);
        &self.w.syn0[i * pairs..(i + 1) * pairs]
    }

    /// Output row `word`.
    #[inline(always)]
    fn row1(&self, word: u32) -> Row<'_> {
        let (i, pairs) = ((word as usize).min(self.v - 1), self.dim / 2);
        &self.w.syn1[i * pairs..(i + 1) * pairs]
    }

    /// Hint the CPU to start loading output row `word`.
    #[inline(always)]
    fn prefetch1(&self, word: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let row = self.row1(word);
            let p = row.as_ptr().cast::<i8>();
            // SAFETY: every address is inside the row; prefetching never faults and does
            // not access memory in the Rust sense.
            unsafe {
                for line in (0..row.len() * 8).step_by(64) {
                    std::arch::x86_64::_mm_prefetch(p.add(line), std::arch::x86_64::_MM_HINT_T0);
                }
            }
        }
    }
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
