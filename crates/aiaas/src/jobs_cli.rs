//! The CLI's training commands: `aiaas train` (submit a job, follow its progress as
//! server-sent events with a progress bar, print the report) and `aiaas jobs`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::client::{enc, print_json, Client, Conn};

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    conn: Conn,
    /// Dataset id or name.
    #[arg(long)]
    dataset: String,
    /// Model name for the new version.
    #[arg(long)]
    model: String,
    /// Held-out test dataset id or name.
    #[arg(long)]
    test_dataset: Option<String>,
    /// avgpool, textcnn, gru, lstm, tfidf-logreg or auto.
    #[arg(long)]
    architecture: Option<String>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    learning_rate: Option<f64>,
    #[arg(long)]
    validation_split: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// Further training settings as JSON (merged under the flags above).
    #[arg(long)]
    config_json: Option<String>,
    /// Deploy the new version when training succeeds.
    #[arg(long)]
    deploy: bool,
    /// Return after submitting instead of following progress.
    #[arg(long)]
    detach: bool,
}

impl TrainArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        let mut config: Value = match &self.config_json {
            Some(text) => serde_json::from_str(text).context("--config-json is not valid JSON")?,
            None => json!({}),
        };
        let set = |config: &mut Value, k: &str, v: Value| config[k] = v;
        if let Some(a) = &self.architecture {
            set(&mut config, "architecture", json!(a));
        }
        if let Some(v) = self.epochs {
            set(&mut config, "epochs", json!(v));
        }
        if let Some(v) = self.batch_size {
            set(&mut config, "batch_size", json!(v));
        }
        if let Some(v) = self.learning_rate {
            set(&mut config, "learning_rate", json!(v));
        }
        if let Some(v) = self.validation_split {
            set(&mut config, "validation_split", json!(v));
        }
        if let Some(v) = self.seed {
            set(&mut config, "seed", json!(v));
        }
        let job = c
            .post(
                "/api/v1/jobs",
                json!({"dataset": self.dataset, "model": self.model, "test_dataset": self.test_dataset,
                       "config": config, "deploy": self.deploy}),
            )
            .await?;
        let id = job["id"].as_str().unwrap_or_default().to_string();
        println!("job {id} queued");
        if self.detach {
            return Ok(());
        }
        follow(&c, &id).await?;
        let job = c.get(&format!("/api/v1/jobs/{id}")).await?;
        print_job_result(&job)
    }
}

/// Follow a job's SSE stream, drawing a progress bar per training phase.
async fn follow(c: &Client, id: &str) -> Result<()> {
    let resp = c
        .req(reqwest::Method::GET, &format!("/api/v1/jobs/{id}/events"))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("cannot follow job {id} (HTTP {})", resp.status().as_u16());
    }
    let mut events = crate::sse::events(resp);
    let mut bar: Option<ProgressBar> = None;
    // Progress bars only on a terminal; piped (CI logs) a plain line per epoch instead.
    let plain = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let style = ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    while let Some(event) = events.next().await {
        let event = event?;
        if event.event == "end" {
            if let Some(b) = bar.take() {
                b.finish();
            }
            return Ok(());
        }
        let Ok(ev) = serde_json::from_str::<Value>(&event.data) else {
            continue;
        };
        match ev["type"].as_str().unwrap_or_default() {
            "epoch" | "word2vec_epoch" | "glove_epoch" if plain => {
                eprintln!("{}", plain_progress(&ev))
            }
            "epoch" | "word2vec_epoch" | "glove_epoch" => {
                let total = ev["epochs"].as_u64().unwrap_or(1);
                let name = progress_name(&ev);
                let b = match &bar {
                    Some(b) if b.prefix() == name => b.clone(),
                    _ => {
                        if let Some(old) = bar.take() {
                            old.finish();
                        }
                        let b = ProgressBar::new(total)
                            .with_style(style.clone())
                            .with_prefix(name);
                        bar = Some(b.clone());
                        b
                    }
                };
                b.set_position(ev["epoch"].as_u64().unwrap_or(0));
                if let Some(acc) = ev["val_accuracy"].as_f64() {
                    b.set_message(format!(
                        "loss {:.4} val_acc {acc:.4}",
                        ev["train_loss"].as_f64().unwrap_or(0.0)
                    ));
                } else if let Some(w) = ev["words_per_second"].as_f64() {
                    b.set_message(format!("{:.0} words/s", w));
                } else if let Some(cost) = ev["cost"].as_f64() {
                    b.set_message(format!("cost {cost:.4}"));
                }
            }
            "log" => eprintln!("{}", ev["message"].as_str().unwrap_or_default()),
            _ => {}
        }
    }
    Ok(())
}

