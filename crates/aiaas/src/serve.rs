//! `aiaas serve`: open the platform, print the first-start secrets once, serve HTTP
//! until SIGINT/SIGTERM, then drain and shut down cleanly.

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::{config, ServeArgs};

pub async fn run(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("AIAAS_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(crate::log_mask::MaskedStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = config::resolve(&args)?;
    let (platform, report) = aiaas_core::Platform::open(cfg.platform.clone())
        .await
        .with_context(|| {
            format!(
                "cannot open data directory {}",
                cfg.platform.data_dir.display()
            )
        })?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    if let Some(key) = &report.new_admin_key {
        println!("admin key: {}", key.expose());
        println!("(shown once: store it now; only its hash is kept)");
    }
    if report.admin_key_from_env {
        println!("admin key registered from AIAAS_ADMIN_KEY");
    }
    if let Some(path) = &report.master_key_created {
        println!(
            "created the master key file {} (mode 0600): every stored dataset and model is \
             encrypted with it. Keep it safe and apart from the data directory and its backups: \
             without it nothing stored can be read.",
            path.display()
        );
    }
    if report.encrypted_plaintext > 0 {
        println!(
            "encrypted {} artifact(s) stored in plain text by an earlier version",
            report.encrypted_plaintext
        );
    }
    if report.resumed_jobs > 0 {
        println!(
            "resumed {} interrupted training job(s)",
            report.resumed_jobs
        );
    }
    platform.start(&report);
    println!("listening on http://{addr}");
    tracing::info!(%addr, data_dir = %cfg.platform.data_dir.display(), "aiaas serving");
    let app = aiaas_api::app(platform.clone());
    let draining = platform.clone();
    // The client's address reaches the audit log.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Before HTTP drains: readiness false, event streams end, training stops.
            draining.begin_shutdown();
        })
        .await
        .context("server error")?;
    tracing::info!("draining: no new requests; stopping training and models");
    platform.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
