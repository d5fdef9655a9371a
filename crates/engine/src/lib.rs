//! Model runtimes: loaded models, each served by its own thread behind a bounded queue.
//! Classifiers and embedding encoders batch dynamically (`runtime`); generative models
//! decode many sequences at once on llama.cpp (`aiaas_llm::Generator`). The async world
//! talks to a runtime only through channels; HTTP never sees candle or llama.cpp.
//!
//! Architecture invariant: inference never runs on the async runtime's worker threads.

mod entities;
mod generation;
pub mod metrics;
mod pages;
mod runtime;
mod tensors;
mod transcripts;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use aiaas_embed::{EmbedOptions, Embedder, Embedding};
pub use aiaas_llm as llm;
pub use aiaas_ner as ner;
pub use aiaas_ocr as ocr;
pub use aiaas_onnx as onnx;
pub use aiaas_speech as speech;
pub use aiaas_train::{
    Classifier, ExplainMethod, ExplainOptions, Explanation, ModelFiles, TokenAttribution,
    MAX_IG_STEPS,
};
pub use entities::EntityRequest;
pub use generation::{AdapterFile, GeneratorRuntime};
pub use metrics::Metrics;
pub use pages::OcrLoad;
use runtime::{BatchModel, BatchRuntime};
use tensors::TensorModel;
pub use tensors::TensorRequest;
pub use transcripts::SpeechRequest;

/// Errors of the serving engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model {model} is overloaded: {queued} requests queued")]
    QueueFull { model: String, queued: usize },
    /// The queue policy: the request would wait (or has waited) `waited` in the queue,
    /// past the deployment's `limit`.
    #[error("model {model} is overloaded: a request would wait {} ms in its queue, over the limit of {} ms", waited.as_millis(), limit.as_millis())]
    QueueTimeout {
        model: String,
        waited: Duration,
        limit: Duration,
    },
    #[error("model {0} is not loaded")]
    NotLoaded(String),
    #[error("model files could not be loaded: {0}")]
    Load(String),
    #[error("inference failed: {0}")]
    Inference(String),
    /// The request does not fit the model (names the input or output).
    #[error("{0}")]
    InvalidInput(String),
    #[error("model {0} was unloaded while the request waited")]
    Stopped(String),
}

/// How a runtime batches and bounds its queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchSettings {
    /// Most texts run through the model in one forward pass.
    pub max_batch: usize,
    /// Longest a request waits for others to fill its batch. The default, zero, batches
    /// what is already queued and never delays a lone request (as Triton's default):
    /// under load, requests queue while a batch runs and the next batch takes them all.
    pub max_delay: Duration,
    /// Requests admitted (queued + running); past it, `QueueFull`.
    pub queue_capacity: usize,
    /// The queue policy (Triton's is the anchor): a request expected to wait longer than
    /// this in the model's queue before its batch runs is refused at once, and one that
    /// has waited longer when its batch forms is answered the same (`QueueTimeout`), so
    /// admitted requests keep their latency under overload. `None`: no limit.
    pub max_queue_time: Option<Duration>,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_batch: 32,
            max_delay: Duration::ZERO,
            queue_capacity: 256,
            max_queue_time: None,
        }
    }
}

/// What kind of runtime serves a loaded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    Classifier,
    Generator,
    Embedder,
    /// An uploaded ONNX model (typed tensors in and out).
    Tensor,
    /// A page reader (images in, lines of text out).
    Ocr,
    /// A token classifier (texts in, entities out).
    Entities,
    /// A speech recogniser (audio in, timed text out).
    Speech,
}

/// Requests waiting per model, refreshed at each scrape (see `refresh_gauges`).
const SCALING_QUEUE: &str = "aiaas_queue_depth";
/// Slots busy per model.
const SCALING_BUSY: &str = "aiaas_busy_slots";

