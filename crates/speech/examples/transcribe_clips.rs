//! Transcribe WAV clips in rounds and time each round (bench/speech/run.sh runs it beside
//! faster-whisper).
//!
//!   transcribe_clips MODEL_DIR ROUNDS CLIP.wav...
//!
//! MODEL_DIR holds the converted model (model.safetensors, config.json, tokenizer.json).
//! Prints one JSON line per round (seconds of compute, seconds of audio), then the last
//! round's transcripts (and words, with SPEECH_WORDS=1). SPEECH_BEAM (5; 1 is greedy) and SPEECH_TIMESTAMPS (1) set the
//! decoding; the rest is aiaas's defaults (faster-whisper's).

use std::path::Path;
use std::time::Instant;

use aiaas_speech::{audio, Options, Transcriber};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: transcribe_clips MODEL_DIR ROUNDS CLIP.wav...");
        std::process::exit(2);
    }
    let t = Transcriber::load(Path::new(&args[1])).expect("model");
    let rounds: usize = args[2].parse().expect("rounds");
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let options = Options {
        beam_size: env("SPEECH_BEAM", 5),
        best_of: env("SPEECH_BEAM", 5),
        timestamps: env("SPEECH_TIMESTAMPS", 1) == 1,
        word_timestamps: env("SPEECH_WORDS", 0) == 1,
        ..Options::default()
    };
    let clips: Vec<Vec<u8>> = args[3..]
        .iter()
        .map(|p| std::fs::read(p).expect("clip"))
        .collect();
    let mut texts = Vec::new();
    let mut words = Vec::new();
    for round in 0..rounds {
        let started = Instant::now();
        let mut audio_seconds = 0.0;
        texts.clear();
        words.clear();
        for bytes in &clips {
            let samples = audio::decode(bytes, 3600.0).expect("decode");
            let out = t.transcribe(&samples, &options).expect("transcribe");
            audio_seconds += out.duration;
            texts.push(out.text);
            if std::env::var_os("SPEECH_SEGMENTS").is_some() {
                for s in &out.segments {
                    eprintln!(
                        "seek {} {:.2}-{:.2} t={} lp={:.3} ns={:.3} {:?}",
                        s.seek,
                        s.start,
                        s.end,
                        s.temperature,
                        s.avg_logprob,
                        s.no_speech_prob,
                        s.text
                    );
                }
            }
            words.push(
                out.segments
                    .iter()
                    .flat_map(|s| s.words.clone())
                    .collect::<Vec<_>>(),
            );
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({"round": round, "seconds": seconds, "audio_seconds": audio_seconds})
        );
    }
    println!("{}", serde_json::json!({ "texts": texts, "words": words }));
}
