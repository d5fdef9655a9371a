//! Files: OpenAI's files API (`/v1/files`) for a tenant's training files. An upload
//! streams (sealed) to a temporary file under the size limit, is checked line by line
//! for its purpose (`fine-tune`: chat or completions examples, examples.rs), has its
//! personal data masked when the upload or the tenant's input policy asks (the model
//! would learn what it reads), and is stored sealed in the artifact store; the row is
//! written last, so a refused or failed upload leaves nothing.

use std::io::BufReader;
use std::sync::Arc;

use aiaas_store::{ArtifactStore, FileQuery, FileRecord, Metadata};
use aiaas_types::{Permission, Principal};

use crate::auth::require;
use crate::privacy::{Detection, Privacy};
use crate::uploads::Upload;
use crate::{CoreError, Result};

pub mod examples;

pub use examples::{Example, ExampleFormat, Examples, Role, TrainingMessage};

/// The purposes files are kept for.
pub const PURPOSES: &[&str] = &["fine-tune"];
/// The purpose of the files the platform writes: a fine-tuning job's results.
pub const RESULTS_PURPOSE: &str = "fine-tune-results";

/// Most files listed at once (OpenAI's limit).
pub const MAX_LIST: usize = 10_000;

/// What the uploader says about a file.
#[derive(Debug, Clone, Default)]
pub struct FileSpec {
    pub filename: String,
    pub purpose: String,
    /// Mask personal data before storing (else the tenant's input policy decides).
    pub mask_pii: Option<aiaas_privacy::Mode>,
    /// Who finds it (empty: the tenant's detectors, else the rules).
    pub pii_detectors: Vec<Detection>,
}

/// A page of a tenant's files.
#[derive(Debug, Clone)]
pub struct FilePage {
    pub files: Vec<FileRecord>,
    pub has_more: bool,
}

/// The files service: uploads, listing, content, deletion.
#[derive(Clone)]
pub struct Files {
    inner: Arc<FilesConfig>,
}

/// What the files service is built from.
pub(crate) struct FilesConfig {
    pub(crate) meta: Metadata,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
    pub(crate) privacy: Privacy,
    pub(crate) scratch: std::path::PathBuf,
    pub(crate) max_upload_bytes: u64,
}

impl Files {
    pub(crate) fn new(config: FilesConfig) -> Files {
        Files {
            inner: Arc::new(config),
        }
    }

    /// Start an upload (refused before any byte is read for a key that may not write).
    pub async fn begin_upload(&self, principal: &Principal) -> Result<Upload> {
        require(principal, Permission::WriteData)?;
        Upload::begin(&self.inner.scratch, self.inner.max_upload_bytes).await
    }

    /// Check an upload for its purpose and keep it as a file of the caller's tenant.
    pub async fn create(
        &self,
        principal: &Principal,
        spec: FileSpec,
        mut upload: Upload,
    ) -> Result<FileRecord> {
        require(principal, Permission::WriteData)?;
        if !PURPOSES.contains(&spec.purpose.as_str()) {
            return Err(CoreError::InvalidInput(format!(
                "purpose {:?} is not supported; files are kept for: {}",
                spec.purpose,
                PURPOSES.join(", ")
            )));
        }
        let filename = spec.filename.trim();
        if filename.is_empty() || filename.len() > 255 || filename.contains(['/', '\\', '\0']) {
            return Err(CoreError::InvalidInput(
                "give the file a name of 1-255 characters without slashes".into(),
            ));
        }
        upload.finish().await?;
        let open = upload.opener();
        let mut examples = tokio::task::spawn_blocking(move || {
            examples::read_examples(BufReader::with_capacity(1 << 16, open()?))
        })
        .await??;
        let masked = {
            let texts = examples.examples.iter_mut().flat_map(Example::texts_mut);
            let detectors = (!spec.pii_detectors.is_empty()).then_some(&spec.pii_detectors[..]);
            self.inner
                .privacy
                .mask_model_inputs(principal, (spec.mask_pii, detectors), texts)
                .await?
        };
        let id = format!("file-{}", aiaas_types::new_id().replace('-', ""));
        let key = format!("files/{}/{id}", principal.tenant_id);
        let artifacts = self.inner.artifacts.clone();
        let put_key = key.clone();
        let bytes = match masked {
            // Masked: the examples as they now read.
            Some(_) => {
                let content = examples.to_jsonl();
                let n = content.len() as u64;
                tokio::task::spawn_blocking(move || artifacts.put(&put_key, &content)).await??;
                n
            }
            // Kept byte for byte as uploaded.
            None => {
                let open = upload.opener();
                tokio::task::spawn_blocking(move || {
                    let mut plain = open()?;
                    artifacts.put_reader(&put_key, &mut plain)?;
                    Ok::<_, CoreError>(())
                })
                .await??;
                upload.bytes()
            }
        };
        let record = FileRecord {
            id,
            tenant_id: principal.tenant_id.clone(),
            filename: filename.to_string(),
            purpose: spec.purpose,
            bytes: bytes as i64,
            format: examples.format.as_str().into(),
            examples: examples.examples.len() as i64,
            masked: masked.map(|m| m.as_str().to_string()),
            artifact_key: key.clone(),
            created_at: aiaas_types::now_ms(),
        };
        if let Err(e) = self.inner.meta.insert_file(&record).await {
            let _ = self.inner.artifacts.delete_prefix(&key);
            return Err(e.into());
        }
        tracing::info!(file = %record.id, examples = record.examples, "file stored");
        Ok(record)
    }

