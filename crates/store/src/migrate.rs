//! Schema migrations: one ordered list of SQL files, applied once each, recorded in
//! `schema_migrations`. The same files serve SQLite and PostgreSQL.

use sqlx::AnyPool;

use crate::Result;

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
];

pub(crate) async fn run(pool: &AnyPool) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(pool)
    .await?;
    for (version, name, sql) in MIGRATIONS {
        let done: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(pool)
                .await?;
        if done.is_some() {
            continue;
        }
        let mut tx = pool.begin().await?;
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
