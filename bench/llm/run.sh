#!/usr/bin/env bash
# aiaas against llama-cpp-python's OpenAI server and llama.cpp's llama-server, on the same
# gemma-3-270m GGUF, one server after the other in one run, then one table with ratios.
#   bash bench/llm/run.sh                 # table on stdout, bench/llm/out/report.md
#   BENCH_STRICT=1 bash bench/llm/run.sh  # also exit 1 unless every target passes
#   AIAAS_BIN=~/.cache/aiaas-target/debug/aiaas BENCH_CLIENTS=1,4 BENCH_MAX_TOKENS=32 \
#       bash bench/llm/run.sh             # a quick check of the script (no cargo build)
# Settings (environment): AIAAS_BIN (skip the cargo build and use this binary),
# BENCH_CLIENTS (1,4,8,16), BENCH_MAX_TOKENS (128), BENCH_SINGLE (8 single-stream
# requests), BENCH_ROUNDS (2 requests per client and level), BENCH_MIN_REQUESTS (8 per
# level at least), BENCH_COLD_REPS (3),
# BENCH_PAIRS (5 alternating aiaas/llama-server runs at 8 clients, both servers up; 0: none),
# BENCH_LCP=0 / BENCH_LLAMA_SERVER=0 (skip a peer), LLAMA_CPP_SRC (llama.cpp sources for
# llama-server), BENCH_LABEL (a line on top of the report). Run it on an idle machine:
# a concurrent build halves every number.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

strict=()
if [ "${BENCH_STRICT:-0}" = 1 ]; then strict=(--strict); fi
echo "== measuring (servers one after the other, then aiaas and llama-server alternately)" >&2
"$py" "$here/bench.py" --aiaas-bin "$aiaas_bin" --venv-python "$lcp_python" \
    --llama-server "$llama_server" --wheel-dir "$wheels" --out "$here/out" \
    --clients "${BENCH_CLIENTS:-1,4,8,16}" --max-tokens "${BENCH_MAX_TOKENS:-128}" \
    --single "${BENCH_SINGLE:-8}" --rounds "${BENCH_ROUNDS:-2}" --min-requests "${BENCH_MIN_REQUESTS:-8}" \
    --cold-reps "${BENCH_COLD_REPS:-3}" --pairs "${BENCH_PAIRS:-5}" --label "$label" "${strict[@]}"
