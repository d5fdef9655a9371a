//! `aiaas backup`: create (online: the server may keep running), verify and restore
//! encrypted backups of a data directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Args, Debug, Clone)]
struct Keys {
    /// Key-ring file of the master keys (default: `<data-dir>.master-key`).
    #[arg(long, env = "AIAAS_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// The master key itself instead of a file.
    #[arg(
        long = "master-key-from-env",
        env = "AIAAS_MASTER_KEY",
        hide = true,
        hide_env_values = true
    )]
    master_key: Option<String>,
}

impl Keys {
    fn source(&self, data_dir: &std::path::Path) -> aiaas_core::MasterKeySource {
        match (&self.master_key, &self.master_key_file) {
            (Some(v), _) if !v.is_empty() => aiaas_core::MasterKeySource::Value(v.clone()),
            (_, Some(f)) => aiaas_core::MasterKeySource::File(f.clone()),
            _ => aiaas_core::MasterKeySource::default_for(data_dir),
        }
    }
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// Snapshot the database and the artifacts it refers to into one encrypted archive.
    Create {
        #[arg(long, env = "AIAAS_DATA_DIR", default_value = "aiaas-data")]
        data_dir: PathBuf,
        /// Folder for the archive.
        #[arg(long, default_value = "aiaas-backups")]
        out: PathBuf,
        #[command(flatten)]
        keys: Keys,
    },
    /// Check every checksum and the manifest's signature, without restoring.
    Verify {
        archive: PathBuf,
        /// Data directory whose master key opens the archive (for the default key path).
        #[arg(long, env = "AIAAS_DATA_DIR", default_value = "aiaas-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        keys: Keys,
    },
    /// Restore into an empty (or new) data directory.
    Restore {
        archive: PathBuf,
        /// The data directory to create.
        #[arg(long, env = "AIAAS_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        keys: Keys,
    },
}

impl BackupArgs {
    pub async fn run(self) -> Result<()> {
        match self.command {
            BackupCommand::Create {
                data_dir,
                out,
                keys,
            } => {
                let r =
                    aiaas_core::backup_data_dir(&data_dir, &keys.source(&data_dir), &out).await?;
                println!(
                    "backup {}: {} files, {} bytes",
                    r.path.display(),
                    r.files,
                    r.bytes
                );
            }
            BackupCommand::Verify {
                archive,
                data_dir,
                keys,
            } => {
                let keys = aiaas_core::load_existing(&keys.source(&data_dir))?;
                let r = tokio::task::spawn_blocking(move || {
                    aiaas_core::verify_backup(&archive, &keys.ring())
                })
                .await??;
                println!(
                    "backup intact: {} files, {} bytes, taken at {} (epoch ms)",
                    r.files, r.bytes, r.created_at
                );
            }
            BackupCommand::Restore {
                archive,
                data_dir,
                keys,
            } => {
                let keys = aiaas_core::load_existing(&keys.source(&data_dir))?;
                let target = data_dir.clone();
                let r = tokio::task::spawn_blocking(move || {
                    aiaas_core::restore_backup(&archive, &keys.ring(), &target)
                })
                .await??;
                println!(
                    "restored {} files ({} bytes) into {}",
                    r.files,
                    r.bytes,
                    data_dir.display()
                );
            }
        }
        Ok(())
    }
}
