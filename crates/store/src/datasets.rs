//! Dataset rows (the data itself lives in the artifact store).

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{conflict_or, parse_json, DatasetRecord, Metadata, Result};

const COLUMNS: &str = "id, tenant_id, name, format, text_column, label_column, row_count, \
                       byte_count, artifact_key, stats, created_at";

impl Metadata {
    pub async fn insert_dataset(&self, d: &DatasetRecord) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO datasets ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&d.id)
        .bind(&d.tenant_id)
        .bind(&d.name)
        .bind(&d.format)
        .bind(&d.text_column)
        .bind(&d.label_column)
        .bind(d.row_count)
        .bind(d.byte_count)
        .bind(&d.artifact_key)
        .bind(d.stats.to_string())
        .bind(d.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, || format!("a dataset named {:?} already exists", d.name)))?;
        Ok(())
    }

    pub async fn dataset(&self, id: &str) -> Result<Option<DatasetRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM datasets WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(dataset_from_row).transpose()
    }

    pub async fn dataset_by_name(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<DatasetRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM datasets WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(dataset_from_row).transpose()
    }

    pub async fn datasets(&self, tenant_id: Option<&str>) -> Result<Vec<DatasetRecord>> {
        let rows = self
            .fetch_scoped(
                &format!("SELECT {COLUMNS} FROM datasets"),
                "created_at",
                tenant_id,
            )
            .await?;
        rows.iter().map(dataset_from_row).collect()
    }

    /// Delete a dataset row unless a queued or running job still needs it; returns whether
    /// it was deleted. Finished jobs keep its id as history.
    pub async fn delete_dataset(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM datasets WHERE id = $1 AND NOT EXISTS \
             (SELECT 1 FROM jobs WHERE (jobs.dataset_id = $1 OR jobs.test_dataset_id = $1) \
              AND jobs.status IN ('queued', 'running'))",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn dataset_from_row(row: &AnyRow) -> Result<DatasetRecord> {
    let stats: String = row.try_get("stats")?;
    Ok(DatasetRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        format: row.try_get("format")?,
        text_column: row.try_get("text_column")?,
        label_column: row.try_get("label_column")?,
        row_count: row.try_get("row_count")?,
        byte_count: row.try_get("byte_count")?,
        artifact_key: row.try_get("artifact_key")?,
        stats: parse_json("datasets.stats", &stats)?,
        created_at: row.try_get("created_at")?,
    })
}
