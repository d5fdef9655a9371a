//! The artifact stores against one contract (local files and S3 alike), and the S3
//! backend against a real S3 server running in-process: s3s with its file-system backend
//! (s3s-fs 0.14), objects as files in a temp dir, SigV4 checked, served by hyper on
//! 127.0.0.1.
//!
//! What s3s-fs 0.14 does with conditional writes: it honours `If-None-Match: *` and
//! `If-Match` on PutObject and on CompleteMultipartUpload (412 PreconditionFailed), but
//! as check-then-write, not atomically: two creates of one key that race can both pass
//! the check. So the race test here only asserts what holds anyway (every loser is a
//! conflict, the object is one writer's whole object); "exactly one wins" is asserted
//! against a real S3 (`real_s3_when_configured`), whose conditional writes are atomic.
//!
//! `real_s3_when_configured` runs the same checks against a bucket of your own when
//! `AIAAS_TEST_S3_URL=s3://bucket/prefix` is set (with `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`, `AIAAS_TEST_S3_REGION`
//! (default us-east-1), `AIAAS_TEST_S3_ENDPOINT` and `AIAAS_TEST_S3_PATH_STYLE=1` for
//! MinIO and the like); it writes under a fresh sub-prefix and deletes it afterwards.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use aiaas_crypto::KeyRing;
use aiaas_store::{
    crypto_failure, ArtifactStore, LocalArtifacts, MasterKeys, S3Artifacts, S3Config,
    S3Credentials, StoreError,
};

const BUCKET: &str = "aiaas-test";
const PREFIX: &str = "deploy/artifacts";

/// The s3s-fs server of one test (aiaas-testkit), with its bucket `aiaas-test`; its
/// folder (the second field, held only to be dropped) is removed after the server stops
/// (fields drop in order).
struct Server(
    aiaas_testkit::S3Server,
    #[allow(dead_code)] tempfile::TempDir,
);

impl Server {
    fn start() -> Server {
        let root = tempfile::tempdir().unwrap();
        let server = aiaas_testkit::S3Server::start_at(root.path(), "127.0.0.1:0", BUCKET).unwrap();
        Server(server, root)
    }

    fn root(&self) -> &Path {
        self.0.root()
    }

    fn config(&self) -> S3Config {
        S3Config {
            endpoint: Some(self.0.endpoint.clone()),
            region: "us-east-1".into(),
            bucket: BUCKET.into(),
            prefix: PREFIX.into(),
            credentials: Some(S3Credentials::new(
                aiaas_testkit::ACCESS_KEY,
                aiaas_testkit::SECRET_KEY,
            )),
            path_style: true,
        }
    }

    fn store(&self, keys: Arc<MasterKeys>, scratch: &Path) -> S3Artifacts {
        S3Artifacts::open(self.config(), keys, scratch).unwrap()
    }

    /// Where s3s-fs keeps artifact `key`'s object.
    fn object_path(&self, key: &str) -> PathBuf {
        self.root().join(BUCKET).join(PREFIX).join(key)
    }

    /// Files s3s-fs keeps for multipart uploads in progress.
    fn upload_leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".upload"))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.root());
    }
}

fn fresh_keys() -> Arc<MasterKeys> {
    Arc::new(MasterKeys::new(KeyRing::generate().unwrap(), None))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect()
}

fn is_not_found(result: Result<Vec<u8>, StoreError>) -> bool {
    matches!(result, Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound)
}

