//! Models of the tenants' own, uploaded as ONNX files: upload (validated, then stored
//! encrypted as a new version), their serving configuration, and inference on typed
//! tensors. Part of the models service: versions, aliases, deployments, quotas and
//! audit are the same as a trained classifier's.

use std::path::{Path, PathBuf};

use aiaas_engine::onnx::{ConfigRequest, ModelConfig, OnnxModel, Runtime, Tensor};
use aiaas_engine::{BatchSettings, TensorRequest};
use aiaas_store::NewModelVersion;
use aiaas_types::{Format, Permission, Principal, Task};

use crate::auth::{check_name, require};
use crate::models::{Models, Serving};
use crate::{CoreError, ModelVersionRecord, Result};

/// The one file of an ONNX version, under its artifact prefix.
pub(crate) const ONNX_FILE: &str = "model.onnx";

/// The answer of a tensor model.
#[derive(Debug, Clone)]
pub struct TensorAnswer {
    pub model: String,
    pub version: i64,
    pub outputs: Vec<Tensor>,
    /// Class names of classification outputs, from the version's configuration.
    pub labels: Option<Vec<String>>,
}

/// The ONNX Runtime library to use: the one given, or the newest `libonnxruntime.so*`
/// the set-up script put in `<data dir>/cache/onnxruntime`.
pub(crate) fn find_onnxruntime(given: Option<PathBuf>, data_dir: &Path) -> Option<PathBuf> {
    given.or_else(|| Runtime::find_in(&data_dir.join("cache").join("onnxruntime")))
}

/// A stored version's configuration (read in place, not copied: it is read per request).
pub(crate) fn config_of(version: &ModelVersionRecord) -> Result<ModelConfig> {
    use serde::Deserialize;
    ModelConfig::deserialize(&version.config).map_err(|e| {
        CoreError::Internal(format!(
            "version {} of model {} has an unreadable configuration: {e}",
            version.version, version.model_id
        ))
    })
}

/// The deployment's batching, narrowed by the version's configuration: at most
/// `max_batch_size` rows (0: each request alone), its queue delay when it gives one.
pub(crate) fn batch_settings(config: &ModelConfig, deployed: BatchSettings) -> BatchSettings {
    BatchSettings {
        max_batch: deployed.max_batch.min(config.max_batch_size).max(1),
        max_delay: config.dynamic_batching.map_or(deployed.max_delay, |d| {
            std::time::Duration::from_millis(d.max_queue_delay_ms)
        }),
        queue_capacity: deployed.queue_capacity,
        max_queue_time: deployed.max_queue_time,
    }
}

impl Models {
    /// Store `bytes` (an `.onnx` file) as the next version of the caller's model `name`
    /// (created on first upload), with `config` (Triton's `config.pbtxt` in JSON; what
    /// it leaves out is read from the graph). The file is loaded by ONNX Runtime first:
    /// a file it cannot run, or a configuration that does not fit it, stores nothing.
    pub async fn upload_onnx(
        &self,
        principal: &Principal,
        name: &str,
        bytes: Vec<u8>,
        config: Option<serde_json::Value>,
    ) -> Result<ModelVersionRecord> {
        require(principal, Permission::Deploy)?;
        check_name("model", name)?;
        if !principal.may_call_model(name) {
            return Err(CoreError::Forbidden(format!(
                "this API key may not use model {name:?}"
            )));
        }
        let request: ConfigRequest = match config {
            None => ConfigRequest::default(),
            Some(v) => serde_json::from_value(v)
                .map_err(|e| CoreError::InvalidInput(format!("config: {e}")))?,
        };
        let meta = self.inner().meta.clone();
        if let Some(existing) = meta.model_by_name(&principal.tenant_id, name).await? {
            if existing.task != Task::Tensor {
                return Err(CoreError::Conflict(format!(
                    "model {name:?} is a {} model; give the ONNX model a name of its own",
                    existing.task
                )));
            }
        }
        if bytes.is_empty() {
            return Err(CoreError::InvalidInput(
                "the upload is empty; send the .onnx file".into(),
            ));
        }
        let runtime = self.onnx_runtime()?;
        let prefix = format!(
            "models/{}/{name}/upload-{}",
            principal.tenant_id,
            aiaas_types::new_id()
        );
        let artifacts = self.inner().artifacts.clone();
        let key = format!("{prefix}/{ONNX_FILE}");
        // Validate (parse, operators, types) and store, off the async workers.
        let config = tokio::task::spawn_blocking(move || {
            let model = OnnxModel::load(runtime, &bytes, 1)
                .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
            let config = ModelConfig::resolve(request, model.signature())
                .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
            artifacts.put(&key, &bytes)?;
            Ok::<_, CoreError>(config)
        })
        .await??;
        let inserted = meta
            .insert_model_version(&NewModelVersion {
                tenant_id: principal.tenant_id.clone(),
                model_name: name.to_string(),
                task: Task::Tensor,
                format: Format::Onnx,
                architecture: match &config.producer {
                    Some(p) => format!("onnx ({p})"),
                    None => "onnx".into(),
                },
                labels: config.labels.clone().unwrap_or_default(),
                artifact_prefix: prefix.clone(),
                files: vec![ONNX_FILE.into()],
                report: serde_json::Value::Object(Default::default()),
                config: serde_json::to_value(&config)
                    .map_err(|e| CoreError::Internal(e.to_string()))?,
                job_id: None,
                dataset_id: None,
            })
            .await;
        match inserted {
            Ok(v) => {
                tracing::info!(model = %name, version = v.version, "ONNX model uploaded");
                Ok(v)
            }
            Err(e) => {
                // Nothing half-made: the stored file goes with the failed registration.
                let artifacts = self.inner().artifacts.clone();
                let _ = tokio::task::spawn_blocking(move || artifacts.delete_prefix(&prefix)).await;
                Err(e.into())
            }
        }
    }

