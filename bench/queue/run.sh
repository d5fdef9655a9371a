#!/usr/bin/env bash
# The queue policy under overload (issue 15): the demo news classifier's predict endpoint
# and the default embedder's /v1/embeddings, each unloaded, at capacity (64 connections),
# then overloaded (open loop at 10x that capacity, and a swarm of 512 connections that
# resend at once on a refusal), without a queue policy and with max_queue_time_ms at the
# unloaded p50 and p99. Prints a table with the ratios (admitted p99 under overload /
# unloaded p99) and writes bench/out/queue.md.
#   bash bench/queue/run.sh
#   BENCH_SECONDS=5 BENCH_CONNECTIONS=512 bash bench/queue/run.sh
# The load generator (crates/aiaas/examples/overload.rs) shares the machine's cores with
# the server: run it on an otherwise idle machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
export AIAAS_TEST_DATA="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
bash scripts/setup.sh "$AIAAS_TEST_DATA"
cargo build --release --locked -p aiaas --bin aiaas --example overload
python3 bench/queue/bench.py --bin "$CARGO_TARGET_DIR/release/aiaas" \
  --load "$CARGO_TARGET_DIR/release/examples/overload" \
  --seconds "${BENCH_SECONDS:-10}" --connections "${BENCH_CONNECTIONS:-512}"
