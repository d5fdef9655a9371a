//! Fine-tuned models served on their library base: a tenant's `ft:...` model is a LoRA
//! adapter (a `lora-adapter` version whose architecture names the base). A GGUF base
//! loads with every adapter trained on it (llama.cpp attaches adapters to the model
//! object, which serving shares immutably), the weights once; each adapter in use gets a
//! generator (a llama.cpp context) of its own on first use. An adapter trained after its
//! base was loaded reloads the base with it: new requests go to the new runtime at once,
//! the old one finishes what it runs and is dropped. A job's checkpoint (`...:ckpt-step-N`)
//! is served the same way once called: its adapter joins its base's loads.

use std::sync::Arc;

use aiaas_engine::llm::Generator;
use aiaas_engine::{AdapterFile, GeneratorRuntime};
use aiaas_store::{LibraryModelRecord, ModelView};
use aiaas_types::Format;

use super::{runtime_key, KeepAlive, Library};
use crate::{CoreError, Result};

/// The adapter's file in a fine-tuned version's folder.
pub(crate) const ADAPTER_FILE: &str = "adapter.gguf";
/// Checkpoint models served per base at most.
const MAX_CHECKPOINTS: usize = 8;

impl Library {
    /// The adapters a load of `base` applies, by model name, with their artifact keys:
    /// every tenant's fine-tuned versions trained on it, and the checkpoints called.
    pub(crate) async fn adapters_of(&self, base: &str) -> Result<Vec<(String, String)>> {
        let mut adapters: Vec<(String, String)> = self
            .inner
            .meta
            .versions_of(Format::LoraAdapter, base)
            .await?
            .into_iter()
            .map(|(name, v)| (name, format!("{}/{ADAPTER_FILE}", v.artifact_prefix)))
            .collect();
        let checkpoints = self
            .inner
            .state
            .checkpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        adapters.extend(checkpoints.get(base).into_iter().flatten().cloned());
        Ok(adapters)
    }

    /// Serve checkpoint `name` (adapter at `key`) on `base` from the next load on; the
    /// oldest is dropped past `MAX_CHECKPOINTS` per base.
    pub(crate) fn use_checkpoint(&self, base: &str, name: &str, key: String) {
        let mut checkpoints = self
            .inner
            .state
            .checkpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let list = checkpoints.entry(base.to_string()).or_default();
        if list.iter().any(|(n, _)| n == name) {
            return;
        }
        list.push((name.to_string(), key));
        if list.len() > MAX_CHECKPOINTS {
            list.remove(0);
        }
    }

    /// The adapters' files decrypted into memory for llama.cpp (blocking). The view must
    /// outlive the load that reads them.
    pub(crate) fn adapter_files(
        &self,
        adapters: &[(String, String)],
    ) -> Result<(Option<ModelView>, Vec<AdapterFile>)> {
        if adapters.is_empty() {
            return Ok((None, Vec::new()));
        }
        let mut readers: Vec<(String, Box<dyn std::io::Read + Send>)> = Vec::new();
        let mut files = Vec::new();
        for (i, (name, key)) in adapters.iter().enumerate() {
            match self.inner.artifacts.open(key) {
                Ok(reader) => {
                    let file = format!("{i}.gguf");
                    readers.push((file.clone(), reader));
                    files.push((name.clone(), file));
                }
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "a fine-tuned model's adapter cannot be read; it is not served")
                }
            }
        }
        let view = ModelView::of_readers(&self.inner.scratch, readers)?;
        let files = files
            .into_iter()
            .map(|(name, file)| AdapterFile {
                name,
                path: view.path().join(file),
            })
            .collect();
        Ok((Some(view), files))
    }

    /// The runtime of a GGUF library model and the generator to submit to: the base
    /// model's, or the one applying adapter `adapter` (a fine-tuned model's name). Loads
    /// the model on first use, and reloads it when the adapter is newer than the load.
    pub(crate) async fn generator_with(
        &self,
        record: &LibraryModelRecord,
        adapter: Option<&str>,
        keep_alive: Option<KeepAlive>,
    ) -> Result<(Arc<GeneratorRuntime>, Arc<Generator>)> {
        let mut runtime = self.generator_for(record, keep_alive).await?;
        let Some(name) = adapter else {
            let g = runtime.base_generator();
            return Ok((runtime, g));
        };
        if !runtime.has_adapter(name) {
            {
                let _guard = self.inner.loading.lock().await;
                let current = self.inner.engine.generator(&runtime_key(&record.name));
                if !current.is_some_and(|r| r.has_adapter(name)) {
                    tracing::info!(model = %record.name, adapter = %name, "reloading the model with a new adapter");
                    self.load_gguf(record).await?;
                }
            }
            runtime = self.generator_for(record, None).await?;
            if !runtime.has_adapter(name) {
                return Err(CoreError::Unavailable(format!(
                    "the adapter of {name:?} could not be loaded on {:?}; see the server log",
                    record.name
                )));
            }
        }
        let rt = runtime.clone();
        let adapter = name.to_string();
        let generator =
            tokio::task::spawn_blocking(move || rt.adapter_generator(&adapter)).await??;
        Ok((runtime, generator))
    }

    /// A GGUF library model's weights decrypted into memory, for training (blocking
    /// work inside; the view must outlive the reads).
    pub(crate) async fn weights_view(&self, record: &LibraryModelRecord) -> Result<ModelView> {
        if record.format != Format::Gguf {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} is not a GGUF model",
                record.name
            )));
        }
        self.ensure_cached(record).await?;
        let dir = self.library_cache_dir().join(&record.name);
        let names = super::file_names(record);
        let p = self.clone();
        tokio::task::spawn_blocking(move || p.model_view(&dir, &names)).await?
    }
}
