//! The audit log's rows: append, read the head, query with filters. The chain (hashes)
//! is computed and verified in the core; this module only stores what it is given.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{conflict_or, Metadata, Result};

/// One audit entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub id: String,
    pub at: i64,
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub role: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// `success`, `denied` or `failed`.
    pub outcome: String,
    /// Where the request came from (client address).
    pub source: Option<String>,
    /// JSON object with the rest (status, route, …), PII masked.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Which entries a query returns (all conditions together), oldest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    /// Entries whose action starts with this.
    pub action_prefix: Option<String>,
    pub outcome: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Entries after this sequence number (paging).
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// The advisory lock key that serialises appends across replicas.
const AUDIT_LOCK: i64 = 0x6169_6161_735f_6175;

const HEAD: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";

const COLUMNS: &str =
    "seq, id, at, tenant_id, key_id, role, action, target, outcome, source, detail, prev_hash, hash";

impl Metadata {
    /// The last entry's sequence number and hash, if any.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        let row = sqlx::query(HEAD).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1))))
    }

    /// Append the entry `build` makes from the current head, atomically: on PostgreSQL
    /// the transaction first takes an advisory lock, so replicas append one at a time and
    /// the chain stays linear; on SQLite a race with another process is a `Conflict` on
    /// `seq` (the caller builds again from the new head).
    pub async fn append_audit(
        &self,
        build: impl Fn(Option<(i64, String)>) -> AuditRecord,
    ) -> Result<AuditRecord> {
        let sql = format!(
            "INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        let insert = |r: &AuditRecord| {
            sqlx::query(&sql)
                .bind(r.seq)
                .bind(r.id.clone())
                .bind(r.at)
                .bind(r.tenant_id.clone())
                .bind(r.key_id.clone())
                .bind(r.role.clone())
                .bind(r.action.clone())
                .bind(r.target.clone())
                .bind(r.outcome.clone())
                .bind(r.source.clone())
                .bind(r.detail.clone())
                .bind(r.prev_hash.clone())
                .bind(r.hash.clone())
        };
        let conflict = |r: &AuditRecord| {
            let seq = r.seq;
            move |e| conflict_or(e, || format!("audit entry {seq} already written"))
        };
        match self.backend {
            crate::Backend::Postgres => {
                crate::retrying(|| async {
                    let mut tx = self.pool.begin().await?;
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(AUDIT_LOCK)
                        .execute(&mut *tx)
                        .await?;
                    let head = sqlx::query(HEAD)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1)));
                    let r = build(head);
                    insert(&r).execute(&mut *tx).await.map_err(conflict(&r))?;
                    tx.commit().await?;
                    Ok(r)
                })
                .await
            }
            crate::Backend::Sqlite => {
                // No transaction: a read transaction cannot become a write one once another
                // connection wrote; the primary key settles the race instead.
                let r = build(self.audit_head().await?);
                insert(&r).execute(&self.pool).await.map_err(conflict(&r))?;
                Ok(r)
            }
        }
    }

    /// Entries matching `filter`, by ascending `seq`, at most `filter.limit`.
    pub async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let mut conditions = Vec::new();
        let mut text: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        // Placeholders are numbered in bind order: text values first, then integers.
        let mut text_cond =
            |column: &str, op: &str, value: String, conditions: &mut Vec<String>| {
                text.push(value);
                conditions.push(format!("{column} {op} ${}", text.len()));
            };
        if let Some(t) = &filter.tenant_id {
            text_cond("tenant_id", "=", t.clone(), &mut conditions);
        }
        if let Some(k) = &filter.key_id {
            text_cond("key_id", "=", k.clone(), &mut conditions);
        }
        if let Some(a) = &filter.action_prefix {
            // LIKE with the wildcards of the value escaped: a prefix match on both
            // databases (case-sensitive on both, as actions are lower case).
            let escaped = a
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            text_cond("action", "LIKE", format!("{escaped}%"), &mut conditions);
            if let Some(last) = conditions.last_mut() {
                last.push_str(" ESCAPE '\\'");
            }
        }
        if let Some(o) = &filter.outcome {
            text_cond("outcome", "=", o.clone(), &mut conditions);
        }
        let n_text = text.len();
        let mut int_cond = |column: &str, op: &str, value: i64, conditions: &mut Vec<String>| {
            ints.push(value);
            conditions.push(format!("{column} {op} ${}", n_text + ints.len()));
        };
        if let Some(s) = filter.since_ms {
            int_cond("at", ">=", s, &mut conditions);
        }
        if let Some(u) = filter.until_ms {
            int_cond("at", "<", u, &mut conditions);
        }
        if let Some(a) = filter.after_seq {
            int_cond("seq", ">", a, &mut conditions);
        }
        let limit = filter.limit.clamp(1, 100_000);
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log {} ORDER BY seq LIMIT {limit}",
            if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            }
        );
        let mut query = sqlx::query(&sql);
        for t in &text {
            query = query.bind(t);
        }
        for i in &ints {
            query = query.bind(*i);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(audit_from_row).collect())
    }
}

fn audit_from_row(r: &AnyRow) -> AuditRecord {
    AuditRecord {
        seq: r.get(0),
        id: r.get(1),
        at: r.get(2),
        tenant_id: r.get(3),
        key_id: r.get(4),
        role: r.get(5),
        action: r.get(6),
        target: r.get(7),
        outcome: r.get(8),
        source: r.get(9),
        detail: r.get(10),
        prev_hash: r.get(11),
        hash: r.get(12),
    }
}
