//! Models, their versions, aliases and deployments.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{
    parse_json, AliasRecord, Canary, CanarySettings, DeploymentRecord, DeploymentSettings,
    Metadata, ModelEventRecord, ModelRecord, ModelVersionRecord, NewModelVersion, Result,
    StoreError, INSTALLATION,
};

const VERSION_COLUMNS: &str = "model_id, version, architecture, labels, artifact_prefix, files, \
                               report, config, job_id, dataset_id, created_at, format";
const DEPLOYMENT_COLUMNS: &str =
    "model_id, version, max_batch, max_delay_ms, queue_capacity, pii_inputs, max_queue_time_ms, \
     canary_version, canary_percent, auto_rollback, canary_started_at, created_at, updated_at, \
     pii_detectors";

impl Metadata {
    /// A tenant's model by name (cached when found).
    pub async fn model_by_name(&self, tenant_id: &str, name: &str) -> Result<Option<ModelRecord>> {
        let (models, key) = (
            &self.cache.models,
            (tenant_id.to_string(), name.to_string()),
        );
        let read_at = models.generation();
        if let Some(m) = models.get(&key) {
            return Ok(Some(m));
        }
        let row = sqlx::query(
            "SELECT id, tenant_id, name, task, created_at FROM models WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let model = row.as_ref().map(model_from_row).transpose()?;
        if let Some(m) = &model {
            models.put(read_at, key, m.clone());
        }
        Ok(model)
    }

    pub async fn model(&self, id: &str) -> Result<Option<ModelRecord>> {
        let row =
            sqlx::query("SELECT id, tenant_id, name, task, created_at FROM models WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(model_from_row).transpose()
    }

    pub async fn models(&self, tenant_id: Option<&str>) -> Result<Vec<ModelRecord>> {
        let rows = self
            .fetch_scoped(
                "SELECT id, tenant_id, name, task, created_at FROM models",
                "name",
                tenant_id,
            )
            .await?;
        rows.iter().map(model_from_row).collect()
    }

    /// Register a new version (creating the model on first use) in one transaction;
    /// the version number is the next after the model's highest.
    pub async fn insert_model_version(&self, v: &NewModelVersion) -> Result<ModelVersionRecord> {
        let now = aiaas_types::now_ms();
        let mut tx = self.pool.begin().await?;
        // Upsert keeps concurrent first versions of one model from racing each other.
        sqlx::query(
            "INSERT INTO models (id, tenant_id, name, task, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(aiaas_types::new_id())
        .bind(&v.tenant_id)
        .bind(&v.model_name)
        .bind(v.task.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (model_id,): (String,) =
            sqlx::query_as("SELECT id FROM models WHERE tenant_id = $1 AND name = $2")
                .bind(&v.tenant_id)
                .bind(&v.model_name)
                .fetch_one(&mut *tx)
                .await?;
        let (next,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model_id = $1",
        )
        .bind(&model_id)
        .fetch_one(&mut *tx)
        .await?;
        let record = ModelVersionRecord {
            model_id,
            version: next,
            architecture: v.architecture.clone(),
            labels: v.labels.clone(),
            artifact_prefix: v.artifact_prefix.clone(),
            files: v.files.clone(),
            report: v.report.clone(),
            config: v.config.clone(),
            job_id: v.job_id.clone(),
            dataset_id: v.dataset_id.clone(),
            created_at: now,
            format: v.format,
        };
        sqlx::query(&format!(
            "INSERT INTO model_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&record.model_id)
        .bind(record.version)
        .bind(&record.architecture)
        .bind(serde_json::to_string(&record.labels).unwrap_or_default())
        .bind(&record.artifact_prefix)
        .bind(serde_json::to_string(&record.files).unwrap_or_default())
        .bind(record.report.to_string())
        .bind(record.config.to_string())
        .bind(&record.job_id)
        .bind(&record.dataset_id)
        .bind(record.created_at)
        .bind(record.format.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.invalidate(crate::cache::Topic::Models).await;
        Ok(record)
    }

    /// Versions of one format whose `architecture` is `architecture`, with their
    /// model's name (the LoRA adapters trained on a library model: their architecture
    /// is the base model's name), for every tenant.
    pub async fn versions_of(
        &self,
        format: aiaas_types::Format,
        architecture: &str,
    ) -> Result<Vec<(String, ModelVersionRecord)>> {
        let columns = VERSION_COLUMNS
            .split(", ")
            .map(|c| format!("v.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT m.name AS model_name, {columns} FROM model_versions v \
             JOIN models m ON m.id = v.model_id WHERE v.format = $1 AND v.architecture = $2 \
             ORDER BY v.created_at"
        ))
        .bind(format.as_str())
        .bind(architecture)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("model_name")?, version_from_row(r)?)))
            .collect()
    }

    pub async fn model_versions(&self, model_id: &str) -> Result<Vec<ModelVersionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions WHERE model_id = $1 ORDER BY version"
        ))
        .bind(model_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// One version of a model (cached when found).
    pub async fn model_version(
        &self,
        model_id: &str,
        version: i64,
    ) -> Result<Option<ModelVersionRecord>> {
        let (versions, key) = (&self.cache.versions, (model_id.to_string(), version));
        let read_at = versions.generation();
        if let Some(v) = versions.get(&key) {
            return Ok(Some(v));
        }
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions WHERE model_id = $1 AND version = $2"
        ))
        .bind(model_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        let found = row.as_ref().map(version_from_row).transpose()?;
        if let Some(v) = &found {
            versions.put(read_at, key, v.clone());
        }
        Ok(found)
    }

    pub async fn set_alias(&self, model_id: &str, alias: &str, version: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO model_aliases (model_id, alias, version, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        )
        .bind(model_id)
        .bind(alias)
        .bind(version)
        .bind(aiaas_types::now_ms())
        .execute(&self.pool)
        .await?;
        self.invalidate(crate::cache::Topic::Models).await;
        Ok(())
    }

    pub async fn aliases(&self, model_id: &str) -> Result<Vec<AliasRecord>> {
        let rows = sqlx::query(
            "SELECT alias, version, updated_at FROM model_aliases WHERE model_id = $1 ORDER BY alias",
        )
        .bind(model_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AliasRecord {
                    alias: r.try_get("alias")?,
                    version: r.try_get("version")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Record which version serves and how, with its canary (`None`: no canary). A
    /// canary that stays the same version keeps its start time.
    pub async fn upsert_deployment(
        &self,
        model_id: &str,
        version: i64,
        s: DeploymentSettings,
        canary: Option<&CanarySettings>,
    ) -> Result<DeploymentRecord> {
        let now = aiaas_types::now_ms();
        let auto_rollback = canary
            .and_then(|c| c.auto_rollback.as_ref())
            .map(|a| serde_json::to_string(a).expect("plain numbers serialise"));
        sqlx::query(&format!(
            "INSERT INTO deployments ({DEPLOYMENT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13) \
             ON CONFLICT (model_id) DO UPDATE SET version = excluded.version, max_batch = excluded.max_batch, \
             max_delay_ms = excluded.max_delay_ms, queue_capacity = excluded.queue_capacity, \
             pii_inputs = excluded.pii_inputs, max_queue_time_ms = excluded.max_queue_time_ms, \
             pii_detectors = excluded.pii_detectors, \
             canary_started_at = CASE WHEN deployments.canary_version = excluded.canary_version \
                 THEN deployments.canary_started_at ELSE excluded.canary_started_at END, \
             canary_version = excluded.canary_version, canary_percent = excluded.canary_percent, \
             auto_rollback = excluded.auto_rollback, updated_at = excluded.updated_at"
        ))
        .bind(model_id)
        .bind(version)
        .bind(s.max_batch)
        .bind(s.max_delay_ms)
        .bind(s.queue_capacity)
        .bind(s.pii_inputs.map(|m| m.as_str()))
        .bind(s.max_queue_time_ms)
        .bind(canary.map(|c| c.version))
        .bind(canary.map_or(0, |c| c.percent))
        .bind(auto_rollback)
        .bind(canary.map(|_| now))
        .bind(now)
        .bind((!s.pii_detectors.is_empty()).then(|| s.pii_detectors.join(",")))
        .execute(&self.pool)
        .await?;
        self.invalidate(crate::cache::Topic::Models).await;
        self.deployment(model_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("deployment vanished after upsert".into()))
    }

    /// End a model's canary, if `canary_version` is still its canary: promoted (it becomes
    /// the deployed version) or rolled back (the stable version takes all traffic).
    /// Returns the new deployment, or `None` when that canary had already ended (another
    /// replica, or another request, ended it first).
    pub async fn end_canary(
        &self,
        model_id: &str,
        canary_version: i64,
        promote: bool,
    ) -> Result<Option<DeploymentRecord>> {
        let version = if promote { "canary_version" } else { "version" };
        let done = sqlx::query(&format!(
            "UPDATE deployments SET version = {version}, canary_version = NULL, canary_percent = 0, \
             auto_rollback = NULL, canary_started_at = NULL, updated_at = $3 \
             WHERE model_id = $1 AND canary_version = $2"
        ))
        .bind(model_id)
        .bind(canary_version)
        .bind(aiaas_types::now_ms())
        .execute(&self.pool)
        .await?;
        self.invalidate(crate::cache::Topic::Models).await;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.deployment(model_id).await
    }

    /// Record something that happened to a model, with the model's next sequence number.
    pub async fn append_model_event(
        &self,
        model_id: &str,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<ModelEventRecord> {
        let at = aiaas_types::now_ms();
        // Two replicas may take the same number; the primary key refuses the second,
        // which takes the next.
        for _ in 0..8 {
            let inserted: std::result::Result<(i64,), _> = sqlx::query_as(
                "INSERT INTO model_events (model_id, seq, at, kind, detail) \
                 VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM model_events WHERE model_id = $1), $2, $3, $4) \
                 RETURNING seq",
            )
            .bind(model_id)
            .bind(at)
            .bind(kind)
            .bind(detail.to_string())
            .fetch_one(&self.pool)
            .await;
            match inserted.map_err(|e| crate::conflict_or(e, || "taken".into())) {
                Ok((seq,)) => {
                    return Ok(ModelEventRecord {
                        model_id: model_id.to_string(),
                        seq,
                        at,
                        kind: kind.to_string(),
                        detail: detail.clone(),
                    })
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(format!(
            "model {model_id}: events are contended"
        )))
    }

    /// A model's events, newest first, at most `limit`.
    pub async fn model_events(&self, model_id: &str, limit: i64) -> Result<Vec<ModelEventRecord>> {
        let rows = sqlx::query(
            "SELECT model_id, seq, at, kind, detail FROM model_events WHERE model_id = $1 \
             ORDER BY seq DESC LIMIT $2",
        )
        .bind(model_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(ModelEventRecord {
                    model_id: r.try_get("model_id")?,
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    detail: parse_json("model_events.detail", &detail)?,
                })
            })
            .collect()
    }

    /// A model's deployment, or `None` when it is not deployed (both cached).
    pub async fn deployment(&self, model_id: &str) -> Result<Option<DeploymentRecord>> {
        let deployments = &self.cache.deployments;
        let read_at = deployments.generation();
        if let Some(d) = deployments.get(&model_id.to_string()) {
            return Ok(d);
        }
        let row = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE model_id = $1"
        ))
        .bind(model_id)
        .fetch_optional(&self.pool)
        .await?;
        let found = row.as_ref().map(deployment_from_row).transpose()?;
        deployments.put(read_at, model_id.to_string(), found.clone());
        Ok(found)
    }

    /// The deployments of tenants' models (library models are served by the library).
    pub async fn deployments(&self) -> Result<Vec<DeploymentRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE model_id IN \
             (SELECT id FROM models WHERE tenant_id <> '{INSTALLATION}')"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment_from_row).collect()
    }

    pub async fn delete_deployment(&self, model_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM deployments WHERE model_id = $1")
            .bind(model_id)
            .execute(&self.pool)
            .await?;
        self.invalidate(crate::cache::Topic::Models).await;
        Ok(done.rows_affected() == 1)
    }

    /// Remove a model with its versions, aliases and deployment in one transaction.
    pub async fn delete_model(&self, model_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "deployments",
            "model_aliases",
            "model_versions",
            "model_events",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE model_id = $1"))
                .bind(model_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM models WHERE id = $1")
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.invalidate(crate::cache::Topic::Models).await;
        Ok(())
    }
}

fn model_from_row(row: &AnyRow) -> Result<ModelRecord> {
    Ok(ModelRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        task: crate::parsed(row, "task", aiaas_types::Task::parse)?,
        created_at: row.try_get("created_at")?,
    })
}

fn version_from_row(row: &AnyRow) -> Result<ModelVersionRecord> {
    let labels: String = row.try_get("labels")?;
    let files: String = row.try_get("files")?;
    let report: String = row.try_get("report")?;
    let config: String = row.try_get("config")?;
    let strings = |col: &str, v: serde_json::Value| -> Result<Vec<String>> {
        serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    };
    Ok(ModelVersionRecord {
        model_id: row.try_get("model_id")?,
        version: row.try_get("version")?,
        architecture: row.try_get("architecture")?,
        labels: strings("model_versions.labels", parse_json("labels", &labels)?)?,
        artifact_prefix: row.try_get("artifact_prefix")?,
        files: file_names(parse_json("model_versions.files", &files)?)?,
        report: parse_json("model_versions.report", &report)?,
        config: parse_json("model_versions.config", &config)?,
        job_id: row.try_get("job_id")?,
        dataset_id: row.try_get("dataset_id")?,
        created_at: row.try_get("created_at")?,
        format: crate::parsed(row, "format", aiaas_types::Format::parse)?,
    })
}

/// The names in a version's file list: a JSON array of names, or of objects with a
/// `name` (pulled models also record each file's size and digest).
pub(crate) fn file_names(files: serde_json::Value) -> Result<Vec<String>> {
    let corrupt = || StoreError::Corrupt(format!("model_versions.files: {files}"));
    let list = files.as_array().ok_or_else(corrupt)?;
    list.iter()
        .map(|f| {
            f.as_str()
                .or_else(|| f.get("name")?.as_str())
                .map(str::to_string)
                .ok_or_else(corrupt)
        })
        .collect()
}

fn deployment_from_row(row: &AnyRow) -> Result<DeploymentRecord> {
    Ok(DeploymentRecord {
        model_id: row.try_get("model_id")?,
        version: row.try_get("version")?,
        max_batch: row.try_get("max_batch")?,
        max_delay_ms: row.try_get("max_delay_ms")?,
        queue_capacity: row.try_get("queue_capacity")?,
        pii_inputs: crate::parsed_opt(row, "pii_inputs", aiaas_types::PiiMode::parse)?,
        pii_detectors: row
            .try_get::<Option<String>, _>("pii_detectors")?
            .map(|d| d.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        max_queue_time_ms: row.try_get("max_queue_time_ms")?,
        canary: canary_from_row(row)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn canary_from_row(row: &AnyRow) -> Result<Option<Canary>> {
    let Some(version) = row.try_get::<Option<i64>, _>("canary_version")? else {
        return Ok(None);
    };
    let auto_rollback = match row.try_get::<Option<String>, _>("auto_rollback")? {
        None => None,
        Some(text) => Some(
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("deployments.auto_rollback: {e}")))?,
        ),
    };
    Ok(Some(Canary {
        version,
        percent: row.try_get("canary_percent")?,
        auto_rollback,
        started_at: row
            .try_get::<Option<i64>, _>("canary_started_at")?
            .unwrap_or_default(),
    }))
}
