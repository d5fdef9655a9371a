//! Builds the web console (`web/`, TypeScript + Vite) and embeds its files: the binary
//! serves it at `/` with no separate server and no network at run time.
//!
//! - `AIAAS_CONSOLE_DIST=DIR`: embed an already built console from DIR instead.
//! - Without Node.js/npm the console is replaced by a page saying how to build it (and
//!   cargo prints a warning); the API is unaffected.
//!
//! `npm ci` runs only when `web/node_modules` is missing or older than the lock file;
//! the Vite build runs whenever a console source changes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let web = manifest.join("../../web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("console");
    println!("cargo:rerun-if-env-changed=AIAAS_CONSOLE_DIST");
    for watched in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(watched).display());
    }
    let _ = std::fs::remove_dir_all(&out);
    let dist = match std::env::var_os("AIAAS_CONSOLE_DIST") {
        Some(dir) => PathBuf::from(dir),
        None => match build_console(&web, &out) {
            Ok(()) => out.clone(),
            Err(why) => {
                println!("cargo:warning=the web console is not built ({why}); the binary serves a page saying so");
                placeholder(&out, &why);
                out.clone()
            }
        },
    };
    write_table(&dist);
}

fn build_console(web: &Path, out: &Path) -> Result<(), String> {
    if !web.join("package.json").is_file() {
        return Err(format!("no {}", web.join("package.json").display()));
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        return Err(
            "npm is not installed: run scripts/setup.sh, or install Node.js 20+ and npm".into(),
        );
    }
    let stamp = web.join("node_modules/.package-lock.json");
    let lock = web.join("package-lock.json");
    let stale = match (modified(&stamp), modified(&lock)) {
        (Some(s), Some(l)) => s < l,
        _ => true,
    };
    if stale {
        run(Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(web))?;
    }
    run(Command::new(npm)
        .args(["run", "build"])
        .env("AIAAS_WEB_OUT", out)
        .current_dir(web))
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let output = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        s.lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ")
    };
    Err(format!(
        "{shown} failed: {} {}",
        tail(&output.stdout),
        tail(&output.stderr)
    ))
}

fn placeholder(out: &Path, why: &str) {
    let escaped = why
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let page = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>aiaas</title>\
         <h1>The aiaas web console was not built</h1>\
         <p>{escaped}</p><p>Build it with <code>scripts/setup.sh</code> (installs Node.js), then rebuild aiaas. \
         The API works without it: see <a href=\"/docs\">/docs</a>.</p>"
    );
    std::fs::create_dir_all(out).expect("OUT_DIR is writable");
    std::fs::write(out.join("index.html"), page).expect("OUT_DIR is writable");
}

/// `console_files.rs`: every file of the built console as (path, bytes, content type).
fn write_table(dist: &Path) {
    let mut files = Vec::new();
    collect(dist, dist, &mut files);
    files.sort();
    let mut table = String::from("pub static FILES: &[(&str, &[u8], &str)] = &[\n");
    for (rel, abs) in &files {
        let kind = match Path::new(rel).extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("ico") => "image/x-icon",
            Some("woff2") => "font/woff2",
            Some("json") => "application/json",
            _ => "application/octet-stream",
        };
        println!("cargo:rerun-if-changed={}", abs.display());
        let _ = writeln!(
            table,
            "    ({rel:?}, include_bytes!({:?}), {kind:?}),",
            abs.display().to_string()
        );
    }
    table.push_str("];\n");
    let target =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("console_files.rs");
    std::fs::write(target, table).expect("OUT_DIR is writable");
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((rel, path.canonicalize().unwrap_or(path.clone())));
        }
    }
}
