#!/usr/bin/env bash
# Prepare the Python side of the benchmark: bench/.venv with bench/requirements.txt, and
# the BBC News split in $AIAAS_TEST_DATA (default $HOME/.cache/aiaas-data-cache).
# Idempotent: the venv is (re)installed only when requirements.txt changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"
req="$here/requirements.txt"
data="${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}"

if ! command -v python3 >/dev/null; then
    echo "bench/setup.sh: python3 is required (scripts/setup.sh installs it)" >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "bench: creating $venv" >&2
    python3 -m venv "$venv"
fi

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "bench: installing $req (tensorflow is large; the first time takes a few minutes)" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
fi

python3 "$root/scripts/bbc_news.py" "$data"
for f in bbc-train.csv bbc-test.csv; do
    if [ ! -s "$data/$f" ]; then
        echo "bench: $data/$f is missing" >&2
        exit 1
    fi
done
