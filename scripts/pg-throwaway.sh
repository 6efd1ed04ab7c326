#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster owned by the `postgres` user (initdb refuses root)
# and prints the DATABASE_URL for it. Usage:
#   scripts/pg-throwaway.sh start DIR PORT   -> prints postgres://... on stdout
#   scripts/pg-throwaway.sh stop DIR
#   scripts/pg-throwaway.sh restart DIR      (fast shutdown, then start again)
set -euo pipefail

cmd=${1:?start|stop}
dir=${2:?data directory}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] || { echo "postgresql is not installed (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    port=${3:?port}
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_pg "$pgbin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
    fi
    # fsync off: a throw-away cluster for tests; durability is not what is tested here.
    # PG_THROWAWAY_OPTS: more server options, e.g. for profiling
    # ("-c shared_preload_libraries=pg_stat_statements").
    as_pg "$pgbin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 ${PG_THROWAWAY_OPTS:-}" \
      start >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_pg "$pgbin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  restart)
    # Same options as at start (pg_ctl keeps them in postmaster.opts).
    as_pg "$pgbin/pg_ctl" -D "$dir" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR | restart DIR" >&2; exit 2 ;;
esac
