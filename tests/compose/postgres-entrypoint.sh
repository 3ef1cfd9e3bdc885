#!/usr/bin/env bash
# TEST FIXTURE ONLY: the entrypoint of the postgres:18 stand-in (tests/compose/standins.sh).
# It does what the official image's docker-entrypoint.sh does for this project: on an empty
# $PGDATA, initdb with POSTGRES_USER / POSTGRES_PASSWORD (scram-sha-256 over TCP), create
# POSTGRES_DB, run /docker-entrypoint-initdb.d/* (*.sh executed or sourced, *.sql through psql)
# on a socket-only server, then start the real server listening on all addresses.
set -Eeuo pipefail
sockets=/var/run/postgresql

if [ "${1:0:1}" = "-" ]; then set -- postgres "$@"; fi

if [ "$1" = "postgres" ] && [ "$(id -u)" = "0" ]; then
  mkdir -p "$PGDATA" "$sockets"
  chmod 700 "$PGDATA"
  chown -R postgres:postgres "$PGDATA" "$sockets"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = "postgres" ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?the postgres image needs POSTGRES_PASSWORD to initialise a database}"
  export POSTGRES_USER="${POSTGRES_USER:-postgres}"
  export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$sockets" start >/dev/null
  export PGUSER="$POSTGRES_USER" PGHOST="$sockets"
  if [ "$POSTGRES_DB" != "postgres" ]; then
    psql -v ON_ERROR_STOP=1 -X -q --dbname postgres -v db="$POSTGRES_DB" <<<'create database :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) if [ -x "$f" ]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 -X --dbname "$POSTGRES_DB" -f "$f" ;;
      *) if [ -e "$f" ]; then echo "ignoring $f"; fi ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "PostgreSQL init process complete; ready for start up."
fi

if [ "$1" = "postgres" ]; then
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$sockets" "$@"
fi
exec "$@"
