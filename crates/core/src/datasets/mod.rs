//! Datasets: streamed uploads (CSV or JSONL; uploads.rs) with a size limit, validation that names
//! the offending line, statistics and previews. The file is kept as an artifact owned by
//! its tenant; the row in the database is written last, so a failed upload leaves nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aiaas_train::LabelledText;
use aiaas_types::{Permission, Principal};
use serde::{Deserialize, Serialize};

use crate::auth::{check_name, require};
use aiaas_store::{ArtifactStore, Metadata};

use crate::privacy::Privacy;
use crate::uploads::{temp_crypto, temp_opener, Upload};
use crate::{CoreError, DatasetRecord, Result};

mod parse;

use parse::{parse, statistics, validate, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    Csv,
    Jsonl,
}

impl DatasetFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetFormat::Csv => "csv",
            DatasetFormat::Jsonl => "jsonl",
        }
    }

    fn parse(s: &str) -> Option<DatasetFormat> {
        match s {
            "csv" => Some(DatasetFormat::Csv),
            "jsonl" => Some(DatasetFormat::Jsonl),
            _ => None,
        }
    }
}

/// What the uploader says about the data.
#[derive(Debug, Clone, Deserialize)]
pub struct DatasetSpec {
    pub name: String,
    /// Detected from the content when absent.
    #[serde(default)]
    pub format: Option<DatasetFormat>,
    /// Defaults to `text`.
    #[serde(default)]
    pub text_column: Option<String>,
    /// Defaults to the first of `label`, `category`, `class` present.
    #[serde(default)]
    pub label_column: Option<String>,
    /// Mask personal data in the texts before anything is stored (the stored data set is
    /// then the masked text and label columns, as JSON Lines); the findings per kind are
    /// reported in `stats.pii`.
    #[serde(default)]
    pub mask_pii: Option<aiaas_privacy::Mode>,
    /// Who finds the personal data when masking (empty: the rules); see `Detection`.
    #[serde(default)]
    pub pii_detectors: Vec<crate::privacy::Detection>,
}

/// One row of a preview.
#[derive(Debug, Clone)]
pub struct PreviewRow {
    pub line: u64,
    pub text: String,
    pub label: String,
}

/// The datasets service: uploads, validation, the stored files and their rows.
#[derive(Clone)]
pub struct Datasets {
    inner: Arc<DatasetsConfig>,
}

/// What the datasets service is built from.
pub(crate) struct DatasetsConfig {
    pub(crate) meta: Metadata,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
    /// Pseudonym keys for data sets masked at upload.
    pub(crate) privacy: Privacy,
    /// Where uploads are spooled (sealed) while they arrive.
    pub(crate) scratch: PathBuf,
    pub(crate) max_upload_bytes: u64,
}

impl Datasets {
    pub(crate) fn new(config: DatasetsConfig) -> Datasets {
        Datasets {
            inner: Arc::new(config),
        }
    }

    pub async fn begin_upload(&self, principal: &Principal) -> Result<Upload> {
        require(principal, Permission::WriteData)?;
        Upload::begin(&self.inner.scratch, self.inner.max_upload_bytes).await
    }

    /// Validate an upload and register it as a dataset of the caller's tenant.
    pub async fn create(
        &self,
        principal: &Principal,
        spec: DatasetSpec,
        mut upload: Upload,
    ) -> Result<DatasetRecord> {
        require(principal, Permission::WriteData)?;
        check_name("dataset", &spec.name)?;
        let meta = &self.inner.meta;
        if meta
            .dataset_by_name(&principal.tenant_id, &spec.name)
            .await?
            .is_some()
        {
            return Err(CoreError::Conflict(format!(
                "a dataset named {:?} already exists",
                spec.name
            )));
        }
        upload.finish().await?;
        refuse_unsupported_shape(&upload)?;
        let format = spec.format.unwrap_or_else(|| detected_format(&upload));
        let columns = (spec.text_column.clone(), spec.label_column.clone());
        let open = upload.opener();
        let (parsed, stats) = tokio::task::spawn_blocking(move || {
            let parsed = parse(
                &open,
                format,
                columns.0.as_deref(),
                columns.1.as_deref(),
                None,
            )?;
            validate(&parsed.rows)?;
            let stats = statistics(&parsed);
            Ok::<_, CoreError>((parsed, stats))
        })
        .await??;
        let mut ready = Checked {
            rows: parsed,
            stats,
            format,
            path: upload.path.clone(),
        };
        if let Some(mode) = spec.mask_pii {
            ready = self
                .mask_upload(principal, (mode, &spec.pii_detectors), &upload, ready)
                .await?;
        }
        let id = aiaas_types::new_id();
        let key = format!(
            "datasets/{}/{id}/data.{}",
            principal.tenant_id,
            ready.format.as_str()
        );
        self.store_upload(&key, &ready.path, &upload).await?;
        let (parsed, stats, format) = (ready.rows, ready.stats, ready.format);
        let record = DatasetRecord {
            id,
            tenant_id: principal.tenant_id.clone(),
            name: spec.name,
            format: format.as_str().into(),
            text_column: parsed.text_column,
            label_column: parsed.label_column,
            row_count: parsed.rows.len() as i64,
            byte_count: upload.bytes() as i64,
            artifact_key: key.clone(),
            stats,
            created_at: aiaas_types::now_ms(),
        };
        if let Err(e) = meta.insert_dataset(&record).await {
            let _ = self.inner.artifacts.delete_prefix(&key);
            return Err(e.into());
        }
        tracing::info!(dataset = %record.id, rows = record.row_count, "dataset created");
        Ok(record)
    }

