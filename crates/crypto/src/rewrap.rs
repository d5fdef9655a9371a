//! Moving objects to the active master key after a rotation: only the header's wrap changes;
//! the chunk bytes are copied as they are, never decrypted or re-encrypted.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::atomic_write::{write_atomic, AtomicWrite, Existing};
use crate::error::Result;
use crate::header::{read_header, HEADER_LEN};
use crate::keyring::KeyRing;

/// Rewrites the object at `path` so its data key is wrapped by the ring's active key.
/// Returns `false` (and touches nothing) if it already is.
///
/// Crash-safe: the new object is written to a temp file beside it, fsynced, renamed over
/// the original and the directory fsynced; the file keeps its permission bits. The caller
/// must ensure nobody writes the object concurrently.
pub fn rewrap_file(ring: &KeyRing, path: &Path) -> Result<bool> {
    let mut source = File::open(path)?;
    let header = read_header(&mut source)?;
    let Some(new_header) = header.rewrapped(ring)? else {
        return Ok(false);
    };
    let options = AtomicWrite {
        mode: permission_bits(&source)?,
        existing: Existing::Replace,
    };
    write_atomic(path, options, |temp| {
        temp.write_all(&new_header.encode())?;
        // `source` is positioned just after the header; on Linux this is copy_file_range.
        io::copy(&mut source, temp)?;
        Ok(())
    })?;
    Ok(true)
}

/// The header (the first `HEADER_LEN` bytes of `header_bytes`; more may be passed) rewrapped
/// by the ring's active key, for backends that rewrite objects themselves. The result is
/// `HEADER_LEN` bytes and replaces exactly the first `HEADER_LEN` bytes of the object; it
/// is the unchanged header if the active key already wraps it.
pub fn rewrap_header(ring: &KeyRing, header_bytes: &[u8]) -> Result<Vec<u8>> {
    let header = read_header(&mut &header_bytes[..header_bytes.len().min(HEADER_LEN)])?;
    let rewrapped = header.rewrapped(ring)?.unwrap_or(header);
    Ok(rewrapped.encode().to_vec())
}

#[cfg(unix)]
fn permission_bits(file: &File) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(file.metadata()?.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn permission_bits(_file: &File) -> Result<u32> {
    Ok(0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CryptoError;
    use crate::stream::{decrypt_to_vec, encrypt_to_vec, header_key_id};

    #[test]
    fn rewrap_header_keeps_the_bound_part() {
        let mut ring = KeyRing::generate().unwrap();
        let object = encrypt_to_vec(&ring, b"weights").unwrap();
        assert_eq!(rewrap_header(&ring, &object).unwrap(), object[..HEADER_LEN]);
        let new_id = ring.rotate().unwrap();
        let header = rewrap_header(&ring, &object).unwrap();
        assert_eq!(header[..29], object[..29]);
        assert_eq!(header_key_id(&header[..]).unwrap(), new_id);
        let mut moved = header;
        moved.extend_from_slice(&object[HEADER_LEN..]);
        assert_eq!(decrypt_to_vec(&ring, &moved).unwrap(), b"weights");
    }

    #[test]
    fn rewrap_of_plaintext_is_refused() {
        let ring = KeyRing::generate().unwrap();
        let result = rewrap_header(&ring, b"just some plaintext bytes");
        assert!(matches!(result, Err(CryptoError::NotEncrypted)));
    }
}
