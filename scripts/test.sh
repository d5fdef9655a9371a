#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every crate's unit and
# integration tests, including the end-to-end tests that train on the real BBC News data.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
export AIAAS_TEST_DATA="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
bash scripts/setup.sh "$AIAAS_TEST_DATA"
cargo build --workspace --tests --locked
cargo test --workspace --locked -- --test-threads=2