    /// Rewrite the personal data in a parsed upload (the upload's rows become JSON Lines
    /// in a new sealed temp file; the raw file is deleted).
    async fn mask_upload(
        &self,
        principal: &Principal,
        (mode, detectors): (aiaas_privacy::Mode, &[crate::privacy::Detection]),
        upload: &Upload,
        mut ready: Checked,
    ) -> Result<Checked> {
        use crate::privacy::Detection;
        let policy = match mode {
            aiaas_privacy::Mode::Pseudonymise => aiaas_privacy::Policy::pseudonymise(
                self.inner.privacy.pseudonym_key(&principal.tenant_id)?,
            ),
            other => aiaas_privacy::Policy::new(other),
        };
        let raw = upload.path.clone();
        let masked_path = raw.with_extension("masked.jsonl");
        let out = masked_path.clone();
        let key = upload.key.clone();
        let rows = std::mem::take(&mut ready.rows.rows);
        let found_by_model = if detectors.contains(&Detection::Ner) {
            let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
            self.inner.privacy.model_findings(&texts, None).await?
        } else {
            Vec::new()
        };
        let detector = crate::privacy::rule_detector(
            detectors.is_empty() || detectors.contains(&Detection::Rules),
            None,
        );
        let (rows, counts) = tokio::task::spawn_blocking(move || {
            mask_rows(rows, (&detector, &found_by_model), &policy, &out, &key).inspect_err(|_| {
                let _ = std::fs::remove_file(&out);
            })
        })
        .await??;
        let _ = std::fs::remove_file(&raw);
        ready.rows.rows = rows;
        ready.rows.text_column = "text".into();
        ready.rows.label_column = "label".into();
        ready.format = DatasetFormat::Jsonl;
        ready.path = masked_path;
        let detectors = if detectors.is_empty() {
            &[Detection::Rules][..]
        } else {
            detectors
        };
        ready.stats["pii"] =
            serde_json::json!({"mode": mode, "detectors": detectors, "found": counts});
        Ok(ready)
    }

    /// Move a sealed temp file into the artifact store under `key` (re-encrypted under the
    /// master keys), deleting the temp file either way.
    async fn store_upload(&self, key: &str, path: &Path, upload: &Upload) -> Result<()> {
        let artifacts = self.inner.artifacts.clone();
        let put_key = key.to_string();
        let path = path.to_path_buf();
        let open = temp_opener(path.clone(), upload.key.clone());
        tokio::task::spawn_blocking(move || {
            let stored =
                open().and_then(|mut plain| Ok(artifacts.put_reader(&put_key, &mut plain)?));
            let _ = std::fs::remove_file(&path);
            stored
        })
        .await?
    }

    pub async fn list(&self, principal: &Principal) -> Result<Vec<DatasetRecord>> {
        require(principal, Permission::ReadData)?;
        let scope = (!principal.is_admin()).then_some(principal.tenant_id.as_str());
        Ok(self.inner.meta.datasets(scope).await?)
    }

    /// A dataset by id, or by name within the caller's tenant.
    pub async fn get(&self, principal: &Principal, id_or_name: &str) -> Result<DatasetRecord> {
        require(principal, Permission::ReadData)?;
        self.find_dataset(principal, id_or_name).await
    }

    pub async fn preview(
        &self,
        principal: &Principal,
        id_or_name: &str,
        limit: usize,
    ) -> Result<Vec<PreviewRow>> {
        require(principal, Permission::ReadData)?;
        let d = self.find_dataset(principal, id_or_name).await?;
        let artifacts = self.inner.artifacts.clone();
        let limit = limit.min(1000);
        tokio::task::spawn_blocking(move || {
            let format = DatasetFormat::parse(&d.format).unwrap_or(DatasetFormat::Csv);
            let open = || -> Result<Box<dyn Read + Send>> { Ok(artifacts.open(&d.artifact_key)?) };
            let parsed = parse(
                &open,
                format,
                Some(&d.text_column),
                Some(&d.label_column),
                Some(limit),
            )?;
            Ok(parsed
                .rows
                .into_iter()
                .map(|r| PreviewRow {
                    line: r.line,
                    text: r.text,
                    label: r.label,
                })
                .collect())
        })
        .await?
    }

