//! A job's request checked at once (what needs no file read: the base model, the files'
//! tenant, purpose and format, the hyperparameters), then its files validated in the
//! background: every example read again, and "auto" hyperparameters resolved from the
//! counts, before the job queues.

use aiaas_finetune::{LoraConfig, Target};
use aiaas_store::{FileRecord, JobRecord, LibraryModelRecord};
use aiaas_types::{Format, Principal, Task};

use super::{FineTuneRequest, FineTuning, JobConfig, JobError};
use crate::files::ExampleFormat;
use crate::{CoreError, Result};

/// A hyperparameter: a value, or "auto" (chosen from the training file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting<T> {
    Auto,
    Value(T),
}

/// OpenAI's supervised hyperparameters, and the adapter's shape (aiaas's extension).
#[derive(Debug, Clone, Default)]
pub struct Hyperparameters {
    pub n_epochs: Option<Setting<u32>>,
    pub batch_size: Option<Setting<u32>>,
    pub learning_rate_multiplier: Option<Setting<f64>>,
    pub lora: LoraSpec,
}

/// The LoRA adapter's shape; `None`: the default (rank 8, alpha 16, dropout 0.05, the
/// attention projections).
#[derive(Debug, Clone, Default)]
pub struct LoraSpec {
    pub rank: Option<usize>,
    pub alpha: Option<f32>,
    pub dropout: Option<f32>,
    /// `q`, `k`, `v`, `o`, `gate`, `up`, `down` (or their Hugging Face names).
    pub targets: Option<Vec<String>>,
}

/// The learning rate a multiplier of 1 stands for (LoRA on small models learns at about
/// this rate; the multiplier scales it).
pub(crate) const BASE_LEARNING_RATE: f64 = 1e-3;
/// Longest example trained on, in tokens (longer ones are cut, with a warning event).
const MAX_EXAMPLE_TOKENS: usize = 2048;

/// A request's checked parts.
pub(super) struct Checked {
    pub(super) base: String,
    pub(super) config: JobConfig,
}

fn bad(param: &str, message: String) -> CoreError {
    CoreError::InvalidInput(format!("{param}: {message}"))
}

fn setting_json<T: serde::Serialize>(s: Option<Setting<T>>) -> serde_json::Value {
    match s {
        None | Some(Setting::Auto) => serde_json::Value::from("auto"),
        Some(Setting::Value(v)) => serde_json::to_value(v).unwrap_or_default(),
    }
}

