//! Hugging Face model repos: the local Hugging Face cache first, used offline when it
//! holds a complete model; else the Hub (`{endpoint}/api/models/...` for the file list and
//! commit, `{endpoint}/{repo}/resolve/{commit}/{file}` for the files, resumable).
//!
//! Cache layout (as written by `huggingface_hub`):
//! `{cache}/models--{org}--{name}/refs/{revision}` holds a commit hash, and
//! `{cache}/models--{org}--{name}/snapshots/{commit}/{files}` the files (usually symlinks
//! into `blobs/`).

use std::fs;
use std::path::{Path, PathBuf};

use aiaas_types::Secret;
use serde::Deserialize;

use crate::fsutil::safe_relative_path;
use crate::http::{download, get_bytes, get_json, Download};
use crate::layout::{
    candidates, choose, hf_task_from_bytes, import_local, inspect, list_model_files, Assembled,
    Layout,
};
use crate::progress::{run_blocking, status, CancelFlag, Emit};
use crate::source::HfRepo;
use crate::{HubError, ModelFile, Result};

/// How to reach Hugging Face models.
pub(crate) struct HubAccess<'a> {
    pub client: &'a reqwest::Client,
    /// Base URL without a trailing slash, e.g. `https://huggingface.co`.
    pub endpoint: &'a str,
    pub token: Option<&'a Secret>,
    /// The local Hugging Face hub cache (`$HF_HUB_CACHE`), if any.
    pub cache_root: Option<&'a Path>,
    /// `{cache}/.partial`: downloads in progress.
    pub partial_dir: &'a Path,
}

