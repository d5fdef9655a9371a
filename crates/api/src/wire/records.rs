//! Response bodies for the platform's objects (tenants, data sets, jobs, models,
//! library models, usage, audit entries), each built from its store row or core value
//! by a `From`: the JSON shapes are the API's, fields a caller must not see (storage
//! keys, cache folders) never make it into one.

use aiaas_core::{
    AliasRecord, DatasetRecord, DeploymentRecord, JobRecord, LibraryModelRecord, ModelDetails,
    ModelRecord, ModelSummary, ModelVersionRecord, Tenant, UsageRecord,
};
use aiaas_types::{Format, Limits, PiiMode, Task};
use serde::Serialize;
use serde_json::Value;

/// A tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TenantBody {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub limits: Limits,
    pub pii_inputs: Option<PiiMode>,
    pub pii_outputs: Option<PiiMode>,
    /// Who finds the personal data in model inputs and outputs (`rules`, `ner`).
    pub pii_detectors: Vec<String>,
}

impl From<Tenant> for TenantBody {
    fn from(t: Tenant) -> TenantBody {
        TenantBody {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            limits: t.limits,
            pii_inputs: t.pii_inputs,
            pii_outputs: t.pii_outputs,
            pii_detectors: if t.pii_detectors.is_empty() {
                vec!["rules".into()]
            } else {
                t.pii_detectors
            },
        }
    }
}

/// A data set (its stored file's key stays inside).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Dataset {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub format: String,
    pub text_column: String,
    pub label_column: String,
    pub row_count: i64,
    pub byte_count: i64,
    pub stats: Value,
    pub created_at: i64,
}

impl From<DatasetRecord> for Dataset {
    fn from(d: DatasetRecord) -> Dataset {
        Dataset {
            id: d.id,
            tenant_id: d.tenant_id,
            name: d.name,
            format: d.format,
            text_column: d.text_column,
            label_column: d.label_column,
            row_count: d.row_count,
            byte_count: d.byte_count,
            stats: d.stats,
            created_at: d.created_at,
        }
    }
}

