//! Server configuration: flags, then `AIAAS_*` environment variables (both through
//! clap), then an optional TOML file, then defaults. Validated before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::ServeArgs;

/// The TOML file's shape: every key optional, unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    demo: Option<bool>,
    max_upload_mb: Option<u64>,
    training_workers: Option<usize>,
    max_batch: Option<usize>,
    max_delay_ms: Option<u64>,
    queue_capacity: Option<usize>,
}

/// Validated server settings.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub platform: aiaas_core::PlatformConfig,
}

pub fn resolve(args: &ServeArgs) -> Result<ServeConfig> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let listen_text = args
        .listen
        .clone()
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen_text.parse().with_context(|| {
        format!("--listen {listen_text:?} is not HOST:PORT with a numeric IP (e.g. 127.0.0.1:8080, 0.0.0.0:0)")
    })?;
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./aiaas-data"));
    let max_upload_mb = args.max_upload_mb.or(file.max_upload_mb).unwrap_or(100);
    if max_upload_mb == 0 || max_upload_mb > 100_000 {
        bail!("max upload size must be between 1 and 100000 MB, got {max_upload_mb}");
    }
    let training_workers = args.training_workers.or(file.training_workers).unwrap_or(1);
    if training_workers == 0 || training_workers > 64 {
        bail!("training workers must be between 1 and 64, got {training_workers}");
    }
    let defaults = aiaas_core::BatchSettings::default();
    let batch = aiaas_core::BatchSettings {
        max_batch: file.max_batch.unwrap_or(defaults.max_batch),
        max_delay: file
            .max_delay_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or(defaults.max_delay),
        queue_capacity: file.queue_capacity.unwrap_or(defaults.queue_capacity),
    };
    if batch.max_batch == 0 || batch.queue_capacity == 0 {
        bail!("max_batch and queue_capacity must be positive");
    }
    let mut platform = aiaas_core::PlatformConfig::new(data_dir);
    platform.demo = !args.no_demo && file.demo.unwrap_or(true);
    platform.max_upload_bytes = max_upload_mb * 1024 * 1024;
    platform.training_workers = training_workers;
    platform.batch = batch;
    platform.admin_key = args
        .admin_key
        .as_ref()
        .filter(|k| !k.is_empty())
        .map(|k| aiaas_types::Secret::new(k.clone()));
    if let Some(k) = &platform.admin_key {
        if !k.expose().starts_with("aiaas_") || k.expose().len() < 32 {
            bail!("AIAAS_ADMIN_KEY must start with \"aiaas_\" and be at least 32 characters long");
        }
    }
    Ok(ServeConfig { listen, platform })
}