/// What every artifact store does, whatever it stores on. `store` must be empty;
/// `scratch` is a folder for the test's own files.
fn artifact_contract(store: &dyn ArtifactStore, scratch: &Path) {
    // Round trips, the empty object included.
    store.put("c/one/a.bin", b"alpha").unwrap();
    assert_eq!(store.get("c/one/a.bin").unwrap(), b"alpha");
    store.put("c/empty", b"").unwrap();
    assert_eq!(store.get("c/empty").unwrap(), b"");
    let data = pattern(300_000);
    store.put_reader("c/one/b.csv", &mut &data[..]).unwrap();
    let mut reader = store.open("c/one/b.csv").unwrap();
    let mut streamed = Vec::new();
    reader.read_to_end(&mut streamed).unwrap();
    assert_eq!(streamed, data);
    assert_eq!(store.verify("c/one/b.csv").unwrap(), data.len() as u64);

    // put_file consumes the file.
    let upload = scratch.join("upload.tmp");
    std::fs::write(&upload, b"from a file").unwrap();
    store.put_file("c/two/f.txt", &upload).unwrap();
    assert!(!upload.exists());
    assert_eq!(store.get("c/two/f.txt").unwrap(), b"from a file");

    // Sealed files go in and out as they are (library weights, sealed at the pull).
    let sealed = scratch.join("sealed.bin");
    store.get_sealed("c/two/f.txt", &sealed).unwrap();
    assert!(aiaas_crypto::is_encrypted(&std::fs::read(&sealed).unwrap()));
    store.put_sealed("c/three/g.bin", &sealed).unwrap();
    assert!(sealed.exists());
    assert_eq!(store.get("c/three/g.bin").unwrap(), b"from a file");
    let plain = scratch.join("plain.bin");
    std::fs::write(&plain, b"not sealed").unwrap();
    assert!(matches!(
        store.put_sealed("c/three/h.bin", &plain),
        Err(StoreError::Integrity { .. })
    ));
    assert!(store
        .get_sealed("c/missing", &scratch.join("nothing"))
        .is_err());

    // A failed read stores nothing.
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("the upload broke off"));
            }
            let n = self.0.min(buf.len());
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }
    assert!(store.put_reader("c/failed", &mut Failing(100_000)).is_err());
    assert!(is_not_found(store.get("c/failed")));

    // Keys: every object, sorted, relative.
    store.put("c/onex", b"a sibling, not a child").unwrap();
    assert_eq!(
        store.keys().unwrap(),
        [
            "c/empty",
            "c/one/a.bin",
            "c/one/b.csv",
            "c/onex",
            "c/three/g.bin",
            "c/two/f.txt"
        ]
    );

    // Deleting a prefix removes the object and everything under prefix/, not siblings.
    store.delete_prefix("c/one").unwrap();
    assert!(is_not_found(store.get("c/one/a.bin")));
    assert!(is_not_found(store.get("c/one/b.csv")));
    assert_eq!(store.get("c/onex").unwrap(), b"a sibling, not a child");
    store.delete_prefix("c/onex").unwrap();
    assert!(is_not_found(store.get("c/onex")));
    store.delete_prefix("c/never-written").unwrap();
    assert_eq!(
        store.keys().unwrap(),
        ["c/empty", "c/three/g.bin", "c/two/f.txt"]
    );

    // A missing object is a NotFound I/O error, on every read path.
    assert!(is_not_found(store.get("c/missing")));
    match store.open("c/missing") {
        Err(StoreError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("opened a missing object"),
    }
    assert!(matches!(
        store.verify("c/missing"),
        Err(StoreError::Io { .. })
    ));

    // Keys cannot escape: the same rule everywhere.
    for bad in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        "",
        "a/b c",
        "a/.hidden",
        "a/",
    ] {
        assert!(
            matches!(store.put(bad, b"x"), Err(StoreError::InvalidKey(_))),
            "{bad}"
        );
        assert!(
            matches!(store.get(bad), Err(StoreError::InvalidKey(_))),
            "{bad}"
        );
        assert!(
            matches!(store.delete_prefix(bad), Err(StoreError::InvalidKey(_))),
            "{bad}"
        );
    }

    // Objects written under the active key need no re-wrap.
    assert!(!store.rewrap("c/two/f.txt").unwrap());
}

#[test]
fn local_artifacts_meet_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalArtifacts::open(&dir.path().join("artifacts"), fresh_keys()).unwrap();
    assert!(!store.is_shared());
    artifact_contract(&store, dir.path());
}

#[test]
fn s3_artifacts_meet_the_contract() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let store = server.store(fresh_keys(), &scratch);
    store.check().unwrap();
    assert!(store.is_shared());
    artifact_contract(&store, dir.path());

    // The server only ever holds ciphertext, in the local format.
    store.put("secret/plain.txt", b"attack at dawn").unwrap();
    let raw = std::fs::read(server.object_path("secret/plain.txt")).unwrap();
    assert!(aiaas_crypto::is_encrypted(&raw));
    assert!(!raw.windows(6).any(|w| w == b"attack"));
    assert_eq!(
        raw.len() as u64,
        aiaas_crypto::ciphertext_len(14, aiaas_crypto::DEFAULT_CHUNK_SIZE)
    );
    // Nothing is left in the scratch folder (its files are unlinked while open).
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
}

