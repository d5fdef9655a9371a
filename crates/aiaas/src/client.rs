//! The CLI's client commands: each is one or two HTTP calls to a running server.
//! Errors print as one line (the server's message and status) with a non-zero exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// Where the server is and who we are.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Server URL.
    #[arg(
        long,
        env = "AIAAS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API key.
    #[arg(long, env = "AIAAS_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
}

pub(crate) struct Client {
    http: reqwest::Client,
    pub(crate) base: String,
    key: String,
}

impl Conn {
    pub(crate) fn client(&self) -> Result<Client> {
        let key = self
            .api_key
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| anyhow!("no API key: pass --api-key or set AIAAS_API_KEY"))?;
        Ok(Client {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
            base: self.url.trim_end_matches('/').to_string(),
            key,
        })
    }
}

impl Client {
    pub(crate) fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// A response with a success status, or the server's error message.
    pub(crate) async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("{msg} (HTTP {})", status.as_u16());
    }

    pub(crate) async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Value> {
        let resp = rb
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.send(self.req(reqwest::Method::POST, path).json(&body))
            .await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.req(reqwest::Method::DELETE, path)).await
    }
}

pub(crate) fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: KeysCmd,
}

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// Create a key; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// admin, owner, developer, inference, or metrics (reads /metrics only).
        #[arg(long)]
        role: String,
        /// Tenant id or name (admins only; default: your own).
        #[arg(long)]
        tenant: Option<String>,
        /// Comma-separated model names the key may call.
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// Lifetime in seconds.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    List,
    Revoke {
        id: String,
    },
    /// Add a fresh master key and re-wrap every artifact's and model file's data key
    /// under it (payloads are not re-encrypted). Works on the data directory; no server
    /// needed.
    RotateMaster {
        /// Data directory of the installation.
        #[arg(long, env = "AIAAS_DATA_DIR", default_value = "aiaas-data")]
        data_dir: PathBuf,
        /// Where pulled models are kept, if the server was given --models-dir.
        #[arg(long, env = "AIAAS_MODELS_DIR")]
        models_dir: Option<PathBuf>,
        /// Key-ring file (default: `<data-dir>.master-key`).
        #[arg(long, env = "AIAAS_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
        /// Then remove the old keys from the ring (after checking every artifact opens
        /// with the new one).
        #[arg(long)]
        retire_old: bool,
    },
}

