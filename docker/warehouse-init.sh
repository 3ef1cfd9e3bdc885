#!/usr/bin/env bash
# Compose service `warehouse`: runs once, when its volume is empty (docker-entrypoint-initdb.d).
# Creates the loader role and the warehouse database it owns, as the embedded server does
# (database.py): the role is no superuser and cannot create roles or databases.
set -euo pipefail

psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --dbname postgres \
  -v db="$WAREHOUSE_PG_DATABASE" -v loader="$WAREHOUSE_PG_USER" -v password="$WAREHOUSE_PG_PASSWORD" <<'SQL'
create role :"loader" login password :'password';
create database :"db" owner :"loader";
-- PUBLIC may connect to no database (postgres and template1 too), nor make temporary tables or
-- functions in one: the loader connects only to the database it owns (as database.py does)
select format('revoke all on database %I from public', datname) from pg_database where datallowconn \gexec
SQL
echo "northwind-elt: database $WAREHOUSE_PG_DATABASE owned by $WAREHOUSE_PG_USER created"