/// Assembles `repo` in `staging`; returns the model and a display string of its source.
pub(crate) async fn pull_repo(
    access: &HubAccess<'_>,
    repo: &HfRepo,
    staging: &Path,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<(Assembled, String)> {
    if let Some((commit, snapshot)) = access
        .cache_root
        .and_then(|root| cached_snapshot(root, repo))
    {
        if snapshot_is_complete(&snapshot) {
            status(
                emit,
                format!("using the local Hugging Face cache: {}", snapshot.display()),
            );
            let staging = staging.to_path_buf();
            let assembled = run_blocking(emit, cancel, move |emit, cancel| {
                import_local(&snapshot, &staging, emit, cancel)
            })
            .await?;
            return Ok((
                assembled,
                format!("hf:{}@{commit} (local cache)", repo.repo_id),
            ));
        }
        tracing::info!(repo = %repo, "local Hugging Face cache incomplete; using the Hub");
    }
    download_repo(access, repo, staging, emit, cancel)
        .await
        .map_err(|e| explain_offline(e, access, repo))
}

/// The snapshot folder of `repo` in a Hugging Face cache, and its commit.
pub(crate) fn cached_snapshot(cache_root: &Path, repo: &HfRepo) -> Option<(String, PathBuf)> {
    let base = cache_root.join(repo.cache_folder());
    let commit = if is_commit(&repo.revision) {
        repo.revision.clone()
    } else {
        let reference = safe_relative_path(&repo.revision)?;
        fs::read_to_string(base.join("refs").join(reference))
            .ok()?
            .trim()
            .to_string()
    };
    if !is_commit(&commit) {
        return None;
    }
    let snapshot = base.join("snapshots").join(&commit);
    snapshot.is_dir().then_some((commit, snapshot))
}

/// Complete: the files (whose links resolve) make a folder or a GGUF layout.
fn snapshot_is_complete(snapshot: &Path) -> bool {
    list_model_files(snapshot)
        .map(|names| {
            let found = candidates(&names);
            found.hf.is_some() || !found.gguf.is_empty()
        })
        .unwrap_or(false)
}

#[derive(Deserialize)]
struct RepoInfo {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    lfs: Option<LfsInfo>,
}

#[derive(Deserialize)]
struct LfsInfo {
    sha256: Option<String>,
    size: Option<u64>,
}

async fn download_repo(
    access: &HubAccess<'_>,
    repo: &HfRepo,
    staging: &Path,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<(Assembled, String)> {
    status(emit, format!("resolving {repo}"));
    let mut info_url = hub_url(
        access.endpoint,
        ["api", "models"],
        repo.repo_id.split('/'),
        ["revision", repo.revision.as_str()],
    )?;
    info_url.set_query(Some("blobs=true"));
    let info_url = String::from(info_url);
    let what = format!("Hugging Face repo {repo}");
    let info: RepoInfo = get_json(access.client, &info_url, access.token, &what, cancel).await?;
    let commit = info.sha.clone().unwrap_or_else(|| repo.revision.clone());
    if !is_commit(&commit) {
        return Err(HubError::Network(format!(
            "{info_url}: unexpected commit {commit:?}"
        )));
    }
    let layout = choose_remote(access, repo, &commit, &info, cancel).await?;
    let plan: Vec<(String, String)> = match &layout {
        Layout::Gguf { file } => vec![(file.clone(), "model.gguf".to_string())],
        Layout::Hf { files } => files.iter().map(|f| (f.clone(), f.clone())).collect(),
    };
    let fetch = Fetch {
        access,
        repo,
        commit: &commit,
        info: &info,
        staging,
    };
    let files = fetch.files(&plan, emit, cancel).await?;
    let (dir, format) = (staging.to_path_buf(), layout.format());
    let mut assembled = run_blocking(emit, cancel, move |_, _| inspect(&dir, format)).await?;
    assembled.files = files;
    Ok((assembled, format!("hf:{}@{commit}", repo.repo_id)))
}

/// Downloads of one repo at one commit.
struct Fetch<'a> {
    access: &'a HubAccess<'a>,
    repo: &'a HfRepo,
    commit: &'a str,
    info: &'a RepoInfo,
    staging: &'a Path,
}

impl Fetch<'_> {
    /// Downloads each `(file in the repo, name in the model folder)` into staging, checked
    /// against the repo's LFS sha256 and size where it lists them.
    async fn files(
        &self,
        plan: &[(String, String)],
        emit: &Emit<'_>,
        cancel: &CancelFlag,
    ) -> Result<Vec<ModelFile>> {
        let partial = self
            .access
            .partial_dir
            .join("hf")
            .join(self.repo.cache_folder())
            .join(self.commit);
        let mut files = Vec::with_capacity(plan.len());
        for (remote, local) in plan {
            let relative = safe_relative_path(remote).ok_or_else(|| {
                HubError::Network(format!("unsafe file name {remote:?} in {}", self.repo))
            })?;
            let sibling = self.info.siblings.iter().find(|s| &s.rfilename == remote);
            let lfs = sibling.and_then(|s| s.lfs.as_ref());
            let url = resolve_url(self.access.endpoint, self.repo, self.commit, remote)?;
            let part = partial.join(format!("{}.part", relative.display()));
            let d = Download {
                url: &url,
                auth: self.access.token,
                part: &part,
                dest: &self.staging.join(local),
                sha256: lfs.and_then(|l| l.sha256.as_deref()),
                size: lfs
                    .and_then(|l| l.size)
                    .or_else(|| sibling.and_then(|s| s.size)),
                label: remote,
            };
            let (size, sha256) = download(self.access.client, &d, emit, cancel).await?;
            files.push(ModelFile {
                name: local.clone(),
                size,
                sha256,
            });
        }
        // Every part was renamed into staging; only empty folders are left.
        let _ = fs::remove_dir_all(&partial);
        Ok(files)
    }
}

/// Picks the files to fetch; a folder's `config.json` is fetched first to check that the
/// model family is supported before any weights are downloaded.
async fn choose_remote(
    access: &HubAccess<'_>,
    repo: &HfRepo,
    commit: &str,
    info: &RepoInfo,
    cancel: &CancelFlag,
) -> Result<Layout> {
    let names: Vec<String> = info.siblings.iter().map(|s| s.rfilename.clone()).collect();
    let found = candidates(&names);
    let verdict = match found.hf {
        Some(_) => {
            let url = resolve_url(access.endpoint, repo, commit, "config.json")?;
            let config =
                get_bytes(access.client, &url, access.token, "config.json", cancel).await?;
            let has_pooling = names.iter().any(|n| n == "1_Pooling/config.json");
            Some(hf_task_from_bytes(&config, has_pooling))
        }
        None => None,
    };
    choose(found, verdict).map_err(|e| match e {
        HubError::InvalidInput(detail) => HubError::InvalidInput(format!("{repo}: {detail}")),
        other => other,
    })
}

