//! The audit log: who did what, when, from where, with what outcome, for every
//! authentication failure, every denied permission and every change.
//!
//! Entries form a hash chain: entry `n` stores the hash of entry `n - 1` and its own hash
//! over all its fields, and `seq` counts from 1 without gaps. Deleting, reordering or
//! editing a row breaks the chain, which [`verify_chain`] reports. Deleting the newest
//! entries leaves a valid but shorter chain; the head (last `seq` and hash) is therefore
//! also written to a file beside the database after every append, and verification
//! compares the two. Text that reaches an entry is PII-masked first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aiaas_store::{AuditFilter, AuditRecord, Metadata, StoreError};
use aiaas_types::{Permission, Principal};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::require;
use crate::{CoreError, Metrics, Result};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// File (in the data directory) holding the chain's head.
pub const HEAD_FILE: &str = "audit-head.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    Denied,
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }
}

/// What happened, before it is chained.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Dotted name, e.g. `auth.failed`, `access.denied`, `keys.create`.
    pub action: String,
    /// The object acted on (a path, an id, a name).
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    /// The client's address.
    pub source: Option<String>,
    /// Anything else (HTTP status, route, reason), as a JSON object.
    pub detail: serde_json::Value,
}

/// Who an entry is by: a caller's key, nobody (not authenticated), or the platform.
struct Actor {
    tenant_id: Option<String>,
    key_id: Option<String>,
    role: Option<String>,
}

/// The chain's head as kept outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

/// The outcome of checking the whole chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditVerification {
    pub entries: u64,
    pub head: Option<ChainHead>,
    /// Empty when the chain is intact.
    pub problems: Vec<String>,
}

impl AuditVerification {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Query parameters of the audit API (admins may name any tenant; others get theirs).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub after_seq: Option<i64>,
    pub limit: Option<i64>,
}

/// The audit log service: appends (one writer at a time in this process), queries and
/// verifies the chain. Owns the append lock and the head file beside the database.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<AuditState>,
}

struct AuditState {
    meta: Metadata,
    /// Where the head file lives.
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
    /// Serialises this process's appends (the chain is linear).
    lock: tokio::sync::Mutex<()>,
}

