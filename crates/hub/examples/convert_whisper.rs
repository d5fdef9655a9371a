//! Convert a faster-whisper (CTranslate2) model folder in place to candle's layout, as a
//! pull does: `convert_whisper DIR` (bench/speech/run.sh).

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: convert_whisper DIR");
        std::process::exit(2);
    };
    if let Err(e) = aiaas_hub::ct2::convert_whisper(std::path::Path::new(&dir)) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
