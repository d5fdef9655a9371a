#!/usr/bin/env bash
# Speculative decoding against llama-server (bench/llm/speculate.py): single-stream decode
# on free and extractive prompts, acceptance rate, and 8 clients, in one run.
#   bash bench/llm/speculate.sh        # table on stdout and in bench/llm/out/speculate.md
# Settings (environment): AIAAS_BIN (skip the cargo build), SPEC_ROUNDS (5), SPEC_PROMPTS
# (4 per set), BENCH_MAX_TOKENS (128), SPEC_LOAD_PAIRS (3). Run it on an idle machine.
set -euo pipefail
BENCH_LCP=0
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
[ -n "$llama_server" ] || { echo "bench/llm/speculate.sh: llama-server is needed" >&2; exit 1; }
"$py" "$here/speculate.py" --aiaas-bin "$aiaas_bin" --llama-server "$llama_server" \
    --wheel-dir "$wheels" --out "$here/out" --rounds "${SPEC_ROUNDS:-5}" \
    --prompts "${SPEC_PROMPTS:-4}" --max-tokens "${BENCH_MAX_TOKENS:-128}" \
    --load-pairs "${SPEC_LOAD_PAIRS:-3}" --label "$label"
