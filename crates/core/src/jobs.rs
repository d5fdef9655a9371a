//! Training jobs: submission, the worker pool that runs them off the async runtime,
//! progress events, cancellation and recovery after a restart.
//!
//! A job's path: `submit_job` stores it `queued` -> a worker claims it atomically ->
//! the data set is read and `aiaas_train::train` runs on a blocking thread, its events
//! appended to the job's log -> the model files are stored, then the version row is
//! written (files first, row last) -> optionally deployed -> the job is `succeeded`.
//! Cancellation or shutdown stops training at the next batch; shutdown puts the job
//! back in the queue so the next start (or another replica) resumes it.
//!
//! A claim is a lease (`PlatformConfig::job_lease`), renewed while the job trains. A
//! replica that dies stops renewing; once the lease runs out another replica claims the
//! job and trains it again from the start. A worker that finds its lease taken stops and
//! records nothing. Each attempt writes its files under its own prefix.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiaas_store::{ArtifactStore, JobOutcome, Metadata, NewJob, NewModelVersion};
use aiaas_types::{Permission, Principal, TrainConfig, TrainEvent};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::auth::{check_name, require};
use crate::datasets::Datasets;
use crate::models::Models;
use crate::{CoreError, JobEventRecord, JobRecord, Result};

/// Why a running job ended without succeeding.
enum JobEnd {
    /// Cancelled, or interrupted by a shutdown (then released to the queue).
    Stopped,
    Failed(CoreError),
}

impl From<CoreError> for JobEnd {
    fn from(e: CoreError) -> Self {
        JobEnd::Failed(e)
    }
}

impl From<aiaas_store::StoreError> for JobEnd {
    fn from(e: aiaas_store::StoreError) -> Self {
        JobEnd::Failed(e.into())
    }
}

impl From<tokio::task::JoinError> for JobEnd {
    fn from(e: tokio::task::JoinError) -> Self {
        JobEnd::Failed(e.into())
    }
}

/// Jobs that failed this many times in a row (e.g. killed mid-run) are not retried.
const MAX_ATTEMPTS: i64 = 3;

/// A training job as submitted.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Dataset id or name.
    pub dataset: String,
    /// Optional held-out test dataset (id or name), evaluated after training.
    pub test_dataset: Option<String>,
    /// Name of the model the new version belongs to.
    pub model: String,
    pub config: TrainConfig,
    /// Deploy the new version when training succeeds.
    pub deploy: bool,
}

/// The training jobs service: the queue, this process's workers and their cancel flags.
#[derive(Clone)]
pub struct TrainingJobs {
    inner: Arc<JobsState>,
}

/// What the training jobs service is built from.
pub(crate) struct JobsConfig {
    pub(crate) meta: Metadata,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
    /// Where jobs read their data sets.
    pub(crate) datasets: Datasets,
    /// Where a trained version is deployed (`deploy: true`).
    pub(crate) models: Models,
    /// This process's name among replicas, in job logs.
    pub(crate) replica_id: String,
    /// Jobs run at once by this process.
    pub(crate) workers: usize,
    /// How long a claimed job stays this replica's without a renewal.
    pub(crate) lease: Duration,
}