/// What an epoch event trains: the word vectors, or an architecture (and its search trial).
fn progress_name(ev: &Value) -> String {
    match ev["type"].as_str() {
        Some("word2vec_epoch") => "word2vec".into(),
        Some("glove_epoch") => "glove".into(),
        _ => {
            let arch = ev["architecture"].as_str().unwrap_or("train");
            match ev["trial"].as_str() {
                Some(trial) => format!("{arch} {trial}"),
                None => arch.to_string(),
            }
        }
    }
}

/// One line for a progress event, for logs.
fn plain_progress(ev: &Value) -> String {
    let of = format!("{}/{}", ev["epoch"], ev["epochs"]);
    if ev["type"] == "word2vec_epoch" {
        return format!(
            "word2vec epoch {of}: {:.0} words/s",
            ev["words_per_second"].as_f64().unwrap_or(0.0)
        );
    }
    if ev["type"] == "glove_epoch" {
        return format!(
            "glove epoch {of}: cost {:.4}",
            ev["cost"].as_f64().unwrap_or(0.0)
        );
    }
    let mut line = format!(
        "{} epoch {of}: loss {:.4} accuracy {:.4}",
        progress_name(ev),
        ev["train_loss"].as_f64().unwrap_or(0.0),
        ev["train_accuracy"].as_f64().unwrap_or(0.0)
    );
    if let Some(acc) = ev["val_accuracy"].as_f64() {
        line.push_str(&format!(
            " val_loss {:.4} val_accuracy {acc:.4}",
            ev["val_loss"].as_f64().unwrap_or(0.0)
        ));
    }
    line
}

fn print_job_result(job: &Value) -> Result<()> {
    let status = job["status"].as_str().unwrap_or_default();
    if status != "succeeded" {
        bail!(
            "job {} {status}{}",
            job["id"].as_str().unwrap_or_default(),
            job["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    let report = &job["report"];
    println!(
        "model {}:{} ({})",
        job["model_name"].as_str().unwrap_or_default(),
        job["model_version"],
        report["architecture"].as_str().unwrap_or_default()
    );
    println!(
        "{:<14} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "CANDIDATE", "SPLIT", "ACCURACY", "PRECISION", "RECALL", "F1"
    );
    for cand in report["candidates"].as_array().into_iter().flatten() {
        for split in ["validation", "test"] {
            let m = &cand[split];
            if m.is_null() {
                continue;
            }
            println!(
                "{:<14} {:>8} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
                cand["architecture"].as_str().unwrap_or_default(),
                split,
                m["accuracy"].as_f64().unwrap_or(0.0),
                m["macro_precision"].as_f64().unwrap_or(0.0),
                m["macro_recall"].as_f64().unwrap_or(0.0),
                m["macro_f1"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: JobsCmd,
}

#[derive(Subcommand, Debug)]
enum JobsCmd {
    List,
    Show {
        id: String,
    },
    Cancel {
        id: String,
    },
    /// Follow a running job until it ends.
    Watch {
        id: String,
    },
}

impl JobsArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        match self.cmd {
            JobsCmd::List => {
                let v = c.get("/api/v1/jobs").await?;
                println!("{:<38} {:<20} {:<10} VERSION", "ID", "MODEL", "STATUS");
                for j in v["jobs"].as_array().into_iter().flatten() {
                    println!(
                        "{:<38} {:<20} {:<10} {}",
                        j["id"].as_str().unwrap_or_default(),
                        j["model_name"].as_str().unwrap_or_default(),
                        j["status"].as_str().unwrap_or_default(),
                        j["model_version"]
                    );
                }
            }
            JobsCmd::Show { id } => {
                print_json(&c.get(&format!("/api/v1/jobs/{}", enc(&id))).await?)
            }
            JobsCmd::Cancel { id } => {
                let j = c
                    .post(&format!("/api/v1/jobs/{}/cancel", enc(&id)), json!({}))
                    .await?;
                println!("job {id}: {}", j["status"].as_str().unwrap_or_default());
            }
            JobsCmd::Watch { id } => {
                follow(&c, &id).await?;
                print_job_result(&c.get(&format!("/api/v1/jobs/{}", enc(&id))).await?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_name_the_vectors_and_the_search_trial() {
        let glove =
            serde_json::json!({"type": "glove_epoch", "epoch": 3, "epochs": 15, "cost": 0.04213});
        assert_eq!(plain_progress(&glove), "glove epoch 3/15: cost 0.0421");
        let trial = serde_json::json!({"type": "epoch", "architecture": "avgpool",
            "trial": "lr=0.003 init=glove", "epoch": 2, "epochs": 10,
            "train_loss": 0.5, "train_accuracy": 0.8});
        assert_eq!(
            plain_progress(&trial),
            "avgpool lr=0.003 init=glove epoch 2/10: loss 0.5000 accuracy 0.8000"
        );
        let first = serde_json::json!({"type": "epoch", "architecture": "avgpool"});
        assert_eq!(progress_name(&first), "avgpool");
    }
}
