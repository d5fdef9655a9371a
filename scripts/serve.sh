#!/usr/bin/env bash
# Start aiaas on the embedded default (./aiaas-data, SQLite, 127.0.0.1:8080), installing
# what it needs first. On a first start it prints the admin key once, trains the demo
# news classifier and pulls the default chat and embedding models in the background.
# Extra arguments go to `aiaas serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
data_dir="${AIAAS_DATA_DIR:-./aiaas-data}"
bash scripts/setup.sh "$data_dir/cache"
cargo build --release --locked -p aiaas
exec "$CARGO_TARGET_DIR/release/aiaas" serve "$@"
