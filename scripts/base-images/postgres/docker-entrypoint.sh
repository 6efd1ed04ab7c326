#!/usr/bin/env bash
# Entrypoint of the local postgres:15-bookworm stand-in (see Dockerfile beside this file).
# Behaves like the official image's docker-entrypoint.sh for the variables it documents:
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER
#   (default postgres), POSTGRES_DB (default $POSTGRES_USER), POSTGRES_INITDB_ARGS,
#   POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), PGDATA (default
#   /var/lib/postgresql/data), and *.sh / *.sql / *.sql.gz in /docker-entrypoint-initdb.d.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

# `docker run postgres:15-bookworm -c shared_buffers=256MB` means `postgres -c ...`.
if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

# `postgres --version`, `--help`, `-C name`, `--describe-config`: no set-up needed.
want_help() {
  local arg
  for arg; do
    case "$arg" in
      -'?' | --help | --describe-config | -V | --version | -C | -C* | --config-file=*) return 0 ;;
    esac
  done
  return 1
}

if [ "${1:-}" != postgres ] || want_help "$@"; then
  exec "$@"
fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ "$(id -u)" = 0 ]; then
  # Root: make the data and socket directories the postgres user's, then start again as it.
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres /var/run/postgresql
  chmod 3777 /var/run/postgresql
  if [ "$(stat -c %u "$PGDATA")" != "$(id -u postgres)" ]; then
    chown -R postgres:postgres "$PGDATA"
  fi
  chmod 0700 "$PGDATA" || :
  export HOME=/var/lib/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  POSTGRES_USER="${POSTGRES_USER:-postgres}"
  POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-}"
  POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

  if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       Set POSTGRES_PASSWORD to a non-empty value for the superuser, or
       POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password
       (never do that on a reachable network).
MSG
    exit 1
  fi

  log "initialising a new cluster in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
  # POSTGRES_INITDB_ARGS is a list of words, split like the official image does.
  read -r -a extra_args <<<"${POSTGRES_INITDB_ARGS:-}"
  if [ -n "$POSTGRES_PASSWORD" ]; then
    initdb --username="$POSTGRES_USER" -D "$PGDATA" \
      --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${extra_args[@]}"
  else
    initdb --username="$POSTGRES_USER" -D "$PGDATA" "${extra_args[@]}"
  fi

  # Local (socket) connections stay trusted, as initdb made them; everything over the
  # network needs the password.
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"

  # A temporary server on the socket only, so nobody connects before the setup is done.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w -t 60 start

  psql=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
  if [ "$POSTGRES_DB" != postgres ]; then
    exists=$("${psql[@]}" -tA --set db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
    if [ -z "$exists" ]; then
      "${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
  fi

  psql_db=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB")
  shopt -s nullglob
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then
          log "running $f"; "$f"
        else
          log "sourcing $f"
          # shellcheck disable=SC1090
          . "$f"
        fi ;;
      *.sql) log "running $f"; "${psql_db[@]}" -f "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql_db[@]}" ;;
      *) log "ignoring $f" ;;
    esac
  done
  shopt -u nullglob

  pg_ctl -D "$PGDATA" -m fast -w -t 60 stop
  unset POSTGRES_PASSWORD
  log "init done; starting postgres"
fi

# postgres becomes PID 1: signals from `docker stop` reach it directly.
exec "$@"
