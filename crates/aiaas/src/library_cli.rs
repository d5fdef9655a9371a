//! Ollama-style commands for the model library: `pull`, `list`, `ps`, `rm`, `show` and
//! `run` (a one-shot prompt, or an interactive chat with streamed replies).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::client::{enc, print_json, Conn};

#[derive(Args, Debug)]
pub struct PullArgs {
    #[command(flatten)]
    conn: Conn,
    /// A catalogue name (see `aiaas list --catalogue`), a local `.gguf` file or Hugging
    /// Face folder (paths as the server sees them), or a Hugging Face repo (`hf:org/name`).
    source: String,
    /// Install under this name.
    #[arg(long)]
    name: Option<String>,
    /// Take a local folder as an ONNX model even when it also holds other weights.
    #[arg(long)]
    onnx: bool,
}

impl PullArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        // An ONNX model here (a file, or a Hugging Face export folder) becomes the next
        // version of one of the tenant's models, uploaded from this machine.
        if let Some(found) = local_onnx(std::path::Path::new(&self.source), self.onnx)? {
            let name = self.name.clone().unwrap_or(found.name);
            return crate::client::upload_model(&c, &name, &found.file, found.config).await;
        }
        let resp = c
            .req(reqwest::Method::POST, "/api/v1/library/pull")
            .json(&json!({"source": self.source, "name": self.name}))
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", c.base))?;
        let resp = c.check(resp).await?;
        let tty = std::io::stderr().is_terminal();
        let bar = ProgressBar::new(0);
        if tty {
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:24} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        } else {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let mut last_status = String::new();
        let mut lines = LineStream::new(resp);
        while let Some(line) = lines.next_line().await? {
            let v: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if let Some(e) = v.get("error") {
                bar.abandon();
                bail!("{}", e["message"].as_str().unwrap_or("pull failed"));
            }
            let status = v["status"].as_str().unwrap_or_default().to_string();
            if status == "success" {
                bar.finish_and_clear();
                let m = &v["model"];
                println!(
                    "pulled {} ({}, {}, {})",
                    m["name"].as_str().unwrap_or("?"),
                    m["task"].as_str().unwrap_or("?"),
                    human_bytes(m["size_bytes"].as_u64().unwrap_or(0)),
                    m["source"].as_str().unwrap_or("?")
                );
                return Ok(());
            }
            if let Some(total) = v["total"].as_u64() {
                bar.set_length(total);
            }
            bar.set_position(v["completed"].as_u64().unwrap_or(0));
            if status != last_status {
                bar.set_message(status.clone());
                if !tty {
                    eprintln!("{status}");
                }
                last_status = status;
            }
        }
        bail!("the server closed the pull before it finished")
    }
}

/// A local ONNX model to upload: its file, its configuration, a default model name.
struct LocalOnnx {
    file: std::path::PathBuf,
    config: Option<String>,
    name: String,
}

