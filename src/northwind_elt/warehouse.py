"""Step 2's commit: swap one day's load schema into the raw layer in one transaction.

target-postgres writes day D into the schema `load_<yyyymmdd>` (created fresh for each load).
`commit` then, in a single transaction: checks every table's row count against what step 1
recorded (reconciliation), creates or widens `raw.<table>` (snapshot_date + the source
columns), replaces exactly the rows of D, records the load in `raw._loads`, and drops the
load schema. A failure anywhere rolls everything back: D stays as it was, other days are never
touched, readers never see half a day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import faults
from .landing import Landing, decimal_columns, load_schema_name
from .settings import Settings

RAW = "raw"
# ANALYZE a raw table after a commit only when the day changed at least this share of the rows it
# had at its last ANALYZE: autovacuum's own rule (autovacuum_analyze_scale_factor), applied before
# dbt runs. The first days of a table are analyzed every time; once it holds many days one more
# day moves no estimate that matters (`snapshot_date = D` is estimated from the number of distinct
# days) and autovacuum refreshes the statistics on its own, so the daily commit does not pay an
# ANALYZE whose cost grows with the history.
STALE_SHARE = 0.1


from .errors import LoadError  # noqa: E402  (re-exported)


@dataclass(frozen=True)
class Column:
    name: str
    type: str


def connect(settings: Settings) -> psycopg.Connection:
    try:
        return psycopg.connect(settings.warehouse.conninfo())
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(f"cannot connect to the warehouse {settings.warehouse.describe()}: {first}") from None


def _columns(conn: psycopg.Connection, schema: str, table: str) -> list[Column]:
    rows = conn.execute(
        """select a.attname, format_type(a.atttypid, a.atttypmod)
             from pg_attribute a
             join pg_class c on c.oid = a.attrelid
             join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped
            order by a.attnum""",
        (schema, table),
    ).fetchall()
    return [Column(name, type_) for name, type_ in rows]


def prepare(settings: Settings, day: dt.date) -> None:
    """Run the gate, then drop every load schema left over by failed or interrupted loads (loads
    run one at a time: the open task holds tap-landing's project lock)."""
    Landing(settings.data_dir).check_day(day)
    with connect(settings) as conn:
        leftovers = conn.execute(
            "select nspname from pg_namespace where nspname ~ '^load_[0-9]{8}$' and pg_has_role(nspowner, 'USAGE')"
        ).fetchall()
        for (name,) in leftovers:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(name)))


def drop_load_schema(settings: Settings, day: dt.date) -> None:
    """Drop the load schema of `day` (a load that ended without committing)."""
    with connect(settings) as conn:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(load_schema_name(day))))


