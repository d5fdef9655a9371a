//! A loaded generative model: its weights and template (`LlmModel`), its scheduler
//! (`Generator`), and the metrics the scheduler reports (time to first token, time per
//! output token, tokens, running/waiting sequences, KV-cache use).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiaas_llm::{FinishReason, GenerationObserver, Generator, GeneratorSettings, LlmModel, Usage};

use crate::metrics::{Metrics, LATENCY_BUCKETS};
use crate::EngineError;

/// Buckets for time per output token: 1 ms to 2 s.
const TOKEN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0,
];

/// A LoRA adapter to load with a model: the name its generator is asked for by, and
/// the GGUF file (read at load; the file may go once the load returns).
#[derive(Debug, Clone)]
pub struct AdapterFile {
    pub name: String,
    pub path: PathBuf,
}

/// A generative model being served: the weights once, the base model's generator, and a
/// generator per adapter in use (llama.cpp applies adapters per context, so each adapter
/// served gets a context of its own over the shared weights, started on first use).
pub struct GeneratorRuntime {
    model: LlmModel,
    generator: Arc<Generator>,
    settings: GeneratorSettings,
    /// Adapters' generators by adapter name.
    adapted: Mutex<HashMap<String, Arc<Generator>>>,
    metrics: Arc<Metrics>,
}

