#!/usr/bin/env bash
# OCR throughput: aiaas's pipeline (Rust, crates/ocr) against RapidOCR
# (`rapidocr-onnxruntime`, Python) on the same pages (tests/ocr/make_pages.py: Chinese and
# English, clean, tilted, upside down, photo-like), the same PP-OCRv4 files, the same
# ONNX Runtime release and the same intra-op threads; rounds alternate between the two.
#   bash bench/ocr/run.sh        # table on stdout and in bench/ocr/out/ocr.md
# Settings (environment): OCR_ROUNDS (5), OCR_THREADS (2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
data="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
pyenv="${AIAAS_PYENV:-$HOME/.cache/aiaas-pyenv}"
# The models, the pages, RapidOCR and onnxruntime (the test set-up installs them all).
bash scripts/setup.sh --test "$data" >&2
lib="$(ls "$data"/onnxruntime/libonnxruntime.so.* | head -1)"
cargo build --release -p aiaas-ocr --example ocr_pages >&2
mkdir -p bench/ocr/out
"$pyenv/bin/python" bench/ocr/compare.py --binary "$CARGO_TARGET_DIR/release/examples/ocr_pages" \
    --lib "$lib" --model "$data/ocr/ppocr-v4" --pages "$data/ocr/pages" \
    --rounds "${OCR_ROUNDS:-5}" --threads "${OCR_THREADS:-2}" | tee bench/ocr/out/ocr.md
