//! HTTP: the client, bounded JSON GETs, and resumable, verified downloads.
//!
//! A download streams to `{file}.part`; when a part exists it asks for the rest with a
//! `Range` request, starting over cleanly if the server answers the whole file instead.
//! The sha256 covers the resumed prefix too, and the file is renamed to its final name
//! only once its size and sha256 match.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aiaas_types::Secret;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::fsutil::{copy_chunked, create_parent, io_or_cancel, CHUNK};
use crate::progress::{run_blocking, ByteMeter, CancelFlag, Emit};
use crate::{HubError, Result};

/// Documents (index JSON, config.json) larger than this are refused; PyPI's biggest
/// project documents are a few MB.
const MAX_DOCUMENT_BYTES: usize = 64 << 20;
const CANCEL_POLL: Duration = Duration::from_millis(250);

pub(crate) fn build_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("aiaas-hub/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| HubError::Network(format!("cannot set up the HTTP client: {}", describe(&e))))
}

/// GETs and parses a JSON document. A 404 is `NotFound(what)`.
pub(crate) async fn get_json<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&Secret>,
    what: &str,
    cancel: &CancelFlag,
) -> Result<T> {
    let body = get_bytes(client, url, auth, what, cancel).await?;
    serde_json::from_slice(&body)
        .map_err(|e| HubError::Network(format!("{url}: unexpected response for {what}: {e}")))
}