impl GeneratorRuntime {
    pub(crate) fn load(
        path: &Path,
        label: &str,
        settings: GeneratorSettings,
        adapters: &[AdapterFile],
        metrics: Arc<Metrics>,
    ) -> Result<GeneratorRuntime, EngineError> {
        let adapters: Vec<(String, PathBuf)> = adapters
            .iter()
            .map(|a| (a.name.clone(), a.path.clone()))
            .collect();
        let model = LlmModel::load_with_adapters(path, &adapters)
            .map_err(|e| EngineError::Load(e.to_string()))?;
        let observer = Arc::new(Observer {
            label: label.to_string(),
            metrics: metrics.clone(),
        });
        let generator = Generator::start(&model, label, settings, Some(observer))
            .map_err(|e| EngineError::Load(e.to_string()))?;
        Ok(GeneratorRuntime {
            model,
            generator: Arc::new(generator),
            settings,
            adapted: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// The base model's generator (no adapter).
    pub fn base_generator(&self) -> Arc<Generator> {
        self.generator.clone()
    }

    /// Whether the model was loaded with this adapter.
    pub fn has_adapter(&self, name: &str) -> bool {
        self.model.adapters().iter().any(|a| a == name)
    }

    /// The generator applying adapter `name`, started on first use (blocking: it
    /// creates a llama.cpp context). Its metrics are labelled with the adapter's name.
    pub fn adapter_generator(&self, name: &str) -> Result<Arc<Generator>, EngineError> {
        let mut adapted = self.adapted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = adapted.get(name) {
            return Ok(g.clone());
        }
        let observer = Arc::new(Observer {
            label: name.to_string(),
            metrics: self.metrics.clone(),
        });
        let g = Arc::new(
            Generator::start_with_adapter(
                &self.model,
                name,
                self.settings,
                Some(observer),
                Some(name),
            )
            .map_err(|e| EngineError::Load(e.to_string()))?,
        );
        adapted.insert(name.to_string(), g.clone());
        Ok(g)
    }

    /// Whether any of its generators has a sequence running or waiting.
    pub fn busy(&self) -> bool {
        let busy = |g: &Generator| {
            let s = g.stats();
            s.slots_busy + s.waiting > 0
        };
        busy(&self.generator)
            || self
                .adapted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .any(|g| busy(g))
    }

    /// Admit one sequence; refusals are counted by reason.
    pub fn submit(
        &self,
        request: aiaas_llm::GenerateRequest,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<aiaas_llm::GenEvent>, aiaas_llm::LlmError>
    {
        self.submit_to(&self.generator, request)
    }

    /// Admit one sequence to `generator` (the base model's or an adapter's).
    pub fn submit_to(
        &self,
        generator: &Generator,
        request: aiaas_llm::GenerateRequest,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<aiaas_llm::GenEvent>, aiaas_llm::LlmError>
    {
        use aiaas_llm::LlmError;
        generator.submit(request).inspect_err(|e| {
            let reason = match e {
                LlmError::QueueFull { .. } => "queue_full",
                LlmError::QueueTimeout { .. } => "queue_timeout",
                LlmError::ContextExceeded { .. } => "context_exceeded",
                LlmError::InvalidRequest(_) => "invalid_request",
                LlmError::Stopped(_) => "unloading",
                _ => "other",
            };
            self.metrics.inc(
                "aiaas_llm_rejections_total",
                "Generation requests refused at admission, by reason.",
                &[("model", generator.label()), ("reason", reason)],
                1,
            );
        })
    }

    pub fn model(&self) -> &LlmModel {
        &self.model
    }

    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Weights plus the KV cache (f16 keys and values for every slot's context) of the
    /// base model's generator and of each adapter's started so far.
    pub fn memory_bytes(&self) -> u64 {
        let info = self.model.info();
        let s = self.generator.settings();
        let contexts = 1 + self.adapted.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
        let kv = info
            .kv_bytes_per_token()
            .saturating_mul(s.slots as u64)
            .saturating_mul(u64::from(s.context_per_slot))
            .saturating_mul(contexts);
        info.size_bytes.saturating_add(kv)
    }
}

/// Drop the per-model gauges of an unloaded model.
pub(crate) fn forget_gauges(metrics: &Metrics, label: &str) {
    for name in [RUNNING, WAITING, KV_USE] {
        metrics.remove(name, &[("model", label)]);
    }
}

const RUNNING: &str = "aiaas_llm_requests_running";
const WAITING: &str = "aiaas_llm_requests_waiting";
const KV_USE: &str = "aiaas_llm_kv_cache_usage_ratio";

struct Observer {
    label: String,
    metrics: Arc<Metrics>,
}

impl Observer {
    fn labels(&self) -> [(&'static str, &str); 1] {
        [("model", self.label.as_str())]
    }
}

impl GenerationObserver for Observer {
    fn queue_wait(&self, wait: Duration) {
        self.metrics.observe(
            "aiaas_inference_queue_wait_seconds",
            "Time a request waited in its model's queue.",
            &self.labels(),
            LATENCY_BUCKETS,
            wait.as_secs_f64(),
        );
    }

    fn first_token(&self, ttft: Duration) {
        self.metrics.observe(
            "aiaas_llm_time_to_first_token_seconds",
            "Time from admission to the first generated token (queue wait and prefill).",
            &self.labels(),
            LATENCY_BUCKETS,
            ttft.as_secs_f64(),
        );
    }

    fn token_interval(&self, interval: Duration) {
        self.metrics.observe(
            "aiaas_llm_time_per_output_token_seconds",
            "Time between consecutive generated tokens of one sequence.",
            &self.labels(),
            TOKEN_BUCKETS,
            interval.as_secs_f64(),
        );
    }

    fn decode_step(&self, tokens: usize, sequences: usize) {
        self.metrics.observe(
            "aiaas_llm_batch_tokens",
            "Tokens per llama.cpp decode call (prompt chunks and generated tokens).",
            &self.labels(),
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            tokens as f64,
        );
        self.metrics.set(
            RUNNING,
            "Sequences decoding now, per model.",
            &self.labels(),
            sequences as f64,
        );
    }

    fn speculated(&self, drafted: usize, accepted: usize) {
        let labels = self.labels();
        self.metrics.inc(
            "aiaas_llm_draft_tokens_total",
            "Tokens drafted by speculative decoding (prompt lookup) and checked.",
            &labels,
            drafted as u64,
        );
        self.metrics.inc(
            "aiaas_llm_draft_accepted_tokens_total",
            "Drafted tokens the model kept (each saves a decode step).",
            &labels,
            accepted as u64,
        );
    }

    fn finished(&self, usage: &Usage, reason: Option<FinishReason>) {
        let labels = self.labels();
        self.metrics.inc(
            "aiaas_llm_prompt_tokens_total",
            "Prompt tokens processed.",
            &labels,
            usage.prompt_tokens as u64,
        );
        self.metrics.inc(
            "aiaas_llm_prompt_cached_tokens_total",
            "Prompt tokens whose KV cache was reused from an earlier request (a shared prefix).",
            &labels,
            usage.cached_tokens as u64,
        );
        self.metrics.inc(
            "aiaas_llm_completion_tokens_total",
            "Tokens generated.",
            &labels,
            usage.completion_tokens as u64,
        );
        let outcome = match reason {
            Some(FinishReason::Stop) => "stop",
            Some(FinishReason::Length) => "length",
            None => "cancelled",
        };
        self.metrics.inc(
            "aiaas_llm_requests_total",
            "Generation requests ended, by how they ended.",
            &[("model", self.label.as_str()), ("outcome", outcome)],
            1,
        );
    }
}

/// Publish the gauges that need the scheduler's own view (called by the engine's
/// users when they want fresh values, e.g. before rendering /metrics).
pub(crate) fn publish_stats(metrics: &Metrics, runtime: &GeneratorRuntime) {
    let s = runtime.generator.stats();
    let label = runtime.generator.label();
    metrics.set(
        RUNNING,
        "Sequences decoding now, per model.",
        &[("model", label)],
        s.slots_busy as f64,
    );
    metrics.set(
        WAITING,
        "Requests admitted and waiting for a sequence slot, per model.",
        &[("model", label)],
        s.waiting as f64,
    );
    let ratio = if s.kv_tokens_capacity == 0 {
        0.0
    } else {
        s.kv_tokens_used as f64 / s.kv_tokens_capacity as f64
    };
    metrics.set(
        KV_USE,
        "Share of the KV cache in use, per model.",
        &[("model", label)],
        ratio,
    );
}
