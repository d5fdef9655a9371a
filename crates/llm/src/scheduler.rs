//! The generation scheduler of one loaded model: one llama.cpp context with a fixed
//! number of sequence slots, driven by one dedicated thread (continuous batching).
//!
//! Each step builds one batch: the next token of every sequence that is generating, plus
//! a chunk of the prompt of sequences still prefilling (small chunks while others
//! generate, so running streams keep flowing). A request joins at the next step when a
//! slot is free; a finished, cancelled (receiver dropped) or timed-out sequence leaves
//! at once and its KV cache is cleared. Admission (queued + running) is bounded: past it,
//! `QueueFull` at once. While few sequences generate, each may draft tokens from its own
//! text (speculate.rs) that the same step checks.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::sampling::{argmax, build_sampler, random_seed, token_logprob};
use crate::sequence::{ReplyText, Step};
use crate::serving::{GenerationObserver, GeneratorSettings, GeneratorStats};
use crate::speculate::{Drafting, StepCosts};
use crate::{
    backend, piece_bytes, FinishReason, GenEvent, GenerateRequest, LlmError, LlmModel,
    TokenLogprob, Usage,
};

struct NoObserver;
impl GenerationObserver for NoObserver {}

struct Job {
    request: GenerateRequest,
    events: UnboundedSender<GenEvent>,
    enqueued: Instant,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    admitted: AtomicUsize,
    stats: Mutex<GeneratorStats>,
}