struct JobsState {
    config: JobsConfig,
    /// This process's name as a claimer of jobs.
    worker_id: String,
    /// Cancel flags of the jobs this process is running.
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    job_wakeup: Notify,
    shutting_down: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl TrainingJobs {
    pub(crate) fn new(config: JobsConfig) -> TrainingJobs {
        let worker_id = format!(
            "{}/{}-{}",
            config.replica_id,
            std::process::id(),
            aiaas_types::new_id()
        );
        TrainingJobs {
            inner: Arc::new(JobsState {
                config,
                worker_id,
                running: Mutex::new(HashMap::new()),
                job_wakeup: Notify::new(),
                shutting_down: AtomicBool::new(false),
                workers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Stop claiming jobs; running ones stop at their next batch and go back to the
    /// queue.
    pub(crate) fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        for flag in self
            .inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            flag.store(true, Ordering::SeqCst);
        }
        self.inner.job_wakeup.notify_waiters();
    }

    /// Wait for this process's workers to end (after `begin_shutdown`).
    pub(crate) async fn join_workers(&self) {
        let workers: Vec<_> = self
            .inner
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for w in workers {
            let _ = w.await;
        }
    }

    pub async fn submit(&self, principal: &Principal, req: TrainRequest) -> Result<JobRecord> {
        require(principal, Permission::Train)?;
        check_name("model", &req.model)?;
        req.config.validate().map_err(CoreError::InvalidInput)?;
        if req.deploy {
            require(principal, Permission::Deploy)?;
        }
        let dataset = self
            .inner
            .config
            .datasets
            .find_dataset(principal, &req.dataset)
            .await?;
        let test = match &req.test_dataset {
            Some(t) => Some(
                self.inner
                    .config
                    .datasets
                    .find_dataset(principal, t)
                    .await?,
            ),
            None => None,
        };
        if let Some(t) = &test {
            if t.tenant_id != dataset.tenant_id {
                return Err(CoreError::InvalidInput(
                    "the test dataset must belong to the same tenant as the training dataset"
                        .into(),
                ));
            }
            let known = labels_of(&dataset);
            let unseen: Vec<String> = labels_of(t).difference(&known).cloned().collect();
            if !unseen.is_empty() {
                return Err(CoreError::InvalidInput(format!(
                    "the test dataset has labels the training dataset lacks: {}",
                    unseen.join(", ")
                )));
            }
        }
        if dataset.tenant_id != principal.tenant_id && !principal.is_admin() {
            return Err(CoreError::NotFound(format!("no dataset {:?}", req.dataset)));
        }
        let config = serde_json::to_value(&req.config)
            .map_err(|e| CoreError::Internal(format!("config: {e}")))?;
        let job = self
            .inner
            .config
            .meta
            .insert_job(&NewJob {
                kind: aiaas_store::JobKind::Classifier,
                tenant_id: dataset.tenant_id.clone(),
                model_name: req.model,
                dataset_id: dataset.id,
                test_dataset_id: test.map(|t| t.id),
                config,
                deploy: req.deploy,
            })
            .await?;
        tracing::info!(job = %job.id, model = %job.model_name, "training job queued");
        self.inner.job_wakeup.notify_one();
        Ok(job)
    }

    pub async fn list(&self, principal: &Principal) -> Result<Vec<JobRecord>> {
        require(principal, Permission::ReadData)?;
        let scope = (!principal.is_admin()).then_some(principal.tenant_id.as_str());
        Ok(self.inner.config.meta.jobs(scope).await?)
    }

    pub async fn get(&self, principal: &Principal, id: &str) -> Result<JobRecord> {
        require(principal, Permission::ReadData)?;
        match self.inner.config.meta.job(id).await? {
            Some(j) if principal.sees_tenant(&j.tenant_id) => Ok(j),
            _ => Err(CoreError::NotFound(format!("no job {id:?}"))),
        }
    }

    /// Events of a job after sequence number `after` (0 for all).
    pub async fn events(
        &self,
        principal: &Principal,
        id: &str,
        after: i64,
    ) -> Result<(JobRecord, Vec<JobEventRecord>)> {
        let job = self.get(principal, id).await?;
        let events = self.inner.config.meta.job_events_after(id, after).await?;
        Ok((job, events))
    }

    pub async fn cancel(&self, principal: &Principal, id: &str) -> Result<JobRecord> {
        require(principal, Permission::Train)?;
        let job = self.get(principal, id).await?;
        if job.status.is_terminal() {
            return Err(CoreError::Conflict(format!(
                "job {id} has already finished ({})",
                job.status.as_str()
            )));
        }
        self.inner.config.meta.request_cancel(id).await?;
        if let Some(flag) = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            flag.store(true, Ordering::SeqCst);
        }
        self.get(principal, id).await
    }

    /// On SQLite (one process owns the database): put jobs left `running` by a dead
    /// process back in the queue at once, or fail them after too many attempts. Returns
    /// how many were resumed. On PostgreSQL other replicas may be running them: their
    /// leases decide (a dead replica's jobs are claimed again once its lease runs out).
    pub(crate) async fn recover(&self) -> Result<usize> {
        let meta = &self.inner.config.meta;
        if meta.backend() != aiaas_store::Backend::Sqlite {
            return Ok(0);
        }
        let mut resumed = 0;
        for (id, attempts, worker) in meta.running_jobs().await? {
            if attempts >= MAX_ATTEMPTS {
                meta.finish_job(
                    &id,
                    &worker,
                    &JobOutcome::Failed(format!("interrupted {attempts} times; not retried")),
                )
                .await?;
                continue;
            }
            meta.requeue_job(&id, &worker).await?;
            let event = TrainEvent::Log {
                message: "the server stopped during training; the job was queued again".into(),
            };
            self.append_event(&id, &event).await;
            resumed += 1;
        }
        Ok(resumed)
    }

    pub(crate) fn spawn_workers(&self) {
        let n = self.inner.config.workers.max(1);
        let mut workers = self.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
        for i in 0..n {
            let p = self.clone();
            // Each worker claims under a name of its own, so a lease one of them lost is
            // never renewed by a sibling.
            let worker = format!("{}#{i}", self.inner.worker_id);
            workers.push(tokio::spawn(async move { p.job_worker(worker).await }));
        }
    }

    async fn job_worker(&self, worker: String) {
        while !self.inner.shutting_down.load(Ordering::SeqCst) {
            let lease = self.lease_ms();
            match self.inner.config.meta.claim_next_job(&worker, lease).await {
                Ok(Some(job)) if job.attempts > MAX_ATTEMPTS => {
                    // Claimed again after its replicas died this many times: give up.
                    let message = format!("interrupted {} times; not retried", job.attempts - 1);
                    if let Err(e) = self
                        .inner
                        .config
                        .meta
                        .finish_job(&job.id, &worker, &JobOutcome::Failed(message))
                        .await
                    {
                        tracing::error!(job = %job.id, error = %e, "recording a failed job failed");
                    }
                }
                Ok(Some(job)) => self.run_job(job, &worker).await,
                Ok(None) => {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        self.inner.job_wakeup.notified(),
                    )
                    .await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming a training job failed");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    fn lease_ms(&self) -> i64 {
        self.inner
            .config
            .lease
            .as_millis()
            .clamp(1000, i64::MAX as u128) as i64
    }

    async fn run_job(&self, job: JobRecord, worker: &str) {
        let id = job.id.clone();
        tracing::info!(job = %id, model = %job.model_name, attempt = job.attempts, "training job started");
        if job.attempts > 1 {
            self.append_event(
                &id,
                &TrainEvent::Log {
                    message: format!(
                        "resumed on replica {} (attempt {})",
                        self.inner.config.replica_id, job.attempts
                    ),
                },
            )
            .await;
        }
        let lost = Arc::new(AtomicBool::new(false));
        let cancel = Arc::new(AtomicBool::new(job.cancel_requested));
        self.inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), cancel.clone());
        // A claim that raced the start of a shutdown stops at once (and is released).
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            cancel.store(true, Ordering::SeqCst);
        }
        // Renews the lease (and follows cancel requests) until the job's end is recorded:
        // registering and deploying may wait on a model load.
        let watcher = self.spawn_job_watcher(&job.id, worker, cancel.clone(), lost.clone());
        let outcome = self
            .train_and_register(&job, worker, cancel.clone(), lost.clone())
            .await;
        watcher.abort();
        self.inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if lost.load(Ordering::SeqCst) {
            tracing::warn!(job = %id, "the job's lease was taken by another replica; its result is not recorded here");
            return;
        }
        self.record_end(&id, worker, outcome).await;
    }

    /// Record how a job this worker still holds ended (released to the queue when the
    /// server is shutting down).
    async fn record_end(
        &self,
        id: &str,
        worker: &str,
        outcome: Result<(serde_json::Value, i64), JobEnd>,
    ) {
        let meta = &self.inner.config.meta;
        let stored = match outcome {
            Err(JobEnd::Stopped) if self.inner.shutting_down.load(Ordering::SeqCst) => {
                self.append_event(
                    id,
                    &TrainEvent::Log {
                        message: "the server is shutting down; the job goes back to the queue \
                                  for another replica or the next start"
                            .into(),
                    },
                )
                .await;
                meta.release_job(id, worker).await
            }
            Err(JobEnd::Stopped) => meta.finish_job(id, worker, &JobOutcome::Cancelled).await,
            Err(JobEnd::Failed(e)) => {
                tracing::warn!(job = %id, error = %e, "training job failed");
                let message = match e {
                    CoreError::Internal(_) => "internal error; see the server log".to_string(),
                    other => other.to_string(),
                };
                meta.finish_job(id, worker, &JobOutcome::Failed(message))
                    .await
            }
            Ok((report, version)) => {
                tracing::info!(job = %id, version, "training job succeeded");
                meta.finish_job(
                    id,
                    worker,
                    &JobOutcome::Succeeded {
                        report,
                        model_version: version,
                    },
                )
                .await
            }
        };
        match stored {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                job = %id,
                "the job's end was not recorded: another worker holds it now (its lease ran out)"
            ),
            Err(e) => tracing::error!(job = %id, error = %e, "recording the end of a job failed"),
        }
    }

