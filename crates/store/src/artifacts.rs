//! The artifact store: named blobs (datasets, model files) written atomically, so a
//! crash leaves either the old object or the new one, never half of one.

use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// Where artifacts live. Keys are `/`-separated relative paths of safe characters.
pub trait ArtifactStore: Send + Sync {
    /// Store `bytes` under `key`, replacing any previous object atomically.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Move a finished local file into the store under `key` (atomic; no copy when possible).
    fn put_file(&self, key: &str, file: &Path) -> Result<()>;
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// A local path to read the object from (for streaming parsers).
    fn local_path(&self, key: &str) -> Result<PathBuf>;
    fn delete_prefix(&self, prefix: &str) -> Result<()>;
}

/// Artifacts as files under a root directory.
pub struct LocalArtifacts {
    root: PathBuf,
}

impl LocalArtifacts {
    pub fn open(root: &Path) -> Result<LocalArtifacts> {
        std::fs::create_dir_all(root).map_err(|source| StoreError::Io {
            key: root.display().to_string(),
            source,
        })?;
        Ok(LocalArtifacts {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        let ok = !key.is_empty()
            && key.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            });
        if !ok {
            return Err(StoreError::InvalidKey(key.to_string()));
        }
        Ok(self.root.join(key))
    }
}

fn io(key: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        key: key.to_string(),
        source,
    }
}

impl ArtifactStore for LocalArtifacts {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let path = self.path(key)?;
        let dir = path
            .parent()
            .ok_or_else(|| StoreError::InvalidKey(key.into()))?;
        std::fs::create_dir_all(dir).map_err(io(key))?;
        let tmp = dir.join(format!(".{}.tmp", aiaas_types::new_id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(key)(e)
        })
    }

    fn put_file(&self, key: &str, file: &Path) -> Result<()> {
        let path = self.path(key)?;
        let dir = path
            .parent()
            .ok_or_else(|| StoreError::InvalidKey(key.into()))?;
        std::fs::create_dir_all(dir).map_err(io(key))?;
        std::fs::File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(io(key))?;
        if std::fs::rename(file, &path).is_err() {
            // Different file systems: copy to a temp name beside the target, then rename.
            let tmp = dir.join(format!(".{}.tmp", aiaas_types::new_id()));
            std::fs::copy(file, &tmp)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    io(key)(e)
                })?;
            let _ = std::fs::remove_file(file);
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        std::fs::read(self.path(key)?).map_err(io(key))
    }

    fn local_path(&self, key: &str) -> Result<PathBuf> {
        let path = self.path(key)?;
        if !path.is_file() {
            return Err(io(key)(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "artifact missing",
            )));
        }
        Ok(path)
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let path = self.path(prefix)?;
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(prefix)(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_replace_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalArtifacts::open(dir.path()).unwrap();
        a.put("t/x/file.bin", b"one").unwrap();
        assert_eq!(a.get("t/x/file.bin").unwrap(), b"one");
        a.put("t/x/file.bin", b"two").unwrap();
        assert_eq!(a.get("t/x/file.bin").unwrap(), b"two");
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("t/x")).unwrap().collect();
        assert_eq!(names.len(), 1);
        a.delete_prefix("t/x").unwrap();
        assert!(a.get("t/x/file.bin").is_err());
    }

    #[test]
    fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalArtifacts::open(dir.path()).unwrap();
        for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", "", "a/b c"] {
            assert!(
                matches!(a.put(bad, b"x"), Err(StoreError::InvalidKey(_))),
                "{bad}"
            );
        }
    }
}
