//! Library models at run time: resolving a caller's model, loading it on first use
//! (one load at a time, a waiter gives up after `load_timeout`), the local cache of a
//! shared store's weights (checked, bounded, least recently used first), the memory
//! budget, and the keep-alive reaper.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aiaas_engine::GeneratorRuntime;
use aiaas_store::{library_prefix, LibraryModelRecord};
use aiaas_types::{Format, Principal};
use tokio::sync::watch;

use super::{
    cache_mark, file_names, runtime_key, strip_tag, KeepAlive, Library, LoadFailure,
    ServingSettings, CACHE_MARK,
};
use crate::runtime_key::RuntimeKey;
use crate::{CoreError, Result};

/// An OCR model's settings: RapidOCR's defaults, overridden by the catalogue's defaults
/// under PaddleOCR's names.
fn ocr_settings(defaults: &serde_json::Value) -> aiaas_engine::ocr::OcrSettings {
    let mut s = aiaas_engine::ocr::OcrSettings::default();
    let number = |k: &str| defaults.get(k).and_then(serde_json::Value::as_f64);
    if let Some(v) = number("limit_side_len").filter(|v| *v >= 32.0 && *v <= 4096.0) {
        s.limit_side = v as u32;
    }
    if let Some(v) = number("thresh").filter(|v| (0.0..1.0).contains(v)) {
        s.threshold = v as f32;
    }
    if let Some(v) = number("box_thresh").filter(|v| (0.0..1.0).contains(v)) {
        s.box_threshold = v as f32;
    }
    if let Some(v) = number("unclip_ratio").filter(|v| *v > 0.0 && *v < 10.0) {
        s.unclip_ratio = v;
    }
    if let Some(v) = number("text_score").filter(|v| (0.0..=1.0).contains(v)) {
        s.text_score = v as f32;
    }
    s
}

impl Library {
    /// Follow removals other replicas made: unload library models no longer in the
    /// database, and forget their cached weights.
    pub(crate) async fn reconcile(&self) {
        for m in self.inner.engine.loaded() {
            let Some(name) = RuntimeKey::library_name(&m.key) else {
                continue;
            };
            if let Ok(None) = self.inner.meta.library_model(&name).await {
                tracing::info!(model = %name, "unloading a library model removed elsewhere");
                self.unload_library(&name).await;
            }
        }
        self.forget_removed_models().await;
    }

    /// The library model `name` as the caller may see it (403 outside its key's
    /// allow-list, 404 when there is none).
    pub async fn find(&self, principal: &Principal, name: &str) -> Result<LibraryModelRecord> {
        self.visible_library_model(principal, name).await
    }

