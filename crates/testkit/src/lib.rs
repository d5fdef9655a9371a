//! Fixtures for tests and benchmarks that need real parts, not mocks.
//!
//! [`S3Server`]: an S3-compatible server (s3s with its file-system backend, s3s-fs 0.14)
//! on 127.0.0.1, checking SigV4 signatures against one access key. It runs on a runtime
//! of its own, so it serves whether or not the caller is async.
//!
//! [`test_data_file`]: a file the test set-up put in the test data cache (model weights).
//!
//! [`read_text_label_csv`]: a labelled corpus's rows (the BBC News and Chinese headline
//! CSVs the set-up converts).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `relative` under the test data cache (`$AIAAS_TEST_DATA`, by default
/// `~/.cache/aiaas-data-cache`), where `scripts/setup.sh --test` puts model weights. A
/// missing file fails the test, naming the command that provides it.
pub fn test_data_file(relative: &str) -> PathBuf {
    let data = std::env::var_os("AIAAS_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/aiaas-data-cache")
        });
    let path = data.join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh --test (it provides the test data)",
        path.display()
    );
    path
}

/// The first two columns (text, label) of each row of a CSV file with a header row.
/// An unreadable file or row fails the caller, naming the file.
pub fn read_text_label_csv(path: &Path) -> Vec<(String, String)> {
    let fail = |e: csv::Error| -> ! { panic!("{}: {e}", path.display()) };
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| fail(e));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| fail(e));
            let column = |i| r.get(i).unwrap_or_default().to_string();
            (column(0), column(1))
        })
        .collect()
}

/// The access key every [`S3Server`] accepts.
pub const ACCESS_KEY: &str = "AKIAAIAASTEST0000000";
/// Its secret.
pub const SECRET_KEY: &str = "aiaas/test+secret/key0000000000000000000";

/// An S3 server on loopback with one bucket; stopped on drop.
pub struct S3Server {
    rt: Option<tokio::runtime::Runtime>,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    root: Root,
}

enum Root {
    Temp(tempfile::TempDir),
    Dir(PathBuf),
}

impl S3Server {
    /// A server over a fresh temporary directory, on a free port, with bucket `aiaas`.
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().expect("a temp dir");
        Self::serve(Root::Temp(root), "127.0.0.1:0", "aiaas").expect("start the S3 server")
    }

    /// A server over `root` (objects of bucket B are files under `root/B`) on `listen`.
    pub fn start_at(root: &Path, listen: &str, bucket: &str) -> std::io::Result<S3Server> {
        std::fs::create_dir_all(root)?;
        Self::serve(Root::Dir(root.to_path_buf()), listen, bucket)
    }

    fn serve(root: Root, listen: &str, bucket: &str) -> std::io::Result<S3Server> {
        let dir = match &root {
            Root::Temp(t) => t.path().to_path_buf(),
            Root::Dir(d) => d.clone(),
        };
        // s3s-fs keeps bucket B in the directory B under its root.
        std::fs::create_dir_all(dir.join(bucket))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let fs = s3s_fs::FileSystem::new(&dir)
            .map_err(|e| std::io::Error::other(format!("s3s-fs: {e:?}")))?;
        let service = {
            let mut builder = s3s::service::S3ServiceBuilder::new(fs);
            builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            builder.build()
        };
        // Bound here, served on the server's own runtime (so this works from async code
        // as well as from plain threads).
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        rt.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(S3Server {
            rt: Some(rt),
            endpoint: format!("http://{addr}"),
            addr,
            bucket: bucket.to_string(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            root,
        })
    }

    /// The directory the objects are stored in (bucket B under `root()/B`).
    pub fn root(&self) -> &Path {
        match &self.root {
            Root::Temp(t) => t.path(),
            Root::Dir(d) => d,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
