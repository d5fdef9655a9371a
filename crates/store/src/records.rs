//! Rows of the metadata database as plain Rust values.

use aiaas_types::{Format, PiiMode, Role, Task};

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// Limits on all the tenant's keys together.
    pub limits: aiaas_types::Limits,
    /// Masking mode applied to every text the tenant's keys send to a model, or none.
    pub pii_inputs: Option<PiiMode>,
    /// Masking mode applied to every text a model returns to the tenant's keys.
    pub pii_outputs: Option<PiiMode>,
    /// Who finds the personal data in the inputs: `rules`, `ner` (empty: the rules).
    pub pii_detectors: Vec<String>,
}

/// A key's row. Not `Serialize`: responses are built by the API from its fields, so the
/// hash can never reach one.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub role: Role,
    pub secret_hash: String,
    pub allowed_models: Option<Vec<String>>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    pub limits: aiaas_types::Limits,
    /// CIDR ranges the key may be used from; `None` means anywhere.
    pub allowed_ips: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub format: String,
    pub text_column: String,
    pub label_column: String,
    pub row_count: i64,
    pub byte_count: i64,
    pub artifact_key: String,
    pub stats: serde_json::Value,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub task: Task,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersionRecord {
    pub model_id: String,
    pub version: i64,
    pub architecture: String,
    pub labels: Vec<String>,
    pub artifact_prefix: String,
    pub files: Vec<String>,
    pub report: serde_json::Value,
    pub config: serde_json::Value,
    pub job_id: Option<String>,
    pub dataset_id: Option<String>,
    pub created_at: i64,
    /// How the version's files are laid out: picks its loader and runtime.
    pub format: Format,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AliasRecord {
    pub alias: String,
    pub version: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRecord {
    pub model_id: String,
    pub version: i64,
    pub max_batch: i64,
    pub max_delay_ms: i64,
    pub queue_capacity: i64,
    /// Masking mode applied to every text sent to this model, whoever calls it.
    pub pii_inputs: Option<PiiMode>,
    /// Who finds the personal data in those texts (empty: the callers' tenants').
    pub pii_detectors: Vec<String>,
    /// The queue policy: longest expected wait before a request is refused (0: none).
    pub max_queue_time_ms: i64,
    /// A second version taking a share of the traffic, while it proves itself.
    pub canary: Option<Canary>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The canary of a deployment: which version, how much of the traffic, and when the
/// platform rolls it back by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    pub version: i64,
    /// Share of the requests that name no version, 0-100.
    pub percent: i64,
    pub auto_rollback: Option<AutoRollback>,
    /// When this canary version started (epoch ms); kept while it stays the canary.
    pub started_at: i64,
}

/// Roll the canary back when, over the last `window_secs`, its error rate exceeds the
/// stable version's by more than `max_error_rate_increase`, once it has answered at
/// least `min_requests` in that window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoRollback {
    pub max_error_rate_increase: f64,
    pub window_secs: i64,
    pub min_requests: i64,
}

/// Something that happened to a model (`deploy`, `canary.start`, `canary.promote`,
/// `canary.rollback`, `canary.auto_rollback`), with its details.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEventRecord {
    pub model_id: String,
    /// 1, 2, ... per model, in the order they happened.
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub detail: serde_json::Value,
}

/// Life of a training job: queued -> running -> succeeded | failed | cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// A fine-tuning job whose files are being checked before it queues.
    ValidatingFiles,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::ValidatingFiles => "validating_files",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "validating_files" => JobStatus::ValidatingFiles,
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// What a job trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A text classifier from a data set (`aiaas_train`).
    Classifier,
    /// A LoRA adapter of a library LLM from a training file (`aiaas_finetune`).
    FineTune,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Classifier => "classifier",
            JobKind::FineTune => "fine-tune",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "classifier" => Some(JobKind::Classifier),
            "fine-tune" => Some(JobKind::FineTune),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub kind: JobKind,
    pub tenant_id: String,
    pub model_name: String,
    pub dataset_id: String,
    pub test_dataset_id: Option<String>,
    pub config: serde_json::Value,
    pub deploy: bool,
    pub status: JobStatus,
    pub cancel_requested: bool,
    pub error: Option<String>,
    pub report: Option<serde_json::Value>,
    pub model_version: Option<i64>,
    pub attempts: i64,
    /// The worker (`replica/pid-id`) that claimed it last, while it runs and after.
    pub worker: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A checkpoint a fine-tuning job saved.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRecord {
    pub id: String,
    pub job_id: String,
    /// Optimiser steps done when it was saved.
    pub step: i64,
    pub metrics: serde_json::Value,
    /// The trainer's state (adapter and optimiser), to resume from.
    pub artifact_key: String,
    /// The adapter alone, as llama.cpp loads it.
    pub adapter_key: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobEventRecord {
    pub seq: i64,
    pub at: i64,
    pub event: serde_json::Value,
}

/// A new job as submitted.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub tenant_id: String,
    pub model_name: String,
    pub dataset_id: String,
    pub test_dataset_id: Option<String>,
    pub config: serde_json::Value,
    pub deploy: bool,
}

/// A new model version, registered after its files are stored.
#[derive(Debug, Clone)]
pub struct NewModelVersion {
    pub tenant_id: String,
    pub model_name: String,
    pub task: Task,
    pub format: Format,
    pub architecture: String,
    pub labels: Vec<String>,
    pub artifact_prefix: String,
    pub files: Vec<String>,
    pub report: serde_json::Value,
    pub config: serde_json::Value,
    pub job_id: Option<String>,
    pub dataset_id: Option<String>,
}

/// Desired serving settings of a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSettings {
    pub max_batch: i64,
    pub max_delay_ms: i64,
    pub queue_capacity: i64,
    /// Masking mode for every text sent to the model (`None`: the caller's tenant policy).
    pub pii_inputs: Option<PiiMode>,
    /// Who finds the personal data in those texts: `rules`, `ner` (empty: the caller's
    /// tenant's detectors).
    pub pii_detectors: Vec<String>,
    /// Longest expected wait in the queue before a request is refused (0: no limit).
    pub max_queue_time_ms: i64,
}

/// The traffic split a deployment asks for: a canary version and its share.
#[derive(Debug, Clone, PartialEq)]
pub struct CanarySettings {
    pub version: i64,
    pub percent: i64,
    pub auto_rollback: Option<AutoRollback>,
}