    pub(crate) async fn visible_library_model(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<LibraryModelRecord> {
        let name = strip_tag(name);
        if !principal.may_call_model(name) {
            return Err(CoreError::Forbidden(format!(
                "this API key may not use model {name:?}"
            )));
        }
        self.inner
            .meta
            .library_model(name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no model {name:?} in the library")))
    }

    /// The generation runtime of a model, loading it if needed.
    pub(crate) async fn generator_for(
        &self,
        record: &LibraryModelRecord,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Arc<GeneratorRuntime>> {
        if record.format != Format::Gguf {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} is not a GGUF model and cannot generate text",
                record.name
            )));
        }
        let timeout = self.inner.config.load_timeout;
        self.ensure_library_loaded(record, keep_alive, timeout)
            .await?;
        let key = runtime_key(&record.name);
        self.inner.engine.touch(&key);
        self.inner
            .engine
            .generator(&key)
            .ok_or_else(|| CoreError::Unavailable(format!("model {:?} was unloaded", record.name)))
    }

    /// The runtime key of an embedding model, loading it if needed.
    pub(crate) async fn embedder_for(
        &self,
        record: &LibraryModelRecord,
        keep_alive: Option<KeepAlive>,
    ) -> Result<String> {
        let timeout = self.inner.config.load_timeout;
        self.ensure_library_loaded(record, keep_alive, timeout)
            .await?;
        let key = runtime_key(&record.name);
        self.inner.engine.touch(&key);
        Ok(key)
    }

    /// Load on first use. The load runs as its own task, so a caller that stops waiting
    /// (timeout, disconnect) does not abort it; concurrent callers share one load.
    pub(crate) async fn ensure_library_loaded(
        &self,
        record: &LibraryModelRecord,
        keep_alive: Option<KeepAlive>,
        wait: Duration,
    ) -> Result<()> {
        if let Some(k) = keep_alive {
            self.inner
                .state
                .keep_alive
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(record.name.clone(), k);
        }
        let key = runtime_key(&record.name);
        if self.inner.engine.is_loaded(&key) {
            return Ok(());
        }
        let mut outcome = {
            let mut loads = self
                .inner
                .state
                .loads
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match loads.get(&record.name) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    loads.insert(record.name.clone(), rx.clone());
                    let p = self.clone();
                    let record = record.clone();
                    tokio::spawn(async move {
                        let result = p.load_library(&record).await.map_err(|e| LoadFailure {
                            integrity: matches!(e, CoreError::Integrity(_)),
                            message: e.to_string(),
                        });
                        p.inner
                            .state
                            .loads
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&record.name);
                        let _ = tx.send(Some(result));
                    });
                    rx
                }
            }
        };
        let done = tokio::time::timeout(wait, outcome.wait_for(Option::is_some)).await;
        match done {
            Err(_) => Err(CoreError::Loading {
                message: format!("model {:?} is loading; retry shortly", record.name),
                retry_after_secs: 2,
            }),
            Ok(Err(_)) => Err(CoreError::Internal("the model load task ended".into())),
            Ok(Ok(v)) => match v.as_ref() {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => {
                    let message =
                        format!("model {:?} could not be loaded: {}", record.name, e.message);
                    Err(if e.integrity {
                        CoreError::Integrity(message)
                    } else {
                        CoreError::Unavailable(message)
                    })
                }
                None => Err(CoreError::Internal(
                    "model load ended without an outcome".into(),
                )),
            },
        }
    }

    pub(crate) async fn load_library(&self, record: &LibraryModelRecord) -> Result<()> {
        let _guard = self.inner.loading.lock().await;
        let key = runtime_key(&record.name);
        if self.inner.engine.is_loaded(&key) {
            return Ok(());
        }
        let settings = ServingSettings::of(record);
        let c = &self.inner.config;
        self.ensure_cached(record).await?;
        let dir = self.library_cache_dir().join(&record.name);
        let names = file_names(record);
        let label = record.name.clone();
        let p = self.clone();
        // The one place a library format picks its loader and runtime.
        match record.format {
            Format::Gguf => {
                let needed = std::fs::metadata(dir.join("model.gguf")).map_or(0, |m| m.len());
                self.make_room(needed).await?;
                self.load_gguf(record).await?;
            }
            Format::HfEncoder => {
                let b = settings.batch(c.embed_batch);
                self.make_room(record.size_bytes.max(0) as u64).await?;
                tokio::task::spawn_blocking(move || {
                    let view = p.model_view(&dir, &names)?;
                    p.inner.engine.load_embedder(&key, &label, view.path(), b)?;
                    Ok::<_, CoreError>(())
                })
                .await??;
            }
            Format::Ppocr => {
                let runtime =
                    crate::tensor_models::load_onnxruntime(self.inner.onnxruntime.as_deref())?;
                // A page is a row; pages run one after another, so a batch only gathers
                // what is queued.
                let b = settings.batch(aiaas_engine::BatchSettings {
                    max_batch: 4,
                    max_delay: std::time::Duration::ZERO,
                    ..c.embed_batch
                });
                let threads = settings.threads.unwrap_or(0);
                let ocr = ocr_settings(&record.defaults);
                self.make_room(2 * record.size_bytes.max(0) as u64).await?;
                tokio::task::spawn_blocking(move || {
                    let view = p.model_view(&dir, &names)?;
                    let load = aiaas_engine::OcrLoad {
                        runtime,
                        dir: view.path(),
                        threads,
                        instances: settings.instances.unwrap_or(1),
                        settings: ocr,
                    };
                    p.inner.engine.load_ocr(&key, &label, load, b)?;
                    Ok::<_, CoreError>(())
                })
                .await??;
            }
            Format::OnnxTokenClassifier => {
                let runtime =
                    crate::tensor_models::load_onnxruntime(self.inner.onnxruntime.as_deref())?;
                let b = settings.batch(c.embed_batch);
                let threads = settings.threads.unwrap_or(0);
                self.make_room(2 * record.size_bytes.max(0) as u64).await?;
                tokio::task::spawn_blocking(move || {
                    let view = p.model_view(&dir, &names)?;
                    p.inner.engine.load_token_classifier(
                        &key,
                        &label,
                        runtime,
                        view.path(),
                        threads,
                        b,
                    )?;
                    Ok::<_, CoreError>(())
                })
                .await??;
            }
            Format::Whisper => {
                // A recording is a request; recordings run one after another.
                let b = settings.batch(aiaas_engine::BatchSettings {
                    max_batch: 1,
                    max_delay: std::time::Duration::ZERO,
                    ..c.embed_batch
                });
                self.make_room(record.size_bytes.max(0) as u64).await?;
                tokio::task::spawn_blocking(move || {
                    let view = p.model_view(&dir, &names)?;
                    p.inner
                        .engine
                        .load_transcriber(&key, &label, view.path(), b)?;
                    Ok::<_, CoreError>(())
                })
                .await??;
            }
            // Tenants' models (trained, uploaded or fine-tuned) load through their own
            // services, never as library models.
            Format::AiaasClassifier | Format::Onnx | Format::LoraAdapter => {
                return Err(CoreError::InvalidInput(format!(
                    "{} is a tenant's {} model, not a library model",
                    record.name, record.format
                )));
            }
        }
        tracing::info!(model = %record.name, "model loaded");
        Ok(())
    }

    /// Load (or reload) a GGUF library model with the LoRA adapters fine-tuned on it;
    /// the caller holds the load lock and has made room.
    pub(crate) async fn load_gguf(&self, record: &LibraryModelRecord) -> Result<()> {
        let settings = ServingSettings::of(record);
        let c = &self.inner.config;
        let catalogue_ctx = record
            .defaults
            .get("context_length")
            .and_then(serde_json::Value::as_u64)
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        let mut g = c.generator;
        g.slots = settings.slots.unwrap_or(g.slots);
        g.queue_capacity = settings.queue_capacity.unwrap_or(g.queue_capacity);
        if let Some(ms) = settings.max_queue_time_ms {
            g.max_queue_time = (ms > 0).then(|| std::time::Duration::from_millis(ms));
        }
        g.context_per_slot = settings
            .context_length
            .unwrap_or_else(|| g.context_per_slot.min(catalogue_ctx.unwrap_or(u32::MAX)));
        let adapters = self.adapters_of(&record.name).await?;
        let dir = self.library_cache_dir().join(&record.name);
        let names = file_names(record);
        let (key, label) = (runtime_key(&record.name), record.name.clone());
        let p = self.clone();
        tokio::task::spawn_blocking(move || {
            let view = p.model_view(&dir, &names)?;
            let path = view.path().join("model.gguf");
            let (_adapter_view, files) = p.adapter_files(&adapters)?;
            if let Err(e) = p.inner.engine.load_generator(&key, &label, &path, g, &files) {
                if files.is_empty() {
                    return Err(e.into());
                }
                // One tenant's unreadable adapter must not take the base model away
                // from everyone: serve the base, and the adapters fail on their own.
                tracing::warn!(model = %label, error = %e, "loading the model's adapters failed; loading it without them");
                p.inner.engine.load_generator(&key, &label, &path, g, &[])?;
            }
            Ok::<_, CoreError>(())
        })
        .await??;
        Ok(())
    }

    /// With a shared artifact store, make sure this replica's cache holds the model's
    /// sealed files: fetch what is missing from the store, check each against the size
    /// and sha256 recorded at the pull (a copy that fails is deleted, never loaded), then
    /// keep the cache under its size bound. The folder's time marks its last use.
    pub(crate) async fn ensure_cached(&self, record: &LibraryModelRecord) -> Result<()> {
        let dir = self.library_cache_dir().join(&record.name);
        if !self.inner.artifacts.is_shared() {
            return Ok(());
        }
        // A folder that is not this record's copy (a model of the same name removed and
        // pulled again elsewhere, or an unmarked leftover) is dropped and fetched anew.
        if dir.exists() && cache_mark(&dir).as_deref() != Some(record.id.as_str()) {
            tracing::info!(model = %record.name, "the cached copy is not this model's; fetching it again");
            std::fs::remove_dir_all(&dir)?;
        }
        let missing: Vec<(String, u64, String)> = record
            .files
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let name = f.get("name")?.as_str()?.to_string();
                let size = f.get("size")?.as_u64()?;
                let sha = f.get("sha256")?.as_str()?.to_string();
                Some((name, size, sha))
            })
            .filter(|(name, _, _)| !dir.join(name).is_file())
            .collect();
        let artifacts = self.inner.artifacts.clone();
        let files = self.model_files();
        let prefix = library_prefix(&record.id);
        let (folder, name) = (dir.clone(), record.name.clone());
        let fetched = missing.len();
        let (fetched_any, record_id) = (fetched > 0, record.id.clone());
        tokio::task::spawn_blocking(move || {
            for (file, size, sha) in missing {
                let target = folder.join(&file);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let partial = folder.join(format!(".{}.part", aiaas_types::new_id()));
                let checked = artifacts
                    .get_sealed(&format!("{prefix}/{file}"), &partial)
                    .and_then(|()| files.check(&partial, size, &sha));
                if let Err(e) = checked {
                    let _ = std::fs::remove_file(&partial);
                    return Err(CoreError::from(e));
                }
                std::fs::rename(&partial, &target)?;
            }
            if fetched_any {
                std::fs::write(folder.join(CACHE_MARK), &record_id)?;
            }
            // The cache's LRU clock.
            let _ = std::fs::File::open(&folder)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            Ok::<_, CoreError>(())
        })
        .await??;
        if fetched > 0 {
            tracing::info!(model = %name, files = fetched, "model files fetched from the artifact store into this replica's cache");
            self.trim_cache(&record.name).await;
        }
        Ok(())
    }

    /// Drop this replica's cached copies of models no longer in the library (removed
    /// on another replica): folders marked with a record id the database does not have.
    pub(crate) async fn forget_removed_models(&self) {
        if !self.inner.artifacts.is_shared() {
            return;
        }
        let Ok(records) = self.inner.meta.library_models().await else {
            return;
        };
        let ids: HashSet<String> = records.into_iter().map(|r| r.id).collect();
        let cache = self.library_cache_dir();
        let _ = tokio::task::spawn_blocking(move || {
            for entry in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
                let dir = entry.path();
                if entry.file_name().to_string_lossy().starts_with('.') || !dir.is_dir() {
                    continue;
                }
                if let Some(id) = cache_mark(&dir) {
                    if !ids.contains(&id) {
                        tracing::info!(dir = %dir.display(), "removing the cached copy of a model removed from the library");
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                }
            }
        })
        .await;
    }

    /// Keep the model cache under `--models-cache-max`: remove the least recently used
    /// folders of models not loaded here (they stay in the shared store), never `keep`.
    pub(crate) async fn trim_cache(&self, keep: &str) {
        let Some(bound) = self.inner.config.cache_max_bytes else {
            return;
        };
        let Ok(records) = self.inner.meta.library_models().await else {
            return;
        };
        let cache = self.library_cache_dir();
        let loaded: std::collections::HashSet<String> = self
            .inner
            .engine
            .loaded()
            .into_iter()
            .filter_map(|m| RuntimeKey::library_name(&m.key))
            .collect();
        let mut present: Vec<(std::time::SystemTime, u64, String)> = records
            .iter()
            .filter_map(|r| {
                let meta = std::fs::metadata(cache.join(&r.name)).ok()?;
                Some((
                    meta.modified().ok()?,
                    r.size_bytes.max(0) as u64,
                    r.name.clone(),
                ))
            })
            .collect();
        let mut total: u64 = present.iter().map(|p| p.1).sum();
        present.sort();
        for (_, size, name) in present {
            if total <= bound {
                break;
            }
            if name == keep || loaded.contains(&name) {
                continue;
            }
            let Ok(puller) = self.puller() else { return };
            let n = name.clone();
            if let Ok(Ok(())) = tokio::task::spawn_blocking(move || puller.remove(&n)).await {
                tracing::info!(model = %name, "removed from this replica's model cache (size bound)");
                total = total.saturating_sub(size);
            }
        }
    }

    /// Unload least recently used idle library models until `needed` more bytes fit
    /// the memory budget.
    pub(crate) async fn make_room(&self, needed: u64) -> Result<()> {
        let Some(budget) = self.inner.config.max_model_memory else {
            return Ok(());
        };
        loop {
            let used = self.inner.engine.memory_used();
            if used + needed <= budget {
                return Ok(());
            }
            let victim = self
                .inner
                .engine
                .loaded()
                .into_iter()
                .filter(|m| RuntimeKey::library_name(&m.key).is_some() && m.in_flight == 0)
                .max_by_key(|m| m.idle_for);
            let Some(victim) = victim else {
                return Err(CoreError::Loading {
                    message: format!(
                        "not enough model memory: {needed} bytes needed, {used} of {budget} in use by busy models"
                    ),
                    retry_after_secs: 5,
                });
            };
            tracing::info!(model = %victim.label, "unloading the least recently used model to make room");
            if let Some(name) = RuntimeKey::library_name(&victim.key) {
                self.unload_library(&name).await;
            }
        }
    }

    pub(crate) async fn unload_library(&self, name: &str) -> bool {
        let key = runtime_key(name);
        let p = self.clone();
        tokio::task::spawn_blocking(move || p.inner.engine.unload(&key))
            .await
            .unwrap_or(false)
    }

    /// Unload library models idle past their keep-alive (run every second).
    pub(crate) async fn reap_idle(&self) {
        let default = self.inner.config.keep_alive;
        let overrides = self
            .inner
            .state
            .keep_alive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for m in self.inner.engine.loaded() {
            let Some(name) = RuntimeKey::library_name(&m.key) else {
                continue;
            };
            if m.in_flight > 0 {
                continue;
            }
            let keep = match overrides.get(&name) {
                Some(k) => *k,
                None => match self.inner.meta.library_model(&name).await {
                    Ok(Some(r)) => serde_json::from_value::<ServingSettings>(r.settings)
                        .ok()
                        .and_then(|s| s.keep_alive_secs)
                        .map_or(default, KeepAlive::from_secs),
                    _ => default,
                },
            };
            if keep.expired(m.idle_for) {
                tracing::info!(model = %name, idle_secs = m.idle_for.as_secs(), "unloading an idle model");
                self.unload_library(&name).await;
            }
        }
    }
}