    /// Train, store the files, register the version, deploy if asked.
    async fn train_and_register(
        &self,
        job: &JobRecord,
        worker: &str,
        cancel: Arc<AtomicBool>,
        lost: Arc<AtomicBool>,
    ) -> Result<(serde_json::Value, i64), JobEnd> {
        let config: TrainConfig = serde_json::from_value(job.config.clone())
            .map_err(|e| CoreError::InvalidInput(format!("stored job config is invalid: {e}")))?;
        let meta = &self.inner.config.meta;
        let dataset = meta
            .dataset(&job.dataset_id)
            .await?
            .ok_or_else(|| CoreError::NotFound("the job's dataset was deleted".into()))?;
        let test =
            match &job.test_dataset_id {
                Some(t) => Some(meta.dataset(t).await?.ok_or_else(|| {
                    CoreError::NotFound("the job's test dataset was deleted".into())
                })?),
                None => None,
            };
        let trained = self
            .train(job, config, dataset, test, cancel.clone())
            .await?;
        if cancel.load(Ordering::SeqCst) {
            return Err(JobEnd::Stopped);
        }
        // Still this worker's job? (Its lease may have run out while it trained.)
        if !self
            .inner
            .config
            .meta
            .renew_job_lease(&job.id, worker, self.lease_ms())
            .await?
        {
            lost.store(true, Ordering::SeqCst);
            return Err(JobEnd::Stopped);
        }
        let report = serde_json::to_value(&trained.report)
            .map_err(|e| CoreError::Internal(format!("report: {e}")))?;
        let version = self.register_version(job, &trained, report.clone()).await?;
        if job.deploy {
            if let Err(e) = self
                .inner
                .config
                .models
                .deploy_version_of(&job.tenant_id, &job.model_name, version)
                .await
            {
                self.append_event(
                    &job.id,
                    &TrainEvent::Log {
                        message: format!("trained, but deploying failed: {e}"),
                    },
                )
                .await;
            }
        }
        Ok((report, version))
    }

