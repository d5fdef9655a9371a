//! Artifacts in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), so that
//! replicas share them. Encryption at rest is exactly [`LocalArtifacts`](crate::LocalArtifacts)'s:
//! every object is encrypted here, into a temp file of a local scratch folder, before it
//! is uploaded, so the object store only ever holds `aiaas-crypto` envelopes (the same
//! bytes a local file would hold), and every read authenticates each chunk before any
//! plaintext comes out (tampered or truncated: [`StoreError::Integrity`]).
//!
//! The protocol is the kept `object_store` crate's (SigV4, retries with backoff, ranged
//! reads that resume where a broken download stopped, multipart uploads with parts in
//! flight at once, the AWS credential chain with refresh before expiry). This module
//! adds the envelope, the key layout, the preconditions and the error mapping.
//!
//! Writes are conditional creates (`If-None-Match: *`, on PutObject and on
//! CompleteMultipartUpload, see `conditional.rs`): keys are unique ids, so an object that
//! exists means another replica wrote it, and the write fails with
//! [`StoreError::Conflict`] instead of replacing it ([`S3Artifacts::with_overwrite`]
//! turns that off). A re-wrap rewrites an object with `If-Match: <etag>` of the copy it
//! read, so a concurrent change is never overwritten. (A conditional write that S3
//! committed but whose answer was lost is retried by the client and then refused: a
//! rare false conflict, never a lost write.)
//!
//! The [`ArtifactStore`] trait is synchronous and its callers run on blocking threads:
//! the store owns a small tokio runtime of its own, and each call hands its requests to
//! it and waits on a channel, so it works from any thread, inside a runtime or not.

mod conditional;
mod config;
mod errors;

pub use config::{S3Config, S3Credentials, S3UrlError};

use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aiaas_crypto::{KeyRing, HEADER_LEN};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};

use self::conditional::{with_complete_condition, Condition, ConditionalConnector};
use self::errors::{chain, http_status, is_transport, s3_code, Failure};
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
/// Parts of one upload sent at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Encrypted artifacts in an S3 bucket, under a key prefix.
pub struct S3Artifacts {
    store: Arc<AmazonS3>,
    keys: Arc<MasterKeys>,
    /// Where objects are encrypted before upload and downloaded before decryption (temp
    /// files, unlinked while open, so nothing is left behind).
    scratch: PathBuf,
    /// The configured prefix, without slashes around it.
    prefix: String,
    /// `s3://bucket/prefix`.
    location: String,
    endpoint: String,
    bucket: String,
    region: String,
    multipart_threshold: u64,
    part_size: u64,
    /// Keys per list page; `None` is the server's default (1000).
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
        config.validate().map_err(invalid)?;
        let endpoint = config.endpoint_url();
        let store = client(&config, &endpoint).map_err(|e| invalid(e.to_string()))?;
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
            store: Arc::new(store),
            keys,
            scratch: scratch_dir.to_path_buf(),
            prefix: config.prefix.clone(),
            location,
            endpoint,
            bucket: config.bucket,
            region: config.region,
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

