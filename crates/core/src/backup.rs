//! Backups: one encrypted archive holding a consistent snapshot of the metadata database,
//! the artifacts it refers to, the audit chain's head and the pseudonym secret, with a
//! manifest of SHA-256 checksums signed under the master key.
//!
//! Archive = an `aiaas-crypto` envelope (authenticated chunks: a cut or edited archive
//! never decrypts) around a simple stream: `AIAASBAK1\n`, then entries `[u16 name length]
//! [name][u64 size][bytes]`, the last two being `manifest.json` and `manifest.sig`. Written
//! to a temp name and renamed when complete, so a backup killed half-way leaves the
//! earlier backups untouched and nothing named like a backup.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aiaas_crypto::KeyRing;
use aiaas_store::{ArtifactStore, LocalArtifacts, MasterKeys, Metadata};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{CoreError, Result};

const MAGIC: &[u8] = b"AIAASBAK1\n";
const MANIFEST: &str = "manifest.json";
const SIGNATURE: &str = "manifest.sig";
/// Files of the data directory a backup carries besides the database and artifacts.
const SIDE_FILES: &[&str] = &[
    crate::audit::HEAD_FILE,
    crate::privacy::PSEUDONYM_SECRET_FILE,
];
pub const BACKUP_SUFFIX: &str = ".aiaas-backup";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub created_at: i64,
    pub files: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub path: PathBuf,
    pub files: usize,
    /// Bytes of the files inside (before encryption).
    pub bytes: u64,
    pub created_at: i64,
}

