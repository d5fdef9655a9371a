//! Past one machine, on this one: a real PostgreSQL (Debian's, its own cluster on a
//! loopback port), a real S3 server (s3s-fs, in this process), three `aiaas serve`
//! replicas and nginx balancing them with buffering off. Through the load balancer:
//! upload, train (the job runs on exactly one replica), deploy, predict from every
//! replica; kill the replica training a job and see another finish it; kill a replica
//! under steady load and lose no request (the client retries idempotent ones); restart
//! the database and see the platform recover; SIGTERM a replica and see it drain.
//!
//! Needs PostgreSQL and nginx (scripts/setup.sh --test installs both). Without them the
//! test is skipped with a notice, unless AIAAS_REQUIRE_POSTGRES=1 (the test script).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{synthetic_csv, test_data, Server, ServerOptions, ADMIN_KEY};

const MASTER_KEY: &str = "6a1f0c3be2d94e7f8a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b";

fn repo_root() -> PathBuf {
    PathBuf::from(crate::common::crate_dir()).join("../..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether the parts this test needs are installed; a notice (or, when they are
/// required, a failure) when they are not.
fn parts_available() -> bool {
    let pg = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|v| v.path().join("bin/initdb").is_file()))
        .unwrap_or(false);
    let nginx = Path::new("/usr/sbin/nginx").is_file();
    if pg && nginx {
        return true;
    }
    assert!(
        std::env::var("AIAAS_REQUIRE_POSTGRES").as_deref() != Ok("1"),
        "PostgreSQL and nginx are required (scripts/setup.sh --test installs them)"
    );
    eprintln!("skipped: PostgreSQL or nginx is not installed");
    false
}

/// A PostgreSQL cluster of this test's own (so it can be restarted), via scripts/pg.sh.
struct Postgres {
    dir: PathBuf,
    port: u16,
    url: String,
}

impl Postgres {
    fn start() -> Postgres {
        // Not under a private temp dir: as root, the server runs as `postgres`.
        let dir = PathBuf::from(format!(
            "/var/tmp/aiaas-pg-replicas-{}",
            aiaas_types::new_id()
        ));
        let port = free_port();
        let pg = Postgres {
            url: format!("postgres://aiaas@127.0.0.1:{port}/postgres"),
            dir,
            port,
        };
        pg.run("start");
        pg
    }

