//! aiaas's GloVe against a reference implementation from PyPI (`mittens`, run by
//! bench/glove_reference.py in the test Python environment) on the BBC News training
//! texts: both fit the same co-occurrence counts (the 2,000 most frequent words, window
//! 10), then their nearest neighbours and analogy answers are compared. The reference is
//! not seeded (mittens draws from NumPy's global generator), so it runs twice: how much
//! two of its runs agree is the bar aiaas's agreement with it is measured against.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use aiaas_train::{tokenize, train_glove, TrainControl};
use aiaas_types::GloveParams;

const TOP: usize = 2000;
const DIM: usize = 50;

fn python() -> PathBuf {
    let env = std::env::var_os("AIAAS_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/aiaas-pyenv")
        });
    let python = env.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/setup.sh --test installs the test Python environment",
        python.display()
    );
    python
}

fn read_texts(path: &Path) -> Vec<Vec<String>> {
    let rows = aiaas_testkit::read_text_label_csv(path);
    rows.iter().map(|(text, _)| tokenize(text)).collect()
}

#[test]
fn glove_agrees_with_the_reference_implementation_on_bbc_news() {
    let docs = read_texts(&aiaas_testkit::test_data_file("bbc-train.csv"));
    let params = GloveParams {
        vector_size: DIM,
        min_count: 1,
        max_vocab: TOP,
        // Past the cost's plateau (about 60 epochs here): what is compared is where GloVe ends up.
        epochs: 100,
        threads: 2,
        ..GloveParams::default()
    };
    let cancel = AtomicBool::new(false);
    let control = TrainControl {
        cancel: &cancel,
        on_event: &|_| {},
    };
    let (vectors, report) = train_glove(&docs, &params, 1, &control).unwrap();
    assert_eq!(vectors.len(), TOP);
    eprintln!("aiaas glove: {report:?}");

    let dir = std::env::temp_dir().join(format!("aiaas-glove-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut tokens =
        std::io::BufWriter::new(std::fs::File::create(dir.join("tokens.txt")).unwrap());
    for d in &docs {
        writeln!(tokens, "{}", d.join(" ")).unwrap();
    }
    tokens.flush().unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("vectors.txt")).unwrap());
    writeln!(out, "{} {}", vectors.len(), DIM).unwrap();
    for (i, w) in vectors.words.iter().enumerate() {
        let row = &vectors.vectors[i * DIM..(i + 1) * DIM];
        let values: Vec<String> = row.iter().map(|x| x.to_string()).collect();
        writeln!(out, "{w} {}", values.join(" ")).unwrap();
    }
    out.flush().unwrap();

    let script = PathBuf::from(crate_dir()).join("../../bench/glove_reference.py");
    let json = dir.join("result.json");
    let status = Command::new(python())
        .arg(&script)
        .args(["--tokens", dir.join("tokens.txt").to_str().unwrap()])
        .args(["--ours", dir.join("vectors.txt").to_str().unwrap()])
        .args(["--top", &TOP.to_string(), "--dim", &DIM.to_string()])
        .args(["--iters", "500", "--json", json.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success(), "{} failed", script.display());
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    eprintln!("{result:#}");
    let f = |k: &str| result[k].as_f64().unwrap();
    // The same counts on both sides.
    assert_eq!(result["vocabulary"].as_u64(), Some(TOP as u64));
    assert_eq!(result["pairs"].as_u64(), Some(report.pairs));
    assert!(result["analogy_questions"].as_u64().unwrap() >= 300);
    // Neighbours: aiaas agrees with the reference nearly as well as the reference agrees
    // with itself across runs.
    let ours = f("overlap_ours_reference");
    let floor = f("overlap_reference_reference");
    assert!(
        ours >= 0.8 * floor,
        "neighbour overlap {ours} vs the reference's own {floor}"
    );
    // Analogies: at least the reference's accuracy, less a few questions' worth.
    let reference = f("analogy_reference").min(f("analogy_reference_second_run"));
    assert!(
        f("analogy_ours") >= reference - 0.03,
        "analogy accuracy {} vs the reference's {reference}",
        f("analogy_ours")
    );
}

/// This crate's folder: cargo sets CARGO_MANIFEST_DIR for the test process too, which
/// stays right when the compiled test was built from another checkout of the repository
/// (a shared target folder keeps a test binary whose sources did not change).
fn crate_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
}
