#!/usr/bin/env bash
# Serving benchmark (issue 15): aiaas against Seldon's MLServer (the scikit-learn model)
# and KServe's Python model server (the image model), one tritonclient load generator,
# 1 and 8 closed-loop clients, batch 1 and 32. Writes bench/onnx/out/serve.md.
#   bash bench/onnx/serve.sh
# Settings (environment): SERVE_SECONDS (8 per cell), SERVE_THREADS (2).
# MLServer and KServe pin conflicting dependencies: each gets its own environment.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
data="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
bash scripts/setup.sh --test "$data" >&2
lib="$(ls "$data"/onnxruntime/libonnxruntime.so.* | head -1)"
ort_version="${lib##*.so.}"
venv() { # DIR PACKAGES...
    local dir="$1" stamp="$1/.bench-packages"; shift
    [ -x "$dir/bin/python" ] || python3 -m venv "$dir"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$*" ]; then
        "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
        echo "$*" > "$stamp"
    fi
}
venv bench/.venv-client "tritonclient[http]==2.73.0" "numpy<3" "requests==2.32.5"
# uvloop 0.22+ breaks MLServer 1.7.1's inference workers (no current event loop).
venv bench/.venv-mlserver "mlserver==1.7.1" "mlserver-sklearn==1.7.1" "scikit-learn==1.6.1" "uvloop==0.21.0"
venv bench/.venv-kserve "kserve==0.15.2" "onnxruntime==$ort_version"
cargo build --release --locked -p aiaas --bin aiaas >&2
bench/.venv-client/bin/python -u bench/onnx/serve.py --bin "$CARGO_TARGET_DIR/release/aiaas" \
    --lib "$lib" --models "$data/onnx" --mlserver-venv bench/.venv-mlserver \
    --kserve-venv bench/.venv-kserve --seconds "${SERVE_SECONDS:-8}" \
    --threads "${SERVE_THREADS:-2}" --out bench/onnx/out
