//! Throughput of `Embedder::embed` (tokenization, encoder, pooling, normalisation) on a file
//! of sentences, one per line, in calls of `--batch` texts. Prints one JSON line.
//!
//! ```sh
//! cargo run --release -p aiaas-embed --example embed_bench -- \
//!     --model DIR --sentences FILE --batch 32 --seconds 5
//! ```
//! bench/embed/run.sh runs it side by side with onnxruntime.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aiaas_embed::{EmbedOptions, Embedder, EmbedderConfig};

struct Args {
    model: PathBuf,
    sentences: PathBuf,
    batch: usize,
    seconds: f64,
    threads: Option<usize>,
    split_by_length: bool,
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}\nusage: embed_bench --model DIR --sentences FILE [--batch N] [--seconds S] [--threads N] [--no-split]");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("embed_bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(&args.sentences)?;
    let sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if sentences.is_empty() {
        return Err("no sentences".into());
    }
    let config = EmbedderConfig {
        max_batch: args.batch.max(1),
        threads: args.threads,
        split_by_length: args.split_by_length,
        ..EmbedderConfig::default()
    };
    let embedder = Embedder::load_with(&args.model, config)?;
    let opts = EmbedOptions { truncate: true };
    let pass = |embedder: &Embedder| -> Result<usize, aiaas_embed::EmbedError> {
        let mut tokens = 0;
        for chunk in sentences.chunks(args.batch.max(1)) {
            tokens += embedder
                .embed(chunk, opts)?
                .iter()
                .map(|e| e.tokens)
                .sum::<usize>();
        }
        Ok(tokens)
    };
    pass(&embedder)?; // warm-up: page in weights, start the thread pool
    let budget = Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let (mut passes, mut tokens) = (0usize, 0usize);
    while passes == 0 || start.elapsed() < budget {
        tokens += pass(&embedder)?;
        passes += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let done = passes * sentences.len();
    println!(
        "{{\"impl\":\"aiaas-embed\",\"split_by_length\":{},\"batch\":{},\"sentences\":{},\"tokens\":{},\"seconds\":{:.3},\"sentences_per_s\":{:.1}}}",
        args.split_by_length,
        args.batch,
        done,
        tokens,
        secs,
        done as f64 / secs
    );
    Ok(())
}

fn parse_args() -> Result<Args, String> {
    let mut model = None;
    let mut sentences = None;
    let (mut batch, mut seconds, mut threads, mut split_by_length) = (32usize, 5f64, None, true);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value()?)),
            "--sentences" => sentences = Some(PathBuf::from(value()?)),
            "--batch" => batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--seconds" => seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--threads" => threads = Some(value()?.parse().map_err(|e| format!("--threads: {e}"))?),
            "--no-split" => split_by_length = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        model: model.ok_or("--model is required")?,
        sentences: sentences.ok_or("--sentences is required")?,
        batch,
        seconds,
        threads,
        split_by_length,
    })
}