/// A training job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Job {
    pub id: String,
    pub tenant_id: String,
    pub model_name: String,
    pub dataset_id: String,
    pub test_dataset_id: Option<String>,
    pub config: Value,
    pub deploy: bool,
    pub status: &'static str,
    pub cancel_requested: bool,
    pub error: Option<String>,
    pub report: Option<Value>,
    pub model_version: Option<i64>,
    pub attempts: i64,
    pub worker: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl From<JobRecord> for Job {
    fn from(j: JobRecord) -> Job {
        Job {
            id: j.id,
            tenant_id: j.tenant_id,
            model_name: j.model_name,
            dataset_id: j.dataset_id,
            test_dataset_id: j.test_dataset_id,
            config: j.config,
            deploy: j.deploy,
            status: j.status.as_str(),
            cancel_requested: j.cancel_requested,
            error: j.error,
            report: j.report,
            model_version: j.model_version,
            attempts: j.attempts,
            worker: j.worker,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

/// A model's row as listed and shown (flattened into both).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Model {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub task: Task,
    pub created_at: i64,
}

impl From<ModelRecord> for Model {
    fn from(m: ModelRecord) -> Model {
        Model {
            id: m.id,
            tenant_id: m.tenant_id,
            name: m.name,
            task: m.task,
            created_at: m.created_at,
        }
    }
}

/// A version of a trained model (its files' storage prefix stays inside).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ModelVersion {
    pub model_id: String,
    pub version: i64,
    pub architecture: String,
    pub labels: Vec<String>,
    pub files: Vec<String>,
    pub report: Value,
    pub config: Value,
    pub job_id: Option<String>,
    pub dataset_id: Option<String>,
    pub created_at: i64,
    /// How the version's files are laid out (`aiaas-classifier` for trained versions).
    pub format: Format,
}

impl From<ModelVersionRecord> for ModelVersion {
    fn from(v: ModelVersionRecord) -> ModelVersion {
        ModelVersion {
            model_id: v.model_id,
            version: v.version,
            architecture: v.architecture,
            labels: v.labels,
            files: v.files,
            report: v.report,
            config: v.config,
            job_id: v.job_id,
            dataset_id: v.dataset_id,
            created_at: v.created_at,
            format: v.format,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Alias {
    pub alias: String,
    pub version: i64,
    pub updated_at: i64,
}

impl From<AliasRecord> for Alias {
    fn from(a: AliasRecord) -> Alias {
        Alias {
            alias: a.alias,
            version: a.version,
            updated_at: a.updated_at,
        }
    }
}

/// Which version serves and how.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Deployment {
    pub model_id: String,
    pub version: i64,
    pub max_batch: i64,
    pub max_delay_ms: i64,
    pub queue_capacity: i64,
    /// The queue policy: longest expected wait before a request is refused (0: none).
    pub max_queue_time_ms: i64,
    pub pii_inputs: Option<PiiMode>,
    /// Who finds personal data in the texts sent to it (empty: the callers' tenants').
    pub pii_detectors: Vec<String>,
    /// A second version taking a share of the traffic, if any.
    pub canary: Option<CanaryState>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A deployment's canary.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CanaryState {
    pub version: i64,
    pub percent: i64,
    /// `{max_error_rate_increase, window_secs, min_requests}`, when set.
    #[schema(value_type = Option<Object>)]
    pub auto_rollback: Option<aiaas_core::AutoRollback>,
    /// When this version became the canary (epoch ms).
    pub started_at: i64,
}

/// Something that happened to a model: `deploy`, `undeploy`, `canary.start`,
/// `canary.promote`, `canary.rollback`, `canary.auto_rollback` (with its reason).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ModelEvent {
    /// 1, 2, ... per model, in the order they happened.
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<aiaas_core::ModelEventRecord> for ModelEvent {
    fn from(e: aiaas_core::ModelEventRecord) -> ModelEvent {
        ModelEvent {
            seq: e.seq,
            at: e.at,
            kind: e.kind,
            detail: e.detail,
        }
    }
}

impl From<DeploymentRecord> for Deployment {
    fn from(d: DeploymentRecord) -> Deployment {
        Deployment {
            model_id: d.model_id,
            version: d.version,
            max_batch: d.max_batch,
            max_delay_ms: d.max_delay_ms,
            queue_capacity: d.queue_capacity,
            max_queue_time_ms: d.max_queue_time_ms,
            pii_inputs: d.pii_inputs,
            pii_detectors: d.pii_detectors,
            canary: d.canary.map(|c| CanaryState {
                version: c.version,
                percent: c.percent,
                auto_rollback: c.auto_rollback,
                started_at: c.started_at,
            }),
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// `GET /api/v1/models` entries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ModelListed {
    #[serde(flatten)]
    pub model: Model,
    pub latest_version: Option<i64>,
    pub deployed_version: Option<i64>,
    pub loaded: bool,
    pub aliases: Vec<Alias>,
}

impl From<ModelSummary> for ModelListed {
    fn from(m: ModelSummary) -> ModelListed {
        ModelListed {
            model: m.model.into(),
            latest_version: m.latest_version,
            deployed_version: m.deployed_version,
            loaded: m.loaded,
            aliases: m.aliases.into_iter().map(Alias::from).collect(),
        }
    }
}

/// `GET /api/v1/models/{name}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ModelShown {
    #[serde(flatten)]
    pub model: Model,
    pub versions: Vec<ModelVersion>,
    pub aliases: Vec<Alias>,
    pub deployment: Option<Deployment>,
    pub loaded: bool,
}

impl From<ModelDetails> for ModelShown {
    fn from(m: ModelDetails) -> ModelShown {
        ModelShown {
            model: m.model.into(),
            versions: m.versions.into_iter().map(ModelVersion::from).collect(),
            aliases: m.aliases.into_iter().map(Alias::from).collect(),
            deployment: m.deployment.map(Deployment::from),
            loaded: m.loaded,
        }
    }
}

/// A library model's row (its cache folder stays inside).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LibraryEntry {
    pub id: String,
    pub name: String,
    pub task: Task,
    pub format: Format,
    pub source: String,
    pub license: String,
    pub files: Value,
    pub size_bytes: i64,
    pub defaults: Value,
    pub settings: Value,
    pub created_at: i64,
}

impl From<LibraryModelRecord> for LibraryEntry {
    fn from(r: LibraryModelRecord) -> LibraryEntry {
        LibraryEntry {
            id: r.id,
            name: r.name,
            task: r.task,
            format: r.format,
            source: r.source,
            license: r.license,
            files: r.files,
            size_bytes: r.size_bytes,
            defaults: r.defaults,
            settings: r.settings,
            created_at: r.created_at,
        }
    }
}

/// A library model as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LibraryListed {
    #[serde(flatten)]
    pub record: LibraryEntry,
    pub loaded: bool,
}

impl From<aiaas_core::LibraryModel> for LibraryListed {
    fn from(m: aiaas_core::LibraryModel) -> LibraryListed {
        LibraryListed {
            record: m.record.into(),
            loaded: m.loaded,
        }
    }
}

/// A library model shown, with what the loaded model says about itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LibraryShown {
    #[serde(flatten)]
    pub record: LibraryEntry,
    pub loaded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<super::GgufInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_dimensions: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<usize>,
}

impl From<aiaas_core::LibraryModelDetails> for LibraryShown {
    fn from(m: aiaas_core::LibraryModelDetails) -> LibraryShown {
        LibraryShown {
            record: m.record.into(),
            loaded: m.loaded,
            info: m.info.map(Into::into),
            embedding_dimensions: m.embedding_dimensions,
            max_input_tokens: m.max_input_tokens,
        }
    }
}

/// Usage of one key on one model on one day (UTC).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Usage {
    pub tenant_id: String,
    pub key_id: String,
    pub model: String,
    pub day: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

impl From<UsageRecord> for Usage {
    fn from(u: UsageRecord) -> Usage {
        Usage {
            tenant_id: u.tenant_id,
            key_id: u.key_id,
            model: u.model,
            day: u.day,
            requests: u.requests,
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        }
    }
}

/// One audit entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditEntry {
    pub seq: i64,
    pub id: String,
    pub at: i64,
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub role: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub source: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<aiaas_core::AuditRecord> for AuditEntry {
    fn from(r: aiaas_core::AuditRecord) -> AuditEntry {
        AuditEntry {
            seq: r.seq,
            id: r.id,
            at: r.at,
            tenant_id: r.tenant_id,
            key_id: r.key_id,
            role: r.role,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
            source: r.source,
            detail: r.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// Map a list into wire values.
pub(crate) fn all<T, W: From<T>>(items: Vec<T>) -> Vec<W> {
    items.into_iter().map(W::from).collect()
}
