#!/usr/bin/env bash
# Replicas on this machine: predict and LLM throughput through nginx with 1, 2 and 3
# `aiaas serve` replicas over PostgreSQL + S3, and PostgreSQL + S3 against SQLite + local
# files for one workload. One run, one table (bench/out/replicas.md).
#   bash bench/replicas/run.sh
#   AIAAS_BIN=... BENCH_SECONDS=5 bash bench/replicas/run.sh   # quick, no cargo build
# Run it on an idle machine: replicas, nginx, PostgreSQL, the S3 server and wrk share
# the cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
data="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
bash scripts/setup.sh --test "$data"
if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ -z "${AIAAS_BIN:-}" ]; then
  cargo build --release -p aiaas -p aiaas-testkit --bins
  AIAAS_BIN="$CARGO_TARGET_DIR/release/aiaas"
  S3_BIN="$CARGO_TARGET_DIR/release/aiaas-s3-dev"
else
  S3_BIN="${S3_BIN:-$(dirname "$AIAAS_BIN")/aiaas-s3-dev}"
fi
python3 bench/replicas/bench.py --bin "$AIAAS_BIN" --s3-bin "$S3_BIN" \
  --wheels "$data/wheels" --data "$data" --seconds "${BENCH_SECONDS:-10}"
