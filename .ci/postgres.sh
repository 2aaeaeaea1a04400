#!/usr/bin/env bash
# A private PostgreSQL server for the tests of the PostgreSQL ledger.
#
#   .ci/postgres.sh start DIR    starts one with its data and socket under DIR, on a free port
#                                of 127.0.0.1; prints `export SMSPIPE_TEST_POSTGRES=…` lines
#   .ci/postgres.sh restart DIR  restarts it (the tests of a connection lost mid-batch)
#   .ci/postgres.sh stop DIR     stops it
#
# The server runs as an unprivileged user (PostgreSQL refuses root); the tests connect as
# the role `smspipe`, which is not a superuser and may create databases (one per test
# module), as a shop's ledger role would own its database.
set -euo pipefail
action=${1:?usage: postgres.sh start|restart|stop DIR}
dir=$(mkdir -p "${2:?usage: postgres.sh start|restart|stop DIR}" && cd "$2" && pwd)

bindir=""
if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
  bindir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
else
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/pg_ctl" ] && bindir=$candidate
  done
fi
if [ -z "$bindir" ]; then
  echo "postgres.sh: no PostgreSQL server binaries (initdb, pg_ctl); on Debian: apt-get install postgresql" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}
owner=$(id -un)
if [ "$(id -u)" = 0 ]; then
  owner=postgres
  id "$owner" >/dev/null 2>&1 || useradd --system --no-create-home "$owner"
fi

case "$action" in
start)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$dir/data" "$dir/socket"
  chmod 755 "$dir"
  chown -R "$owner" "$dir"
  if ! as_owner test -x "$dir"; then
    echo "postgres.sh: user $owner cannot reach $dir; give a directory whose parents it can enter (e.g. under /tmp)" >&2
    exit 1
  fi
  chmod 700 "$dir/data"
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --no-instructions -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir/socket -c fsync=on" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  psql_admin=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
  "${psql_admin[@]}" -c "CREATE ROLE smspipe LOGIN NOSUPERUSER CREATEDB"
  "${psql_admin[@]}" -c "CREATE DATABASE smspipe OWNER smspipe"
  echo "$port" >"$dir/port"
  echo "export SMSPIPE_TEST_POSTGRES=postgresql://smspipe@127.0.0.1:$port/smspipe"
  echo "export SMSPIPE_TEST_POSTGRES_ADMIN=postgresql://postgres@127.0.0.1:$port/postgres"
  echo "export SMSPIPE_TEST_POSTGRES_DIR=$dir"
  ;;
restart)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  ;;
stop)
  if [ -d "$dir/data" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  fi
  ;;
*)
  echo "usage: postgres.sh start|restart|stop DIR" >&2
  exit 2
  ;;
esac
