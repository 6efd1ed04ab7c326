#!/usr/bin/env bash
# Regenerates the committed .sqlx/ query data (sqlx offline mode) from the migrations, or with
# --check verifies it is current. Needs DATABASE_URL to reach a Postgres where it may create a
# scratch database; the queries are checked against the real migrated schema.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
: "${DATABASE_URL:?DATABASE_URL must reach a Postgres (an admin connection)}"
mode=${1:-write}

db=gitweave_sqlx_prepare
base=${DATABASE_URL%/*}
export PGOPTIONS="-c client_min_messages=warning"
psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
for m in migrations/*.sql; do
  psql -q -v ON_ERROR_STOP=1 "$base/$db" -f "$m" >/dev/null
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The macros run again only when their crate is rebuilt.
touch crates/storage/src/*.rs
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$out" DATABASE_URL="$base/$db" cargo check -q -p gitweave-storage --locked
psql -q "$DATABASE_URL" -c "DROP DATABASE $db" >/dev/null

if [ "$mode" = --check ]; then
  if ! diff -r "$out" .sqlx >/dev/null; then
    diff -r "$out" .sqlx | head -40 >&2
    echo "sqlx-prepare: .sqlx/ is stale; run DATABASE_URL=... scripts/sqlx-prepare.sh and commit it" >&2
    exit 1
  fi
  echo "sqlx-prepare: .sqlx/ is current ($(ls "$out" | wc -l) queries)"
else
  rm -rf .sqlx
  cp -r "$out" .sqlx
  echo "sqlx-prepare: wrote $(ls .sqlx | wc -l) queries to .sqlx/"
fi
