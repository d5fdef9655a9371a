//! Persistence: the metadata database (SQLite on one machine, PostgreSQL for replicas,
//! through the same portable SQL) and the artifact store (local files or S3, encrypted).
//!
//! Only this crate knows SQL. Every query uses `$n` placeholders, application-generated
//! text ids, BIGINT epoch-millisecond times and INTEGER booleans, so the same statements
//! run on both databases through sqlx's `Any` driver. The few places where the two differ
//! (job claiming, advisory locks) branch on [`Backend`], each branch tested.

mod artifacts;
mod audit;
mod cache;
pub use audit::{AuditFilter, AuditRecord};
mod datasets;
mod files;
pub use files::{FileQuery, FileRecord};
mod jobs;
pub use jobs::JobOutcome;
mod keys;
mod library;
pub use library::{library_prefix, LibraryModelRecord, UsageRecord, INSTALLATION};
mod migrate;
mod model_files;
mod models;
mod rate_limits;
pub use rate_limits::{Gcra, RateDecision};
mod records;
mod responses;
pub use responses::ResponseRecord;
mod s3;
mod snapshot;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

pub use artifacts::{crypto_failure, ArtifactStore, LocalArtifacts, MasterKeys};
pub use model_files::{ModelFiles, ModelView};
pub use records::*;
pub use s3::{S3Artifacts, S3Config, S3Credentials, S3UrlError};

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
    #[error("unsupported database url {0:?}: expected sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// The database or the object store cannot be reached (down, restarting, network,
    /// overloaded): retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether this is the database being unreachable (a 503 for clients, not a 500).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Database(e) => connection_lost(e),
            _ => false,
        }
    }
}

/// An error that means "the database is not there right now" rather than "this query
/// is wrong": i/o, pool exhaustion or closure, and PostgreSQL's connection-exception
/// (08xxx), insufficient-resources (53xxx: too many connections), operator-intervention
/// (57P0x), statement-timeout (57014), lock-timeout (55P03) and read-only-standby (25006,
/// a failover in progress) answers.
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || matches!(c.as_ref(), "57014" | "55P03" | "25006")
        }),
        _ => false,
    }
}

/// A serialization failure or deadlock: the transaction may simply be run again.
fn retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "40001" || c == "40P01"))
}

/// Run `op` again (up to three more times, backing off) while it fails with a
/// serialization failure or a deadlock.
pub(crate) async fn retrying<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0u32;
    loop {
        match op().await {
            Err(StoreError::Database(e)) if retryable(&e) && attempt < 3 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "retrying a transaction");
                tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
            }
            other => return other,
        }
    }
}

/// Which database a [`Metadata`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The metadata database.
#[derive(Clone)]
pub struct Metadata {
    pool: AnyPool,
    backend: Backend,
    /// Hot reads, shared by the clones (see cache.rs).
    cache: std::sync::Arc<cache::MetaCache>,
    /// On PostgreSQL: follows other replicas' invalidations while a clone lives.
    _listener: Option<std::sync::Arc<cache::Listener>>,
}

