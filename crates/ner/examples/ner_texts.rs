//! Find the entities of a corpus's texts in rounds and time each round (bench/ner/run.sh
//! runs it beside Python).
//!
//!   ner_texts LIBONNXRUNTIME MODEL_DIR CORPUS_JSONL THREADS ROUNDS
//!
//! Prints one JSON line per round, then the last round's entities.

use std::path::Path;
use std::time::Instant;

use aiaas_ner::{Ner, NerOptions};
use aiaas_onnx::Runtime;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, lib, model, corpus, threads, rounds] = &args[..] else {
        eprintln!("usage: ner_texts LIBONNXRUNTIME MODEL_DIR CORPUS_JSONL THREADS ROUNDS");
        std::process::exit(2);
    };
    let runtime = Runtime::load(Path::new(lib)).expect("ONNX Runtime");
    let ner =
        Ner::load(runtime, Path::new(model), threads.parse().expect("threads")).expect("model");
    let texts: Vec<String> = std::fs::read_to_string(corpus)
        .expect("corpus")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["text"].as_str().expect("text").to_string()
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut last = Vec::new();
    for round in 0..rounds.parse::<usize>().expect("rounds") {
        let started = Instant::now();
        last = ner
            .recognise(&refs, NerOptions::default())
            .expect("recognise");
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({"round": round, "texts": texts.len(), "seconds": seconds})
        );
    }
    let spans: Vec<Vec<(String, usize, usize)>> = last
        .into_iter()
        .map(|es| es.into_iter().map(|e| (e.label, e.start, e.end)).collect())
        .collect();
    println!("{}", serde_json::json!({ "entities": spans }));
}
