//! Artifacts in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), so that
//! replicas share them. Encryption at rest is exactly [`LocalArtifacts`](crate::LocalArtifacts)'s:
//! every object is encrypted here, into a temp file of a local scratch folder, before it
//! is uploaded, so the object store only ever holds `aiaas-crypto` envelopes (the same
//! bytes a local file would hold), and every read authenticates each chunk before any
//! plaintext comes out (tampered or truncated: [`StoreError::Integrity`]).
//!
//! The client is a small one of our own over `reqwest`: AWS Signature Version 4 (header
//! auth, the payload's SHA-256 signed), path-style or virtual-hosted addressing, and the
//! handful of operations the store needs: PutObject, GetObject (whole or a range),
//! DeleteObject, ListObjectsV2, and multipart uploads (create, upload part, complete,
//! abort). Idempotent requests are retried (3 tries, with backoff) on 5xx answers and
//! connection failures; conditional writes are not (a retry could see its own write).
//!
//! Writes are conditional creates (`If-None-Match: *`, on PutObject and on
//! CompleteMultipartUpload): keys are unique ids, so an object that exists means another
//! replica wrote it, and the write fails with [`StoreError::Conflict`] instead of
//! replacing it ([`S3Artifacts::with_overwrite`] turns that off). A re-wrap rewrites an
//! object with `If-Match: <etag>` of the copy it read, so a concurrent change is never
//! overwritten. Servers that ignore these headers still get correct writes, only without
//! the protection.
//!
//! The [`ArtifactStore`] trait is synchronous and its callers run on blocking threads:
//! the store owns a small tokio runtime of its own, and each call hands its requests to
//! it and waits on a channel, so it works from any thread, inside a runtime or not.

use std::fmt;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aiaas_crypto::{KeyRing, HEADER_LEN};
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};

use crate::artifacts::{crypto, io as io_err, read_up_to, valid_key};
use crate::{ArtifactStore, MasterKeys, Result, StoreError};

/// Objects of at least this many ciphertext bytes go up as multipart uploads.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 << 20;
/// Size of each part of a multipart upload (the last one is smaller).
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;
/// S3's smallest part (all but the last).
const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's largest part.
const MAX_PART_SIZE: u64 = 5 << 30;
/// S3's most parts per upload.
const MAX_PARTS: u64 = 10_000;
/// Attempts of an idempotent request.
const TRIES: u32 = 3;

/// Where and how to reach the bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http(s)://host[:port]` of an S3-compatible server (MinIO: `http://127.0.0.1:9000`);
    /// `None` is AWS: `https://s3.{region}.amazonaws.com`.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Key prefix of every object, without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
    /// For temporary credentials (STS); sent as `x-amz-security-token`.
    pub session_token: Option<String>,
    /// `https://host/bucket/key` (MinIO and most self-hosted servers) instead of
    /// `https://bucket.host/key` (AWS's default).
    pub path_style: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("path_style", &self.path_style)
            .finish()
    }
}

impl S3Config {
    /// The bucket and the prefix of `s3://BUCKET` or `s3://BUCKET/PREFIX` (slashes around
    /// the prefix are dropped). The error says what is wrong and what is expected.
    pub fn parse_url(url: &str) -> std::result::Result<(String, String), S3UrlError> {
        const EXPECTED: &str = "expected s3://BUCKET or s3://BUCKET/PREFIX";
        let invalid = |message: String| Err(S3UrlError(message));
        let Some(rest) = url.trim().strip_prefix("s3://") else {
            return invalid(format!("{url:?} is not an S3 URL: {EXPECTED}"));
        };
        let (bucket, prefix) = match rest.split_once('/') {
            Some((bucket, prefix)) => (bucket, prefix.trim_matches('/')),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return invalid(format!("{url:?} names no bucket: {EXPECTED}"));
        }
        if !valid_bucket(bucket) {
            return invalid(format!(
                "{url:?}: {bucket:?} is not a valid bucket name (3-63 characters of a-z 0-9 . -, \
                 starting and ending with a letter or digit); {EXPECTED}"
            ));
        }
        if !prefix.is_empty() && !valid_key(prefix) {
            return invalid(format!(
                "{url:?}: the prefix {prefix:?} must be /-separated names of A-Z a-z 0-9 - _ . \
                 (none empty or starting with a dot, no query or fragment)"
            ));
        }
        Ok((bucket.to_string(), prefix.to_string()))
    }

