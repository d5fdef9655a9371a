//! Files of the OpenAI files API: one row per file, its content in the artifact store.
//! Listed newest (or oldest) first with a cursor: the file after which to continue.

use sqlx::Row;

use crate::{Metadata, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub id: String,
    pub tenant_id: String,
    pub filename: String,
    pub purpose: String,
    pub bytes: i64,
    /// What the content holds (`chat` or `completions` examples).
    pub format: String,
    /// Examples (lines) in it.
    pub examples: i64,
    /// The masking mode personal data was rewritten with before storing, if any.
    pub masked: Option<String>,
    pub artifact_key: String,
    pub created_at: i64,
}

/// Which of a tenant's files to list.
#[derive(Debug, Clone, Default)]
pub struct FileQuery<'a> {
    pub purpose: Option<&'a str>,
    /// Continue after this file (by its time and id, in the listing's order).
    pub after: Option<&'a FileRecord>,
    pub limit: usize,
    /// Oldest first (else newest first).
    pub ascending: bool,
}

const COLUMNS: &str =
    "id, tenant_id, filename, purpose, bytes, format, examples, masked, artifact_key, created_at";

fn record(r: &sqlx::any::AnyRow) -> Result<FileRecord> {
    Ok(FileRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        filename: r.try_get("filename")?,
        purpose: r.try_get("purpose")?,
        bytes: r.try_get("bytes")?,
        format: r.try_get("format")?,
        examples: r.try_get("examples")?,
        masked: r.try_get("masked")?,
        artifact_key: r.try_get("artifact_key")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Metadata {
    pub async fn insert_file(&self, f: &FileRecord) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO files ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&f.id)
        .bind(&f.tenant_id)
        .bind(&f.filename)
        .bind(&f.purpose)
        .bind(f.bytes)
        .bind(&f.format)
        .bind(f.examples)
        .bind(&f.masked)
        .bind(&f.artifact_key)
        .bind(f.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn file(&self, id: &str) -> Result<Option<FileRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM files WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// A tenant's files in creation order (ties by id), `q.limit` of them.
    pub async fn files(&self, tenant_id: &str, q: FileQuery<'_>) -> Result<Vec<FileRecord>> {
        let (cmp, order) = if q.ascending {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        let mut sql = format!("SELECT {COLUMNS} FROM files WHERE tenant_id = $1");
        let mut next = 2;
        if q.purpose.is_some() {
            sql.push_str(&format!(" AND purpose = ${next}"));
            next += 1;
        }
        if q.after.is_some() {
            let (at, id) = (next, next + 1);
            sql.push_str(&format!(
                " AND (created_at {cmp} ${at} OR (created_at = ${at} AND id {cmp} ${id}))"
            ));
            next += 2;
        }
        sql.push_str(&format!(
            " ORDER BY created_at {order}, id {order} LIMIT ${next}"
        ));
        let mut query = sqlx::query(&sql).bind(tenant_id);
        if let Some(purpose) = q.purpose {
            query = query.bind(purpose);
        }
        if let Some(after) = q.after {
            query = query.bind(after.created_at).bind(after.id.as_str());
        }
        let rows = query.bind(q.limit as i64).fetch_all(&self.pool).await?;
        rows.iter().map(record).collect()
    }

    /// True when the row was there.
    pub async fn delete_file(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM files WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