    pub async fn delete(&self, principal: &Principal, id_or_name: &str) -> Result<()> {
        require(principal, Permission::WriteData)?;
        let d = self.find_dataset(principal, id_or_name).await?;
        if !self.inner.meta.delete_dataset(&d.id).await? {
            return Err(CoreError::Conflict(format!(
                "dataset {:?} is used by a queued or running training job; cancel it or wait for it to finish",
                d.name
            )));
        }
        let prefix = format!("datasets/{}/{}", d.tenant_id, d.id);
        let artifacts = self.inner.artifacts.clone();
        tokio::task::spawn_blocking(move || artifacts.delete_prefix(&prefix)).await??;
        Ok(())
    }

    pub(crate) async fn find_dataset(
        &self,
        principal: &Principal,
        id_or_name: &str,
    ) -> Result<DatasetRecord> {
        let meta = &self.inner.meta;
        // An id counts only when the caller may see it; otherwise the string is a name in
        // the caller's tenant (so another tenant's ids neither shadow names nor leak).
        let by_id = meta
            .dataset(id_or_name)
            .await?
            .filter(|d| principal.sees_tenant(&d.tenant_id));
        let found = match by_id {
            Some(d) => Some(d),
            None => {
                meta.dataset_by_name(&principal.tenant_id, id_or_name)
                    .await?
            }
        };
        found.ok_or_else(|| CoreError::NotFound(format!("no dataset {id_or_name:?}")))
    }

    /// All rows of a stored dataset (blocking: call from a blocking thread).
    pub(crate) fn load_rows(&self, d: &DatasetRecord) -> Result<Vec<LabelledText>> {
        let artifacts = &self.inner.artifacts;
        let format = DatasetFormat::parse(&d.format).unwrap_or(DatasetFormat::Csv);
        let open = || -> Result<Box<dyn Read + Send>> { Ok(artifacts.open(&d.artifact_key)?) };
        let parsed = parse(
            &open,
            format,
            Some(&d.text_column),
            Some(&d.label_column),
            None,
        )?;
        Ok(parsed
            .rows
            .into_iter()
            .map(|r| LabelledText {
                text: r.text,
                label: r.label,
            })
            .collect())
    }
}

/// An upload parsed and checked, on its way to the store.
struct Checked {
    rows: parse::Parsed,
    stats: serde_json::Value,
    format: DatasetFormat,
    /// The sealed temp file holding the rows in `format`.
    path: PathBuf,
}

/// JSON Lines when the upload starts with `{`, else CSV.
fn detected_format(upload: &Upload) -> DatasetFormat {
    if upload.first_significant() == Some(b'{') {
        DatasetFormat::Jsonl
    } else {
        DatasetFormat::Csv
    }
}

/// Refuse what is neither CSV nor JSON Lines before parsing it as either.
fn refuse_unsupported_shape(upload: &Upload) -> Result<()> {
    match upload.first_significant() {
        None if upload.bytes() as usize <= upload.head.len() => {
            Err(CoreError::InvalidInput("the upload is empty".into()))
        }
        Some(b'[') => Err(CoreError::InvalidInput(
            "a JSON array is not a supported format: upload CSV or JSON Lines (one object per line)"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// Mask the texts of `rows` and write them (text and label) as JSON Lines to `out`,
/// encrypted under the upload's `key`.
fn mask_rows(
    rows: Vec<Row>,
    (detector, found_by_model): (&aiaas_privacy::Detector, &[Vec<aiaas_privacy::Finding>]),
    policy: &aiaas_privacy::Policy,
    out: &Path,
    key: &aiaas_crypto::KeyRing,
) -> Result<(Vec<Row>, aiaas_privacy::Counts)> {
    use std::io::Write;
    let mut counts = aiaas_privacy::Counts::new();
    let sink = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut file = std::io::BufWriter::new(
        aiaas_crypto::Encryptor::new(key, sink, Default::default()).map_err(temp_crypto)?,
    );
    let mut masked = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let extra = found_by_model.get(i).map(Vec::as_slice).unwrap_or(&[]);
        let m = detector.mask_with(&row.text, extra, policy);
        for (kind, n) in m.counts {
            *counts.entry(kind).or_default() += n;
        }
        let line = serde_json::json!({"text": m.text, "label": row.label});
        writeln!(file, "{line}")?;
        masked.push(Row {
            line: row.line,
            text: m.text,
            label: row.label,
        });
    }
    let sealer = file
        .into_inner()
        .map_err(|e| CoreError::Internal(format!("writing the masked data set: {e}")))?;
    sealer
        .finish()
        .map_err(temp_crypto)?
        .into_inner()
        .map_err(|e| CoreError::Internal(format!("writing the masked data set: {e}")))?
        .sync_all()?;
    Ok((masked, counts))
}
