//! `aiaas finetune`: fine-tuning jobs through the OpenAI-compatible API. `create` uploads
//! a local training file first (or takes a file id), starts the job and follows its
//! steps with a progress bar; `list`, `show`, `events`, `cancel` read and steer jobs.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::client::{enc, print_json, Client, Conn};

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: FinetuneCmd,
}

#[derive(Subcommand, Debug)]
enum FinetuneCmd {
    /// Start a job: MODEL is a library chat model; the training file a local JSONL file
    /// (uploaded first) or a file id.
    Create(CreateArgs),
    /// The tenant's jobs, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One job as JSON.
    Show { id: String },
    /// A job's events, oldest first.
    Events { id: String },
    /// Cancel a job.
    Cancel { id: String },
    /// Follow a job until it ends.
    Watch { id: String },
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// The base model (a library GGUF chat or completion model).
    model: String,
    /// Training examples: a local .jsonl file or a file id (file-...).
    training_file: String,
    /// Validation examples: a local .jsonl file or a file id.
    #[arg(long)]
    validation_file: Option<String>,
    #[arg(long)]
    epochs: Option<u32>,
    #[arg(long)]
    batch_size: Option<u32>,
    #[arg(long)]
    learning_rate_multiplier: Option<f64>,
    #[arg(long)]
    lora_rank: Option<u32>,
    #[arg(long)]
    lora_alpha: Option<f64>,
    /// Projections to adapt, comma-separated (q,k,v,o,gate,up,down).
    #[arg(long, value_delimiter = ',')]
    lora_targets: Vec<String>,
    /// Part of the fine-tuned model's name.
    #[arg(long)]
    suffix: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// Return once the job is created instead of following it.
    #[arg(long)]
    detach: bool,
}

impl FinetuneArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        match self.cmd {
            FinetuneCmd::Create(a) => create(&c, a).await,
            FinetuneCmd::List { limit } => {
                let v = c
                    .get(&format!("/v1/fine_tuning/jobs?limit={limit}"))
                    .await?;
                println!(
                    "{:<38} {:<24} {:<16} FINE-TUNED MODEL",
                    "ID", "BASE", "STATUS"
                );
                for j in v["data"].as_array().into_iter().flatten() {
                    println!(
                        "{:<38} {:<24} {:<16} {}",
                        j["id"].as_str().unwrap_or_default(),
                        j["model"].as_str().unwrap_or_default(),
                        j["status"].as_str().unwrap_or_default(),
                        j["fine_tuned_model"].as_str().unwrap_or("-")
                    );
                }
                Ok(())
            }
            FinetuneCmd::Show { id } => {
                print_json(&c.get(&job_path(&id)).await?);
                Ok(())
            }
            FinetuneCmd::Events { id } => {
                for e in all_events(&c, &id).await? {
                    println!("{}", event_line(&e));
                }
                Ok(())
            }
            FinetuneCmd::Cancel { id } => {
                let j = c
                    .post(&format!("{}/cancel", job_path(&id)), json!({}))
                    .await?;
                println!("job {id}: {}", j["status"].as_str().unwrap_or_default());
                Ok(())
            }
            FinetuneCmd::Watch { id } => follow(&c, &id).await,
        }
    }
}

fn job_path(id: &str) -> String {
    format!("/v1/fine_tuning/jobs/{}", enc(id))
}

/// A local file is uploaded (purpose fine-tune); anything else is taken as a file id.
async fn file_id(c: &Client, given: &str) -> Result<String> {
    let path = Path::new(given);
    if !path.is_file() {
        if given.starts_with("file-") {
            return Ok(given.to_string());
        }
        bail!("{given} is neither a file here nor a file id (file-...)");
    }
    let bytes = tokio::fs::read(path)
        .await
        .with_context(|| format!("cannot read {given}"))?;
    let name = path
        .file_name()
        .map_or("train.jsonl".into(), |n| n.to_string_lossy().into_owned());
    let form = reqwest::multipart::Form::new()
        .text("purpose", "fine-tune")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
    let f = c
        .send(c.req(reqwest::Method::POST, "/v1/files").multipart(form))
        .await?;
    eprintln!(
        "uploaded {given}: {} ({} examples)",
        f["id"].as_str().unwrap_or_default(),
        f["examples"]
    );
    Ok(f["id"].as_str().unwrap_or_default().to_string())
}