/// Back up the installation in `data_dir` into a new archive in `out_dir`, online (the
/// server may keep running). `keys` encrypt the archive and sign its manifest.
pub async fn create_backup(
    meta: &Metadata,
    data_dir: &Path,
    keys: Arc<MasterKeys>,
    out_dir: &Path,
) -> Result<BackupReport> {
    if meta.backend() != aiaas_store::Backend::Sqlite {
        return Err(CoreError::InvalidInput(
            "aiaas backups cover SQLite + local files; with PostgreSQL and S3 use the \
             database's and the bucket's own backups (pg_dump or PITR, bucket versioning or \
             replication), with the master key kept apart"
                .into(),
        ));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| {
        CoreError::InvalidInput(format!("cannot create {}: {e}", out_dir.display()))
    })?;
    let created_at = aiaas_types::now_ms();
    let work = out_dir.join(format!(".backup-{}.tmp", aiaas_types::new_id()));
    std::fs::create_dir_all(&work)?;
    let result = async {
        // The side files first: the audit head read before the snapshot names an entry
        // the snapshot holds (read after, it could name one appended since).
        for side in SIDE_FILES {
            let p = data_dir.join(side);
            if p.is_file() {
                std::fs::copy(&p, work.join(side))?;
            }
        }
        let snapshot = work.join("metadata.db");
        meta.snapshot_to(&snapshot).await?;
        let referenced = meta.referenced_artifacts().await?;
        let data_dir = data_dir.to_path_buf();
        let out_dir = out_dir.to_path_buf();
        let work2 = work.clone();
        tokio::task::spawn_blocking(move || {
            write_archive(
                &data_dir,
                &keys,
                &work2,
                &snapshot,
                &referenced,
                &out_dir,
                created_at,
            )
        })
        .await?
    }
    .await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// `aiaas backup create`: back up a data directory from outside the server (which may be
/// running).
pub async fn backup_data_dir(
    data_dir: &Path,
    source: &crate::MasterKeySource,
    out_dir: &Path,
) -> Result<BackupReport> {
    let keys = crate::keys_at_rest::load_existing(source)?;
    let db = data_dir.join("metadata.db");
    if !db.is_file() {
        return Err(CoreError::NotFound(format!(
            "no metadata database at {}: is --data-dir right?",
            db.display()
        )));
    }
    let meta = Metadata::open_sqlite(&db).await?;
    let result = create_backup(&meta, data_dir, keys, out_dir).await;
    meta.close().await;
    result
}

/// The backup service: scheduled archives of this installation.
#[derive(Clone)]
pub struct Backups {
    inner: std::sync::Arc<BackupsState>,
}

struct BackupsState {
    meta: Metadata,
    artifacts: std::sync::Arc<dyn aiaas_store::ArtifactStore>,
    master_keys: std::sync::Arc<aiaas_store::MasterKeys>,
    data_dir: std::path::PathBuf,
}

impl Backups {
    pub(crate) fn new(
        meta: Metadata,
        artifacts: std::sync::Arc<dyn aiaas_store::ArtifactStore>,
        master_keys: std::sync::Arc<aiaas_store::MasterKeys>,
        data_dir: std::path::PathBuf,
    ) -> Backups {
        Backups {
            inner: std::sync::Arc::new(BackupsState {
                meta,
                artifacts,
                master_keys,
                data_dir,
            }),
        }
    }

    /// A backup of this installation into `out_dir` (the scheduled backups), then the
    /// oldest beyond `keep` removed.
    pub async fn backup_now(&self, out_dir: &Path, keep: usize) -> Result<BackupReport> {
        if self.inner.artifacts.is_shared() {
            return Err(CoreError::InvalidInput(
                "aiaas backups cover local artifacts; back up the S3 bucket with its own \
                 versioning or replication"
                    .into(),
            ));
        }
        let report = create_backup(
            &self.inner.meta,
            &self.inner.data_dir,
            self.inner.master_keys.clone(),
            out_dir,
        )
        .await?;
        let dir = out_dir.to_path_buf();
        tokio::task::spawn_blocking(move || prune_backups(&dir, keep.max(1))).await??;
        Ok(report)
    }
}

fn write_archive(
    data_dir: &Path,
    keys: &Arc<MasterKeys>,
    work: &Path,
    snapshot: &Path,
    referenced: &[String],
    out_dir: &Path,
    created_at: i64,
) -> Result<BackupReport> {
    let files = archive_files(data_dir, keys, work, snapshot, referenced)?;
    let ring = keys.ring();
    let tmp = work.join("archive.tmp");
    let out = std::fs::File::create(&tmp)?;
    let (reader, writer) = std::io::pipe()?;
    // The stream is produced on this thread and encrypted on another, so neither the
    // archive nor any file is ever held whole in memory.
    let ring2 = ring.clone();
    let encrypt = std::thread::spawn(move || -> Result<std::fs::File> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
        aiaas_crypto::encrypt(&ring2, reader, &mut out)
            .map_err(|e| CoreError::Internal(format!("encrypting the backup: {e}")))?;
        out.into_inner()
            .map_err(|e| CoreError::Internal(format!("writing the backup: {e}")))
    });
    let produced = write_stream(writer, &files, &ring, created_at);
    let encrypted = encrypt
        .join()
        .map_err(|_| CoreError::Internal("the encryption thread panicked".into()))?;
    let (bytes, entries) = produced?;
    let file = encrypted?;
    file.sync_all()?;
    let path = publish(&tmp, out_dir, created_at)?;
    Ok(BackupReport {
        path,
        files: entries,
        bytes,
        created_at,
    })
}