impl FineTuning {
    pub(super) async fn check_request(
        &self,
        principal: &Principal,
        req: &FineTuneRequest,
    ) -> Result<Checked> {
        let base = self.base_model(principal, &req.model).await?;
        let h = &req.hyperparameters;
        if let Some(Setting::Value(n)) = h.n_epochs {
            if !(1..=50).contains(&n) {
                return Err(bad(
                    "hyperparameters.n_epochs",
                    format!("must be 1-50, got {n}"),
                ));
            }
        }
        if let Some(Setting::Value(n)) = h.batch_size {
            if !(1..=256).contains(&n) {
                return Err(bad(
                    "hyperparameters.batch_size",
                    format!("must be 1-256, got {n}"),
                ));
            }
        }
        if let Some(Setting::Value(m)) = h.learning_rate_multiplier {
            if !(m > 0.0 && m <= 100.0) {
                return Err(bad(
                    "hyperparameters.learning_rate_multiplier",
                    format!("must be above 0 and at most 100, got {m}"),
                ));
            }
        }
        let lora = lora_config(&h.lora)?;
        if let Some(s) = &req.suffix {
            let ok = !s.is_empty()
                && s.len() <= 40
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(bad(
                    "suffix",
                    format!("{s:?} is invalid: use 1-40 letters, digits, '-', '_' or '.'"),
                ));
            }
        }
        let training = self
            .usable_file(principal, &req.training_file, "training_file", &base)
            .await?;
        if let Some(v) = &req.validation_file {
            let validation = self
                .usable_file(principal, v, "validation_file", &base)
                .await?;
            if validation.format != training.format {
                return Err(bad(
                    "validation_file",
                    format!(
                        "holds {} examples and the training file {} examples: use one format",
                        validation.format, training.format
                    ),
                ));
            }
        }
        let config = JobConfig {
            suffix: req.suffix.clone(),
            seed: req.seed.unwrap_or_else(|| u64::from(rand::random::<u32>())),
            hyperparameters: serde_json::json!({
                "n_epochs": setting_json(h.n_epochs),
                "batch_size": setting_json(h.batch_size),
                "learning_rate_multiplier": setting_json(h.learning_rate_multiplier),
            }),
            lora,
            max_tokens: MAX_EXAMPLE_TOKENS,
        };
        Ok(Checked {
            base: base.name,
            config,
        })
    }

    /// The library model to adapt: a GGUF chat or completion model of an architecture
    /// the trainer implements.
    async fn base_model(&self, principal: &Principal, name: &str) -> Result<LibraryModelRecord> {
        let name = crate::library::strip_tag(name);
        if !principal.may_call_model(name) {
            return Err(CoreError::Forbidden(format!(
                "this API key may not use model {name:?}"
            )));
        }
        let record = self
            .inner
            .config
            .meta
            .library_model(name)
            .await?
            .ok_or_else(|| bad("model", format!("no model {name:?} in the library")))?;
        if record.format != Format::Gguf || !matches!(record.task, Task::Chat | Task::Completion) {
            return Err(bad(
                "model",
                format!(
                    "{name:?} is a {} model; fine-tuning adapts GGUF chat and completion models",
                    record.task
                ),
            ));
        }
        let architecture = record.defaults["architecture"].as_str().unwrap_or("llama");
        if !aiaas_finetune::ARCHITECTURES.contains(&architecture) {
            return Err(bad(
                "model",
                format!(
                    "{name:?} is a {architecture} model; aiaas fine-tunes the {} architectures",
                    aiaas_finetune::ARCHITECTURES.join(" and ")
                ),
            ));
        }
        Ok(record)
    }

    /// A file of the caller's tenant meant for fine-tuning, in a format the base reads.
    async fn usable_file(
        &self,
        principal: &Principal,
        id: &str,
        param: &str,
        base: &LibraryModelRecord,
    ) -> Result<FileRecord> {
        let file = self
            .inner
            .config
            .files
            .of_tenant(&principal.tenant_id, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("{param}: no file {id:?}")))?;
        if file.purpose != "fine-tune" {
            return Err(bad(
                param,
                format!(
                    "file {id} was uploaded for {:?}; upload it with purpose \"fine-tune\"",
                    file.purpose
                ),
            ));
        }
        if base.task == Task::Completion && file.format == ExampleFormat::Chat.as_str() {
            return Err(bad(
                param,
                format!(
                    "{} is a completion model without a chat template: train it on prompt/completion examples",
                    base.name
                ),
            ));
        }
        Ok(file)
    }

    /// Validate a job's files in the background (once per process at a time).
    pub(super) fn spawn_validation(&self, job: JobRecord) {
        if !self
            .inner
            .validating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.id.clone())
        {
            return;
        }
        let p = self.clone();
        tokio::spawn(async move {
            let id = job.id.clone();
            let (config, outcome) = match p.validate(&job).await {
                Ok(config) => (config, Ok(())),
                Err(e) => (job.config.clone(), Err(e)),
            };
            let stored = outcome.as_ref().map(|_| ()).map_err(JobError::to_stored);
            match p
                .inner
                .config
                .meta
                .end_validation(&id, &config, stored)
                .await
            {
                Ok(true) => match &outcome {
                    Ok(()) => {
                        p.append_event(&id, "info", "Files validated; the job is queued", None)
                            .await;
                        p.inner.wakeup.notify_one();
                    }
                    Err(e) => p.append_event(&id, "error", &e.message, None).await,
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(job = %id, error = %e, "recording a validation failed"),
            }
            p.inner
                .validating
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }

    /// Read both files' examples again and resolve "auto": the job's configuration as
    /// it will train.
    async fn validate(&self, job: &JobRecord) -> std::result::Result<serde_json::Value, JobError> {
        let mut config: JobConfig = serde_json::from_value(job.config.clone()).map_err(|e| {
            JobError::new("invalid_job", format!("stored configuration: {e}"), None)
        })?;
        let count =
            |param: &'static str, id: String| async move {
                let code = format!("invalid_{param}");
                let file = self
                    .inner
                    .config
                    .files
                    .of_tenant(&job.tenant_id, &id)
                    .await
                    .map_err(|e| JobError::new(&code, e.to_string(), Some(param)))?
                    .ok_or_else(|| {
                        JobError::new(&code, format!("file {id} was deleted"), Some(param))
                    })?;
                let examples =
                    self.inner.config.files.examples(&file).await.map_err(|e| {
                        JobError::new(&code, format!("file {id}: {e}"), Some(param))
                    })?;
                if examples.examples.is_empty() {
                    return Err(JobError::new(
                        &code,
                        format!("file {id} has no examples"),
                        Some(param),
                    ));
                }
                Ok::<_, JobError>(examples.examples.len())
            };
        let n = count("training_file", job.dataset_id.clone()).await?;
        if let Some(v) = &job.test_dataset_id {
            count("validation_file", v.clone()).await?;
        }
        let h = &mut config.hyperparameters;
        let batch = h["batch_size"]
            .as_u64()
            .unwrap_or_else(|| auto_batch_size(n) as u64)
            .min(n as u64);
        h["batch_size"] = batch.into();
        if !h["n_epochs"].is_u64() {
            h["n_epochs"] = auto_epochs(n).into();
        }
        if !h["learning_rate_multiplier"].is_number() {
            h["learning_rate_multiplier"] = 1.0.into();
        }
        serde_json::to_value(&config).map_err(|e| JobError::new("invalid_job", e.to_string(), None))
    }
}