    fn run(&self, cmd: &str) {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/pg.sh"))
            .args([cmd, self.dir.to_str().unwrap(), &self.port.to_string()])
            .output()
            .expect("run scripts/pg.sh");
        assert!(
            out.status.success(),
            "pg.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.run("kill");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx in front of the replicas: round robin, buffering off (streams pass through as
/// they are written), failed connections retried on the next replica.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstreams: &[u16]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
            .collect();
        // nginx's workers drop to `nobody` when started as root; they must reach the
        // temp folders, so run them as the user who started them.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root root;"
        } else {
            ""
        };
        let d = dir.path().display();
        let conf = format!(
            "{user}
daemon off;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream aiaas {{
{servers}        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 200m;
        location / {{
            proxy_pass http://aiaas;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One replica: its port is fixed (nginx names it), its data directory its own scratch.
struct Replica {
    name: String,
    port: u16,
    data: tempfile::TempDir,
    server: Option<Server>,
}

struct Cluster {
    pg: Postgres,
    s3: aiaas_testkit::S3Server,
    replicas: Vec<Replica>,
    nginx: Nginx,
    http: reqwest::Client,
}

impl Cluster {
    fn replica_env(&self) -> Vec<(String, String)> {
        vec![
            ("AIAAS_DATABASE_URL".into(), self.pg.url.clone()),
            (
                "AIAAS_ARTIFACTS".into(),
                format!("s3://{}/aiaas", self.s3.bucket),
            ),
            ("AIAAS_S3_ENDPOINT".into(), self.s3.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), self.s3.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.s3.secret_key.clone()),
            ("AIAAS_MASTER_KEY".into(), MASTER_KEY.into()),
            ("AIAAS_JOB_LEASE".into(), "3".into()),
            ("AIAAS_DRAIN_TIMEOUT".into(), "20".into()),
        ]
    }

    fn start_replica(&mut self, i: usize) {
        let env = self.replica_env();
        let r = &mut self.replicas[i];
        let listen = format!("127.0.0.1:{}", r.port);
        let wheels = test_data().join("wheels").display().to_string();
        let args = [
            "--replica-id",
            r.name.as_str(),
            "--wheel-dir",
            wheels.as_str(),
        ];
        r.server = Some(Server::start(ServerOptions {
            listen: Some(listen),
            env,
            extra_args: &args,
            ..ServerOptions::new(r.data.path())
        }));
    }

    fn replica(&self, i: usize) -> &Server {
        self.replicas[i].server.as_ref().expect("replica running")
    }

    /// Index of the replica named `name` (a job's worker is `name/pid-id`).
    fn index_of_worker(&self, worker: &str) -> usize {
        let name = worker.split('/').next().unwrap_or_default();
        self.replicas
            .iter()
            .position(|r| r.name == name)
            .unwrap_or_else(|| panic!("no replica named by worker {worker:?}"))
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value, String) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.nginx.url(path))
            .bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request through nginx");
        let status = resp.status().as_u16();
        let replica = resp
            .headers()
            .get("x-aiaas-replica")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            replica,
        )
    }

    /// A prediction sent straight to replica `i`, not through nginx.
    async fn predict_on(&self, i: usize) -> (u16, Value) {
        self.replica(i)
            .call(
                "POST",
                "/api/v1/models/topics/predict",
                Some(ADMIN_KEY),
                Some(json!({"texts": ["x"]})),
            )
            .await
    }

    async fn job(&self, id: &str) -> Value {
        let (status, job, _) = self.call("GET", &format!("/api/v1/jobs/{id}"), None).await;
        assert_eq!(status, 200, "{job}");
        job
    }

    /// The job once it has ended (succeeded, failed or cancelled).
    async fn wait_job_end(&self, id: &str) -> Value {
        let ended = |j: &Value| {
            ["succeeded", "failed", "cancelled"].contains(&j["status"].as_str().unwrap_or(""))
        };
        self.wait_job(id, ended, Duration::from_secs(600)).await
    }

    async fn wait_job(&self, id: &str, until: impl Fn(&Value) -> bool, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let job = self.job(id).await;
            if until(&job) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} not there after {limit:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_behind_nginx_over_postgres_and_s3() {
    if !parts_available() {
        return;
    }
    let pg = Postgres::start();
    let s3 = aiaas_testkit::S3Server::start();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nginx = Nginx::start(&ports);
    let mut c = Cluster {
        pg,
        s3,
        replicas: ports
            .iter()
            .enumerate()
            .map(|(i, &port)| Replica {
                name: format!("r{i}"),
                port,
                data: tempfile::tempdir().unwrap(),
                server: None,
            })
            .collect(),
        nginx,
        http: reqwest::Client::new(),
    };
    for i in 0..3 {
        c.start_replica(i);
    }
    for i in 0..3 {
        let (status, _) = c.replica(i).call("GET", "/readyz", None, None).await;
        assert_eq!(status, 200, "replica {i} ready");
    }

    // Upload through the load balancer; every replica sees the data set at once.
    // Large enough that training takes seconds (a replica can be killed mid-run).
    let csv = synthetic_csv(1000, 11);
    let resp = c
        .http
        .post(c.nginx.url("/api/v1/datasets?name=topics"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );
    for i in 0..3 {
        let (status, v) = c
            .replica(i)
            .call("GET", "/api/v1/datasets/topics", Some(ADMIN_KEY), None)
            .await;
        assert_eq!(status, 200, "replica {i}: {v}");
    }

    // A training job runs on exactly one replica; kill that one mid-run and another
    // takes the job over once its lease runs out, and finishes it.
    let long = json!({"dataset": "topics", "model": "topics", "deploy": true,
                      "config": {"architecture": "avgpool", "epochs": 1000, "embedding": {"init": "random"}}});
    let (status, job, _) = c.call("POST", "/api/v1/jobs", Some(long)).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let running = c
        .wait_job(&id, |j| j["status"] == "running", Duration::from_secs(60))
        .await;
    let first = c.index_of_worker(running["worker"].as_str().unwrap());
    let killed_at = Instant::now();
    c.replicas[first].server.take().unwrap().kill();
    let resumed = c
        .wait_job(
            &id,
            |j| j["status"] == "running" && j["attempts"] == 2,
            Duration::from_secs(60),
        )
        .await;
    let takeover = killed_at.elapsed();
    let second = c.index_of_worker(resumed["worker"].as_str().unwrap());
    assert_ne!(second, first, "another replica took the job over");
    let done = c.wait_job_end(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    eprintln!(
        "replicas: job finished on {} after {} was killed; taken over in {:.1} s",
        c.replicas[second].name,
        c.replicas[first].name,
        takeover.as_secs_f64()
    );
    c.start_replica(first);

    // Predictions through the load balancer come from every replica (nginx tries the
    // restarted one again once its fail_timeout has passed).
    let mut served = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while served.len() < 3 && Instant::now() < deadline {
        let (status, v, replica) = c
            .call(
                "POST",
                "/api/v1/models/topics/predict",
                Some(json!({"texts": ["the striker scored a late goal"]})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        served.insert(replica);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served.len(), 3, "served by {served:?}");

    // Every replica publishes the autoscaling gauges of what it has loaded.
    for i in 0..3 {
        let (status, text) = c
            .replica(i)
            .call("GET", "/metrics", Some(ADMIN_KEY), None)
            .await;
        assert_eq!(status, 200);
        let text = text.as_str().unwrap_or_default().to_string();
        assert!(
            text.contains("aiaas_queue_depth{model=\"default/topics:")
                && text.contains("aiaas_busy_slots{"),
            "replica {i} metrics lack the scaling gauges"
        );
    }

    // A finished job's event stream, through nginx (buffering off), ends with `end`.
    let events = c
        .http
        .get(c.nginx.url(&format!("/api/v1/jobs/{id}/events")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(events.contains("event: end"), "{events}");

    // A rate limit holds across replicas: 5 requests a minute, bursts of 5, whichever
    // replica nginx picks.
    let (status, v, _) = c
        .call(
            "POST",
            "/api/v1/keys",
            Some(json!({"name": "limited", "role": "developer",
                        "limits": {"requests_per_minute": 5, "burst": 5}})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let limited = v["secret"].as_str().unwrap().to_string();
    let (mut admitted, mut refused, mut replicas) = (0, 0, std::collections::BTreeSet::new());
    for _ in 0..12 {
        let resp = c
            .http
            .get(c.nginx.url("/api/v1/models"))
            .bearer_auth(&limited)
            .send()
            .await
            .unwrap();
        replicas.insert(
            resp.headers()
                .get("x-aiaas-replica")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        );
        match resp.status().as_u16() {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(replicas.len() > 1, "spread over replicas: {replicas:?}");
    assert_eq!((admitted, refused), (5, 7), "one limit for all replicas");

    // Keys are cached by every replica; a revocation on one reaches the others through
    // PostgreSQL's NOTIFY: within a second, every replica refuses the key.
    let (status, v, _) = c
        .call(
            "POST",
            "/api/v1/keys",
            Some(json!({"name": "soon-revoked", "role": "developer"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (doomed, doomed_id) = (
        v["secret"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    );
    for i in 0..3 {
        let (status, _) = c
            .replica(i)
            .call("GET", "/api/v1/models", Some(&doomed), None)
            .await;
        assert_eq!(status, 200, "replica {i} knows (and caches) the key");
    }
    let path = format!("/api/v1/keys/{doomed_id}");
    let (status, v) = c
        .replica(0)
        .call("DELETE", &path, Some(ADMIN_KEY), None)
        .await;
    assert!(status == 200 || status == 204, "{status} {v}");
    let revoked_at = std::time::Instant::now();
    for i in 0..3 {
        loop {
            let (status, _) = c
                .replica(i)
                .call("GET", "/api/v1/models", Some(&doomed), None)
                .await;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "replica {i} still accepts a key revoked {:?} ago",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // A library model pulled through one replica is served by the others: each fetches
    // the sealed weights from the object store into its own cache, checks them, loads.
    let (status, v) = c
        .replica(0)
        .call(
            "POST",
            "/api/v1/library/pull",
            Some(ADMIN_KEY),
            Some(json!({"source": "all-minilm-l6-v2", "stream": false})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let mut vectors = Vec::new();
    for i in 0..3 {
        let (status, v) = c
            .replica(i)
            .call(
                "POST",
                "/v1/embeddings",
                Some(ADMIN_KEY),
                Some(json!({"model": "all-minilm-l6-v2", "input": "the same sentence everywhere"})),
            )
            .await;
        assert_eq!(status, 200, "replica {i}: {v}");
        vectors.push(v["data"][0]["embedding"].clone());
    }
    assert!(
        vectors.iter().all(|v| *v == vectors[0]),
        "the same weights on every replica"
    );
    let cached = c.replicas[2].data.path().join("models");
    assert!(
        std::fs::read_dir(&cached).map(|d| d.count()).unwrap_or(0) > 0,
        "replica r2 cached the weights in {}",
        cached.display()
    );

    // An undeploy reaches every replica: each refuses the model at once.
    let (status, v, _) = c.call("POST", "/api/v1/models/topics/undeploy", None).await;
    assert!(status == 200 || status == 204, "{status} {v}");
    for i in 0..3 {
        let (status, v) = c.predict_on(i).await;
        assert_eq!(status, 409, "replica {i}: {v}");
    }
    // ... and each replica unloads the runtime it had (reconciled within seconds).
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..3 {
        loop {
            let (status, ps) = c
                .replica(i)
                .call("GET", "/api/v1/ps", Some(ADMIN_KEY), None)
                .await;
            assert_eq!(status, 200, "{ps}");
            if !ps.to_string().contains("default/topics:") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {i} still runs the undeployed model: {ps}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (status, v, _) = c
        .call("POST", "/api/v1/models/topics/deploy", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{v}");

    // Steady load while a replica is killed: the client retries what failed in flight
    // (predictions are idempotent); nothing is lost.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let retried = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, http) = (c.nginx.url("/api/v1/models/topics/predict"), c.http.clone());
        let (stop, ok, retried, lost) = (stop.clone(), ok.clone(), retried.clone(), lost.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let mut tries = 0;
                loop {
                    let r = http
                        .post(&url)
                        .bearer_auth(ADMIN_KEY)
                        .json(&json!({"texts": ["parliament passed the budget"]}))
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    match r {
                        Ok(resp) if resp.status().is_success() => {
                            ok.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        _ if tries < 5 => {
                            tries += 1;
                            retried.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        _ => {
                            lost.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_kill = ok.load(Ordering::SeqCst);
    c.replicas[1].server.take().unwrap().kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for t in clients {
        t.await.unwrap();
    }
    let (ok, retried, lost) = (
        ok.load(Ordering::SeqCst),
        retried.load(Ordering::SeqCst),
        lost.load(Ordering::SeqCst),
    );
    eprintln!("replicas: under load, a replica killed: {ok} requests answered, {retried} retried, {lost} lost");
    assert!(
        before_kill > 0 && ok > before_kill,
        "requests flowed before and after the kill"
    );
    assert_eq!(lost, 0, "no request lost");
    c.start_replica(1);

    // The database restarts: requests get 503 (not 500) while it is away, readiness
    // turns false, and everything recovers once it is back.
    c.pg.run("stop");
    // What a replica has cached (the key, the deployment) may still answer until its
    // change listener sees the connection gone and drops the cache (at once when the
    // database closes it; the cache's TTL at the latest); then 503, never a 500.
    let away = Instant::now();
    loop {
        let (status, v) = c.predict_on(0).await;
        if status == 503 {
            break;
        }
        assert_eq!(status, 200, "{v}");
        assert!(
            away.elapsed() < Duration::from_secs(15),
            "still answering from the cache"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = c.replica(0).call("GET", "/readyz", None, None).await;
    assert_eq!(status, 503);
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.pg.run("start");
    let back = Instant::now();
    loop {
        let (status, _, _) = c
            .call(
                "POST",
                "/api/v1/models/topics/predict",
                Some(json!({"texts": ["x"]})),
            )
            .await;
        if status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(60),
            "no recovery: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovery = back.elapsed();
    for i in 0..3 {
        let (status, _) = c.replica(i).call("GET", "/readyz", None, None).await;
        assert_eq!(status, 200, "replica {i} ready again");
    }
    eprintln!(
        "replicas: requests served again {:.2} s after the database came back",
        recovery.as_secs_f64()
    );

    // SIGTERM drains: the replica running a job hands it back (no attempt counted)
    // and another replica finishes it.
    let (status, job, _) = c
        .call(
            "POST",
            "/api/v1/jobs",
            Some(json!({"dataset": "topics", "model": "topics-2",
                        "config": {"architecture": "avgpool", "epochs": 1000, "embedding": {"init": "random"}}})),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let running = c
        .wait_job(&id, |j| j["status"] == "running", Duration::from_secs(60))
        .await;
    let holder = c.index_of_worker(running["worker"].as_str().unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await; // into the training proper
    c.replicas[holder].server.take().unwrap().stop();
    let done = c.wait_job_end(&id).await;
    let holder_log = std::fs::read_to_string(c.replicas[holder].data.path().join("server.log"))
        .unwrap_or_default();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["attempts"], 1,
        "a drained job does not count an attempt: {done}\n--- the drained replica's log ---\n{holder_log}"
    );
    assert_ne!(c.index_of_worker(done["worker"].as_str().unwrap()), holder);
}