    /// Read the data sets and train on a blocking thread, the events appended to the
    /// job's log as they come.
    async fn train(
        &self,
        job: &JobRecord,
        config: TrainConfig,
        dataset: crate::DatasetRecord,
        test: Option<crate::DatasetRecord>,
        cancel: Arc<AtomicBool>,
    ) -> Result<aiaas_train::TrainedModel, JobEnd> {
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel::<TrainEvent>();
        let p = self.clone();
        let job_id = job.id.clone();
        let event_writer = tokio::spawn(async move {
            while let Some(e) = events_rx.recv().await {
                p.append_event(&job_id, &e).await;
            }
        });
        let p = self.clone();
        let flag = cancel.clone();
        let trained = tokio::task::spawn_blocking(move || {
            let rows = p.inner.config.datasets.load_rows(&dataset)?;
            let test_rows = test
                .as_ref()
                .map(|t| p.inner.config.datasets.load_rows(t))
                .transpose()?;
            let stopped_or = |e: aiaas_train::TrainError| match e {
                aiaas_train::TrainError::Cancelled => JobEnd::Stopped,
                aiaas_train::TrainError::InvalidData(m)
                | aiaas_train::TrainError::InvalidConfig(m) => {
                    JobEnd::Failed(CoreError::InvalidInput(m))
                }
                other => JobEnd::Failed(CoreError::Internal(other.to_string())),
            };
            let on_event = move |e: TrainEvent| {
                let _ = events_tx.send(e);
            };
            let control = aiaas_train::TrainControl {
                cancel: &flag,
                on_event: &on_event,
            };
            aiaas_train::train(&config, &rows, test_rows.as_deref(), control).map_err(stopped_or)
        })
        .await;
        let _ = event_writer.await;
        trained?
    }

