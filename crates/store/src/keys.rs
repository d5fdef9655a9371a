//! Tenants and API keys.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{conflict_or, ApiKeyRecord, Metadata, Result, StoreError, Tenant, INSTALLATION};

const KEY_COLUMNS: &str = "id, tenant_id, name, role, secret_hash, allowed_models, expires_at, \
     revoked_at, created_at, limits, allowed_ips";
const TENANT_COLUMNS: &str = "id, name, created_at, limits, pii_inputs, pii_outputs, pii_detectors";

impl Metadata {
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let tenant = Tenant {
            id: aiaas_types::new_id(),
            name: name.to_string(),
            created_at: aiaas_types::now_ms(),
            limits: aiaas_types::Limits::default(),
            pii_inputs: None,
            pii_outputs: None,
            pii_detectors: Vec::new(),
        };
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, || format!("a tenant named {name:?} already exists")))?;
        Ok(tenant)
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE id <> '{INSTALLATION}' ORDER BY created_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    pub async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1 AND id <> '{INSTALLATION}'"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE name = $1 AND id <> '{INSTALLATION}'"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    pub async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let allowed = key
            .allowed_models
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_default());
        sqlx::query(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(&key.secret_hash)
        .bind(allowed)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(key.created_at)
        .bind(limits_text(&key.limits))
        .bind(
            key.allowed_ips
                .as_ref()
                .map(|ips| serde_json::to_string(ips).unwrap_or_default()),
        )
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, || "key collision; retry".to_string()))?;
        Ok(())
    }

    /// The key with this secret hash; served from the cache when it holds it (a miss is
    /// never cached: random secrets cannot fill it).
    pub async fn key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let keys = &self.cache.keys;
        let read_at = keys.generation();
        if let Some(key) = keys.get(&secret_hash.to_string()) {
            return Ok(Some(key));
        }
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        let key = row.as_ref().map(key_from_row).transpose()?;
        if let Some(k) = &key {
            keys.put(read_at, secret_hash.to_string(), k.clone());
        }
        Ok(key)
    }

    pub async fn key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Keys of one tenant, or of every tenant when `tenant_id` is `None`.
    pub async fn keys(&self, tenant_id: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
        let rows = self
            .fetch_scoped(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys"),
                "created_at",
                tenant_id,
            )
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn count_keys(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_keys")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Replace a key's limits and IP allow-list; false when there is no such key.
    pub async fn set_key_limits(
        &self,
        id: &str,
        limits: &aiaas_types::Limits,
        allowed_ips: Option<&[String]>,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE api_keys SET limits = $1, allowed_ips = $2 WHERE id = $3")
            .bind(limits_text(limits))
            .bind(allowed_ips.map(|ips| serde_json::to_string(ips).unwrap_or_default()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.invalidate(crate::cache::Topic::Keys).await;
        Ok(done.rows_affected() == 1)
    }

    /// Replace a key's model allow-list (`None`: every model); false when there is no
    /// such key.
    pub async fn set_key_allowed_models(
        &self,
        id: &str,
        models: Option<&[String]>,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE api_keys SET allowed_models = $1 WHERE id = $2")
            .bind(models.map(|m| serde_json::to_string(m).unwrap_or_default()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.invalidate(crate::cache::Topic::Keys).await;
        Ok(done.rows_affected() == 1)
    }

    /// Set a tenant's PII policies for model inputs and outputs (each a mode name or
    /// NULL for off) and the detectors for its inputs (empty: NULL, the rules); false
    /// when there is no such tenant.
    pub async fn set_tenant_privacy(
        &self,
        id: &str,
        inputs: Option<aiaas_types::PiiMode>,
        outputs: Option<aiaas_types::PiiMode>,
        detectors: &[String],
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tenants SET pii_inputs = $1, pii_outputs = $2, pii_detectors = $3 WHERE id = $4",
        )
        .bind(inputs.map(|m| m.as_str()))
        .bind(outputs.map(|m| m.as_str()))
        .bind((!detectors.is_empty()).then(|| detectors.join(",")))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replace a tenant's limits; false when there is no such tenant.
    pub async fn set_tenant_limits(&self, id: &str, limits: &aiaas_types::Limits) -> Result<bool> {
        let done = sqlx::query("UPDATE tenants SET limits = $1 WHERE id = $2")
            .bind(limits_text(limits))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Mark a key revoked; returns false when it was already revoked or does not exist.
    pub async fn revoke_key(&self, id: &str, at: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&self.pool)
                .await?;
        self.invalidate(crate::cache::Topic::Keys).await;
        Ok(done.rows_affected() == 1)
    }
}

fn tenant_from_row(row: &AnyRow) -> Result<Tenant> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        limits: limits_from(row.try_get("limits")?, "tenants.limits")?,
        pii_inputs: crate::parsed_opt(row, "pii_inputs", aiaas_types::PiiMode::parse)?,
        pii_outputs: crate::parsed_opt(row, "pii_outputs", aiaas_types::PiiMode::parse)?,
        pii_detectors: row
            .try_get::<Option<String>, _>("pii_detectors")?
            .map(|d| d.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    })
}

/// NULL for no limits, else the JSON object.
fn limits_text(l: &aiaas_types::Limits) -> Option<String> {
    (!l.is_unlimited()).then(|| serde_json::to_string(l).unwrap_or_default())
}

fn limits_from(text: Option<String>, column: &str) -> Result<aiaas_types::Limits> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
    })
    .transpose()
    .map(Option::unwrap_or_default)
}

fn key_from_row(row: &AnyRow) -> Result<ApiKeyRecord> {
    let allowed: Option<String> = row.try_get("allowed_models")?;
    let allowed_models = allowed
        .map(|s| {
            serde_json::from_str(&s)
                .map_err(|e| StoreError::Corrupt(format!("api_keys.allowed_models: {e}")))
        })
        .transpose()?;
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        role: crate::parsed(row, "role", aiaas_types::Role::parse)?,
        secret_hash: row.try_get("secret_hash")?,
        allowed_models,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        created_at: row.try_get("created_at")?,
        limits: limits_from(row.try_get("limits")?, "api_keys.limits")?,
        allowed_ips: row
            .try_get::<Option<String>, _>("allowed_ips")?
            .map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| StoreError::Corrupt(format!("api_keys.allowed_ips: {e}")))
            })
            .transpose()?,
    })
}
