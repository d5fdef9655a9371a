//! Training jobs and their event logs.
//!
//! Claiming is one atomic `UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING`: on
//! PostgreSQL the inner select takes the row with `FOR UPDATE SKIP LOCKED`, so concurrent
//! replicas each get a different job; SQLite's single writer serialises the statement.
//! A claim is a lease: the claiming worker renews it while it trains, and a running job
//! whose lease ran out is claimed again (its worker died). Every later write of a job's
//! state names the worker, so a worker that lost its lease cannot overwrite the state
//! written by the one that took over.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{
    parse_json, CheckpointRecord, JobEventRecord, JobKind, JobRecord, JobStatus, Metadata, NewJob,
    Result, StoreError,
};

const COLUMNS: &str =
    "id, kind, tenant_id, model_name, dataset_id, test_dataset_id, config, deploy, \
                       status, cancel_requested, error, report, model_version, attempts, \
                       claimed_by, created_at, started_at, finished_at";

/// How a job ended.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    Succeeded {
        report: serde_json::Value,
        model_version: i64,
    },
    Failed(String),
    Cancelled,
}

impl Metadata {
    /// Store a new job: a classifier job `queued`, a fine-tuning job `validating_files`
    /// (OpenAI's `ftjob-` ids).
    pub async fn insert_job(&self, job: &NewJob) -> Result<JobRecord> {
        let (id, status) = match job.kind {
            JobKind::Classifier => (aiaas_types::new_id(), JobStatus::Queued),
            JobKind::FineTune => (
                format!("ftjob-{}", aiaas_types::new_id().replace('-', "")),
                JobStatus::ValidatingFiles,
            ),
        };
        sqlx::query(&format!(
            "INSERT INTO jobs ({COLUMNS}) VALUES ($1, $10, $2, $3, $4, $5, $6, $7, $8, 0, NULL, NULL, NULL, 0, NULL, $9, NULL, NULL)"
        ))
        .bind(&id)
        .bind(&job.tenant_id)
        .bind(&job.model_name)
        .bind(&job.dataset_id)
        .bind(&job.test_dataset_id)
        .bind(job.config.to_string())
        .bind(job.deploy as i64)
        .bind(status.as_str())
        .bind(aiaas_types::now_ms())
        .bind(job.kind.as_str())
        .execute(&self.pool)
        .await?;
        self.job(&id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("job vanished after insert".into()))
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Classifier training jobs, newest first.
    pub async fn jobs(&self, tenant_id: Option<&str>) -> Result<Vec<JobRecord>> {
        let rows = self
            .fetch_scoped(
                &format!(
                    "SELECT {COLUMNS} FROM (SELECT * FROM jobs WHERE kind = 'classifier') AS j"
                ),
                "created_at DESC",
                tenant_id,
            )
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// A page of a tenant's jobs of one kind, newest first: at most `limit`, created
    /// before the job `after` (OpenAI's cursor: the last id of the previous page).
    pub async fn jobs_page(
        &self,
        kind: JobKind,
        tenant_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<JobRecord>> {
        let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE kind = $1 AND tenant_id = $2");
        let cursor = match after {
            Some(id) => self
                .job(id)
                .await?
                .filter(|j| j.tenant_id == tenant_id && j.kind == kind),
            None => None,
        };
        if cursor.is_some() {
            sql.push_str(" AND (created_at < $4 OR (created_at = $4 AND id < $5))");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT $3");
        let mut q = sqlx::query(&sql)
            .bind(kind.as_str())
            .bind(tenant_id)
            .bind(limit);
        if let Some(c) = &cursor {
            q = q.bind(c.created_at).bind(c.id.clone());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// A tenant's jobs of one kind whose id ends with `tail` (letters, digits and
    /// dashes only; anything else matches nothing): how a fine-tuned model's name, which
    /// carries the end of its job's id, finds the job.
    pub async fn jobs_ending_with(
        &self,
        kind: JobKind,
        tenant_id: &str,
        tail: &str,
    ) -> Result<Vec<JobRecord>> {
        if tail.is_empty() || !tail.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE kind = $1 AND tenant_id = $2 AND id LIKE $3"
        ))
        .bind(kind.as_str())
        .bind(tenant_id)
        .bind(format!("%{tail}"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Fine-tuning jobs still `validating_files` that were created before `before`
    /// (their validation may have died with its process).
    pub async fn jobs_validating(&self, before: i64) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE status = $1 AND created_at < $2"
        ))
        .bind(JobStatus::ValidatingFiles.as_str())
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// End a job's validation: `Ok` queues it, `Err` fails it with that error. False
    /// when it was no longer validating (cancelled, or validated by another replica).
    pub async fn end_validation(
        &self,
        id: &str,
        config: &serde_json::Value,
        outcome: std::result::Result<(), String>,
    ) -> Result<bool> {
        let (status, error, finished) = match outcome {
            Ok(()) => (JobStatus::Queued, None, None),
            Err(e) => (JobStatus::Failed, Some(e), Some(aiaas_types::now_ms())),
        };
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, error = $2, finished_at = $3, config = $4 \
             WHERE id = $5 AND status = $6",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(finished)
        .bind(config.to_string())
        .bind(id)
        .bind(JobStatus::ValidatingFiles.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Atomically give `worker` the oldest classifier job that is queued, or running
    /// under a lease that ran out, leased for `lease_ms`.
    pub async fn claim_next_job(&self, worker: &str, lease_ms: i64) -> Result<Option<JobRecord>> {
        self.claim_next_job_of(JobKind::Classifier, worker, lease_ms)
            .await
    }

    /// [`Metadata::claim_next_job`] for jobs of `kind`.
    pub async fn claim_next_job_of(
        &self,
        kind: JobKind,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<JobRecord>> {
        let lock = match self.backend {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let claimable = "(kind = $6 AND (status = $5 OR (status = $1 AND lease_until < $3)))";
        let sql = format!(
            "UPDATE jobs SET status = $1, claimed_by = $2, started_at = $3, lease_until = $4, \
             attempts = attempts + 1 \
             WHERE id = (SELECT id FROM jobs WHERE {claimable} ORDER BY created_at LIMIT 1{lock}) \
             AND {claimable} RETURNING {COLUMNS}"
        );
        let row = crate::retrying(|| async {
            // The clock is read once a connection is in hand: a slow acquire (a database
            // coming back) must not eat the lease before the claim is even written.
            let mut conn = self.pool.acquire().await?;
            let now = aiaas_types::now_ms();
            Ok(sqlx::query(&sql)
                .bind(JobStatus::Running.as_str())
                .bind(worker)
                .bind(now)
                .bind(now + lease_ms)
                .bind(JobStatus::Queued.as_str())
                .bind(kind.as_str())
                .fetch_optional(&mut *conn)
                .await?)
        })
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Renew `worker`'s lease of a running job. False when the worker no longer holds it
    /// (the lease ran out and another worker claimed the job, or the job ended).
    pub async fn renew_job_lease(&self, id: &str, worker: &str, lease_ms: i64) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND claimed_by = $3 AND status = $4",
        )
        .bind(aiaas_types::now_ms() + lease_ms)
        .bind(id)
        .bind(worker)
        .bind(JobStatus::Running.as_str())
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Record the end of a job `worker` is running. Returns false if the job was not
    /// running under this worker's claim.
    pub async fn finish_job(&self, id: &str, worker: &str, outcome: &JobOutcome) -> Result<bool> {
        let (status, error, report, version) = match outcome {
            JobOutcome::Succeeded {
                report,
                model_version,
            } => (
                JobStatus::Succeeded,
                None,
                Some(report.to_string()),
                Some(*model_version),
            ),
            JobOutcome::Failed(msg) => (JobStatus::Failed, Some(msg.clone()), None, None),
            JobOutcome::Cancelled => (JobStatus::Cancelled, None, None, None),
        };
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, error = $2, report = $3, model_version = $4, finished_at = $5, \
             lease_until = NULL WHERE id = $6 AND status = $7 AND claimed_by = $8",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(report)
        .bind(version)
        .bind(aiaas_types::now_ms())
        .bind(id)
        .bind(JobStatus::Running.as_str())
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ask a job to stop. A queued job is cancelled at once; a running one is flagged
    /// and stops at its next check. Returns the job's status afterwards.
    pub async fn request_cancel(&self, id: &str) -> Result<Option<JobStatus>> {
        let now = aiaas_types::now_ms();
        sqlx::query("UPDATE jobs SET status = $1, cancel_requested = 1, finished_at = $2 WHERE id = $3 AND status IN ($4, $5)")
            .bind(JobStatus::Cancelled.as_str())
            .bind(now)
            .bind(id)
            .bind(JobStatus::Queued.as_str())
            .bind(JobStatus::ValidatingFiles.as_str())
            .execute(&self.pool)
            .await?;
        sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(JobStatus::Running.as_str())
            .execute(&self.pool)
            .await?;
        Ok(self.job(id).await?.map(|j| j.status))
    }

    pub async fn cancel_requested(&self, id: &str) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT cancel_requested FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(c,)| c != 0).unwrap_or(false))
    }

    /// Put a job `worker` was running back in the queue after its process died (the
    /// attempt counts).
    pub async fn requeue_job(&self, id: &str, worker: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, claimed_by = NULL, started_at = NULL, lease_until = NULL \
             WHERE id = $2 AND status = $3 AND claimed_by = $4",
        )
        .bind(JobStatus::Queued.as_str())
        .bind(id)
        .bind(JobStatus::Running.as_str())
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Hand a running job back to the queue without counting the attempt (a graceful
    /// shutdown stopped it; it did not fail).
    pub async fn release_job(&self, id: &str, worker: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, claimed_by = NULL, started_at = NULL, lease_until = NULL, \
             attempts = attempts - 1 WHERE id = $2 AND status = $3 AND claimed_by = $4",
        )
        .bind(JobStatus::Queued.as_str())
        .bind(id)
        .bind(JobStatus::Running.as_str())
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Running jobs: (id, attempts, the worker that claimed it).
    pub async fn running_jobs(&self) -> Result<Vec<(String, i64, String)>> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT id, attempts, COALESCE(claimed_by, '') FROM jobs WHERE status = $1",
        )
        .bind(JobStatus::Running.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Append an event with the next sequence number of its job.
    pub async fn append_job_event(&self, job_id: &str, event: &serde_json::Value) -> Result<i64> {
        let row: (i64,) = sqlx::query_as(
            "INSERT INTO job_events (job_id, seq, at, event) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = $1), $2, $3) \
             RETURNING seq",
        )
        .bind(job_id)
        .bind(aiaas_types::now_ms())
        .bind(event.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.0)
    }

    /// A page of a job's events, newest first: at most `limit`, before sequence number
    /// `before` (all when `None`).
    pub async fn job_events_page(
        &self,
        job_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<JobEventRecord>> {
        let rows = sqlx::query(
            "SELECT seq, at, event FROM job_events WHERE job_id = $1 AND seq < $2 \
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(job_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Record a checkpoint of a job `worker` holds. False when it no longer holds it.
    pub async fn insert_checkpoint(
        &self,
        worker: &str,
        checkpoint: &CheckpointRecord,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let held: Option<(String,)> =
            sqlx::query_as("SELECT id FROM jobs WHERE id = $1 AND status = $2 AND claimed_by = $3")
                .bind(&checkpoint.job_id)
                .bind(JobStatus::Running.as_str())
                .bind(worker)
                .fetch_optional(&mut *tx)
                .await?;
        if held.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO job_checkpoints (id, job_id, step, metrics, artifact_key, adapter_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&checkpoint.id)
        .bind(&checkpoint.job_id)
        .bind(checkpoint.step)
        .bind(checkpoint.metrics.to_string())
        .bind(&checkpoint.artifact_key)
        .bind(&checkpoint.adapter_key)
        .bind(checkpoint.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A job's checkpoints, the latest step first.
    pub async fn checkpoints(&self, job_id: &str) -> Result<Vec<CheckpointRecord>> {
        let rows = sqlx::query(
            "SELECT id, job_id, step, metrics, artifact_key, adapter_key, created_at \
             FROM job_checkpoints WHERE job_id = $1 ORDER BY step DESC",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let metrics: String = r.try_get("metrics")?;
                Ok(CheckpointRecord {
                    id: r.try_get("id")?,
                    job_id: r.try_get("job_id")?,
                    step: r.try_get("step")?,
                    metrics: parse_json("job_checkpoints.metrics", &metrics)?,
                    artifact_key: r.try_get("artifact_key")?,
                    adapter_key: r.try_get("adapter_key")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn job_events_after(
        &self,
        job_id: &str,
        after_seq: i64,
    ) -> Result<Vec<JobEventRecord>> {
        let rows = sqlx::query(
            "SELECT seq, at, event FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(job_id)
        .bind(after_seq)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}

fn event_from_row(r: &AnyRow) -> Result<JobEventRecord> {
    let event: String = r.try_get("event")?;
    Ok(JobEventRecord {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        event: parse_json("job_events.event", &event)?,
    })
}

fn job_from_row(row: &AnyRow) -> Result<JobRecord> {
    let config: String = row.try_get("config")?;
    let report: Option<String> = row.try_get("report")?;
    Ok(JobRecord {
        id: row.try_get("id")?,
        kind: crate::parsed(row, "kind", JobKind::parse)?,
        tenant_id: row.try_get("tenant_id")?,
        model_name: row.try_get("model_name")?,
        dataset_id: row.try_get("dataset_id")?,
        test_dataset_id: row.try_get("test_dataset_id")?,
        config: parse_json("jobs.config", &config)?,
        deploy: row.try_get::<i64, _>("deploy")? != 0,
        status: crate::parsed(row, "status", JobStatus::parse)?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        error: row.try_get("error")?,
        report: report.map(|r| parse_json("jobs.report", &r)).transpose()?,
        model_version: row.try_get("model_version")?,
        attempts: row.try_get("attempts")?,
        worker: row.try_get("claimed_by")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