    /// The endpoint requests go to.
    pub fn endpoint_url(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.trim().trim_end_matches('/').to_string(),
            None => format!("https://s3.{}.amazonaws.com", self.region),
        }
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// A malformed `s3://` URL; the message says what is wrong and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct S3UrlError(String);

/// DNS-compatible bucket names (the rule AWS and MinIO enforce).
fn valid_bucket(bucket: &str) -> bool {
    let bytes = bucket.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Encrypted artifacts in an S3 bucket, under a key prefix.
pub struct S3Artifacts {
    client: Client,
    keys: Arc<MasterKeys>,
    /// Where objects are encrypted before upload and downloaded before decryption (temp
    /// files, unlinked while open, so nothing is left behind).
    scratch: PathBuf,
    /// The configured prefix, without slashes around it.
    prefix: String,
    /// `s3://bucket/prefix`.
    location: String,
    multipart_threshold: u64,
    part_size: u64,
    /// `max-keys` of each ListObjectsV2 page; `None` is the server's default (1000).
    list_page: Option<u32>,
    overwrite: bool,
    /// Always `Some` until dropped.
    rt: Option<tokio::runtime::Runtime>,
}

impl S3Artifacts {
    /// A store for `config`'s bucket and prefix. Checks the settings but sends nothing;
    /// [`S3Artifacts::check`] tries the bucket. `scratch_dir` is created if missing.
    pub fn open(
        config: S3Config,
        keys: Arc<MasterKeys>,
        scratch_dir: &Path,
    ) -> Result<S3Artifacts> {
        let location = config.url();
        let invalid = |message: String| StoreError::Io {
            key: location.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, message),
        };
        if !valid_bucket(&config.bucket) {
            return Err(invalid(format!(
                "{:?} is not a valid bucket name (3-63 characters of a-z 0-9 . -)",
                config.bucket
            )));
        }
        if !config.prefix.is_empty() && !valid_key(&config.prefix) {
            return Err(invalid(format!(
                "the prefix {:?} must be /-separated names of A-Z a-z 0-9 - _ . without \
                 leading or trailing /",
                config.prefix
            )));
        }
        if config.region.trim().is_empty() {
            return Err(invalid(
                "the S3 region is empty (AWS: e.g. us-east-1; MinIO: us-east-1)".into(),
            ));
        }
        if config.access_key.is_empty() || config.secret_key.is_empty() {
            return Err(invalid(
                "the S3 access key and secret key are both required (AWS_ACCESS_KEY_ID, \
                 AWS_SECRET_ACCESS_KEY)"
                    .into(),
            ));
        }
        let client = Client::new(&config).map_err(invalid)?;
        std::fs::create_dir_all(scratch_dir).map_err(|source| StoreError::Io {
            key: scratch_dir.display().to_string(),
            source,
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("aiaas-s3")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io {
                key: location.clone(),
                source,
            })?;
        Ok(S3Artifacts {
            client,
            keys,
            scratch: scratch_dir.to_path_buf(),
            prefix: config.prefix.clone(),
            location,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            list_page: None,
            overwrite: false,
            rt: Some(rt),
        })
    }

    /// Objects of at least `bytes` of ciphertext go up in parts (at least 1).
    pub fn with_multipart_threshold(mut self, bytes: u64) -> Self {
        self.multipart_threshold = bytes.max(1);
        self
    }

    /// Size of the parts of a multipart upload, kept within S3's 5 MiB ..= 5 GiB (and
    /// raised as needed to stay within 10,000 parts).
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
        self
    }

    /// Keys per ListObjectsV2 page (1 ..= 1000).
    pub fn with_list_page_size(mut self, keys: u32) -> Self {
        self.list_page = Some(keys.clamp(1, 1000));
        self
    }

    /// Replace existing objects (a plain PutObject, atomic in S3) instead of refusing
    /// them with [`StoreError::Conflict`].
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// `s3://bucket/prefix at https://endpoint`, for logs.
    pub fn location(&self) -> String {
        format!("{} at {}", self.location, self.client.0.endpoint)
    }

    /// Lists one key under the prefix: proves at start-up that the endpoint answers, the
    /// bucket exists and the credentials may list it.
    pub fn check(&self) -> Result<()> {
        let client = self.client.clone();
        let base = self.list_base();
        let answer = self.run(async move { client.list_page(&base, None, Some(1)).await })?;
        match answer {
            Ok(_) => Ok(()),
            Err(e) => {
                let (kind, detail) = self.describe(&e);
                Err(StoreError::Io {
                    key: self.location.clone(),
                    source: io::Error::new(
                        kind,
                        format!(
                            "cannot reach the S3 bucket {} at {}: {detail}",
                            self.client.0.bucket, self.client.0.endpoint
                        ),
                    ),
                })
            }
        }
    }

    /// The object key of artifact `key` (checked like a local path).
    fn object_key(&self, key: &str) -> Result<String> {
        if !valid_key(key) {
            return Err(StoreError::InvalidKey(key.to_string()));
        }
        Ok(if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        })
    }

