#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL cluster for the test suite.
#
#   .ci/postgres.sh start        -> prints postgresql+psycopg://postgres@127.0.0.1:PORT/rescue_test
#   .ci/postgres.sh stop DATADIR -> stops the cluster in DATADIR and removes it
#
# The cluster lives in a fresh directory under /tmp (or $RESCUE_PG_DIR when set), listens on a
# free port on 127.0.0.1 only, trusts local connections and runs without fsync: it is for tests
# and nothing else. initdb refuses to run as root, so as root the server runs as `postgres`.
# Binaries: $PG_BIN, else /usr/lib/postgresql/<newest>/bin, else whatever is on PATH.
# Everything but the URL goes to stderr; the data directory is printed there too.
set -euo pipefail

find_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" ]]; then echo "$dir"; return; fi
    done
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
    echo "postgres.sh: no PostgreSQL server binaries found (set PG_BIN or install postgresql)" >&2
    exit 3
}

as_owner() {
    # Run a command as the cluster owner: `postgres` when we are root, ourselves otherwise.
    if [[ "$(id -u)" == 0 ]]; then
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    local bin datadir port
    bin="$(find_bin)"
    datadir="${RESCUE_PG_DIR:-$(mktemp -d /tmp/rescue-pg.XXXXXX)}"
    mkdir -p "$datadir"
    chmod 700 "$datadir"
    if [[ "$(id -u)" == 0 ]]; then chown postgres: "$datadir"; fi
    port="$(free_port)"
    as_owner "$bin/initdb" -D "$datadir/data" -U postgres --auth=trust --encoding=UTF8 --no-sync >&2
    as_owner "$bin/pg_ctl" -D "$datadir/data" -l "$datadir/server.log" -w -t 60 start \
        -o "-h 127.0.0.1 -p $port -k $datadir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres rescue_test >&2
    echo "postgres.sh: cluster in $datadir (stop with: $0 stop $datadir)" >&2
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/rescue_test"
}

stop() {
    local datadir="${1:?usage: $0 stop DATADIR}"
    local bin
    bin="$(find_bin)"
    if [[ -f "$datadir/data/postmaster.pid" ]]; then
        as_owner "$bin/pg_ctl" -D "$datadir/data" -m fast -w stop >&2
    fi
    rm -rf "$datadir"
}

case "${1:-start}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *) echo "usage: $0 [start | stop DATADIR]" >&2; exit 2 ;;
esac
