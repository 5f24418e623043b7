#!/usr/bin/env bash
# Starts a throwaway PostgreSQL (Debian's postgresql-15, as the postgres user, on a private
# socket and port 55432, synchronous_commit on, fsync on), runs `cargo bench --bench
# sidebyside` against it, and stops and removes it.   benches/sidebyside.sh
set -euo pipefail
cd "$(dirname "$0")/.."
pg="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
[ -x "$pg/initdb" ] || { echo "install Debian's postgresql-15 (apt-get install postgresql-15)" >&2; exit 2; }
work="$(mktemp -d)"
chown postgres "$work"
as_pg() { runuser -u postgres -- "$@"; }
cleanup() { as_pg "$pg/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
as_pg "$pg/initdb" -D "$work/data" -A trust -U postgres >/dev/null
as_pg "$pg/pg_ctl" -D "$work/data" -l "$work/log" -w \
  -o "-p 55432 -k $work -c listen_addresses=127.0.0.1 -c synchronous_commit=on -c fsync=on -c max_connections=64" start >/dev/null
export GOVLEDGER_PG="host=127.0.0.1 port=55432 user=postgres dbname=postgres"
cargo bench --bench sidebyside
