//! File-system building blocks: hashing while copying, hard-link-or-copy, the staging
//! folder a model is assembled in, and safe relative paths.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::progress::{run_blocking, ByteMeter, CancelFlag, Emit};
use crate::{HubError, ModelFile, Result};

/// Buffer size for streaming copies; also the cancellation check granularity.
pub(crate) const CHUNK: usize = 1 << 20;

/// Prefix of staging folders inside the cache; never a valid model name.
pub(crate) const STAGING_PREFIX: &str = ".tmp-";

/// A relative, `/`-separated path with only normal components (no `..`, no root, no
/// empty or `.` parts, no backslashes); `None` otherwise.
pub(crate) fn safe_relative_path(name: &str) -> Option<PathBuf> {
    let bad_part = |p: &str| p.is_empty() || p == "." || p == "..";
    if name.contains('\\') || name.split('/').any(bad_part) {
        return None;
    }
    let path = PathBuf::from(name);
    path.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(path)
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the inner writer, the byte count and the hex sha256.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64, String)> {
        self.inner.flush()?;
        Ok((
            self.inner,
            self.written,
            hex::encode(self.hasher.finalize()),
        ))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies `reader` into `writer` in chunks, checking for cancellation and reporting bytes.
/// Stops with an error once more than `limit` bytes arrived (a zip bomb, a wrong member).
pub(crate) fn copy_chunked(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    limit: u64,
    meter: &mut ByteMeter,
    cancel: &CancelFlag,
) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if total > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more data than the expected {limit} bytes"),
            ));
        }
        writer.write_all(&buf[..n])?;
        meter.add(n as u64);
    }
}

/// Hashes a file, reporting progress.
pub(crate) fn hash_file(
    path: &Path,
    meter: &mut ByteMeter,
    cancel: &CancelFlag,
) -> Result<(u64, String)> {
    let mut file =
        File::open(path).map_err(|e| HubError::io(format!("open {}", path.display()), e))?;
    let mut sink = HashingWriter::new(io::sink());
    copy_chunked(&mut file, &mut sink, u64::MAX, meter, cancel)
        .map_err(|e| io_or_cancel(format!("read {}", path.display()), e))?;
    let (_, size, sha256) = sink.finish().map_err(|e| HubError::io("hash", e))?;
    Ok((size, sha256))
}

/// Hashes a local file off the async workers: `(size, sha256)`.
pub(crate) async fn hash_file_async(
    path: &Path,
    label: &str,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<(u64, String)> {
    let path = path.to_path_buf();
    let status = format!("verifying {label}");
    run_blocking(emit, cancel, move |emit, cancel| {
        let size = std::fs::metadata(&path).map(|m| m.len()).ok();
        let mut meter = ByteMeter::start(emit, status, size);
        let out = hash_file(&path, &mut meter, cancel);
        meter.finish();
        out
    })
    .await
}

/// Places `src` at `dst` by hard link when both are on one file system, else by copy, then
/// hashes the result. Symlinks (Hugging Face cache snapshots) are resolved first.
pub(crate) fn link_or_copy(
    src: &Path,
    dst: &Path,
    relative_name: &str,
    meter: &mut ByteMeter,
    cancel: &CancelFlag,
) -> Result<ModelFile> {
    let real =
        fs::canonicalize(src).map_err(|e| HubError::io(format!("resolve {}", src.display()), e))?;
    create_parent(dst)?;
    if fs::hard_link(&real, dst).is_err() {
        fs::copy(&real, dst).map_err(|e| {
            HubError::io(format!("copy {} to {}", real.display(), dst.display()), e)
        })?;
    }
    let (size, sha256) = hash_file(dst, meter, cancel)?;
    Ok(ModelFile {
        name: relative_name.to_string(),
        size,
        sha256,
    })
}

pub(crate) fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent)
            .map_err(|e| HubError::io(format!("create {}", parent.display()), e)),
        None => Ok(()),
    }
}

/// Maps an I/O error from a cancellable copy: the cancellation marker becomes `Cancelled`.
pub(crate) fn io_or_cancel(context: String, e: io::Error) -> HubError {
    if e.kind() == io::ErrorKind::Interrupted {
        HubError::Cancelled
    } else {
        HubError::io(context, e)
    }
}

/// A name unique within this process and very likely across processes, for renames.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

/// The folder a model is assembled in. Dropping it without `commit` deletes it, so an
/// error, a cancellation or a dropped future leaves no half-built model.
pub(crate) struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    pub(crate) fn new(cache_dir: &Path) -> Result<Staging> {
        let dir = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(cache_dir)
            .map_err(|e| {
                HubError::io(
                    format!("create a staging folder in {}", cache_dir.display()),
                    e,
                )
            })?;
        Ok(Staging { dir })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Moves the folder to `target` in one rename; fails with `AlreadyExists` if `target`
    /// is taken (rename refuses to replace a non-empty folder).
    pub(crate) fn commit(self, target: &Path, name: &str) -> Result<()> {
        if target.exists() {
            return Err(HubError::AlreadyExists(format!("model {name}")));
        }
        sync_dir(self.dir.path());
        match fs::rename(self.dir.path(), target) {
            Ok(()) => {
                // The folder now lives at `target`; nothing is left to delete.
                let _ = self.dir.keep();
                if let Some(parent) = target.parent() {
                    sync_dir(parent);
                }
                Ok(())
            }
            Err(_) if target.exists() => Err(HubError::AlreadyExists(format!("model {name}"))),
            Err(e) => Err(HubError::io(format!("install {}", target.display()), e)),
        }
    }
}

/// Best-effort fsync of a folder so a rename survives a crash.
fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_checked() {
        assert!(safe_relative_path("model.gguf").is_some());
        assert!(safe_relative_path("1_Pooling/config.json").is_some());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/",
            "a\\b",
            "a/.",
        ] {
            assert!(safe_relative_path(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn staging_is_removed_unless_committed() {
        let cache = tempfile::tempdir().expect("tempdir");
        let dropped = Staging::new(cache.path()).expect("staging");
        let path = dropped.path().to_path_buf();
        fs::write(path.join("f"), b"x").expect("write");
        drop(dropped);
        assert!(!path.exists());

        let staged = Staging::new(cache.path()).expect("staging");
        fs::write(staged.path().join("f"), b"x").expect("write");
        let target = cache.path().join("m");
        staged.commit(&target, "m").expect("commit");
        assert_eq!(fs::read(target.join("f")).expect("read"), b"x");

        let again = Staging::new(cache.path()).expect("staging");
        fs::write(again.path().join("g"), b"y").expect("write");
        assert!(matches!(
            again.commit(&target, "m"),
            Err(HubError::AlreadyExists(_))
        ));
        let leftovers = fs::read_dir(cache.path()).expect("list").count();
        assert_eq!(leftovers, 1, "only the model folder remains");
    }
}
