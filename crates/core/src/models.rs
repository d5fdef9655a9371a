//! The model registry (models, versions, aliases), the version answering each request
//! (stable, canary or named), its runtime loaded on first use, and inference. Deploying
//! is in deployments.rs, canary releases in canary.rs, uploaded ONNX models in
//! tensor_models.rs.

use std::collections::BTreeMap;
use std::sync::Arc;

use aiaas_engine::{BatchSettings, Engine, Metrics};
use aiaas_store::{ArtifactStore, DeploymentSettings, Metadata};
use aiaas_types::{Format, Permission, Principal};

use crate::audit::AuditLog;
use crate::auth::{check_name, require};
use crate::canary::{Track, Traffic};
use crate::deployments::{batch_of, settings_of};
use crate::privacy::{Detection, Privacy};
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

#[derive(Debug, Clone, PartialEq)]
pub struct ClassPrediction {
    pub label: String,
    pub confidence: f32,
    pub probabilities: BTreeMap<String, f32>,
    /// Per-token attributions, when asked for.
    pub explanation: Option<aiaas_engine::Explanation>,
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
    /// Which side of the deployment answers.
    pub(crate) track: Track,
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

/// The engine's name for a version's runtime.
pub(crate) fn runtime_key(model_id: &str, version: i64) -> String {
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
    /// Requests per version, by outcome.
    pub(crate) metrics: Arc<Metrics>,
    /// Where automatic rollbacks are recorded.
    pub(crate) audit: AuditLog,
    /// This replica's canary split and outcome windows.
    pub(crate) traffic: Traffic,
    /// Most texts one request may ask explanations for.
    pub(crate) max_explain_texts: usize,
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

    pub async fn delete(&self, principal: &Principal, name: &str) -> Result<()> {
        require(principal, Permission::Deploy)?;
        let model = self.find_model(principal, name).await?;
        let versions = self.inner.meta.model_versions(&model.id).await?;
        self.inner.meta.delete_model(&model.id).await?;
        self.inner.traffic.forget(&model.id);
        self.unload_versions(&model, &[]).await;
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
        texts: Vec<String>,
    ) -> Result<Predictions> {
        self.predict_explained(principal, reference, texts, None)
            .await
    }

    /// `predict`; with `explain`, each prediction carries its per-token attributions
    /// (offsets into the text the model saw: after masking, where the deployment masks
    /// personal data).
    pub async fn predict_explained(
        &self,
        principal: &Principal,
        reference: &str,
        mut texts: Vec<String>,
        explain: Option<aiaas_engine::ExplainOptions>,
    ) -> Result<Predictions> {
        require(principal, Permission::Infer)?;
        if texts.is_empty() {
            return Err(CoreError::InvalidInput("give at least one text".into()));
        }
        if explain.is_some() && texts.len() > self.inner.max_explain_texts {
            return Err(CoreError::InvalidInput(format!(
                "explain is limited to {} texts per request (each costs extra predictions), \
                 got {}: split the request",
                self.inner.max_explain_texts,
                texts.len()
            )));
        }
        if texts.len() > MAX_TEXTS_PER_REQUEST {
            return Err(CoreError::InvalidInput(format!(
                "at most {MAX_TEXTS_PER_REQUEST} texts per request, got {}",
                texts.len()
            )));
        }
        let serving = self.serving(principal, reference).await?;
        let Serving {
            model,
            version,
            deployment,
            ..
        } = &serving;
        if version.format != Format::AiaasClassifier {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} takes tensors, not texts: call it through KServe v2 (POST /v2/models/{}/infer)",
                model.name, model.name
            )));
        }
        if let Some(opts) = &explain {
            check_explain(opts, version)?;
        }
        let model_mode = deployment.pii_inputs;
        let detectors: Vec<Detection> = deployment
            .pii_detectors
            .iter()
            .filter_map(|d| Detection::parse(d))
            .collect();
        let model_detectors = (!detectors.is_empty()).then_some(detectors.as_slice());
        self.inner
            .privacy
            .mask_model_inputs(principal, (model_mode, model_detectors), texts.iter_mut())
            .await?;
        let answered = async {
            let key = self.ensure_loaded(model, version, deployment).await?;
            Ok(self.inner.engine.classify(&key, texts, explain).await?)
        }
        .await;
        self.settle(&serving, &answered);
        let predictions = answered?;
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
                    explanation: p.explanation,
                }
            })
            .collect();
        Ok(Predictions {
            model: model.name.clone(),
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
        // A request naming no version goes to the stable version or, for its share, to
        // the canary.
        let (number, track) = match (r.selector, &deployment.canary) {
            (Some(s), _) => (s.to_string(), Track::Pinned),
            (None, Some(c)) if self.inner.traffic.to_canary(&model.id, c.percent) => {
                (c.version.to_string(), Track::Canary)
            }
            (None, _) => (deployment.version.to_string(), Track::Stable),
        };
        let version = self.resolve_version(&model, Some(&number)).await?;
        Ok(Serving {
            model,
            version,
            deployment,
            track,
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
        Ok(version == d.version || d.canary.is_some_and(|c| c.version == version))
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
            // A fine-tuned model serves on its library base (library/adapters.rs).
            Format::LoraAdapter => {
                return Err(CoreError::InvalidInput(format!(
                    "model {:?} is fine-tuned: it serves on its base model through /v1/chat/completions and /v1/completions, with no deployment",
                    model.name
                )));
            }
            // Pulled formats live in the library, installation-wide, not as versions.
            other @ (Format::Gguf
            | Format::HfEncoder
            | Format::Ppocr
            | Format::OnnxTokenClassifier
            | Format::Whisper) => {
                return Err(CoreError::InvalidInput(format!(
                    "model {:?} version {} is stored as {other}, which serves from the library, not as a tenant model",
                    model.name, version.version
                )));
            }
        }
        Ok(key)
    }

    /// A model of the caller's tenant that the caller's key may use (its allow-list).
    /// Whether the caller's tenant has a model of `reference`'s name (then a library
    /// model of the same name is not the one meant).
    pub async fn tenant_has(&self, principal: &Principal, reference: &str) -> Result<bool> {
        let r = parse_ref(reference);
        Ok(self
            .inner
            .meta
            .model_by_name(&principal.tenant_id, r.name)
            .await?
            .is_some())
    }

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

    pub(crate) async fn model_by_id(&self, id: &str) -> Result<ModelRecord> {
        self.inner
            .meta
            .model(id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no model {id}")))
    }

    pub(crate) async fn latest_version(&self, model: &ModelRecord) -> Result<ModelVersionRecord> {
        self.inner
            .meta
            .model_versions(&model.id)
            .await?
            .pop()
            .ok_or_else(|| CoreError::NotFound(format!("model {:?} has no versions", model.name)))
    }

    pub(crate) async fn resolve_version(
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

/// An explanation the version cannot give is the caller's mistake (400), found before
/// the request queues: an unknown target class, or exact attributions of a network.
fn check_explain(opts: &aiaas_engine::ExplainOptions, version: &ModelVersionRecord) -> Result<()> {
    if let Some(target) = &opts.target {
        if !version.labels.contains(target) {
            return Err(CoreError::InvalidInput(format!(
                "explain.target {target:?} is not a label of this model ({})",
                version.labels.join(", ")
            )));
        }
    }
    let tfidf = version.architecture == "tfidf-logreg";
    match opts.method {
        aiaas_engine::ExplainMethod::Exact if !tfidf => {
            return Err(CoreError::InvalidInput(format!(
                "exact attributions exist for tfidf-logreg models; this one is {}: use \
                 \"integrated-gradients\" or \"occlusion\"",
                version.architecture
            )))
        }
        aiaas_engine::ExplainMethod::IntegratedGradients if tfidf => {
            return Err(CoreError::InvalidInput(
                "integrated gradients explain the networks; tfidf-logreg's attributions are \
                 exact: use \"exact\" (or \"occlusion\")"
                    .into(),
            ))
        }
        _ => {}
    }
    if let Some(steps) = opts.steps {
        if !(1..=aiaas_engine::MAX_IG_STEPS).contains(&steps) {
            return Err(CoreError::InvalidInput(format!(
                "explain.steps must be between 1 and {}, got {steps}",
                aiaas_engine::MAX_IG_STEPS
            )));
        }
    }
    Ok(())
}