impl KeysArgs {
    pub async fn run(self) -> Result<()> {
        if let KeysCmd::RotateMaster {
            data_dir,
            models_dir,
            master_key_file,
            retire_old,
        } = &self.cmd
        {
            let source = master_key_file
                .clone()
                .map(aiaas_core::MasterKeySource::File)
                .unwrap_or_else(|| aiaas_core::MasterKeySource::default_for(data_dir));
            let rotation = aiaas_core::Rotation {
                data_dir: data_dir.clone(),
                models_dir: models_dir.clone(),
                source,
                retire_old: *retire_old,
            };
            let report =
                tokio::task::spawn_blocking(move || aiaas_core::rotate_master(&rotation)).await??;
            println!("new active master key: {}", report.new_key_id);
            println!("re-wrapped objects:    {}", report.rewrapped);
            if !report.retired.is_empty() {
                println!("retired keys:          {}", report.retired.join(", "));
            }
            println!("key file:              {}", report.key_file.display());
            return Ok(());
        }
        let c = self.conn.client()?;
        match self.cmd {
            KeysCmd::RotateMaster { .. } => unreachable!("handled above"),
            KeysCmd::Create {
                name,
                role,
                tenant,
                models,
                expires_in,
            } => {
                let v = c
                    .post(
                        "/api/v1/keys",
                        json!({"name": name, "role": role, "tenant": tenant,
                               "allowed_models": models, "expires_in_secs": expires_in}),
                    )
                    .await?;
                println!("id:     {}", v["id"].as_str().unwrap_or_default());
                println!("role:   {}", v["role"].as_str().unwrap_or_default());
                println!("secret: {}", v["secret"].as_str().unwrap_or_default());
                println!("(shown once: store it now)");
            }
            KeysCmd::List => {
                let v = c.get("/api/v1/keys").await?;
                println!("{:<38} {:<10} {:<20} STATE", "ID", "ROLE", "NAME");
                for k in v["keys"].as_array().into_iter().flatten() {
                    let state = if k["revoked_at"].is_null() {
                        "active"
                    } else {
                        "revoked"
                    };
                    println!(
                        "{:<38} {:<10} {:<20} {}",
                        k["id"].as_str().unwrap_or_default(),
                        k["role"].as_str().unwrap_or_default(),
                        k["name"].as_str().unwrap_or_default(),
                        state
                    );
                }
            }
            KeysCmd::Revoke { id } => {
                c.delete(&format!("/api/v1/keys/{}", enc(&id))).await?;
                println!("revoked {id}");
            }
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct TenantsArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: TenantsCmd,
}

#[derive(Subcommand, Debug)]
enum TenantsCmd {
    Create { name: String },
    List,
}

impl TenantsArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        match self.cmd {
            TenantsCmd::Create { name } => {
                print_json(&c.post("/api/v1/tenants", json!({"name": name})).await?)
            }
            TenantsCmd::List => {
                for t in c.get("/api/v1/tenants").await?["tenants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "{}  {}",
                        t["id"].as_str().unwrap_or_default(),
                        t["name"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct DatasetsArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: DatasetsCmd,
}

#[derive(Subcommand, Debug)]
enum DatasetsCmd {
    /// Upload a CSV or JSONL file (streamed).
    Upload {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        text_column: Option<String>,
        #[arg(long)]
        label_column: Option<String>,
        /// csv or jsonl (detected when absent).
        #[arg(long)]
        format: Option<String>,
    },
    List,
    /// Show a dataset's statistics and a preview of its rows.
    Show {
        id: String,
        #[arg(long, default_value_t = 5)]
        preview: usize,
    },
    Delete {
        id: String,
    },
}

impl DatasetsArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        match self.cmd {
            DatasetsCmd::Upload {
                file,
                name,
                text_column,
                label_column,
                format,
            } => {
                let f = tokio::fs::File::open(&file)
                    .await
                    .with_context(|| format!("cannot open {}", file.display()))?;
                let len = f.metadata().await?.len();
                let mut query = vec![("name", name)];
                query.extend(text_column.map(|v| ("text_column", v)));
                query.extend(label_column.map(|v| ("label_column", v)));
                query.extend(format.map(|v| ("format", v)));
                let rb = c
                    .req(reqwest::Method::POST, "/api/v1/datasets")
                    .query(&query)
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .body(reqwest::Body::from(f));
                let v = c.send(rb).await?;
                println!(
                    "dataset {} ({}): {} rows, {} classes",
                    v["name"].as_str().unwrap_or_default(),
                    v["id"].as_str().unwrap_or_default(),
                    v["row_count"],
                    v["stats"]["classes"]
                );
            }
            DatasetsCmd::List => {
                let v = c.get("/api/v1/datasets").await?;
                println!("{:<38} {:<24} {:>8} {:>8}", "ID", "NAME", "ROWS", "CLASSES");
                for d in v["datasets"].as_array().into_iter().flatten() {
                    println!(
                        "{:<38} {:<24} {:>8} {:>8}",
                        d["id"].as_str().unwrap_or_default(),
                        d["name"].as_str().unwrap_or_default(),
                        d["row_count"],
                        d["stats"]["classes"]
                    );
                }
            }
            DatasetsCmd::Show { id, preview } => {
                let d = c.get(&format!("/api/v1/datasets/{}", enc(&id))).await?;
                print_json(&d);
                let rows = c
                    .get(&format!(
                        "/api/v1/datasets/{}/preview?limit={preview}",
                        enc(&id)
                    ))
                    .await?;
                for r in rows["rows"].as_array().into_iter().flatten() {
                    let text: String = r["text"]
                        .as_str()
                        .unwrap_or_default()
                        .chars()
                        .take(80)
                        .collect();
                    println!(
                        "{:>6}  {:<14} {}",
                        r["line"],
                        r["label"].as_str().unwrap_or_default(),
                        text
                    );
                }
            }
            DatasetsCmd::Delete { id } => {
                c.delete(&format!("/api/v1/datasets/{}", enc(&id))).await?;
                println!("deleted {id}");
            }
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct ModelsArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: ModelsCmd,
}

#[derive(Subcommand, Debug)]
enum ModelsCmd {
    List,
    /// Upload an ONNX model as the next version of NAME (created on first upload).
    Upload {
        name: String,
        /// The .onnx file.
        file: PathBuf,
        /// The configuration as a JSON file (Triton's config.pbtxt fields).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    Show {
        name: String,
    },
    Deploy {
        name: String,
        #[arg(long)]
        version: Option<i64>,
        #[arg(long)]
        alias: Option<String>,
        #[arg(long)]
        max_batch: Option<i64>,
        #[arg(long)]
        max_delay_ms: Option<i64>,
        #[arg(long)]
        queue_capacity: Option<i64>,
        /// Refuse (429) requests expected to wait longer than this; 0: no limit.
        #[arg(long)]
        max_queue_time_ms: Option<i64>,
        /// A canary version answering --canary-percent of the requests (a deploy
        /// without it ends any canary).
        #[arg(long)]
        canary: Option<i64>,
        #[arg(long, requires = "canary", default_value_t = 10)]
        canary_percent: i64,
        /// Roll the canary back by itself when its error rate exceeds the stable
        /// version's by this much (0-1) over --rollback-window-secs.
        #[arg(long, requires = "canary")]
        max_error_rate_increase: Option<f64>,
        #[arg(long, requires = "max_error_rate_increase", default_value_t = 60)]
        rollback_window_secs: i64,
        #[arg(long, requires = "max_error_rate_increase", default_value_t = 50)]
        rollback_min_requests: i64,
    },
    /// Make the canary the deployed version.
    Promote {
        name: String,
    },
    /// End the canary: the stable version takes all traffic.
    Rollback {
        name: String,
    },
    /// What happened to the model: deploys, canaries, promotions, rollbacks.
    Events {
        name: String,
    },
    Undeploy {
        name: String,
    },
    /// Point ALIAS at VERSION.
    Alias {
        name: String,
        alias: String,
        version: i64,
    },
    Delete {
        name: String,
    },
}

impl ModelsArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        match self.cmd {
            ModelsCmd::List => {
                let v = c.get("/api/v1/models").await?;
                println!(
                    "{:<24} {:>7} {:>9} {:<7}",
                    "NAME", "LATEST", "DEPLOYED", "LOADED"
                );
                for m in v["models"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:>7} {:>9} {:<7}",
                        m["name"].as_str().unwrap_or_default(),
                        m["latest_version"],
                        m["deployed_version"],
                        m["loaded"]
                    );
                }
            }
            ModelsCmd::Show { name } => {
                print_json(&c.get(&format!("/api/v1/models/{}", enc(&name))).await?)
            }
            ModelsCmd::Deploy {
                name,
                version,
                alias,
                max_batch,
                max_delay_ms,
                queue_capacity,
                max_queue_time_ms,
                canary,
                canary_percent,
                max_error_rate_increase,
                rollback_window_secs,
                rollback_min_requests,
            } => {
                let mut body = json!({"version": version, "alias": alias, "max_batch": max_batch,
                                  "max_delay_ms": max_delay_ms, "queue_capacity": queue_capacity,
                                  "max_queue_time_ms": max_queue_time_ms});
                if let Some(v) = canary {
                    body["canary"] = json!({"version": v, "percent": canary_percent});
                }
                if let Some(increase) = max_error_rate_increase {
                    body["auto_rollback"] = json!({"max_error_rate_increase": increase,
                        "window_secs": rollback_window_secs, "min_requests": rollback_min_requests});
                }
                let d = c
                    .post(&format!("/api/v1/models/{}/deploy", enc(&name)), body)
                    .await?;
                match d["canary"].as_object() {
                    Some(k) => println!(
                        "{name}: version {} deployed, canary version {} at {}%",
                        d["version"], k["version"], k["percent"]
                    ),
                    None => println!("{name}: version {} deployed", d["version"]),
                }
            }
            ModelsCmd::Promote { name } => {
                let d = c
                    .post(&format!("/api/v1/models/{}/promote", enc(&name)), json!({}))
                    .await?;
                println!("{name}: canary promoted, version {} deployed", d["version"]);
            }
            ModelsCmd::Rollback { name } => {
                let d = c
                    .post(
                        &format!("/api/v1/models/{}/rollback", enc(&name)),
                        json!({}),
                    )
                    .await?;
                println!(
                    "{name}: canary rolled back, version {} serves",
                    d["version"]
                );
            }
            ModelsCmd::Events { name } => {
                let v = c
                    .get(&format!("/api/v1/models/{}/events", enc(&name)))
                    .await?;
                for e in v.as_array().into_iter().flatten() {
                    let at = e["at"].as_i64().unwrap_or_default();
                    let when = jiff::Timestamp::from_millisecond(at)
                        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default();
                    let reason = e["detail"]["reason"].as_str().unwrap_or_default();
                    println!(
                        "{when}  {:<20} {}",
                        e["kind"].as_str().unwrap_or_default(),
                        if reason.is_empty() {
                            e["detail"].to_string()
                        } else {
                            reason.to_string()
                        }
                    );
                }
            }
            ModelsCmd::Upload { name, file, config } => {
                let config = match config {
                    None => None,
                    Some(path) => {
                        let text = std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        serde_json::from_str::<Value>(&text)
                            .with_context(|| format!("{} is not JSON", path.display()))?;
                        Some(text)
                    }
                };
                upload_model(&c, &name, &file, config).await?
            }
            ModelsCmd::Undeploy { name } => {
                c.post(
                    &format!("/api/v1/models/{}/undeploy", enc(&name)),
                    json!({}),
                )
                .await?;
                println!("{name}: undeployed");
            }
            ModelsCmd::Alias {
                name,
                alias,
                version,
            } => {
                c.post(
                    &format!("/api/v1/models/{}/aliases", enc(&name)),
                    json!({"alias": alias, "version": version}),
                )
                .await?;
                println!("{name}:{alias} -> version {version}");
            }
            ModelsCmd::Delete { name } => {
                c.delete(&format!("/api/v1/models/{}", enc(&name))).await?;
                println!("{name}: deleted");
            }
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    conn: Conn,
    /// Model name, `name:version` or `name:alias`.
    model: String,
    /// Texts to classify.
    #[arg(required = true)]
    texts: Vec<String>,
}

impl PredictArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        let v = c
            .post(
                &format!("/api/v1/models/{}/predict", enc(&self.model)),
                json!({"texts": self.texts}),
            )
            .await?;
        for (text, p) in self
            .texts
            .iter()
            .zip(v["predictions"].as_array().into_iter().flatten())
        {
            let short: String = text.chars().take(60).collect();
            println!(
                "{:<14} {:.3}  {short}",
                p["label"].as_str().unwrap_or_default(),
                p["confidence"].as_f64().unwrap_or(0.0)
            );
        }
        Ok(())
    }
}

/// `models upload`: the file streamed as the request body behind a progress bar, the
/// configuration (checked to be JSON here) in the query string.
/// Upload `file` as the next version of `name`, with `config` (JSON text), showing progress.
pub(crate) async fn upload_model(
    c: &Client,
    name: &str,
    file: &Path,
    config: Option<String>,
) -> Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    use tokio::io::AsyncReadExt;

    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let len = f.metadata().await?.len();
    let mut query = Vec::new();
    if let Some(text) = config {
        query.push(("config", text));
    }
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{bytes:>10}/{total_bytes} [{bar:30}] {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let counted = bar.clone();
    let chunks = futures_util::stream::unfold(Some(f), move |f| {
        let bar = counted.clone();
        async move {
            let mut f = f?;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    bar.inc(n as u64);
                    Some((Ok::<_, std::io::Error>(buf), Some(f)))
                }
                // The error ends the body; nothing is read after it.
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    let rb = c
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/models/{}/versions", enc(name)),
        )
        .query(&query)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, len)
        .body(reqwest::Body::wrap_stream(chunks));
    let sent = c.send(rb).await;
    bar.finish_and_clear();
    let v = sent?;
    let tensors = |key: &str| -> String {
        v["config"][key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "{} {} {}",
                    t["name"].as_str().unwrap_or_default(),
                    t["datatype"].as_str().unwrap_or_default(),
                    t["dims"]
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{name}: version {} uploaded ({}); inputs: {}; outputs: {}",
        v["version"],
        v["architecture"].as_str().unwrap_or_default(),
        tensors("inputs"),
        tensors("outputs")
    );
    Ok(())
}