/// Move a finished archive into `out_dir` under its dated name (never over another).
fn publish(tmp: &Path, out_dir: &Path, created_at: i64) -> Result<PathBuf> {
    let name = format!(
        "aiaas-{}{BACKUP_SUFFIX}",
        aiaas_types::utc_stamp(created_at)
    );
    let path = out_dir.join(&name);
    if path.exists() {
        return Err(CoreError::Conflict(format!(
            "{} already exists",
            path.display()
        )));
    }
    std::fs::rename(tmp, &path)?;
    if let Ok(d) = std::fs::File::open(out_dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}

/// What an archive holds: the database snapshot, every stored object under a key or
/// prefix the database refers to (as stored: ciphertext), and the side files.
fn archive_files(
    data_dir: &Path,
    keys: &Arc<MasterKeys>,
    work: &Path,
    snapshot: &Path,
    referenced: &[String],
) -> Result<Vec<(String, PathBuf)>> {
    let store = LocalArtifacts::open(&data_dir.join("artifacts"), keys.clone())?;
    // Sorted, so the objects under a key or prefix are one run found by binary search.
    let all = store.keys()?;
    // Every stored object under a referenced key or prefix (stored as it is: ciphertext).
    let mut files: Vec<(String, PathBuf)> = vec![("metadata.db".into(), snapshot.to_path_buf())];
    for r in referenced {
        // The object named `r` itself, then the run of objects under `r/`.
        let under = format!("{r}/");
        let exact = all.binary_search(r).ok().map(|i| &all[i]);
        let start = all.partition_point(|k| k.as_str() < under.as_str());
        let matching: Vec<&String> = exact
            .into_iter()
            .chain(all[start..].iter().take_while(|k| k.starts_with(&under)))
            .collect();
        if matching.is_empty() {
            return Err(CoreError::Conflict(format!(
                "artifact {r} is referenced by the database but missing (removed during the backup?); run the backup again"
            )));
        }
        for k in matching {
            files.push((format!("artifacts/{k}"), data_dir.join("artifacts").join(k)));
        }
    }
    for side in SIDE_FILES {
        let p = work.join(side);
        if p.is_file() {
            files.push(((*side).to_string(), p));
        }
    }
    Ok(files)
}

/// The archive's plain stream into `writer`: magic, each file as an entry, the manifest
/// and its signature. Returns the files' bytes and how many there were.
fn write_stream(
    writer: std::io::PipeWriter,
    files: &[(String, PathBuf)],
    ring: &KeyRing,
    created_at: i64,
) -> Result<(u64, usize)> {
    let mut manifest = Manifest {
        format: 1,
        created_at,
        files: Vec::new(),
    };
    let mut w = std::io::BufWriter::with_capacity(1 << 16, writer);
    w.write_all(MAGIC)?;
    let mut bytes = 0;
    for (name, path) in files {
        let mut f = std::fs::File::open(path).map_err(|e| {
            CoreError::Conflict(format!(
                "{name} could not be read ({e}); run the backup again"
            ))
        })?;
        let size = f.metadata()?.len();
        let sha256 = write_entry(&mut w, name, size, &mut f)?;
        manifest.files.push(ManifestEntry {
            name: name.clone(),
            size,
            sha256,
        });
        bytes += size;
    }
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| CoreError::Internal(format!("manifest: {e}")))?;
    let digest = Sha256::digest(&manifest_bytes);
    let signature = aiaas_crypto::seal_value(ring, &digest, "aiaas-backup-manifest")
        .map_err(|e| CoreError::Internal(format!("signing the manifest: {e}")))?;
    write_entry(
        &mut w,
        MANIFEST,
        manifest_bytes.len() as u64,
        &mut manifest_bytes.as_slice(),
    )?;
    write_entry(
        &mut w,
        SIGNATURE,
        signature.len() as u64,
        &mut signature.as_bytes(),
    )?;
    w.flush()?;
    Ok((bytes, manifest.files.len()))
}

fn write_entry(w: &mut impl Write, name: &str, size: u64, body: &mut impl Read) -> Result<String> {
    let name_len = u16::try_from(name.len())
        .map_err(|_| CoreError::Internal(format!("file name too long: {name}")))?;
    w.write_all(&name_len.to_be_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&size.to_be_bytes())?;
    let mut hasher = Sha256::new();
    let mut left = size;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let want = (left as usize).min(buf.len());
        let n = body.read(&mut buf[..want])?;
        if n == 0 {
            return Err(CoreError::Conflict(format!(
                "{name} shrank while it was backed up; run the backup again"
            )));
        }
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What a verified (or restored) archive holds.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    pub created_at: i64,
    pub files: usize,
    pub bytes: u64,
}

