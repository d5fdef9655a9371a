//! Library model weights sealed at rest: each file of a pulled model's folder (GGUF,
//! safetensors, tokenizer, config) is an envelope in the artifacts' format, encrypted in
//! place once the pull has verified it.
//!
//! Loaders (llama.cpp, candle) want paths, so [`ModelFiles::view`] decrypts a folder into
//! anonymous memory (`memfd_create`: pages that never reach a disk) and builds a private
//! folder of links to it; a loader reads the view as if it were the folder. The view is
//! dropped once the model is loaded: the loader's own mappings keep the pages alive, and
//! nothing plaintext is left behind.
//!
//! Architecture invariant: a file is replaced by its encrypted form atomically (temp file,
//! fsync, rename), so a crash leaves the plain file or the sealed one, never half of one;
//! a tampered or truncated file fails the load with [`StoreError::Integrity`].

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use aiaas_crypto::{CryptoError, KeyId, KeyRing};

use crate::{MasterKeys, Result, StoreError};

/// Seals, re-wraps, verifies and opens model folders with the master keys.
#[derive(Clone)]
pub struct ModelFiles {
    keys: Arc<MasterKeys>,
}

/// A loader's view of a sealed model folder; removed (and its memory released once the
/// loader has let go) on drop.
#[derive(Debug)]
pub struct ModelView {
    dir: PathBuf,
    /// The anonymous files the view's links point at.
    _memory: Vec<File>,
}

impl ModelView {
    /// The folder to load from: the same file names as the model's folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl ModelView {
    /// A view of plaintext read from `files` (name, content): each copied into anonymous
    /// memory, as [`ModelFiles::view`] does with sealed files (for artifacts a loader
    /// wants as paths: a fine-tuned adapter). Names are plain file names.
    pub fn of_readers(
        scratch: &Path,
        files: Vec<(String, Box<dyn Read + Send>)>,
    ) -> Result<ModelView> {
        let view_dir = scratch.join(format!("view-{}", aiaas_types::new_id()));
        std::fs::create_dir_all(&view_dir).map_err(io(&view_dir))?;
        let mut view = ModelView {
            dir: view_dir,
            _memory: Vec::new(),
        };
        for (name, mut reader) in files {
            let target = file_path(&view.dir, &name)?;
            let (mut memory, at) = anonymous_file(&name, &target)?;
            copy_large(&mut reader, &mut memory).map_err(|e| match aiaas_crypto_failure(&e) {
                Some(c) => integrity(Path::new(&name), c),
                None => io(Path::new(&name))(e),
            })?;
            if let Some(at) = at {
                link(&at, &target)?;
            }
            view._memory.push(memory);
        }
        Ok(view)
    }
}

impl Drop for ModelView {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ModelFiles {
    pub fn new(keys: Arc<MasterKeys>) -> ModelFiles {
        ModelFiles { keys }
    }

    /// Encrypt, in place, every file of `dir` named in `files` that is still plain;
    /// returns how many were.
    pub fn seal(&self, dir: &Path, files: &[String]) -> Result<usize> {
        let ring = self.keys.ring();
        let mut sealed = 0;
        for name in files {
            let path = file_path(dir, name)?;
            if is_sealed(&path)? {
                continue;
            }
            let tmp = path.with_file_name(format!(".{}.seal", aiaas_types::new_id()));
            let write = || -> Result<()> {
                let plain = File::open(&path).map_err(io(&path))?;
                let out = File::create(&tmp).map_err(io(&tmp))?;
                let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
                aiaas_crypto::encrypt(
                    &ring,
                    std::io::BufReader::with_capacity(1 << 16, plain),
                    &mut out,
                )
                .map_err(|e| crypto(&path, e))?;
                let out = out.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
                out.sync_all().map_err(io(&tmp))?;
                std::fs::rename(&tmp, &path).map_err(io(&path))
            };
            write().inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?;
            sealed += 1;
        }
        Ok(sealed)
    }

