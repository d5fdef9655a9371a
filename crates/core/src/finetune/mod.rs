//! Fine-tuning: OpenAI's fine-tuning jobs over aiaas's training workers. A job adapts a
//! library GGUF model to a tenant's training file with LoRA (`aiaas_finetune`), and its
//! result is the tenant's model `ft:{base}:{tenant}:{suffix}:{id}`, a `lora-adapter`
//! version served on the base's weights (library/adapters.rs).
//!
//! A job's path: `create` checks what it can at once (the base model, the files' purpose
//! and format, the hyperparameters; 400 naming the `param`) and stores the job
//! `validating_files`; a task reads every example of both files again and resolves the
//! "auto" hyperparameters from their counts, then queues the job (or fails it with
//! OpenAI's error object). Workers claim queued jobs with the classifier jobs' claim and
//! lease (`jobs` rows of kind `fine-tune`); worker.rs trains, appends per-step metrics
//! as events, saves checkpoints (the trainer's state and the adapter, sealed), resumes
//! from the latest one when a job is taken over, and registers the adapter.

mod validate;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiaas_store::{ArtifactStore, JobKind, JobRecord, JobStatus, Metadata, NewJob};
use aiaas_types::{Format, Permission, Principal};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::auth::require;
use crate::files::Files;
use crate::library::Library;
use crate::models::Models;
use crate::{CoreError, Result};

pub use validate::{Hyperparameters, LoraSpec, Setting};

/// Fine-tuned models' names start with this (OpenAI's convention).
pub const FINE_TUNED_PREFIX: &str = "ft:";
/// Most jobs, events or checkpoints per page.
pub const MAX_PAGE: usize = 100;

pub(crate) fn is_fine_tuned_name(name: &str) -> bool {
    name.starts_with(FINE_TUNED_PREFIX)
}

/// The library model a tenant's fine-tuned model was trained on (404 when the tenant
/// has no such model: another tenant's is not found alike).
pub(crate) async fn base_of(meta: &Metadata, tenant_id: &str, name: &str) -> Result<String> {
    let not_found = || CoreError::NotFound(format!("no model {name:?}"));
    let model = meta
        .model_by_name(tenant_id, name)
        .await?
        .ok_or_else(not_found)?;
    let version = meta
        .model_versions(&model.id)
        .await?
        .into_iter()
        .rev()
        .find(|v| v.format == Format::LoraAdapter)
        .ok_or_else(not_found)?;
    Ok(version.architecture)
}

/// A checkpoint's model name is its job's fine-tuned name with this and the step.
const CHECKPOINT_MARK: &str = ":ckpt-step-";

/// The fine-tuned name and step of a checkpoint's model name.
pub(crate) fn checkpoint_name(name: &str) -> Option<(&str, i64)> {
    let (model, step) = name.rsplit_once(CHECKPOINT_MARK)?;
    let step = step.parse().ok().filter(|s| *s > 0)?;
    is_fine_tuned_name(model).then_some((model, step))
}

/// A tenant's checkpoint model (`ft:...:ckpt-step-N`, of a job in any state): the base
/// it was trained on and its adapter's artifact key. 404 when the tenant has no such
/// checkpoint: another tenant's is not found alike.
pub(crate) async fn checkpoint_of(
    meta: &Metadata,
    tenant_id: &str,
    name: &str,
) -> Result<(String, aiaas_store::CheckpointRecord)> {
    let not_found = || CoreError::NotFound(format!("no model {name:?}"));
    let (model, step) = checkpoint_name(name).ok_or_else(not_found)?;
    let tail = model.rsplit(':').next().unwrap_or_default();
    let tenant = meta
        .tenant(tenant_id)
        .await?
        .map_or_else(|| tenant_id.to_string(), |t| t.name);
    for job in meta
        .jobs_ending_with(JobKind::FineTune, tenant_id, tail)
        .await?
    {
        let Ok(config) = serde_json::from_value::<JobConfig>(job.config.clone()) else {
            continue;
        };
        if fine_tuned_name(&job.model_name, &tenant, config.suffix.as_deref(), &job.id) != model {
            continue;
        }
        // The newest save of that step (a job resumed elsewhere may save it again).
        let checkpoint = meta
            .checkpoints(&job.id)
            .await?
            .into_iter()
            .filter(|c| c.step == step)
            .max_by_key(|c| c.created_at)
            .ok_or_else(not_found)?;
        return Ok((job.model_name, checkpoint));
    }
    Err(not_found())
}