/// Read the whole archive: every chunk authenticates, every file matches its checksum,
/// the manifest lists exactly the files present and its signature holds. Nothing is
/// written.
pub fn verify_backup(path: &Path, ring: &KeyRing) -> Result<ArchiveReport> {
    read_archive(path, ring, None)
}

/// Restore an archive into `target`, which must be empty or absent; files are written
/// under a temp folder first and moved into place only once the whole archive verified.
pub fn restore_backup(path: &Path, ring: &KeyRing, target: &Path) -> Result<ArchiveReport> {
    if target.exists() {
        let empty = std::fs::read_dir(target)?.next().is_none();
        if !empty {
            return Err(CoreError::Conflict(format!(
                "{} is not empty: restore into an empty or new data directory",
                target.display()
            )));
        }
    }
    std::fs::create_dir_all(target)?;
    let staging = target.join(".restore.tmp");
    let result = read_archive(path, ring, Some(&staging));
    match result {
        Ok(report) => {
            for entry in std::fs::read_dir(&staging)? {
                let entry = entry?;
                std::fs::rename(entry.path(), target.join(entry.file_name()))?;
            }
            std::fs::remove_dir(&staging)?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

fn bad(path: &Path, what: impl std::fmt::Display) -> CoreError {
    CoreError::Integrity(format!("backup {} is not valid: {what}", path.display()))
}

fn read_archive(path: &Path, ring: &KeyRing, write_to: Option<&Path>) -> Result<ArchiveReport> {
    let file = std::fs::File::open(path)
        .map_err(|e| CoreError::NotFound(format!("cannot open {}: {e}", path.display())))?;
    let reader =
        aiaas_crypto::Decryptor::new(ring, std::io::BufReader::with_capacity(1 << 16, file))
            .map_err(|e| bad(path, e))?;
    let mut r = std::io::BufReader::with_capacity(1 << 16, reader);
    let io = |e: std::io::Error| unreadable(path, e);
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic).map_err(io)?;
    if magic != MAGIC {
        return Err(bad(path, "not an aiaas backup"));
    }
    let mut seen: Vec<ManifestEntry> = Vec::new();
    let mut manifest_bytes: Option<Vec<u8>> = None;
    loop {
        let mut len = [0u8; 2];
        r.read_exact(&mut len).map_err(io)?;
        let mut name = vec![0u8; usize::from(u16::from_be_bytes(len))];
        r.read_exact(&mut name).map_err(io)?;
        let name = String::from_utf8(name).map_err(|_| bad(path, "a file name is not UTF-8"))?;
        let mut size = [0u8; 8];
        r.read_exact(&mut size).map_err(io)?;
        let size = u64::from_be_bytes(size);
        if name == MANIFEST || name == SIGNATURE {
            if size > 64 << 20 {
                return Err(bad(path, "the manifest is implausibly large"));
            }
            let mut body = vec![0u8; size as usize];
            r.read_exact(&mut body).map_err(io)?;
            if name == MANIFEST {
                manifest_bytes = Some(body);
                continue;
            }
            let manifest_bytes =
                manifest_bytes.ok_or_else(|| bad(path, "signature before manifest"))?;
            let manifest = check_manifest(path, ring, &manifest_bytes, body, &seen)?;
            let mut trailing = [0u8; 1];
            if r.read(&mut trailing).map_err(io)? != 0 {
                return Err(bad(path, "data after the signature"));
            }
            return Ok(ArchiveReport {
                created_at: manifest.created_at,
                files: seen.len(),
                bytes: seen.iter().map(|f| f.size).sum(),
            });
        }
        check_entry_name(&name).map_err(|e| bad(path, e))?;
        let sha256 = read_entry(&mut r, path, &name, size, write_to)?;
        seen.push(ManifestEntry { name, size, sha256 });
    }
}

/// A read that failed: the archive's authentication, or the archive itself.
fn unreadable(path: &Path, e: std::io::Error) -> CoreError {
    match aiaas_store::crypto_failure(&e) {
        Some(c) => bad(path, c),
        None => bad(path, format!("cut short or unreadable ({e})")),
    }
}

/// The manifest, once its signature checks out and it lists exactly the files `seen`.
fn check_manifest(
    path: &Path,
    ring: &KeyRing,
    manifest_bytes: &[u8],
    signature: Vec<u8>,
    seen: &[ManifestEntry],
) -> Result<Manifest> {
    let sealed = String::from_utf8(signature).map_err(|_| bad(path, "malformed signature"))?;
    let signed = aiaas_crypto::open_value(ring, &sealed, "aiaas-backup-manifest")
        .map_err(|e| bad(path, format!("manifest signature: {e}")))?;
    if signed != Sha256::digest(manifest_bytes).as_slice() {
        return Err(bad(
            path,
            "the manifest signature does not match the manifest",
        ));
    }
    let manifest: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| bad(path, format!("manifest: {e}")))?;
    let listed: Vec<(&str, u64, &str)> = manifest
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.size, f.sha256.as_str()))
        .collect();
    let found: Vec<(&str, u64, &str)> = seen
        .iter()
        .map(|f| (f.name.as_str(), f.size, f.sha256.as_str()))
        .collect();
    if listed != found {
        return Err(bad(
            path,
            "the files do not match the manifest (checksum, size or list)",
        ));
    }
    Ok(manifest)
}

