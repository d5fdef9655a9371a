//! Request bodies the API owns: each is read from JSON here (unknown fields refused, with
//! a message naming them) and turned into the core's request by `From`, so the core's
//! types carry no wire format.

use aiaas_types::{Limits, PiiMode, Role, TrainConfig};
use serde::{Deserialize, Deserializer};

/// `POST /api/v1/keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    /// Tenant id or name; defaults to the caller's tenant. Only admins may name another.
    #[serde(default)]
    pub tenant: Option<String>,
    pub name: String,
    pub role: Role,
    /// Model names this key may call; absent means all of its tenant's models.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Lifetime in seconds from now; absent means no expiry.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
    /// Rate limits and token quotas of this key (absent: none beyond the tenant's).
    #[serde(default)]
    pub limits: Option<Limits>,
    /// CIDR ranges the key may be used from (absent: anywhere).
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
}

impl From<CreateKey> for aiaas_core::NewKey {
    fn from(k: CreateKey) -> aiaas_core::NewKey {
        aiaas_core::NewKey {
            tenant: k.tenant,
            name: k.name,
            role: k.role,
            allowed_models: k.allowed_models,
            expires_in_secs: k.expires_in_secs,
            limits: k.limits,
            allowed_ips: k.allowed_ips,
        }
    }
}

/// `PUT /api/v1/keys/{id}`: new limits and allow-lists of a key.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateKey {
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
    /// The models the key may call: left out keeps the list, null allows every model.
    #[serde(default, deserialize_with = "present")]
    pub allowed_models: Option<Option<Vec<String>>>,
}

impl From<UpdateKey> for aiaas_core::KeyLimits {
    fn from(k: UpdateKey) -> aiaas_core::KeyLimits {
        aiaas_core::KeyLimits {
            limits: k.limits,
            allowed_ips: k.allowed_ips,
            allowed_models: k.allowed_models,
        }
    }
}

/// `POST /api/v1/jobs`: a training job.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitJob {
    /// Dataset id or name.
    pub dataset: String,
    /// Optional held-out test dataset (id or name), evaluated after training.
    #[serde(default)]
    pub test_dataset: Option<String>,
    /// Name of the model the new version belongs to.
    pub model: String,
    #[serde(default)]
    pub config: TrainConfig,
    /// Deploy the new version when training succeeds.
    #[serde(default)]
    pub deploy: bool,
}

impl From<SubmitJob> for aiaas_core::TrainRequest {
    fn from(j: SubmitJob) -> aiaas_core::TrainRequest {
        aiaas_core::TrainRequest {
            dataset: j.dataset,
            test_dataset: j.test_dataset,
            model: j.model,
            config: j.config,
            deploy: j.deploy,
        }
    }
}

/// `POST /api/v1/models/{name}/deploy`: which version, and how to serve it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Deploy {
    /// A version number; or
    #[serde(default)]
    pub version: Option<i64>,
    /// an alias; neither means the latest version.
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub max_batch: Option<i64>,
    #[serde(default)]
    pub max_delay_ms: Option<i64>,
    #[serde(default)]
    pub queue_capacity: Option<i64>,
    /// The queue policy: a request expected to wait longer than this in the model's
    /// queue is refused at once (429 + Retry-After); 0: no limit.
    #[serde(default)]
    pub max_queue_time_ms: Option<i64>,
    /// PII masking of every text sent to the model: a mode, or null for the callers'
    /// tenant policies.
    #[serde(default, deserialize_with = "present")]
    pub pii_inputs: Option<Option<PiiMode>>,
    /// Who finds personal data in those texts: `["rules"]`, `["ner"]` or both; `[]`:
    /// the callers' tenants' detectors.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub pii_detectors: Option<Vec<aiaas_core::Detection>>,
    /// A second version taking a share of the requests that name no version. A deploy
    /// states the whole split: without `canary`, any canary ends.
    #[serde(default)]
    pub canary: Option<CanaryBody>,
    /// Roll the canary back automatically (here or inside `canary`).
    #[serde(default)]
    pub auto_rollback: Option<AutoRollbackRule>,
}

/// The canary of a deploy.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CanaryBody {
    pub version: i64,
    /// Share of the requests, 0-100.
    pub percent: i64,
    #[serde(default)]
    pub auto_rollback: Option<AutoRollbackRule>,
}

