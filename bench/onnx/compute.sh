#!/usr/bin/env bash
# ONNX in-process compute against Python's onnxruntime (bench/onnx/compute.py), on the
# scikit-learn test models and the libonnxruntime the set-up script fetched.
#   bash bench/onnx/compute.sh     # table on stdout and in bench/onnx/out/compute.md
# Settings (environment): ONNX_ROUNDS (5), ONNX_ITERATIONS (2000), ONNX_THREADS (2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
data="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
# The runtime library and the test models (and scikit-learn to build them).
bash scripts/setup.sh --test "$data" >&2
lib="$(ls "$data"/onnxruntime/libonnxruntime.so.* | head -1)"
ort_version="${lib##*.so.}"
venv=bench/.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ort_version')" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "onnxruntime==$ort_version" "numpy<3"
fi
cargo build --release -p aiaas-onnx --example onnx_run >&2
"$venv/bin/python" bench/onnx/compute.py --binary "$CARGO_TARGET_DIR/release/examples/onnx_run" \
    --lib "$lib" --models "$data/onnx" --rounds "${ONNX_ROUNDS:-5}" \
    --iterations "${ONNX_ITERATIONS:-2000}" --threads "${ONNX_THREADS:-2}" --out bench/onnx/out