/// One file's body: hashed, and written under `write_to` when restoring. Returns its
/// sha256.
fn read_entry(
    r: &mut impl Read,
    path: &Path,
    name: &str,
    size: u64,
    write_to: Option<&Path>,
) -> Result<String> {
    let mut out = match write_to {
        Some(dir) => {
            let dest = dir.join(name);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            Some(std::io::BufWriter::new(std::fs::File::create(&dest)?))
        }
        None => None,
    };
    let mut hasher = Sha256::new();
    let mut left = size;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let want = (left as usize).min(buf.len());
        let n = r.read(&mut buf[..want]).map_err(|e| unreadable(path, e))?;
        if n == 0 {
            return Err(bad(path, format!("{name} is cut short")));
        }
        hasher.update(&buf[..n]);
        if let Some(o) = out.as_mut() {
            o.write_all(&buf[..n])?;
        }
        left -= n as u64;
    }
    if let Some(o) = out {
        let f = o
            .into_inner()
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        f.sync_all()?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Names an archive may carry: the database, the side files, and artifact keys (no
/// absolute paths, no `..`, no hidden parts), so a crafted archive cannot write
/// elsewhere.
fn check_entry_name(name: &str) -> std::result::Result<(), String> {
    if name == "metadata.db" || SIDE_FILES.contains(&name) {
        return Ok(());
    }
    let ok = name.strip_prefix("artifacts/").is_some_and(|key| {
        !key.is_empty()
            && key.split('/').all(|part| {
                !part.is_empty()
                    && !part.starts_with('.')
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            })
    });
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected file name {name:?}"))
    }
}

/// Keep the newest `keep` backups in `dir`, remove the others (and temp files of
/// backups that were killed).
pub fn prune_backups(dir: &Path, keep: usize) -> Result<usize> {
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(BACKUP_SUFFIX))
        .collect();
    backups.sort();
    let mut removed = 0;
    while backups.len() > keep {
        std::fs::remove_file(backups.remove(0))?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_cannot_escape() {
        for ok in [
            "metadata.db",
            "audit-head.json",
            "artifacts/datasets/t/1/data.csv",
        ] {
            assert!(check_entry_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "../x",
            "/etc/passwd",
            "artifacts/../x",
            "artifacts/a/.hidden",
            "artifacts/",
            "other.db",
            "artifacts/a b",
        ] {
            assert!(check_entry_name(bad).is_err(), "{bad}");
        }
    }
}
