//! Persistence: the metadata database (SQLite now, PostgreSQL through the same portable
//! SQL later) and the artifact store (files written atomically).
//!
//! Only this crate knows SQL. Every query uses `$n` placeholders, application-generated
//! text ids, BIGINT epoch-millisecond times and INTEGER booleans, so the same statements
//! run on both databases through sqlx's `Any` driver.

mod artifacts;
mod audit;
pub use audit::{AuditFilter, AuditRecord};
mod datasets;
mod jobs;
pub use jobs::JobOutcome;
mod keys;
mod library;
pub use library::{LibraryModelRecord, UsageRecord};
mod migrate;
mod model_files;
mod models;
mod records;
mod snapshot;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

pub use artifacts::{crypto_failure, ArtifactStore, LocalArtifacts, MasterKeys};
pub use model_files::{ModelFiles, ModelView};
pub use records::*;

/// Errors of the persistence layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("artifact i/o error on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid artifact key {0:?}")]
    InvalidKey(String),
    /// A stored object failed authentication: tampered with, truncated or damaged.
    #[error("artifact {key} failed its integrity check ({reason}); it was not used")]
    Integrity { key: String, reason: String },
    /// The master keys cannot open an object (a key missing from the ring, a bad key file).
    #[error("master key problem: {0}")]
    Keys(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database url {0:?}: expected sqlite://PATH")]
    UnsupportedUrl(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The metadata database.
#[derive(Clone)]
pub struct Metadata {
    pool: AnyPool,
}

impl Metadata {
    /// Open (creating if missing) the SQLite database at `path`, in WAL mode, and migrate it.
    pub async fn open_sqlite(path: &Path) -> Result<Metadata> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await
    }

    /// Connect to a database URL and bring its schema up to date.
    pub async fn connect(url: &str) -> Result<Metadata> {
        sqlx::any::install_default_drivers();
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        }
        let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Per-connection settings: wait for the single writer instead of failing
                    // with SQLITE_BUSY, and enforce the foreign keys the schema declares.
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        // WAL is a property of the database file: setting it once is enough.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
        let metadata = Metadata { pool };
        migrate::run(&metadata.pool).await?;
        Ok(metadata)
    }

    /// A cheap query that proves the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Rows of `select` (a `SELECT ... FROM table` of a table with a `tenant_id` column),
    /// of one tenant or of all when `tenant_id` is `None`, in `order`.
    async fn fetch_scoped(
        &self,
        select: &str,
        order: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        let rows = match tenant_id {
            Some(t) => {
                sqlx::query(&format!("{select} WHERE tenant_id = $1 ORDER BY {order}"))
                    .bind(t)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("{select} ORDER BY {order}"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows)
    }
}

/// Map a unique-constraint violation to `Conflict` with a message for people.
fn conflict_or(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            return StoreError::Conflict(what());
        }
    }
    StoreError::Database(err)
}

fn parse_json(column: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}
