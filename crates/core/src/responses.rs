//! The Responses API's stored responses: a tenant's responses kept (encrypted, in the
//! artifact store, like every artifact) for the retention, read back by id to show or
//! to continue a conversation (`previous_response_id`), deleted on request or when
//! they expire. The document is the API's (the response and the conversation it
//! continued); this service keeps it, owns who may see it, and forgets it on time.

use std::sync::Arc;
use std::time::Duration;

use aiaas_store::{ArtifactStore, Metadata, ResponseRecord};
use aiaas_types::{Permission, Principal};

use crate::auth::require;
use crate::{CoreError, Result};

/// Stored responses per tenant.
#[derive(Clone)]
pub struct Responses {
    inner: Arc<ResponsesState>,
}

struct ResponsesState {
    meta: Metadata,
    artifacts: Arc<dyn ArtifactStore>,
    retention: Duration,
}

/// OpenAI keeps stored responses 30 days.
pub const DEFAULT_RESPONSE_RETENTION: Duration = Duration::from_secs(30 * 86_400);

impl Responses {
    pub(crate) fn new(
        meta: Metadata,
        artifacts: Arc<dyn ArtifactStore>,
        retention: Duration,
    ) -> Responses {
        Responses {
            inner: Arc::new(ResponsesState {
                meta,
                artifacts,
                retention,
            }),
        }
    }

    /// Keep `document` as response `id` of the caller's tenant: file first, row last.
    pub async fn save(&self, principal: &Principal, id: &str, document: Vec<u8>) -> Result<()> {
        require(principal, Permission::Infer)?;
        check_id(id)?;
        let now = aiaas_types::now_ms();
        let record = ResponseRecord {
            id: id.to_string(),
            tenant_id: principal.tenant_id.clone(),
            artifact_key: format!("responses/{}/{id}", principal.tenant_id),
            created_at: now,
            expires_at: now.saturating_add(self.inner.retention.as_millis() as i64),
        };
        let (artifacts, key) = (self.inner.artifacts.clone(), record.artifact_key.clone());
        tokio::task::spawn_blocking(move || artifacts.put(&key, &document)).await??;
        if let Err(e) = self.inner.meta.insert_response(&record).await {
            self.remove_file(&record.artifact_key).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// A stored response of the caller's tenant (another tenant's, an expired or a
    /// missing one: 404 alike).
    pub async fn get(&self, principal: &Principal, id: &str) -> Result<Vec<u8>> {
        let record = self.visible(principal, id).await?;
        let artifacts = self.inner.artifacts.clone();
        Ok(tokio::task::spawn_blocking(move || artifacts.get(&record.artifact_key)).await??)
    }

    pub async fn delete(&self, principal: &Principal, id: &str) -> Result<()> {
        let record = self.visible(principal, id).await?;
        self.inner.meta.delete_response(&record.id).await?;
        self.remove_file(&record.artifact_key).await;
        Ok(())
    }

    /// Forget responses past their retention; how many.
    pub(crate) async fn purge_expired(&self) -> Result<usize> {
        let expired = self
            .inner
            .meta
            .expired_responses(aiaas_types::now_ms())
            .await?;
        for (id, key) in &expired {
            self.inner.meta.delete_response(id).await?;
            self.remove_file(key).await;
        }
        Ok(expired.len())
    }

    async fn visible(&self, principal: &Principal, id: &str) -> Result<ResponseRecord> {
        require(principal, Permission::Infer)?;
        let missing = || CoreError::NotFound(format!("no response {id:?}"));
        if check_id(id).is_err() {
            return Err(missing());
        }
        match self.inner.meta.response(id).await? {
            Some(r)
                if r.tenant_id == principal.tenant_id && r.expires_at > aiaas_types::now_ms() =>
            {
                Ok(r)
            }
            _ => Err(missing()),
        }
    }

    async fn remove_file(&self, key: &str) {
        let (artifacts, key) = (self.inner.artifacts.clone(), key.to_string());
        let removed = tokio::task::spawn_blocking(move || artifacts.delete_prefix(&key)).await;
        if !matches!(removed, Ok(Ok(()))) {
            tracing::warn!("a response's file was left in the artifact store");
        }
    }
}

/// Response ids are `resp_` and letters or digits (they become artifact keys).
fn check_id(id: &str) -> Result<()> {
    let ok = id.len() <= 80
        && id.strip_prefix("resp_").is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidInput(format!(
            "{id:?} is not a response id"
        )))
    }
}