    /// The prefix every object key of this store starts with.
    fn list_base(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    fn create_condition(&self) -> Condition {
        if self.overwrite {
            Condition::None
        } else {
            Condition::Absent
        }
    }

    /// Runs `fut` on the store's runtime and waits for it, from any thread.
    fn run<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let stopped = || StoreError::Io {
            key: self.location.clone(),
            source: io::Error::other("the S3 client stopped before answering"),
        };
        let Some(rt) = &self.rt else {
            return Err(stopped());
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let _task = rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        // A panicking task drops the sender: an error, not a hang.
        rx.recv().map_err(|_| stopped())
    }

    /// `run` for a request about artifact `key`, its failure mapped to a store error.
    fn call<T, F>(&self, key: &str, fut: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, S3Failure>> + Send + 'static,
        T: Send + 'static,
    {
        self.run(fut)?.map_err(|e| self.failure(key, e))
    }

    /// The store error for a failed request about artifact `key`: a refused condition is
    /// a conflict, a missing object a `NotFound` I/O error (as a missing local file is).
    fn failure(&self, key: &str, e: S3Failure) -> StoreError {
        if e.is_conflict() {
            return StoreError::Conflict(format!("artifact {key}"));
        }
        let e = match e {
            S3Failure::Local(source) => return io_err(key)(source),
            other => other,
        };
        let (kind, detail) = self.describe(&e);
        let message = match e {
            // The store away or overloaded: the request may be retried (a 503, like the
            // database away), not an error of this object.
            S3Failure::Transport(_) => {
                return StoreError::Unavailable(format!(
                    "cannot reach S3 at {}: {detail}",
                    self.client.0.endpoint
                ));
            }
            S3Failure::Status { status, .. } if status >= 500 || status == 429 => {
                return StoreError::Unavailable(format!(
                    "S3 at {} is unavailable: {detail}",
                    self.client.0.endpoint
                ));
            }
            _ => detail,
        };
        StoreError::Io {
            key: key.to_string(),
            source: io::Error::new(kind, message),
        }
    }

    /// An I/O error kind and a message for people.
    fn describe(&self, e: &S3Failure) -> (io::ErrorKind, String) {
        let c = &*self.client.0;
        match e {
            S3Failure::Local(source) => (source.kind(), source.to_string()),
            S3Failure::Transport(message) => (io::ErrorKind::Other, message.clone()),
            S3Failure::Status {
                status,
                code,
                message,
            } => {
                let said = if message.is_empty() {
                    code.clone()
                } else {
                    format!("{code}: {message}")
                };
                match *status {
                    404 if code == "NoSuchBucket" => (
                        io::ErrorKind::NotFound,
                        format!(
                            "the bucket {} does not exist at {} (create it, or fix the bucket name)",
                            c.bucket, c.endpoint
                        ),
                    ),
                    404 => (
                        io::ErrorKind::NotFound,
                        format!("no such object in the S3 bucket {} ({said})", c.bucket),
                    ),
                    401 | 403 => (
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "S3 refused the request ({said}); check the access key, secret key \
                             and session token, the region ({}), this machine's clock, and that \
                             the credentials may use the bucket {}",
                            c.region, c.bucket
                        ),
                    ),
                    301 | 307 => (
                        io::ErrorKind::Other,
                        format!(
                            "S3 redirected the request ({said}); the bucket {} is probably in \
                             another region than {} or needs another endpoint",
                            c.bucket, c.region
                        ),
                    ),
                    _ => (
                        io::ErrorKind::Other,
                        format!("S3 answered {status} ({said})"),
                    ),
                }
            }
        }
    }

    /// Encrypts everything `plaintext` yields into a scratch file, then uploads it.
    fn store(&self, key: &str, plaintext: &mut dyn Read) -> Result<()> {
        let target = Target {
            key,
            object: self.object_key(key)?,
            condition: self.create_condition(),
        };
        let ring = self.keys.ring();
        let mut file = tempfile::tempfile_in(&self.scratch).map_err(io_err(key))?;
        {
            let mut out = io::BufWriter::with_capacity(1 << 16, &mut file);
            aiaas_crypto::encrypt(
                &ring,
                io::BufReader::with_capacity(1 << 16, plaintext),
                &mut out,
            )
            .map_err(|e| crypto(key, e))?;
            out.flush().map_err(io_err(key))?;
        }
        let len = file.seek(SeekFrom::End(0)).map_err(io_err(key))?;
        file.seek(SeekFrom::Start(0)).map_err(io_err(key))?;
        self.upload(&target, &mut file, len)
    }

    /// Uploads `len` bytes of `source`: one PutObject below the multipart threshold, a
    /// multipart upload above it.
    fn upload(&self, target: &Target<'_>, source: &mut dyn Read, len: u64) -> Result<()> {
        let key = target.key;
        if len < self.multipart_threshold || len == 0 {
            let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            Read::take(&mut *source, len)
                .read_to_end(&mut body)
                .map_err(io_err(key))?;
            if body.len() as u64 != len {
                return Err(short_source(key));
            }
            return self.put_single(target, body);
        }
        let part_size = self.part_size.max(len.div_ceil(MAX_PARTS));
        let client = self.client.clone();
        let object = target.object.clone();
        let upload_id = self.call(key, async move { client.create_multipart(&object).await })?;
        let result = self.upload_parts(target, &upload_id, source, len, part_size);
        if result.is_err() {
            // Parts of an upload never completed would be stored (and billed) until a
            // lifecycle rule removes them.
            let client = self.client.clone();
            let object = target.object.clone();
            let id = upload_id.clone();
            if let Ok(Err(e)) = self.run(async move { client.abort_multipart(&object, &id).await })
            {
                tracing::warn!(key, error = ?e, "aborting a failed multipart upload failed");
            }
        }
        result
    }

    fn put_single(&self, target: &Target<'_>, body: Vec<u8>) -> Result<()> {
        let client = self.client.clone();
        let object = target.object.clone();
        let condition = target.condition.clone();
        self.call(target.key, async move {
            client.put_object(&object, body, &condition).await
        })
    }

    fn upload_parts(
        &self,
        target: &Target<'_>,
        upload_id: &str,
        source: &mut dyn Read,
        len: u64,
        part_size: u64,
    ) -> Result<()> {
        let key = target.key;
        let mut etags: Vec<String> = Vec::new();
        let mut sent = 0u64;
        while sent < len {
            let size = part_size.min(len - sent);
            let mut part = vec![0u8; usize::try_from(size).map_err(|_| short_source(key))?];
            source.read_exact(&mut part).map_err(io_err(key))?;
            let number = u32::try_from(etags.len() + 1).unwrap_or(u32::MAX);
            let client = self.client.clone();
            let object = target.object.clone();
            let id = upload_id.to_string();
            let etag = self.call(key, async move {
                client.upload_part(&object, &id, number, part).await
            })?;
            etags.push(etag);
            sent += size;
        }
        let client = self.client.clone();
        let object = target.object.clone();
        let id = upload_id.to_string();
        let condition = target.condition.clone();
        self.call(key, async move {
            client
                .complete_multipart(&object, &id, &etags, &condition)
                .await
        })
    }

    /// Downloads the object into an anonymous scratch file, positioned at its start;
    /// also its ETag, when the server sent one.
    fn fetch(&self, key: &str) -> Result<(std::fs::File, Option<String>)> {
        let object = self.object_key(key)?;
        let mut file = tempfile::tempfile_in(&self.scratch).map_err(io_err(key))?;
        let sink = file.try_clone().map_err(io_err(key))?;
        let client = self.client.clone();
        let etag = self.call(key, async move { client.get_object(&object, sink).await })?;
        file.seek(SeekFrom::Start(0)).map_err(io_err(key))?;
        Ok((file, etag))
    }

    /// A decrypting reader of a downloaded copy; a key unknown to the ring triggers one
    /// reload of the key file (a rotation done by another process), as locally.
    fn decryptor(
        &self,
        key: &str,
    ) -> Result<aiaas_crypto::Decryptor<io::BufReader<std::fs::File>>> {
        let (mut file, _) = self.fetch(key)?;
        let open = |ring: &KeyRing, file: std::fs::File| {
            aiaas_crypto::Decryptor::new(ring, io::BufReader::with_capacity(1 << 16, file))
                .map_err(|e| crypto(key, e))
        };
        let copy = file.try_clone().map_err(io_err(key))?;
        match open(&self.keys.ring(), copy) {
            Err(StoreError::Keys(_)) if self.keys.reload()? => {
                file.seek(SeekFrom::Start(0)).map_err(io_err(key))?;
                open(&self.keys.ring(), file)
            }
            other => other,
        }
    }

    /// The header `head` (an object's first bytes) re-wrapped by the active key, or
    /// `None` when the active key already wraps it.
    fn rewrapped_header(&self, key: &str, head: &[u8]) -> Result<Option<Vec<u8>>> {
        let attempt =
            |ring: &KeyRing| aiaas_crypto::rewrap_header(ring, head).map_err(|e| crypto(key, e));
        let header = match attempt(&self.keys.ring()) {
            Err(StoreError::Keys(_)) if self.keys.reload()? => attempt(&self.keys.ring())?,
            other => other?,
        };
        let current = &head[..HEADER_LEN.min(head.len())];
        Ok((header.as_slice() != current).then_some(header))
    }
}

impl Drop for S3Artifacts {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime's thread; this
        // does not wait.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl ArtifactStore for S3Artifacts {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let len =
            aiaas_crypto::ciphertext_len(bytes.len() as u64, aiaas_crypto::DEFAULT_CHUNK_SIZE);
        if len >= self.multipart_threshold {
            return self.store(key, &mut &bytes[..]);
        }
        let target = Target {
            key,
            object: self.object_key(key)?,
            condition: self.create_condition(),
        };
        let body =
            aiaas_crypto::encrypt_to_vec(&self.keys.ring(), bytes).map_err(|e| crypto(key, e))?;
        self.put_single(&target, body)
    }

    fn put_file(&self, key: &str, file: &Path) -> Result<()> {
        let mut source = std::fs::File::open(file).map_err(io_err(key))?;
        self.store(key, &mut source)?;
        let _ = std::fs::remove_file(file);
        Ok(())
    }

