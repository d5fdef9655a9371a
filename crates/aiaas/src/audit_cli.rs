//! `aiaas audit`: verify the chain straight from a data directory (no server needed),
//! or list and export entries from a running server.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use crate::client::{print_json, Conn};

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check that no entry was deleted, reordered or edited (reads the data directory).
    Verify {
        /// Data directory of the installation.
        #[arg(long, env = "AIAAS_DATA_DIR", default_value = "aiaas-data")]
        data_dir: PathBuf,
        /// Metadata database URL, when it is not the data directory's SQLite file.
        #[arg(long, env = "AIAAS_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// List entries, oldest first (filters: tenant, key, action prefix, outcome, time).
    List(Filters),
    /// Every matching entry as JSON lines on stdout.
    Export(Filters),
}

#[derive(Args, Debug)]
struct Filters {
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    key: Option<String>,
    /// Actions starting with this, e.g. `auth.` or `POST /api/v1/keys`.
    #[arg(long)]
    action: Option<String>,
    /// success, denied or failed.
    #[arg(long)]
    outcome: Option<String>,
    /// Entries at or after this time (epoch milliseconds).
    #[arg(long)]
    since: Option<i64>,
    #[arg(long)]
    limit: Option<i64>,
}

impl Filters {
    fn query(&self) -> String {
        let mut q = Vec::new();
        let mut add = |k: &str, v: String| q.push(format!("{k}={}", crate::client::enc(&v)));
        if let Some(v) = &self.tenant {
            add("tenant", v.clone());
        }
        if let Some(v) = &self.key {
            add("key", v.clone());
        }
        if let Some(v) = &self.action {
            add("action", v.clone());
        }
        if let Some(v) = &self.outcome {
            add("outcome", v.clone());
        }
        if let Some(v) = self.since {
            add("since", v.to_string());
        }
        if let Some(v) = self.limit {
            add("limit", v.to_string());
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }
}

impl AuditArgs {
    pub async fn run(self) -> Result<()> {
        match self.command {
            AuditCommand::Verify {
                data_dir,
                database_url,
            } => {
                let v = aiaas_core::verify_data_dir(&data_dir, database_url.as_deref()).await?;
                match &v.head {
                    Some(h) => println!("{} entries, head {} {}", v.entries, h.seq, h.hash),
                    None => println!("the audit log is empty"),
                }
                if v.ok() {
                    println!("audit chain intact");
                    Ok(())
                } else {
                    for p in &v.problems {
                        println!("PROBLEM: {p}");
                    }
                    bail!(
                        "the audit chain is broken ({} problem(s))",
                        v.problems.len()
                    )
                }
            }
            AuditCommand::List(f) => {
                let client = self.conn.client()?;
                print_json(&client.get(&format!("/api/v1/audit{}", f.query())).await?);
                Ok(())
            }
            AuditCommand::Export(f) => {
                let client = self.conn.client()?;
                let resp = client
                    .req(
                        reqwest::Method::GET,
                        &format!("/api/v1/audit/export{}", f.query()),
                    )
                    .send()
                    .await?;
                let resp = client.check(resp).await?;
                print!("{}", resp.text().await?);
                Ok(())
            }
        }
    }
}
