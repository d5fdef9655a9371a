//! `aiaas serve`: open the platform, print the first-start secrets once, serve HTTP (or
//! HTTPS, see tls.rs) until SIGINT/SIGTERM, then drain and shut down cleanly.

use std::sync::Arc;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::tls::TlsConfig;
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
    if args.private_metrics {
        tracing::warn!("--private-metrics / AIAAS_PRIVATE_METRICS is no longer needed: /metrics always needs an admin or metrics key now (--metrics-listen serves it without one)");
    }
    // Bad certificate files stop the start before the data directory is touched.
    let tls = cfg
        .tls
        .clone()
        .map(TlsConfig::load)
        .transpose()?
        .map(Arc::new);
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
    let scrape_listener = match cfg.metrics_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} (--metrics-listen)"))?,
        ),
        None => None,
    };
    print_start_report(&report);
    #[cfg(unix)]
    if let Some(tls) = &tls {
        crate::tls::reload_on_sighup(Arc::clone(tls))?;
    }
    let shutdown_signal = shutdown_signal();
    platform.start(&report);
    if let Some(scrape) = scrape_listener {
        serve_scrape(scrape, &platform)?;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");
    tracing::info!(
        %addr,
        scheme,
        client_certificates = tls.as_ref().is_some_and(|t| t.requires_client_cert()),
        data_dir = %cfg.platform.data_dir.display(),
        "aiaas serving"
    );
    if let Some(schedule) = cfg.backups.clone() {
        schedule_backups(schedule, platform.clone());
    }
    let app = aiaas_api::app(platform.clone());
    let draining = platform.clone();
    let shutdown = async move {
        shutdown_signal.await;
        // Before HTTP drains: readiness false, event streams end, training stops.
        draining.begin_shutdown();
    };
    crate::tls::serve(listener, app, tls, shutdown, cfg.platform.drain_timeout).await;
    tracing::info!("draining: no new requests; stopping training and models");
    platform.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// What the first start (or an upgrade) did that an operator must know, printed once.
fn print_start_report(report: &aiaas_core::StartupReport) {
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
}

/// `/metrics` alone, without a key, on the operator's `--metrics-listen` address.
fn serve_scrape(scrape: tokio::net::TcpListener, platform: &aiaas_core::Platform) -> Result<()> {
    let at = scrape.local_addr()?;
    println!("metrics without a key on http://{at}/metrics");
    if !at.ip().to_canonical().is_loopback() {
        tracing::warn!(%at, "metrics are served without a key on a non-loopback address: keep it pod- or host-internal");
    }
    let app = aiaas_api::scrape_app(platform.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(scrape, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// A backup every `schedule.every` (the first one period after the start) until shutdown.
fn schedule_backups(schedule: config::BackupSchedule, p: aiaas_core::Platform) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(schedule.every);
        tick.tick().await; // the first backup one period after the start
        loop {
            tick.tick().await;
            if p.is_shutting_down() {
                break;
            }
            match p.backups().backup_now(&schedule.dir, schedule.keep).await {
                Ok(r) => {
                    tracing::info!(path = %r.path.display(), files = r.files, "scheduled backup written")
                }
                Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
            }
        }
    });
}

/// SIGINT or SIGTERM. The handlers are installed by this call, not at the future's first
/// poll: a signal that comes right after "listening on" must drain the server, not end it
/// the default way.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        tokio::select! {
            () = next_signal(interrupt) => {},
            () = next_signal(terminate) => {},
        }
    }
}

#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(unix)]
async fn next_signal(handler: std::io::Result<tokio::signal::unix::Signal>) {
    match handler {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle a shutdown signal");
            std::future::pending::<()>().await
        }
    }
}
