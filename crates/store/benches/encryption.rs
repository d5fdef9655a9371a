//! Throughput of the encrypted artifact store against plain files, in one run: writing a
//! 256 MiB upload into the store (`put_file`: encrypt + fsync + rename) against copying it
//! (`std::fs::copy` + fsync), and reading it back (`open` + read: decrypt and authenticate
//! every chunk) against reading the plain file, and opening a library model's weights for
//! a loader (`ModelFiles::view`: decrypt into anonymous memory, then read through the
//! view) against reading the plain weights file. Prints MB/s and the ratios.
//!
//!     cargo bench -p aiaas-store --bench encryption

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use aiaas_crypto::KeyRing;
use aiaas_store::{ArtifactStore, LocalArtifacts, MasterKeys, ModelFiles};

const SIZE: usize = 256 << 20;
const ROUNDS: usize = 3;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = Arc::new(MasterKeys::new(KeyRing::generate().expect("key"), None));
    let store = LocalArtifacts::open(&dir.path().join("artifacts"), keys.clone()).expect("store");
    let model_files = ModelFiles::new(keys);
    // Text-like bytes (a CSV's worth of varied data), generated once.
    let mut data = vec![0u8; SIZE];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = b' ' + (x % 90) as u8;
    }
    let source = dir.path().join("upload.csv");
    let model = dir.path().join("models/m");
    std::fs::create_dir_all(&model).expect("model dir");
    let weights = vec!["model.gguf".to_string()];
    std::fs::write(model.join("model.gguf"), &data).expect("weights");
    std::fs::write(dir.path().join("plain.gguf"), &data).expect("weights");
    model_files.seal(&model, &weights).expect("seal");
    let scratch = dir.path().join("tmp");
    let read_all = |path: &std::path::Path| {
        let mut f = std::fs::File::open(path).expect("open");
        let (mut n, mut buf) = (0usize, vec![0u8; 1 << 16]);
        loop {
            let k = f.read(&mut buf).expect("read");
            if k == 0 {
                return n;
            }
            n += k;
        }
    };
    let mut best = [f64::MAX; 6];
    for _ in 0..ROUNDS {
        // plain write: copy the upload into place and fsync
        std::fs::write(&source, &data).expect("write");
        let t = Instant::now();
        let plain = dir.path().join("plain.csv");
        std::fs::copy(&source, &plain).expect("copy");
        std::fs::File::open(&plain)
            .and_then(|f| f.sync_all())
            .expect("sync");
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        // encrypted write: put_file (encrypt, fsync, rename; the upload is consumed)
        let t = Instant::now();
        store.put_file("bench/data.csv", &source).expect("put_file");
        best[1] = best[1].min(t.elapsed().as_secs_f64());
        // plain read
        let t = Instant::now();
        let mut n = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let mut f = std::fs::File::open(&plain).expect("open");
        loop {
            let k = f.read(&mut buf).expect("read");
            if k == 0 {
                break;
            }
            n += k;
        }
        assert_eq!(n, SIZE);
        best[2] = best[2].min(t.elapsed().as_secs_f64());
        // encrypted read: decrypt + authenticate every chunk
        let t = Instant::now();
        let mut n = 0usize;
        let mut r = store.open("bench/data.csv").expect("open");
        loop {
            let k = r.read(&mut buf).expect("read");
            if k == 0 {
                break;
            }
            n += k;
        }
        assert_eq!(n, SIZE);
        best[3] = best[3].min(t.elapsed().as_secs_f64());
        std::fs::remove_file(&plain).expect("rm");
        // model weights for a loader: the plain file, or the sealed one through a view
        let t = Instant::now();
        assert_eq!(read_all(&dir.path().join("plain.gguf")), SIZE);
        best[4] = best[4].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let view = model_files.view(&model, &weights, &scratch).expect("view");
        assert_eq!(read_all(&view.path().join("model.gguf")), SIZE);
        drop(view);
        best[5] = best[5].min(t.elapsed().as_secs_f64());
    }
    let mb = SIZE as f64 / 1e6;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "encrypted artifact store vs plain files, {} MiB, best of {ROUNDS}",
        SIZE >> 20
    );
    let _ = writeln!(
        out,
        "| operation | plain MB/s | encrypted MB/s | encrypted / plain |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (name, p, e) in [
        ("write (upload stored, fsync)", best[0], best[1]),
        ("read (download)", best[2], best[3]),
        ("model weights opened for a loader", best[4], best[5]),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.0} | {:.2}x |",
            mb / p,
            mb / e,
            p / e
        );
    }
}