/// GETs a small document (at most `MAX_DOCUMENT_BYTES`). A 404 is `NotFound(what)`.
pub(crate) async fn get_bytes(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&Secret>,
    what: &str,
    cancel: &CancelFlag,
) -> Result<Vec<u8>> {
    let mut request = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(token) = auth {
        request = request.bearer_auth(token.expose());
    }
    let mut response = cancellable(cancel, request.send())
        .await?
        .map_err(|e| unreachable(url, &e))?;
    check_status(&response, url, what)?;
    let mut body = Vec::new();
    while let Some(chunk) = cancellable(cancel, response.chunk())
        .await?
        .map_err(|e| unreachable(url, &e))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(HubError::Network(format!(
                "{url}: response larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A file to download and what it must hash to.
pub(crate) struct Download<'a> {
    pub url: &'a str,
    pub auth: Option<&'a Secret>,
    /// Bytes accumulate here; kept after a failure so a later pull resumes.
    pub part: &'a Path,
    /// The verified file is renamed to this path (same file system as `part`).
    pub dest: &'a Path,
    pub sha256: Option<&'a str>,
    pub size: Option<u64>,
    /// Shown in progress and errors: a file name.
    pub label: &'a str,
}

/// Downloads `d.url` to `d.dest`, resuming from `d.part`, verifying size and sha256;
/// returns the file's size and sha256.
pub(crate) async fn download(
    client: &reqwest::Client,
    d: &Download<'_>,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<(u64, String)> {
    create_parent(d.part)?;
    create_parent(d.dest)?;
    let (mut hasher, mut have) = resume_state(d, emit, cancel).await?;
    if d.size.is_some_and(|size| have == size) {
        // Complete already (an earlier pull died between download and rename).
        if let Ok(done) = finish(d, hasher, have).await {
            return Ok(done);
        }
        (hasher, have) = (Sha256::new(), 0);
    }
    let mut meter = ByteMeter::start(emit, format!("downloading {}", d.label), d.size);
    let mut response = request(client, d, have, cancel).await?;
    if have > 0 && !resumed_at(&response, have) {
        tracing::info!(
            file = d.label,
            "server did not resume at byte {have}; starting over"
        );
        (hasher, have) = (Sha256::new(), 0);
        if response.status() != StatusCode::OK {
            response = request(client, d, 0, cancel).await?;
        }
    }
    meter.set(have);
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(have > 0)
        .truncate(have == 0)
        .open(d.part)
        .await
        .map_err(|e| HubError::io(format!("open {}", d.part.display()), e))?;
    let mut out = BufWriter::with_capacity(CHUNK, file);
    while let Some(chunk) = cancellable(cancel, response.chunk()).await?.map_err(|e| {
        HubError::Network(format!(
            "download of {} interrupted: {}",
            d.label,
            describe(&e)
        ))
    })? {
        cancel.check()?;
        have += chunk.len() as u64;
        if d.size.is_some_and(|size| have > size) {
            break;
        }
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| HubError::io(format!("write {}", d.part.display()), e))?;
        meter.add(chunk.len() as u64);
    }
    out.flush()
        .await
        .map_err(|e| HubError::io(format!("write {}", d.part.display()), e))?;
    out.into_inner()
        .sync_all()
        .await
        .map_err(|e| HubError::io(format!("sync {}", d.part.display()), e))?;
    meter.finish();
    finish(d, hasher, have).await
}

/// The hash state and length of an existing partial download (nothing if there is none
/// or it is longer than the file can be).
async fn resume_state(
    d: &Download<'_>,
    emit: &Emit<'_>,
    cancel: &CancelFlag,
) -> Result<(Sha256, u64)> {
    let have = tokio::fs::metadata(d.part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    if have == 0 || d.size.is_some_and(|size| have > size) {
        return Ok((Sha256::new(), 0));
    }
    let part: PathBuf = d.part.to_path_buf();
    let label = d.label.to_string();
    run_blocking(emit, cancel, move |emit, cancel| {
        let mut meter = ByteMeter::start(emit, format!("checking partial {label}"), Some(have));
        let mut hasher = Sha256::new();
        let mut file = std::fs::File::open(&part)
            .map_err(|e| HubError::io(format!("open {}", part.display()), e))?;
        let mut sink = HasherSink(&mut hasher);
        let read = copy_chunked(&mut file, &mut sink, have, &mut meter, cancel)
            .map_err(|e| io_or_cancel(format!("read {}", part.display()), e))?;
        meter.finish();
        Ok((hasher, read))
    })
    .await
}

/// Checks the size and sha256 of a finished part and renames it into place; a part that
/// does not match is deleted (it cannot become right by resuming).
async fn finish(d: &Download<'_>, hasher: Sha256, have: u64) -> Result<(u64, String)> {
    let actual = hex::encode(hasher.finalize());
    let mismatch = if d.size.is_some_and(|size| size != have) {
        Some((
            format!("{} bytes", d.size.unwrap_or_default()),
            format!("{have} bytes"),
        ))
    } else {
        d.sha256
            .filter(|expected| !expected.eq_ignore_ascii_case(&actual))
            .map(|expected| (expected.to_string(), actual.clone()))
    };
    if let Some((expected, actual)) = mismatch {
        let _ = tokio::fs::remove_file(d.part).await;
        return Err(HubError::Checksum {
            what: format!("download of {} from {}", d.label, d.url),
            expected,
            actual,
        });
    }
    tokio::fs::rename(d.part, d.dest).await.map_err(|e| {
        HubError::io(
            format!("rename {} to {}", d.part.display(), d.dest.display()),
            e,
        )
    })?;
    Ok((have, actual))
}

/// Sends the GET, from byte `from` on; a `416` (the part is no prefix of the file any
/// more) falls back to the whole file.
async fn request(
    client: &reqwest::Client,
    d: &Download<'_>,
    from: u64,
    cancel: &CancelFlag,
) -> Result<reqwest::Response> {
    let mut response = send(client, d, from, cancel).await?;
    if from > 0 && response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        response = send(client, d, 0, cancel).await?;
    }
    check_status(&response, d.url, d.label)?;
    Ok(response)
}

async fn send(
    client: &reqwest::Client,
    d: &Download<'_>,
    from: u64,
    cancel: &CancelFlag,
) -> Result<reqwest::Response> {
    let mut request = client.get(d.url);
    if from > 0 {
        request = request.header(RANGE, format!("bytes={from}-"));
    }
    if let Some(token) = d.auth {
        request = request.bearer_auth(token.expose());
    }
    cancellable(cancel, request.send())
        .await?
        .map_err(|e| unreachable(d.url, &e))
}

/// Whether `response` continues a partial file of `have` bytes.
fn resumed_at(response: &reqwest::Response, have: u64) -> bool {
    if response.status() != StatusCode::PARTIAL_CONTENT {
        return false;
    }
    // `Content-Range: bytes START-END/TOTAL`
    response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|start| start.trim().parse::<u64>().ok())
        == Some(have)
}

fn check_status(response: &reqwest::Response, url: &str, what: &str) -> Result<()> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(match status {
        StatusCode::NOT_FOUND => HubError::NotFound(format!("{what} ({url} answered 404)")),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => HubError::Network(format!(
            "{url} answered {status}: {what} needs access rights (for Hugging Face, accept the \
             model's terms and set HF_TOKEN)"
        )),
        _ => HubError::Network(format!("{url} answered {status} for {what}")),
    })
}

fn unreachable(url: &str, e: &reqwest::Error) -> HubError {
    HubError::Network(format!("cannot reach {url}: {}", describe(e)))
}

/// A reqwest error with its causes ("error sending request" alone says little).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Awaits `fut`, giving up with `Cancelled` once `cancel` is set.
async fn cancellable<F: Future>(cancel: &CancelFlag, fut: F) -> Result<F::Output> {
    tokio::pin!(fut);
    loop {
        cancel.check()?;
        tokio::select! {
            out = &mut fut => return Ok(out),
            () = tokio::time::sleep(CANCEL_POLL) => {}
        }
    }
}

/// Feeds written bytes to a hasher.
struct HasherSink<'a>(&'a mut Sha256);

impl std::io::Write for HasherSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