/// A loaded model as reported to operators.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedModel {
    pub key: String,
    pub label: String,
    pub kind: RuntimeKind,
    /// Requests admitted and not yet answered.
    pub in_flight: usize,
    /// Sequence slots in use and in all (generators).
    pub slots_busy: Option<usize>,
    pub slots: Option<usize>,
    /// Estimated resident memory: weights + caches.
    pub memory_bytes: u64,
    /// Since the last request ended (zero while one runs).
    pub idle_for: Duration,
    /// Batching of classifiers and embedders.
    pub batch: Option<BatchSettings>,
}

/// Class probabilities for one text, in the model's label order, and its explanation when
/// one was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub probabilities: Vec<f32>,
    pub explanation: Option<Explanation>,
}

/// Texts for a classifier, to be explained or not. Plain requests are batched together;
/// an explained one runs on its own (its cost grows with its texts' lengths).
pub struct ClassifyRequest {
    pub texts: Vec<String>,
    pub explain: Option<ExplainOptions>,
}

impl BatchModel for Classifier {
    type Input = ClassifyRequest;
    type Output = Vec<Prediction>;
    fn rows(request: &ClassifyRequest) -> usize {
        request.texts.len()
    }
    fn run(&self, requests: Vec<ClassifyRequest>) -> Vec<Result<Vec<Prediction>, String>> {
        let (explained, plain): (Vec<_>, Vec<_>) = requests
            .into_iter()
            .enumerate()
            .partition(|(_, r)| r.explain.is_some());
        let mut out: Vec<Option<Result<Vec<Prediction>, String>>> =
            (0..explained.len() + plain.len()).map(|_| None).collect();
        let (order, texts): (Vec<usize>, Vec<Vec<String>>) =
            plain.into_iter().map(|(i, r)| (i, r.texts)).unzip();
        let answers = runtime::run_texts(texts, |texts| {
            self.predict(texts)
                .map(|rows| {
                    rows.into_iter()
                        .map(|probabilities| Prediction {
                            probabilities,
                            explanation: None,
                        })
                        .collect()
                })
                .map_err(|e| e.to_string())
        });
        for (i, answer) in order.into_iter().zip(answers) {
            out[i] = Some(answer);
        }
        for (i, request) in explained {
            let opts = request.explain.unwrap_or_default();
            let answer = request
                .texts
                .iter()
                .map(|text| {
                    let probabilities = self.predict(&[text.as_str()])?.remove(0);
                    let explanation = self.explain(text, &opts)?;
                    Ok(Prediction {
                        probabilities,
                        explanation: Some(explanation),
                    })
                })
                .collect::<Result<Vec<_>, aiaas_train::TrainError>>()
                .map_err(|e| e.to_string());
            out[i] = Some(answer);
        }
        out.into_iter()
            .map(|o| o.expect("every request answered"))
            .collect()
    }
}

/// Embedders always truncate to the model's length; the caller sees the `truncated` flag
/// and decides whether that is an error.
impl BatchModel for Embedder {
    type Input = Vec<String>;
    type Output = Vec<Embedding>;
    fn rows(texts: &Vec<String>) -> usize {
        texts.len()
    }
    fn run(&self, requests: Vec<Vec<String>>) -> Vec<Result<Vec<Embedding>, String>> {
        runtime::run_texts(requests, |texts| {
            self.embed(texts, EmbedOptions { truncate: true })
                .map_err(|e| e.to_string())
        })
    }
}

enum Runtime {
    Classifier(Arc<BatchRuntime<Classifier>>),
    Embedder(Arc<BatchRuntime<Embedder>>),
    Generator(Arc<GeneratorRuntime>),
    /// The runtime, and the model itself for checking requests before they queue.
    Tensor(Arc<BatchRuntime<TensorModel>>, Arc<aiaas_onnx::OnnxModel>),
    Ocr(Arc<BatchRuntime<aiaas_ocr::Ocr>>),
    Entities(Arc<BatchRuntime<aiaas_ner::Ner>>),
    /// The runtime, and the model itself for checking requests before they queue.
    Speech(
        Arc<BatchRuntime<Arc<aiaas_speech::Transcriber>>>,
        Arc<aiaas_speech::Transcriber>,
    ),
}

