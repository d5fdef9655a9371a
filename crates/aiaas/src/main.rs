//! The `aiaas` binary: `serve` runs the platform; every other command is a client of a
//! running server (URL and key from flags or `AIAAS_URL` / `AIAAS_API_KEY`).

mod client;
mod config;
mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "aiaas", version, about = "Self-hosted AI models as a service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
    Train(client::TrainArgs),
    /// List, show and cancel training jobs.
    Jobs(client::JobsArgs),
    /// The model registry and deployments.
    Models(client::ModelsArgs),
    /// Classify texts with a deployed model.
    Predict(client::PredictArgs),
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
    /// Do not seed the demo (news data set and classifier) on a first start.
    #[arg(long, env = "AIAAS_NO_DEMO")]
    pub no_demo: bool,
    /// Largest dataset upload, in MB.
    #[arg(long, env = "AIAAS_MAX_UPLOAD_MB")]
    pub max_upload_mb: Option<u64>,
    /// Training jobs run at once.
    #[arg(long, env = "AIAAS_TRAINING_WORKERS")]
    pub training_workers: Option<usize>,
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
            Command::Models(c) => c.run().await,
            Command::Predict(c) => c.run().await,
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
