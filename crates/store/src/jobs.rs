//! Training jobs and their event logs.
//!
//! Claiming is one atomic `UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING`, which
//! SQLite's single writer serialises; PostgreSQL will add `FOR UPDATE SKIP LOCKED`.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{
    parse_json, JobEventRecord, JobRecord, JobStatus, Metadata, NewJob, Result, StoreError,
};

const COLUMNS: &str = "id, tenant_id, model_name, dataset_id, test_dataset_id, config, deploy, \
                       status, cancel_requested, error, report, model_version, attempts, \
                       created_at, started_at, finished_at";

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
    pub async fn insert_job(&self, job: &NewJob) -> Result<JobRecord> {
        let id = aiaas_types::new_id();
        sqlx::query(&format!(
            "INSERT INTO jobs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, NULL, NULL, NULL, 0, $9, NULL, NULL)"
        ))
        .bind(&id)
        .bind(&job.tenant_id)
        .bind(&job.model_name)
        .bind(&job.dataset_id)
        .bind(&job.test_dataset_id)
        .bind(job.config.to_string())
        .bind(job.deploy as i64)
        .bind(JobStatus::Queued.as_str())
        .bind(aiaas_types::now_ms())
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

    pub async fn jobs(&self, tenant_id: Option<&str>) -> Result<Vec<JobRecord>> {
        let rows = self
            .fetch_scoped(
                &format!("SELECT {COLUMNS} FROM jobs"),
                "created_at DESC",
                tenant_id,
            )
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Atomically move the oldest queued job to running for `worker`.
    pub async fn claim_next_job(&self, worker: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = $1, claimed_by = $2, started_at = $3, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM jobs WHERE status = $4 ORDER BY created_at LIMIT 1) \
             AND status = $4 RETURNING {COLUMNS}"
        ))
        .bind(JobStatus::Running.as_str())
        .bind(worker)
        .bind(aiaas_types::now_ms())
        .bind(JobStatus::Queued.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Record the end of a running job. Returns false if the job was not running.
    pub async fn finish_job(&self, id: &str, outcome: &JobOutcome) -> Result<bool> {
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
            "UPDATE jobs SET status = $1, error = $2, report = $3, model_version = $4, finished_at = $5 \
             WHERE id = $6 AND status = $7",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(report)
        .bind(version)
        .bind(aiaas_types::now_ms())
        .bind(id)
        .bind(JobStatus::Running.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ask a job to stop. A queued job is cancelled at once; a running one is flagged
    /// and stops at its next check. Returns the job's status afterwards.
    pub async fn request_cancel(&self, id: &str) -> Result<Option<JobStatus>> {
        let now = aiaas_types::now_ms();
        sqlx::query("UPDATE jobs SET status = $1, cancel_requested = 1, finished_at = $2 WHERE id = $3 AND status = $4")
            .bind(JobStatus::Cancelled.as_str())
            .bind(now)
            .bind(id)
            .bind(JobStatus::Queued.as_str())
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

    /// Put a running job back in the queue after its process died (the attempt counts).
    pub async fn requeue_job(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, claimed_by = NULL, started_at = NULL WHERE id = $2 AND status = $3",
        )
        .bind(JobStatus::Queued.as_str())
        .bind(id)
        .bind(JobStatus::Running.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Hand a running job back to the queue without counting the attempt (a graceful
    /// shutdown stopped it; it did not fail).
    pub async fn release_job(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, claimed_by = NULL, started_at = NULL, attempts = attempts - 1 \
             WHERE id = $2 AND status = $3",
        )
        .bind(JobStatus::Queued.as_str())
        .bind(id)
        .bind(JobStatus::Running.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Jobs left running by a previous process (crash or kill): their ids.
    pub async fn running_jobs(&self) -> Result<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT id, attempts FROM jobs WHERE status = $1")
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
        rows.iter()
            .map(|r| {
                let event: String = r.try_get("event")?;
                Ok(JobEventRecord {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    event: parse_json("job_events.event", &event)?,
                })
            })
            .collect()
    }
}

fn job_from_row(row: &AnyRow) -> Result<JobRecord> {
    let status: String = row.try_get("status")?;
    let config: String = row.try_get("config")?;
    let report: Option<String> = row.try_get("report")?;
    Ok(JobRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        model_name: row.try_get("model_name")?,
        dataset_id: row.try_get("dataset_id")?,
        test_dataset_id: row.try_get("test_dataset_id")?,
        config: parse_json("jobs.config", &config)?,
        deploy: row.try_get::<i64, _>("deploy")? != 0,
        status: JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("jobs.status {status:?}")))?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        error: row.try_get("error")?,
        report: report.map(|r| parse_json("jobs.report", &r)).transpose()?,
        model_version: row.try_get("model_version")?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