impl AuditLog {
    pub(crate) fn new(meta: Metadata, data_dir: PathBuf, metrics: Arc<Metrics>) -> AuditLog {
        AuditLog {
            inner: Arc::new(AuditState {
                meta,
                data_dir,
                metrics,
                lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Append an entry for `event` done by `actor` (None: not authenticated). Never
    /// fails the caller: an entry that cannot be written is logged and counted in
    /// `aiaas_audit_write_failures_total`.
    pub async fn append(&self, actor: Option<&Principal>, event: AuditEvent) {
        let actor = Actor {
            tenant_id: actor.map(|p| p.tenant_id.clone()),
            key_id: actor.map(|p| p.key_id.clone()),
            role: actor.map(|p| p.role.as_str().to_string()),
        };
        self.append_as(actor, event).await
    }

    /// Append an entry for something the platform did by itself on a tenant's behalf
    /// (an automatic rollback): the tenant's entry, role `system`, no key.
    pub(crate) async fn append_system(&self, tenant_id: &str, event: AuditEvent) {
        let actor = Actor {
            tenant_id: Some(tenant_id.to_string()),
            key_id: None,
            role: Some("system".into()),
        };
        self.append_as(actor, event).await
    }

    async fn append_as(&self, actor: Actor, event: AuditEvent) {
        if let Err(e) = self.try_append(actor, event).await {
            tracing::error!(error = %e, "audit entry not written");
            self.inner.metrics.inc(
                "aiaas_audit_write_failures_total",
                "Audit entries that could not be written.",
                &[],
                1,
            );
        }
    }

    async fn try_append(&self, actor: Actor, event: AuditEvent) -> Result<()> {
        let masker = aiaas_privacy::detector();
        let policy = aiaas_privacy::Policy::new(aiaas_privacy::Mode::Mask);
        let target = event.target.map(|t| masker.mask(&t, &policy).text);
        let mut detail = event.detail;
        masker.mask_json(&mut detail, &policy);
        // One writer at a time in this process; across replicas, the store's append is
        // atomic (an advisory lock on PostgreSQL, the primary key on `seq` elsewhere).
        let _guard = self.inner.lock.lock().await;
        let build = |head: Option<(i64, String)>| {
            let (seq, prev_hash) = match head {
                Some((seq, hash)) => (seq + 1, hash),
                None => (1, GENESIS.to_string()),
            };
            let mut record = AuditRecord {
                seq,
                id: aiaas_types::new_id(),
                at: aiaas_types::now_ms(),
                tenant_id: actor.tenant_id.clone(),
                key_id: actor.key_id.clone(),
                role: actor.role.clone(),
                action: event.action.clone(),
                target: target.clone(),
                outcome: event.outcome.as_str().to_string(),
                source: event.source.clone(),
                detail: detail.to_string(),
                prev_hash,
                hash: String::new(),
            };
            record.hash = entry_hash(&record);
            record
        };
        for _ in 0..8 {
            match self.inner.meta.append_audit(&build).await {
                Ok(record) => {
                    let head = ChainHead {
                        seq: record.seq,
                        hash: record.hash,
                    };
                    if let Err(e) = write_head(&self.inner.data_dir, &head) {
                        tracing::warn!(error = %e, "audit head file not updated");
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Unavailable(
            "the audit log is contended; entry dropped".into(),
        ))
    }

    /// Entries matching `query`, oldest first. Admins see every tenant's; owners their
    /// tenant's only, whatever tenant they name.
    pub async fn entries(
        &self,
        principal: &Principal,
        query: AuditQuery,
    ) -> Result<Vec<AuditRecord>> {
        require(principal, Permission::ReadAudit)?;
        let tenant_id = if principal.is_admin() {
            query.tenant_id
        } else {
            Some(principal.tenant_id.clone())
        };
        if let Some(o) = &query.outcome {
            if !matches!(o.as_str(), "success" | "denied" | "failed") {
                return Err(CoreError::InvalidInput(format!(
                    "outcome must be success, denied or failed, not {o:?}"
                )));
            }
        }
        let limit = query.limit.unwrap_or(1000);
        if !(1..=100_000).contains(&limit) {
            return Err(CoreError::InvalidInput(
                "limit must be between 1 and 100000".into(),
            ));
        }
        let filter = AuditFilter {
            tenant_id,
            key_id: query.key_id,
            action_prefix: query.action,
            outcome: query.outcome,
            since_ms: query.since_ms,
            until_ms: query.until_ms,
            after_seq: query.after_seq,
            limit,
        };
        Ok(self.inner.meta.audit_entries(&filter).await?)
    }

    /// Check the whole chain (admins only: it covers every tenant, so it needs the
    /// installation-wide permission).
    pub async fn verify(&self, principal: &Principal) -> Result<AuditVerification> {
        require(principal, Permission::ManageTenants)?;
        let _guard = self.inner.lock.lock().await;
        verify_chain(&self.inner.meta, Some(&self.inner.data_dir)).await
    }
}

/// Walk the chain from the first entry: `seq` without gaps, each `prev_hash` equal to
/// the previous entry's hash, each hash recomputed; then compare with the head file in
/// `data_dir` when given.
pub async fn verify_chain(meta: &Metadata, data_dir: Option<&Path>) -> Result<AuditVerification> {
    let mut problems = Vec::new();
    let mut expected_seq = 1;
    let mut prev = GENESIS.to_string();
    let mut entries = 0u64;
    let mut after = None;
    let mut hashes_at_head = None;
    let anchor = match data_dir {
        Some(dir) => read_head(dir)?,
        None => None,
    };
    loop {
        let page = meta
            .audit_entries(&AuditFilter {
                after_seq: after,
                limit: 5000,
                ..AuditFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for r in &page {
            entries += 1;
            if r.seq != expected_seq {
                problems.push(format!(
                    "entry {} follows entry {}: entries {}..{} are missing",
                    r.seq,
                    expected_seq - 1,
                    expected_seq,
                    r.seq - 1
                ));
            }
            if r.prev_hash != prev {
                problems.push(format!(
                    "entry {} does not follow the entry before it (deleted or reordered entries)",
                    r.seq
                ));
            }
            if entry_hash(r) != r.hash {
                problems.push(format!(
                    "entry {} was edited (its hash does not match its content)",
                    r.seq
                ));
            }
            if anchor.as_ref().is_some_and(|a| a.seq == r.seq) {
                hashes_at_head = Some(r.hash.clone());
            }
            expected_seq = r.seq + 1;
            prev = r.hash.clone();
        }
        if problems.len() > 100 {
            problems.push("more problems not listed".into());
            break;
        }
    }
    let head = (entries > 0).then(|| ChainHead {
        seq: expected_seq - 1,
        hash: prev.clone(),
    });
    if let Some(a) = &anchor {
        match hashes_at_head {
            None => problems.push(format!(
                "the log ends at entry {} but {} recorded entry {}: newest entries were deleted",
                expected_seq - 1,
                HEAD_FILE,
                a.seq
            )),
            Some(h) if h != a.hash => problems.push(format!(
                "entry {} differs from the one {} recorded",
                a.seq, HEAD_FILE
            )),
            Some(_) => {}
        }
    }
    Ok(AuditVerification {
        entries,
        head,
        problems,
    })
}

/// Verify the chain of a data directory without a running server (`aiaas audit verify`):
/// its SQLite database, or `database_url` when the metadata lives elsewhere.
pub async fn verify_data_dir(
    data_dir: &Path,
    database_url: Option<&str>,
) -> Result<AuditVerification> {
    let meta = match database_url {
        Some(url) => Metadata::connect(url).await?,
        None => {
            let db = data_dir.join("metadata.db");
            if !db.is_file() {
                return Err(CoreError::NotFound(format!(
                    "no metadata database at {}: is --data-dir right?",
                    db.display()
                )));
            }
            Metadata::open_sqlite(&db).await?
        }
    };
    let result = verify_chain(&meta, Some(data_dir)).await;
    meta.close().await;
    result
}

/// SHA-256 over every field but the hash itself, in a fixed order (a JSON array, so
/// no field can bleed into the next).
pub fn entry_hash(r: &AuditRecord) -> String {
    let canonical = serde_json::json!([
        r.seq,
        r.id,
        r.at,
        r.tenant_id,
        r.key_id,
        r.role,
        r.action,
        r.target,
        r.outcome,
        r.source,
        r.detail,
        r.prev_hash
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn head_path(data_dir: &Path) -> PathBuf {
    data_dir.join(HEAD_FILE)
}

fn read_head(data_dir: &Path) -> Result<Option<ChainHead>> {
    match std::fs::read(head_path(data_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CoreError::Internal(format!(
                "{HEAD_FILE} does not parse ({e}): it was edited or damaged"
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CoreError::Internal(format!("cannot read {HEAD_FILE}: {e}"))),
    }
}

/// Temp file + rename: a crash leaves the old head or the new one.
fn write_head(data_dir: &Path, head: &ChainHead) -> std::io::Result<()> {
    let path = head_path(data_dir);
    let tmp = data_dir.join(format!(".{HEAD_FILE}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec(head).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64, prev: &str) -> AuditRecord {
        let mut r = AuditRecord {
            seq,
            id: format!("id-{seq}"),
            at: 1_700_000_000_000 + seq,
            tenant_id: Some("t".into()),
            key_id: Some("k".into()),
            role: Some("owner".into()),
            action: "keys.create".into(),
            target: Some("/api/v1/keys".into()),
            outcome: "success".into(),
            source: Some("127.0.0.1".into()),
            detail: "{}".into(),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        r.hash = entry_hash(&r);
        r
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let r = record(1, GENESIS);
        let mut edits: Vec<AuditRecord> = Vec::new();
        let mut e = r.clone();
        e.seq = 2;
        edits.push(e);
        let mut e = r.clone();
        e.at += 1;
        edits.push(e);
        let mut e = r.clone();
        e.tenant_id = None;
        edits.push(e);
        let mut e = r.clone();
        e.action = "keys.revoke".into();
        edits.push(e);
        let mut e = r.clone();
        e.outcome = "denied".into();
        edits.push(e);
        let mut e = r.clone();
        e.source = Some("10.0.0.1".into());
        edits.push(e);
        let mut e = r.clone();
        e.detail = "{\"status\":200}".into();
        edits.push(e);
        let mut e = r.clone();
        e.prev_hash = "1".repeat(64);
        edits.push(e);
        for e in edits {
            assert_ne!(entry_hash(&e), r.hash, "{e:?}");
        }
        // Moving text between adjacent fields changes the hash too.
        let mut a = r.clone();
        a.key_id = Some("kx".into());
        a.role = Some("owner".into());
        let mut b = r.clone();
        b.key_id = Some("k".into());
        b.role = Some("xowner".into());
        assert_ne!(entry_hash(&a), entry_hash(&b));
    }
}
