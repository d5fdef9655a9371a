//! Overload client for `bench/queue/run.sh`: measures a deployed model's predict endpoint
//! unloaded (one request at a time), its capacity (closed loop, 64 connections), then
//! overloaded twice: open loop at RATE requests a second (default: 10x that capacity;
//! give the capacity measured without a queue policy, since a policy lowers what the
//! 64 connections get through), requests sent on a fixed schedule whatever the answers,
//! as independent users arrive, and closed loop with CONNECTIONS clients
//! (default 512) each sending its next request as soon as it has an answer, a refusal
//! included (a swarm that ignores `Retry-After`). Reports the admitted requests'
//! latency, the refused ones' (429), and anything else (`other`: errors, and requests
//! with no answer within 30 s).
//!
//!     cargo run --release -p aiaas --example overload -- URL KEY MODEL [SECONDS] [CONNECTIONS] [RATE]
//!
//! MODEL is a tenant model (its native predict, one text) or `lib:NAME`, a library
//! embedder (`/v1/embeddings`, one input).
//!
//! Prints one JSON object per phase on stdout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

const TEXT: &str = "The striker scored twice in the cup final at the stadium.";

#[derive(Default)]
struct Outcomes {
    ok: Vec<f64>,
    refused: Vec<f64>,
    other: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn summary(
    phase: &str,
    mut o: Outcomes,
    seconds: f64,
    extra: serde_json::Value,
) -> serde_json::Value {
    o.ok.sort_by(f64::total_cmp);
    o.refused.sort_by(f64::total_cmp);
    let mut v = json!({
        "phase": phase,
        "ok": o.ok.len(),
        "refused": o.refused.len(),
        "other": o.other,
        "ok_per_s": o.ok.len() as f64 / seconds,
        "ok_p50_ms": percentile(&o.ok, 0.50),
        "ok_p99_ms": percentile(&o.ok, 0.99),
        "refused_p99_ms": percentile(&o.refused, 0.99),
    });
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        v.extend(extra.clone());
    }
    v
}

struct Target {
    http: reqwest::Client,
    url: String,
    key: String,
    body: serde_json::Value,
}

impl Target {
    /// One predict call: its status (0: no answer) and milliseconds.
    async fn call(&self) -> (u16, f64) {
        let started = Instant::now();
        let sent = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key)
            .json(&self.body)
            .send()
            .await;
        let status = match sent {
            Ok(r) => {
                let s = r.status().as_u16();
                let _ = r.bytes().await;
                s
            }
            Err(_) => 0,
        };
        (status, started.elapsed().as_secs_f64() * 1e3)
    }
}

fn record(o: &mut Outcomes, (status, ms): (u16, f64)) {
    match status {
        200 => o.ok.push(ms),
        429 => o.refused.push(ms),
        _ => o.other += 1,
    }
}

/// `connections` clients for `length`, each sending its next request as soon as it has
/// an answer (a refusal included).
async fn closed_loop(target: &Arc<Target>, connections: usize, length: Duration) -> Outcomes {
    let deadline = Instant::now() + length;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let t = target.clone();
        tasks.spawn(async move {
            let mut o = Outcomes::default();
            while Instant::now() < deadline {
                record(&mut o, t.call().await);
            }
            o
        });
    }
    let mut all = Outcomes::default();
    while let Some(Ok(o)) = tasks.join_next().await {
        all.ok.extend(o.ok);
        all.refused.extend(o.refused);
        all.other += o.other;
    }
    all
}

/// Requests at `rate` a second for `length`, each on its own schedule whatever the answers
/// to the earlier ones. At most `MAX_OPEN` are outstanding; a send due while that many are
/// is skipped and counted (`unsent`): the client could not offer the rate.
async fn open_loop(target: &Arc<Target>, rate: f64, length: Duration) -> (Outcomes, usize, usize) {
    const MAX_OPEN: usize = 4096;
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_OPEN));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let (mut sent, mut unsent) = (0usize, 0usize);
    let mut due = 0u64;
    while started.elapsed() < length {
        // Send everything due by now (timers tick at about 1 ms, rates go far beyond).
        let should = (started.elapsed().as_secs_f64() * rate) as u64;
        while due < should {
            due += 1;
            match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    sent += 1;
                    let (t, tx) = (target.clone(), tx.clone());
                    tokio::spawn(async move {
                        let _ = tx.send(t.call().await);
                        drop(permit);
                    });
                }
                Err(_) => unsent += 1,
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    drop(tx);
    let mut o = Outcomes::default();
    while let Some(r) = rx.recv().await {
        record(&mut o, r);
    }
    (o, sent, unsent)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: overload URL KEY MODEL [SECONDS] [CONNECTIONS]");
        std::process::exit(2);
    }
    let seconds: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let connections: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(512);
    let rate: Option<f64> = args.get(5).and_then(|s| s.parse().ok());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let base = args[0].trim_end_matches('/');
    let (url, body) = match args[2].strip_prefix("lib:") {
        Some(name) => (
            format!("{base}/v1/embeddings"),
            json!({"model": name, "input": TEXT}),
        ),
        None => (
            format!("{base}/api/v1/models/{}/predict", args[2]),
            json!({"texts": [TEXT]}),
        ),
    };
    let target = Arc::new(Target {
        http,
        url,
        key: args[1].clone(),
        body,
    });

    // Unloaded: one request at a time.
    for _ in 0..50 {
        target.call().await;
    }
    let mut unloaded = Outcomes::default();
    let started = Instant::now();
    for _ in 0..500 {
        record(&mut unloaded, target.call().await);
    }
    println!(
        "{}",
        summary(
            "unloaded",
            unloaded,
            started.elapsed().as_secs_f64(),
            json!({})
        )
    );

    // Capacity: 64 connections, each sending its next request on an answer.
    let closed = closed_loop(&target, 64, Duration::from_secs(5)).await;
    let capacity = closed.ok.len() as f64 / 5.0;
    println!(
        "{}",
        summary("capacity", closed, 5.0, json!({"connections": 64}))
    );

    // Open-loop overload: RATE (10x capacity), on schedule.
    let length = Duration::from_secs_f64(seconds);
    let rate = rate.unwrap_or(10.0 * capacity);
    let (open, sent, unsent) = open_loop(&target, rate, length).await;
    println!(
        "{}",
        summary(
            "open",
            open,
            seconds,
            json!({"offered_per_s": sent as f64 / seconds,
                   "target_per_s": rate, "unsent": unsent}),
        )
    );

    // Overload: CONNECTIONS clients, each sending its next request as soon as it has
    // an answer (a refusal included), so the queue holds as many requests as there are
    // connections: many times what the model answers within its unloaded latency.
    let overload = closed_loop(&target, connections, length).await;
    println!(
        "{}",
        summary(
            "overload",
            overload,
            seconds,
            json!({"connections": connections, "capacity_per_s": capacity}),
        )
    );
}
