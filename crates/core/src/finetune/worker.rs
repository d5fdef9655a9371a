//! Fine-tuning workers: claim a queued job (the classifier jobs' claim and lease, on
//! rows of kind `fine-tune`), train it on a blocking thread, report each step's metrics
//! as an event, save checkpoints (at each epoch's end and every `checkpoint_every`),
//! and register the adapter as the tenant's fine-tuned model. A job taken over (its
//! replica died, or shut down) resumes from its latest checkpoint: the trainer's state
//! restores the step, the optimiser and the data order, so it ends as it would have.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiaas_engine::llm::{ChatMessage, LlmModel};
use aiaas_finetune::{Base, Sequence, TrainOptions, Trainer};
use aiaas_store::{CheckpointRecord, JobOutcome, JobRecord, NewModelVersion};
use aiaas_types::Format;
use serde_json::json;
use tokio::runtime::Handle;

use super::validate::BASE_LEARNING_RATE;
use super::{fine_tuned_name, lock, FineTuning, JobConfig, JobError};
use crate::files::{Example, Examples};
use crate::library::ADAPTER_FILE;

/// Jobs interrupted this many times are not retried.
const MAX_ATTEMPTS: i64 = 3;

/// Why a job ended without succeeding.
enum End {
    /// Cancelled, shutting down, or its lease lost.
    Stopped,
    Failed(JobError),
}

fn failed(code: &str, message: impl Into<String>) -> End {
    End::Failed(JobError::new(code, message, None))
}

fn internal(e: impl std::fmt::Display) -> End {
    tracing::warn!(error = %e, "fine-tuning failed");
    failed("training_failed", format!("internal error: {e}"))
}

/// What a finished run gives.
struct Trained {
    adapter: Vec<u8>,
    report: serde_json::Value,
}

/// What the blocking trainer needs to report and checkpoint.
struct Run {
    ft: FineTuning,
    handle: Handle,
    job_id: String,
    worker: String,
    attempt: i64,
    tenant_id: String,
    cancel: Arc<AtomicBool>,
    every: Duration,
}

impl Run {
    fn event(&self, level: &str, message: &str, data: Option<serde_json::Value>) {
        self.handle
            .block_on(self.ft.append_event(&self.job_id, level, message, data));
    }

    /// Seal the trainer's state and its adapter, then record the checkpoint (only while
    /// this worker holds the job).
    fn checkpoint(&self, trainer: &Trainer, metrics: serde_json::Value) -> Result<(), End> {
        let state = trainer.checkpoint().map_err(internal)?;
        let adapter = trainer.adapter_gguf().map_err(internal)?;
        let prefix = format!(
            "finetune/{}/{}/a{}-step-{}",
            self.tenant_id, self.job_id, self.attempt, state.step
        );
        let artifacts = &self.ft.inner.config.artifacts;
        let (state_key, adapter_key) = (
            format!("{prefix}/trainer.safetensors"),
            format!("{prefix}/{ADAPTER_FILE}"),
        );
        artifacts.put(&state_key, &state.bytes).map_err(internal)?;
        artifacts.put(&adapter_key, &adapter).map_err(internal)?;
        let record = CheckpointRecord {
            id: format!("ftckpt-{}", aiaas_types::new_id().replace('-', "")),
            job_id: self.job_id.clone(),
            step: state.step as i64,
            metrics,
            artifact_key: state_key,
            adapter_key,
            created_at: aiaas_types::now_ms(),
        };
        let meta = &self.ft.inner.config.meta;
        match self
            .handle
            .block_on(meta.insert_checkpoint(&self.worker, &record))
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(End::Stopped),
            Err(e) => Err(internal(e)),
        }
    }
}

impl FineTuning {
    pub(crate) fn spawn_workers(&self) {
        let n = self.inner.config.workers;
        let mut workers = lock(&self.inner.workers);
        for i in 0..n {
            let p = self.clone();
            let worker = format!("{}#ft{i}", self.inner.worker_id);
            workers.push(tokio::spawn(async move { p.worker(worker).await }));
        }
    }