#[test]
fn existing_objects_are_not_replaced_unless_asked() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = fresh_keys();
    let store = server.store(keys.clone(), dir.path());
    store.put("models/t/m/job-1/weights.bin", b"first").unwrap();
    let err = store
        .put("models/t/m/job-1/weights.bin", b"second")
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(
        err.to_string().contains("models/t/m/job-1/weights.bin"),
        "{err}"
    );
    assert!(matches!(
        store.put_reader("models/t/m/job-1/weights.bin", &mut &b"third"[..]),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get("models/t/m/job-1/weights.bin").unwrap(), b"first");

    let replacing = server.store(keys, dir.path()).with_overwrite(true);
    replacing
        .put("models/t/m/job-1/weights.bin", b"second")
        .unwrap();
    assert_eq!(
        store.get("models/t/m/job-1/weights.bin").unwrap(),
        b"second"
    );
}

#[test]
fn large_objects_go_up_in_parts() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    // s3s-fs, like S3, refuses parts under 5 MiB but the last: 12 MiB is three parts.
    let store = server
        .store(fresh_keys(), dir.path())
        .with_multipart_threshold(1 << 20)
        .with_part_size(5 << 20);
    let data = pattern(12 << 20);
    store
        .put_reader("datasets/t/big/data.csv", &mut &data[..])
        .unwrap();
    assert_eq!(store.get("datasets/t/big/data.csv").unwrap(), data);
    let mut streamed = Vec::new();
    store
        .open("datasets/t/big/data.csv")
        .unwrap()
        .read_to_end(&mut streamed)
        .unwrap();
    assert!(streamed == data);
    assert_eq!(
        store.verify("datasets/t/big/data.csv").unwrap(),
        data.len() as u64
    );
    let raw = std::fs::read(server.object_path("datasets/t/big/data.csv")).unwrap();
    assert_eq!(
        raw.len() as u64,
        aiaas_crypto::ciphertext_len(data.len() as u64, aiaas_crypto::DEFAULT_CHUNK_SIZE)
    );
    assert!(aiaas_crypto::is_encrypted(&raw));
    assert!(server.upload_leftovers().is_empty());

    // CompleteMultipartUpload carries If-None-Match too; the refused upload is aborted.
    let err = store.put("datasets/t/big/data.csv", &data).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(
        server.upload_leftovers().is_empty(),
        "{:?}",
        server.upload_leftovers()
    );
    assert_eq!(store.get("datasets/t/big/data.csv").unwrap(), data);
}

#[test]
fn listing_follows_continuation_tokens() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let store = server
        .store(fresh_keys(), dir.path())
        .with_list_page_size(2);
    let mut expected = Vec::new();
    for i in 0..7 {
        let key = format!("d/{i}/data.jsonl");
        store.put(&key, key.as_bytes()).unwrap();
        expected.push(key);
    }
    // Outside the store's prefix: not its object.
    std::fs::create_dir_all(server.root().join(BUCKET).join("elsewhere")).unwrap();
    std::fs::write(server.root().join(BUCKET).join("elsewhere/x"), b"x").unwrap();
    assert_eq!(store.keys().unwrap(), expected);
    store.delete_prefix("d").unwrap();
    assert!(store.keys().unwrap().is_empty());
}

#[test]
fn tampered_and_truncated_objects_are_refused() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let store = server.store(fresh_keys(), dir.path());
    let data = pattern(200_000);
    store.put("d/data.csv", &data).unwrap();
    let path = server.object_path("d/data.csv");
    let good = std::fs::read(&path).unwrap();

    let mut bad = good.clone();
    bad[70_000] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(
        store.get("d/data.csv"),
        Err(StoreError::Integrity { .. })
    ));
    assert!(matches!(
        store.verify("d/data.csv"),
        Err(StoreError::Integrity { .. })
    ));
    // Streaming: the chunks before the damaged one come out, then the error.
    let mut reader = store.open("d/data.csv").unwrap();
    let mut out = Vec::new();
    let err = reader.read_to_end(&mut out).unwrap_err();
    assert!(crypto_failure(&err).is_some());
    assert!(out.len() < 70_000 && data.starts_with(&out));

    std::fs::write(&path, &good[..good.len() - 100]).unwrap();
    assert!(matches!(
        store.get("d/data.csv"),
        Err(StoreError::Integrity { .. })
    ));
    std::fs::write(&path, b"{\"planted\": true}").unwrap();
    assert!(matches!(
        store.get("d/data.csv"),
        Err(StoreError::Integrity { .. })
    ));
    assert!(matches!(
        store.rewrap("d/data.csv"),
        Err(StoreError::Integrity { .. })
    ));

    std::fs::write(&path, &good).unwrap();
    assert_eq!(store.get("d/data.csv").unwrap(), data);
}