/// "auto" batch size: about a tenth of the examples, 1 to 8.
fn auto_batch_size(examples: usize) -> usize {
    (examples / 10).clamp(1, 8)
}

/// "auto" epochs: enough passes for about 100 examples seen, 3 to 10.
fn auto_epochs(examples: usize) -> usize {
    100usize.div_ceil(examples.max(1)).clamp(3, 10)
}

fn lora_config(spec: &LoraSpec) -> Result<LoraConfig> {
    let mut c = LoraConfig::default();
    if let Some(r) = spec.rank {
        c.rank = r;
    }
    if let Some(a) = spec.alpha {
        c.alpha = a;
    }
    if let Some(d) = spec.dropout {
        c.dropout = d;
    }
    if let Some(targets) = &spec.targets {
        let mut parsed = Vec::new();
        for t in targets {
            let target = Target::parse(t).ok_or_else(|| {
                bad(
                    "hyperparameters.lora_targets",
                    format!("unknown projection {t:?}: use q, k, v, o, gate, up or down"),
                )
            })?;
            if !parsed.contains(&target) {
                parsed.push(target);
            }
        }
        c.targets = parsed;
    }
    c.check()
        .map_err(|e| bad("hyperparameters.lora", e.to_string()))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_settings_follow_the_example_count() {
        assert_eq!((auto_batch_size(5), auto_epochs(5)), (1, 10));
        assert_eq!((auto_batch_size(24), auto_epochs(24)), (2, 5));
        assert_eq!((auto_batch_size(1000), auto_epochs(1000)), (8, 3));
    }

    #[test]
    fn lora_specs_are_checked() {
        let c = lora_config(&LoraSpec {
            targets: Some(vec!["q_proj".into(), "v".into(), "q".into()]),
            ..LoraSpec::default()
        })
        .unwrap();
        assert_eq!(c.targets, vec![Target::Q, Target::V]);
        assert!(lora_config(&LoraSpec {
            rank: Some(0),
            ..LoraSpec::default()
        })
        .is_err());
        let e = lora_config(&LoraSpec {
            targets: Some(vec!["lm_head".into()]),
            ..LoraSpec::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("lm_head"), "{e}");
    }
}