    fn lease_ms(&self) -> i64 {
        self.inner
            .config
            .lease
            .as_millis()
            .clamp(1000, i64::MAX as u128) as i64
    }

    async fn worker(&self, worker: String) {
        let meta = self.inner.config.meta.clone();
        while !self.inner.shutting_down.load(Ordering::SeqCst) {
            let claimed = meta
                .claim_next_job_of(aiaas_store::JobKind::FineTune, &worker, self.lease_ms())
                .await;
            match claimed {
                Ok(Some(job)) if job.attempts > MAX_ATTEMPTS => {
                    let error = JobError::new(
                        "interrupted",
                        format!("interrupted {} times; not retried", job.attempts - 1),
                        None,
                    );
                    let outcome = JobOutcome::Failed(error.to_stored());
                    if let Err(e) = meta.finish_job(&job.id, &worker, &outcome).await {
                        tracing::error!(job = %job.id, error = %e, "recording a failed job failed");
                    }
                }
                Ok(Some(job)) => self.run_job(job, &worker).await,
                Ok(None) => {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), self.inner.wakeup.notified())
                            .await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming a fine-tuning job failed");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    async fn run_job(&self, job: JobRecord, worker: &str) {
        let id = job.id.clone();
        tracing::info!(job = %id, base = %job.model_name, attempt = job.attempts, "fine-tuning job started");
        let lost = Arc::new(AtomicBool::new(false));
        let cancel = Arc::new(AtomicBool::new(job.cancel_requested));
        lock(&self.inner.running).insert(id.clone(), cancel.clone());
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            cancel.store(true, Ordering::SeqCst);
        }
        let watcher = crate::jobs::watch_job(
            self.inner.config.meta.clone(),
            &id,
            worker,
            self.lease_ms(),
            cancel.clone(),
            lost.clone(),
        );
        let outcome = self.train_and_register(&job, worker, cancel).await;
        watcher.abort();
        lock(&self.inner.running).remove(&id);
        if lost.load(Ordering::SeqCst) {
            tracing::warn!(job = %id, "the job's lease was taken by another replica; its result is not recorded here");
            return;
        }
        self.record_end(&id, worker, outcome).await;
    }