    fn put_reader(&self, key: &str, reader: &mut dyn Read) -> Result<()> {
        self.store(key, reader)
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.decryptor(key)?))
    }

    /// Deletes the object `prefix` and every object under `prefix/` (as removing a file
    /// or a directory does locally); `prefix-other` stays.
    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let object = self.object_key(prefix)?;
        let client = self.client.clone();
        let page = self.list_page;
        self.call(prefix, async move {
            let children = format!("{object}/");
            for found in client.list(&object, page).await? {
                if found == object || found.starts_with(&children) {
                    client.delete_object(&found).await?;
                }
            }
            Ok::<(), S3Failure>(())
        })
    }

    /// Every object's key under the prefix, relative to it, sorted; objects whose names
    /// are not valid keys (written by something else) are left out.
    fn keys(&self) -> Result<Vec<String>> {
        let base = self.list_base();
        let client = self.client.clone();
        let page = self.list_page;
        let list_from = base.clone();
        let found = self.call(
            "(listing)",
            async move { client.list(&list_from, page).await },
        )?;
        let mut out: Vec<String> = found
            .into_iter()
            .filter_map(|object| object.strip_prefix(base.as_str()).map(str::to_string))
            .filter(|key| valid_key(key))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Reads the header first (a range request) and returns `false` when the active key
    /// already wraps it; otherwise downloads the object and uploads it again with the new
    /// header, on condition that it is still the copy that was read (`If-Match`).
    fn rewrap(&self, key: &str) -> Result<bool> {
        let object = self.object_key(key)?;
        let client = self.client.clone();
        let ranged = object.clone();
        let head = self.call(
            key,
            async move { client.get_head(&ranged, HEADER_LEN).await },
        )?;
        if self.rewrapped_header(key, &head)?.is_none() {
            return Ok(false);
        }
        let (mut file, etag) = self.fetch(key)?;
        let mut head = vec![0u8; HEADER_LEN];
        let n = read_up_to(&mut file, &mut head).map_err(io_err(key))?;
        head.truncate(n);
        // Decided again on the copy that is rewritten: it may have changed since.
        let Some(header) = self.rewrapped_header(key, &head)? else {
            return Ok(false);
        };
        let len = file.seek(SeekFrom::End(0)).map_err(io_err(key))?;
        file.seek(SeekFrom::Start(HEADER_LEN as u64))
            .map_err(io_err(key))?;
        let condition = match etag {
            Some(etag) => Condition::Matches(etag),
            None => {
                tracing::warn!(key, "S3 sent no ETag; re-wrapping without a precondition");
                Condition::None
            }
        };
        let target = Target {
            key,
            object,
            condition,
        };
        let mut source = io::Cursor::new(header).chain(file);
        match self.upload(&target, &mut source, len) {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                "artifact {key} was replaced while it was being re-wrapped; run the re-wrap again"
            ))),
            Err(other) => Err(other),
        }
    }

    fn is_shared(&self) -> bool {
        true
    }

    /// Uploads a sealed file as it is (no second encryption), as a conditional create
    /// like every write; the file stays.
    fn put_sealed(&self, key: &str, file: &Path) -> Result<()> {
        let target = Target {
            key,
            object: self.object_key(key)?,
            condition: self.create_condition(),
        };
        let mut source = std::fs::File::open(file).map_err(io_err(key))?;
        let mut prefix = [0u8; 8];
        let n = read_up_to(&mut source, &mut prefix).map_err(io_err(key))?;
        if !aiaas_crypto::is_encrypted(&prefix[..n]) {
            return Err(StoreError::Integrity {
                key: key.into(),
                reason: "the file to store is not sealed".into(),
            });
        }
        let len = source.seek(SeekFrom::End(0)).map_err(io_err(key))?;
        source.seek(SeekFrom::Start(0)).map_err(io_err(key))?;
        self.upload(&target, &mut source, len)
    }

    /// Downloads the object's envelope, as stored, into `dest` (created or truncated;
    /// removed again if the download fails).
    fn get_sealed(&self, key: &str, dest: &Path) -> Result<()> {
        let object = self.object_key(key)?;
        let file = std::fs::File::create(dest).map_err(io_err(key))?;
        let client = self.client.clone();
        let fetched = self.call(key, async move { client.get_object(&object, file).await });
        if let Err(e) = fetched {
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
        Ok(())
    }

}

fn short_source(key: &str) -> StoreError {
    StoreError::Io {
        key: key.to_string(),
        source: io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the encrypted object changed size before it was uploaded",
        ),
    }
}

/// One object being written.
struct Target<'a> {
    /// The artifact key (for errors).
    key: &'a str,
    /// The object key in the bucket.
    object: String,
    condition: Condition,
}

/// A write's precondition.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Condition {
    /// Unconditional: create or replace.
    None,
    /// Create only: `If-None-Match: *`.
    Absent,
    /// Replace only the copy with this ETag: `If-Match`.
    Matches(String),
}

