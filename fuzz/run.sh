#!/usr/bin/env bash
# Fuzz what strangers send to aiaas (dataset uploads as CSV / JSON Lines / multipart, and
# the JSON bodies of every route family) through the whole router, in a release build,
# for FUZZ_SECS seconds per target (default 180). Prints cases per target; fails on any
# panic or 5xx. The normal test run does the same for 3 s per target.
#   bash fuzz/run.sh            # 3 targets x 3 minutes
#   FUZZ_SECS=600 bash fuzz/run.sh
#   FUZZ_TARGET=multipart bash fuzz/run.sh   # one target (name prefix: dataset, multipart, json)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
export FUZZ_SECS="${FUZZ_SECS:-180}"
cargo test --release -p aiaas-api --test fuzz -- --nocapture --test-threads 1 2>&1 | grep -E "^fuzz |test result|panicked|answered"
exit "${PIPESTATUS[0]}"