    async fn record_end(
        &self,
        id: &str,
        worker: &str,
        outcome: Result<(serde_json::Value, i64), End>,
    ) {
        let meta = &self.inner.config.meta;
        let stored = match outcome {
            Err(End::Stopped) if self.inner.shutting_down.load(Ordering::SeqCst) => {
                self.append_event(
                    id,
                    "info",
                    "The server is shutting down; the job goes back to the queue and resumes from its latest checkpoint",
                    None,
                )
                .await;
                meta.release_job(id, worker).await
            }
            Err(End::Stopped) => {
                let done = meta.finish_job(id, worker, &JobOutcome::Cancelled).await;
                if let Ok(true) = done {
                    self.append_event(id, "info", "The job was cancelled", None)
                        .await;
                }
                done
            }
            Err(End::Failed(e)) => {
                tracing::warn!(job = %id, error = %e.message, "fine-tuning job failed");
                let done = meta
                    .finish_job(id, worker, &JobOutcome::Failed(e.to_stored()))
                    .await;
                if let Ok(true) = done {
                    self.append_event(id, "error", &e.message, None).await;
                }
                done
            }
            Ok((report, version)) => {
                let outcome = JobOutcome::Succeeded {
                    report: report.clone(),
                    model_version: version,
                };
                let done = meta.finish_job(id, worker, &outcome).await;
                if let Ok(true) = done {
                    let message = format!(
                        "The job has successfully completed: {}",
                        report["fine_tuned_model"].as_str().unwrap_or_default()
                    );
                    self.append_event(id, "info", &message, None).await;
                }
                done
            }
        };
        match stored {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job = %id, "the job's end was not recorded: another worker holds it now")
            }
            Err(e) => tracing::error!(job = %id, error = %e, "recording the end of a job failed"),
        }
    }

    async fn train_and_register(
        &self,
        job: &JobRecord,
        worker: &str,
        cancel: Arc<AtomicBool>,
    ) -> Result<(serde_json::Value, i64), End> {
        let c = &self.inner.config;
        let config: JobConfig = serde_json::from_value(job.config.clone()).map_err(internal)?;
        let base = c
            .meta
            .library_model(&job.model_name)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                failed(
                    "base_model_unavailable",
                    format!("model {} was removed from the library", job.model_name),
                )
            })?;
        let tenant = c
            .meta
            .tenant(&job.tenant_id)
            .await
            .map_err(internal)?
            .map_or_else(|| job.tenant_id.clone(), |t| t.name);
        let name = fine_tuned_name(&job.model_name, &tenant, config.suffix.as_deref(), &job.id);
        let training = self
            .read_file(job, &job.dataset_id, "invalid_training_file")
            .await?;
        let validation = match &job.test_dataset_id {
            Some(v) => Some(self.read_file(job, v, "invalid_validation_file").await?),
            None => None,
        };
        let resume = match c.meta.checkpoints(&job.id).await.map_err(internal)?.first() {
            Some(latest) => {
                let (artifacts, key) = (c.artifacts.clone(), latest.artifact_key.clone());
                let bytes = tokio::task::spawn_blocking(move || artifacts.get(&key))
                    .await
                    .map_err(internal)?
                    .map_err(internal)?;
                Some((bytes, latest.metrics.clone()))
            }
            None => None,
        };
        let weights = self
            .inner
            .config
            .library
            .weights_view(&base)
            .await
            .map_err(|e| failed("base_model_unavailable", e.to_string()))?;
        let run = Run {
            ft: self.clone(),
            handle: Handle::current(),
            job_id: job.id.clone(),
            worker: worker.to_string(),
            attempt: job.attempts,
            tenant_id: job.tenant_id.clone(),
            cancel: cancel.clone(),
            every: c.checkpoint_every,
        };
        let path = weights.path().join("model.gguf");
        let trained = tokio::task::spawn_blocking(move || {
            let out = train(&run, &path, &config, &training, validation.as_ref(), resume);
            drop(weights);
            out
        })
        .await
        .map_err(internal)??;
        if cancel.load(Ordering::SeqCst) {
            return Err(End::Stopped);
        }
        if !c
            .meta
            .renew_job_lease(&job.id, worker, self.lease_ms())
            .await
            .map_err(internal)?
        {
            return Err(End::Stopped);
        }
        let prefix = format!(
            "finetune/{}/{}/a{}-model",
            job.tenant_id, job.id, job.attempts
        );
        let (artifacts, key) = (c.artifacts.clone(), format!("{prefix}/{ADAPTER_FILE}"));
        let adapter = trained.adapter;
        tokio::task::spawn_blocking(move || artifacts.put(&key, &adapter))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let mut report = trained.report;
        report["fine_tuned_model"] = json!(name);
        let (csv, rows) = self.results_csv(&job.id).await.map_err(internal)?;
        let results = c
            .files
            .create_results(
                &job.tenant_id,
                &format!("step_metrics_{}.csv", job.id),
                rows,
                csv,
            )
            .await
            .map_err(internal)?;
        report["result_files"] = json!([results.id]);
        let version = c
            .meta
            .insert_model_version(&NewModelVersion {
                tenant_id: job.tenant_id.clone(),
                model_name: name.clone(),
                task: base.task,
                format: Format::LoraAdapter,
                architecture: base.name.clone(),
                labels: Vec::new(),
                artifact_prefix: prefix,
                files: vec![ADAPTER_FILE.to_string()],
                report: report.clone(),
                config: job.config.clone(),
                job_id: Some(job.id.clone()),
                dataset_id: Some(job.dataset_id.clone()),
            })
            .await
            .map_err(internal)?;
        Ok((report, version.version))
    }

    /// OpenAI's results file: a CSV row per step (`step, train_loss, train_accuracy,
    /// valid_loss, valid_mean_token_accuracy`; empty where not measured), from the
    /// job's metrics events (a step replayed after a resume: its latest).
    async fn results_csv(&self, job_id: &str) -> crate::Result<(Vec<u8>, usize)> {
        let meta = &self.inner.config.meta;
        let mut events = Vec::new();
        let mut before = None;
        loop {
            let page = meta.job_events_page(job_id, before, 1000).await?;
            let Some(last) = page.last() else { break };
            before = Some(last.seq);
            events.extend(page);
        }
        events.sort_by_key(|e| e.seq);
        let mut steps = std::collections::BTreeMap::new();
        for e in events {
            let data = &e.event["data"];
            if let Some(step) = data["step"].as_u64() {
                steps.insert(step, data.clone());
            }
        }
        let cell = |v: &serde_json::Value| v.as_f64().map(|x| x.to_string()).unwrap_or_default();
        let mut csv =
            String::from("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n");
        for (step, d) in &steps {
            csv.push_str(&format!(
                "{step},{},{},{},{}\n",
                cell(&d["train_loss"]),
                cell(&d["train_mean_token_accuracy"]),
                cell(&d["valid_loss"]),
                cell(&d["valid_mean_token_accuracy"]),
            ));
        }
        Ok((csv.into_bytes(), steps.len()))
    }

    async fn read_file(&self, job: &JobRecord, id: &str, code: &str) -> Result<Examples, End> {
        let files = &self.inner.config.files;
        let file = files
            .of_tenant(&job.tenant_id, id)
            .await
            .map_err(internal)?
            .ok_or_else(|| failed(code, format!("file {id} was deleted")))?;
        files
            .examples(&file)
            .await
            .map_err(|e| failed(code, format!("file {id}: {e}")))
    }
}

