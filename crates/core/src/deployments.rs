//! Deployments: the desired state of each tenant model in the database (which version
//! serves, a canary beside it, how both are batched), and this replica's runtimes
//! following it: loaded on deploy, at start or on first use, and unloaded by
//! `reconcile_deployments` (every few seconds) when a change elsewhere left them behind.

use std::collections::HashMap;
use std::time::Duration;

use aiaas_engine::BatchSettings;
use aiaas_store::{CanarySettings, DeploymentSettings};
use aiaas_types::{Permission, Principal};
use serde_json::json;

use crate::auth::require;
use crate::canary::CanaryRequest;
use crate::models::{runtime_key, Models};
use crate::runtime_key::RuntimeKey;
use crate::{CoreError, DeploymentRecord, ModelRecord, ModelVersionRecord, Result};

/// Which version to deploy and how to serve it.
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    /// A version number; or
    pub version: Option<i64>,
    /// an alias; neither means the latest version.
    pub alias: Option<String>,
    pub max_batch: Option<i64>,
    pub max_delay_ms: Option<i64>,
    pub queue_capacity: Option<i64>,
    /// The queue policy: refuse (429) a request expected to wait longer than this in the
    /// model's queue; 0: no limit.
    pub max_queue_time_ms: Option<i64>,
    /// PII masking of every text sent to the model: a mode, or null for the callers'
    /// tenant policies.
    pub pii_inputs: Option<Option<aiaas_privacy::Mode>>,
    /// Who finds personal data in those texts; an empty list: the callers' tenants'
    /// detectors; absent: unchanged.
    pub pii_detectors: Option<Vec<crate::privacy::Detection>>,
    /// A second version taking a share of the traffic. A deploy states the whole split:
    /// without a canary, any canary ends.
    pub canary: Option<CanaryRequest>,
}

pub(crate) fn settings_of(d: &DeploymentRecord) -> DeploymentSettings {
    DeploymentSettings {
        max_batch: d.max_batch,
        max_delay_ms: d.max_delay_ms,
        queue_capacity: d.queue_capacity,
        pii_inputs: d.pii_inputs,
        pii_detectors: d.pii_detectors.clone(),
        max_queue_time_ms: d.max_queue_time_ms,
    }
}

/// How a runtime loaded for a deployment batches (a tensor model's own configuration
/// may narrow it).
pub(crate) fn batch_of(settings: &DeploymentSettings) -> BatchSettings {
    BatchSettings {
        max_batch: settings.max_batch.max(1) as usize,
        max_delay: Duration::from_millis(settings.max_delay_ms.max(0) as u64),
        queue_capacity: settings.queue_capacity.max(1) as usize,
        max_queue_time: (settings.max_queue_time_ms > 0)
            .then(|| Duration::from_millis(settings.max_queue_time_ms as u64)),
    }
}

/// A canary version to load beside the stable one, and its share.
struct CanaryPlan {
    version: ModelVersionRecord,
    settings: CanarySettings,
}