struct Entry {
    runtime: Runtime,
    memory_bytes: u64,
    /// Dimensions and token limit (embedders).
    embedding_shape: Option<(usize, usize)>,
    /// Class labels, in output order (classifiers).
    labels: Option<Vec<String>>,
    last_used: Mutex<Instant>,
}

impl Entry {
    fn new(runtime: Runtime, memory_bytes: u64) -> Entry {
        Entry {
            runtime,
            memory_bytes,
            embedding_shape: None,
            labels: None,
            last_used: Mutex::new(Instant::now()),
        }
    }

    fn in_flight(&self) -> usize {
        match &self.runtime {
            Runtime::Classifier(r) => r.queued(),
            Runtime::Embedder(r) => r.queued(),
            Runtime::Tensor(r, _) => r.queued(),
            Runtime::Ocr(r) => r.queued(),
            Runtime::Entities(r) => r.queued(),
            Runtime::Speech(r, _) => r.queued(),
            Runtime::Generator(g) => g.generator().in_flight(),
        }
    }

    fn label(&self) -> &str {
        match &self.runtime {
            Runtime::Classifier(r) => r.label(),
            Runtime::Embedder(r) => r.label(),
            Runtime::Tensor(r, _) => r.label(),
            Runtime::Ocr(r) => r.label(),
            Runtime::Entities(r) => r.label(),
            Runtime::Speech(r, _) => r.label(),
            Runtime::Generator(g) => g.generator().label(),
        }
    }
}

/// What `Engine::load_onnx` loads.
pub struct OnnxLoad<'a> {
    pub runtime: &'a aiaas_onnx::Runtime,
    /// The `.onnx` file.
    pub bytes: &'a [u8],
    /// Intra-op threads (0: ONNX Runtime's default).
    pub threads: usize,
}

/// All runtimes of this process, by deployment key.
pub struct Engine {
    runtimes: RwLock<HashMap<String, Arc<Entry>>>,
    metrics: Arc<Metrics>,
}

