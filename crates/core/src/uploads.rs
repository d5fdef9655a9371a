//! Uploads in progress (datasets, files): bytes go to a temporary file as they arrive,
//! bounded by the size limit, encrypted under a key that lives only in the upload's
//! memory, so the plaintext never touches the disk, even while it is parsed. Dropping an
//! upload removes its file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::{CoreError, Result};

/// An upload being received; see the module documentation.
pub struct Upload {
    pub(crate) path: PathBuf,
    file: Option<tokio::fs::File>,
    /// Seals into memory; each write drains it into `file`.
    sealer: Option<aiaas_crypto::Encryptor<Vec<u8>>>,
    pub(crate) key: Arc<aiaas_crypto::KeyRing>,
    bytes: u64,
    limit: u64,
    /// The first bytes, to tell formats apart.
    pub(crate) head: Vec<u8>,
}

impl Upload {
    /// A new upload spooled under `scratch`, at most `limit` bytes.
    pub(crate) async fn begin(scratch: &Path, limit: u64) -> Result<Upload> {
        let path = scratch.join(format!("{}.upload", aiaas_types::new_id()));
        Upload::create(path, limit).await
    }

    pub(crate) async fn create(path: PathBuf, limit: u64) -> Result<Upload> {
        let key = Arc::new(aiaas_crypto::KeyRing::generate().map_err(temp_crypto)?);
        let sealer = aiaas_crypto::Encryptor::new(&key, Vec::new(), Default::default())
            .map_err(temp_crypto)?;
        let file = tokio::fs::File::create(&path).await?;
        Ok(Upload {
            path,
            file: Some(file),
            sealer: Some(sealer),
            key,
            bytes: 0,
            limit,
            head: Vec::new(),
        })
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub async fn write_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limit {
            return Err(CoreError::PayloadTooLarge(format!(
                "upload exceeds the limit of {} bytes",
                self.limit
            )));
        }
        if self.head.len() < 64 {
            let take = (64 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        let (Some(file), Some(sealer)) = (&mut self.file, &mut self.sealer) else {
            return Err(CoreError::Internal("upload already finished".into()));
        };
        std::io::Write::write_all(sealer, chunk)?;
        let sealed = std::mem::take(sealer.get_mut());
        Ok(file.write_all(&sealed).await?)
    }

    /// Feed a whole local file (used by the demo and the CLI's offline paths).
    pub async fn write_file(&mut self, path: &Path) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(path).await?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            self.write_chunk(&buf[..n]).await?;
        }
    }

    /// The last bytes sealed and the file flushed to disk.
    pub(crate) async fn finish(&mut self) -> Result<()> {
        if let (Some(mut f), Some(sealer)) = (self.file.take(), self.sealer.take()) {
            let rest = sealer.finish().map_err(temp_crypto)?;
            f.write_all(&rest).await?;
            f.flush().await?;
            f.sync_all().await?;
        }
        Ok(())
    }

    /// Opens the finished upload's plaintext, decrypting as it reads.
    pub(crate) fn opener(
        &self,
    ) -> impl Fn() -> Result<Box<dyn Read + Send>> + Sync + Send + 'static {
        temp_opener(self.path.clone(), self.key.clone())
    }

    /// The first byte that is neither white space nor part of a UTF-8 byte-order mark.
    pub(crate) fn first_significant(&self) -> Option<u8> {
        self.head
            .iter()
            .copied()
            .find(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Opens a temporary file written under an upload's in-memory key, decrypting.
pub(crate) fn temp_opener(
    path: PathBuf,
    key: Arc<aiaas_crypto::KeyRing>,
) -> impl Fn() -> Result<Box<dyn Read + Send>> + Sync + Send + 'static {
    move || {
        let file = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(&path)?);
        let plain = aiaas_crypto::Decryptor::new(&key, file).map_err(temp_crypto)?;
        Ok(Box::new(plain) as Box<dyn Read + Send>)
    }
}

/// The upload's own temporary encryption failed: nothing a user did.
pub(crate) fn temp_crypto(e: aiaas_crypto::CryptoError) -> CoreError {
    CoreError::Internal(format!("encrypting the upload's temporary file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upload_never_reaches_the_disk_in_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.upload");
        let mut upload = Upload::create(path.clone(), 1 << 30).await.unwrap();
        let row = "write to jane.doe@example.org about the bond market,finance\n";
        let content = format!("text,label\n{}", row.repeat(5000));
        for piece in content.as_bytes().chunks(7919) {
            upload.write_chunk(piece).await.unwrap();
        }
        upload.finish().await.unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert!(aiaas_crypto::is_encrypted(&on_disk));
        assert!(!on_disk.windows(8).any(|w| w == b"jane.doe"));
        let mut back = String::new();
        (upload.opener())()
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, content);
        drop(upload);
        assert!(!path.exists(), "an abandoned upload leaves no file");
    }

    #[tokio::test]
    async fn an_upload_over_its_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut upload = Upload::begin(dir.path(), 10).await.unwrap();
        upload.write_chunk(b"0123456789").await.unwrap();
        assert!(matches!(
            upload.write_chunk(b"x").await,
            Err(CoreError::PayloadTooLarge(_))
        ));
    }
}
