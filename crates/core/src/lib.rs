//! The platform's services, each a struct owning its state: `Accounts` (tenants, keys),
//! `Limiter`, `AuditLog`, `Privacy`, `Datasets`, `TrainingJobs`, `Models` (trained
//! models, deployments, predict), `Library` (pulled models, loads, the memory budget),
//! `Inference` (chat, completions, embeddings) and `Backups`; `Platform` wires them and
//! runs the lifecycle. Every operation takes the caller's `Principal` and checks its
//! permission here, in the core, never in the HTTP layer.
//!
//! Architecture invariant: objects of one tenant are invisible to another; a lookup of
//! another tenant's object answers `NotFound`, exactly like a missing one.

mod audit;
mod auth;
mod backup;
mod canary;
mod datasets;
mod demo;
mod deployments;
mod error;
mod events;
mod files;
mod finetune;
mod generate;
mod jobs;
mod keys_at_rest;
mod library;
mod limits;
mod models;
mod platform;
mod privacy;
mod responses;
mod runtime_key;
mod tasks;
mod tenants;
mod tensor_models;
mod uploads;

pub use aiaas_engine::llm::{
    ChatMessage, FinishReason, GenEvent, ModelInfo, ParsedReply, TokenLogprob, ToolCall,
    ToolChoice, ToolRequest, ToolSpec, ToolSyntax,
};
pub use aiaas_engine::ner;
pub use aiaas_engine::onnx;
pub use aiaas_engine::{BatchSettings, Metrics};
pub use aiaas_engine::{ExplainMethod, ExplainOptions, Explanation, TokenAttribution};
pub use aiaas_engine::{LoadedModel, RuntimeKind};
pub use aiaas_hub::{CancelFlag, PullProgress};
pub use aiaas_store::{
    redact_url, Backend, FileRecord, LibraryModelRecord, S3Config, S3Credentials, UsageRecord,
};
pub use aiaas_store::{
    AliasRecord, ApiKeyRecord, AuditRecord, AutoRollback, Canary, DatasetRecord, DeploymentRecord,
    JobEventRecord, JobRecord, JobStatus, ModelEventRecord, ModelRecord, ModelVersionRecord,
    Tenant,
};
pub use audit::{
    entry_hash, verify_chain, verify_data_dir, AuditEvent, AuditLog, AuditOutcome, AuditQuery,
    AuditVerification, ChainHead, GENESIS, HEAD_FILE,
};
pub use auth::require;
pub use backup::{
    backup_data_dir, prune_backups, restore_backup, verify_backup, ArchiveReport, BackupReport,
    Backups, BACKUP_SUFFIX,
};
pub use canary::{CanaryRequest, Track, MAX_WINDOW_SECS};
pub use datasets::{DatasetFormat, DatasetSpec, Datasets, PreviewRow};
pub use deployments::DeployRequest;
pub use error::CoreError;
pub use events::{collect, CollectedChoice, GenerationEvents};
pub use files::{
    Example, ExampleFormat, Examples, FilePage, FileSpec, Files, Role, TrainingMessage,
    MAX_LIST as MAX_FILES_LISTED,
};
pub use finetune::{
    FineTuneCheckpoint, FineTuneEvent, FineTuneJob, FineTuneRequest, FineTunedModel, FineTuning,
    Hyperparameters, JobError, LoraSpec, Page, Setting, FINE_TUNED_PREFIX,
    MAX_PAGE as MAX_FINE_TUNING_PAGE,
};
pub use generate::{
    ChatRequest, CompletionRequest, EmbeddingOutput, EmbeddingRequest, Generation,
    GenerationOptions, Inference, ResponseFormat, MAX_CHOICES, MAX_EMBEDDING_INPUTS,
};
pub use jobs::{TrainRequest, TrainingJobs};
pub use keys_at_rest::{load_existing, rotate_master, MasterKeySource, Rotation, RotationReport};
pub use library::{
    page_text, CatalogueItem, EntityAnswer, EntityOptions, KeepAlive, Library, LibraryConfig,
    LibraryModel, LibraryModelDetails, PageLines, Segment, ServingSettings, Transcript,
    Transcription, TranscriptionRequest, Word, MAX_AUDIO_SECONDS, MAX_PAGES_PER_REQUEST,
    MAX_STRIDE, MAX_TEXTS_PER_REQUEST,
};
pub use limits::{Limiter, RateStatus};
pub use models::{ClassPrediction, ModelDetails, ModelSummary, Models, Predictions};
pub use platform::{Platform, PlatformConfig, StartupReport};
pub use privacy::{
    Detection, MaskOutput, MaskRequest, MaskedText, ModelPrivacy, OutputMasking, Privacy,
    PrivacyUpdate, PSEUDONYM_SECRET_FILE,
};
pub use responses::{Responses, DEFAULT_RESPONSE_RETENTION};
pub use tasks::{Ranked, TaskAnswer, TaskInput, TaskPrediction, MAX_ITEMS_PER_REQUEST};
pub use tenants::{Accounts, CreatedKey, Identity, KeyLimits, NewKey};
pub use tensor_models::TensorAnswer;
pub use uploads::Upload;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Histogram buckets for metrics recorded outside the engine.
pub mod metrics_buckets {
    pub use aiaas_engine::metrics::{BATCH_BUCKETS as BATCH, LATENCY_BUCKETS as LATENCY};
}
