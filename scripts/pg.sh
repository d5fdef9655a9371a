#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on a loopback port, from Debian's packages, for tests and
# benchmarks. Never for production: it trusts every local connection and trades
# durability for speed (fsync off).
#
#   scripts/pg.sh start   [DIR] [PORT]   create the cluster if missing, start it, print its URL
#   scripts/pg.sh stop    [DIR]          fast shutdown (waits until it is down)
#   scripts/pg.sh kill    [DIR]          immediate shutdown (a crash, for recovery tests)
#   scripts/pg.sh url     [DIR] [PORT]   the URL only
#
# DIR defaults to /var/tmp/aiaas-pg (not under a home directory: when run as root the
# server runs as the `postgres` user, which must reach it), PORT to 54329. The URL names
# the `postgres` database as user `aiaas`; tests create their own databases in it.
set -euo pipefail

cmd="${1:-start}"
dir="${2:-${AIAAS_PG_DIR:-/var/tmp/aiaas-pg}}"
port="${3:-${AIAAS_PG_PORT:-54329}}"
url="postgres://aiaas@127.0.0.1:$port/postgres"

bin=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && bin="$d"
done
if [ -z "$bin" ]; then
  echo "pg.sh: PostgreSQL is not installed (scripts/setup.sh --test installs it)" >&2
  exit 1
fi

# As root, run the server as the postgres user (initdb refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  url)
    echo "$url"
    ;;
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bin/initdb" -D "$dir/data" -U aiaas --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
      }
    fi
    if as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      echo "$url"
      exit 0
    fi
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
      "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
       -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      >/dev/null || {
      tail -20 "$dir/server.log" >&2
      exit 1
    }
    echo "$url"
    ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  kill)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: scripts/pg.sh start|stop|kill|url [DIR] [PORT]" >&2
    exit 2
    ;;
esac
