//! HTTPS for `aiaas serve`: the certificate chain, key and optional client CA (mTLS) read
//! from PEM files into a rustls config that SIGHUP replaces, and the accept loop that
//! serves the router over HTTP/1.1, inside TLS or plain, with graceful shutdown and a
//! limit on how long a client may take to send a request's headers (slow-loris).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// A client that has not finished its handshake by then is dropped: a stalled or
/// trickling client must not hold a connection (and a task) forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request's headers must arrive within this (bodies stream without a limit here: the
/// body size limits and the route timeout bound them; responses such as event streams
/// may last for hours). `AIAAS_HEADER_TIMEOUT_SECS` overrides it.
fn header_timeout() -> Duration {
    std::env::var("AIAAS_HEADER_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s <= 3600.0)
        .map_or(Duration::from_secs(30), Duration::from_secs_f64)
}

/// Where the server's TLS material lives; read at start and again on every SIGHUP.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The leaf's private key: PKCS#8, RSA (PKCS#1) or SEC1 (PEM).
    pub key: PathBuf,
    /// Client certificates must be signed by one of these CAs (PEM); none: no client auth.
    pub client_ca: Option<PathBuf>,
}

/// The current rustls config. Each handshake takes the config of its moment, so a reload
/// changes new connections only; established ones keep the keys they agreed on.
pub struct TlsConfig {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsConfig {
    /// Read and check the files; the error names the file at fault.
    pub fn load(files: TlsFiles) -> Result<TlsConfig> {
        let config = server_config(&files)?;
        Ok(TlsConfig {
            files,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Read the files again and use them for new connections. On error nothing changes.
    pub fn reload(&self) -> Result<()> {
        let config = Arc::new(server_config(&self.files)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.files.client_ca.is_some()
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// Reload the TLS files on every SIGHUP, for as long as the process runs. A failed reload
/// is logged and the previous certificate stays in use.
#[cfg(unix)]
pub fn reload_on_sighup(tls: Arc<TlsConfig>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered before the server says it is listening: from then on a SIGHUP reloads
    // instead of ending the process.
    let mut hangups = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let tls = Arc::clone(&tls);
            match tokio::task::spawn_blocking(move || tls.reload()).await {
                Ok(Ok(())) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                Ok(Err(e)) => tracing::error!(
                    error = format!("{e:#}"),
                    "SIGHUP: TLS reload failed; still serving the previous certificate"
                ),
                Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload task failed"),
            }
        }
    });
    Ok(())
}

/// Serve `app` over HTTPS (or plain HTTP when `tls` is None) until `shutdown` completes,
/// then stop accepting and wait for open connections to finish their requests (idle
/// keep-alive connections close at once).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<Arc<TlsConfig>>,
    shutdown: impl Future<Output = ()>,
    drain: std::time::Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = Connection {
            tcp,
            peer,
            acceptor: tls.as_ref().map(|t| t.acceptor()),
            app: app.clone(),
            watcher: graceful.watcher(),
        };
        tokio::spawn(connection.run());
    }
    // No new connections from here (a load balancer retries them on another replica);
    // requests in flight get `drain` to finish, idle keep-alive connections close now.
    drop(listener);
    let open = graceful.count();
    tracing::info!(
        connections = open,
        deadline_secs = drain.as_secs_f64(),
        "draining open connections"
    );
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline_secs = drain.as_secs_f64(),
            "requests still running at the drain deadline were cut"
        );
    }
}

/// One accepted TCP connection: handshake, then HTTP/1.1 until either side closes it.
struct Connection {
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    app: axum::Router,
    /// Held from the start, so shutdown also waits for handshakes under way.
    watcher: Watcher,
}

impl Connection {
    async fn run(self) {
        let Connection {
            tcp,
            peer,
            acceptor,
            app,
            watcher,
        } = self;
        // Streamed tokens are small TLS records written one after another: without this,
        // Nagle's algorithm holds each back until the previous one is acknowledged.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let Some(acceptor) = acceptor else {
            serve_http(tcp, peer, app, watcher).await;
            return;
        };
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => stream,
            // A TLS-level refusal (no or untrusted client certificate, plain HTTP sent to
            // the TLS port, no common cipher): worth seeing at the default level.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                tracing::info!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection closed during the TLS handshake");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        serve_http(stream, peer, app, watcher).await;
    }
}

/// HTTP/1.1 on an established stream (TLS or plain TCP) until either side closes it.
async fn serve_http<S>(stream: S, peer: SocketAddr, app: axum::Router, watcher: Watcher)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Handlers and the audit log read the client's address from the request.
    let service = app.map_request(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout())
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// As axum's own loop does: a client that gave up before accept() is no matter; running
/// out of file descriptors is, and retrying at once would only spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

fn server_config(files: &TlsFiles) -> Result<ServerConfig> {
    let chain = read_certs(&files.cert, "--tls-cert")?;
    let key = read_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("the TLS provider offers no safe protocol version")?;
    let builder = match &files.client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(path, "--tls-client-ca")? {
                roots.add(cert).with_context(|| {
                    format!(
                        "--tls-client-ca {}: not a usable CA certificate",
                        path.display()
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| {
                    format!(
                        "--tls-client-ca {}: cannot verify clients with it",
                        path.display()
                    )
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "--tls-key {} does not go with --tls-cert {}",
            files.key.display(),
            files.cert.display()
        )
    })?;
    // HTTP/1.1 only: the connection is served by hyper's HTTP/1 server.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Every certificate in a PEM file; at least one.
fn read_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(e, path, flag, "certificate"))?;
    if certs.is_empty() {
        bail!(
            "{flag} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        );
    }
    Ok(certs)
}

/// The first private key in a PEM file. Errors never quote the file's contents.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(e, path, "--tls-key", "private key"))
}

fn pem_error(e: pem::Error, path: &Path, flag: &str, what: &str) -> anyhow::Error {
    let path = path.display();
    match e {
        pem::Error::Io(e) => anyhow::anyhow!("{flag} {path}: cannot read it: {e}"),
        pem::Error::NoItemsFound => {
            anyhow::anyhow!("{flag} {path}: no PEM {what} in it (PKCS#8, RSA or SEC1 for a key)")
        }
        _ => anyhow::anyhow!("{flag} {path}: not a valid PEM {what} file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_malformed_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n").unwrap();
        let files = |cert: &Path, key: &Path| TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            client_ca: None,
        };
        let missing = dir.path().join("missing.pem");
        let err = format!(
            "{:#}",
            TlsConfig::load(files(&missing, &garbage)).err().unwrap()
        );
        assert!(
            err.contains("--tls-cert") && err.contains("missing.pem"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            TlsConfig::load(files(&garbage, &garbage)).err().unwrap()
        );
        assert!(
            err.contains("no PEM certificate") && err.contains("garbage.pem"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            TlsConfig::load(files(&broken, &garbage)).err().unwrap()
        );
        assert!(
            err.contains("not a valid PEM") && err.contains("broken.pem"),
            "{err}"
        );
    }
}