impl Engine {
    pub fn new(metrics: Arc<Metrics>) -> Engine {
        Engine {
            runtimes: RwLock::new(HashMap::new()),
            metrics,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Build a classifier from its files and start its inference thread, replacing any
    /// runtime under the same key. CPU-heavy: call it from a blocking context.
    pub fn load_classifier(
        &self,
        key: &str,
        label: &str,
        files: &ModelFiles,
        settings: BatchSettings,
    ) -> Result<(), EngineError> {
        let classifier =
            Classifier::from_files(files).map_err(|e| EngineError::Load(e.to_string()))?;
        let memory = files.values().map(|b| b.len() as u64).sum();
        let labels = classifier.labels().to_vec();
        let runtime = BatchRuntime::start(
            label.to_string(),
            classifier,
            settings,
            self.metrics.clone(),
        );
        self.insert(
            key,
            Entry {
                labels: Some(labels),
                ..Entry::new(Runtime::Classifier(Arc::new(runtime)), memory)
            },
        );
        Ok(())
    }

    /// Load a sentence-embedding model folder. Blocking.
    pub fn load_embedder(
        &self,
        key: &str,
        label: &str,
        dir: &Path,
        settings: BatchSettings,
    ) -> Result<(), EngineError> {
        let started = Instant::now();
        let embedder = Embedder::load(dir).map_err(|e| EngineError::Load(e.to_string()))?;
        let memory = folder_size(dir);
        let shape = (embedder.dimensions(), embedder.max_tokens());
        let runtime =
            BatchRuntime::start(label.to_string(), embedder, settings, self.metrics.clone());
        self.insert(
            key,
            Entry {
                embedding_shape: Some(shape),
                ..Entry::new(Runtime::Embedder(Arc::new(runtime)), memory)
            },
        );
        self.loaded_event(label, "load", started.elapsed());
        Ok(())
    }

    /// Prepare an ONNX model (`bytes`, an `.onnx` file) with `threads` intra-op threads
    /// and start its inference thread; `settings.max_batch` 1 runs each request alone.
    /// Blocking.
    pub fn load_onnx(
        &self,
        key: &str,
        label: &str,
        model: OnnxLoad<'_>,
        settings: BatchSettings,
    ) -> Result<(), EngineError> {
        let started = Instant::now();
        let onnx = aiaas_onnx::OnnxModel::load(model.runtime, model.bytes, model.threads)
            .map_err(|e| EngineError::Load(e.to_string()))?;
        let onnx = Arc::new(onnx);
        let runtime = BatchRuntime::start(
            label.to_string(),
            TensorModel {
                model: onnx.clone(),
                merge: settings.max_batch > 1,
            },
            settings,
            self.metrics.clone(),
        );
        // ONNX Runtime's session holds the graph and its prepared weights: about twice
        // the file.
        let memory = 2 * model.bytes.len() as u64;
        self.insert(
            key,
            Entry::new(Runtime::Tensor(Arc::new(runtime), onnx), memory),
        );
        self.loaded_event(label, "load", started.elapsed());
        Ok(())
    }

    /// Load a GGUF model with its LoRA adapters and start its generation scheduler.
    /// Blocking. A runtime already under `key` (a reload, e.g. for an adapter trained
    /// since) is replaced at once for new requests and dropped on a thread of its own
    /// once its running sequences end (at most ten minutes later).
    pub fn load_generator(
        &self,
        key: &str,
        label: &str,
        path: &Path,
        settings: llm::GeneratorSettings,
        adapters: &[generation::AdapterFile],
    ) -> Result<Arc<GeneratorRuntime>, EngineError> {
        let started = Instant::now();
        let runtime = Arc::new(GeneratorRuntime::load(
            path,
            label,
            settings,
            adapters,
            self.metrics.clone(),
        )?);
        let memory = runtime.memory_bytes();
        let replaced = self.generator(key);
        self.insert(key, Entry::new(Runtime::Generator(runtime.clone()), memory));
        if let Some(old) = replaced {
            let retire = move || {
                let since = Instant::now();
                while old.busy() && since.elapsed() < Duration::from_secs(600) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                drop(old);
            };
            if let Err(e) = std::thread::Builder::new()
                .name("llm-retire".into())
                .spawn(retire)
            {
                tracing::warn!(error = %e, "could not retire a replaced generator on a thread");
            }
        }
        self.loaded_event(label, "load", started.elapsed());
        Ok(runtime)
    }

    /// Stop a runtime; classifier requests already queued finish first, generation
    /// still running ends with `Stopped`. Blocking (joins the runtime's thread).
    pub fn unload(&self, key: &str) -> bool {
        let removed = self
            .runtimes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        let Some(entry) = removed else {
            return false;
        };
        let label = entry.label().to_string();
        for gauge in [runtime::QUEUE_DEPTH, SCALING_QUEUE, SCALING_BUSY] {
            self.metrics.remove(gauge, &[("model", &label)]);
        }
        if matches!(entry.runtime, Runtime::Generator(_)) {
            generation::forget_gauges(&self.metrics, &label);
        }
        let kind_reports_events = !matches!(entry.runtime, Runtime::Classifier(_));
        // Dropped here, outside the lock: the drop joins the runtime's thread.
        drop(entry);
        if kind_reports_events {
            self.loaded_event(&label, "unload", Duration::ZERO);
        }
        self.publish_count();
        true
    }

    pub fn is_loaded(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn loaded(&self) -> Vec<LoadedModel> {
        let runtimes = self.runtimes.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<LoadedModel> = runtimes
            .iter()
            .map(|(k, e)| {
                let in_flight = e.in_flight();
                let (kind, slots_busy, slots, batch) = match &e.runtime {
                    Runtime::Classifier(r) => {
                        (RuntimeKind::Classifier, None, None, Some(r.settings()))
                    }
                    Runtime::Embedder(r) => (RuntimeKind::Embedder, None, None, Some(r.settings())),
                    Runtime::Tensor(r, _) => (RuntimeKind::Tensor, None, None, Some(r.settings())),
                    Runtime::Ocr(r) => (RuntimeKind::Ocr, None, None, Some(r.settings())),
                    Runtime::Entities(r) => (RuntimeKind::Entities, None, None, Some(r.settings())),
                    Runtime::Speech(r, _) => (RuntimeKind::Speech, None, None, Some(r.settings())),
                    Runtime::Generator(g) => {
                        let s = g.generator().stats();
                        (
                            RuntimeKind::Generator,
                            Some(s.slots_busy),
                            Some(s.slots),
                            None,
                        )
                    }
                };
                LoadedModel {
                    key: k.clone(),
                    label: e.label().to_string(),
                    kind,
                    in_flight,
                    slots_busy,
                    slots,
                    memory_bytes: e.memory_bytes,
                    idle_for: if in_flight > 0 {
                        Duration::ZERO
                    } else {
                        e.last_used
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .elapsed()
                    },
                    batch,
                }
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Class labels of the classifier under `key`.
    pub fn labels(&self, key: &str) -> Option<Vec<String>> {
        self.get(key)?.labels.clone()
    }

    /// Estimated memory of every loaded model.
    pub fn memory_used(&self) -> u64 {
        self.runtimes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|e| e.memory_bytes)
            .sum()
    }

    /// Refresh the gauges only a scheduler knows (running, waiting, KV-cache use).
    pub fn refresh_gauges(&self) {
        {
            let runtimes = self.runtimes.read().unwrap_or_else(|e| e.into_inner());
            for e in runtimes.values() {
                if let Runtime::Generator(g) = &e.runtime {
                    generation::publish_stats(&self.metrics, g);
                }
            }
        }
        // The autoscaling pair, the same for every kind of model: requests waiting for a
        // slot, and slots busy. A generator's slots are its sequences; a batched model's
        // one batch in progress holds up to `max_batch` requests.
        for m in self.loaded() {
            let busy = match (m.slots_busy, m.batch) {
                (Some(busy), _) => busy.min(m.in_flight),
                (None, Some(b)) => m.in_flight.min(b.max_batch),
                (None, None) => 0,
            };
            let labels = [("model", m.label.as_str())];
            self.metrics.set(
                SCALING_QUEUE,
                "Requests waiting for a slot, per loaded model (the autoscaling signal).",
                &labels,
                m.in_flight.saturating_sub(busy) as f64,
            );
            self.metrics.set(
                SCALING_BUSY,
                "Slots busy (sequences generating, or requests in the batch running), per loaded model.",
                &labels,
                busy as f64,
            );
        }
    }

    /// Mark a model as used now (for idle unloading and LRU eviction).
    pub fn touch(&self, key: &str) {
        if let Some(e) = self.get(key) {
            *e.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }

    /// Classify texts on the runtime under `key`; resolves when its batch has run.
    pub async fn classify(
        &self,
        key: &str,
        texts: Vec<String>,
        explain: Option<ExplainOptions>,
    ) -> Result<Vec<Prediction>, EngineError> {
        self.run_batch(key, ClassifyRequest { texts, explain }, |r| match r {
            Runtime::Classifier(c) => Some(c.clone()),
            _ => None,
        })
        .await
    }

    /// Run typed tensors through the ONNX model under `key`: checked against its signature
    /// at once (`InvalidInput` naming the input), then queued and batched.
    pub async fn infer_tensors(
        &self,
        key: &str,
        request: TensorRequest,
    ) -> Result<Vec<aiaas_onnx::Tensor>, EngineError> {
        let entry = self
            .get(key)
            .ok_or_else(|| EngineError::NotLoaded(key.to_string()))?;
        if let Runtime::Tensor(_, model) = &entry.runtime {
            model
                .check_request(&request.inputs, request.outputs.as_deref())
                .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
        }
        drop(entry);
        self.run_batch(key, request, |r| match r {
            Runtime::Tensor(t, _) => Some(t.clone()),
            _ => None,
        })
        .await
    }

    /// Embed texts on the embedding runtime under `key` (truncated to the model's length;
    /// see `Embedding::truncated`).
    pub async fn embed(
        &self,
        key: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Embedding>, EngineError> {
        self.run_batch(key, texts, |r| match r {
            Runtime::Embedder(e) => Some(e.clone()),
            _ => None,
        })
        .await
    }

    /// Whether the batch runtime under `key`, if one is loaded, would refuse a request
    /// arriving now under its queue policy (`QueueTimeout`, counted as a rejection). Lets
    /// a caller refuse before its own costly work; `submit` checks again regardless.
    pub fn check_queue_policy(&self, key: &str) -> Result<(), EngineError> {
        let Some(entry) = self.get(key) else {
            return Ok(());
        };
        match &entry.runtime {
            Runtime::Classifier(r) => r.check_queue_policy(),
            Runtime::Embedder(r) => r.check_queue_policy(),
            Runtime::Tensor(r, _) => r.check_queue_policy(),
            Runtime::Ocr(r) => r.check_queue_policy(),
            Runtime::Entities(r) => r.check_queue_policy(),
            Runtime::Speech(r, _) => r.check_queue_policy(),
            Runtime::Generator(_) => Ok(()),
        }
    }

    /// Submit texts to the batch runtime of kind `M` under `key` and wait for the answer.
    async fn run_batch<M: BatchModel>(
        &self,
        key: &str,
        input: M::Input,
        pick: impl Fn(&Runtime) -> Option<Arc<BatchRuntime<M>>>,
    ) -> Result<M::Output, EngineError> {
        let runtime = self
            .get(key)
            .and_then(|e| pick(&e.runtime))
            .ok_or_else(|| EngineError::NotLoaded(key.to_string()))?;
        let answer = runtime.submit(input)?;
        // Not held across the wait: dropping the last reference joins the runtime's thread,
        // which must not happen on an async worker.
        drop(runtime);
        let out = answer.await;
        self.touch(key);
        out
    }

    /// The generation runtime under `key`.
    pub fn generator(&self, key: &str) -> Option<Arc<GeneratorRuntime>> {
        match &self.get(key)?.runtime {
            Runtime::Generator(g) => Some(g.clone()),
            _ => None,
        }
    }

    /// Dimensions and token limit of the embedding model under `key`.
    pub fn embedder_info(&self, key: &str) -> Option<(usize, usize)> {
        self.get(key)?.embedding_shape
    }

    fn insert(&self, key: &str, entry: Entry) {
        let entry = Arc::new(entry);
        let old = self
            .runtimes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), entry);
        drop(old);
        self.publish_count();
    }

    fn publish_count(&self) {
        let (count, memory) = {
            let r = self.runtimes.read().unwrap_or_else(|e| e.into_inner());
            (r.len(), r.values().map(|e| e.memory_bytes).sum::<u64>())
        };
        self.metrics.set(
            "aiaas_models_loaded",
            "Models loaded in this process.",
            &[],
            count as f64,
        );
        self.metrics.set(
            "aiaas_models_memory_bytes",
            "Estimated memory of the loaded models (weights and caches).",
            &[],
            memory as f64,
        );
    }

    fn loaded_event(&self, label: &str, event: &str, took: Duration) {
        self.metrics.inc(
            "aiaas_model_load_events_total",
            "Model loads and unloads.",
            &[("model", label), ("event", event)],
            1,
        );
        if event == "load" {
            self.metrics.observe(
                "aiaas_model_load_seconds",
                "Time to load a model.",
                &[("model", label)],
                metrics::LATENCY_BUCKETS,
                took.as_secs_f64(),
            );
        }
    }

    fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.runtimes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }
}

fn folder_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