    /// Every sealed file under `root` (a models folder), for rotation and checks.
    pub fn sealed_files(root: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io(&dir))?;
                let path = entry.path();
                // Staging folders and temp files of pulls and seals in progress.
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let kind = entry.file_type().map_err(io(&path))?;
                if kind.is_dir() {
                    dirs.push(path);
                } else if kind.is_file() && is_sealed(&path)? {
                    out.push(path);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-wrap the data key of every sealed file under `root` with the active master
    /// key (payloads untouched); returns how many changed.
    pub fn rewrap_all(&self, root: &Path) -> Result<usize> {
        let ring = self.keys.ring();
        let mut changed = 0;
        for path in Self::sealed_files(root)? {
            if aiaas_crypto::rewrap_file(&ring, &path).map_err(|e| crypto(&path, e))? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// The master key each sealed file under `root` is wrapped by.
    pub fn key_ids(root: &Path) -> Result<Vec<(PathBuf, KeyId)>> {
        Self::sealed_files(root)?
            .into_iter()
            .map(|path| {
                let mut f = File::open(&path).map_err(io(&path))?;
                let id = aiaas_crypto::header_key_id(&mut f).map_err(|e| crypto(&path, e))?;
                Ok((path, id))
            })
            .collect()
    }

    /// Decrypt the model folder `dir` (its `files`) for a loader, into memory; plain
    /// files (none, once sealed) are linked as they are. The view is a new folder under
    /// `scratch`.
    pub fn view(&self, dir: &Path, files: &[String], scratch: &Path) -> Result<ModelView> {
        let view_dir = scratch.join(format!("view-{}", aiaas_types::new_id()));
        std::fs::create_dir_all(&view_dir).map_err(io(&view_dir))?;
        let mut view = ModelView {
            dir: view_dir,
            _memory: Vec::new(),
        };
        for name in files {
            let source = file_path(dir, name)?;
            let target = view.dir.join(name);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            if !is_sealed(&source)? {
                let absolute = std::fs::canonicalize(&source).map_err(io(&source))?;
                link(&absolute, &target)?;
                continue;
            }
            let (mut memory, at) = anonymous_file(name, &target)?;
            let mut plain = self.decryptor(&source)?;
            copy_large(&mut plain, &mut memory).map_err(|e| match aiaas_crypto_failure(&e) {
                Some(c) => integrity(&source, c),
                None => io(&source)(e),
            })?;
            if let Some(at) = at {
                link(&at, &target)?;
            }
            view._memory.push(memory);
        }
        Ok(view)
    }

    /// Check a sealed file against the size and sha256 (lowercase hex) of its plaintext
    /// recorded at the pull: every chunk authenticates, and the whole hashes to the
    /// digest. For a replica's copy fetched from the shared artifact store.
    pub fn check(&self, path: &Path, size: u64, sha256: &str) -> Result<()> {
        use sha2::Digest;
        let mut plain = self.decryptor(path)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = plain
                .read(&mut buf)
                .map_err(|e| match aiaas_crypto_failure(&e) {
                    Some(c) => integrity(path, c),
                    None => io(path)(e),
                })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        let digest = hex::encode(hasher.finalize());
        if total != size || !digest.eq_ignore_ascii_case(sha256) {
            return Err(StoreError::Integrity {
                key: path.display().to_string(),
                reason: format!(
                    "its content ({total} bytes, sha256 {digest}) is not what was pulled ({size} bytes, sha256 {sha256})"
                ),
            });
        }
        Ok(())
    }

    /// A decrypting reader; a key unknown to the ring triggers one reload of the key
    /// file (a rotation done by another process).
    fn decryptor(&self, path: &Path) -> Result<aiaas_crypto::Decryptor<std::io::BufReader<File>>> {
        let open = |ring: &KeyRing| -> Result<_> {
            let file = File::open(path).map_err(io(path))?;
            aiaas_crypto::Decryptor::new(ring, std::io::BufReader::with_capacity(1 << 16, file))
                .map_err(|e| crypto(path, e))
        };
        match open(&self.keys.ring()) {
            Err(StoreError::Keys(_)) if self.keys.reload()? => open(&self.keys.ring()),
            other => other,
        }
    }
}

/// Copies in 1 MiB pieces, decrypting on one thread while another writes (model files
/// are hundreds of MB; the two halves cost about the same, so the pipeline halves the
/// load-time cost of sealed weights).
fn copy_large(from: &mut (impl Read + Send), to: &mut File) -> std::io::Result<u64> {
    use std::io::Write;
    use std::sync::mpsc::sync_channel;
    const PIECE: usize = 1 << 20;
    let (full_tx, full_rx) = sync_channel::<std::io::Result<Vec<u8>>>(4);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(6);
    for _ in 0..6 {
        let _ = empty_tx.send(vec![0u8; PIECE]);
    }
    // `move`: on an early return the channel ends drop before the scope joins the reader,
    // which then stops instead of waiting for a buffer forever.
    std::thread::scope(move |scope| {
        scope.spawn(move || loop {
            let Ok(mut buf) = empty_rx.recv() else { return };
            buf.resize(PIECE, 0);
            let mut filled = 0;
            while filled < PIECE {
                match from.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        return;
                    }
                }
            }
            buf.truncate(filled);
            let last = filled == 0;
            if full_tx.send(Ok(buf)).is_err() || last {
                return;
            }
        });
        let mut total = 0u64;
        // Dropping the receivers on an early return stops the reader thread.
        for piece in full_rx.iter() {
            let piece = piece?;
            if piece.is_empty() {
                break;
            }
            to.write_all(&piece)?;
            total += piece.len() as u64;
            let _ = empty_tx.send(piece);
        }
        Ok(total)
    })
}

/// `dir/name`, refusing names that would leave the folder.
fn file_path(dir: &Path, name: &str) -> Result<PathBuf> {
    let rel = Path::new(name);
    let inside = !name.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !inside {
        return Err(StoreError::InvalidKey(name.to_string()));
    }
    Ok(dir.join(rel))
}

fn is_sealed(path: &Path) -> Result<bool> {
    let mut prefix = [0u8; 8];
    let mut f = File::open(path).map_err(io(path))?;
    let mut n = 0;
    while n < prefix.len() {
        match f.read(&mut prefix[n..]).map_err(io(path))? {
            0 => break,
            k => n += k,
        }
    }
    Ok(aiaas_crypto::is_encrypted(&prefix[..n]))
}

/// A file in memory only (Linux: `memfd_create`) and the path that opens it; elsewhere a
/// 0600 file at `fallback` (the view folder), the one case where plaintext is written.
#[cfg(target_os = "linux")]
fn anonymous_file(name: &str, _fallback: &Path) -> Result<(File, Option<PathBuf>)> {
    use std::os::fd::FromRawFd;
    let label = std::ffi::CString::new(name.replace('\0', "")).unwrap_or_default();
    // SAFETY: memfd_create takes a NUL-terminated name and flags and returns a new file
    // descriptor (or -1); it touches no memory of ours beyond reading the name.
    let fd = unsafe { libc::memfd_create(label.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(io(Path::new(name))(e));
    }
    // SAFETY: `fd` was just created, is valid, and nothing else owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    Ok((file, Some(PathBuf::from(format!("/proc/self/fd/{fd}")))))
}

#[cfg(not(target_os = "linux"))]
fn anonymous_file(_name: &str, fallback: &Path) -> Result<(File, Option<PathBuf>)> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(fallback).map_err(io(fallback))?;
    Ok((file, None))
}

fn link(target: &Path, at: &Path) -> Result<()> {
    #[cfg(unix)]
    let made = std::os::unix::fs::symlink(target, at);
    #[cfg(not(unix))]
    let made = std::fs::copy(target, at).map(|_| ());
    made.map_err(io(at))
}

fn aiaas_crypto_failure(e: &std::io::Error) -> Option<&CryptoError> {
    crate::crypto_failure(e)
}

/// How a file is named in errors: its model folder and name, not the host's layout.
fn label(path: &Path) -> String {
    let mut parts: Vec<_> = path.iter().rev().take(2).collect();
    parts.reverse();
    parts.iter().collect::<PathBuf>().display().to_string()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        key: label(path),
        source,
    }
}

fn crypto(path: &Path, e: CryptoError) -> StoreError {
    match e {
        CryptoError::Io(source) => io(path)(source),
        CryptoError::UnknownKey(id) => StoreError::Keys(format!(
            "model file {} is encrypted with master key {id}, which is not in the key ring",
            label(path)
        )),
        other => integrity(path, &other),
    }
}

fn integrity(path: &Path, e: &CryptoError) -> StoreError {
    StoreError::Integrity {
        key: label(path),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, ModelFiles, Vec<String>) {
        // The key ring lives in a file so a test can rotate it.
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("models/tiny");
        std::fs::create_dir_all(model.join("1_Pooling")).unwrap();
        std::fs::write(model.join("model.gguf"), b"GGUF weights ".repeat(20_000)).unwrap();
        std::fs::write(
            model.join("1_Pooling/config.json"),
            b"{\"pooling\": \"mean\"}",
        )
        .unwrap();
        std::fs::write(model.join("aiaas-model.json"), b"{}").unwrap();
        let key_file = dir.path().join("master.key");
        KeyRing::create_file(&key_file).unwrap();
        let keys = Arc::new(MasterKeys::new(
            KeyRing::load_file(&key_file).unwrap(),
            None,
        ));
        let names = vec![
            "model.gguf".to_string(),
            "1_Pooling/config.json".to_string(),
        ];
        (dir, ModelFiles::new(keys), names)
    }

    #[test]
    fn sealed_files_read_back_through_a_view_and_leave_nothing_behind() {
        let (dir, mf, names) = files();
        let model = dir.path().join("models/tiny");
        assert_eq!(mf.seal(&model, &names).unwrap(), 2);
        assert_eq!(
            mf.seal(&model, &names).unwrap(),
            0,
            "sealing twice changes nothing"
        );
        let on_disk = std::fs::read(model.join("model.gguf")).unwrap();
        assert!(aiaas_crypto::is_encrypted(&on_disk));
        assert!(!on_disk.windows(7).any(|w| w == b"weights"));
        // The manifest was not listed: left as it is.
        assert_eq!(
            std::fs::read(model.join("aiaas-model.json")).unwrap(),
            b"{}"
        );

        let scratch = dir.path().join("tmp");
        let view = mf.view(&model, &names, &scratch).unwrap();
        assert_eq!(
            std::fs::read(view.path().join("model.gguf")).unwrap(),
            b"GGUF weights ".repeat(20_000)
        );
        assert_eq!(
            std::fs::read(view.path().join("1_Pooling/config.json")).unwrap(),
            b"{\"pooling\": \"mean\"}"
        );
        let view_dir = view.path().to_path_buf();
        drop(view);
        assert!(!view_dir.exists());
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    }

    #[test]
    fn a_tampered_or_truncated_file_fails_the_view() {
        let (dir, mf, names) = files();
        let model = dir.path().join("models/tiny");
        mf.seal(&model, &names).unwrap();
        let path = model.join("model.gguf");
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let scratch = dir.path().join("tmp");
        let err = mf.view(&model, &names, &scratch).unwrap_err();
        assert!(matches!(err, StoreError::Integrity { .. }), "{err}");
        bytes[middle] ^= 1;
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let err = mf.view(&model, &names, &scratch).unwrap_err();
        assert!(matches!(err, StoreError::Integrity { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(&scratch).unwrap().count(),
            0,
            "no view left"
        );
    }

    #[test]
    fn rotation_rewraps_every_sealed_file() {
        let (dir, mf, names) = files();
        let model = dir.path().join("models/tiny");
        mf.seal(&model, &names).unwrap();
        let root = dir.path().join("models");
        let before = ModelFiles::key_ids(&root).unwrap();
        assert_eq!(before.len(), 2);
        let mut ring = KeyRing::load_file(&dir.path().join("master.key")).unwrap();
        let new_id = ring.rotate().unwrap();
        let rotated = ModelFiles::new(Arc::new(MasterKeys::new(ring, None)));
        assert_eq!(rotated.rewrap_all(&root).unwrap(), 2);
        assert!(ModelFiles::key_ids(&root)
            .unwrap()
            .iter()
            .all(|(_, id)| *id == new_id));
        let view = rotated
            .view(&model, &names, &dir.path().join("tmp"))
            .unwrap();
        assert_eq!(
            std::fs::read(view.path().join("model.gguf")).unwrap().len(),
            13 * 20_000
        );
    }

    #[test]
    fn names_cannot_leave_the_folder() {
        let (dir, mf, _) = files();
        let model = dir.path().join("models/tiny");
        for bad in ["../x", "/etc/passwd", "", "a/../../b"] {
            assert!(mf.seal(&model, &[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