/// When the platform rolls a canary back by itself: over the last `window_secs`, the
/// canary has answered at least `min_requests` and its error rate (server errors) exceeds
/// the stable version's by more than `max_error_rate_increase`.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutoRollbackRule {
    /// Default 0.05 (5 points).
    #[serde(default = "default_increase")]
    pub max_error_rate_increase: f64,
    /// Default 60.
    #[serde(default = "default_window")]
    pub window_secs: i64,
    /// Default 50.
    #[serde(default = "default_min_requests")]
    pub min_requests: i64,
}

fn default_increase() -> f64 {
    0.05
}

fn default_window() -> i64 {
    60
}

fn default_min_requests() -> i64 {
    50
}

impl From<AutoRollbackRule> for aiaas_core::AutoRollback {
    fn from(r: AutoRollbackRule) -> aiaas_core::AutoRollback {
        aiaas_core::AutoRollback {
            max_error_rate_increase: r.max_error_rate_increase,
            window_secs: r.window_secs,
            min_requests: r.min_requests,
        }
    }
}

impl TryFrom<Deploy> for aiaas_core::DeployRequest {
    type Error = String;

    fn try_from(d: Deploy) -> Result<aiaas_core::DeployRequest, String> {
        let canary =
            match (d.canary, d.auto_rollback) {
                (None, Some(_)) => return Err(
                    "auto_rollback needs a canary: {\"canary\": {\"version\": N, \"percent\": P}}"
                        .into(),
                ),
                (Some(c), Some(_)) if c.auto_rollback.is_some() => {
                    return Err("give auto_rollback once, at the top or inside canary".into())
                }
                (None, None) => None,
                (Some(c), top) => Some(aiaas_core::CanaryRequest {
                    version: c.version,
                    percent: c.percent,
                    auto_rollback: c.auto_rollback.or(top).map(Into::into),
                }),
            };
        Ok(aiaas_core::DeployRequest {
            version: d.version,
            alias: d.alias,
            max_batch: d.max_batch,
            max_delay_ms: d.max_delay_ms,
            queue_capacity: d.queue_capacity,
            max_queue_time_ms: d.max_queue_time_ms,
            pii_inputs: d.pii_inputs,
            pii_detectors: d.pii_detectors,
            canary,
        })
    }
}

/// `PUT /api/v1/library/{name}/settings`: how a library model is served; unset fields
/// take the server's defaults.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LibrarySettings {
    /// Sequences generated at once (LLMs).
    #[serde(default)]
    pub slots: Option<usize>,
    /// Tokens of context per sequence (LLMs).
    #[serde(default)]
    pub context_length: Option<u32>,
    /// Requests admitted at once (running + waiting).
    #[serde(default)]
    pub queue_capacity: Option<usize>,
    /// Texts per forward pass (embedders); pages per batch (OCR).
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Intra-op threads per network (OCR, on ONNX Runtime); 0: one per core.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Copies of the model reading pages in parallel (OCR), each with `threads`.
    #[serde(default)]
    pub instances: Option<usize>,
    /// The queue policy (embedders, OCR): refuse a request expected to wait longer than
    /// this; 0: no limit.
    #[serde(default)]
    pub max_queue_time_ms: Option<u64>,
    /// Seconds an idle model stays loaded; -1 forever.
    #[serde(default)]
    pub keep_alive_secs: Option<i64>,
    /// PII masking of every text sent to the model, whoever calls it.
    #[serde(default)]
    pub pii_inputs: Option<PiiMode>,
    /// PII masking of every text the model returns, whoever calls it.
    #[serde(default)]
    pub pii_outputs: Option<PiiMode>,
    /// What finds personal data in the texts sent to the model and in its replies:
    /// `["rules"]`, `["ner"]` or both (over the tenant's detectors).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub pii_detectors: Option<Vec<aiaas_core::Detection>>,
}

impl From<LibrarySettings> for aiaas_core::ServingSettings {
    fn from(s: LibrarySettings) -> aiaas_core::ServingSettings {
        aiaas_core::ServingSettings {
            slots: s.slots,
            context_length: s.context_length,
            queue_capacity: s.queue_capacity,
            max_batch: s.max_batch,
            threads: s.threads,
            instances: s.instances,
            max_queue_time_ms: s.max_queue_time_ms,
            keep_alive_secs: s.keep_alive_secs,
            pii_inputs: s.pii_inputs,
            pii_outputs: s.pii_outputs,
            pii_detectors: s.pii_detectors,
        }
    }
}

/// For `Option<Option<T>>` fields: present (even as null) gives `Some`, absent `None`
/// (with `#[serde(default)]`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    <Option<T> as Deserialize>::deserialize(d).map(Some)
}
