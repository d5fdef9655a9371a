//! Model runtimes: loaded models, each served by its own inference thread behind a
//! bounded queue with dynamic batching. The async world talks to a runtime only through
//! channels; HTTP never sees candle.
//!
//! Architecture invariant: inference never runs on the async runtime's worker threads.

pub mod metrics;
mod runtime;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use aiaas_train::{Classifier, ModelFiles};
pub use metrics::Metrics;
use runtime::ClassifierRuntime;

/// Errors of the serving engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model {model} is overloaded: {queued} requests queued")]
    QueueFull { model: String, queued: usize },
    #[error("model {0} is not loaded")]
    NotLoaded(String),
    #[error("model files could not be loaded: {0}")]
    Load(String),
    #[error("inference failed: {0}")]
    Inference(String),
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
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_batch: 32,
            max_delay: Duration::ZERO,
            queue_capacity: 256,
        }
    }
}

/// A loaded model as reported to operators.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedModel {
    pub key: String,
    pub label: String,
    pub queued: usize,
    pub settings: BatchSettings,
}

/// Class probabilities for one text, with the labels they belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub probabilities: Vec<f32>,
}

/// All runtimes of this process, by deployment key.
pub struct Engine {
    runtimes: RwLock<HashMap<String, Arc<ClassifierRuntime>>>,
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
        let runtime = ClassifierRuntime::start(
            label.to_string(),
            classifier,
            settings,
            self.metrics.clone(),
        );
        let old = self
            .runtimes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), Arc::new(runtime));
        drop(old);
        self.metrics.set(
            "aiaas_models_loaded",
            "Models loaded in this process.",
            &[],
            self.len() as f64,
        );
        Ok(())
    }

    /// Stop a runtime; requests already queued finish first.
    pub fn unload(&self, key: &str) -> bool {
        let removed = self
            .runtimes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        // Dropped after the lock is released: the drop joins the runtime's thread.
        if let Some(runtime) = &removed {
            self.metrics
                .remove(runtime::QUEUE_DEPTH, &[("model", runtime.label())]);
        }
        let removed = removed.is_some();
        self.metrics.set(
            "aiaas_models_loaded",
            "Models loaded in this process.",
            &[],
            self.len() as f64,
        );
        removed
    }

    pub fn is_loaded(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn labels(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|r| r.labels().to_vec())
    }

    pub fn loaded(&self) -> Vec<LoadedModel> {
        let runtimes = self.runtimes.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<LoadedModel> = runtimes
            .iter()
            .map(|(k, r)| LoadedModel {
                key: k.clone(),
                label: r.label().to_string(),
                queued: r.queued(),
                settings: r.settings(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Classify texts on the runtime under `key`; resolves when its batch has run.
    pub async fn classify(
        &self,
        key: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Prediction>, EngineError> {
        let runtime = self
            .get(key)
            .ok_or_else(|| EngineError::NotLoaded(key.to_string()))?;
        let answer = runtime.submit(texts)?;
        // Not held across the wait: dropping the last reference joins the runtime's thread,
        // which must not happen on an async worker.
        drop(runtime);
        answer.await
    }

    fn get(&self, key: &str) -> Option<Arc<ClassifierRuntime>> {
        self.runtimes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    fn len(&self) -> usize {
        self.runtimes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}
