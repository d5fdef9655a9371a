//! The artifact store: named blobs (datasets, model files) written atomically, so a
//! crash leaves either the old object or the new one, never half of one, and encrypted:
//! every object is an `aiaas-crypto` envelope (a fresh AES-256-GCM data key per object,
//! wrapped by the active master key; authenticated 64 KiB chunks). Readers get plaintext
//! only from chunks that authenticated; a tampered or truncated object is an error
//! ([`StoreError::Integrity`]), never data.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aiaas_crypto::{CryptoError, KeyRing};

use crate::{Result, StoreError};

/// Where artifacts live. Keys are `/`-separated relative paths of safe characters.
pub trait ArtifactStore: Send + Sync {
    /// Store `bytes` under `key`, atomically: readers see the whole object or none.
    /// Keys are unique ids, so an existing object is not expected: [`LocalArtifacts`]
    /// replaces it, while [`S3Artifacts`](crate::S3Artifacts) (shared by replicas) refuses
    /// with [`StoreError::Conflict`] unless it was built to overwrite.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Store the contents of a local file under `key` (atomic; the file is removed).
    fn put_file(&self, key: &str, file: &Path) -> Result<()>;
    /// Store everything `reader` yields under `key` (atomic: a failed read stores nothing).
    fn put_reader(&self, key: &str, reader: &mut dyn Read) -> Result<()>;
    /// The object's whole plaintext (authenticated chunk by chunk, as `open` reads it).
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open(key)?.read_to_end(&mut out).map_err(io(key))?;
        Ok(out)
    }
    /// A streaming reader of the object's plaintext (for parsers of large objects).
    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>>;
    fn delete_prefix(&self, prefix: &str) -> Result<()>;
    /// Every object's key.
    fn keys(&self) -> Result<Vec<String>>;
    /// Re-wrap the object's data key under the active master key (payload untouched).
    /// False when it already was.
    fn rewrap(&self, key: &str) -> Result<bool>;
    /// Read the whole object and check every chunk; its plaintext length.
    fn verify(&self, key: &str) -> Result<u64> {
        std::io::copy(&mut self.open(key)?, &mut std::io::sink()).map_err(io(key))
    }
    /// Whether other replicas read this store too (then library weights are shared
    /// through it, and each replica keeps a local cache).
    fn is_shared(&self) -> bool {
        false
    }
    /// Store a file that already is an envelope under the master keys (a sealed model
    /// file) as `key`, byte for byte; the file stays where it is.
    fn put_sealed(&self, key: &str, file: &Path) -> Result<()>;
    /// Write object `key`'s envelope, as stored, to the new file `dest`.
    fn get_sealed(&self, key: &str, dest: &Path) -> Result<()>;
}

/// The master keys, shared by the stores that encrypt with them. Reloadable from their
/// file, so a server picks up a key added by `aiaas keys rotate-master` when it meets an
/// object wrapped by a key it does not know yet.
pub struct MasterKeys {
    ring: RwLock<Arc<KeyRing>>,
    file: Option<PathBuf>,
}

impl MasterKeys {
    pub fn new(ring: KeyRing, file: Option<PathBuf>) -> MasterKeys {
        MasterKeys {
            ring: RwLock::new(Arc::new(ring)),
            file,
        }
    }

    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Load the key file again (no-op when the keys came from the environment).
    pub fn reload(&self) -> Result<bool> {
        let Some(file) = &self.file else {
            return Ok(false);
        };
        let ring = KeyRing::load_file(file).map_err(|e| StoreError::Keys(e.to_string()))?;
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        Ok(true)
    }
}

/// Encrypted artifacts as files under a root directory.
pub struct LocalArtifacts {
    root: PathBuf,
    keys: Arc<MasterKeys>,
}

impl LocalArtifacts {
    pub fn open(root: &Path, keys: Arc<MasterKeys>) -> Result<LocalArtifacts> {
        std::fs::create_dir_all(root).map_err(|source| StoreError::Io {
            key: root.display().to_string(),
            source,
        })?;
        Ok(LocalArtifacts {
            root: root.to_path_buf(),
            keys,
        })
    }

