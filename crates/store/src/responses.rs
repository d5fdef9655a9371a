//! Stored responses of the Responses API: one row per response, its document in the
//! artifact store.

use sqlx::Row;

use crate::{Metadata, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseRecord {
    pub id: String,
    pub tenant_id: String,
    pub artifact_key: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Metadata {
    pub async fn insert_response(&self, r: &ResponseRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO responses (id, tenant_id, artifact_key, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&r.id)
        .bind(&r.tenant_id)
        .bind(&r.artifact_key)
        .bind(r.created_at)
        .bind(r.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn response(&self, id: &str) -> Result<Option<ResponseRecord>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, artifact_key, created_at, expires_at FROM responses \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ResponseRecord {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                artifact_key: r.try_get("artifact_key")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// True when the row was there.
    pub async fn delete_response(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM responses WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Responses past their retention at `now` (epoch ms): id and artifact key.
    pub async fn expired_responses(&self, now: i64) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, artifact_key FROM responses WHERE expires_at <= $1 LIMIT 1000",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
