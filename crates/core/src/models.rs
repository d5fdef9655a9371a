//! The model registry (models, versions, aliases), deployments and inference.
//!
//! A deployment is desired state in the database (model + version + batching); each
//! replica's runtimes follow it: loading on deploy, at start, or on first use, and
//! `reconcile_deployments` (every few seconds) unloading what a change elsewhere left.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aiaas_engine::{BatchSettings, Engine};
use aiaas_store::{ArtifactStore, DeploymentSettings, Metadata};
use aiaas_types::{Format, Permission, Principal};

use crate::auth::{check_name, require};
use crate::privacy::Privacy;
use crate::runtime_key::RuntimeKey;
use crate::{AliasRecord, CoreError, DeploymentRecord, ModelRecord, ModelVersionRecord, Result};

/// Most texts accepted in one predict call.
pub const MAX_TEXTS_PER_REQUEST: usize = 1024;

#[derive(Debug, Clone)]
pub struct ModelSummary {
    pub model: ModelRecord,
    pub latest_version: Option<i64>,
    pub deployed_version: Option<i64>,
    pub loaded: bool,
    pub aliases: Vec<AliasRecord>,
}

#[derive(Debug, Clone)]
pub struct ModelDetails {
    pub model: ModelRecord,
    pub versions: Vec<ModelVersionRecord>,
    pub aliases: Vec<AliasRecord>,
    pub deployment: Option<DeploymentRecord>,
    pub loaded: bool,
}

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassPrediction {
    pub label: String,
    pub confidence: f32,
    pub probabilities: BTreeMap<String, f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub model: String,
    pub version: i64,
    pub labels: Vec<String>,
    pub predictions: Vec<ClassPrediction>,
}

/// A deployed model and the version answering a request.
pub(crate) struct Serving {
    pub(crate) model: ModelRecord,
    pub(crate) version: ModelVersionRecord,
    pub(crate) deployment: DeploymentRecord,
}

/// `name`, `name:3` or `name:alias`.
struct ModelRef<'a> {
    name: &'a str,
    selector: Option<&'a str>,
}

fn parse_ref(reference: &str) -> ModelRef<'_> {
    match reference.split_once(':') {
        Some((name, sel)) => ModelRef {
            name,
            selector: Some(sel),
        },
        None => ModelRef {
            name: reference,
            selector: None,
        },
    }
}

fn settings_of(d: &DeploymentRecord) -> DeploymentSettings {
    DeploymentSettings {
        max_batch: d.max_batch,
        max_delay_ms: d.max_delay_ms,
        queue_capacity: d.queue_capacity,
        pii_inputs: d.pii_inputs,
        max_queue_time_ms: d.max_queue_time_ms,
    }
}

/// How a runtime loaded for a deployment batches (a tensor model's own configuration
/// may narrow it).
fn batch_of(settings: &DeploymentSettings) -> BatchSettings {
    BatchSettings {
        max_batch: settings.max_batch.max(1) as usize,
        max_delay: Duration::from_millis(settings.max_delay_ms.max(0) as u64),
        queue_capacity: settings.queue_capacity.max(1) as usize,
        max_queue_time: (settings.max_queue_time_ms > 0)
            .then(|| Duration::from_millis(settings.max_queue_time_ms as u64)),
    }
}

fn runtime_key(model_id: &str, version: i64) -> String {
    RuntimeKey::version(model_id, version).to_string()
}

/// The models service: trained models of each tenant (versions, aliases), their
/// deployments and predictions. Runtimes live in the shared engine under
/// `<model id>:<version>`; loads are serialised with the library's through `loading`.
#[derive(Clone)]
pub struct Models {
    inner: Arc<ModelsConfig>,
}

/// What the models service is built from.
pub(crate) struct ModelsConfig {
    pub(crate) meta: Metadata,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
    pub(crate) engine: Arc<Engine>,
    /// Serialises model loads so concurrent first requests load a model once.
    pub(crate) loading: Arc<tokio::sync::Mutex<()>>,
    /// Masks inputs under the deployment's or the tenant's policy.
    pub(crate) privacy: Privacy,
    /// Serving settings of a first deployment.
    pub(crate) batch: BatchSettings,
    /// ONNX Runtime's shared library, when installed (uploaded ONNX models need it).
    pub(crate) onnxruntime: Option<std::path::PathBuf>,
}

