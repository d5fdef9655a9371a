//! Backups over the CLI and on a schedule: verify, wipe, restore and get the same
//! predictions, keys and audit chain; scheduled backups keep the newest; and, on the same
//! server, metrics behind a key (with the key-less scrape listener).

use serde_json::json;

use crate::common::{Server, ServerOptions, ADMIN_KEY};
use crate::security::{audit_verify, train_topics, walk};

fn backups_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p: &std::path::PathBuf| p.to_string_lossy().ends_with(".aiaas-backup"));
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_verify_wipe_restore_gives_the_same_predictions() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    train_topics(&server).await;
    let app_key = server.key(ADMIN_KEY, "default", "inference").await;
    let texts = json!({"texts": ["stock market and bank profit", "rain and wind tomorrow", "bake the bread in the oven"]});
    let (status, before) = server
        .call(
            "POST",
            "/api/v1/models/topics/predict",
            Some(&app_key),
            Some(texts.clone()),
        )
        .await;
    assert_eq!(status, 200, "{before}");
    // A bigger dataset, so a backup takes long enough to be killed half-way below.
    let mut big = String::from("text,label\n");
    while big.len() < 24 << 20 {
        big.push_str("the quarterly market report of the bank showed profit growth,finance\n");
        big.push_str("heavy rain and strong wind are forecast for tomorrow evening,weather\n");
    }
    let (status, v) = server.upload(ADMIN_KEY, "name=big", big.into_bytes()).await;
    assert_eq!(status, 201, "{v}");

    // Online: the server keeps running.
    let key_file = data.path().join("test-master.key");
    let create = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_aiaas"));
        c.args(["backup", "create", "--data-dir"])
            .arg(data.path())
            .arg("--out")
            .arg(out.path())
            .arg("--master-key-file")
            .arg(&key_file);
        c
    };
    let done = create().output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let archives = backups_in(out.path());
    assert_eq!(archives.len(), 1);
    let first = archives[0].clone();
    let verify = |archive: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aiaas"))
            .args(["backup", "verify"])
            .arg(archive)
            .arg("--master-key-file")
            .arg(&key_file)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(verify(&first));
    let raw = std::fs::read(&first).unwrap();
    assert!(
        !raw.windows(9).any(|w| w == b"quarterly"),
        "the archive is encrypted"
    );

    // A flipped bit or a cut archive does not verify.
    let bad = out.path().join("bad.bin");
    let mut flipped = raw.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    std::fs::write(&bad, &flipped).unwrap();
    assert!(!verify(&bad));
    std::fs::write(&bad, &raw[..raw.len() - 1000]).unwrap();
    assert!(!verify(&bad));
    std::fs::remove_file(&bad).unwrap();

    // kill -9 at several points of a backup: the earlier backup stays intact and every
    // archive with a backup's name verifies (a killed one leaves only a temp file).
    for delay_ms in [5u64, 20, 60, 150, 400] {
        let mut child = create().spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        for archive in backups_in(out.path()) {
            assert!(
                verify(&archive),
                "{} after a kill at {delay_ms} ms",
                archive.display()
            );
        }
        assert!(verify(&first));
    }
    // What a killed backup leaves is a hidden temp folder, never a file named like a
    // backup; its archive, cut anywhere before its end, does not verify.
    for leftover in walk(out.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("archive.tmp"))
    {
        assert!(leftover.to_string_lossy().contains("/.backup-"));
        let bytes = std::fs::read(&leftover).unwrap();
        let cut = out.path().join("cut.bin");
        for end in [
            bytes.len() / 3,
            bytes.len() * 2 / 3,
            bytes.len().saturating_sub(1),
        ] {
            std::fs::write(&cut, &bytes[..end]).unwrap();
            assert!(
                !verify(&cut),
                "a partial archive ({end} of {} bytes) verified",
                bytes.len()
            );
        }
        std::fs::remove_file(&cut).unwrap();
    }
    server.stop();

    // Wipe, restore into a new directory, start there.
    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_aiaas"))
        .args(["backup", "restore"])
        .arg(&first)
        .arg("--data-dir")
        .arg(&target)
        .arg("--master-key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // Restoring over a non-empty directory is refused.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_aiaas"))
        .args(["backup", "restore"])
        .arg(&first)
        .arg("--data-dir")
        .arg(&target)
        .arg("--master-key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    std::fs::copy(&key_file, target.join("test-master.key")).unwrap();
    drop(data);
    let server = Server::start(ServerOptions::new(&target));
    let (status, after) = server
        .call(
            "POST",
            "/api/v1/models/topics/predict",
            Some(&app_key),
            Some(texts),
        )
        .await;
    assert_eq!(status, 200, "the old inference key still works: {after}");
    assert_eq!(
        after["predictions"], before["predictions"],
        "byte-identical predictions"
    );
    let (status, v) = server
        .call(
            "GET",
            "/api/v1/datasets/big/preview?limit=2",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    server.stop();
    let audit = audit_verify(&target);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_keep_the_newest_and_metrics_need_a_key() {
    let data = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().to_str().unwrap().to_string();
    let server = Server::start(ServerOptions {
        extra_args: &[
            "--backup-every",
            "1s",
            "--backup-keep",
            "2",
            "--backup-dir",
            &dir,
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        ..ServerOptions::new(data.path())
    });
    // Metrics name every tenant's models: admin and metrics keys only, by default.
    let (status, _) = server.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 401);
    for role in ["owner", "developer", "inference"] {
        let key = server.key(ADMIN_KEY, "default", role).await;
        let (status, _) = server.call("GET", "/metrics", Some(&key), None).await;
        assert_eq!(status, 403, "{role}");
    }
    let scraper = server.key(ADMIN_KEY, "default", "metrics").await;
    for key in [ADMIN_KEY, scraper.as_str()] {
        let (status, v) = server.call("GET", "/metrics", Some(key), None).await;
        assert_eq!(status, 200);
        assert!(v
            .as_str()
            .unwrap_or_default()
            .contains("aiaas_http_requests_total"));
    }
    // A metrics key reads metrics and nothing else.
    let (status, _) = server
        .call("GET", "/api/v1/models", Some(&scraper), None)
        .await;
    assert_eq!(status, 403);
    // Only admins mint one: an owner cannot.
    let owner = server.key(ADMIN_KEY, "default", "owner").await;
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(&owner),
            Some(json!({"name": "s", "role": "metrics"})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    // The scrape listener serves /metrics without a key, and nothing else.
    let scrape = server
        .startup
        .iter()
        .find_map(|l| l.strip_prefix("metrics without a key on "))
        .expect("the scrape listener's address is printed")
        .trim()
        .to_string();
    let resp = server.http.get(&scrape).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("aiaas_http_requests_total"));
    let other = scrape.replace("/metrics", "/api/v1/models");
    let resp = server
        .http
        .get(&other)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        404,
        "the scrape listener serves nothing but metrics"
    );
    // Backups every second, two kept.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 4 && std::time::Instant::now() < deadline {
        for b in backups_in(backups.path()) {
            seen.insert(b);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(seen.len() >= 4, "backups written: {seen:?}");
    let left = backups_in(backups.path());
    assert!(left.len() <= 2, "only the newest two are kept: {left:?}");
    server.stop();
    let key_file = data.path().join("test-master.key");
    for b in backups_in(backups.path()) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiaas"))
            .args(["backup", "verify"])
            .arg(&b)
            .arg("--master-key-file")
            .arg(&key_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            b.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