def commit(settings: Settings, day: dt.date) -> dict[str, int]:
    landing = Landing(settings.data_dir)
    expected = landing.check_day(day)
    load = load_schema_name(day)
    counts: dict[str, int] = {}
    stale: list[str] = []  # tables whose planner statistics this commit makes stale
    rerun = f"make load DATE={day}"
    with connect(settings) as conn, conn.transaction():
        conn.execute("set local lock_timeout = '60s'")
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(RAW)))
        conn.execute(
            sql.SQL(
                "create table if not exists {}._loads (snapshot_date date not null, table_name text not null,"
                " rows bigint not null, loaded_at timestamptz not null default now(),"
                " primary key (snapshot_date, table_name))"
            ).format(sql.Identifier(RAW))
        )
        for (source, table), info in expected.items():
            staged = _columns(conn, load, table)
            if not staged:
                raise LoadError(f"{load}.{table} was not written by target-postgres: rerun {rerun}")
            rows = conn.execute(sql.SQL("select count(*) from {}.{}").format(sql.Identifier(load), sql.Identifier(table))).fetchone()[0]  # type: ignore[index]
            if rows != info["rows"]:
                raise LoadError(
                    f"reconciliation failed for {table} on {day}: the warehouse received {rows} rows, "
                    f"{source.step} recorded {info['rows']} (duplicate keys in the file?); nothing was committed; "
                    f"check {info['dir']} and rerun {source.rerun(day)} then {rerun}"
                )
            stored = landing.schema(source, table, day)
            keys = stored["key_properties"]
            decimals = decimal_columns(stored["schema"])  # loaded as text (COPY-exact), numeric in raw
            staged = [Column(c.name, "numeric") if c.name in decimals else c for c in staged]
            for change in _ensure_raw_table(conn, table, staged, keys, day):
                print(change)
            target = sql.Identifier(RAW, table)
            names = sql.SQL(", ").join(sql.Identifier(c.name) for c in staged)
            cast = {c.name: sql.SQL("{}::numeric" if c.name in decimals else "{}") for c in staged}
            values = sql.SQL(", ").join(cast[c.name].format(sql.Identifier(c.name)) for c in staged)
            analyzed_rows = _analyzed_rows(conn, table)
            deleted = conn.execute(sql.SQL("delete from {} where snapshot_date = %s").format(target), (day,)).rowcount
            conn.execute(
                sql.SQL("insert into {} (snapshot_date, {}) select %s::date, {} from {}").format(
                    target, names, values, sql.Identifier(load, table)
                ),
                (day,),
            )
            conn.execute(
                sql.SQL(
                    "insert into {}._loads (snapshot_date, table_name, rows) values (%s, %s, %s)"
                    " on conflict (snapshot_date, table_name) do update set rows = excluded.rows, loaded_at = now()"
                ).format(sql.Identifier(RAW)),
                (day, table, rows),
            )
            counts[table] = rows
            if analyzed_rows is None or deleted + rows >= STALE_SHARE * analyzed_rows:
                stale.append(table)
            faults.point("commit-load", day)  # mid-transaction: some tables replaced, not committed
        conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(load)))
    if stale:  # before dbt reads them: a table never analyzed looks empty to the planner
        with connect(settings) as conn:
            conn.autocommit = True
            for table in stale:
                conn.execute(sql.SQL("analyze {}").format(sql.Identifier(RAW, table)))
    return counts


def _analyzed_rows(conn: psycopg.Connection, table: str) -> float | None:
    """Rows of raw.<table> at its last ANALYZE (or VACUUM); None if it has none (or no table yet)."""
    row = conn.execute(
        "select c.reltuples from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = %s",
        (RAW, table),
    ).fetchone()
    return None if row is None or row[0] < 0 else float(row[0])


def _ensure_raw_table(conn: psycopg.Connection, table: str, staged: list[Column], keys: list[str], day: dt.date) -> list[str]:
    """Create raw.<table> like the load table, or widen it when a day brings new columns.

    Allowed drift, reported: new columns (added; earlier days read NULL) and dropped columns
    (this day reads NULL). Refused: a column whose type changed (the message names it).
    Returns the schema changes, one sentence each.
    """
    existing = {c.name: c.type for c in _columns(conn, RAW, table)}
    target = sql.Identifier(RAW, table)
    if not existing:
        definitions = [sql.SQL("snapshot_date date not null")] + [
            sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in staged
        ]
        key = sql.SQL(", ").join(sql.Identifier(k) for k in ["snapshot_date", *keys])
        conn.execute(sql.SQL("create table {} ({}, primary key ({}))").format(target, sql.SQL(", ").join(definitions), key))
        return []
    changes = []
    for column in staged:
        if column.name not in existing:
            conn.execute(sql.SQL("alter table {} add column {} {}").format(target, sql.Identifier(column.name), sql.SQL(column.type)))
            changes.append(f"schema change in {RAW}.{table} on {day}: new column {column.name} ({column.type}); earlier days read NULL")
        elif existing[column.name] != column.type:
            raise LoadError(
                f"schema drift in {table} on {day}: column {column.name} is {column.type} in the landed files "
                f"but {existing[column.name]} in {RAW}.{table} (earlier days); a type change is not applied "
                f"automatically: migrate {RAW}.{table} by hand or restore the source type, then rerun make load DATE={day}"
            )
    staged_names = {c.name for c in staged}
    for name in existing:
        if name != "snapshot_date" and name not in staged_names:
            changes.append(f"schema change in {RAW}.{table} on {day}: column {name} is gone from the source; this day reads NULL")
    return changes