impl Models {
    pub async fn deploy(
        &self,
        principal: &Principal,
        name: &str,
        req: DeployRequest,
    ) -> Result<DeploymentRecord> {
        require(principal, Permission::Deploy)?;
        let model = self.find_model(principal, name).await?;
        let selector = match (&req.version, &req.alias) {
            (Some(_), Some(_)) => {
                return Err(CoreError::InvalidInput(
                    "give either version or alias, not both".into(),
                ))
            }
            (Some(v), None) => Some(v.to_string()),
            (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        };
        let version = match selector {
            Some(s) => self.resolve_version(&model, Some(&s)).await?,
            None => self.latest_version(&model).await?,
        };
        // Settings not given keep the current deployment's (a first deploy: the defaults).
        let current = match self.inner().meta.deployment(&model.id).await? {
            Some(d) => settings_of(&d),
            None => self.default_settings(),
        };
        let settings = DeploymentSettings {
            max_batch: req.max_batch.unwrap_or(current.max_batch),
            max_delay_ms: req.max_delay_ms.unwrap_or(current.max_delay_ms),
            queue_capacity: req.queue_capacity.unwrap_or(current.queue_capacity),
            pii_inputs: match req.pii_inputs {
                Some(mode) => mode,
                None => current.pii_inputs,
            },
            pii_detectors: match req.pii_detectors {
                Some(list) => list.iter().map(|d| d.as_str().to_string()).collect(),
                None => current.pii_detectors,
            },
            max_queue_time_ms: req.max_queue_time_ms.unwrap_or(current.max_queue_time_ms),
        };
        if !(1..=4096).contains(&settings.max_batch)
            || !(0..=10_000).contains(&settings.max_delay_ms)
            || !(1..=100_000).contains(&settings.queue_capacity)
            || !(0..=600_000).contains(&settings.max_queue_time_ms)
        {
            return Err(CoreError::InvalidInput(
                "max_batch must be 1-4096, max_delay_ms 0-10000, queue_capacity 1-100000 \
                 and max_queue_time_ms 0-600000 (0: no limit)"
                    .into(),
            ));
        }
        let canary = match req.canary {
            None => None,
            Some(c) => {
                c.check(version.version)?;
                let canary_version = self
                    .resolve_version(&model, Some(&c.version.to_string()))
                    .await?;
                if canary_version.format != version.format {
                    return Err(CoreError::InvalidInput(format!(
                        "the canary (version {}, {}) must take the same requests as the stable \
                         version ({}, {})",
                        canary_version.version,
                        canary_version.format,
                        version.version,
                        version.format
                    )));
                }
                Some(CanaryPlan {
                    version: canary_version,
                    settings: CanarySettings {
                        version: c.version,
                        percent: c.percent,
                        auto_rollback: c.auto_rollback,
                    },
                })
            }
        };
        self.deploy_record(&model, &version, settings, canary, Some(principal))
            .await
    }

    pub async fn undeploy(&self, principal: &Principal, name: &str) -> Result<()> {
        require(principal, Permission::Deploy)?;
        let model = self.find_model(principal, name).await?;
        if !self.inner().meta.delete_deployment(&model.id).await? {
            return Err(CoreError::Conflict(format!(
                "model {name:?} is not deployed"
            )));
        }
        self.inner().traffic.forget(&model.id);
        self.unload_versions(&model, &[]).await;
        self.inner()
            .meta
            .append_model_event(&model.id, "undeploy", &json!({"by": principal.key_id}))
            .await?;
        Ok(())
    }

    /// Deploy a freshly trained version (used by jobs with `deploy: true`); any canary
    /// ends.
    pub(crate) async fn deploy_version_of(
        &self,
        tenant_id: &str,
        name: &str,
        version: i64,
    ) -> Result<()> {
        let model = self
            .inner()
            .meta
            .model_by_name(tenant_id, name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no model {name:?}")))?;
        let v = self
            .resolve_version(&model, Some(&version.to_string()))
            .await?;
        // A redeploy keeps the model's serving settings; a first deploy takes the defaults.
        let settings = match self.inner().meta.deployment(&model.id).await? {
            Some(d) => settings_of(&d),
            None => self.default_settings(),
        };
        self.deploy_record(&model, &v, settings, None, None).await?;
        Ok(())
    }

    /// Serving settings of a new deployment: the server's configured defaults.
    fn default_settings(&self) -> DeploymentSettings {
        let b = self.inner().batch;
        DeploymentSettings {
            max_batch: b.max_batch as i64,
            max_delay_ms: b.max_delay.as_millis() as i64,
            queue_capacity: b.queue_capacity as i64,
            pii_inputs: None,
            pii_detectors: Vec::new(),
            max_queue_time_ms: b.max_queue_time.map_or(0, |t| t.as_millis() as i64),
        }
    }

    /// Load every deployment's runtimes, stable and canary (at start); failures are
    /// logged, not fatal.
    pub(crate) async fn load_deployments(&self) {
        let deployments = match self.inner().meta.deployments().await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot list deployments");
                return;
            }
        };
        for d in deployments {
            let versions = std::iter::once(d.version).chain(d.canary.as_ref().map(|c| c.version));
            for number in versions {
                let loaded = async {
                    let model = self.model_by_id(&d.model_id).await?;
                    let version = self
                        .resolve_version(&model, Some(&number.to_string()))
                        .await?;
                    self.ensure_loaded(&model, &version, &d).await
                }
                .await;
                if let Err(e) = loaded {
                    tracing::error!(model = %d.model_id, version = number, error = %e, "deployment not loaded");
                }
            }
        }
    }