    /// The caller's tenant's files, newest first unless `ascending`, after the file
    /// `after` (a cursor: an id from an earlier page).
    pub async fn list(
        &self,
        principal: &Principal,
        purpose: Option<&str>,
        after: Option<&str>,
        limit: usize,
        ascending: bool,
    ) -> Result<FilePage> {
        require(principal, Permission::ReadData)?;
        if !(1..=MAX_LIST).contains(&limit) {
            return Err(CoreError::InvalidInput(format!(
                "limit must be 1-{MAX_LIST}, got {limit}"
            )));
        }
        let after = match after {
            Some(id) => Some(self.visible(principal, id).await?),
            None => None,
        };
        let mut files = self
            .inner
            .meta
            .files(
                &principal.tenant_id,
                FileQuery {
                    purpose,
                    after: after.as_ref(),
                    limit: limit + 1,
                    ascending,
                },
            )
            .await?;
        let has_more = files.len() > limit;
        files.truncate(limit);
        Ok(FilePage { files, has_more })
    }

    pub async fn get(&self, principal: &Principal, id: &str) -> Result<FileRecord> {
        require(principal, Permission::ReadData)?;
        self.visible(principal, id).await
    }

    /// The stored content (masked where it was masked at upload).
    pub async fn content(&self, principal: &Principal, id: &str) -> Result<(FileRecord, Vec<u8>)> {
        require(principal, Permission::ReadData)?;
        let record = self.visible(principal, id).await?;
        let (artifacts, key) = (self.inner.artifacts.clone(), record.artifact_key.clone());
        let content = tokio::task::spawn_blocking(move || artifacts.get(&key)).await??;
        Ok((record, content))
    }

    pub async fn delete(&self, principal: &Principal, id: &str) -> Result<FileRecord> {
        require(principal, Permission::WriteData)?;
        let record = self.visible(principal, id).await?;
        if self.inner.meta.delete_file(&record.id).await? {
            let (artifacts, key) = (self.inner.artifacts.clone(), record.artifact_key.clone());
            if let Err(e) =
                tokio::task::spawn_blocking(move || artifacts.delete_prefix(&key)).await?
            {
                tracing::warn!(file = %record.id, error = %e, "the deleted file's content stays behind");
            }
        }
        Ok(record)
    }

    /// Keep a fine-tuning job's results (a CSV of its steps' metrics) as a file of its
    /// tenant, purpose `fine-tune-results` (listed, read and deleted like any file;
    /// never trained on).
    pub(crate) async fn create_results(
        &self,
        tenant_id: &str,
        filename: &str,
        rows: usize,
        content: Vec<u8>,
    ) -> Result<FileRecord> {
        let id = format!("file-{}", aiaas_types::new_id().replace('-', ""));
        let key = format!("files/{tenant_id}/{id}");
        let bytes = content.len() as i64;
        let (artifacts, put_key) = (self.inner.artifacts.clone(), key.clone());
        tokio::task::spawn_blocking(move || artifacts.put(&put_key, &content)).await??;
        let record = FileRecord {
            id,
            tenant_id: tenant_id.to_string(),
            filename: filename.to_string(),
            purpose: RESULTS_PURPOSE.into(),
            bytes,
            format: "csv".into(),
            examples: rows as i64,
            masked: None,
            artifact_key: key.clone(),
            created_at: aiaas_types::now_ms(),
        };
        if let Err(e) = self.inner.meta.insert_file(&record).await {
            let _ = self.inner.artifacts.delete_prefix(&key);
            return Err(e.into());
        }
        Ok(record)
    }

    /// A tenant's file by id (`None` when it has none of that id).
    pub(crate) async fn of_tenant(&self, tenant_id: &str, id: &str) -> Result<Option<FileRecord>> {
        Ok(self
            .inner
            .meta
            .file(id)
            .await?
            .filter(|f| f.tenant_id == tenant_id))
    }

    /// A stored file's examples, read and checked again line by line (for training).
    pub(crate) async fn examples(&self, record: &FileRecord) -> Result<Examples> {
        let (artifacts, key) = (self.inner.artifacts.clone(), record.artifact_key.clone());
        tokio::task::spawn_blocking(move || {
            let reader = std::io::BufReader::new(artifacts.open(&key)?);
            examples::read_examples(reader)
        })
        .await?
    }

    /// A file of the caller's tenant; any other (another tenant's, a missing one) is a
    /// 404 alike.
    async fn visible(&self, principal: &Principal, id: &str) -> Result<FileRecord> {
        self.inner
            .meta
            .file(id)
            .await?
            .filter(|f| f.tenant_id == principal.tenant_id)
            .ok_or_else(|| CoreError::NotFound(format!("no file {id:?}")))
    }
}
