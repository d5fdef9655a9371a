//! Data protection over HTTP and the CLI: the audit log (who, what, from where, outcome;
//! a hash chain that `aiaas audit verify` checks, catching edited and deleted entries),
//! PII masking as an endpoint and in the server's log.

use serde_json::{json, Value};

use crate::common::{cli, Server, ServerOptions, ADMIN_KEY};

pub(crate) fn audit_verify(data_dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_aiaas"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run aiaas audit verify")
}

/// Change the database behind the server's back, as an attacker with file access would
/// (Python's sqlite3 module: no extra tool to install).
fn run_sql(db: &std::path::Path, statement: &str) {
    let status = std::process::Command::new("python3")
        .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"])
        .arg(db)
        .arg(statement)
        .status()
        .expect("python3");
    assert!(status.success(), "{statement}");
}

async fn entries(server: &Server, key: &str, query: &str) -> Vec<Value> {
    let (status, v) = server
        .call("GET", &format!("/api/v1/audit{query}"), Some(key), None)
        .await;
    assert_eq!(status, 200, "{v}");
    v["entries"].as_array().expect("entries").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_records_denials_and_changes_and_detects_tampering() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    server.tenant("acme").await;
    server.tenant("rival").await;
    let owner = server.key(ADMIN_KEY, "acme", "owner").await;
    let rival_owner = server.key(ADMIN_KEY, "rival", "owner").await;
    let inference = server.key(&owner, "acme", "inference").await;
    let developer = server.key(&owner, "acme", "developer").await;

    // A wrong key, a forbidden call, a failed change.
    let (status, _) = server
        .call(
            "GET",
            "/api/v1/models",
            Some("aiaas_0000000000000000000000000000000000000000000000000000000000000000"),
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(&inference),
            Some(json!({"name": "x", "role": "inference"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = server
        .call(
            "DELETE",
            "/api/v1/datasets/no-such-dataset",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, 404);

    let all = entries(&server, ADMIN_KEY, "").await;
    let find = |action: &str| {
        all.iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect::<Vec<_>>()
    };
    let failed_auth = find("auth.failed");
    assert_eq!(failed_auth.len(), 1, "{all:#?}");
    assert_eq!(failed_auth[0]["outcome"], "denied");
    assert_eq!(failed_auth[0]["source"], "127.0.0.1");
    assert!(failed_auth[0]["key_id"].is_null());
    let denied = find("access.denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["role"], "inference");
    assert_eq!(denied[0]["target"], "/api/v1/keys");
    // Key creations (three by the admin, one by the owner) and tenants are changes.
    assert_eq!(find("POST /api/v1/keys").len(), 4, "{all:#?}");
    assert_eq!(find("POST /api/v1/tenants").len(), 2);
    let failed = find("DELETE /api/v1/datasets/{id}");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["outcome"], "failed");
    // Reads and model calls are not audited.
    assert!(all.iter().all(|e| e["action"] != "GET /api/v1/models"));
    // seq counts from 1, each entry points at the one before.
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["seq"], json!(i as i64 + 1));
        if i > 0 {
            assert_eq!(e["prev_hash"], all[i - 1]["hash"]);
        }
    }

    // Owners see their tenant's entries only; developers none; filters work.
    let acme = entries(&server, &owner, "").await;
    assert!(!acme.is_empty());
    let acme_tenant = acme[0]["tenant_id"].clone();
    assert!(acme.iter().all(|e| e["tenant_id"] == acme_tenant));
    let rival = entries(&server, &rival_owner, "").await;
    assert!(rival.iter().all(|e| e["tenant_id"] != acme_tenant));
    let (status, _) = server
        .call("GET", "/api/v1/audit", Some(&developer), None)
        .await;
    assert_eq!(status, 403);
    let denials = entries(&server, ADMIN_KEY, "?outcome=denied").await;
    assert_eq!(
        denials.len(),
        2 + 1,
        "the developer's refused read is a denial too: {denials:#?}"
    );
    let keys_only = entries(&server, ADMIN_KEY, "?action=POST%20/api/v1/keys").await;
    assert_eq!(keys_only.len(), 4);
    let (status, v) = server
        .call("GET", "/api/v1/audit?outcome=maybe", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 400, "{v}");

    // Export: JSON lines, one per entry.
    let resp = server
        .http
        .get(server.url("/api/v1/audit/export"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(lines.len() >= all.len());
    assert_eq!(lines[0]["seq"], 1);
    let out = cli(
        &server,
        ADMIN_KEY,
        &["audit", "export", "--outcome", "denied"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);

    // The chain verifies, over HTTP (admins only) and from the data directory.
    let (status, v) = server
        .call("GET", "/api/v1/audit/verify", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["ok"], true, "{v}");
    let (status, _) = server
        .call("GET", "/api/v1/audit/verify", Some(&owner), None)
        .await;
    assert_eq!(status, 403);
    server.stop();

    let ok = audit_verify(data.path());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("audit chain intact"));

    // Edit one entry in the database: caught.
    let db = data.path().join("metadata.db");
    let sql = |statement: &str| {
        run_sql(&db, statement);
    };
    sql("UPDATE audit_log SET outcome = 'success' WHERE action = 'auth.failed'");
    let edited = audit_verify(data.path());
    assert!(!edited.status.success());
    let report = String::from_utf8_lossy(&edited.stdout);
    assert!(report.contains("was edited"), "{report}");
    sql("UPDATE audit_log SET outcome = 'denied' WHERE action = 'auth.failed'");
    assert!(
        audit_verify(data.path()).status.success(),
        "restoring the value restores the chain"
    );

    // Delete an entry in the middle: caught; delete the newest: caught by the head file.
    sql("DELETE FROM audit_log WHERE seq = 3");
    let gap = audit_verify(data.path());
    assert!(!gap.status.success());
    assert!(String::from_utf8_lossy(&gap.stdout).contains("missing"));
    let data2 = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data2.path()));
    let _ = server.key(ADMIN_KEY, "default", "developer").await;
    let _ = server.key(ADMIN_KEY, "default", "inference").await;
    server.stop();
    assert!(audit_verify(data2.path()).status.success());
    let db2 = data2.path().join("metadata.db");
    run_sql(
        &db2,
        "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)",
    );
    let truncated = audit_verify(data2.path());
    assert!(!truncated.status.success());
    assert!(String::from_utf8_lossy(&truncated.stdout).contains("newest entries were deleted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_endpoint_and_masked_logs() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let text = "客户张伟，电话 138 1234 5678，邮箱 zhang.wei@example.cn，卡号 6222 0212 3456 7894，from 203.0.113.9";
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/privacy/mask",
            Some(ADMIN_KEY),
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let masked = v["text"].as_str().unwrap();
    for secret in ["1234 5678", "zhang.wei", "0212 3456", "113.9"] {
        assert!(!masked.contains(secret), "{secret} left in {masked}");
    }
    assert!(
        masked.contains("5678"),
        "mask mode keeps the shape: {masked}"
    );
    assert_eq!(v["counts"]["phone"], 1, "{v}");
    assert_eq!(v["counts"]["email"], 1);
    assert_eq!(v["counts"]["bank_card"], 1);
    assert_eq!(v["counts"]["ipv4"], 1);
    assert_eq!(
        v["findings"].as_array().unwrap().len(),
        v["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>() as usize
    );

    let (status, v) = server
        .call(
            "POST",
            "/api/v1/privacy/mask",
            Some(ADMIN_KEY),
            Some(json!({"texts": ["call +44 20 7946 0958", "none here"], "mode": "label"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["text"], "call [PHONE]");
    assert_eq!(v["results"][1]["text"], "none here");

    // Pseudonyms: the same number written two ways is one token within a tenant, and a
    // different token in another tenant.
    let pseudo = |key: String, t: &'static str| {
        let server = &server;
        async move {
            let (status, v) = server
                .call(
                    "POST",
                    "/api/v1/privacy/mask",
                    Some(&key),
                    Some(json!({"text": t, "mode": "pseudonymise"})),
                )
                .await;
            assert_eq!(status, 200, "{v}");
            v["text"].as_str().unwrap().to_string()
        }
    };
    let a = pseudo(ADMIN_KEY.to_string(), "13812345678").await;
    let b = pseudo(ADMIN_KEY.to_string(), "138-1234-5678").await;
    assert!(a.starts_with("[PHONE:"), "{a}");
    assert_eq!(a, b);
    server.tenant("other").await;
    let other = server.key(ADMIN_KEY, "other", "inference").await;
    assert_ne!(pseudo(other.clone(), "13812345678").await, a);
    let mode = std::fs::metadata(data.path().join("pseudonym.key")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    // Bad requests say what to fix.
    for (body, needle) in [
        (json!({"text": "x", "mode": "hide"}), "mode"),
        (json!({"text": "x", "kinds": ["passport"]}), "kind"),
        (json!({"text": "x", "texts": ["y"]}), "either"),
    ] {
        let (status, v) = server
            .call("POST", "/api/v1/privacy/mask", Some(&other), Some(body))
            .await;
        assert_eq!(status, 400, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{v}"
        );
    }
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/privacy/mask",
            None,
            Some(json!({"text": "x"})),
        )
        .await;
    assert_eq!(status, 401);

    // Audit targets are masked.
    let (status, _) = server
        .call(
            "DELETE",
            "/api/v1/datasets/jane.doe@example.org",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let all = entries(&server, ADMIN_KEY, "?action=DELETE").await;
    assert_eq!(all.len(), 1);
    let target = all[0]["target"].as_str().unwrap();
    assert!(
        !target.contains("jane.doe"),
        "audit targets are masked: {target}"
    );

    // The server logs a pulled model's source path; an e-mail address in it is masked.
    let gguf = crate::common::test_data().join("models/smollm2-135m-instruct.gguf");
    assert!(gguf.is_file(), "run scripts/setup.sh --test");
    let odd = data.path().join("jane.doe@example.org");
    std::fs::create_dir_all(&odd).unwrap();
    // A copy, not a link: the pull records the resolved path.
    std::fs::copy(&gguf, odd.join("model.gguf")).unwrap();
    let (status, v) = server
        .pull_as(odd.join("model.gguf").to_str().unwrap(), Some("masked-log"))
        .await;
    assert!(status == 200 || status == 201, "{v}");
    server.stop();
    let log = std::fs::read_to_string(data.path().join("server.log")).unwrap();
    assert!(log.contains("model pulled"), "{log}");
    assert!(
        log.contains("@example.org"),
        "the mask keeps the domain: {log}"
    );
    assert!(!log.contains("jane.doe@example.org"), "{log}");
}

/// Every stored object under `<data>/artifacts` (full paths).
fn artifact_files(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    // Hidden names are the store's own (temp files, the migration marker), not objects.
    walk(&data.join("artifacts"))
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect()
}

/// The `topics` classifier, trained and deployed on the synthetic data set `topics-data`.
pub(crate) async fn train_topics(server: &Server) {
    crate::common::train_small(
        server,
        ADMIN_KEY,
        "topics-data",
        "topics",
        json!({"architecture": "avgpool", "epochs": 3}),
    )
    .await;
}

/// A short greedy completion from the library model `chat`.
async fn complete_chat(server: &Server) -> (u16, Value) {
    let (status, v) = server
        .call(
            "POST",
            "/v1/completions",
            Some(ADMIN_KEY),
            Some(json!({"model": "chat", "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0})),
        )
        .await;
    let text = if status == 200 {
        v["choices"][0]["text"].clone()
    } else {
        v
    };
    (status, text)
}

/// The first rows of the stored `topics-data` data set.
async fn preview_topics(server: &Server) -> (u16, Value) {
    server
        .call(
            "GET",
            "/api/v1/datasets/topics-data/preview?limit=5",
            Some(ADMIN_KEY),
            None,
        )
        .await
}

async fn predict_label(server: &Server, text: &str) -> (u16, Value) {
    server
        .call(
            "POST",
            "/api/v1/models/topics/predict",
            Some(ADMIN_KEY),
            Some(json!({"texts": [text]})),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_encrypted_tamper_is_refused_and_the_master_key_rotates() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    train_topics(&server).await;
    let (status, before) = predict_label(&server, "stock market and bank profit").await;
    assert_eq!(status, 200, "{before}");
    // A library model's weights are sealed too, and still load.
    let gguf = crate::common::test_data().join("models/smollm2-135m-instruct.gguf");
    let (status, v) = server.pull_as(gguf.to_str().unwrap(), Some("chat")).await;
    assert_eq!(status, 201, "{v}");
    let weights = data.path().join("models/chat/model.gguf");
    let sealed = std::fs::read(&weights).unwrap();
    assert_eq!(&sealed[..8], b"AIAASENC");
    let plain = std::fs::read(&gguf).unwrap();
    assert!(
        sealed[121..4217] != plain[..4096],
        "the weights are not stored as they came"
    );
    let reply_before = complete_chat(&server).await;
    assert_eq!(reply_before.0, 200, "{}", reply_before.1);

    // On disk: only ciphertext. The CSV's words and the model's JSON never appear.
    let files = artifact_files(data.path());
    assert!(files.len() >= 3, "dataset + model files: {files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(&bytes[..8], b"AIAASENC", "{}", f.display());
        for needle in [&b"forecast"[..], b"architecture", b"weather"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} leaks {:?}",
                f.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
    let key_file = data.path().join("test-master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // A flipped bit in the stored dataset: refused with a clear error, never served.
    let dataset = files
        .iter()
        .find(|f| f.to_string_lossy().contains("/datasets/"))
        .unwrap()
        .clone();
    let good = std::fs::read(&dataset).unwrap();
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x01;
    std::fs::write(&dataset, &bad).unwrap();
    let (status, v) = preview_topics(&server).await;
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"]["code"], "data_integrity", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("integrity check"),
        "{v}"
    );
    // Truncated (the last chunk gone): refused too.
    std::fs::write(&dataset, &good[..good.len() - 20]).unwrap();
    let (status, v) = preview_topics(&server).await;
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"]["code"], "data_integrity");
    // Training on it fails with the reason, instead of learning from damaged data.
    let (status, job) = server
        .call(
            "POST",
            "/api/v1/jobs",
            Some(ADMIN_KEY),
            Some(json!({"dataset": "topics-data", "model": "other", "config": {"epochs": 1}})),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job = server
        .wait_for_job(
            ADMIN_KEY,
            job["id"].as_str().unwrap(),
            std::time::Duration::from_secs(120),
        )
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("integrity"),
        "{job}"
    );
    std::fs::write(&dataset, &good).unwrap();
    let (status, v) = preview_topics(&server).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rows"].as_array().unwrap().len(), 5);
    server.stop();

    // Rotate the master key: every artifact re-wrapped, payloads untouched.
    let header_key = |f: &std::path::Path| {
        String::from_utf8_lossy(&std::fs::read(f).unwrap()[29..61])
            .trim_end_matches('\0')
            .to_string()
    };
    let old_id = header_key(&files[0]);
    let payload = |f: &std::path::Path| std::fs::read(f).unwrap()[121..].to_vec();
    let payloads: Vec<_> = files.iter().map(|f| payload(f)).collect();
    let rotate = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aiaas"))
            .args(["keys", "rotate-master", "--data-dir"])
            .arg(data.path())
            .arg("--master-key-file")
            .arg(&key_file)
            .args(extra)
            .env_remove("AIAAS_API_KEY")
            .output()
            .unwrap()
    };
    let out = rotate(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(&format!("re-wrapped objects:    {}", files.len() + 1)),
        "artifacts and the model's weights: {text}"
    );
    assert_ne!(header_key(&weights), old_id);
    for (f, p) in files.iter().zip(&payloads) {
        assert_ne!(header_key(f), old_id, "{}", f.display());
        assert_eq!(&payload(f), p, "the payload is not re-encrypted");
    }
    // Then retire the old key: the ring no longer holds it and everything still reads.
    let out = rotate(&["--retire-old"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&old_id));
    assert!(!std::fs::read_to_string(&key_file)
        .unwrap()
        .contains(&old_id));
    let server = Server::start(ServerOptions::new(data.path()));
    let (status, after) = predict_label(&server, "stock market and bank profit").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        after["predictions"], before["predictions"],
        "same model, same answer after rotation"
    );
    assert_eq!(complete_chat(&server).await, reply_before);
    let (status, _) = preview_topics(&server).await;
    assert_eq!(status, 200);
    server.stop();

    // Damaged weights are refused when the model loads, with the reason.
    let good = std::fs::read(&weights).unwrap();
    let mut bad = good.clone();
    let at = bad.len() / 3;
    bad[at] ^= 0x10;
    std::fs::write(&weights, &bad).unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let (status, v) = complete_chat(&server).await;
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"]["code"], "data_integrity", "{v}");
    server.stop();
    std::fs::write(&weights, &good).unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    assert_eq!(complete_chat(&server).await, reply_before);
    server.stop();

    // A wrong master key opens nothing (and says which key is missing).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiaas"))
        .args(["keys", "rotate-master", "--data-dir"])
        .arg(data.path())
        .arg("--master-key-file")
        .arg(data.path().join("no-such.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no master key file"));
}

#[test]
fn the_default_master_key_file_lives_beside_the_data_directory() {
    use std::io::{BufRead, BufReader};
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aiaas"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-demo",
            "--data-dir",
        ])
        .arg(&data)
        .env("AIAAS_ADMIN_KEY", ADMIN_KEY)
        .env_remove("AIAAS_MASTER_KEY")
        .env_remove("AIAAS_MASTER_KEY_FILE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut said = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.starts_with("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let key = parent.path().join("data.master-key");
    assert!(key.is_file(), "{said}");
    assert!(
        said.contains("created the master key file") && said.contains("data.master-key"),
        "{said}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(!data.join("data.master-key").exists());
}

pub(crate) fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_client_trickling_its_headers_is_cut_off() {
    use std::io::{BufRead, BufReader, Read, Write};
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aiaas"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-demo",
            "--data-dir",
        ])
        .arg(data.path())
        .arg("--master-key-file")
        .arg(data.path().join("test-master.key"))
        .env("AIAAS_ADMIN_KEY", ADMIN_KEY)
        .env("AIAAS_HEADER_TIMEOUT_SECS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut addr = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("listening on http://") {
            addr = a.trim().to_string();
            break;
        }
    }
    // Headers sent slowly and never finished: the server hangs up.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(15),
        "not cut off: {waited:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // A complete request on a new connection is served.
    let mut ok = std::net::TcpStream::connect(&addr).unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    ok.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_uploads_can_be_masked_and_report_what_was_found() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let mut csv = String::from("text,label\n");
    for i in 0..6 {
        csv.push_str(&format!(
            "\"call me on 138 1234 56{i:02} about the invoice\",billing\n"
        ));
        csv.push_str(&format!(
            "\"write to user{i}@example.com, my card is 6222 0212 3456 7894\",billing\n"
        ));
        csv.push_str("\"the weather is fine today\",chat\n");
        csv.push_str("\"see you tomorrow at noon\",chat\n");
    }
    let (status, v) = server
        .upload(
            ADMIN_KEY,
            "name=support&mask_pii=label",
            csv.clone().into_bytes(),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["stats"]["pii"]["mode"], "label", "{v}");
    assert_eq!(v["stats"]["pii"]["found"]["phone"], 6, "{v}");
    assert_eq!(v["stats"]["pii"]["found"]["email"], 6);
    assert_eq!(v["stats"]["pii"]["found"]["bank_card"], 6);
    assert_eq!(v["row_count"], 24);
    let (status, p) = server
        .call(
            "GET",
            "/api/v1/datasets/support/preview?limit=24",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 200, "{p}");
    let text = p.to_string();
    assert!(
        text.contains("[PHONE]") && text.contains("[EMAIL]") && text.contains("[BANK_CARD]"),
        "{text}"
    );
    for secret in ["1234 56", "@example.com", "6222 0212"] {
        assert!(!text.contains(secret), "{secret} stored: {text}");
    }
    // Unmasked uploads keep the data and report nothing.
    let (status, v) = server.upload(ADMIN_KEY, "name=raw", csv.into_bytes()).await;
    assert_eq!(status, 201);
    assert!(v["stats"]["pii"].is_null());
    let (status, v) = server
        .upload(
            ADMIN_KEY,
            "name=bad&mask_pii=hide",
            b"text,label\na,b\nc,d\n".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    server.stop();
}
