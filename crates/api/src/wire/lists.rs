//! The list responses: each a JSON object with one array, named by what it holds.

use serde::Serialize;
use utoipa::ToSchema;

use super::{
    AuditEntry, CatalogueEntry, Dataset, Job, LibraryListed, ModelListed, PreviewLine,
    RunningModel, TenantBody, Usage,
};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantList {
    pub tenants: Vec<TenantBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DatasetList {
    pub datasets: Vec<Dataset>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PreviewRows {
    pub rows: Vec<PreviewLine>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobList {
    pub jobs: Vec<Job>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ModelList {
    pub models: Vec<ModelListed>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LibraryList {
    pub models: Vec<LibraryListed>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Catalogue {
    pub models: Vec<CatalogueEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunningList {
    pub models: Vec<RunningModel>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsageList {
    pub usage: Vec<Usage>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditList {
    pub entries: Vec<AuditEntry>,
}

/// A library model's load state after `load` or `unload`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoadState {
    pub model: String,
    pub loaded: bool,
    /// For `unload`: whether it was loaded before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was_loaded: Option<bool>,
}