async fn create(c: &Client, a: CreateArgs) -> Result<()> {
    let training = file_id(c, &a.training_file).await?;
    let validation = match &a.validation_file {
        Some(v) => Some(file_id(c, v).await?),
        None => None,
    };
    let mut h = json!({});
    if let Some(v) = a.epochs {
        h["n_epochs"] = json!(v);
    }
    if let Some(v) = a.batch_size {
        h["batch_size"] = json!(v);
    }
    if let Some(v) = a.learning_rate_multiplier {
        h["learning_rate_multiplier"] = json!(v);
    }
    if let Some(v) = a.lora_rank {
        h["lora_rank"] = json!(v);
    }
    if let Some(v) = a.lora_alpha {
        h["lora_alpha"] = json!(v);
    }
    if !a.lora_targets.is_empty() {
        h["lora_targets"] = json!(a.lora_targets);
    }
    let job = c
        .post(
            "/v1/fine_tuning/jobs",
            json!({"model": a.model, "training_file": training, "validation_file": validation,
                   "hyperparameters": h, "suffix": a.suffix, "seed": a.seed}),
        )
        .await?;
    let id = job["id"].as_str().unwrap_or_default().to_string();
    println!("job {id}: {}", job["status"].as_str().unwrap_or_default());
    if a.detach {
        return Ok(());
    }
    follow(c, &id).await
}

/// Every event of a job, oldest first (the API pages newest first).
async fn all_events(c: &Client, id: &str) -> Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("{}/events?limit=100", job_path(id));
        if let Some(a) = &after {
            path.push_str(&format!("&after={}", enc(a)));
        }
        let page = c.get(&path).await?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        after = data
            .last()
            .and_then(|e| e["id"].as_str())
            .map(str::to_string);
        out.extend(data);
        if page["has_more"] != json!(true) || after.is_none() {
            break;
        }
    }
    out.reverse();
    Ok(out)
}

fn event_line(e: &Value) -> String {
    format!(
        "{} {:<5} {}",
        aiaas_types::format_utc(
            e["created_at"].as_i64().unwrap_or(0) * 1000,
            "%Y-%m-%d %H:%M:%S"
        )
        .unwrap_or_default(),
        e["level"].as_str().unwrap_or_default(),
        e["message"].as_str().unwrap_or_default()
    )
}

/// Poll the job's newest events until it ends: a progress bar of steps on a terminal,
/// a line per event otherwise; then the result.
async fn follow(c: &Client, id: &str) -> Result<()> {
    let plain = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut bar: Option<ProgressBar> = None;
    let mut seen: Option<String> = None;
    loop {
        let page = c.get(&format!("{}/events?limit=100", job_path(id))).await?;
        let mut fresh: Vec<Value> = Vec::new();
        for e in page["data"].as_array().into_iter().flatten() {
            if seen.as_deref() == e["id"].as_str() {
                break;
            }
            fresh.push(e.clone());
        }
        if let Some(newest) = fresh.first() {
            seen = newest["id"].as_str().map(str::to_string);
        }
        for e in fresh.iter().rev() {
            let data = &e["data"];
            match (plain, data["step"].as_u64()) {
                (false, Some(step)) => {
                    let b = bar.get_or_insert_with(|| {
                        ProgressBar::new(data["total_steps"].as_u64().unwrap_or(1))
                            .with_style(style.clone())
                            .with_prefix("training")
                    });
                    b.set_position(step);
                    b.set_message(format!(
                        "loss {:.4}",
                        data["train_loss"].as_f64().unwrap_or(f64::NAN)
                    ));
                }
                _ => eprintln!("{}", event_line(e)),
            }
        }
        let job = c.get(&job_path(id)).await?;
        let status = job["status"].as_str().unwrap_or_default();
        if matches!(status, "succeeded" | "failed" | "cancelled") {
            if let Some(b) = bar.take() {
                b.finish();
            }
            return match status {
                "succeeded" => {
                    println!(
                        "{}: {} trained tokens",
                        job["fine_tuned_model"].as_str().unwrap_or_default(),
                        job["trained_tokens"]
                    );
                    Ok(())
                }
                "failed" => bail!(
                    "job {id} failed: {}",
                    job["error"]["message"].as_str().unwrap_or_default()
                ),
                _ => bail!("job {id} was cancelled"),
            };
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