#[test]
fn rewrap_moves_objects_to_the_new_master_key() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master-keys.json");
    let ring = KeyRing::create_file(&key_file).unwrap();
    let old_id = ring.active_id().clone();
    let keys = Arc::new(MasterKeys::new(ring, Some(key_file.clone())));
    let store = server
        .store(keys.clone(), &dir.path().join("a"))
        .with_multipart_threshold(1 << 20)
        .with_part_size(5 << 20);
    let big = pattern(6 << 20);
    store.put("m/config.json", b"{\"labels\": 2}").unwrap();
    store.put("m/weights.bin", &big).unwrap();
    assert!(!store.rewrap("m/config.json").unwrap());

    // Another replica, which loaded the key file before the rotation.
    let other_keys = Arc::new(MasterKeys::new(
        KeyRing::load_file(&key_file).unwrap(),
        Some(key_file.clone()),
    ));
    let other = server.store(other_keys, &dir.path().join("b"));

    // What `aiaas keys rotate-master` does: a new active key in the file.
    let mut ring = KeyRing::load_file(&key_file).unwrap();
    let new_id = ring.rotate().unwrap();
    ring.save_file(&key_file).unwrap();
    assert!(keys.reload().unwrap());

    for key in ["m/config.json", "m/weights.bin"] {
        let raw = std::fs::read(server.object_path(key)).unwrap();
        assert_eq!(aiaas_crypto::header_key_id(&raw[..]).unwrap(), old_id);
        assert!(store.rewrap(key).unwrap(), "{key}");
        assert!(!store.rewrap(key).unwrap(), "{key}");
        let rewritten = std::fs::read(server.object_path(key)).unwrap();
        assert_eq!(aiaas_crypto::header_key_id(&rewritten[..]).unwrap(), new_id);
        // Only the header's wrap changed: the chunks are the same bytes.
        assert_eq!(rewritten.len(), raw.len());
        assert!(
            rewritten[..29] == raw[..29],
            "the header's bound part changed"
        );
        let chunks = aiaas_crypto::HEADER_LEN;
        assert!(rewritten[chunks..] == raw[chunks..], "the chunks changed");
    }
    assert_eq!(store.get("m/weights.bin").unwrap(), big);
    // The other replica meets a key it does not know yet: it reloads the file once.
    assert_eq!(other.get("m/weights.bin").unwrap(), big);
    assert_eq!(other.get("m/config.json").unwrap(), b"{\"labels\": 2}");
    assert!(server.upload_leftovers().is_empty());
}

