//! The model library (models pulled into the installation's model cache) and per-key
//! daily usage.

use aiaas_types::{Format, Task};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{parse_json, Metadata, Result, StoreError};

/// The owner of installation-wide models: a reserved tenants row that no key belongs to
/// and that no listing shows.
pub const INSTALLATION: &str = "installation";

/// A model in the library: installation-wide, callable by every tenant's keys (subject to
/// their allow-lists). Read from the one model registry: the `models` row owned by
/// [`INSTALLATION`], the version its deployment serves, and that deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryModelRecord {
    /// The model's id (its pulled files live under `library/<id>` in a shared store).
    pub id: String,
    /// The model's name, which is also its folder in the model cache.
    pub name: String,
    pub task: Task,
    pub format: Format,
    pub source: String,
    pub license: String,
    /// The pulled files: objects with a name, size and digest.
    pub files: serde_json::Value,
    pub size_bytes: i64,
    /// Default request parameters (temperature, …) from the catalogue.
    pub defaults: serde_json::Value,
    /// How it is served (slots, context, queue, keep-alive).
    pub settings: serde_json::Value,
    pub created_at: i64,
}

/// Usage of one key on one model on one day (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub tenant_id: String,
    pub key_id: String,
    pub model: String,
    pub day: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// Where a library model's sealed files live in a shared artifact store (the prefix
/// its version row records; migration 0009 writes the same for models it moves).
pub fn library_prefix(id: &str) -> String {
    format!("library/{id}")
}

/// A library model: the installation's model, the version its deployment serves, and the
/// deployment's settings.
const LIBRARY_SELECT: &str = "SELECT m.id, m.name, m.task, m.created_at, v.format, v.source, \
     v.license, v.files, v.size_bytes, v.config, d.serving FROM models m \
     JOIN deployments d ON d.model_id = m.id \
     JOIN model_versions v ON v.model_id = m.id AND v.version = d.version \
     WHERE m.tenant_id = $1";