    async fn register_version(
        &self,
        job: &JobRecord,
        trained: &aiaas_train::TrainedModel,
        report: serde_json::Value,
    ) -> Result<i64> {
        // One prefix per attempt: an attempt cut short may have left files behind, and
        // stored objects are never overwritten.
        let prefix = format!(
            "models/{}/{}/{}-{}",
            job.tenant_id, job.model_name, job.id, job.attempts
        );
        let artifacts = self.inner.config.artifacts.clone();
        // The version's artifact is self-describing: weights and model description from
        // training, plus the job's configuration and the evaluation report.
        let mut files = trained.files.clone();
        files.insert("config.json".into(), pretty(&job.config));
        files.insert("report.json".into(), pretty(&report));
        let names: Vec<String> = files.keys().cloned().collect();
        let put_prefix = prefix.clone();
        tokio::task::spawn_blocking(move || {
            for (name, bytes) in &files {
                artifacts.put(&format!("{put_prefix}/{name}"), bytes)?;
            }
            Ok::<_, aiaas_store::StoreError>(())
        })
        .await??;
        let record = self
            .inner
            .config
            .meta
            .insert_model_version(&NewModelVersion {
                tenant_id: job.tenant_id.clone(),
                model_name: job.model_name.clone(),
                task: aiaas_types::Task::TextClassification,
                format: aiaas_types::Format::AiaasClassifier,
                architecture: trained.report.architecture.as_str().into(),
                labels: trained.report.labels.clone(),
                artifact_prefix: prefix,
                files: names,
                report,
                config: job.config.clone(),
                job_id: Some(job.id.clone()),
                dataset_id: Some(job.dataset_id.clone()),
            })
            .await?;
        Ok(record.version)
    }

    fn spawn_job_watcher(
        &self,
        job_id: &str,
        worker: &str,
        flag: Arc<AtomicBool>,
        lost: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        watch_job(
            self.inner.config.meta.clone(),
            job_id,
            worker,
            self.lease_ms(),
            flag,
            lost,
        )
    }

    pub(crate) async fn append_event(&self, job_id: &str, event: &TrainEvent) {
        let value = match serde_json::to_value(event) {
            Ok(v) => v,
            Err(_) => return,
        };
        if let Err(e) = self
            .inner
            .config
            .meta
            .append_job_event(job_id, &value)
            .await
        {
            tracing::warn!(job = %job_id, error = %e, "could not store a job event");
        }
    }
}

/// While a job runs: follow cancel requests made through the database (e.g. on another
/// replica) every second, and renew the job's lease every third of it. A renewal refused
/// means another worker owns the job now: the job stops (`lost`). A renewal that fails
/// (database away) is retried; the lease covers the gap.
pub(crate) fn watch_job(
    meta: Metadata,
    job_id: &str,
    worker: &str,
    lease: i64,
    flag: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let id = job_id.to_string();
    let worker = worker.to_string();
    let renew_every = Duration::from_millis((lease / 3).max(500) as u64);
    tokio::spawn(async move {
        let mut last_renewal = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1).min(renew_every)).await;
            if let Ok(true) = meta.cancel_requested(&id).await {
                flag.store(true, Ordering::SeqCst);
                return;
            }
            if last_renewal.elapsed() >= renew_every {
                match meta.renew_job_lease(&id, &worker, lease).await {
                    Ok(true) => last_renewal = std::time::Instant::now(),
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(job = %id, error = %e, "renewing a job's lease failed; retrying")
                    }
                }
            }
        }
    })
}

fn pretty(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

/// The labels of a dataset, from its stored statistics.
fn labels_of(d: &crate::DatasetRecord) -> std::collections::BTreeSet<String> {
    d.stats["class_balance"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["label"].as_str().map(str::to_string))
        .collect()
}