    /// Keys per list page (1 ..= 1000).
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
        format!("{} at {}", self.location, self.endpoint)
    }

    /// Lists one key under the prefix: proves at start-up that the endpoint answers, the
    /// bucket exists and the credentials may list it.
    pub fn check(&self) -> Result<()> {
        let store = self.store.clone();
        let base = self.list_base();
        let answer = self.run(async move {
            let options = PaginatedListOptions {
                max_keys: Some(1),
                ..PaginatedListOptions::default()
            };
            let prefix = (!base.is_empty()).then_some(base.as_str());
            store.list_paginated(prefix, options).await
        })?;
        answer.map(|_| ()).map_err(|e| {
            let (kind, detail) = self.describe(&e);
            StoreError::Io {
                key: self.location.clone(),
                source: io::Error::new(
                    kind,
                    format!(
                        "cannot reach the S3 bucket {} at {}: {detail}",
                        self.bucket, self.endpoint
                    ),
                ),
            }
        })
    }

    /// The object path of artifact `key` (checked like a local path).
    fn object_path(&self, key: &str) -> Result<ObjectPath> {
        if !valid_key(key) {
            return Err(StoreError::InvalidKey(key.to_string()));
        }
        let object = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        ObjectPath::parse(&object).map_err(|_| StoreError::InvalidKey(key.to_string()))
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
    fn call<T, E, F>(&self, key: &str, fut: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Failure> + Send + 'static,
    {
        self.run(fut)?.map_err(|e| self.failure(key, e.into()))
    }

    /// The store error for a failed request about artifact `key`: a refused condition is
    /// a conflict, a missing object a `NotFound` I/O error (as a missing local file is),
    /// the store away or overloaded `Unavailable` (a 503 to retry, as the database away).
    fn failure(&self, key: &str, e: Failure) -> StoreError {
        let e = match e {
            Failure::Local(source) => return io_err(key)(source),
            Failure::Store(e) => e,
        };
        if matches!(
            e,
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
        ) {
            return StoreError::Conflict(format!("artifact {key}"));
        }
        let (kind, detail) = self.describe(&e);
        if is_transport(&e) {
            return StoreError::Unavailable(format!(
                "cannot reach S3 at {}: {detail}",
                self.endpoint
            ));
        }
        if http_status(&chain(&e)).is_some_and(|s| s >= 500 || s == 429) {
            return StoreError::Unavailable(format!(
                "S3 at {} is unavailable: {detail}",
                self.endpoint
            ));
        }
        StoreError::Io {
            key: key.to_string(),
            source: io::Error::new(kind, detail),
        }
    }

    /// An I/O error kind and a message for people.
    fn describe(&self, e: &object_store::Error) -> (io::ErrorKind, String) {
        let text = chain(e);
        let code = s3_code(&text);
        let said = match (code, http_status(&text)) {
            (Some(code), _) => code.to_string(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => text.clone(),
        };
        if code == Some("NoSuchBucket") {
            return (
                io::ErrorKind::NotFound,
                format!(
                    "the bucket {} does not exist at {} (create it, or fix the bucket name)",
                    self.bucket, self.endpoint
                ),
            );
        }
        // The variant where the client classified the answer (object requests), else
        // the status in its text (listing errors all come as `Generic`).
        let status = match e {
            object_store::Error::NotFound { .. } => Some(404),
            object_store::Error::PermissionDenied { .. } => Some(403),
            object_store::Error::Unauthenticated { .. } => Some(401),
            _ => http_status(&text),
        };
        match status {
            Some(404) => (
                io::ErrorKind::NotFound,
                format!("no such object in the S3 bucket {} ({said})", self.bucket),
            ),
            Some(401 | 403) => (
                io::ErrorKind::PermissionDenied,
                format!(
                    "S3 refused the request ({said}); check the access key, secret key and \
                     session token (or the role of the credential chain), the region ({}), \
                     this machine's clock, and that the credentials may use the bucket {}",
                    self.region, self.bucket
                ),
            ),
            Some(301 | 307) => (
                io::ErrorKind::Other,
                format!(
                    "S3 redirected the request ({said}); the bucket {} is probably in another \
                     region than {} or needs another endpoint",
                    self.bucket, self.region
                ),
            ),
            _ => (io::ErrorKind::Other, text),
        }
    }

    /// Encrypts everything `plaintext` yields into a scratch file, then uploads it.
    fn store(&self, key: &str, plaintext: &mut dyn Read) -> Result<()> {
        let target = Target {
            key,
            path: self.object_path(key)?,
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
        let store = self.store.clone();
        let path = target.path.clone();
        let mut upload = self.call(key, async move {
            store
                .put_multipart_opts(&path, PutMultipartOptions::default())
                .await
        })?;
        let sent = self.send_parts(key, upload.as_mut(), source, len, part_size);
        let (mut upload, outcome) = match sent {
            Ok(()) => {
                let condition = target.condition.clone();
                let (upload, done) = self.run(with_complete_condition(condition, async move {
                    let done = upload.complete().await;
                    (upload, done)
                }))?;
                (
                    upload,
                    done.map(|_| ()).map_err(|e| self.failure(key, e.into())),
                )
            }
            Err(e) => (upload, Err(e)),
        };
        if outcome.is_err() {
            // Parts of an upload never completed would be stored (and billed) until a
            // lifecycle rule removes them.
            if let Ok(Err(e)) = self.run(async move { upload.abort().await }) {
                tracing::warn!(key, error = %e, "aborting a failed multipart upload failed");
            }
        }
        outcome
    }

    /// Reads `len` bytes of `source` as parts of `part_size` and sends them, a few at once.
    fn send_parts(
        &self,
        key: &str,
        upload: &mut dyn MultipartUpload,
        source: &mut dyn Read,
        len: u64,
        part_size: u64,
    ) -> Result<()> {
        let mut sent = 0u64;
        let mut in_flight = Vec::with_capacity(PARTS_IN_FLIGHT);
        while sent < len {
            let size = part_size.min(len - sent);
            let mut part = vec![0u8; usize::try_from(size).map_err(|_| short_source(key))?];
            source.read_exact(&mut part).map_err(io_err(key))?;
            in_flight.push(upload.put_part(PutPayload::from(part)));
            sent += size;
            if in_flight.len() == PARTS_IN_FLIGHT || sent == len {
                let parts = std::mem::take(&mut in_flight);
                self.call(key, async move {
                    futures_util::future::try_join_all(parts).await.map(|_| ())
                })?;
            }
        }
        Ok(())
    }

    fn put_single(&self, target: &Target<'_>, body: Vec<u8>) -> Result<()> {
        let store = self.store.clone();
        let path = target.path.clone();
        let mode = match &target.condition {
            Condition::None => PutMode::Overwrite,
            Condition::Absent => PutMode::Create,
            Condition::Matches(etag) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.clone()),
                version: None,
            }),
        };
        self.call(target.key, async move {
            let options = PutOptions::from(mode);
            store
                .put_opts(&path, PutPayload::from(body), options)
                .await
                .map(|_| ())
        })
    }

    /// Downloads the object into an anonymous scratch file, positioned at its start;
    /// also its ETag, when the server sent one.
    fn fetch(&self, key: &str) -> Result<(std::fs::File, Option<String>)> {
        let path = self.object_path(key)?;
        let mut file = tempfile::tempfile_in(&self.scratch).map_err(io_err(key))?;
        let sink = file.try_clone().map_err(io_err(key))?;
        let store = self.store.clone();
        let etag = self.call(key, async move { download(&store, &path, sink).await })?;
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

    /// Every object key under `prefix` (a string prefix, not a folder), page by page.
    fn list(&self, what: &str, prefix: String) -> Result<Vec<String>> {
        let store = self.store.clone();
        let page = self.list_page;
        self.call(what, async move {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let options = PaginatedListOptions {
                    max_keys: page.map(|p| p as usize),
                    page_token: token.take(),
                    ..PaginatedListOptions::default()
                };
                let from = (!prefix.is_empty()).then_some(prefix.as_str());
                let found = store.list_paginated(from, options).await?;
                out.extend(
                    found
                        .result
                        .objects
                        .into_iter()
                        .map(|o| o.location.to_string()),
                );
                match found.page_token {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
            Ok::<_, object_store::Error>(out)
        })
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
            path: self.object_path(key)?,
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
        let object = self.object_path(prefix)?.to_string();
        let children = format!("{object}/");
        let doomed: Vec<ObjectPath> = self
            .list(prefix, object.clone())?
            .into_iter()
            .filter(|found| *found == object || found.starts_with(&children))
            .filter_map(|found| ObjectPath::parse(found).ok())
            .collect();
        let store = self.store.clone();
        self.call(prefix, async move {
            let paths = futures_util::stream::iter(doomed.into_iter().map(Ok)).boxed();
            store
                .delete_stream(paths)
                .try_collect::<Vec<_>>()
                .await
                .map(|_| ())
        })
    }

    /// Every object's key under the prefix, relative to it, sorted; objects whose names
    /// are not valid keys (written by something else) are left out.
    fn keys(&self) -> Result<Vec<String>> {
        let base = self.list_base();
        let mut out: Vec<String> = self
            .list("(listing)", base.clone())?
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
        let path = self.object_path(key)?;
        let store = self.store.clone();
        let ranged = path.clone();
        let head = self.call(key, async move {
            store.get_range(&ranged, 0..HEADER_LEN as u64).await
        })?;
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
            path,
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
            path: self.object_path(key)?,
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
        let path = self.object_path(key)?;
        let file = std::fs::File::create(dest).map_err(io_err(key))?;
        let store = self.store.clone();
        let fetched = self.call(key, async move { download(&store, &path, file).await });
        if let Err(e) = fetched {
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
        Ok(())
    }
}

/// The `object_store` client of `config`: static keys, or the credential chain.
fn client(config: &S3Config, endpoint: &str) -> object_store::Result<AmazonS3> {
    let mut builder = match &config.credentials {
        // Only the given keys: no token or role left over from the environment.
        Some(c) => {
            let b = AmazonS3Builder::new()
                .with_access_key_id(&c.access_key)
                .with_secret_access_key(&c.secret_key);
            match &c.session_token {
                Some(token) => b.with_token(token),
                None => b,
            }
        }
        // Web identity (IRSA), container credentials, instance metadata.
        None => AmazonS3Builder::from_env(),
    };
    if config.endpoint.is_some() {
        builder = builder.with_endpoint(endpoint);
    }
    // A request that hangs is retried with backoff, but not for long: a write waits on
    // it, and S3 away is answered 503 to retry later.
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    };
    // (allow_http lives in the client options: set it on them, not before replacing them)
    let options = ClientOptions::new()
        .with_timeout(Duration::from_secs(120))
        .with_connect_timeout(Duration::from_secs(5))
        .with_allow_http(endpoint.starts_with("http://"));
    builder
        .with_client_options(options)
        .with_region(&config.region)
        .with_bucket_name(&config.bucket)
        .with_virtual_hosted_style_request(!config.path_style)
        .with_retry(retry)
        .with_http_connector(ConditionalConnector)
        .build()
}

/// Streams an object into `sink`; the ETag of the copy read, if the server sent one.
async fn download(
    store: &AmazonS3,
    path: &ObjectPath,
    mut sink: std::fs::File,
) -> std::result::Result<Option<String>, Failure> {
    let found = store.get(path).await?;
    let etag = found.meta.e_tag.clone();
    let mut chunks = found.into_stream();
    while let Some(chunk) = chunks.next().await {
        sink.write_all(&chunk?).map_err(Failure::Local)?;
    }
    sink.flush().map_err(Failure::Local)?;
    Ok(etag)
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
    /// The object in the bucket.
    path: ObjectPath,
    condition: Condition,
}