/// A fine-tuning job as submitted (OpenAI's request, read by the API).
#[derive(Debug, Clone, Default)]
pub struct FineTuneRequest {
    /// The library model to adapt.
    pub model: String,
    pub training_file: String,
    pub validation_file: Option<String>,
    pub hyperparameters: Hyperparameters,
    /// Part of the fine-tuned model's name.
    pub suffix: Option<String>,
    pub seed: Option<u64>,
}

/// OpenAI's error object of a failed job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
    pub param: Option<String>,
}

impl JobError {
    pub(crate) fn new(code: &str, message: impl Into<String>, param: Option<&str>) -> JobError {
        JobError {
            code: code.into(),
            message: message.into(),
            param: param.map(str::to_string),
        }
    }

    /// The stored form: JSON (a plain message from elsewhere is kept as the message).
    fn parse(stored: &str) -> JobError {
        serde_json::from_str(stored)
            .unwrap_or_else(|_| JobError::new("training_failed", stored, None))
    }

    fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.message.clone())
    }
}

/// What a job stores as its configuration (internal; the API shows its parts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobConfig {
    pub(crate) suffix: Option<String>,
    pub(crate) seed: u64,
    /// As asked: numbers, or "auto" until the files are validated.
    pub(crate) hyperparameters: serde_json::Value,
    pub(crate) lora: aiaas_finetune::LoraConfig,
    /// Longest example in tokens; longer ones are cut (with a warning event).
    pub(crate) max_tokens: usize,
}

/// A fine-tuning job as the API shows it.
#[derive(Debug, Clone)]
pub struct FineTuneJob {
    pub id: String,
    /// The base model.
    pub model: String,
    pub status: JobStatus,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub fine_tuned_model: Option<String>,
    pub training_file: String,
    pub validation_file: Option<String>,
    /// `n_epochs`, `batch_size`, `learning_rate_multiplier`: numbers, or "auto" before
    /// validation.
    pub hyperparameters: serde_json::Value,
    pub lora: serde_json::Value,
    pub seed: u64,
    pub suffix: Option<String>,
    pub trained_tokens: Option<i64>,
    /// The results file's id (a CSV of the steps' metrics) once the job succeeded.
    pub result_files: Vec<String>,
    pub error: Option<JobError>,
    /// Estimated end (epoch seconds) while running.
    pub estimated_finish: Option<i64>,
}