/// The running scheduler of one model. Dropping it fails what is still queued or
/// running with `Stopped` and joins its thread.
pub struct Generator {
    label: String,
    settings: GeneratorSettings,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Generator {
    /// Create the context (on the scheduler's own thread) and start serving.
    pub fn start(
        model: &LlmModel,
        label: &str,
        settings: GeneratorSettings,
        observer: Option<Arc<dyn GenerationObserver>>,
    ) -> Result<Generator, LlmError> {
        Generator::start_with_adapter(model, label, settings, observer, None)
    }

    /// Like [`Generator::start`], with one of the model's adapters applied to every
    /// sequence (llama.cpp applies adapters per context: a generator per adapter, the
    /// base weights shared).
    pub fn start_with_adapter(
        model: &LlmModel,
        label: &str,
        settings: GeneratorSettings,
        observer: Option<Arc<dyn GenerationObserver>>,
        adapter: Option<&str>,
    ) -> Result<Generator, LlmError> {
        if let Some(name) = adapter {
            if !model.adapters().iter().any(|a| a == name) {
                return Err(LlmError::Load(format!(
                    "the model has no adapter {name:?} loaded"
                )));
            }
        }
        let adapter = adapter.map(|name| (model.shared_adapters(), name.to_string()));
        let settings = GeneratorSettings {
            slots: settings.slots.clamp(1, 64),
            context_per_slot: settings
                .context_per_slot
                .clamp(64, model.info().context_length.max(64)),
            queue_capacity: settings.queue_capacity.max(1),
            batch_tokens: settings.batch_tokens.max(64),
            prefill_chunk: settings
                .prefill_chunk
                .clamp(16, settings.batch_tokens.max(64)),
            threads: settings.threads.max(1),
            draft_tokens: settings.draft_tokens.min(32),
            draft_max_sequences: settings.draft_max_sequences,
            max_queue_time: settings.max_queue_time,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            admitted: AtomicUsize::new(0),
            stats: Mutex::new(GeneratorStats {
                slots: settings.slots,
                kv_tokens_capacity: settings.slots * settings.context_per_slot as usize,
                ..GeneratorStats::default()
            }),
        });
        let llama = model.shared();
        let observer = observer.unwrap_or_else(|| Arc::new(NoObserver));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_shared = shared.clone();
        let thread_label = label.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("llm-{label}"))
            .spawn(move || {
                let started =
                    Scheduler::new(&llama, settings, thread_shared, observer, thread_label)
                        .and_then(|mut s| {
                            if let Some((adapters, name)) = &adapter {
                                s.attach(adapters, name)?;
                            }
                            Ok(s)
                        });
                let scheduler = match started {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                scheduler.run();
            })
            .map_err(|e| LlmError::Load(format!("cannot start the scheduler thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(LlmError::Load(
                    "the scheduler thread died while starting".into(),
                ));
            }
        }
        Ok(Generator {
            label: label.to_string(),
            settings,
            shared,
            thread: Some(thread),
        })
    }

    pub fn settings(&self) -> GeneratorSettings {
        self.settings
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Most prompt + reply tokens one sequence can hold.
    pub fn context_per_slot(&self) -> usize {
        self.settings.context_per_slot as usize
    }

    pub fn stats(&self) -> GeneratorStats {
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests admitted and not finished (running + waiting).
    pub fn in_flight(&self) -> usize {
        self.shared.admitted.load(Ordering::Acquire)
    }

    /// Admit a request or refuse it at once. Events arrive on the receiver; dropping the
    /// receiver cancels the sequence at its next step.
    pub fn submit(
        &self,
        request: GenerateRequest,
    ) -> Result<UnboundedReceiver<GenEvent>, LlmError> {
        request.sampling.validate()?;
        if request.prompt.is_empty() {
            return Err(LlmError::InvalidRequest("the prompt is empty".into()));
        }
        let max = self.context_per_slot();
        if request.prompt.len() >= max {
            return Err(LlmError::ContextExceeded {
                tokens: request.prompt.len(),
                max,
            });
        }
        let capacity = self.settings.queue_capacity;
        let admitted = self.shared.admitted.fetch_add(1, Ordering::AcqRel);
        if admitted >= capacity {
            self.shared.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(LlmError::QueueFull {
                model: self.label.clone(),
                queued: admitted,
            });
        }
        let (tx, rx) = unbounded_channel();
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.closed {
            self.shared.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(LlmError::Stopped(self.label.clone()));
        }
        // The queue policy: the oldest waiting request has waited past the limit, so this
        // one would too; refuse it now rather than let it time out in the queue.
        if let Some(limit) = self.settings.max_queue_time {
            let oldest = q.jobs.iter().map(|j| j.enqueued.elapsed()).max();
            if let Some(waited) = oldest.filter(|w| *w > limit) {
                self.shared.admitted.fetch_sub(1, Ordering::AcqRel);
                return Err(LlmError::QueueTimeout {
                    model: self.label.clone(),
                    waited,
                    limit,
                });
            }
        }
        q.jobs.push_back(Job {
            request,
            events: tx,
            enqueued: Instant::now(),
        });
        drop(q);
        self.shared.wake.notify_one();
        Ok(rx)
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A sequence in a slot.
struct Sequence {
    job: Job,
    sampler: LlamaSampler,
    /// Plain greedy decoding (no penalties, no grammar): the argmax of the logits,
    /// without building llama.cpp's candidate array over the whole vocabulary.
    argmax_only: bool,
    reply: ReplyText,
    /// Prompt tokens already in the KV cache.
    prefilled: usize,
    /// Of those, the ones reused from the slot's previous sequence.
    cached: usize,
    /// Generated tokens fed back into the KV cache, in order.
    fed: Vec<i32>,
    /// Tokens in the KV cache (prompt + generated).
    n_past: usize,
    generated: usize,
    /// The token to feed next while generating.
    next: Option<LlamaToken>,
    /// Drafted tokens fed after `next` this step (speculative decoding), and whether the
    /// sequence still drafts.
    draft: Vec<i32>,
    drafting: Drafting,
    /// Index in the current batch whose logits belong to this sequence.
    logits_at: Option<i32>,
    deadline: Option<Instant>,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    pending_logprobs: Vec<TokenLogprob>,
}

/// What a free slot's KV cache still holds from its last sequence: the tokens at
/// positions 0.. and who may reuse them.
#[derive(Default)]
struct Leftover {
    tokens: Vec<i32>,
    scope: String,
    /// When the slot was last released (an ordinal): the least recently used slot is
    /// the one overwritten when no slot holds a useful prefix.
    released: u64,
}

struct Scheduler<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    settings: GeneratorSettings,
    /// The model's name in errors.
    label: String,
    shared: Arc<Shared>,
    observer: Arc<dyn GenerationObserver>,
    slots: Vec<Option<Sequence>>,
    leftovers: Vec<Leftover>,
    releases: u64,
    /// What decode steps cost here by the positions they compute (for draft lengths).
    costs: StepCosts,
    /// The sliding attention window of models that have one (Gemma 2/3): a cache whose
    /// old positions were dropped can only be cut where the window is still whole.
    sliding_window: Option<usize>,
}

impl<'m> Scheduler<'m> {
    /// Apply an adapter to every sequence of this context, at full scale.
    fn attach(&mut self, adapters: &crate::Adapters, name: &str) -> Result<(), LlmError> {
        let mut adapters = adapters.lock().unwrap_or_else(|e| e.into_inner());
        let adapter = adapters
            .get_mut(name)
            .ok_or_else(|| LlmError::Load(format!("the model has no adapter {name:?} loaded")))?;
        self.ctx
            .lora_adapter_set(adapter, 1.0)
            .map_err(|e| LlmError::Load(format!("cannot apply adapter {name}: {e}")))
    }

    fn new(
        model: &'m LlamaModel,
        settings: GeneratorSettings,
        shared: Arc<Shared>,
        observer: Arc<dyn GenerationObserver>,
        label: String,
    ) -> Result<Scheduler<'m>, LlmError> {
        let backend = backend()?;
        let n_ctx = settings.slots as u32 * settings.context_per_slot;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(settings.batch_tokens)
            .with_n_ubatch(settings.batch_tokens)
            .with_n_seq_max(settings.slots as u32)
            .with_kv_unified(false)
            .with_n_threads(settings.threads)
            .with_n_threads_batch(settings.threads)
            // Sliding-window caches keep every position: a rejected draft is removed from
            // the end, which must not leave the window short of positions it pruned.
            .with_swa_full(true);
        let ctx = model
            .new_context(backend, params)
            .map_err(|e| LlmError::Load(format!("cannot create a context: {e}")))?;
        let arch = model
            .meta_val_str("general.architecture")
            .unwrap_or_default();
        let sliding_window = model
            .meta_val_str(&format!("{arch}.attention.sliding_window"))
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&w| w > 0);
        Ok(Scheduler {
            label,
            model,
            ctx,
            leftovers: (0..settings.slots).map(|_| Leftover::default()).collect(),
            releases: 0,
            costs: StepCosts::default(),
            sliding_window,
            batch: LlamaBatch::new(settings.batch_tokens as usize, settings.slots as i32),
            settings,
            shared,
            observer,
            slots: (0..settings.slots).map(|_| None).collect(),
        })
    }

    fn run(mut self) {
        loop {
            if !self.admit() {
                break;
            }
            self.drop_abandoned();
            if self.slots.iter().all(Option::is_none) {
                continue;
            }
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step()));
            match step {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.fail_all(e),
                Err(_) => self.fail_all(LlmError::Decode("the model panicked".into())),
            }
            self.publish_stats();
        }
        self.fail_all(LlmError::Stopped("model unloaded".into()));
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        for job in q.jobs.drain(..) {
            let _ = job
                .events
                .send(GenEvent::Error(LlmError::Stopped("model unloaded".into())));
        }
    }

    /// Fill free slots from the queue, waiting while there is nothing to do. False once
    /// the generator is closed.
    fn admit(&mut self) -> bool {
        let shared = self.shared.clone();
        let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if q.closed {
                return false;
            }
            let idle = self.slots.iter().all(Option::is_none);
            if !(idle && q.jobs.is_empty()) {
                break;
            }
            q = self.shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        while self.slots.iter().any(Option::is_none) {
            let Some(job) = q.jobs.pop_front() else { break };
            if job.events.is_closed() {
                self.release_admission();
                continue;
            }
            let deadline = job.request.timeout.map(|t| job.enqueued + t);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = job.events.send(GenEvent::Error(LlmError::Timeout));
                self.release_admission();
                continue;
            }
            let waited = job.enqueued.elapsed();
            if let Some(limit) = self.settings.max_queue_time.filter(|l| waited > *l) {
                let _ = job.events.send(GenEvent::Error(LlmError::QueueTimeout {
                    model: self.label.clone(),
                    waited,
                    limit,
                }));
                self.release_admission();
                continue;
            }
            self.observer.queue_wait(job.enqueued.elapsed());
            let seed = job
                .request
                .sampling
                .seed
                .map_or_else(random_seed, |s| (s ^ (s >> 32)) as u32);
            let p = &job.request.sampling;
            let argmax_only = p.temperature <= 0.0
                && p.presence_penalty == 0.0
                && p.frequency_penalty == 0.0
                && job.request.grammar.is_none();
            let sampler = match build_sampler(
                self.model,
                &job.request.sampling,
                job.request.grammar.as_ref(),
                seed,
            ) {
                Ok(s) => s,
                Err(e) => {
                    let _ = job.events.send(GenEvent::Error(e));
                    self.release_admission();
                    continue;
                }
            };
            let reply = ReplyText::new(job.request.stop.clone());
            let _ = job.events.send(GenEvent::Started);
            let (free, cached) = self.claim_slot(&job.request);
            self.slots[free] = Some(Sequence {
                job,
                argmax_only,
                sampler,
                reply,
                prefilled: cached,
                cached,
                fed: Vec::new(),
                n_past: cached,
                generated: 0,
                next: None,
                draft: Vec::new(),
                drafting: Drafting::default(),
                logits_at: None,
                deadline,
                first_token: None,
                last_token: None,
                pending_logprobs: Vec::new(),
            });
        }
        let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.waiting = q.jobs.len();
        true
    }

    /// The free slot for a new request, and how many of its prompt tokens that slot's
    /// KV cache already holds: the slot whose leftover shares the longest prefix with
    /// the prompt (same cache scope only), else the least recently released one. The
    /// rest of the slot's cache is cleared. At least the last prompt token is always
    /// computed again, since its logits give the first reply token.
    fn claim_slot(&mut self, request: &GenerateRequest) -> (usize, usize) {
        let prompt = &request.prompt;
        let mut best: Option<(usize, usize, u64)> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.is_some() {
                continue;
            }
            let left = &self.leftovers[i];
            let shared = if left.scope == request.cache_scope {
                common_prefix(&left.tokens, prompt)
            } else {
                0
            };
            let better = match best {
                None => true,
                Some((_, len, released)) => {
                    shared > len || (shared == len && left.released < released)
                }
            };
            if better {
                best = Some((i, shared, left.released));
            }
        }
        let (slot, shared, _) = best.expect("admission checked for a free slot");
        let mut keep = shared.min(prompt.len().saturating_sub(1));
        if keep > 0 && !self.can_cut(slot, keep) {
            keep = 0;
        }
        let left = std::mem::take(&mut self.leftovers[slot]);
        if keep < left.tokens.len() || keep == 0 {
            let cut = if keep == 0 { None } else { Some(keep as u32) };
            let removed = self.ctx.clear_kv_cache_seq(Some(slot as u32), cut, None);
            if keep > 0 && !matches!(removed, Ok(true)) {
                // Some caches (recurrent state) cannot be cut part-way: start afresh.
                let _ = self.ctx.clear_kv_cache_seq(Some(slot as u32), None, None);
                keep = 0;
            }
        }
        (slot, keep)
    }

    /// Whether slot `i`'s cache can be cut to its first `keep` positions and still hold
    /// everything the next position attends to: with a sliding window, the cache may
    /// have dropped positions older than the window.
    fn can_cut(&self, i: usize, keep: usize) -> bool {
        let oldest = self.ctx.kv_cache_seq_pos_min(i as i32);
        if oldest <= 0 {
            return true;
        }
        match self.sliding_window {
            Some(window) => (oldest as usize) + window <= keep,
            None => false,
        }
    }

    /// Sequences whose caller has gone away or whose time is up leave now.
    fn drop_abandoned(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let Some(seq) = &self.slots[i] else { continue };
            if seq.job.events.is_closed() {
                self.end(i, None);
            } else if seq.deadline.is_some_and(|d| now >= d) {
                let _ = seq.job.events.send(GenEvent::Error(LlmError::Timeout));
                self.end(i, None);
            }
        }
    }

    /// One decode call over every active sequence, then sampling.
    fn step(&mut self) -> Result<(), LlmError> {
        self.batch.clear();
        let mut generating = 0;
        let s = self.settings;
        let decoding = self
            .slots
            .iter()
            .flatten()
            .filter(|q| q.next.is_some())
            .count();
        let speculate = s.draft_tokens > 0 && decoding <= s.draft_max_sequences;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(seq) = slot else { continue };
            seq.logits_at = None;
            seq.draft.clear();
            if let Some(token) = seq.next {
                seq.logits_at = Some(self.batch.n_tokens());
                self.batch
                    .add(token, seq.n_past as i32, &[i as i32], true)
                    .map_err(|e| LlmError::Decode(e.to_string()))?;
                seq.n_past += 1;
                seq.fed.push(token.0);
                generating += 1;
                if speculate {
                    // Within the slot's context, the reply's max_tokens and the batch.
                    let room = (s.context_per_slot as usize).saturating_sub(seq.n_past + 1);
                    let left = seq.job.request.max_tokens.unwrap_or(usize::MAX);
                    let left = left.saturating_sub(seq.generated + 1);
                    let batch = (s.batch_tokens as usize)
                        .saturating_sub(self.batch.n_tokens() as usize + s.slots);
                    let max = s.draft_tokens.min(room).min(left).min(batch);
                    // Positions this step computes besides this sequence's next token.
                    let others = self.batch.n_tokens() as usize - 1 + (decoding - generating);
                    let (prompt, fed) = (&seq.job.request.prompt, &seq.fed);
                    seq.draft = seq.drafting.draft(prompt, fed, max, others, &self.costs);
                    for (k, &d) in seq.draft.iter().enumerate() {
                        self.batch
                            .add(LlamaToken(d), (seq.n_past + k) as i32, &[i as i32], true)
                            .map_err(|e| LlmError::Decode(e.to_string()))?;
                    }
                }
            }
        }
        let outputs = self.batch.n_tokens() as usize;
        let mut budget = self.settings.batch_tokens as usize - outputs;
        if generating > 0 {
            budget = budget.min(self.settings.prefill_chunk as usize);
        }
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(seq) = slot else { continue };
            if seq.next.is_some() || budget == 0 {
                continue;
            }
            let prompt = &seq.job.request.prompt;
            let take = (prompt.len() - seq.prefilled).min(budget);
            for k in 0..take {
                let at = seq.prefilled + k;
                let last = at + 1 == prompt.len();
                if last {
                    seq.logits_at = Some(self.batch.n_tokens());
                }
                self.batch
                    .add(LlamaToken(prompt[at]), at as i32, &[i as i32], last)
                    .map_err(|e| LlmError::Decode(e.to_string()))?;
            }
            seq.prefilled += take;
            seq.n_past += take;
            budget -= take;
        }
        let tokens = self.batch.n_tokens() as usize;
        if tokens == 0 {
            return Ok(());
        }
        let started = Instant::now();
        self.ctx
            .decode(&mut self.batch)
            .map_err(|e| LlmError::Decode(e.to_string()))?;
        self.observer
            .decode_step(tokens, self.slots.iter().filter(|s| s.is_some()).count());
        for i in 0..self.slots.len() {
            self.sample(i);
        }
        if tokens == outputs {
            // A step of generating sequences only: what its number of positions costs.
            self.costs.record(tokens, started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Sample the sequence in slot `i` at each position this step computed for it: after
    /// its next token, then after each drafted token for as long as the sample equals
    /// the draft (speculative decoding). Kept drafts join the sequence (they are in the
    /// KV cache already); the rest leave the cache.
    fn sample(&mut self, i: usize) {
        let Some(seq) = self.slots[i].as_mut() else {
            return;
        };
        let Some(at) = seq.logits_at.take() else {
            return;
        };
        let draft = std::mem::take(&mut seq.draft);
        let mut accepted = 0;
        let mut first = None;
        let ended = loop {
            let here = at + accepted as i32;
            let token = self.pick(i, here);
            first.get_or_insert(token.0);
            if let Some(end) = self.take_token(i, here, token) {
                break Some(end);
            }
            let Some(seq) = self.slots[i].as_mut() else {
                return;
            };
            if draft.get(accepted) == Some(&token.0) {
                seq.fed.push(token.0);
                seq.n_past += 1;
                accepted += 1;
                continue;
            }
            seq.next = Some(token);
            break None;
        };
        if let (Some(seq), Some(first)) = (self.slots[i].as_mut(), first) {
            seq.drafting.record(draft.len(), accepted, first);
        }
        if !draft.is_empty() {
            if let Some(seq) = self.slots[i].as_mut() {
                let keep = seq.n_past as u32;
                let _ = self
                    .ctx
                    .clear_kv_cache_seq(Some(i as u32), Some(keep), None);
            }
            self.observer.speculated(draft.len(), accepted);
            let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.draft_tokens_total += draft.len() as u64;
            stats.draft_accepted_total += accepted as u64;
        }
        if let Some((reason, text)) = ended {
            self.finish(i, reason, text);
        }
    }

    /// Sample slot `i`'s token from the logits at batch index `at`.
    fn pick(&mut self, i: usize, at: i32) -> LlamaToken {
        let Some(seq) = self.slots[i].as_mut() else {
            return LlamaToken(0);
        };
        let token = if seq.argmax_only {
            LlamaToken(argmax(self.ctx.get_logits_ith(at)) as i32)
        } else {
            seq.sampler.sample(&self.ctx, at)
        };
        let now = Instant::now();
        match seq.last_token {
            None => {
                seq.first_token = Some(now);
                self.observer.first_token(now - seq.job.enqueued);
            }
            Some(prev) => self.observer.token_interval(now - prev),
        }
        seq.last_token = Some(now);
        token
    }

    /// What a sampled `token` (from the logits at `at`) does to slot `i`'s sequence:
    /// `None` while it goes on (its text is sent), or how it ends with the text still
    /// to send.
    fn take_token(
        &mut self,
        i: usize,
        at: i32,
        token: LlamaToken,
    ) -> Option<(FinishReason, String)> {
        let seq = self.slots[i].as_mut()?;
        if self.model.vocab().is_eog(token) {
            // The end of the model's turn: whatever was held back belongs to the reply.
            return Some((FinishReason::Stop, seq.reply.finish()));
        }
        seq.generated += 1;
        let bytes = piece_bytes(self.model, token, false);
        if let Some(top) = seq.job.request.logprobs {
            let logits = self.ctx.get_logits_ith(at);
            let entry = token_logprob(self.model, logits, token, &bytes, top);
            seq.pending_logprobs.push(entry);
        }
        match seq.reply.push(&bytes) {
            Step::Stopped(text) => Some((FinishReason::Stop, text)),
            Step::Text(mut text) => {
                let max_tokens = seq.job.request.max_tokens.unwrap_or(usize::MAX);
                let full = seq.n_past + 1 >= self.settings.context_per_slot as usize;
                if seq.generated >= max_tokens || full {
                    text.push_str(&seq.reply.finish());
                    return Some((FinishReason::Length, text));
                }
                let logprobs = std::mem::take(&mut seq.pending_logprobs);
                if !text.is_empty() || !logprobs.is_empty() {
                    let _ = seq.job.events.send(GenEvent::Text { text, logprobs });
                }
                None
            }
        }
    }

    /// Send the last text and the summary, then free the slot.
    fn finish(&mut self, i: usize, reason: FinishReason, text: String) {
        if let Some(seq) = self.slots[i].as_mut() {
            let logprobs = std::mem::take(&mut seq.pending_logprobs);
            if !text.is_empty() || !logprobs.is_empty() {
                let _ = seq.job.events.send(GenEvent::Text { text, logprobs });
            }
        }
        self.end(i, Some(reason));
    }

    /// Free slot `i`, report its usage (when it finished normally). Its KV cache stays
    /// for a later request that starts with the same tokens. The slot and the admission
    /// are released before the caller hears `Done`, so a caller that sends its next
    /// request at once finds room.
    fn end(&mut self, i: usize, reason: Option<FinishReason>) {
        let Some(mut seq) = self.slots[i].take() else {
            return;
        };
        let prompt_tokens = seq.job.request.prompt.len();
        let mut tokens = std::mem::take(&mut seq.job.request.prompt);
        tokens.truncate(seq.prefilled);
        tokens.extend_from_slice(&seq.fed);
        debug_assert_eq!(tokens.len(), seq.n_past);
        self.releases += 1;
        self.leftovers[i] = Leftover {
            tokens,
            scope: std::mem::take(&mut seq.job.request.cache_scope),
            released: self.releases,
        };
        let usage = Usage {
            prompt_tokens,
            cached_tokens: seq.cached,
            completion_tokens: seq.generated,
            time_to_first_token: seq.first_token.map(|t| t - seq.job.enqueued),
            total_time: seq.job.enqueued.elapsed(),
        };
        self.observer.finished(&usage, reason);
        {
            let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.requests_total += 1;
            stats.prompt_tokens_total += usage.prompt_tokens as u64;
            stats.cached_tokens_total += usage.cached_tokens as u64;
            stats.completion_tokens_total += usage.completion_tokens as u64;
        }
        self.publish_stats();
        self.release_admission();
        if let Some(reason) = reason {
            let _ = seq.job.events.send(GenEvent::Done { reason, usage });
        }
    }

    fn fail_all(&mut self, error: LlmError) {
        for i in 0..self.slots.len() {
            if let Some(seq) = &self.slots[i] {
                let _ = seq.job.events.send(GenEvent::Error(error.clone()));
                self.end(i, None);
            }
        }
        let _ = self.ctx.clear_kv_cache_seq(None, None, None);
        self.leftovers
            .iter_mut()
            .for_each(|l| *l = Leftover::default());
        self.publish_stats();
    }

    fn release_admission(&self) {
        self.shared.admitted.fetch_sub(1, Ordering::AcqRel);
    }

    fn publish_stats(&self) {
        let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.slots_busy = self.slots.iter().filter(|s| s.is_some()).count();
        stats.kv_tokens_used = self.slots.iter().flatten().map(|s| s.n_past).sum();
    }
}

/// How many leading tokens two sequences share.
fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn common_prefix_counts_leading_equal_tokens() {
        assert_eq!(super::common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(super::common_prefix(&[], &[1]), 0);
        assert_eq!(super::common_prefix(&[7, 8], &[7, 8, 9]), 2);
    }
}
