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
revoke all on database :"db" from public;
grant connect on database :"db" to :"reader";
grant usage on schema public to :"reader";
grant select on all tables in schema public to :"reader";
alter default privileges in schema public grant select on tables to :"reader";
SQL
echo "northwind-elt: seeded $POSTGRES_DB; read-only role $SOURCE_PG_USER created"
