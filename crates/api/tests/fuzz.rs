//! Fuzzing of what strangers send: dataset uploads (CSV, JSON Lines, raw and multipart),
//! and the JSON bodies of every family of routes, through the whole router in-process
//! over a real platform. Inputs are mutations of valid seeds (bit flips, insertions of
//! syntax characters, deletions, duplications, invalid UTF-8) plus random bytes.
//! Properties: no panic, never a 5xx, and the server still answers afterwards. (Library
//! pulls are left out: their sources are URLs, paths and package names, which would send
//! the fuzzer to the network and the file system.)
//!
//! Each target runs for `FUZZ_SECS` seconds (3 in the normal test run);
//! `fuzz/run.sh` runs them for minutes in a release build and prints the cases.

use std::time::{Duration, Instant};

use aiaas_core::{Platform, PlatformConfig};
use aiaas_types::Secret;
use axum::body::Body;
use axum::http::{header, Request};
use tower::ServiceExt;

const ADMIN: &str = "aiaas_2222222222222222222222222222222222222222222222222222222222222222";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b",",
    b"\"",
    b"\"\"",
    b"\n",
    b"\r\n",
    b"\r",
    b"\t",
    b";",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"null",
    b"true",
    b"-1",
    b"1e309",
    b"0",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\\",
    b"\\u0000",
    b"\xc3",
    b"\xe4\xb8\xad",
    b"label",
    b"text",
    b"\"text\"",
    b"--",
    b"\r\n\r\n",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            2 if !v.is_empty() => {
                let end = (at + rng.below(16)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 if !v.is_empty() => {
                let start = rng.below(v.len());
                let end = (start + rng.below(64)).min(v.len());
                let piece: Vec<u8> = v[start..end].to_vec();
                v.splice(at..at, piece);
            }
            4 => {
                let n = rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            5 => {
                // A long run (big fields, deep nesting).
                let t = TOKENS[rng.below(TOKENS.len())];
                let run: Vec<u8> = t
                    .iter()
                    .copied()
                    .cycle()
                    .take(t.len() * (1 + rng.below(2000)))
                    .collect();
                v.splice(at..at, run);
            }
            _ => v.truncate(at),
        }
    }
    v
}

async fn platform() -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = PlatformConfig::new(dir.path());
    config.admin_key = Some(Secret::new(ADMIN));
    config.master_key = aiaas_core::MasterKeySource::Value("cd".repeat(32));
    config.max_upload_bytes = 4 << 20;
    let (platform, report) = Platform::open(config).await.unwrap();
    platform.start(&report);
    (dir, aiaas_api::app(platform))
}

