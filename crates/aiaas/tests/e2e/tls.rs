//! HTTPS: `aiaas serve --tls-cert --tls-key` with real clients (reqwest, curl, openssl
//! s_client), client certificates (mTLS), certificate reload on SIGHUP without dropping
//! connections, and the start-up checks (cert and key in pairs, named bad files, no plain
//! HTTP beyond loopback unless allowed). Certificates are made at test time with the
//! openssl CLI.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Server, ServerOptions, ADMIN_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_real_clients_and_refuses_plain_http() {
    let data = tempfile::tempdir().unwrap();
    let pki = Pki::new(&data.path().join("pki"));
    let (cert, key) = (pki.arg("server-a.pem"), pki.arg("server-a.key"));
    let server = Server::start(ServerOptions {
        data_dir: data.path(),
        extra_args: &["--tls-cert", &cert, "--tls-key", &key],
        demo: false,
        listen: None,
        env: Vec::new(),
    });
    let host = server
        .base
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("not an https URL: {}", server.base))
        .to_string();

    let client = pki.client(None);
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let models = client
        .get(server.url("/api/v1/models"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200, "{:?}", models.text().await);

    // The client's address still reaches the audit log.
    let refused = client
        .get(server.url("/api/v1/models"))
        .bearer_auth("aiaas_not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let audit: Value = client
        .get(server.url("/api/v1/audit?action=auth.failed"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed: Vec<&Value> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "auth.failed")
        .collect();
    assert_eq!(failed.len(), 1, "{audit:#}");
    assert_eq!(failed[0]["source"], "127.0.0.1", "{audit:#}");

    // curl (OpenSSL, offers h2 and http/1.1) with the test CA; without it, untrusted.
    let ok = curl(&[
        "--cacert",
        &pki.arg("ca.pem"),
        &format!("https://{host}/healthz"),
    ]);
    assert_eq!(last_line(&ok), "200", "{}", describe(&ok));
    let untrusted = curl(&[&format!("https://{host}/healthz")]);
    assert!(!untrusted.status.success(), "{}", describe(&untrusted));

    // The CLI speaks HTTPS, trusting the CAs SSL_CERT_FILE names (else the system's).
    let cli = |ca: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aiaas"));
        cmd.args(["keys", "list"])
            .env("AIAAS_URL", &server.base)
            .env("AIAAS_API_KEY", ADMIN_KEY)
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        if let Some(ca) = ca {
            cmd.env("SSL_CERT_FILE", ca);
        }
        exit_within(cmd, Duration::from_secs(30))
    };
    let listed = cli(Some(&pki.arg("ca.pem")));
    assert!(listed.status.success(), "{}", describe(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("admin"));
    let refused = cli(None);
    assert!(!refused.status.success(), "{}", describe(&refused));

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{host}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    assert!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200,
        "still serving after a bad client"
    );

    // SIGTERM with an idle keep-alive connection open still ends cleanly.
    server.stop();
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_signed_by_the_client_ca_are_required() {
    let data = tempfile::tempdir().unwrap();
    let pki = Pki::new(&data.path().join("pki"));
    let (cert, key, ca) = (
        pki.arg("server-a.pem"),
        pki.arg("server-a.key"),
        pki.arg("ca.pem"),
    );
    let server = Server::start(ServerOptions {
        data_dir: data.path(),
        extra_args: &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
        ],
        demo: false,
        listen: None,
        env: Vec::new(),
    });
    let url = server.url("/healthz");

    let bare = curl(&["--cacert", &ca, &url]);
    assert!(
        !bare.status.success(),
        "no client cert: {}",
        describe(&bare)
    );
    let rogue = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &pki.arg("rogue-client.pem"),
        "--key",
        &pki.arg("rogue-client.key"),
        &url,
    ]);
    assert!(
        !rogue.status.success(),
        "untrusted client cert: {}",
        describe(&rogue)
    );
    let trusted = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &pki.arg("client.pem"),
        "--key",
        &pki.arg("client.key"),
        &url,
    ]);
    assert_eq!(last_line(&trusted), "200", "{}", describe(&trusted));

    // reqwest (rustls) likewise: refused without an identity, served with the right one.
    assert!(pki.client(None).get(&url).send().await.is_err());
    assert!(pki
        .client(Some("rogue-client"))
        .get(&url)
        .send()
        .await
        .is_err());
    let client = pki.client(Some("client"));
    let models = client
        .get(server.url("/api/v1/models"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let logs = server.logs();
    assert!(logs.contains("TLS handshake failed"), "{logs}");
    assert!(!logs.contains("PRIVATE KEY"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_keeps_connections() {
    let data = tempfile::tempdir().unwrap();
    let pki = Pki::new(&data.path().join("pki"));
    let cert = data.path().join("live.pem");
    let key = data.path().join("live.key");
    std::fs::copy(pki.path("server-a.pem"), &cert).unwrap();
    std::fs::copy(pki.path("server-a.key"), &key).unwrap();
    let server = Spawned::start(
        data.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let host = server.base.trim_start_matches("https://").to_string();
    assert_eq!(pki.served_cert(&server.base).await, pki.der("server-a"));

    // A connection made with certificate A, kept open across the reload.
    let mut kept = SClient::connect(&host, &pki.arg("ca.pem"));
    kept.get_healthz(false);

    std::fs::copy(pki.path("server-b.pem"), &cert).unwrap();
    std::fs::copy(pki.path("server-b.key"), &key).unwrap();
    server.hangup();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pki.served_cert(&server.base).await != pki.der("server-b") {
        assert!(
            Instant::now() < deadline,
            "certificate B not served after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.logs().contains("TLS certificate and key reloaded"));
    kept.get_healthz(true);

    // A bad file: logged, and certificate B stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    server.hangup();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.logs().contains("TLS reload failed") {
        assert!(
            Instant::now() < deadline,
            "no error logged for a bad certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = server.logs();
    assert!(
        logs.contains("live.pem"),
        "the error names the file: {logs}"
    );
    assert_eq!(pki.served_cert(&server.base).await, pki.der("server-b"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_are_checked_at_start() {
    let data = tempfile::tempdir().unwrap();
    let pki = Pki::new(&data.path().join("pki"));
    let fresh = data.path().join("never-created");
    let fresh_arg = fresh.to_str().unwrap().to_string();
    let serve = |args: &[&str], env: &[(&str, &str)]| -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aiaas"));
        cmd.args(["serve", "--no-demo", "--data-dir", &fresh_arg])
            .args(args)
            .env("AIAAS_ADMIN_KEY", ADMIN_KEY)
            .envs(env.iter().copied());
        exit_within(cmd, Duration::from_secs(30))
    };
    let fails_with = |out: &Output, needles: &[&str]| {
        let text = describe(out);
        assert!(!out.status.success(), "started: {text}");
        for n in needles {
            assert!(text.contains(n), "no {n:?} in: {text}");
        }
    };
    let (a_pem, a_key, b_key) = (
        pki.arg("server-a.pem"),
        pki.arg("server-a.key"),
        pki.arg("server-b.key"),
    );

    fails_with(&serve(&["--tls-cert", &a_pem], &[]), &["--tls-key"]);
    // The environment counts the same as the flag.
    fails_with(&serve(&[], &[("AIAAS_TLS_KEY", &a_key)]), &["--tls-cert"]);
    fails_with(
        &serve(&["--tls-client-ca", &pki.arg("ca.pem")], &[]),
        &["--tls-client-ca needs --tls-cert"],
    );
    let garbage = pki.arg("garbage.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    fails_with(
        &serve(&["--tls-cert", &garbage, "--tls-key", &a_key], &[]),
        &["--tls-cert", "garbage.pem"],
    );
    fails_with(
        &serve(&["--tls-cert", &a_pem, "--tls-key", &garbage], &[]),
        &["--tls-key", "garbage.pem"],
    );
    fails_with(
        &serve(
            &["--tls-cert", &a_pem, "--tls-key", "/nonexistent/key.pem"],
            &[],
        ),
        &["--tls-key", "/nonexistent/key.pem"],
    );
    fails_with(
        &serve(&["--tls-cert", &a_pem, "--tls-key", &b_key], &[]),
        &["does not go with", "server-b.key"],
    );
    fails_with(
        &serve(&["--listen", "0.0.0.0:0"], &[]),
        &["0.0.0.0:0", "--tls-cert", "--allow-insecure-http"],
    );
    assert!(!fresh.exists(), "refused before the data directory is made");

    // Loopback needs nothing; other addresses need TLS or the explicit opt-out.
    let any = Spawned::start(
        data.path(),
        &["--listen", "0.0.0.0:0", "--allow-insecure-http"],
    );
    let port = any.base.rsplit(':').next().unwrap().to_string();
    assert!(any.base.starts_with("http://0.0.0.0:"), "{}", any.base);
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    any.stop();
    let tls_any = Spawned::start(
        data.path(),
        &[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            &a_pem,
            "--tls-key",
            &a_key,
        ],
    );
    assert!(
        tls_any.base.starts_with("https://0.0.0.0:"),
        "{}",
        tls_any.base
    );
    tls_any.stop();
}

/// A CA, server certificates A and B for 127.0.0.1 (different names and serials; keys
/// in SEC1 and RSA form), a client certificate it signs (PKCS#8 key), and a client
/// certificate signed by another CA.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        pki.ca("ca", "aiaas-test-ca");
        pki.ca("rogue-ca", "aiaas-rogue-ca");
        let server = "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
                      keyUsage=critical,digitalSignature,keyEncipherment\n\
                      extendedKeyUsage=serverAuth\n";
        let client = "basicConstraints=critical,CA:FALSE\n\
                      keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n";
        pki.openssl(
            &["ecparam", "-genkey", "-name", "prime256v1", "-noout"],
            "server-a.key",
        );
        pki.leaf("server-a", "aiaas-test-a", "0xA1", "ca", server);
        pki.openssl(&["genrsa", "-traditional", "2048"], "server-b.key");
        pki.leaf("server-b", "aiaas-test-b", "0xB2", "ca", server);
        for name in ["client", "rogue-client"] {
            pki.openssl(
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ],
                &format!("{name}.key"),
            );
        }
        pki.leaf("client", "aiaas-test-client", "0xC3", "ca", client);
        pki.leaf(
            "rogue-client",
            "aiaas-test-client",
            "0xD4",
            "rogue-ca",
            client,
        );
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().expect("UTF-8 path").to_string()
    }

    /// The DER form of `NAME.pem`.
    fn der(&self, name: &str) -> Vec<u8> {
        self.openssl(
            &[
                "x509",
                "-in",
                &self.arg(&format!("{name}.pem")),
                "-outform",
                "der",
            ],
            &format!("{name}.der"),
        );
        std::fs::read(self.path(&format!("{name}.der"))).unwrap()
    }

    fn ca(&self, name: &str, cn: &str) {
        self.run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &self.arg(&format!("{name}.key")),
            "-out",
            &self.arg(&format!("{name}.pem")),
        ]);
    }

    /// `NAME.pem` for the existing `NAME.key`, signed by `ca`.
    fn leaf(&self, name: &str, cn: &str, serial: &str, ca: &str, extensions: &str) {
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(&ext, extensions).unwrap();
        let csr = self.arg(&format!("{name}.csr"));
        self.run(&[
            "req",
            "-new",
            "-key",
            &self.arg(&format!("{name}.key")),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &csr,
        ]);
        self.run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &self.arg(&format!("{ca}.pem")),
            "-CAkey",
            &self.arg(&format!("{ca}.key")),
            "-set_serial",
            serial,
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            &self.arg(&format!("{name}.pem")),
        ]);
    }

    /// `openssl COMMAND -out FILE REST` (genrsa wants its key size last).
    fn openssl(&self, args: &[&str], out: &str) {
        let out = self.arg(out);
        let mut all = vec![args[0], "-out", &out];
        all.extend(&args[1..]);
        self.run(&all);
    }

    fn run(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl CLI (scripts/setup.sh --test installs it)");
        assert!(out.status.success(), "openssl {args:?}: {}", describe(&out));
    }

    /// A reqwest client that trusts only the test CA, optionally presenting `NAME.pem`.
    fn client(&self, identity: Option<&str>) -> reqwest::Client {
        let ca = std::fs::read(self.path("ca.pem")).unwrap();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .tls_info(true);
        if let Some(name) = identity {
            let mut pem = std::fs::read(self.path(&format!("{name}.pem"))).unwrap();
            pem.extend(std::fs::read(self.path(&format!("{name}.key"))).unwrap());
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }

    /// The certificate a new connection to `base` is served (DER).
    async fn served_cert(&self, base: &str) -> Vec<u8> {
        let resp = self
            .client(None)
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .expect("peer certificate")
            .to_vec()
    }
}

/// The binary started directly, for what the shared harness does not offer: its pid
/// (SIGHUP) and a `--listen` of the test's choosing.
struct Spawned {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Spawned {
    fn start(data_dir: &Path, args: &[&str]) -> Spawned {
        let dir = tempfile::Builder::new()
            .prefix("serve-")
            .tempdir_in(data_dir)
            .unwrap()
            .keep();
        let log = dir.join("server.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_aiaas"))
            .args(["serve", "--no-demo", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--master-key-file")
            .arg(dir.join("master.key"))
            .args(args)
            .env("AIAAS_ADMIN_KEY", ADMIN_KEY)
            .env("AIAAS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start aiaas serve");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut lines = lines.map_while(Result::ok);
        let base = lines
            .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
            .unwrap_or_else(|| {
                panic!(
                    "server exited before listening: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        std::thread::spawn(move || for _ in lines {});
        Spawned { child, base, log }
    }

    fn hangup(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child, which is still running (not yet waited for).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and a clean exit.
    fn stop(mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: as in `hangup`.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "server exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "no exit within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.logs());
        }
    }
}

/// One TLS connection held open by `openssl s_client`, sending HTTP/1.1 by hand.
struct SClient {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl SClient {
    fn connect(host: &str, ca: &str) -> SClient {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", host, "-CAfile", ca])
            .args(["-verify_return_error", "-quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        SClient {
            child,
            stdin,
            lines,
        }
    }

    /// `GET /healthz` on this connection; with `last`, the server then closes it.
    fn get_healthz(&mut self, last: bool) {
        let connection = if last { "close" } else { "keep-alive" };
        write!(
            self.stdin,
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\n\r\n"
        )
        .unwrap();
        self.stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // A body without a final newline runs into the next status line.
                Ok(line) if line.contains("HTTP/1.1 ") => {
                    assert!(line.contains("HTTP/1.1 200"), "{line}");
                    return;
                }
                Ok(_) => {}
                Err(e) => panic!("no answer on the kept connection: {e}"),
            }
        }
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -sS -o /dev/null -w '%{http_code}' ARGS`.
fn curl(args: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\n",
    ])
    .args(args);
    exit_within(cmd, Duration::from_secs(30))
}

/// Run to exit; a process still running after `limit` is killed and the test fails.
fn exit_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