/// The examples as the model reads them, cut to `max_tokens`; how many were cut.
fn sequences(
    llm: &LlmModel,
    examples: &Examples,
    max_tokens: usize,
    code: &str,
) -> Result<(Vec<Sequence>, usize), End> {
    let mut out = Vec::with_capacity(examples.examples.len());
    let mut cut = 0;
    for (i, example) in examples.examples.iter().enumerate() {
        let tokens = match example {
            Example::Chat { messages } => {
                let chat: Vec<ChatMessage> = messages
                    .iter()
                    .map(|m| {
                        let role = serde_json::to_value(m.role).unwrap_or_default();
                        ChatMessage::new(role.as_str().unwrap_or("user"), &m.content)
                    })
                    .collect();
                let learn: Vec<bool> = messages.iter().map(|m| m.learnt()).collect();
                llm.chat_example_tokens(&chat, &learn)
            }
            Example::Completion { prompt, completion } => {
                llm.completion_example_tokens(prompt, completion)
            }
        };
        let (mut ids, mut learn) =
            tokens.map_err(|e| failed(code, format!("example {}: {e}", i + 1)))?;
        if ids.len() > max_tokens {
            ids.truncate(max_tokens);
            learn.truncate(max_tokens);
            cut += 1;
        }
        if !learn.contains(&true) {
            continue;
        }
        out.push(Sequence {
            tokens: ids.into_iter().map(|t| t as u32).collect(),
            learn,
        });
    }
    if out.is_empty() {
        return Err(failed(
            code,
            "no example teaches a token (every reply has weight 0 or was cut)",
        ));
    }
    Ok((out, cut))
}

