//! Crash-safe file replacement: write a private temp file in the target's directory, fsync
//! it, rename (or link) it into place, fsync the directory. A crash leaves either the old
//! file or the new one, never a mix, and never a world-readable window.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{CryptoError, Result};
use crate::random;

/// What to do when the target already exists.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Existing {
    Refuse,
    Replace,
}

/// Permission bits for the new file and the policy for an existing target.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AtomicWrite {
    pub mode: u32,
    pub existing: Existing,
}

/// Writes `target` through `fill`, which receives the temp file positioned at 0.
pub(crate) fn write_atomic(
    target: &Path,
    options: AtomicWrite,
    fill: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    if options.existing == Existing::Refuse && fs::symlink_metadata(target).is_ok() {
        return Err(CryptoError::FileExists(target.to_path_buf()));
    }
    let dir = parent_dir(target);
    let mut temp = TempFile::create(&dir, target, options.mode)?;
    fill(&mut temp.file)?;
    temp.file.sync_all()?;
    match options.existing {
        Existing::Replace => {
            fs::rename(&temp.path, target)?;
            temp.renamed = true;
        }
        // A hard link fails atomically if the target appeared meanwhile, which a
        // check-then-rename cannot guarantee; the temp name is removed on drop.
        Existing::Refuse => fs::hard_link(&temp.path, target).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                CryptoError::FileExists(target.to_path_buf())
            } else {
                CryptoError::Io(e)
            }
        })?,
    }
    drop(temp);
    sync_dir(&dir)
}

struct TempFile {
    path: PathBuf,
    file: File,
    renamed: bool,
}

impl TempFile {
    fn create(dir: &Path, target: &Path, mode: u32) -> Result<TempFile> {
        let name = target
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy());
        let path = dir.join(format!(
            ".{name}.tmp-{}",
            hex::encode(random::array::<8>()?)
        ));
        let file = open_new(&path, mode)?;
        Ok(TempFile {
            path,
            file,
            renamed: false,
        })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            // Best effort: a leftover temp file is private and harmless, only untidy.
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn parent_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn open_new(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Created 0600 so no other user can ever open it; widened afterwards only if asked
    // (rewrap keeps an artifact's original mode).
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    if mode != 0o600 {
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(file)
}

#[cfg(not(unix))]
fn open_new(path: &Path, _mode: u32) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(target: &Path, existing: Existing, text: &str) -> Result<()> {
        let options = AtomicWrite {
            mode: 0o600,
            existing,
        };
        write_atomic(target, options, |f| Ok(f.write_all(text.as_bytes())?))
    }

    #[test]
    fn refuse_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ring.json");
        write(&target, Existing::Refuse, "one").unwrap();
        assert!(matches!(
            write(&target, Existing::Refuse, "two"),
            Err(CryptoError::FileExists(_))
        ));
        assert_eq!(fs::read_to_string(&target).unwrap(), "one");
        write(&target, Existing::Replace, "three").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "three");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
    }

    #[test]
    fn failed_fill_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x");
        let options = AtomicWrite {
            mode: 0o600,
            existing: Existing::Replace,
        };
        let result = write_atomic(&target, options, |_| Err(CryptoError::Truncated));
        assert!(matches!(result, Err(CryptoError::Truncated)));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn mode_is_applied() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("artifact");
        let options = AtomicWrite {
            mode: 0o644,
            existing: Existing::Replace,
        };
        write_atomic(&target, options, |f| Ok(f.write_all(b"x")?)).unwrap();
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
}
