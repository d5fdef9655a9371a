//! What a backup needs from the database: a consistent copy taken while the server runs,
//! and the artifacts the copy refers to.

use std::path::Path;

use crate::{Metadata, Result, StoreError};

impl Metadata {
    /// Write a consistent copy of the whole database to `dest` (SQLite `VACUUM INTO`: one
    /// read transaction, so writers carry on and the copy is a single point in time).
    pub async fn snapshot_to(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(StoreError::Conflict(format!(
                "{} already exists",
                dest.display()
            )));
        }
        let path = dest
            .to_str()
            .ok_or_else(|| StoreError::InvalidKey(dest.display().to_string()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Artifact keys and key prefixes the rows refer to (datasets' files, uploaded
    /// files, stored responses, fine-tuning checkpoints, the folders of tenants' model versions; library models are pulled
    /// again, not backed up).
    pub async fn referenced_artifacts(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT artifact_key FROM datasets UNION SELECT artifact_key FROM files \
             UNION SELECT artifact_key FROM responses \
             UNION SELECT artifact_key FROM job_checkpoints \
             UNION SELECT adapter_key FROM job_checkpoints \
             UNION SELECT v.artifact_prefix FROM \
             model_versions v JOIN models m ON m.id = v.model_id \
             WHERE m.tenant_id <> '{}'",
            crate::INSTALLATION
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
