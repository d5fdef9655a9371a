//! Token classifiers (NER) in the engine: an `aiaas_ner::Ner` behind a batch runtime. A
//! request is its texts and how to read them; a text is a row. Requests that read the
//! same way run as one batch.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use aiaas_ner::{Entity, Ner, NerOptions};

use crate::runtime::{BatchModel, BatchRuntime};
use crate::{folder_size, BatchSettings, Engine, EngineError, Entry, Runtime};

/// What one NER request asks.
pub struct EntityRequest {
    pub texts: Vec<String>,
    pub options: NerOptions,
}

impl BatchModel for Ner {
    type Input = EntityRequest;
    type Output = Vec<Vec<Entity>>;
    fn rows(request: &EntityRequest) -> usize {
        request.texts.len()
    }
    fn run(&self, requests: Vec<EntityRequest>) -> Vec<Result<Vec<Vec<Entity>>, String>> {
        let mut answers: Vec<Option<Result<Vec<Vec<Entity>>, String>>> =
            requests.iter().map(|_| None).collect();
        // Requests with the same options together, in order of arrival.
        for i in 0..requests.len() {
            if answers[i].is_some() {
                continue;
            }
            let options = requests[i].options;
            let group: Vec<usize> = (i..requests.len())
                .filter(|&j| answers[j].is_none() && requests[j].options == options)
                .collect();
            let texts: Vec<&str> = group
                .iter()
                .flat_map(|&j| requests[j].texts.iter().map(String::as_str))
                .collect();
            match self.recognise(&texts, options) {
                Ok(found) => {
                    let mut found = found.into_iter();
                    for &j in &group {
                        answers[j] =
                            Some(Ok(found.by_ref().take(requests[j].texts.len()).collect()));
                    }
                }
                Err(e) => {
                    for &j in &group {
                        answers[j] = Some(Err(e.to_string()));
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err("a request was not run".into())))
            .collect()
    }
}

impl Engine {
    /// Load a token classifier's folder (`model.onnx`, `tokenizer.json`, `config.json`)
    /// with `threads` intra-op threads (0: ONNX Runtime's default). Blocking.
    pub fn load_token_classifier(
        &self,
        key: &str,
        label: &str,
        runtime: &aiaas_onnx::Runtime,
        dir: &Path,
        threads: usize,
        settings: BatchSettings,
    ) -> Result<(), EngineError> {
        let started = Instant::now();
        let ner = Ner::load(runtime, dir, threads).map_err(|e| EngineError::Load(e.to_string()))?;
        let memory = 2 * folder_size(dir);
        let runtime = BatchRuntime::start(label.to_string(), ner, settings, self.metrics.clone());
        self.insert(
            key,
            Entry::new(Runtime::Entities(Arc::new(runtime)), memory),
        );
        self.loaded_event(label, "load", started.elapsed());
        Ok(())
    }

    /// The entities of each text, on the token classifier under `key`.
    pub async fn recognise_entities(
        &self,
        key: &str,
        request: EntityRequest,
    ) -> Result<Vec<Vec<Entity>>, EngineError> {
        self.run_batch(key, request, |r| match r {
            Runtime::Entities(n) => Some(n.clone()),
            _ => None,
        })
        .await
    }
}