impl Metadata {
    /// Register a pulled model as an installation-wide model with its first version,
    /// deployed, in one transaction; a name already taken is a conflict.
    pub async fn insert_library_model(&self, m: &LibraryModelRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO models (id, tenant_id, name, task, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(&m.id)
        .bind(INSTALLATION)
        .bind(&m.name)
        .bind(m.task.as_str())
        .bind(m.created_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("model {:?}", m.name)));
        }
        sqlx::query(
            "INSERT INTO model_versions (model_id, version, architecture, labels, \
             artifact_prefix, files, report, config, job_id, dataset_id, created_at, format, \
             source, license, size_bytes) \
             VALUES ($1, 1, $2, '[]', $3, $4, '{}', $5, NULL, NULL, $6, $2, $7, $8, $9)",
        )
        .bind(&m.id)
        .bind(m.format.as_str())
        .bind(library_prefix(&m.id))
        .bind(m.files.to_string())
        .bind(m.defaults.to_string())
        .bind(m.created_at)
        .bind(&m.source)
        .bind(&m.license)
        .bind(m.size_bytes)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO deployments (model_id, version, max_batch, max_delay_ms, \
             queue_capacity, pii_inputs, created_at, updated_at, serving) \
             VALUES ($1, 1, 0, 0, 0, NULL, $2, $2, $3)",
        )
        .bind(&m.id)
        .bind(m.created_at)
        .bind(m.settings.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.invalidate(crate::cache::Topic::Models).await;
        Ok(())
    }

    pub async fn library_model(&self, name: &str) -> Result<Option<LibraryModelRecord>> {
        let row = sqlx::query(&format!("{LIBRARY_SELECT} AND m.name = $2"))
            .bind(INSTALLATION)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(library_from_row).transpose()
    }

    pub async fn library_models(&self) -> Result<Vec<LibraryModelRecord>> {
        let rows = sqlx::query(&format!("{LIBRARY_SELECT} ORDER BY m.name"))
            .bind(INSTALLATION)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(library_from_row).collect()
    }

    /// Replace how a library model is served (its deployment's settings).
    pub async fn set_library_settings(
        &self,
        name: &str,
        settings: &serde_json::Value,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deployments SET serving = $1, updated_at = $2 WHERE model_id = \
             (SELECT id FROM models WHERE tenant_id = $3 AND name = $4)",
        )
        .bind(settings.to_string())
        .bind(aiaas_types::now_ms())
        .bind(INSTALLATION)
        .bind(name)
        .execute(&self.pool)
        .await?;
        self.invalidate(crate::cache::Topic::Models).await;
        Ok(done.rows_affected() > 0)
    }

    /// Unregister a library model (its versions and deployment with it).
    pub async fn delete_library_model(&self, name: &str) -> Result<bool> {
        let Some(m) = self.model_by_name(INSTALLATION, name).await? else {
            return Ok(false);
        };
        self.delete_model(&m.id).await?;
        Ok(true)
    }

    /// Add one request's tokens to a key's usage of the day.
    pub async fn record_usage(&self, u: &UsageRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO usage_daily (tenant_id, key_id, model, day, requests, prompt_tokens, \
             completion_tokens) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (key_id, model, day) DO UPDATE SET \
             requests = usage_daily.requests + excluded.requests, \
             prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, \
             completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens",
        )
        .bind(&u.tenant_id)
        .bind(&u.key_id)
        .bind(&u.model)
        .bind(&u.day)
        .bind(u.requests)
        .bind(u.prompt_tokens)
        .bind(u.completion_tokens)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Usage rows of a tenant (all tenants for `None`), newest day first.
    /// Tokens (prompt + completion) recorded in a calendar month (`YYYY-MM`) for a key,
    /// or for a whole tenant.
    pub async fn tokens_in_month(
        &self,
        key_id: Option<&str>,
        tenant_id: Option<&str>,
        month: &str,
    ) -> Result<u64> {
        let (column, id) = match (key_id, tenant_id) {
            (Some(k), _) => ("key_id", k),
            (None, Some(t)) => ("tenant_id", t),
            (None, None) => return Ok(0),
        };
        // Days are `YYYY-MM-DD` text: the month's days sort between these two bounds.
        let row: (Option<i64>,) = sqlx::query_as(&format!(
            "SELECT CAST(SUM(prompt_tokens + completion_tokens) AS BIGINT) FROM usage_daily \
             WHERE {column} = $1 AND day >= $2 AND day <= $3"
        ))
        .bind(id)
        .bind(format!("{month}-01"))
        .bind(format!("{month}-31"))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.0.unwrap_or(0).max(0) as u64)
    }

    pub async fn usage(&self, tenant_id: Option<&str>) -> Result<Vec<UsageRecord>> {
        let columns = "tenant_id, key_id, model, day, requests, prompt_tokens, completion_tokens";
        let rows = match tenant_id {
            Some(t) => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM usage_daily WHERE tenant_id = $1 \
                     ORDER BY day DESC, key_id, model"
                ))
                .bind(t)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM usage_daily ORDER BY day DESC, key_id, model"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(UsageRecord {
                    tenant_id: r.try_get("tenant_id")?,
                    key_id: r.try_get("key_id")?,
                    model: r.try_get("model")?,
                    day: r.try_get("day")?,
                    requests: r.try_get("requests")?,
                    prompt_tokens: r.try_get("prompt_tokens")?,
                    completion_tokens: r.try_get("completion_tokens")?,
                })
            })
            .collect()
    }
}

fn library_from_row(r: &AnyRow) -> Result<LibraryModelRecord> {
    Ok(LibraryModelRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        task: crate::parsed(r, "task", aiaas_types::Task::parse)?,
        format: crate::parsed(r, "format", aiaas_types::Format::parse)?,
        source: r.try_get("source")?,
        license: r.try_get("license")?,
        files: parse_json("model_versions.files", &r.try_get::<String, _>("files")?)?,
        size_bytes: r.try_get("size_bytes")?,
        defaults: parse_json("model_versions.config", &r.try_get::<String, _>("config")?)?,
        settings: parse_json("deployments.serving", &r.try_get::<String, _>("serving")?)?,
        created_at: r.try_get("created_at")?,
    })
}