fn resolve_url(endpoint: &str, repo: &HfRepo, commit: &str, file: &str) -> Result<String> {
    let path = ["resolve", commit].into_iter().chain(file.split('/'));
    hub_url(endpoint, [], repo.repo_id.split('/'), path).map(String::from)
}

/// `endpoint` followed by path segments, each percent-encoded as one segment (a `/` in
/// a revision such as `refs/pr/1` becomes `%2F`; a file path's `/` separates segments).
fn hub_url<'a>(
    endpoint: &str,
    head: impl IntoIterator<Item = &'a str>,
    repo: impl IntoIterator<Item = &'a str>,
    tail: impl IntoIterator<Item = &'a str>,
) -> Result<url::Url> {
    let mut url = url::Url::parse(endpoint)
        .map_err(|e| HubError::InvalidInput(format!("Hugging Face endpoint {endpoint:?}: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| {
            HubError::InvalidInput(format!(
                "Hugging Face endpoint {endpoint:?} is not a base URL"
            ))
        })?
        .pop_if_empty()
        .extend(head)
        .extend(repo)
        .extend(tail);
    Ok(url)
}

/// Adds what to do when the Hub cannot be reached and the local cache did not help.
fn explain_offline(e: HubError, access: &HubAccess<'_>, repo: &HfRepo) -> HubError {
    match e {
        HubError::Network(detail) => {
            let cache = access.cache_root.map_or("no local cache".to_string(), |c| {
                format!("not complete in {}", c.display())
            });
            HubError::Network(format!(
                "{repo} is {cache}, and the Hub at {} failed: {detail}. Set HF_ENDPOINT for a \
                 mirror, or download the model into the Hugging Face cache",
                access.endpoint
            ))
        }
        other => other,
    }
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn snapshots_are_found_by_ref_or_commit() {
        let root = tempfile::tempdir().expect("tempdir");
        let base = root.path().join("models--org--name");
        fs::create_dir_all(base.join("refs/refs/pr")).expect("mkdir");
        fs::create_dir_all(base.join("snapshots").join(COMMIT)).expect("mkdir");
        fs::write(base.join("refs/main"), format!("{COMMIT}\n")).expect("write");
        fs::write(base.join("refs/refs/pr/1"), COMMIT).expect("write");
        let repo = |rev: &str| HfRepo::parse(&format!("org/name@{rev}")).expect("repo");
        let expected = Some((COMMIT.to_string(), base.join("snapshots").join(COMMIT)));
        assert_eq!(cached_snapshot(root.path(), &repo("main")), expected);
        assert_eq!(cached_snapshot(root.path(), &repo("refs/pr/1")), expected);
        assert_eq!(cached_snapshot(root.path(), &repo(COMMIT)), expected);
        assert_eq!(cached_snapshot(root.path(), &repo("v2")), None);
        assert_eq!(
            cached_snapshot(root.path(), &HfRepo::parse("org/other").expect("repo")),
            None
        );
    }

    #[test]
    fn urls_are_encoded() {
        let repo = HfRepo::parse("org/name").expect("repo");
        assert_eq!(
            resolve_url(
                "https://hf.example",
                &repo,
                COMMIT,
                "1_Pooling/config file.json"
            )
            .unwrap(),
            format!("https://hf.example/org/name/resolve/{COMMIT}/1_Pooling/config%20file.json")
        );
        let info = hub_url(
            "https://hf.example/mirror/",
            ["api"],
            ["org", "name"],
            ["refs/pr/1"],
        );
        assert_eq!(
            info.unwrap().as_str(),
            "https://hf.example/mirror/api/org/name/refs%2Fpr%2F1"
        );
        assert!(hub_url("not a url", [], [], []).is_err());
    }
}
