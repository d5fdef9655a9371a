//! Named-entity recognition on library models (`token-classification`): texts in, each
//! text's entities out, read on the model's batch runtime.

use aiaas_engine::ner::{Aggregation, Entity, NerOptions};
use aiaas_engine::EntityRequest;
use aiaas_types::{Permission, Principal, Task};

use super::{runtime_key, Library};
use crate::auth::require;
use crate::{CoreError, Result};

/// Most texts in one request.
pub const MAX_TEXTS_PER_REQUEST: usize = 256;
/// The longest overlap asked between windows of a long text (tokens).
pub const MAX_STRIDE: usize = 256;

/// How the caller wants texts read; unset fields take the model's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct EntityOptions {
    pub aggregation: Option<Aggregation>,
    pub stride: Option<usize>,
}

/// What a token classifier found.
#[derive(Debug, Clone)]
pub struct EntityAnswer {
    pub model: String,
    pub aggregation: Aggregation,
    /// Per text, in the order given.
    pub entities: Vec<Vec<Entity>>,
}

impl Library {
    /// The entities in `texts`, by the token classifier `name`.
    pub async fn recognise(
        &self,
        principal: &Principal,
        name: &str,
        texts: Vec<String>,
        options: EntityOptions,
    ) -> Result<EntityAnswer> {
        require(principal, Permission::Infer)?;
        let record = self.visible_library_model(principal, name).await?;
        if record.task != Task::TokenClassification {
            return Err(CoreError::InvalidInput(format!(
                "model {:?} is a {} model; entities are found by a token-classification model \
                 (aiaas pull pii-ner)",
                record.name, record.task
            )));
        }
        if texts.is_empty() || texts.len() > MAX_TEXTS_PER_REQUEST {
            return Err(CoreError::InvalidInput(format!(
                "give 1-{MAX_TEXTS_PER_REQUEST} texts per request, got {}",
                texts.len()
            )));
        }
        let defaults = &record.defaults;
        let aggregation = options
            .aggregation
            .or_else(|| {
                defaults
                    .get("aggregation")
                    .and_then(|v| v.as_str())
                    .and_then(Aggregation::parse)
            })
            .unwrap_or_default();
        let stride = options
            .stride
            .or_else(|| {
                defaults
                    .get("stride")
                    .and_then(serde_json::Value::as_u64)
                    .map(|v| v as usize)
            })
            .unwrap_or(128);
        if stride > MAX_STRIDE {
            return Err(CoreError::InvalidInput(format!(
                "stride must be 0-{MAX_STRIDE} tokens, got {stride}"
            )));
        }
        let entities = self
            .run_token_classifier(
                &record,
                texts,
                NerOptions {
                    aggregation,
                    stride,
                },
            )
            .await?;
        Ok(EntityAnswer {
            model: record.name,
            aggregation,
            entities,
        })
    }

    /// The entities in `texts` by the library's token classifier `name`, for masking
    /// personal data: the platform's own use, so no key's allow-list applies; any number
    /// of texts (run in chunks). `Conflict` saying how to install it when the model is
    /// not in the library.
    pub(crate) async fn entities_for_masking(
        &self,
        name: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<Entity>>> {
        let record = self
            .inner
            .meta
            .library_model(name)
            .await?
            .filter(|r| r.task == Task::TokenClassification)
            .ok_or_else(|| {
                CoreError::Conflict(format!(
                    "the ner detector finds names and addresses with the library model {name:?}, \
                     which is not installed: aiaas pull {name}"
                ))
            })?;
        let options = NerOptions {
            aggregation: Aggregation::First,
            stride: 128,
        };
        let mut out = Vec::with_capacity(texts.len());
        let mut texts = texts.into_iter().peekable();
        while texts.peek().is_some() {
            let chunk: Vec<String> = texts.by_ref().take(MAX_TEXTS_PER_REQUEST).collect();
            out.extend(self.run_token_classifier(&record, chunk, options).await?);
        }
        Ok(out)
    }

    async fn run_token_classifier(
        &self,
        record: &aiaas_store::LibraryModelRecord,
        texts: Vec<String>,
        options: NerOptions,
    ) -> Result<Vec<Vec<Entity>>> {
        let key = runtime_key(&record.name);
        self.inner.engine.check_queue_policy(&key)?;
        let timeout = self.inner.config.load_timeout;
        self.ensure_library_loaded(record, None, timeout).await?;
        self.inner.engine.touch(&key);
        let request = EntityRequest { texts, options };
        Ok(self.inner.engine.recognise_entities(&key, request).await?)
    }
}
