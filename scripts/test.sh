#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every crate's unit and
# integration tests, the end-to-end tests that start the real binary and train on the
# real BBC News data, and the Python tests that drive the server with real third-party
# clients (tritonclient for KServe v2). Ends with one summary line over all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
export AIAAS_TEST_DATA="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
export AIAAS_PYENV="${AIAAS_PYENV:-$HOME/.cache/aiaas-pyenv}"
bash scripts/setup.sh --test "$AIAAS_TEST_DATA"
cargo build --workspace --tests --bins --locked

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked -- --test-threads=2 2>&1 | tee "$log"
AIAAS_BIN="$CARGO_TARGET_DIR/debug/aiaas" "$AIAAS_PYENV/bin/python" -m pytest -q tests/python 2>&1 | tee -a "$log"

# Both runners passed (pipefail): add up what they ran.
python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
passed = failed = 0
for p, f in re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
    passed += int(p); failed += int(f)
m = re.search(r"^(\d+) passed(?:, (\d+) failed)?", text, re.M)
if m:
    passed += int(m.group(1)); failed += int(m.group(2) or 0)
print(f"all: {passed} passed, {failed} failed")
PY
