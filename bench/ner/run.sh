#!/usr/bin/env bash
# NER throughput: aiaas's token classification (Rust, crates/ner) against the Python way
# (tokenizers + onnxruntime + transformers' pipeline aggregation) on the labelled corpus
# aiaas-pii-en-1, the same pii-ner model files, ONNX Runtime release and threads.
#   bash bench/ner/run.sh        # table on stdout and in bench/ner/out/ner.md
# Settings (environment): NER_ROUNDS (5), NER_THREADS (2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
data="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
pyenv="${AIAAS_PYENV:-$HOME/.cache/aiaas-pyenv}"
bash scripts/setup.sh --test "$data" >&2
lib="$(ls "$data"/onnxruntime/libonnxruntime.so.* | head -1)"
cargo build --release -p aiaas-ner --example ner_texts >&2
mkdir -p bench/ner/out
"$pyenv/bin/python" bench/ner/compare.py --binary "$CARGO_TARGET_DIR/release/examples/ner_texts" \
    --lib "$lib" --model "$data/ner/pii-ner" --corpus "$data/ner/corpus/corpus.jsonl" \
    --rounds "${NER_ROUNDS:-5}" --threads "${NER_THREADS:-2}" 2> >(grep -v PyTorch >&2) | tee bench/ner/out/ner.md