    /// Run typed tensors through a deployed tensor model: `name`, `name:version` or
    /// `name:alias`. `outputs` names the outputs to give (default: the served ones).
    pub async fn infer_tensors(
        &self,
        principal: &Principal,
        reference: &str,
        inputs: Vec<Tensor>,
        outputs: Option<Vec<String>>,
    ) -> Result<TensorAnswer> {
        require(principal, Permission::Infer)?;
        let serving = self.serving(principal, reference).await?;
        let (model, version) = (&serving.model, &serving.version);
        if version.format != Format::Onnx {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} version {} is a {} model: it takes texts (one BYTES input)",
                model.name, version.version, model.task
            )));
        }
        let config = config_of(version)?;
        self.infer_on(&serving, &config, inputs, outputs).await
    }

    /// Run typed tensors through the (ONNX) version a request was routed to, whose
    /// configuration the caller read.
    pub(crate) async fn infer_on(
        &self,
        serving: &Serving,
        config: &ModelConfig,
        inputs: Vec<Tensor>,
        outputs: Option<Vec<String>>,
    ) -> Result<TensorAnswer> {
        let Serving {
            model,
            version,
            deployment,
            ..
        } = serving;
        let outputs = match outputs {
            Some(names) => {
                if let Some(n) = names
                    .iter()
                    .find(|n| !config.outputs.iter().any(|o| &o.name == *n))
                {
                    return Err(CoreError::InvalidInput(format!(
                        "model {:?} has no output {n:?} (its outputs: {})",
                        model.name,
                        config.output_names().join(", ")
                    )));
                }
                names
            }
            None => config.output_names(),
        };
        let answered = async {
            let key = self.ensure_loaded(model, version, deployment).await?;
            let request = TensorRequest {
                inputs,
                outputs: Some(outputs),
            };
            Ok(self.inner().engine.infer_tensors(&key, request).await?)
        }
        .await;
        self.settle(serving, &answered);
        let outputs = answered?;
        Ok(TensorAnswer {
            model: model.name.clone(),
            version: version.version,
            outputs,
            labels: config.labels.clone(),
        })
    }

    /// ONNX Runtime, loaded on first use from the configured library.
    pub(crate) fn onnx_runtime(&self) -> Result<&'static Runtime> {
        load_onnxruntime(self.inner().onnxruntime.as_deref())
    }
}

/// ONNX Runtime from `path` (loaded once per process); `Unavailable` saying how to
/// install it when there is none.
pub(crate) fn load_onnxruntime(path: Option<&Path>) -> Result<&'static Runtime> {
    let path = path.ok_or_else(|| {
        CoreError::Unavailable(
            "ONNX Runtime is not installed: run scripts/setup.sh, or start the server \
             with --onnxruntime PATH (a libonnxruntime.so)"
                .into(),
        )
    })?;
    Runtime::load(path).map_err(|e| CoreError::Unavailable(e.to_string()))
}
