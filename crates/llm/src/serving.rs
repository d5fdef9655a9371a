//! How a generator is configured, what it reports as a snapshot, and the observer it
//! reports measurements to as it works.

use std::time::Duration;

use crate::{FinishReason, Usage};

/// How a model is served.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneratorSettings {
    /// Sequences decoded together (continuous batching width).
    pub slots: usize,
    /// Tokens of context per sequence (prompt + reply).
    pub context_per_slot: u32,
    /// Requests admitted at once, running and waiting; past it, `QueueFull`.
    pub queue_capacity: usize,
    /// Most tokens in one decode call.
    pub batch_tokens: u32,
    /// Prompt tokens per step while other sequences are generating.
    pub prefill_chunk: u32,
    /// CPU threads llama.cpp computes with.
    pub threads: i32,
    /// Most tokens a sequence drafts per step for speculative decoding (prompt lookup;
    /// 0: off). Each step drafts as many as its measured costs and the sequence's
    /// record make pay, up to this.
    pub draft_tokens: usize,
    /// Sequences draft only while at most this many are generating: with more, one
    /// batch already shares each read of the weights among them.
    pub draft_max_sequences: usize,
    /// The queue policy: a request is refused at once while the oldest waiting request
    /// has already waited longer than this (a new one would wait at least as long), and
    /// one that has waited longer when a slot frees is answered `QueueTimeout` without
    /// running. `None`: no limit (only `queue_capacity`).
    pub max_queue_time: Option<Duration>,
}

impl Default for GeneratorSettings {
    fn default() -> Self {
        GeneratorSettings {
            slots: 8,
            context_per_slot: 2048,
            queue_capacity: 64,
            batch_tokens: 512,
            prefill_chunk: 128,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get() as i32),
            draft_tokens: 16,
            draft_max_sequences: 2,
            max_queue_time: None,
        }
    }
}

/// A snapshot for operators and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct GeneratorStats {
    pub slots: usize,
    pub slots_busy: usize,
    pub waiting: usize,
    pub kv_tokens_used: usize,
    pub kv_tokens_capacity: usize,
    pub requests_total: u64,
    pub prompt_tokens_total: u64,
    /// Prompt tokens reused from a slot's cache instead of computed.
    pub cached_tokens_total: u64,
    pub completion_tokens_total: u64,
    /// Tokens drafted by speculative decoding, and of those the ones the model kept.
    pub draft_tokens_total: u64,
    pub draft_accepted_total: u64,
}

/// Measurements the scheduler reports as it works (for the caller's metrics).
pub trait GenerationObserver: Send + Sync {
    fn queue_wait(&self, _wait: Duration) {}
    fn first_token(&self, _ttft: Duration) {}
    fn token_interval(&self, _interval: Duration) {}
    fn decode_step(&self, _tokens: usize, _sequences: usize) {}
    fn finished(&self, _usage: &Usage, _reason: Option<FinishReason>) {}
    /// A sequence's draft of `drafted` tokens was checked; `accepted` were kept.
    fn speculated(&self, _drafted: usize, _accepted: usize) {}
}