impl Metadata {
    /// Open (creating if missing) the SQLite database at `path`, in WAL mode, and migrate it.
    pub async fn open_sqlite(path: &Path) -> Result<Metadata> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await
    }

    /// Connect to a database URL (`sqlite://PATH` or `postgres://...`) and bring its
    /// schema up to date.
    pub async fn connect(url: &str) -> Result<Metadata> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url).await
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    async fn connect_sqlite(url: &str) -> Result<Metadata> {
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
        let metadata = Metadata {
            pool,
            backend: Backend::Sqlite,
            cache: std::sync::Arc::new(cache::MetaCache::new()),
            _listener: None,
        };
        migrate::run(&metadata).await?;
        Ok(metadata)
    }

    /// A pool of PostgreSQL connections, each with a statement timeout (a stuck query
    /// fails instead of holding a request forever). Connections are checked before use, so
    /// a pool that outlived a database restart heals on the next request. An unreachable
    /// database at start is retried for a while (a replica often starts beside it), then
    /// reported with the host it tried, the password never shown.
    async fn connect_postgres(url: &str) -> Result<Metadata> {
        Self::connect_postgres_within(url, CONNECT_PATIENCE).await
    }

    /// [`Metadata::connect`] to PostgreSQL, retrying an unreachable database for up to
    /// `patience` before giving up with [`StoreError::Unavailable`].
    pub async fn connect_postgres_within(url: &str, patience: Duration) -> Result<Metadata> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("{}: {e}", redact_url(url))))?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(300))
            .test_before_acquire(true)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::query("SET statement_timeout = 30000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("SET lock_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        let cache = std::sync::Arc::new(cache::MetaCache::new());
        let listener = cache::Listener::spawn(url.to_string(), cache.clone());
        let metadata = Metadata {
            pool,
            backend: Backend::Postgres,
            cache,
            _listener: Some(std::sync::Arc::new(listener)),
        };
        let deadline = std::time::Instant::now() + patience;
        loop {
            match metadata.ping().await {
                Ok(()) => break,
                Err(e) if e.is_unavailable() && std::time::Instant::now() < deadline => {
                    tracing::warn!(database = %redact_url(url), error = %e, "metadata database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "metadata database unavailable: cannot connect to {}: {e}",
                        redact_url(url)
                    )))
                }
            }
        }
        migrate::run(&metadata).await?;
        Ok(metadata)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Take the installation-wide start-up lock (replicas starting together bootstrap the
    /// first tenant and admin key one at a time). PostgreSQL: a session advisory lock on a
    /// connection held until [`StartupLock::release`]; SQLite: nothing to take.
    pub async fn startup_lock(&self) -> Result<StartupLock> {
        if self.backend != Backend::Postgres {
            return Ok(StartupLock { conn: None });
        }
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(STARTUP_LOCK)
            .execute(&mut *conn)
            .await?;
        Ok(StartupLock { conn: Some(conn) })
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
                sqlx::query(&format!(
                    "{select} WHERE tenant_id <> '{INSTALLATION}' ORDER BY {order}"
                ))
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

/// The advisory lock key of start-up bootstrapping.
const STARTUP_LOCK: i64 = 0x6169_6161_735f_7374;

/// Held while a replica bootstraps; see [`Metadata::startup_lock`].
pub struct StartupLock {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
}

impl StartupLock {
    pub async fn release(mut self) -> Result<()> {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(STARTUP_LOCK)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                // Closing the session releases its locks; it must not go back to the pool.
                drop(conn.detach());
            }
            unlocked?;
        }
        Ok(())
    }
}

impl Drop for StartupLock {
    /// Not released (an error on the way): close the connection, which ends the lock.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// How long a start waits for an unreachable PostgreSQL before giving up.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// A database URL fit for logs and errors: the password (in the user part or as a
/// `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((u, q)) => {
            let q: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            (u, format!("?{}", q.join("&")))
        }
        None => (url, String::new()),
    };
    redact_userinfo(url) + &query
}

fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// A text column read into one of the domain's enums (role, task, format, PII mode, job
/// status): a value none of them names is a corrupt row, not a default.
pub(crate) fn parsed<T>(
    row: &sqlx::any::AnyRow,
    column: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T> {
    use sqlx::Row;
    known(column, &row.try_get::<String, _>(column)?, parse)
}

/// As `parsed`, for a column that may be NULL.
pub(crate) fn parsed_opt<T>(
    row: &sqlx::any::AnyRow,
    column: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>> {
    use sqlx::Row;
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| known(column, &t, parse)).transpose()
}

fn known<T>(column: &str, text: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("{column} {text:?} is not one aiaas knows")))
}

fn parse_json(column: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        use super::redact_url;
        assert_eq!(
            redact_url("postgres://aiaas:s3cret@db:5432/aiaas"),
            "postgres://aiaas:***@db:5432/aiaas"
        );
        assert_eq!(
            redact_url("postgres://db/aiaas?user=a&password=s3cret&sslmode=require"),
            "postgres://db/aiaas?user=a&password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgres://aiaas@db/x"), "postgres://aiaas@db/x");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }
}
