#!/usr/bin/env bash
# Compose service `source`: runs once, when its volume is empty (docker-entrypoint-initdb.d).
# Seeds the Northwind database from data/source/northwind.sql (mounted at /seed) and creates the
# read-only role the extraction connects with, as the embedded server does (database.py).
set -euo pipefail

seed=${NORTHWIND_SQL:-/seed/northwind.sql}  # tests/test_compose.py points it at data/source/
if [ ! -f "$seed" ]; then
  echo "northwind-elt: $seed not found. Run 'make setup' on the host (it fetches data/source/northwind.sql)," >&2
  echo "then 'docker compose down -v' and 'docker compose up -d source warehouse' again." >&2
  exit 1
fi

psql -v ON_ERROR_STOP=1 -X -q -1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$seed"

psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" -v reader="$SOURCE_PG_USER" -v password="$SOURCE_PG_PASSWORD" <<'SQL'
create role :"reader" login password :'password';
alter role :"reader" set default_transaction_read_only = on;
-- PUBLIC may connect to no database (postgres and template1 too), nor make temporary tables or
-- functions in one: the reader connects to its database only (as database.py does)
select format('revoke all on database %I from public', datname) from pg_database where datallowconn \gexec
grant connect on database :"db" to :"reader";
grant usage on schema public to :"reader";
grant select on all tables in schema public to :"reader";
alter default privileges in schema public grant select on tables to :"reader";
-- the reader writes nothing even with default_transaction_read_only off (as database.py does)
revoke create on schema public from public;
revoke execute on function lo_create(oid), lo_creat(integer), lo_from_bytea(oid, bytea), lo_import(text),
  lo_import(text, oid), lo_export(oid, text), lowrite(integer, bytea), lo_put(oid, bigint, bytea),
  lo_truncate(integer, integer), lo_truncate64(integer, bigint), lo_unlink(oid), pg_notify(text, text),
  txid_current(), pg_current_xact_id(), pg_logical_emit_message(boolean, text, text, boolean),
  pg_logical_emit_message(boolean, text, bytea, boolean) from public;
create schema nwelt_guard;
revoke all on schema nwelt_guard from public;
select format($f$create function nwelt_guard.refuse_reader_ddl() returns event_trigger language plpgsql as $b$
  begin if session_user = %1$L or current_user = %1$L then raise exception using errcode = 'insufficient_privilege',
  message = format('role %%s is read-only in this database: %%s refused', session_user, tg_tag); end if; end $b$$f$,
  :'reader') \gexec
create event trigger nwelt_refuse_reader_ddl on ddl_command_start execute function nwelt_guard.refuse_reader_ddl();
SQL
echo "northwind-elt: seeded $POSTGRES_DB; read-only role $SOURCE_PG_USER created"