/// `path` as an ONNX model: an `.onnx` file, or a folder with `model.onnx`,
/// `onnx/model.onnx` or one `.onnx` file (and no other weights at its top, unless
/// `force`), whose `config.json` may name the classes (`id2label`).
fn local_onnx(path: &std::path::Path, force: bool) -> Result<Option<LocalOnnx>> {
    let is_onnx = |p: &std::path::Path| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    };
    let name_of = |p: &std::path::Path| {
        p.canonicalize()
            .ok()
            .and_then(|c| c.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into())
    };
    if path.is_file() {
        return Ok(is_onnx(path).then(|| LocalOnnx {
            file: path.to_path_buf(),
            config: None,
            name: name_of(path),
        }));
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return Ok(None);
    };
    let top: Vec<std::path::PathBuf> = entries.flatten().map(|e| e.path()).collect();
    let other_weights = top.iter().any(|p| {
        p.extension()
            .is_some_and(|e| e == "safetensors" || e == "gguf" || e == "bin")
    });
    if other_weights && !force {
        return Ok(None);
    }
    let singles: Vec<&std::path::PathBuf> = top.iter().filter(|p| is_onnx(p)).collect();
    let file = [
        path.join("model.onnx"),
        path.join("onnx").join("model.onnx"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .or_else(|| (singles.len() == 1).then(|| singles[0].clone()));
    let Some(file) = file else {
        return Ok(None);
    };
    let config = match std::fs::read_to_string(path.join("config.json")) {
        Err(_) => None,
        Ok(text) => {
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", path.join("config.json").display()))?;
            id2label(&v).map(|labels| json!({"labels": labels}).to_string())
        }
    };
    Ok(Some(LocalOnnx {
        file,
        config,
        name: name_of(path),
    }))
}

/// A Hugging Face config's `id2label` as a list in index order (when it is 0..n).
fn id2label(config: &Value) -> Option<Vec<String>> {
    let map = config.get("id2label")?.as_object()?;
    let mut labels = vec![None; map.len()];
    for (k, v) in map {
        let i: usize = k.parse().ok()?;
        *labels.get_mut(i)? = Some(v.as_str()?.to_string());
    }
    labels.into_iter().collect()
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    conn: Conn,
    /// Show the catalogue (what `pull` can fetch by name) instead.
    #[arg(long)]
    catalogue: bool,
    #[arg(long)]
    json: bool,
}

impl ListArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        let path = if self.catalogue {
            "/api/v1/library/catalogue"
        } else {
            "/api/v1/library"
        };
        let v = c.get(path).await?;
        if self.json {
            print_json(&v);
            return Ok(());
        }
        let models = v["models"].as_array().cloned().unwrap_or_default();
        if self.catalogue {
            println!(
                "{:<26} {:<11} {:>9}  {:<9} DESCRIPTION",
                "NAME", "TASK", "SIZE", "INSTALLED"
            );
            for m in models {
                println!(
                    "{:<26} {:<11} {:>9}  {:<9} {}",
                    m["name"].as_str().unwrap_or(""),
                    m["task"].as_str().unwrap_or(""),
                    human_bytes(m["download_bytes"].as_u64().unwrap_or(0)),
                    if m["installed"].as_bool() == Some(true) {
                        "yes"
                    } else {
                        "no"
                    },
                    m["description"].as_str().unwrap_or("")
                );
            }
            return Ok(());
        }
        println!(
            "{:<26} {:<11} {:<5} {:>9}  {:<7} SOURCE",
            "NAME", "TASK", "FMT", "SIZE", "LOADED"
        );
        for m in models {
            println!(
                "{:<26} {:<11} {:<5} {:>9}  {:<7} {}",
                m["name"].as_str().unwrap_or(""),
                m["task"].as_str().unwrap_or(""),
                m["format"].as_str().unwrap_or(""),
                human_bytes(m["size_bytes"].as_u64().unwrap_or(0)),
                if m["loaded"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                m["source"].as_str().unwrap_or("")
            );
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct PsArgs {
    #[command(flatten)]
    conn: Conn,
    #[arg(long)]
    json: bool,
}

impl PsArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        let v = c.get("/api/v1/ps").await?;
        if self.json {
            print_json(&v);
            return Ok(());
        }
        println!(
            "{:<32} {:<10} {:>9} {:>8} {:>9} {:>10}",
            "MODEL", "KIND", "MEMORY", "SLOTS", "IN FLIGHT", "IDLE"
        );
        for m in v["models"].as_array().cloned().unwrap_or_default() {
            let slots = match (m["slots_busy"].as_u64(), m["slots"].as_u64()) {
                (Some(b), Some(t)) => format!("{b}/{t}"),
                _ => "-".into(),
            };
            println!(
                "{:<32} {:<10} {:>9} {:>8} {:>9} {:>9.0}s",
                m["label"].as_str().unwrap_or(""),
                m["kind"].as_str().unwrap_or(""),
                human_bytes(m["memory_bytes"].as_u64().unwrap_or(0)),
                slots,
                m["in_flight"].as_u64().unwrap_or(0),
                m["idle_for"].as_f64().unwrap_or(0.0)
            );
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct RmArgs {
    #[command(flatten)]
    conn: Conn,
    name: String,
}

impl RmArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        c.delete(&format!("/api/v1/library/{}", enc(&self.name)))
            .await?;
        println!("removed {}", self.name);
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    conn: Conn,
    name: String,
}

impl ShowArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        print_json(
            &c.get(&format!("/api/v1/library/{}", enc(&self.name)))
                .await?,
        );
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    conn: Conn,
    model: String,
    /// The prompt; without one, an interactive chat (end with /bye or Ctrl-D).
    prompt: Option<String>,
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    max_tokens: Option<u32>,
    #[arg(long)]
    seed: Option<i64>,
    /// A system message for chat models.
    #[arg(long)]
    system: Option<String>,
    /// A JSON file of function tools (OpenAI's `tools` list) the model may call; its
    /// calls are shown, and in an interactive chat their results are asked for.
    #[arg(long)]
    tools: Option<std::path::PathBuf>,
    /// none, auto (default), required, or the name of a tool to call.
    #[arg(long, requires = "tools")]
    tool_choice: Option<String>,
}

/// A tool call assembled from a stream's `delta.tool_calls` pieces.
#[derive(Debug, Default)]
struct StreamedCall {
    id: String,
    name: String,
    arguments: String,
}

impl RunArgs {
    pub async fn run(self) -> Result<()> {
        let c = self.conn.client()?;
        let info = c
            .get(&format!("/api/v1/library/{}", enc(&self.model)))
            .await?;
        let task = info["task"].as_str().unwrap_or("chat").to_string();
        if task == "embedding" {
            bail!(
                "{} is an embedding model; `run` is for chat and completion models",
                self.model
            );
        }
        let tools = self.tools_json()?;
        let mut history: Vec<Value> = Vec::new();
        if let Some(s) = &self.system {
            history.push(json!({"role": "system", "content": s}));
        }
        if let Some(prompt) = &self.prompt {
            self.turn(&c, &task, &tools, &mut history, Some(prompt))
                .await?;
            return Ok(());
        }
        let interactive = std::io::stdin().is_terminal();
        let stdin = std::io::stdin();
        loop {
            if interactive {
                eprint!(">>> ");
                let _ = std::io::stderr().flush();
            }
            let mut line = String::new();
            if stdin.lock().read_line(&mut line)? == 0 {
                break;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line == "/bye" || line == "/exit" {
                break;
            }
            let mut prompt = Some(line.to_string());
            // A reply that calls tools asks for their results, then goes on (the model
            // then chooses: `--tool-choice` is for the turn after your message).
            loop {
                let choice = match (&prompt, &tools) {
                    (None, Some((list, _))) => Some((list.clone(), json!("auto"))),
                    _ => tools.clone(),
                };
                let calls = self
                    .turn(&c, &task, &choice, &mut history, prompt.take().as_deref())
                    .await?;
                if calls.is_empty() || !tool_results(&calls, &mut history)? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `tools` and `tool_choice` for the request body, from `--tools` and `--tool-choice`.
    fn tools_json(&self) -> Result<Option<(Value, Value)>> {
        let Some(path) = &self.tools else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let tools: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let tools = match tools {
            Value::Array(_) => tools,
            one @ Value::Object(_) => json!([one]),
            _ => bail!("{} must hold a list of tools", path.display()),
        };
        let choice = match self.tool_choice.as_deref() {
            None => json!("auto"),
            Some(c @ ("none" | "auto" | "required")) => json!(c),
            Some(name) => json!({"type": "function", "function": {"name": name}}),
        };
        Ok(Some((tools, choice)))
    }

    /// One exchange: stream the reply to stdout and remember it; the tools it called.
    async fn turn(
        &self,
        c: &crate::client::Client,
        task: &str,
        tools: &Option<(Value, Value)>,
        history: &mut Vec<Value>,
        prompt: Option<&str>,
    ) -> Result<Vec<StreamedCall>> {
        let chat = task == "chat";
        let prompt = prompt.unwrap_or_default();
        let mut body = json!({"model": self.model, "stream": true});
        if chat {
            if !prompt.is_empty() {
                history.push(json!({"role": "user", "content": prompt}));
            }
            body["messages"] = json!(history);
            if let Some((list, choice)) = tools {
                body["tools"] = list.clone();
                body["tool_choice"] = choice.clone();
            }
        } else {
            body["prompt"] = json!(prompt);
        }
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = self.max_tokens {
            body["max_tokens"] = json!(m);
        }
        if let Some(s) = self.seed {
            body["seed"] = json!(s);
        }
        let path = if chat {
            "/v1/chat/completions"
        } else {
            "/v1/completions"
        };
        let resp = c
            .req(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", c.base))?;
        let resp = c.check(resp).await?;
        let mut reply = String::new();
        let mut calls: Vec<StreamedCall> = Vec::new();
        let mut out = std::io::stdout();
        if !chat {
            print!("{prompt}");
        }
        let mut events = crate::sse::events(resp);
        while let Some(event) = events.next().await {
            let data = event?.data;
            if data == "[DONE]" {
                break;
            }
            let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            if let Some(e) = v.get("error") {
                bail!("{}", e["message"].as_str().unwrap_or("generation failed"));
            }
            let piece = if chat {
                v["choices"][0]["delta"]["content"].as_str()
            } else {
                v["choices"][0]["text"].as_str()
            };
            if let Some(p) = piece {
                reply.push_str(p);
                print!("{p}");
                let _ = out.flush();
            }
            for piece in v["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let index = piece["index"].as_u64().unwrap_or(0) as usize;
                if calls.len() <= index {
                    calls.resize_with(index + 1, StreamedCall::default);
                }
                let call = &mut calls[index];
                let text = |k: &str| piece["function"][k].as_str().unwrap_or_default();
                if let Some(id) = piece["id"].as_str() {
                    call.id = id.to_string();
                }
                call.name.push_str(text("name"));
                call.arguments.push_str(text("arguments"));
            }
        }
        for call in &calls {
            println!(
                "[tool call] {}({})  id {}",
                call.name, call.arguments, call.id
            );
        }
        if calls.is_empty() {
            println!();
        }
        if chat {
            let mut message = json!({"role": "assistant", "content": reply});
            if !calls.is_empty() {
                message["tool_calls"] = json!(calls
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments}}))
                    .collect::<Vec<_>>());
            }
            history.push(message);
        }
        Ok(calls)
    }
}

/// Ask on stdin for each call's result and add them to the conversation; false when
/// stdin ended (nothing to continue with).
fn tool_results(calls: &[StreamedCall], history: &mut Vec<Value>) -> Result<bool> {
    let stdin = std::io::stdin();
    for call in calls {
        eprint!("result of {} ({})> ", call.name, call.id);
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(false);
        }
        history.push(json!({"role": "tool", "tool_call_id": call.id,
            "content": line.trim_end_matches(['\r', '\n'])}));
    }
    Ok(true)
}

/// Lines of a streamed response body.
struct LineStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl LineStream {
    fn new(resp: reqwest::Response) -> LineStream {
        LineStream {
            resp,
            buf: Vec::new(),
        }
    }

    async fn next_line(&mut self) -> Result<Option<String>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                return Ok(Some(text));
            }
            match self.resp.chunk().await.context("the connection broke")? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let text = String::from_utf8_lossy(&self.buf).to_string();
                    self.buf.clear();
                    return Ok(Some(text));
                }
            }
        }
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