fn budget() -> Duration {
    let secs = std::env::var("FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

async fn status_of(app: &axum::Router, req: Request<Body>) -> u16 {
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .expect("the router never fails");
    let status = resp.status().as_u16();
    let _ = axum::body::to_bytes(resp.into_body(), 1 << 24).await;
    status
}

/// Run one target until the budget is spent (none when `FUZZ_TARGET` names another);
/// returns (cases, accepted).
async fn run(
    name: &str,
    app: &axum::Router,
    mut make: impl FnMut(&mut Rng, u64) -> Request<Body>,
) -> (u64, u64) {
    if std::env::var("FUZZ_TARGET").is_ok_and(|t| !name.starts_with(t.as_str())) {
        return (0, 0);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    let deadline = Instant::now() + budget();
    let (mut cases, mut accepted) = (0u64, 0u64);
    while Instant::now() < deadline {
        let req = make(&mut rng, cases);
        let what = format!("{} {}", req.method(), req.uri());
        let status = status_of(app, req).await;
        assert!(
            status < 500,
            "{name}: case {cases} ({what}) answered {status}"
        );
        if status < 300 {
            accepted += 1;
        }
        cases += 1;
    }
    println!(
        "\nfuzz {name}: {cases} cases, {accepted} accepted, {:.0} s",
        budget().as_secs_f64()
    );
    (cases, accepted)
}

const CSV_SEED: &[u8] = b"text,label\n\"The bank raised rates, again\",finance\nrain all day,weather\n\xe4\xb8\xad\xe6\x96\x87 text,weather\n\"multi\nline\",finance\nstocks fell,finance\nsnow at night,weather\n";
const JSONL_SEED: &[u8] = b"{\"text\": \"The bank raised rates\", \"label\": \"finance\"}\n{\"text\": \"rain all day\", \"label\": \"weather\", \"extra\": [1, {\"a\": null}]}\n{\"text\": \"stocks fell\", \"label\": \"finance\"}\n{\"text\": \"snow\", \"label\": \"weather\"}\n";

fn upload(rng: &mut Rng, i: u64) -> Request<Body> {
    let (format, body) = match rng.below(5) {
        0 | 1 => ("csv", mutate(rng, CSV_SEED)),
        2 | 3 => ("jsonl", mutate(rng, JSONL_SEED)),
        _ => (
            "csv",
            (0..rng.below(4096)).map(|_| rng.next() as u8).collect(),
        ),
    };
    let query = if rng.below(3) == 0 {
        format!("name=f{i}")
    } else {
        format!("name=f{i}&format={format}")
    };
    Request::post(format!("/api/v1/datasets?{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::from(body))
        .unwrap()
}

fn multipart(rng: &mut Rng, i: u64) -> Request<Body> {
    let boundary = if rng.below(8) == 0 {
        "x".repeat(rng.below(200))
    } else {
        "b0undary".to_string()
    };
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nm{i}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.csv\"\r\nContent-Type: text/csv\r\n\r\n").as_bytes());
    body.extend_from_slice(CSV_SEED);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let body = mutate(rng, &body);
    Request::post("/api/v1/datasets")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap()
}

const JSON_SEEDS: &[(&str, &str)] = &[
    (
        "/api/v1/keys",
        r#"{"name": "k", "role": "inference", "allowed_models": ["m"], "limits": {"requests_per_minute": 5}, "allowed_ips": ["10.0.0.0/8"], "expires_in_secs": 60}"#,
    ),
    ("/api/v1/tenants", r#"{"name": "t1"}"#),
    (
        "/api/v1/jobs",
        r#"{"dataset": "d", "model": "m", "deploy": true, "config": {"architecture": "avgpool", "epochs": 2, "batch_size": 8, "learning_rate": 0.01}}"#,
    ),
    (
        "/api/v1/models/m/predict",
        r#"{"texts": ["a", "b"], "text": "c"}"#,
    ),
    (
        "/api/v1/privacy/mask",
        r#"{"texts": ["call 138 1234 5678", "mail a@b.cn"], "mode": "pseudonymise", "kinds": ["phone", "email"]}"#,
    ),
    (
        "/v1/chat/completions",
        r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0.5, "stop": ["x"], "n": 2, "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}, "stream": true}"#,
    ),
    (
        "/v1/chat/completions",
        r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}, {"role": "tool", "tool_call_id": "call_1", "content": "ok"}], "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}, "strict": true}}], "tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": false}"#,
    ),
    (
        "/v1/responses",
        r#"{"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}, {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}, {"type": "function_call_output", "call_id": "c", "output": "ok"}], "instructions": "be brief", "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}], "tool_choice": "required", "max_output_tokens": 5, "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}}, "stream": true, "store": false, "previous_response_id": "resp_abc"}"#,
    ),
    (
        "/v1/completions",
        r#"{"model": "m", "prompt": ["a", "b"], "max_tokens": 3, "logprobs": 2, "echo": true}"#,
    ),
    (
        "/v1/embeddings",
        r#"{"model": "m", "input": ["a", "b"], "encoding_format": "base64"}"#,
    ),
    (
        "/v2/models/m/infer",
        r#"{"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}], "outputs": [{"name": "label"}]}"#,
    ),
];

fn json_body(rng: &mut Rng, _i: u64) -> Request<Body> {
    let (path, seed) = JSON_SEEDS[rng.below(JSON_SEEDS.len())];
    let body = mutate(rng, seed.as_bytes());
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_input_never_crashes_or_errors_the_server() {
    let (_dir, app) = platform().await;
    let (cases, accepted) = run("dataset upload (csv/jsonl/raw)", &app, upload).await;
    if std::env::var_os("FUZZ_TARGET").is_none() {
        assert!(
            cases > 20 && accepted > 0,
            "the seeds must parse at least sometimes"
        );
    }
    run("multipart upload", &app, multipart).await;
    run("json bodies", &app, json_body).await;
    let status = status_of(&app, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200, "still ready after the fuzzing");
}
