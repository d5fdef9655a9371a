//! Schema migrations: one ordered list of SQL files, applied once each, recorded in
//! `schema_migrations`. The same files serve SQLite and PostgreSQL. Replicas starting
//! together against one PostgreSQL take turns: each migration runs in a transaction that
//! first takes an advisory lock, then checks again whether another replica applied it.

use crate::{Backend, Metadata, Result};

/// The advisory lock key of schema changes (any constant shared by every replica).
const MIGRATION_LOCK: i64 = 0x6169_6161_735f_6d67;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/0001_foundation.sql"),
    ),
    (2, "library", include_str!("../migrations/0002_library.sql")),
    (3, "audit", include_str!("../migrations/0003_audit.sql")),
    (4, "limits", include_str!("../migrations/0004_limits.sql")),
    (5, "privacy", include_str!("../migrations/0005_privacy.sql")),
    (
        6,
        "output_privacy",
        include_str!("../migrations/0006_output_privacy.sql"),
    ),
    (
        7,
        "replicas",
        include_str!("../migrations/0007_replicas.sql"),
    ),
    (
        8,
        "version_formats",
        include_str!("../migrations/0008_version_formats.sql"),
    ),
    (
        9,
        "one_registry",
        include_str!("../migrations/0009_one_registry.sql"),
    ),
    (
        10,
        "responses",
        include_str!("../migrations/0010_responses.sql"),
    ),
    (
        11,
        "queue_policy",
        include_str!("../migrations/0011_queue_policy.sql"),
    ),
    (12, "canary", include_str!("../migrations/0012_canary.sql")),
    (
        13,
        "pii_detectors",
        include_str!("../migrations/0013_pii_detectors.sql"),
    ),
    (
        14,
        "deployment_pii_detectors",
        include_str!("../migrations/0014_deployment_pii_detectors.sql"),
    ),
    (15, "files", include_str!("../migrations/0015_files.sql")),
    (
        16,
        "fine_tuning",
        include_str!("../migrations/0016_fine_tuning.sql"),
    ),
];

pub(crate) async fn run(meta: &Metadata) -> Result<()> {
    let pool = &meta.pool;
    let mut tx = pool.begin().await?;
    lock(meta.backend, &mut tx).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = pool.begin().await?;
        lock(meta.backend, &mut tx).await?;
        let done: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue; // applied before, or by another replica while this one waited
        }
        for statement in statements(sql) {
            sqlx::query(&statement).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(*version)
        .bind(*name)
        .bind(aiaas_types::now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}

/// Serialise schema changes across processes (PostgreSQL; SQLite has one writer anyway).
async fn lock(backend: Backend, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Split a migration file into statements: drop `--` comments, split on `;`.
fn statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_drop_comments_and_blanks() {
        let s = super::statements(
            "-- hi\nCREATE TABLE a (x TEXT); -- tail\n\nCREATE TABLE b (y TEXT);\n",
        );
        assert_eq!(
            s,
            vec!["CREATE TABLE a (x TEXT)", "CREATE TABLE b (y TEXT)"]
        );
    }
}