#[test]
fn wrong_settings_are_clear_errors() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let open = |config: S3Config| S3Artifacts::open(config, fresh_keys(), dir.path()).unwrap();
    let kind_of = |err: &StoreError| match err {
        StoreError::Io { source, .. } => source.kind(),
        other => panic!("{other:?}"),
    };

    let mut wrong_secret = server.config();
    wrong_secret.credentials = Some(S3Credentials::new(
        aiaas_testkit::ACCESS_KEY,
        "not-the-secret",
    ));
    let store = open(wrong_secret);
    let err = store.check().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("cannot reach the S3 bucket aiaas-test at http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("secret key"), "{text}");
    assert_eq!(kind_of(&err), std::io::ErrorKind::PermissionDenied);
    let err = store.put("x/y", b"z").unwrap_err();
    assert_eq!(kind_of(&err), std::io::ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("access key"), "{err}");

    let mut unknown_key = server.config();
    unknown_key.credentials = Some(S3Credentials::new("NOBODY", aiaas_testkit::SECRET_KEY));
    let err = open(unknown_key).check().unwrap_err();
    assert_eq!(kind_of(&err), std::io::ErrorKind::PermissionDenied, "{err}");

    let mut no_bucket = server.config();
    no_bucket.bucket = "no-such-bucket".into();
    let err = open(no_bucket).check().unwrap_err();
    assert_eq!(kind_of(&err), std::io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let mut nobody_listening = server.config();
    nobody_listening.endpoint = Some("http://127.0.0.1:1".into());
    let away = open(nobody_listening);
    let err = away.check().unwrap_err();
    assert!(
        err.to_string().contains("cannot reach the S3 bucket"),
        "{err}"
    );
    // A store that goes away while serving: "unavailable" (a 503 for the client, to be
    // retried), not a broken object.
    let err = away.get("d/data.csv").unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("cannot reach S3"), "{err}");

    let mut bad_bucket = server.config();
    bad_bucket.bucket = "Not_A_Bucket".into();
    assert!(S3Artifacts::open(bad_bucket, fresh_keys(), dir.path()).is_err());
    let mut bad_endpoint = server.config();
    bad_endpoint.endpoint = Some("127.0.0.1:9000".into());
    assert!(S3Artifacts::open(bad_endpoint, fresh_keys(), dir.path()).is_err());
}

/// Two writers create one key at once. Against s3s-fs (check-then-write) both may win;
/// every loser must be a conflict and the object must be one writer's whole object.
fn race_to_create(store: Arc<S3Artifacts>, key: &str) -> usize {
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = [pattern(100_000), pattern(150_000)]
        .into_iter()
        .map(|payload| {
            let store = store.clone();
            let barrier = barrier.clone();
            let key = key.to_string();
            std::thread::spawn(move || {
                barrier.wait();
                store.put(&key, &payload).map(|()| payload)
            })
        })
        .collect();
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let mut won = Vec::new();
    for result in results {
        match result {
            Ok(payload) => won.push(payload),
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(!won.is_empty());
    let stored = store.get(key).unwrap();
    assert!(won.contains(&stored));
    won.len()
}

#[test]
fn concurrent_creates_of_one_key() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(server.store(fresh_keys(), dir.path()));
    for round in 0..5 {
        race_to_create(store.clone(), &format!("race/{round}"));
    }
}

/// Needs a bucket of your own: `cargo test -p aiaas-store --test s3 -- --ignored`.
#[test]
#[ignore = "needs AIAAS_TEST_S3_URL: a real S3 bucket (no network here)"]
fn real_s3_when_configured() {
    let url = std::env::var("AIAAS_TEST_S3_URL")
        .expect("AIAAS_TEST_S3_URL=s3://bucket/prefix names the bucket to test against");
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (bucket, prefix) = S3Config::parse_url(&url).unwrap();
    let run_prefix = format!(
        "{}aiaas-test-{}",
        if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        },
        aiaas_types::new_id()
    );
    let config = S3Config {
        endpoint: env("AIAAS_TEST_S3_ENDPOINT"),
        region: env("AIAAS_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
        bucket,
        prefix: run_prefix,
        credentials: Some(S3Credentials {
            access_key: env("AWS_ACCESS_KEY_ID").expect("AWS_ACCESS_KEY_ID"),
            secret_key: env("AWS_SECRET_ACCESS_KEY").expect("AWS_SECRET_ACCESS_KEY"),
            session_token: env("AWS_SESSION_TOKEN"),
        }),
        path_style: env("AIAAS_TEST_S3_PATH_STYLE").is_some_and(|v| v == "1"),
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        S3Artifacts::open(config, fresh_keys(), &dir.path().join("scratch"))
            .unwrap()
            .with_multipart_threshold(1 << 20)
            .with_part_size(5 << 20),
    );
    store.check().unwrap();
    artifact_contract(&*store, dir.path());
    let big = pattern(11 << 20);
    store.put("big/data.bin", &big).unwrap();
    assert!(matches!(
        store.put("big/data.bin", &big),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get("big/data.bin").unwrap(), big);
    // Real S3's conditional writes are atomic: exactly one writer wins.
    for round in 0..3 {
        assert_eq!(race_to_create(store.clone(), &format!("race/{round}")), 1);
    }
    for key in store.keys().unwrap() {
        store.delete_prefix(&key).unwrap();
    }
    assert!(store.keys().unwrap().is_empty());
}
