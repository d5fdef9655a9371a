//! Read pages in rounds and time each round (bench/ocr/run.sh runs it beside RapidOCR).
//!
//!   ocr_pages LIBONNXRUNTIME MODEL_DIR PAGES_DIR THREADS INSTANCES ROUNDS
//!
//! PAGES_DIR holds `pages.json` (tests/ocr/make_pages.py) and the pages it lists. Each
//! round decodes and reads every page; prints one JSON line per round, then the lines of
//! the last round's pages (for the caller to check against its reference).

use std::path::Path;
use std::time::Instant;

use aiaas_ocr::Ocr;
use aiaas_onnx::{vision, Runtime};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, lib, model, pages, threads, instances, rounds] = &args[..] else {
        eprintln!("usage: ocr_pages LIBONNXRUNTIME MODEL_DIR PAGES_DIR THREADS INSTANCES ROUNDS");
        std::process::exit(2);
    };
    let runtime = Runtime::load(Path::new(lib)).expect("ONNX Runtime");
    let ocr = Ocr::load(
        runtime,
        Path::new(model),
        threads.parse().expect("threads"),
        instances.parse().expect("instances"),
    )
    .expect("model");
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(pages).join("pages.json")).expect("pages.json"),
    )
    .expect("pages.json");
    let files: Vec<Vec<u8>> = index
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| {
            std::fs::read(Path::new(pages).join(p["file"].as_str().expect("file"))).expect("page")
        })
        .collect();
    let mut texts: Vec<Vec<String>> = Vec::new();
    for round in 0..rounds.parse::<usize>().expect("rounds") {
        let started = Instant::now();
        let pages: Vec<_> = files
            .iter()
            .map(|b| vision::decode_on_white(b, vision::MAX_PIXELS).expect("decode"))
            .collect();
        texts = ocr
            .read_pages(&pages)
            .into_iter()
            .map(|lines| {
                lines
                    .expect("read")
                    .into_iter()
                    .map(|l| l.text)
                    .collect::<Vec<_>>()
            })
            .collect();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({"round": round, "images": files.len(), "seconds": seconds})
        );
    }
    println!("{}", serde_json::json!({"texts": texts}));
}
