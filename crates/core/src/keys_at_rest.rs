//! Where the master keys that encrypt every artifact come from, and their rotation.
//!
//! The key ring lives outside the data directory by default (`<data-dir>.master-key`,
//! beside it, 0600), so a copy of the data directory or a backup never carries the key
//! that opens it. `AIAAS_MASTER_KEY` (64 hex digits, or the key-ring JSON) takes its place
//! where secrets come from the environment (a Kubernetes Secret).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aiaas_crypto::KeyRing;
use aiaas_store::{ArtifactStore, LocalArtifacts, MasterKeys};

use crate::{CoreError, Result};

/// Where the platform gets its master keys.
#[derive(Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// A key-ring file, created (0600) when missing.
    File(PathBuf),
    /// The key ring itself, from the environment (never written anywhere).
    Value(String),
}

impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterKeySource::File(p) => f.debug_tuple("File").field(p).finish(),
            MasterKeySource::Value(_) => f.write_str("Value(***)"),
        }
    }
}

impl MasterKeySource {
    /// The default: a file beside the data directory, `<data-dir>.master-key`.
    pub fn default_for(data_dir: &Path) -> MasterKeySource {
        let mut name = data_dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "aiaas-data".into());
        name.push(".master-key");
        let parent = data_dir.parent().filter(|p| !p.as_os_str().is_empty());
        MasterKeySource::File(parent.map_or_else(|| PathBuf::from(&name), |p| p.join(&name)))
    }
}

/// The loaded keys, and the file created if this was the first start.
pub(crate) fn load(source: &MasterKeySource) -> Result<(Arc<MasterKeys>, Option<PathBuf>)> {
    let keys_error =
        |e: aiaas_crypto::CryptoError| CoreError::InvalidInput(format!("master key: {e}"));
    match source {
        MasterKeySource::Value(text) => {
            let ring = KeyRing::parse(text).map_err(|e| {
                CoreError::InvalidInput(format!(
                    "AIAAS_MASTER_KEY is neither 64 hex digits nor a key-ring document: {e}"
                ))
            })?;
            Ok((Arc::new(MasterKeys::new(ring, None)), None))
        }
        MasterKeySource::File(path) if path.exists() => {
            let ring = KeyRing::load_file(path).map_err(keys_error)?;
            Ok((Arc::new(MasterKeys::new(ring, Some(path.clone()))), None))
        }
        MasterKeySource::File(path) => {
            let ring = KeyRing::create_file(path).map_err(keys_error)?;
            Ok((
                Arc::new(MasterKeys::new(ring, Some(path.clone()))),
                Some(path.clone()),
            ))
        }
    }
}

/// The keys of an existing installation (never creates a key: a backup or restore with
/// a fresh key would be useless).
pub fn load_existing(source: &MasterKeySource) -> Result<Arc<MasterKeys>> {
    if let MasterKeySource::File(path) = source {
        if !path.is_file() {
            return Err(CoreError::NotFound(format!(
                "no master key file at {}: pass --master-key-file (or AIAAS_MASTER_KEY)",
                path.display()
            )));
        }
    }
    Ok(load(source)?.0)
}

/// What `aiaas keys rotate-master` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RotationReport {
    pub new_key_id: String,
    /// Objects whose data key was re-wrapped under the new key.
    pub rewrapped: usize,
    /// Key ids removed from the ring (with `retire_old`).
    pub retired: Vec<String>,
    pub key_file: PathBuf,
}

/// What to rotate.
#[derive(Clone)]
pub struct Rotation {
    pub data_dir: PathBuf,
    /// Where pulled models are kept (`None`: `<data-dir>/models`).
    pub models_dir: Option<PathBuf>,
    pub source: MasterKeySource,
    /// Then drop the old keys from the ring.
    pub retire_old: bool,
}

/// Add a fresh active master key, re-wrap every artifact's and every sealed model
/// file's data key under it (payloads are not re-encrypted) and, with `retire_old`, drop
/// the old keys from the ring once every object verifiably opens with the new one.
/// Offline (the server may run: it reloads the key file when it meets the new key id).
pub fn rotate_master(rotation: &Rotation) -> Result<RotationReport> {
    let Rotation {
        data_dir,
        models_dir,
        source,
        retire_old,
    } = rotation;
    let models_dir = models_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("models"));
    let MasterKeySource::File(path) = source else {
        return Err(CoreError::InvalidInput(
            "the master key comes from AIAAS_MASTER_KEY: rotate it where that secret is kept \
             (use a key-ring file to rotate here)"
                .into(),
        ));
    };
    if !path.is_file() {
        return Err(CoreError::NotFound(format!(
            "no master key file at {}",
            path.display()
        )));
    }
    let keys_error =
        |e: aiaas_crypto::CryptoError| CoreError::InvalidInput(format!("master key: {e}"));
    let mut ring = KeyRing::load_file(path).map_err(keys_error)?;
    let old: Vec<_> = ring.key_ids().cloned().collect();
    let new_id = ring.rotate().map_err(keys_error)?;
    // The ring with both keys is saved first: a crash mid-way leaves every object
    // readable (old ones under old keys, re-wrapped ones under the new key).
    ring.save_file(path).map_err(keys_error)?;
    let keys = Arc::new(MasterKeys::new(ring, Some(path.clone())));
    let store = LocalArtifacts::open(&data_dir.join("artifacts"), keys.clone())?;
    let mut rewrapped = 0;
    for key in store.keys()? {
        if store.rewrap(&key)? {
            rewrapped += 1;
        }
    }
    let model_files = aiaas_store::ModelFiles::new(keys.clone());
    rewrapped += model_files.rewrap_all(&models_dir)?;
    let mut retired = Vec::new();
    if *retire_old {
        for (file, id) in aiaas_store::ModelFiles::key_ids(&models_dir)? {
            if &id != keys.ring().active_id() {
                return Err(CoreError::Internal(format!(
                    "{} is still wrapped by {id}; not retiring",
                    file.display()
                )));
            }
        }
        for key in store.keys()? {
            store.verify(&key)?;
            let mut f = std::fs::File::open(data_dir.join("artifacts").join(&key))?;
            let id = aiaas_crypto::header_key_id(&mut f).map_err(keys_error)?;
            if &id != keys.ring().active_id() {
                return Err(CoreError::Internal(format!(
                    "{key} is still wrapped by {id}; not retiring"
                )));
            }
        }
        let mut ring = KeyRing::load_file(path).map_err(keys_error)?;
        for id in old {
            ring.retire(&id).map_err(keys_error)?;
            retired.push(id.to_string());
        }
        ring.save_file(path).map_err(keys_error)?;
    }
    Ok(RotationReport {
        new_key_id: new_id.to_string(),
        rewrapped,
        retired,
        key_file: path.clone(),
    })
}