    /// Bring this replica's loaded runtimes in line with the deployments in the
    /// database, which other replicas may have changed: a runtime of a model no longer
    /// deployed (undeployed, deleted) is unloaded, and so is the stable or canary
    /// version's runtime when its batching settings changed (it loads again, with the
    /// new settings, on its next request). Requests already resolve aliases and
    /// deployments from the database, so they follow a change at once; this frees what
    /// the change left behind. Returns how many runtimes were unloaded.
    pub(crate) async fn reconcile_deployments(&self) -> Result<usize> {
        // Not while a load (or a deploy, which records its deployment under the same
        // lock) is under way: its runtime would look unwanted. The next tick will do.
        let Ok(_guard) = self.inner().loading.try_lock() else {
            return Ok(0);
        };
        let deployments: HashMap<String, DeploymentRecord> = self
            .inner()
            .meta
            .deployments()
            .await?
            .into_iter()
            .map(|d| (d.model_id.clone(), d))
            .collect();
        let mut stale = Vec::new();
        for m in self.inner().engine.loaded() {
            use aiaas_engine::RuntimeKind;
            if !matches!(m.kind, RuntimeKind::Classifier | RuntimeKind::Tensor) {
                continue;
            }
            let Some((model_id, version)) = RuntimeKey::model_version(&m.key) else {
                continue;
            };
            let keep = match deployments.get(&model_id) {
                None => false,
                Some(d)
                    if version == d.version
                        || d.canary.as_ref().is_some_and(|c| c.version == version) =>
                {
                    let mut want = batch_of(&settings_of(d));
                    if m.kind == RuntimeKind::Tensor {
                        if let Some(v) = self.inner().meta.model_version(&model_id, version).await?
                        {
                            want = crate::tensor_models::batch_settings(
                                &crate::tensor_models::config_of(&v)?,
                                want,
                            );
                        }
                    }
                    m.batch.is_none_or(|b| b == want)
                }
                // Another version, addressed as `name:N`: kept while the model is deployed.
                Some(_) => true,
            };
            if !keep && m.in_flight == 0 {
                stale.push(m.key);
            }
        }
        let n = stale.len();
        if n > 0 {
            let p = self.clone();
            tokio::task::spawn_blocking(move || {
                for k in stale {
                    tracing::info!(runtime = %k, "unloading a runtime its deployment no longer wants");
                    p.inner().engine.unload(&k);
                }
            })
            .await?;
        }
        Ok(n)
    }

    async fn deploy_record(
        &self,
        model: &ModelRecord,
        version: &ModelVersionRecord,
        settings: DeploymentSettings,
        canary: Option<CanaryPlan>,
        by: Option<&Principal>,
    ) -> Result<DeploymentRecord> {
        // Load first (replacing any runtime of these versions, so new batching settings
        // take effect), record the deployment only once both serve: a version that cannot
        // load leaves the previous deployment in place.
        let meta = &self.inner().meta;
        let before = meta.deployment(&model.id).await?;
        let (keys, record) = {
            let _guard = self.inner().loading.lock().await;
            let mut keys = vec![self.load_unlocked(model, version, settings.clone()).await?];
            if let Some(c) = &canary {
                keys.push(
                    self.load_unlocked(model, &c.version, settings.clone())
                        .await?,
                );
            }
            let record = meta
                .upsert_deployment(
                    &model.id,
                    version.version,
                    settings,
                    canary.as_ref().map(|c| &c.settings),
                )
                .await?;
            (keys, record)
        };
        self.unload_versions(model, &keys).await;
        let by = by.map(|p| p.key_id.clone());
        let canary_started = record.canary.as_ref().is_some_and(|c| {
            before
                .as_ref()
                .and_then(|b| b.canary.as_ref())
                .is_none_or(|b| b.version != c.version)
        });
        let detail = json!({
            "version": record.version,
            "canary": record.canary.as_ref().map(|c| json!({
                "version": c.version,
                "percent": c.percent,
                "auto_rollback": c.auto_rollback,
            })),
            "by": by,
        });
        meta.append_model_event(&model.id, "deploy", &detail)
            .await?;
        if canary_started {
            meta.append_model_event(&model.id, "canary.start", &detail)
                .await?;
        }
        tracing::info!(model = %model.name, version = version.version, canary = ?record.canary.as_ref().map(|c| c.version), "deployed");
        Ok(record)
    }

    /// Unload every loaded version of a model (versions addressed as `name:N` load on
    /// demand too), except the runtimes in `keep`.
    pub(crate) async fn unload_versions(&self, model: &ModelRecord, keep: &[String]) {
        let prefix = format!("{}:", model.id);
        let keys: Vec<String> = self
            .inner()
            .engine
            .loaded()
            .into_iter()
            .map(|m| m.key)
            .filter(|k| k.starts_with(&prefix) && !keep.contains(k))
            .collect();
        self.unload_keys(keys).await;
    }

    /// Unload one version's runtime, if loaded here.
    pub(crate) async fn unload_version(&self, model_id: &str, version: i64) {
        self.unload_keys(vec![runtime_key(model_id, version)]).await;
    }

    async fn unload_keys(&self, keys: Vec<String>) {
        let p = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for k in keys {
                if p.inner().engine.is_loaded(&k) {
                    p.inner().engine.unload(&k);
                }
            }
        })
        .await;
    }
}