impl Models {
    pub(crate) fn new(config: ModelsConfig) -> Models {
        Models {
            inner: Arc::new(config),
        }
    }

    /// What the service is built from (for its other modules: tensor_models.rs).
    pub(crate) fn inner(&self) -> &ModelsConfig {
        &self.inner
    }

    pub async fn list(&self, principal: &Principal) -> Result<Vec<ModelSummary>> {
        require(principal, Permission::ReadModels)?;
        let scope = (!principal.is_admin()).then_some(principal.tenant_id.as_str());
        let meta = &self.inner.meta;
        let mut out = Vec::new();
        for model in meta.models(scope).await? {
            if !principal.may_call_model(&model.name) {
                continue;
            }
            let versions = meta.model_versions(&model.id).await?;
            let deployment = meta.deployment(&model.id).await?;
            let loaded = deployment.as_ref().is_some_and(|d| {
                self.inner
                    .engine
                    .is_loaded(&runtime_key(&model.id, d.version))
            });
            out.push(ModelSummary {
                latest_version: versions.last().map(|v| v.version),
                deployed_version: deployment.map(|d| d.version),
                loaded,
                aliases: meta.aliases(&model.id).await?,
                model,
            });
        }
        Ok(out)
    }

    pub async fn get(&self, principal: &Principal, name: &str) -> Result<ModelDetails> {
        require(principal, Permission::ReadModels)?;
        let model = self.find_model(principal, name).await?;
        let meta = &self.inner.meta;
        let deployment = meta.deployment(&model.id).await?;
        let loaded = deployment.as_ref().is_some_and(|d| {
            self.inner
                .engine
                .is_loaded(&runtime_key(&model.id, d.version))
        });
        Ok(ModelDetails {
            versions: meta.model_versions(&model.id).await?,
            aliases: meta.aliases(&model.id).await?,
            deployment,
            loaded,
            model,
        })
    }

    /// A version by number or alias (`None`: the deployed one, else the latest).
    pub async fn get_version(
        &self,
        principal: &Principal,
        name: &str,
        selector: Option<&str>,
    ) -> Result<ModelVersionRecord> {
        require(principal, Permission::ReadModels)?;
        let model = self.find_model(principal, name).await?;
        self.resolve_version(&model, selector).await
    }

    pub async fn set_alias(
        &self,
        principal: &Principal,
        name: &str,
        alias: &str,
        version: i64,
    ) -> Result<AliasRecord> {
        require(principal, Permission::Deploy)?;
        check_name("alias", alias)?;
        if alias.chars().all(|c| c.is_ascii_digit()) {
            return Err(CoreError::InvalidInput(
                "an alias cannot be a number".into(),
            ));
        }
        let model = self.find_model(principal, name).await?;
        self.resolve_version(&model, Some(&version.to_string()))
            .await?;
        self.inner.meta.set_alias(&model.id, alias, version).await?;
        self.inner
            .meta
            .aliases(&model.id)
            .await?
            .into_iter()
            .find(|a| a.alias == alias)
            .ok_or_else(|| CoreError::Internal("alias vanished".into()))
    }

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
        let current = match self.inner.meta.deployment(&model.id).await? {
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
        self.deploy_record(&model, &version, settings).await
    }

    pub async fn undeploy(&self, principal: &Principal, name: &str) -> Result<()> {
        require(principal, Permission::Deploy)?;
        let model = self.find_model(principal, name).await?;
        if !self.inner.meta.delete_deployment(&model.id).await? {
            return Err(CoreError::Conflict(format!(
                "model {name:?} is not deployed"
            )));
        }
        self.unload_versions(&model, None).await;
        Ok(())
    }

    pub async fn delete(&self, principal: &Principal, name: &str) -> Result<()> {
        require(principal, Permission::Deploy)?;
        let model = self.find_model(principal, name).await?;
        let versions = self.inner.meta.model_versions(&model.id).await?;
        self.inner.meta.delete_model(&model.id).await?;
        self.unload_versions(&model, None).await;
        let artifacts = self.inner.artifacts.clone();
        tokio::task::spawn_blocking(move || {
            for v in versions {
                if let Err(e) = artifacts.delete_prefix(&v.artifact_prefix) {
                    tracing::warn!(error = %e, "model files left behind");
                }
            }
        })
        .await?;
        Ok(())
    }

