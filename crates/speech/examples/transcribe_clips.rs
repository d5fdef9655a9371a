//! Transcribe WAV clips in rounds and time each round (bench/speech/run.sh runs it beside
//! faster-whisper).
//!
//!   transcribe_clips MODEL_DIR ROUNDS CLIP.wav...
//!
//! MODEL_DIR holds the converted model (model.safetensors, config.json, tokenizer.json).
//! Prints one JSON line per round (seconds of compute, seconds of audio), then the last
//! round's transcripts.

use std::path::Path;
use std::time::Instant;

use aiaas_speech::{audio, Transcriber};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: transcribe_clips MODEL_DIR ROUNDS CLIP.wav...");
        std::process::exit(2);
    }
    let t = Transcriber::load(Path::new(&args[1])).expect("model");
    let rounds: usize = args[2].parse().expect("rounds");
    let clips: Vec<Vec<u8>> = args[3..]
        .iter()
        .map(|p| std::fs::read(p).expect("clip"))
        .collect();
    let mut texts = Vec::new();
    for round in 0..rounds {
        let started = Instant::now();
        let mut audio_seconds = 0.0;
        texts.clear();
        for bytes in &clips {
            let samples = audio::decode(bytes, 3600.0).expect("decode");
            let out = t.transcribe(&samples).expect("transcribe");
            audio_seconds += out.duration;
            texts.push(out.text);
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({"round": round, "seconds": seconds, "audio_seconds": audio_seconds})
        );
    }
    println!("{}", serde_json::json!({ "texts": texts }));
}