impl FineTuneJob {
    fn of(job: JobRecord) -> FineTuneJob {
        let config: Option<JobConfig> = serde_json::from_value(job.config.clone()).ok();
        let report = job.report.clone().unwrap_or(serde_json::Value::Null);
        FineTuneJob {
            model: job.model_name,
            status: job.status,
            created_at: job.created_at,
            finished_at: job.finished_at,
            fine_tuned_model: report["fine_tuned_model"].as_str().map(str::to_string),
            training_file: job.dataset_id,
            validation_file: job.test_dataset_id,
            hyperparameters: config
                .as_ref()
                .map_or(serde_json::Value::Null, |c| c.hyperparameters.clone()),
            lora: config
                .as_ref()
                .and_then(|c| serde_json::to_value(&c.lora).ok())
                .unwrap_or_default(),
            seed: config.as_ref().map_or(0, |c| c.seed),
            suffix: config.and_then(|c| c.suffix),
            trained_tokens: report["trained_tokens"].as_i64(),
            result_files: report["result_files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect(),
            error: job.error.as_deref().map(JobError::parse),
            estimated_finish: None,
            id: job.id,
        }
    }
}

/// One event of a job: a message, or a step's metrics (`data`).
#[derive(Debug, Clone)]
pub struct FineTuneEvent {
    pub id: String,
    pub created_at: i64,
    pub level: String,
    pub message: String,
    /// `message` or `metrics`.
    pub kind: String,
    pub data: serde_json::Value,
}

/// A checkpoint a job saved.
#[derive(Debug, Clone)]
pub struct FineTuneCheckpoint {
    pub id: String,
    pub job_id: String,
    pub created_at: i64,
    /// The fine-tuned model's name with `:ckpt-step-N`.
    pub model: String,
    pub step: i64,
    pub metrics: serde_json::Value,
}

/// A fine-tuned model of the caller's tenant (for `/v1/models`).
#[derive(Debug, Clone)]
pub struct FineTunedModel {
    pub name: String,
    pub base: String,
    /// The base's task (chat or completion).
    pub task: aiaas_types::Task,
    pub created_at: i64,
}

/// A page of a listing, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// The fine-tuning service: jobs, their validation, this process's workers.
#[derive(Clone)]
pub struct FineTuning {
    inner: Arc<State>,
}

/// What the fine-tuning service is built from.
pub(crate) struct FineTuningConfig {
    pub(crate) meta: Metadata,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
    pub(crate) library: Library,
    pub(crate) files: Files,
    /// Fine-tuned models are deleted through it.
    pub(crate) models: Models,
    pub(crate) replica_id: String,
    /// Jobs trained at once by this process.
    pub(crate) workers: usize,
    pub(crate) lease: Duration,
    /// Checkpoints are saved at each epoch's end and at least this often.
    pub(crate) checkpoint_every: Duration,
}

struct State {
    config: FineTuningConfig,
    worker_id: String,
    /// Cancel flags of the jobs this process trains.
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// Jobs this process is validating.
    validating: Mutex<HashSet<String>>,
    wakeup: Notify,
    shutting_down: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FineTuning {
    pub(crate) fn new(config: FineTuningConfig) -> FineTuning {
        let worker_id = format!(
            "{}/{}-{}",
            config.replica_id,
            std::process::id(),
            aiaas_types::new_id()
        );
        FineTuning {
            inner: Arc::new(State {
                config,
                worker_id,
                running: Mutex::new(HashMap::new()),
                validating: Mutex::new(HashSet::new()),
                wakeup: Notify::new(),
                shutting_down: AtomicBool::new(false),
                workers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Start a job: checked, stored `validating_files`, validated in the background.
    pub async fn create(&self, principal: &Principal, req: FineTuneRequest) -> Result<FineTuneJob> {
        require(principal, Permission::Train)?;
        let checked = self.check_request(principal, &req).await?;
        let job = self
            .inner
            .config
            .meta
            .insert_job(&NewJob {
                kind: JobKind::FineTune,
                tenant_id: principal.tenant_id.clone(),
                model_name: checked.base,
                dataset_id: req.training_file,
                test_dataset_id: req.validation_file,
                config: serde_json::to_value(&checked.config)
                    .map_err(|e| CoreError::Internal(format!("job config: {e}")))?,
                deploy: false,
            })
            .await?;
        tracing::info!(job = %job.id, base = %job.model_name, "fine-tuning job created");
        self.append_event(&job.id, "info", "Created fine-tuning job", None)
            .await;
        self.spawn_validation(job.clone());
        Ok(FineTuneJob::of(job))
    }

    pub async fn list(
        &self,
        principal: &Principal,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<FineTuneJob>> {
        require(principal, Permission::ReadData)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let mut jobs = self
            .inner
            .config
            .meta
            .jobs_page(
                JobKind::FineTune,
                &principal.tenant_id,
                after,
                limit as i64 + 1,
            )
            .await?;
        let has_more = jobs.len() > limit;
        jobs.truncate(limit);
        let mut items = Vec::with_capacity(jobs.len());
        for j in jobs {
            items.push(self.view(j).await);
        }
        Ok(Page { items, has_more })
    }

    pub async fn get(&self, principal: &Principal, id: &str) -> Result<FineTuneJob> {
        require(principal, Permission::ReadData)?;
        let job = self.visible(principal, id).await?;
        Ok(self.view(job).await)
    }

    pub async fn cancel(&self, principal: &Principal, id: &str) -> Result<FineTuneJob> {
        require(principal, Permission::Train)?;
        let job = self.visible(principal, id).await?;
        if job.status.is_terminal() {
            return Err(CoreError::Conflict(format!(
                "job {id} has already finished ({})",
                job.status.as_str()
            )));
        }
        self.inner.config.meta.request_cancel(id).await?;
        if let Some(flag) = lock(&self.inner.running).get(id) {
            flag.store(true, Ordering::SeqCst);
        }
        if job.status != JobStatus::Running {
            self.append_event(id, "info", "The job was cancelled", None)
                .await;
        }
        self.get(principal, id).await
    }

    /// A page of a job's events, newest first, after the event `after` (an id from
    /// the previous page).
    pub async fn events(
        &self,
        principal: &Principal,
        id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<FineTuneEvent>> {
        require(principal, Permission::ReadData)?;
        let job = self.visible(principal, id).await?;
        let before = match after {
            Some(a) => Some(event_seq(&job.id, a).ok_or_else(|| {
                CoreError::InvalidInput(format!("after: {a:?} is not an event of job {id}"))
            })?),
            None => None,
        };
        let limit = limit.clamp(1, MAX_PAGE);
        let mut rows = self
            .inner
            .config
            .meta
            .job_events_page(&job.id, before, limit as i64 + 1)
            .await?;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let items = rows
            .into_iter()
            .map(|r| FineTuneEvent {
                id: event_id(&job.id, r.seq),
                created_at: r.at,
                level: r.event["level"].as_str().unwrap_or("info").to_string(),
                message: r.event["message"].as_str().unwrap_or_default().to_string(),
                kind: r.event["type"].as_str().unwrap_or("message").to_string(),
                data: r.event["data"].clone(),
            })
            .collect();
        Ok(Page { items, has_more })
    }

    /// A page of a job's checkpoints, the latest step first.
    pub async fn checkpoints(
        &self,
        principal: &Principal,
        id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<FineTuneCheckpoint>> {
        require(principal, Permission::ReadData)?;
        let job = self.visible(principal, id).await?;
        let name = self.fine_tuned_name(&job).await?;
        let mut all = self.inner.config.meta.checkpoints(&job.id).await?;
        if let Some(a) = after {
            let at = all.iter().position(|c| c.id == a).ok_or_else(|| {
                CoreError::InvalidInput(format!("after: {a:?} is not a checkpoint of job {id}"))
            })?;
            all.drain(..=at);
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let has_more = all.len() > limit;
        all.truncate(limit);
        let items = all
            .into_iter()
            .map(|c| FineTuneCheckpoint {
                model: format!("{name}{CHECKPOINT_MARK}{}", c.step),
                id: c.id,
                job_id: c.job_id,
                created_at: c.created_at,
                step: c.step,
                metrics: c.metrics,
            })
            .collect();
        Ok(Page { items, has_more })
    }

    /// The caller's tenant's fine-tuned models.
    pub async fn models(&self, principal: &Principal) -> Result<Vec<FineTunedModel>> {
        require(principal, Permission::ReadModels)?;
        let meta = &self.inner.config.meta;
        let mut out = Vec::new();
        for m in meta.models(Some(&principal.tenant_id)).await? {
            if !is_fine_tuned_name(&m.name) || !principal.may_call_model(&m.name) {
                continue;
            }
            let versions = meta.model_versions(&m.id).await?;
            if let Some(v) = versions.iter().find(|v| v.format == Format::LoraAdapter) {
                out.push(FineTunedModel {
                    base: v.architecture.clone(),
                    task: m.task,
                    name: m.name,
                    created_at: m.created_at,
                });
            }
        }
        Ok(out)
    }

    /// A checkpoint of one of the caller's tenant's jobs, as a model (`ft:...:ckpt-step-N`).
    pub async fn checkpoint_model(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<FineTunedModel> {
        require(principal, Permission::ReadModels)?;
        let meta = &self.inner.config.meta;
        let (base, checkpoint) = checkpoint_of(meta, &principal.tenant_id, name).await?;
        let task = meta
            .library_model(&base)
            .await?
            .map_or(aiaas_types::Task::Chat, |r| r.task);
        Ok(FineTunedModel {
            base,
            task,
            name: name.to_string(),
            created_at: checkpoint.created_at,
        })
    }

    /// Delete a fine-tuned model of the caller's tenant (its adapter's files too).
    pub async fn delete_model(&self, principal: &Principal, name: &str) -> Result<()> {
        require(principal, Permission::Deploy)?;
        if !is_fine_tuned_name(name) {
            let library = self.inner.config.meta.library_model(name).await?;
            return Err(match library {
                Some(_) => CoreError::InvalidInput(format!(
                    "{name:?} is a library model, not a fine-tuned one: an admin removes it with DELETE /api/v1/library/{{name}}"
                )),
                None => CoreError::NotFound(format!("no model {name:?}")),
            });
        }
        base_of(&self.inner.config.meta, &principal.tenant_id, name).await?;
        self.inner.config.models.delete(principal, name).await
    }

    /// A job of the caller's tenant (any other, or a classifier job, is a 404 alike).
    async fn visible(&self, principal: &Principal, id: &str) -> Result<JobRecord> {
        match self.inner.config.meta.job(id).await? {
            Some(j) if j.kind == JobKind::FineTune && principal.sees_tenant(&j.tenant_id) => Ok(j),
            _ => Err(CoreError::NotFound(format!("no fine-tuning job {id:?}"))),
        }
    }

    /// The job as shown, with its estimated end while it runs.
    async fn view(&self, job: JobRecord) -> FineTuneJob {
        let running = job.status == JobStatus::Running;
        let id = job.id.clone();
        let mut view = FineTuneJob::of(job);
        if running {
            if let Ok(events) = self.inner.config.meta.job_events_page(&id, None, 1).await {
                let latest = events.first().map(|e| &e.event["data"]);
                view.estimated_finish = latest.and_then(|d| d["estimated_finish"].as_i64());
            }
        }
        view
    }

    /// The name the job's model has (or will have).
    async fn fine_tuned_name(&self, job: &JobRecord) -> Result<String> {
        let tenant = self
            .inner
            .config
            .meta
            .tenant(&job.tenant_id)
            .await?
            .map_or_else(|| job.tenant_id.clone(), |t| t.name);
        let config: JobConfig = serde_json::from_value(job.config.clone())
            .map_err(|e| CoreError::Internal(format!("stored job config: {e}")))?;
        Ok(fine_tuned_name(
            &job.model_name,
            &tenant,
            config.suffix.as_deref(),
            &job.id,
        ))
    }

    /// Append an event (`type` message, or metrics with `data`).
    pub(crate) async fn append_event(
        &self,
        job_id: &str,
        level: &str,
        message: &str,
        data: Option<serde_json::Value>,
    ) {
        let event = serde_json::json!({
            "level": level,
            "message": message,
            "type": if data.is_some() { "metrics" } else { "message" },
            "data": data.unwrap_or(serde_json::Value::Null),
        });
        if let Err(e) = self
            .inner
            .config
            .meta
            .append_job_event(job_id, &event)
            .await
        {
            tracing::warn!(job = %job_id, error = %e, "could not store a job event");
        }
    }

    /// Stop claiming jobs; running ones stop at their next step and go back to the
    /// queue (they resume from their latest checkpoint).
    pub(crate) fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        for flag in lock(&self.inner.running).values() {
            flag.store(true, Ordering::SeqCst);
        }
        self.inner.wakeup.notify_waiters();
    }

    pub(crate) async fn join_workers(&self) {
        let workers: Vec<_> = lock(&self.inner.workers).drain(..).collect();
        for w in workers {
            let _ = w.await;
        }
    }

    /// Validate jobs whose validation was left unfinished (its process died): any that
    /// waited for a minute. Validating twice is harmless: the first end wins.
    pub(crate) async fn reconcile(&self) {
        let before = aiaas_types::now_ms() - 60_000;
        match self.inner.config.meta.jobs_validating(before).await {
            Ok(jobs) => {
                for job in jobs {
                    self.spawn_validation(job);
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing jobs being validated failed"),
        }
    }
}

/// `ft:{base}:{tenant}:{suffix}:{id}`, the id's last 12 characters standing for it.
pub(crate) fn fine_tuned_name(base: &str, tenant: &str, suffix: Option<&str>, job: &str) -> String {
    let short = &job[job.len().saturating_sub(12)..];
    format!(
        "{FINE_TUNED_PREFIX}{base}:{tenant}:{}:{short}",
        suffix.unwrap_or("")
    )
}

fn event_id(job: &str, seq: i64) -> String {
    format!("ftevent-{}-{seq}", job.trim_start_matches("ftjob-"))
}

fn event_seq(job: &str, id: &str) -> Option<i64> {
    let rest = id.strip_prefix("ftevent-")?;
    let (j, seq) = rest.rsplit_once('-')?;
    (j == job.trim_start_matches("ftjob-"))
        .then(|| seq.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_read_back_for_their_job_only() {
        let job = "ftjob-0193abcd";
        let id = event_id(job, 42);
        assert_eq!(event_seq(job, &id), Some(42));
        assert_eq!(event_seq("ftjob-other", &id), None);
        assert_eq!(event_seq(job, "ftevent-0193abcd-x"), None);
    }

    #[test]
    fn checkpoint_names_are_a_fine_tuned_name_and_a_step() {
        assert_eq!(
            checkpoint_name("ft:smollm2:acme:support:456789abcdef:ckpt-step-12"),
            Some(("ft:smollm2:acme:support:456789abcdef", 12))
        );
        assert_eq!(checkpoint_name("ft:smollm2:acme::abc"), None);
        assert_eq!(checkpoint_name("smollm2:ckpt-step-3"), None);
        assert_eq!(checkpoint_name("ft:m:t::abc:ckpt-step-x"), None);
        assert_eq!(checkpoint_name("ft:m:t::abc:ckpt-step-0"), None);
    }

    #[test]
    fn fine_tuned_names_carry_base_tenant_suffix_and_job() {
        let name = fine_tuned_name("smollm2", "acme", Some("support"), "ftjob-0123456789abcdef");
        assert_eq!(name, "ft:smollm2:acme:support:456789abcdef");
        assert!(is_fine_tuned_name(&name));
        assert_eq!(
            fine_tuned_name("m", "t", None, "ftjob-abc"),
            "ft:m:t::ftjob-abc"
        );
    }
}
