//! The key-ring file on disk: created and replaced with mode 0600, and refused on load
//! when group or others could read it.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use crate::atomic_write::{write_atomic, AtomicWrite, Existing};
use crate::error::{CryptoError, Result};

/// A ring file is a few hundred bytes per key; anything far larger is not one.
const MAX_RING_FILE_LEN: u64 = 1 << 20;
const PRIVATE_MODE: u32 = 0o600;

pub(crate) fn create(path: &Path, contents: &[u8]) -> Result<()> {
    let options = AtomicWrite {
        mode: PRIVATE_MODE,
        existing: Existing::Refuse,
    };
    write_atomic(path, options, |file| Ok(file.write_all(contents)?))
}

pub(crate) fn replace(path: &Path, contents: &[u8]) -> Result<()> {
    let options = AtomicWrite {
        mode: PRIVATE_MODE,
        existing: Existing::Replace,
    };
    write_atomic(path, options, |file| Ok(file.write_all(contents)?))
}

/// The file's text, wiped from memory when dropped.
pub(crate) fn read_private(path: &Path) -> Result<Zeroizing<String>> {
    let mut file = File::open(path)?;
    // Checked on the open handle, so the file cannot be swapped between check and read.
    let meta = file.metadata()?;
    check_private(path, &meta)?;
    if meta.len() > MAX_RING_FILE_LEN {
        return Err(CryptoError::InvalidKeyRing(format!(
            "{} is {} bytes, too large for a key-ring file",
            path.display(),
            meta.len()
        )));
    }
    // Sized up front so the buffer never reallocates and leaves an unwiped copy behind.
    let mut text = Zeroizing::new(String::with_capacity(meta.len() as usize + 1));
    file.read_to_string(&mut text).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => {
            CryptoError::InvalidKeyRing(format!("{} is not UTF-8 text", path.display()))
        }
        _ => CryptoError::Io(e),
    })?;
    Ok(text)
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<()> {
    Ok(())
}