/// Train (blocking): from the start or from a checkpoint, until done or stopped.
fn train(
    run: &Run,
    weights: &std::path::Path,
    config: &JobConfig,
    training: &Examples,
    validation: Option<&Examples>,
    resume: Option<(Vec<u8>, serde_json::Value)>,
) -> Result<Trained, End> {
    let unsupported = |e: &dyn std::fmt::Display| {
        End::Failed(JobError::new(
            "base_model_unsupported",
            format!("the base model cannot be fine-tuned: {e}"),
            Some("model"),
        ))
    };
    let base = Base::load(weights).map_err(|e| unsupported(&e))?;
    let llm = LlmModel::load(weights).map_err(|e| unsupported(&e))?;
    let (train_set, cut) = sequences(&llm, training, config.max_tokens, "invalid_training_file")?;
    let valid_set = match validation {
        Some(v) => Some(sequences(&llm, v, config.max_tokens, "invalid_validation_file")?.0),
        None => None,
    };
    if cut > 0 {
        run.event(
            "warn",
            &format!(
                "{cut} training examples were longer than {} tokens and were cut",
                config.max_tokens
            ),
            None,
        );
    }
    let h = &config.hyperparameters;
    let options = TrainOptions {
        lora: config.lora.clone(),
        epochs: h["n_epochs"].as_u64().unwrap_or(3) as usize,
        batch_size: h["batch_size"].as_u64().unwrap_or(1).max(1) as usize,
        learning_rate: BASE_LEARNING_RATE * h["learning_rate_multiplier"].as_f64().unwrap_or(1.0),
        warmup_ratio: 0.1,
        weight_decay: 0.0,
        seed: config.seed,
    };
    let (mut trainer, mut last) = match resume {
        Some((bytes, metrics)) => {
            let t = Trainer::resume(&base, &bytes).map_err(internal)?;
            run.event(
                "info",
                &format!("Resumed from the checkpoint at step {}", t.step()),
                None,
            );
            (t, metrics)
        }
        None => {
            let t = Trainer::new(&base, options, train_set.len()).map_err(internal)?;
            run.event(
                "info",
                &format!(
                    "Fine-tuning started: {} examples, {} steps",
                    train_set.len(),
                    t.total_steps()
                ),
                None,
            );
            (t, json!({}))
        }
    };
    let mut trained_tokens = last["trained_tokens"].as_u64().unwrap_or(0);
    let per_epoch = trainer.steps_per_epoch();
    let total = trainer.total_steps();
    let started = Instant::now();
    let first_step = trainer.step();
    let mut last_checkpoint = Instant::now();
    while let Some((epoch, batch)) = trainer.next_batch() {
        if run.cancel.load(Ordering::SeqCst) {
            return Err(End::Stopped);
        }
        let batch: Vec<&Sequence> = batch.iter().map(|&i| &train_set[i]).collect();
        let step = trainer.train_step(epoch, &batch).map_err(internal)?;
        trained_tokens += step.tokens as u64;
        let done = step.step - first_step;
        let per_step = started.elapsed().as_secs_f64() / done.max(1) as f64;
        let finish = aiaas_types::now_ms() / 1000 + (per_step * (total - step.step) as f64) as i64;
        let mut data = json!({
            "step": step.step,
            "total_steps": total,
            "epoch": epoch,
            "train_loss": step.train_loss,
            "train_mean_token_accuracy": step.token_accuracy,
            "learning_rate": step.learning_rate,
            "trained_tokens": trained_tokens,
            "estimated_finish": finish,
        });
        let epoch_end = step.step % per_epoch == 0 || step.step == total;
        if epoch_end {
            if let Some(v) = &valid_set {
                let (loss, accuracy) = trainer.evaluate(v).map_err(internal)?;
                data["valid_loss"] = json!(loss);
                data["valid_mean_token_accuracy"] = json!(accuracy);
                data["full_valid_loss"] = json!(loss);
                data["full_valid_mean_token_accuracy"] = json!(accuracy);
            }
        }
        run.event(
            "info",
            &format!(
                "Step {}/{total}: training loss={:.4}",
                step.step, step.train_loss
            ),
            Some(data.clone()),
        );
        if (epoch_end || last_checkpoint.elapsed() >= run.every) && step.step < total {
            run.checkpoint(&trainer, data.clone())?;
            last_checkpoint = Instant::now();
        }
        last = data;
    }
    if trainer.step() > first_step {
        run.checkpoint(&trainer, last.clone())?;
    }
    let adapter = trainer.adapter_gguf().map_err(internal)?;
    let report = json!({
        "trained_tokens": trained_tokens,
        "steps": total,
        "train_loss": last["train_loss"],
        "valid_loss": last["valid_loss"],
        "train_mean_token_accuracy": last["train_mean_token_accuracy"],
        "valid_mean_token_accuracy": last["valid_mean_token_accuracy"],
        "training_examples": train_set.len(),
        "lora": config.lora,
        "options": trainer.options(),
    });
    Ok(Trained { adapter, report })
}