    /// Encrypt, in place and atomically, every object still stored in plain text (written
    /// by a version before encryption at rest). Returns how many were encrypted. The scan
    /// runs once per store: a marker file records that it completed (objects written since
    /// are encrypted by construction; a plaintext file planted later is refused on read).
    pub fn encrypt_plaintext_objects(&self) -> Result<usize> {
        let marker = self.root.join(".all-encrypted");
        if marker.is_file() {
            return Ok(0);
        }
        let mut done = 0;
        for key in self.keys()? {
            let path = self.path(&key)?;
            let mut prefix = [0u8; 8];
            let n = std::fs::File::open(&path)
                .and_then(|mut f| read_up_to(&mut f, &mut prefix))
                .map_err(io(&key))?;
            if aiaas_crypto::is_encrypted(&prefix[..n]) {
                continue;
            }
            let file = std::fs::File::open(&path).map_err(io(&key))?;
            self.write_atomic(&key, file)?;
            done += 1;
        }
        std::fs::write(&marker, b"").map_err(io(".all-encrypted"))?;
        Ok(done)
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if !valid_key(key) {
            return Err(StoreError::InvalidKey(key.to_string()));
        }
        Ok(self.root.join(key))
    }

    /// Encrypt `plaintext` into a temp file beside `key`'s path, fsync, rename over.
    fn write_atomic(&self, key: &str, plaintext: impl Read) -> Result<()> {
        let path = self.path(key)?;
        let dir = path
            .parent()
            .ok_or_else(|| StoreError::InvalidKey(key.into()))?;
        std::fs::create_dir_all(dir).map_err(io(key))?;
        let tmp = dir.join(format!(".{}.tmp", aiaas_types::new_id()));
        let ring = self.keys.ring();
        let write = || -> Result<()> {
            let file = std::fs::File::create(&tmp).map_err(io(key))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
            aiaas_crypto::encrypt(&ring, plaintext, &mut out).map_err(|e| crypto(key, e))?;
            let file = out.into_inner().map_err(|e| io(key)(e.into_error()))?;
            file.sync_all().map_err(io(key))?;
            std::fs::rename(&tmp, &path).map_err(io(key))
        };
        write().inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// A decrypting reader; a key unknown to the ring triggers one reload of the key
    /// file (a rotation done by another process).
    fn decryptor(
        &self,
        key: &str,
    ) -> Result<aiaas_crypto::Decryptor<std::io::BufReader<std::fs::File>>> {
        let path = self.path(key)?;
        let open = |ring: &KeyRing| -> Result<_> {
            let file = std::fs::File::open(&path).map_err(io(key))?;
            aiaas_crypto::Decryptor::new(ring, std::io::BufReader::with_capacity(1 << 16, file))
                .map_err(|e| crypto(key, e))
        };
        match open(&self.keys.ring()) {
            Err(StoreError::Keys(_)) if self.keys.reload()? => open(&self.keys.ring()),
            other => other,
        }
    }
}

/// Whether `key` is a valid artifact key, for every backend: `/`-separated parts of
/// `A-Z a-z 0-9 - _ .`, none empty and none starting with a dot (so no `.` or `..`, no
/// absolute paths, and no names of the hidden temp files writes leave while in progress).
pub(crate) fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

pub(crate) fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

pub(crate) fn io(key: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| match crypto_failure(&source) {
        Some(e) => integrity(key, e),
        None => StoreError::Io {
            key: key.to_string(),
            source,
        },
    }
}

/// The encryption error carried inside an I/O error from a decrypting reader, if any.
pub fn crypto_failure(e: &std::io::Error) -> Option<&CryptoError> {
    e.get_ref()?.downcast_ref::<CryptoError>()
}

pub(crate) fn crypto(key: &str, e: CryptoError) -> StoreError {
    match e {
        CryptoError::Io(source) => StoreError::Io {
            key: key.to_string(),
            source,
        },
        CryptoError::UnknownKey(id) => StoreError::Keys(format!(
            "artifact {key} is encrypted with master key {id}, which is not in the key ring"
        )),
        other => integrity(key, &other),
    }
}

fn integrity(key: &str, e: &CryptoError) -> StoreError {
    StoreError::Integrity {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

impl ArtifactStore for LocalArtifacts {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.write_atomic(key, bytes)
    }

    fn put_file(&self, key: &str, file: &Path) -> Result<()> {
        let source = std::fs::File::open(file).map_err(io(key))?;
        self.write_atomic(key, std::io::BufReader::with_capacity(1 << 16, source))?;
        let _ = std::fs::remove_file(file);
        Ok(())
    }

    fn put_reader(&self, key: &str, reader: &mut dyn Read) -> Result<()> {
        self.write_atomic(key, std::io::BufReader::with_capacity(1 << 16, reader))
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.decryptor(key)?))
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

    fn keys(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir).map_err(io("(listing)"))?;
            for entry in entries {
                let entry = entry.map_err(io("(listing)"))?;
                let path = entry.path();
                let name = entry.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue; // temp files of writes in progress
                }
                if entry.file_type().map_err(io("(listing)"))?.is_dir() {
                    dirs.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn rewrap(&self, key: &str) -> Result<bool> {
        let path = self.path(key)?;
        aiaas_crypto::rewrap_file(&self.keys.ring(), &path).map_err(|e| crypto(key, e))
    }

    fn put_sealed(&self, key: &str, file: &Path) -> Result<()> {
        let path = self.path(key)?;
        let dir = path
            .parent()
            .ok_or_else(|| StoreError::InvalidKey(key.into()))?;
        std::fs::create_dir_all(dir).map_err(io(key))?;
        let mut prefix = [0u8; 8];
        let n = std::fs::File::open(file)
            .and_then(|mut f| read_up_to(&mut f, &mut prefix))
            .map_err(io(key))?;
        if !aiaas_crypto::is_encrypted(&prefix[..n]) {
            return Err(StoreError::Integrity {
                key: key.into(),
                reason: "the file to store is not sealed".into(),
            });
        }
        let tmp = dir.join(format!(".{}.tmp", aiaas_types::new_id()));
        let copied = std::fs::copy(file, &tmp)
            .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(key)(e));
        }
        Ok(())
    }