    /// Classify texts with a deployed model: `name`, `name:version` or `name:alias`.
    pub async fn predict(
        &self,
        principal: &Principal,
        reference: &str,
        mut texts: Vec<String>,
    ) -> Result<Predictions> {
        require(principal, Permission::Infer)?;
        if texts.is_empty() {
            return Err(CoreError::InvalidInput("give at least one text".into()));
        }
        if texts.len() > MAX_TEXTS_PER_REQUEST {
            return Err(CoreError::InvalidInput(format!(
                "at most {MAX_TEXTS_PER_REQUEST} texts per request, got {}",
                texts.len()
            )));
        }
        let Serving {
            model,
            version,
            deployment,
        } = self.serving(principal, reference).await?;
        if version.format != Format::AiaasClassifier {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} takes tensors, not texts: call it through KServe v2 (POST /v2/models/{}/infer)",
                model.name, model.name
            )));
        }
        let model_mode = deployment.pii_inputs;
        self.inner
            .privacy
            .mask_model_inputs(principal, model_mode, texts.iter_mut())
            .await?;
        let key = self.ensure_loaded(&model, &version, &deployment).await?;
        let predictions = self.inner.engine.classify(&key, texts).await?;
        let labels = version.labels.clone();
        let predictions = predictions
            .into_iter()
            .map(|p| {
                let (best, confidence) =
                    p.probabilities
                        .iter()
                        .enumerate()
                        .fold(
                            (0, f32::MIN),
                            |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
                        );
                ClassPrediction {
                    label: labels.get(best).cloned().unwrap_or_default(),
                    confidence,
                    probabilities: labels.iter().cloned().zip(p.probabilities).collect(),
                }
            })
            .collect();
        Ok(Predictions {
            model: model.name,
            version: version.version,
            labels,
            predictions,
        })
    }

    /// The deployed model a reference names (`name`, `name:version`, `name:alias`) and the
    /// version that answers it.
    pub(crate) async fn serving(&self, principal: &Principal, reference: &str) -> Result<Serving> {
        let r = parse_ref(reference);
        let model = self.find_model(principal, r.name).await?;
        let deployment = self
            .inner
            .meta
            .deployment(&model.id)
            .await?
            .ok_or_else(|| {
                CoreError::Conflict(format!(
                    "model {:?} is not deployed; deploy it with POST /api/v1/models/{}/deploy",
                    model.name, model.name
                ))
            })?;
        let version = match r.selector {
            None => {
                self.resolve_version(&model, Some(&deployment.version.to_string()))
                    .await?
            }
            Some(s) => self.resolve_version(&model, Some(s)).await?,
        };
        Ok(Serving {
            model,
            version,
            deployment,
        })
    }

    /// Whether a deployed model's version answers now (for readiness probes).
    pub async fn model_ready(
        &self,
        principal: &Principal,
        name: &str,
        selector: Option<&str>,
    ) -> Result<bool> {
        require(principal, Permission::ReadModels)?;
        let model = self.find_model(principal, name).await?;
        let Some(d) = self.inner.meta.deployment(&model.id).await? else {
            return Ok(false);
        };
        let version = match selector {
            Some(s) => self.resolve_version(&model, Some(s)).await?.version,
            None => d.version,
        };
        let key = runtime_key(&model.id, version);
        if self.inner.engine.is_loaded(&key) {
            return Ok(true);
        }
        // Load on demand counts as ready: the first call loads it.
        Ok(version == d.version)
    }

    /// Deploy a freshly trained version (used by jobs with `deploy: true`).
    pub(crate) async fn deploy_version_of(
        &self,
        tenant_id: &str,
        name: &str,
        version: i64,
    ) -> Result<()> {
        let model = self
            .inner
            .meta
            .model_by_name(tenant_id, name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no model {name:?}")))?;
        let v = self
            .resolve_version(&model, Some(&version.to_string()))
            .await?;
        // A redeploy keeps the model's serving settings; a first deploy takes the defaults.
        let settings = match self.inner.meta.deployment(&model.id).await? {
            Some(d) => settings_of(&d),
            None => self.default_settings(),
        };
        self.deploy_record(&model, &v, settings).await?;
        Ok(())
    }

    /// Serving settings of a new deployment: the server's configured defaults.
    fn default_settings(&self) -> DeploymentSettings {
        let b = self.inner.batch;
        DeploymentSettings {
            max_batch: b.max_batch as i64,
            max_delay_ms: b.max_delay.as_millis() as i64,
            queue_capacity: b.queue_capacity as i64,
            pii_inputs: None,
            max_queue_time_ms: b.max_queue_time.map_or(0, |t| t.as_millis() as i64),
        }
    }

    /// Load every deployment's runtime (at start); failures are logged, not fatal.
    pub(crate) async fn load_deployments(&self) {
        let deployments = match self.inner.meta.deployments().await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot list deployments");
                return;
            }
        };
        for d in deployments {
            let loaded = async {
                let model = self.model_by_id(&d.model_id).await?;
                let version = self
                    .resolve_version(&model, Some(&d.version.to_string()))
                    .await?;
                self.ensure_loaded(&model, &version, &d).await
            }
            .await;
            if let Err(e) = loaded {
                tracing::error!(model = %d.model_id, error = %e, "deployment not loaded");
            }
        }
    }

    /// Bring this replica's loaded classifiers in line with the deployments in the
    /// database, which other replicas may have changed: a runtime of a model no longer
    /// deployed (undeployed, deleted) is unloaded, and so is the deployed version's
    /// runtime when its batching settings changed (it loads again, with the new settings,
    /// on its next request). Requests already resolve aliases and deployments from the
    /// database, so they follow a change at once; this frees what the change left behind.
    /// Returns how many runtimes were unloaded.
    pub(crate) async fn reconcile_deployments(&self) -> Result<usize> {
        // Not while a load (or a deploy, which records its deployment under the same
        // lock) is under way: its runtime would look unwanted. The next tick will do.
        let Ok(_guard) = self.inner.loading.try_lock() else {
            return Ok(0);
        };
        let deployments: HashMap<String, DeploymentRecord> = self
            .inner
            .meta
            .deployments()
            .await?
            .into_iter()
            .map(|d| (d.model_id.clone(), d))
            .collect();
        let mut stale = Vec::new();
        for m in self.inner.engine.loaded() {
            use aiaas_engine::RuntimeKind;
            if !matches!(m.kind, RuntimeKind::Classifier | RuntimeKind::Tensor) {
                continue;
            }
            let Some((model_id, version)) = RuntimeKey::model_version(&m.key) else {
                continue;
            };
            let keep = match deployments.get(&model_id) {
                None => false,
                Some(d) if version == d.version => {
                    let mut want = batch_of(&settings_of(d));
                    if m.kind == RuntimeKind::Tensor {
                        if let Some(v) = self.inner.meta.model_version(&model_id, version).await? {
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
                    p.inner.engine.unload(&k);
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
    ) -> Result<DeploymentRecord> {
        // Load first (replacing any runtime of this version, so new batching settings take
        // effect), record the deployment only once it serves: a version that cannot load
        // leaves the previous deployment in place.
        let (key, record) = {
            let _guard = self.inner.loading.lock().await;
            let key = self.load_unlocked(model, version, settings.clone()).await?;
            let record = self
                .inner
                .meta
                .upsert_deployment(&model.id, version.version, settings)
                .await?;
            (key, record)
        };
        self.unload_versions(model, Some(&key)).await;
        tracing::info!(model = %model.name, version = version.version, "deployed");
        Ok(record)
    }

    /// The runtime key of a version, loading it on first use.
    pub(crate) async fn ensure_loaded(
        &self,
        model: &ModelRecord,
        version: &ModelVersionRecord,
        deployment: &DeploymentRecord,
    ) -> Result<String> {
        let key = runtime_key(&model.id, version.version);
        if self.inner.engine.is_loaded(&key) {
            return Ok(key);
        }
        let _guard = self.inner.loading.lock().await;
        if self.inner.engine.is_loaded(&key) {
            return Ok(key);
        }
        self.load_unlocked(model, version, settings_of(deployment))
            .await
    }

    /// Load (or reload) a version's runtime; the caller holds `inner.loading`.
    pub(crate) async fn load_unlocked(
        &self,
        model: &ModelRecord,
        version: &ModelVersionRecord,
        settings: DeploymentSettings,
    ) -> Result<String> {
        let key = runtime_key(&model.id, version.version);
        let batch = batch_of(&settings);
        let p = self.clone();
        // Metrics name a runtime by tenant, model and version: names repeat across tenants.
        let tenant = self
            .inner
            .meta
            .tenant(&model.tenant_id)
            .await?
            .map_or_else(|| model.tenant_id.clone(), |t| t.name);
        let label = format!("{tenant}/{}:{}", model.name, version.version);
        let v = version.clone();
        let k = key.clone();
        // The one place a version's format picks its loader and runtime.
        match version.format {
            Format::AiaasClassifier => {
                tokio::task::spawn_blocking(move || {
                    let mut files = aiaas_engine::ModelFiles::new();
                    for name in &v.files {
                        let bytes = p
                            .inner
                            .artifacts
                            .get(&format!("{}/{name}", v.artifact_prefix))?;
                        files.insert(name.clone(), bytes);
                    }
                    p.inner.engine.load_classifier(&k, &label, &files, batch)?;
                    Ok::<_, CoreError>(())
                })
                .await??;
            }
            Format::Onnx => {
                let runtime = self.onnx_runtime()?;
                let config = crate::tensor_models::config_of(&v)?;
                let batch = crate::tensor_models::batch_settings(&config, batch);
                tokio::task::spawn_blocking(move || {
                    let bytes = p.inner.artifacts.get(&format!(
                        "{}/{}",
                        v.artifact_prefix,
                        crate::tensor_models::ONNX_FILE
                    ))?;
                    let load = aiaas_engine::OnnxLoad {
                        runtime,
                        bytes: &bytes,
                        threads: config.threads,
                    };
                    p.inner.engine.load_onnx(&k, &label, load, batch)?;
                    Ok::<_, CoreError>(())
                })
                .await??;
            }
            // Pulled formats live in the library, installation-wide, not as versions.
            other @ (Format::Gguf | Format::HfEncoder) => {
                return Err(CoreError::InvalidInput(format!(
                    "model {:?} version {} is stored as {other}, which serves from the library, not as a tenant model",
                    model.name, version.version
                )));
            }
        }
        Ok(key)
    }

    /// Unload every loaded version of a model (versions addressed as `name:N` load on
    /// demand too), except `keep`.
    async fn unload_versions(&self, model: &ModelRecord, keep: Option<&str>) {
        let prefix = format!("{}:", model.id);
        let keys: Vec<String> = self
            .inner
            .engine
            .loaded()
            .into_iter()
            .map(|m| m.key)
            .filter(|k| k.starts_with(&prefix) && Some(k.as_str()) != keep)
            .collect();
        let p = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for k in keys {
                p.inner.engine.unload(&k);
            }
        })
        .await;
    }

    /// A model of the caller's tenant that the caller's key may use (its allow-list).
    pub(crate) async fn find_model(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<ModelRecord> {
        let not_found = || CoreError::NotFound(format!("no model {name:?}"));
        let model = self
            .inner
            .meta
            .model_by_name(&principal.tenant_id, name)
            .await?
            .ok_or_else(not_found)?;
        if !principal.may_call_model(&model.name) {
            return Err(CoreError::Forbidden(format!(
                "this API key may not use model {:?}",
                model.name
            )));
        }
        Ok(model)
    }

    async fn model_by_id(&self, id: &str) -> Result<ModelRecord> {
        self.inner
            .meta
            .model(id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no model {id}")))
    }

    async fn latest_version(&self, model: &ModelRecord) -> Result<ModelVersionRecord> {
        self.inner
            .meta
            .model_versions(&model.id)
            .await?
            .pop()
            .ok_or_else(|| CoreError::NotFound(format!("model {:?} has no versions", model.name)))
    }

    async fn resolve_version(
        &self,
        model: &ModelRecord,
        selector: Option<&str>,
    ) -> Result<ModelVersionRecord> {
        let meta = &self.inner.meta;
        let number = match selector {
            None => match meta.deployment(&model.id).await? {
                Some(d) => d.version,
                None => return self.latest_version(model).await,
            },
            Some(s) => match s.parse::<i64>() {
                Ok(n) => n,
                Err(_) => meta
                    .aliases(&model.id)
                    .await?
                    .into_iter()
                    .find(|a| a.alias == s)
                    .map(|a| a.version)
                    .ok_or_else(|| {
                        CoreError::NotFound(format!(
                            "model {:?} has no version or alias {s:?}",
                            model.name
                        ))
                    })?,
            },
        };
        meta.model_version(&model.id, number).await?.ok_or_else(|| {
            CoreError::NotFound(format!("model {:?} has no version {number}", model.name))
        })
    }
}