impl Condition {
    fn header(&self) -> Option<(&'static str, &str)> {
        match self {
            Condition::None => None,
            Condition::Absent => Some(("if-none-match", "*")),
            Condition::Matches(etag) => Some(("if-match", etag.as_str())),
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
enum S3Failure {
    /// The server answered with an error (`status` 200 for an error inside the body of
    /// a CompleteMultipartUpload answer).
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// No usable answer: connection refused, timeout, TLS, a malformed answer.
    Transport(String),
    /// Reading or writing the local scratch file failed.
    Local(io::Error),
}

impl S3Failure {
    /// A precondition (`If-None-Match`/`If-Match`) refused.
    fn is_conflict(&self) -> bool {
        match self {
            S3Failure::Status { status, code, .. } => {
                *status == 412
                    || code == "PreconditionFailed"
                    || (*status == 409 && code == "ConditionalRequestConflict")
            }
            _ => false,
        }
    }
}

/// The S3 client: one bucket, signed requests, retries.
#[derive(Clone)]
struct Client(Arc<ClientInner>);

struct ClientInner {
    http: reqwest::Client,
    scheme: String,
    /// The `Host` header: `host[:port]`, with `bucket.` in front for virtual-hosted style.
    authority: String,
    /// The endpoint's own path (usually empty), without a trailing `/`.
    base_path: String,
    bucket: String,
    path_style: bool,
    region: String,
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
    /// For messages.
    endpoint: String,
}

impl Client {
    fn new(config: &S3Config) -> std::result::Result<Client, String> {
        let endpoint = config.endpoint_url();
        let url = Url::parse(&endpoint).map_err(|e| {
            format!("invalid S3 endpoint {endpoint:?} ({e}): expected http(s)://host[:port]")
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!(
                "invalid S3 endpoint {endpoint:?}: expected http(s)://host[:port]"
            ));
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(format!(
                "invalid S3 endpoint {endpoint:?}: no credentials, query or fragment belong in it"
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(format!(
                "invalid S3 endpoint {endpoint:?}: it names no host"
            ));
        };
        // `port()` is `None` for the scheme's default port, which is also what the Host
        // header leaves out.
        let host_port = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let authority = if config.path_style {
            host_port
        } else {
            format!("{}.{host_port}", config.bucket)
        };
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Also bounds the wait for an answer after an upload: a part must go up in it.
            .read_timeout(Duration::from_secs(300))
            .pool_idle_timeout(Duration::from_secs(30))
            // A redirect would need a new signature: report it instead.
            .redirect(reqwest::redirect::Policy::none());
        if loopback {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client for S3: {e}"))?;
        Ok(Client(Arc::new(ClientInner {
            http,
            scheme: url.scheme().to_string(),
            authority,
            base_path: url.path().trim_end_matches('/').to_string(),
            bucket: config.bucket.clone(),
            path_style: config.path_style,
            region: config.region.trim().to_string(),
            access_key: config.access_key.clone(),
            secret_key: config.secret_key.clone(),
            session_token: config.session_token.clone().filter(|t| !t.is_empty()),
            endpoint,
        })))
    }

    /// The request path (URI-encoded, which is also its canonical form) of an object, or
    /// of the bucket for `None`.
    fn path(&self, object: Option<&str>) -> String {
        let c = &*self.0;
        let mut path = c.base_path.clone();
        if c.path_style {
            path.push('/');
            path.push_str(&uri_encode(&c.bucket, false));
        }
        match object {
            Some(object) => {
                path.push('/');
                path.push_str(&uri_encode(object, true));
            }
            None if path.is_empty() => path.push('/'),
            None => {}
        }
        path
    }

    /// A signed request. `query` and `extra` headers are unencoded; header names are
    /// lowercase.
    fn request(
        &self,
        method: Method,
        object: Option<&str>,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> std::result::Result<reqwest::Request, S3Failure> {
        let c = &*self.0;
        let path = self.path(object);
        let query = canonical_query(query);
        let url_text = if query.is_empty() {
            format!("{}://{}{path}", c.scheme, c.authority)
        } else {
            format!("{}://{}{path}?{query}", c.scheme, c.authority)
        };
        let url = Url::parse(&url_text)
            .map_err(|e| S3Failure::Transport(format!("bad request URL {url_text}: {e}")))?;
        let payload_hash = hex(Sha256::digest(body.as_deref().unwrap_or(&[])).as_slice());
        let amz_date = amz_date(SystemTime::now());
        let mut headers: Vec<(String, String)> = vec![
            ("host".to_string(), c.authority.clone()),
            ("x-amz-content-sha256".to_string(), payload_hash.clone()),
            ("x-amz-date".to_string(), amz_date.clone()),
        ];
        if let Some(token) = &c.session_token {
            headers.push(("x-amz-security-token".to_string(), token.clone()));
        }
        for (name, value) in extra {
            headers.push((name.to_ascii_lowercase(), value.to_string()));
        }
        headers.sort();
        let authorization = authorization(&Signing {
            access_key: &c.access_key,
            secret_key: &c.secret_key,
            region: &c.region,
            method: method.as_str(),
            uri: &path,
            query: &query,
            headers: &headers,
            payload_hash: &payload_hash,
            amz_date: &amz_date,
        });
        headers.push(("authorization".to_string(), authorization));
        let mut request = reqwest::Request::new(method, url);
        for (name, value) in &headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| S3Failure::Transport(format!("bad header name {name}: {e}")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|e| S3Failure::Transport(format!("bad value of header {name}: {e}")))?;
            if name == "authorization" || name == "x-amz-security-token" {
                value.set_sensitive(true);
            }
            request.headers_mut().insert(header, value);
        }
        if let Some(body) = body {
            *request.body_mut() = Some(reqwest::Body::from(body));
        }
        Ok(request)
    }

    /// Sends `request`; a success status is an answer, anything else a failure. An
    /// idempotent request is tried up to 3 times on 5xx answers and transport errors.
    async fn send(
        &self,
        request: reqwest::Request,
        idempotent: bool,
    ) -> std::result::Result<reqwest::Response, S3Failure> {
        let tries = if idempotent { TRIES } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= tries;
            let Some(this) = request.try_clone() else {
                return Err(S3Failure::Transport(
                    "internal error: a request body that cannot be resent".into(),
                ));
            };
            match self.0.http.execute(this).await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if !last && retryable(response.status()) => {
                    tracing::debug!(status = %response.status(), attempt, "S3 request failed; retrying");
                }
                Ok(response) => return Err(failure_of(response).await),
                Err(e) if !last => {
                    tracing::debug!(error = %error_chain(&e), attempt, "S3 request failed; retrying");
                }
                Err(e) => return Err(S3Failure::Transport(error_chain(&e))),
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    async fn put_object(
        &self,
        object: &str,
        body: Vec<u8>,
        condition: &Condition,
    ) -> std::result::Result<(), S3Failure> {
        let extra: Vec<(&str, &str)> = condition.header().into_iter().collect();
        let request = self.request(Method::PUT, Some(object), &[], &extra, Some(body))?;
        // A conditional write is not retried: the first try may have been applied.
        self.send(request, *condition == Condition::None)
            .await
            .map(drop)
    }

    /// Streams the object into `file`; its ETag. A download cut short is started again.
    async fn get_object(
        &self,
        object: &str,
        mut file: std::fs::File,
    ) -> std::result::Result<Option<String>, S3Failure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self.request(Method::GET, Some(object), &[], &[], None)?;
            let mut response = self.send(request, true).await?;
            let etag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut cut = None;
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => file.write_all(&chunk).map_err(S3Failure::Local)?,
                    Ok(None) => break,
                    Err(e) => {
                        cut = Some(error_chain(&e));
                        break;
                    }
                }
            }
            match cut {
                None => {
                    file.flush().map_err(S3Failure::Local)?;
                    return Ok(etag);
                }
                Some(e) if attempt < TRIES => {
                    tracing::debug!(error = %e, attempt, "S3 download cut short; retrying");
                    file.set_len(0).map_err(S3Failure::Local)?;
                    file.seek(SeekFrom::Start(0)).map_err(S3Failure::Local)?;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Some(e) => return Err(S3Failure::Transport(e)),
            }
        }
    }

    /// The object's first `len` bytes (fewer if it is shorter; none if it is empty).
    async fn get_head(&self, object: &str, len: usize) -> std::result::Result<Vec<u8>, S3Failure> {
        let range = format!("bytes=0-{}", len.saturating_sub(1));
        let request = self.request(
            Method::GET,
            Some(object),
            &[],
            &[("range", range.as_str())],
            None,
        )?;
        let mut response = match self.send(request, true).await {
            Ok(response) => response,
            // Range not satisfiable: an empty object.
            Err(S3Failure::Status { status: 416, .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        // A server that ignores Range sends everything: stop reading once enough came.
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match response.chunk().await {
                Ok(Some(chunk)) => out.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return Err(S3Failure::Transport(error_chain(&e))),
            }
        }
        out.truncate(len);
        Ok(out)
    }

    /// Deleting an object that is not there succeeds (S3 does the same).
    async fn delete_object(&self, object: &str) -> std::result::Result<(), S3Failure> {
        let request = self.request(Method::DELETE, Some(object), &[], &[], None)?;
        match self.send(request, true).await {
            Ok(_) => Ok(()),
            Err(S3Failure::Status {
                status: 404, code, ..
            }) if code != "NoSuchBucket" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One ListObjectsV2 page of the keys starting with `prefix`.
    async fn list_page(
        &self,
        prefix: &str,
        token: Option<&str>,
        max_keys: Option<u32>,
    ) -> std::result::Result<ListPage, S3Failure> {
        let max_keys = max_keys.map(|n| n.to_string());
        let mut query: Vec<(&str, &str)> = vec![("list-type", "2")];
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        if let Some(token) = token {
            query.push(("continuation-token", token));
        }
        if let Some(max_keys) = &max_keys {
            query.push(("max-keys", max_keys.as_str()));
        }
        let request = self.request(Method::GET, None, &query, &[], None)?;
        let response = self.send(request, true).await?;
        let text = response
            .text()
            .await
            .map_err(|e| S3Failure::Transport(error_chain(&e)))?;
        parse_list(&text)
    }

    /// Every key starting with `prefix`, following continuation tokens.
    async fn list(
        &self,
        prefix: &str,
        page_size: Option<u32>,
    ) -> std::result::Result<Vec<String>, S3Failure> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(prefix, token.as_deref(), page_size).await?;
            out.extend(page.keys);
            match (page.truncated, page.next_token) {
                (false, _) => return Ok(out),
                (true, Some(next)) if token.as_deref() != Some(next.as_str()) => {
                    token = Some(next);
                }
                (true, _) => {
                    return Err(S3Failure::Transport(
                        "ListObjectsV2 said the listing goes on but gave no new continuation token"
                            .into(),
                    ))
                }
            }
        }
    }

    async fn create_multipart(&self, object: &str) -> std::result::Result<String, S3Failure> {
        let request = self.request(
            Method::POST,
            Some(object),
            &[("uploads", "")],
            &[],
            Some(Vec::new()),
        )?;
        let response = self.send(request, true).await?;
        let text = response
            .text()
            .await
            .map_err(|e| S3Failure::Transport(error_chain(&e)))?;
        xml_element(&text, "UploadId")
            .map(xml_unescape)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                S3Failure::Transport(format!(
                    "CreateMultipartUpload answer without an UploadId: {}",
                    excerpt(&text)
                ))
            })
    }

    /// Uploads part `number` (from 1); its ETag.
    async fn upload_part(
        &self,
        object: &str,
        upload_id: &str,
        number: u32,
        body: Vec<u8>,
    ) -> std::result::Result<String, S3Failure> {
        let number = number.to_string();
        let request = self.request(
            Method::PUT,
            Some(object),
            &[("partNumber", number.as_str()), ("uploadId", upload_id)],
            &[],
            Some(body),
        )?;
        let response = self.send(request, true).await?;
        response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                S3Failure::Transport(format!("UploadPart {number} answer without an ETag"))
            })
    }

    async fn complete_multipart(
        &self,
        object: &str,
        upload_id: &str,
        etags: &[String],
        condition: &Condition,
    ) -> std::result::Result<(), S3Failure> {
        let mut xml = String::from(
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        );
        for (index, etag) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                index + 1,
                xml_escape(etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let extra: Vec<(&str, &str)> = condition.header().into_iter().collect();
        let request = self.request(
            Method::POST,
            Some(object),
            &[("uploadId", upload_id)],
            &extra,
            Some(xml.into_bytes()),
        )?;
        // Not retried: a retry of a completed upload fails (NoSuchUpload).
        let response = self.send(request, false).await?;
        let text = response
            .text()
            .await
            .map_err(|e| S3Failure::Transport(error_chain(&e)))?;
        // S3 may answer 200 and still fail, with an <Error> in the body.
        if let Some((code, message)) = parse_error(&text) {
            return Err(S3Failure::Status {
                status: 200,
                code,
                message,
            });
        }
        Ok(())
    }

    async fn abort_multipart(
        &self,
        object: &str,
        upload_id: &str,
    ) -> std::result::Result<(), S3Failure> {
        let request = self.request(
            Method::DELETE,
            Some(object),
            &[("uploadId", upload_id)],
            &[],
            None,
        )?;
        match self.send(request, true).await {
            Ok(_) => Ok(()),
            Err(S3Failure::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// 5xx (and 429) are worth another try.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// 0.2 s, then 0.8 s, with up to 0.1 s of jitter.
fn backoff(attempt: u32) -> Duration {
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) % 100)
        .unwrap_or(0);
    Duration::from_millis(200 * 4u64.pow(attempt.saturating_sub(1).min(4)) + jitter)
}

async fn failure_of(response: reqwest::Response) -> S3Failure {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let (code, message) = parse_error(&text).unwrap_or_else(|| {
        (
            status.canonical_reason().unwrap_or("").replace(' ', ""),
            String::new(),
        )
    });
    S3Failure::Status {
        status: status.as_u16(),
        code,
        message,
    }
}

/// An error and its causes, `: `-joined (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

// ---- AWS Signature Version 4 ----------------------------------------------------------

/// What a request signature covers.
struct Signing<'a> {
    access_key: &'a str,
    secret_key: &'a str,
    region: &'a str,
    method: &'a str,
    /// The URI-encoded path.
    uri: &'a str,
    /// The canonical query string (see [`canonical_query`]).
    query: &'a str,
    /// Lowercase names, sorted by name; all of them are signed.
    headers: &'a [(String, String)],
    payload_hash: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    amz_date: &'a str,
}

/// The `Authorization` header value.
fn authorization(s: &Signing<'_>) -> String {
    let date = &s.amz_date[..s.amz_date.len().min(8)];
    let scope = format!("{date}/{}/s3/aws4_request", s.region);
    let canonical = canonical_request(s);
    let to_sign = string_to_sign(s.amz_date, &scope, &canonical);
    let signature = signature(s.secret_key, date, s.region, &to_sign);
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        s.access_key,
        signed_headers(s.headers)
    )
}

fn canonical_request(s: &Signing<'_>) -> String {
    let mut out = format!("{}\n{}\n{}\n", s.method, s.uri, s.query);
    for (name, value) in s.headers {
        out.push_str(name);
        out.push(':');
        out.push_str(&value.split_whitespace().collect::<Vec<_>>().join(" "));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers(s.headers));
    out.push('\n');
    out.push_str(s.payload_hash);
    out
}

fn signed_headers(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(Sha256::digest(canonical_request.as_bytes()).as_slice())
    )
}

fn signature(secret_key: &str, date: &str, region: &str, string_to_sign: &str) -> String {
    let k_date = hmac_sha256(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, b"s3");
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; the error exists only for fixed-key MACs.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Name-sorted `name=value` pairs, both URI-encoded (`/` too), `&`-joined: the canonical
/// query string, and also the query the request is sent with.
fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(name, value)| (uri_encode(name, false), uri_encode(value, false)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// AWS's URI encoding: `A-Z a-z 0-9 - _ . ~` stay, every other byte is `%XX` (uppercase
/// hex); `/` stays only in paths (`keep_slash`).
fn uri_encode(input: &str, keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len());
    for &byte in input.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            b'/' if keep_slash => out.push('/'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 15)]));
            }
        }
    }
    out
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` (UTC) of `time`.
fn amz_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

// ---- The few XML answers ------------------------------------------------------------

/// One ListObjectsV2 page.
#[derive(Debug, PartialEq, Eq)]
struct ListPage {
    keys: Vec<String>,
    truncated: bool,
    next_token: Option<String>,
}

fn parse_list(xml: &str) -> std::result::Result<ListPage, S3Failure> {
    if !xml.contains("<ListBucketResult") {
        return Err(S3Failure::Transport(format!(
            "unexpected answer to ListObjectsV2: {}",
            excerpt(xml)
        )));
    }
    let keys = xml_elements(xml, "Contents")
        .into_iter()
        .filter_map(|contents| xml_element(contents, "Key"))
        .map(xml_unescape)
        .collect();
    let truncated = xml_element(xml, "IsTruncated").is_some_and(|t| t.trim() == "true");
    let next_token = xml_element(xml, "NextContinuationToken")
        .map(xml_unescape)
        .filter(|t| !t.is_empty());
    Ok(ListPage {
        keys,
        truncated,
        next_token,
    })
}

/// The code and message of an `<Error>` answer.
fn parse_error(xml: &str) -> Option<(String, String)> {
    let error = xml_element(xml, "Error")?;
    let code = xml_element(error, "Code").map(xml_unescape)?;
    let message = xml_element(error, "Message")
        .map(xml_unescape)
        .unwrap_or_default();
    Some((code.trim().to_string(), message.trim().to_string()))
}

/// The content of the first `<tag>` element (`""` for `<tag/>`).
fn xml_element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    xml_elements(xml, tag).into_iter().next()
}

/// The contents of the `<tag>` elements, in order (not nested in each other). Only the
/// exact name matches: `<Key>` is not `<KeyCount>`; attributes are allowed.
fn xml_elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let inside = &after[..tag_end];
        let name_ends_here = inside.is_empty()
            || inside.starts_with(|c: char| c.is_ascii_whitespace())
            || inside == "/";
        if !name_ends_here {
            rest = after;
            continue;
        }
        let content_start = &after[tag_end + 1..];
        if inside.ends_with('/') {
            out.push("");
            rest = content_start;
            continue;
        }
        let Some(close_at) = content_start.find(&close) else {
            break;
        };
        out.push(&content_start[..close_at]);
        rest = &content_start[close_at + close.len()..];
    }
    out
}

/// Text content with XML's five entities and numeric references resolved.
fn xml_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let resolved = tail.find(';').and_then(|semi| {
            let entity = &tail[1..semi];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    if let Some(hex) = entity
                        .strip_prefix("#x")
                        .or_else(|| entity.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                    } else if let Some(decimal) = entity.strip_prefix('#') {
                        decimal.parse::<u32>().ok().and_then(char::from_u32)
                    } else {
                        None
                    }
                }
            };
            ch.map(|ch| (ch, semi))
        });
        match resolved {
            Some((ch, semi)) => {
                out.push(ch);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn signing<'a>(uri: &'a str, query: &'a str, headers: &'a [(String, String)]) -> Signing<'a> {
        Signing {
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: SECRET,
            region: "us-east-1",
            method: "GET",
            uri,
            query,
            headers,
            payload_hash: EMPTY_SHA256,
            amz_date: "20130524T000000Z",
        }
    }

    /// AWS's documented example "GET Object" (S3 API reference, "Signature Calculations
    /// for the Authorization Header", header-based auth, examplebucket/test.txt).
    #[test]
    fn sigv4_get_object_example() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let s = signing("/test.txt", "", &h);
        let canonical = canonical_request(&s);
        assert_eq!(
            canonical,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let to_sign = string_to_sign(
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            &canonical,
        );
        assert_eq!(
            to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            signature(SECRET, "20130524", "us-east-1", &to_sign),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(
            authorization(&s),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// AWS's examples "GET Bucket (List Objects)" (`?max-keys=2&prefix=J`) and "GET
    /// Bucket Lifecycle" (`?lifecycle`, a parameter without a value).
    #[test]
    fn sigv4_query_examples() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let query = canonical_query(&[("prefix", "J"), ("max-keys", "2")]);
        assert_eq!(query, "max-keys=2&prefix=J");
        let list = signing("/", &query, &h);
        assert!(authorization(&list).ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ));
        let query = canonical_query(&[("lifecycle", "")]);
        assert_eq!(query, "lifecycle=");
        let lifecycle = signing("/", &query, &h);
        assert!(authorization(&lifecycle).ends_with(
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        ));
    }

    #[test]
    fn header_values_are_trimmed_and_spaces_collapsed() {
        let h = headers(&[("host", "h"), ("x-amz-meta-a", "  one   two ")]);
        let s = signing("/", "", &h);
        assert!(canonical_request(&s).contains("\nx-amz-meta-a:one two\n"));
    }

    #[test]
    fn uri_encoding_follows_aws_rules() {
        assert_eq!(uri_encode("AZaz09-_.~", false), "AZaz09-_.~");
        assert_eq!(uri_encode("a/b c", true), "a/b%20c");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(uri_encode("test$file.text", true), "test%24file.text");
        assert_eq!(uri_encode("é+=&", false), "%C3%A9%2B%3D%26");
        assert_eq!(
            canonical_query(&[("uploadId", "a/b+c"), ("partNumber", "10")]),
            "partNumber=10&uploadId=a%2Fb%2Bc"
        );
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
    }

    #[test]
    fn amz_dates_are_utc_calendar_dates() {
        let at = |secs: u64| amz_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(1_369_353_600), "20130524T000000Z");
        assert_eq!(at(951_868_799), "20000229T235959Z");
        assert_eq!(at(2_147_483_648), "20380119T031408Z");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn list_answers_are_parsed() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>p/a&amp;b.txt</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>3</Size></Contents><Contents><Key>p/&lt;c&gt;&#x41;&#66;</Key><Size>1</Size></Contents><ContinuationToken>old</ContinuationToken><NextContinuationToken>t&amp;1</NextContinuationToken></ListBucketResult>"#;
        assert_eq!(
            parse_list(xml).unwrap(),
            ListPage {
                keys: vec!["p/a&b.txt".into(), "p/<c>AB".into()],
                truncated: true,
                next_token: Some("t&1".into()),
            }
        );
        let last = "<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated><Prefix/></ListBucketResult>";
        assert_eq!(
            parse_list(last).unwrap(),
            ListPage {
                keys: vec![],
                truncated: false,
                next_token: None,
            }
        );
        assert!(parse_list("<html>proxy error</html>").is_err());
    }

    #[test]
    fn upload_ids_and_errors_are_parsed() {
        let initiate = r#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE&amp;x</UploadId></InitiateMultipartUploadResult>"#;
        assert_eq!(
            xml_element(initiate, "UploadId")
                .map(xml_unescape)
                .as_deref(),
            Some("VXBsb2FkIElE&x")
        );
        let error = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition><RequestId>1</RequestId></Error>"#;
        assert_eq!(
            parse_error(error),
            Some((
                "PreconditionFailed".into(),
                "At least one of the pre-conditions you specified did not hold".into()
            ))
        );
        let ok = "<CompleteMultipartUploadResult><ETag>&quot;x-2&quot;</ETag></CompleteMultipartUploadResult>";
        assert_eq!(parse_error(ok), None);
        // Whitespace a server sends to keep the connection alive comes first.
        let late = "   \n<Error><Code>InternalError</Code></Error>";
        assert_eq!(
            parse_error(late),
            Some(("InternalError".into(), String::new()))
        );
        assert_eq!(xml_unescape("a &unknown; & b &amp;"), "a &unknown; & b &");
        assert_eq!(xml_escape("\"e\"&<>"), "\"e\"&amp;&lt;&gt;");
    }

    #[test]
    fn failures_that_are_conflicts() {
        let status = |status: u16, code: &str| S3Failure::Status {
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(status(412, "PreconditionFailed").is_conflict());
        assert!(status(200, "PreconditionFailed").is_conflict());
        assert!(status(409, "ConditionalRequestConflict").is_conflict());
        assert!(!status(409, "BucketAlreadyExists").is_conflict());
        assert!(!status(404, "NoSuchKey").is_conflict());
        assert!(!S3Failure::Transport("x".into()).is_conflict());
    }

    #[test]
    fn s3_urls_are_parsed_with_actionable_errors() {
        let ok = |url: &str| S3Config::parse_url(url).unwrap();
        assert_eq!(ok("s3://bucket"), ("bucket".into(), String::new()));
        assert_eq!(
            ok("s3://my.bucket-1/"),
            ("my.bucket-1".into(), String::new())
        );
        assert_eq!(
            ok("s3://bucket/aiaas/prod/"),
            ("bucket".into(), "aiaas/prod".into())
        );
        for (bad, says) in [
            ("https://bucket/x", "not an S3 URL"),
            ("s3://", "names no bucket"),
            ("s3:///prefix", "names no bucket"),
            ("s3://Bucket_Name/x", "not a valid bucket name"),
            ("s3://ab", "not a valid bucket name"),
            ("s3://bucket/a//b", "prefix"),
            ("s3://bucket/a/../b", "prefix"),
            ("s3://bucket/a?x=1", "prefix"),
        ] {
            let err = S3Config::parse_url(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(
                err.contains("s3://") || err.contains("prefix"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = S3Config {
            endpoint: None,
            region: "eu-west-1".into(),
            bucket: "bucket".into(),
            prefix: String::new(),
            access_key: "AKID".into(),
            secret_key: "very-secret".into(),
            session_token: Some("token-secret".into()),
            path_style: false,
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("token-secret"),
            "{shown}"
        );
        assert_eq!(config.endpoint_url(), "https://s3.eu-west-1.amazonaws.com");
        assert_eq!(config.url(), "s3://bucket");
    }

    #[test]
    fn addressing_styles() {
        let mut config = S3Config {
            endpoint: Some("http://127.0.0.1:9000/".into()),
            region: "us-east-1".into(),
            bucket: "bucket".into(),
            prefix: "p".into(),
            access_key: "a".into(),
            secret_key: "s".into(),
            session_token: None,
            path_style: true,
        };
        let client = Client::new(&config).unwrap();
        assert_eq!(client.0.authority, "127.0.0.1:9000");
        assert_eq!(client.path(Some("p/a b")), "/bucket/p/a%20b");
        assert_eq!(client.path(None), "/bucket");
        config.endpoint = None;
        config.path_style = false;
        let client = Client::new(&config).unwrap();
        assert_eq!(client.0.authority, "bucket.s3.us-east-1.amazonaws.com");
        assert_eq!(client.path(Some("p/x")), "/p/x");
        assert_eq!(client.path(None), "/");
        config.endpoint = Some("ftp://host".into());
        assert!(Client::new(&config).is_err());
        config.endpoint = Some("https://user:pw@host".into());
        assert!(Client::new(&config).is_err());
    }

    #[test]
    fn signed_requests_carry_the_signed_headers() {
        let config = S3Config {
            endpoint: Some("http://localhost:9000".into()),
            region: "us-east-1".into(),
            bucket: "bucket".into(),
            prefix: String::new(),
            access_key: "AKID".into(),
            secret_key: "secret".into(),
            session_token: Some("tok".into()),
            path_style: true,
        };
        let client = Client::new(&config).unwrap();
        let request = client
            .request(
                Method::PUT,
                Some("a/b"),
                &[("uploadId", "x y"), ("partNumber", "1")],
                &[("if-none-match", "*")],
                Some(b"body".to_vec()),
            )
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://localhost:9000/bucket/a/b?partNumber=1&uploadId=x%20y"
        );
        let h = request.headers();
        assert_eq!(h["host"], "localhost:9000");
        assert_eq!(
            h["x-amz-content-sha256"],
            hex(Sha256::digest(b"body").as_slice()).as_str()
        );
        assert_eq!(h["x-amz-security-token"], "tok");
        assert_eq!(h["if-none-match"], "*");
        let auth = h["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"),
            "{auth}"
        );
        assert!(
            auth.contains(
                "SignedHeaders=host;if-none-match;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
            ),
            "{auth}"
        );
    }
}