    fn get_sealed(&self, key: &str, dest: &Path) -> Result<()> {
        let path = self.path(key)?;
        std::fs::copy(&path, dest).map_err(io(key))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_all_at(path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(bytes)
    }

    fn store(dir: &Path) -> LocalArtifacts {
        let keys = Arc::new(MasterKeys::new(KeyRing::generate().unwrap(), None));
        LocalArtifacts::open(dir, keys).unwrap()
    }

    #[test]
    fn put_get_replace_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path());
        a.put("t/x/file.bin", b"one").unwrap();
        assert_eq!(a.get("t/x/file.bin").unwrap(), b"one");
        a.put("t/x/file.bin", b"two").unwrap();
        assert_eq!(a.get("t/x/file.bin").unwrap(), b"two");
        // On disk: ciphertext, not the bytes.
        let raw = std::fs::read(dir.path().join("t/x/file.bin")).unwrap();
        assert!(aiaas_crypto::is_encrypted(&raw));
        assert!(!raw.windows(3).any(|w| w == b"two"));
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("t/x")).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(a.keys().unwrap(), vec!["t/x/file.bin".to_string()]);
        a.delete_prefix("t/x").unwrap();
        assert!(a.get("t/x/file.bin").is_err());
    }

    #[test]
    fn tampered_and_truncated_objects_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path());
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        a.put("d/data.csv", &data).unwrap();
        let path = dir.path().join("d/data.csv");
        let good = std::fs::read(&path).unwrap();
        write_all_at(&path, 70_000, &[good[70_000] ^ 1]).unwrap();
        assert!(matches!(
            a.get("d/data.csv"),
            Err(StoreError::Integrity { .. })
        ));
        assert!(matches!(
            a.verify("d/data.csv"),
            Err(StoreError::Integrity { .. })
        ));
        // Streaming: the chunks before the damaged one come out, then the error.
        let mut r = a.open("d/data.csv").unwrap();
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert!(crypto_failure(&err).is_some());
        assert!(out.len() < 70_000 && data.starts_with(&out));
        std::fs::write(&path, &good[..good.len() - 100]).unwrap();
        assert!(matches!(
            a.get("d/data.csv"),
            Err(StoreError::Integrity { .. })
        ));
        std::fs::write(&path, &good).unwrap();
        assert_eq!(a.get("d/data.csv").unwrap(), data);
    }

    #[test]
    fn plaintext_objects_are_encrypted_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path());
        std::fs::create_dir_all(dir.path().join("old")).unwrap();
        std::fs::write(dir.path().join("old/model.json"), b"{\"plain\": true}").unwrap();
        assert!(a.get("old/model.json").is_err());
        assert_eq!(a.encrypt_plaintext_objects().unwrap(), 1);
        assert_eq!(a.get("old/model.json").unwrap(), b"{\"plain\": true}");
        assert_eq!(a.encrypt_plaintext_objects().unwrap(), 0);
        // Once done, the scan is not repeated; a plaintext file planted later is refused.
        std::fs::write(dir.path().join("old/planted.json"), b"{}").unwrap();
        assert_eq!(a.encrypt_plaintext_objects().unwrap(), 0);
        assert!(matches!(
            a.get("old/planted.json"),
            Err(StoreError::Integrity { .. })
        ));
    }

    #[test]
    fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path());
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "",
            "a/b c",
            "a/.hidden",
        ] {
            assert!(
                matches!(a.put(bad, b"x"), Err(StoreError::InvalidKey(_))),
                "{bad}"
            );
        }
    }
}
