#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every crate's unit and
# integration tests, the end-to-end tests that start the real binary and train on the
# real BBC News data, and the Python tests that drive the server with real third-party
# clients (tritonclient for KServe v2).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
export AIAAS_TEST_DATA="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
export AIAAS_PYENV="${AIAAS_PYENV:-$HOME/.cache/aiaas-pyenv}"
bash scripts/setup.sh --test "$AIAAS_TEST_DATA"
cargo build --workspace --tests --bins --locked
cargo test --workspace --locked -- --test-threads=2
AIAAS_BIN="$CARGO_TARGET_DIR/debug/aiaas" "$AIAAS_PYENV/bin/python" -m pytest -q tests/python
