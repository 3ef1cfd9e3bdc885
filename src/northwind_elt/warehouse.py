"""Step 2's commit: swap one day's load schema into the raw layer in one transaction.

target-postgres writes day D into the schema `load_<yyyymmdd>`, created fresh for each load.
`commit` then checks every table's row count against step 1's (reconciliation), creates or widens
`raw.<table>` (snapshot_date + the source columns), replaces exactly the rows of D, records the
load and its landed checksum in `raw._loads`, refreshes the planner statistics and drops the load
schema, in one transaction: a failure rolls everything back, other days are never touched,
readers never see half a day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from . import faults
from .errors import Fix, LoadError, rerun
from .landing import Landing, Source, decimal_columns, load_column_name, load_schema_name
from .settings import Settings

RAW = "raw"


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


def loaded_checksum(settings: Settings, day: dt.date) -> str | None:
    """The landed checksum the raw layer's rows of `day` were loaded from (raw._loads), if any."""
    with connect(settings) as conn:
        if conn.execute("select to_regclass('raw._loads')").fetchone()[0] is None:  # type: ignore[index]
            return None
        row = conn.execute(
            "select min(landed_sha256), count(distinct landed_sha256) from raw._loads where snapshot_date = %s", (day,)
        ).fetchone()
    return row[0] if row is not None and row[1] == 1 else None


def drop_load_schema(settings: Settings, day: dt.date) -> None:
    """Drop the load schema of `day` a failed or killed load left (under the day's warehouse
    lock; another day's, maybe being written by another worker, is its own load's to drop)."""
    with connect(settings) as conn:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(load_schema_name(day))))


def commit(settings: Settings, day: dt.date, landed: str | None) -> dict[str, int]:
    """Swap the day's load schema into the raw layer in one transaction; returns rows per table.

    `landed`: the landed day's checksum when the load's gate verified it (the open task)."""
    landing = Landing(settings.data_dir)
    if not landed or landed != landing.landed_checksum(day):
        raise LoadError(f"the landed files of {day} changed while the load ran", [rerun("load", day)])
    expected = landing.check_day(day, verify=False)  # verified once, by the gate; the markers' rows here
    load = load_schema_name(day)
    counts: dict[str, int] = {}
    with connect(settings) as conn, conn.transaction():
        conn.execute("set local lock_timeout = '60s'")
        _ensure_loads_table(conn)
        for (source, table), info in expected.items():
            loaded = _columns(conn, load, table)
            if not loaded:
                raise LoadError(f"{load}.{table} was not written by target-postgres", [rerun("load", day)])
            rows = _reconcile(conn, load, table, info, source, day)
            stored = landing.schema(source, table, day)
            # each load column (named as PostgreSQL keeps it) -> its raw column: the column's own name,
            # and numeric for a decimal (loaded as text, exact through COPY)
            raw_names = {_identifier(load_column_name(name)): _identifier(name) for name in stored["schema"].get("properties", {})}
            numeric = {_identifier(load_column_name(name)) for name in decimal_columns(stored["schema"])}
            staged = {c.name: Column(raw_names.get(c.name, c.name), "numeric" if c.name in numeric else c.type) for c in loaded}
            for change in _ensure_raw_table(conn, table, list(staged.values()), stored["key_properties"], day):
                print(change)
            try:  # the load table has no key (tap-landing): raw's primary key refuses a key landed twice
                _replace_day(conn, table, staged, load, day)
            except psycopg.errors.UniqueViolation as exc:
                raise LoadError(
                    f"the primary key of {RAW}.{table} refuses the landed {table} of {day} ({exc.diag.message_detail}): a key "
                    f"landed twice, or the source's key changed since {RAW}.{table} was made; nothing was committed",
                    [source.rerun(day), rerun("load", day)],
                ) from None
            _record_load(conn, table, day, rows, landed)
            counts[table] = rows
            faults.point("commit-load", day)  # mid-transaction: some tables replaced, not committed
        for change in _remove_gone_tables(conn, set(counts), day):
            print(change)
        _refresh_statistics(conn, list(counts))
        conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(load)))
    return counts


def _ensure_loads_table(conn: psycopg.Connection) -> None:
    """The raw schema and raw._loads: one row per table and loaded day, with the landed checksum."""
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(RAW)))
    conn.execute(
        sql.SQL(
            "create table if not exists {}._loads (snapshot_date date not null, table_name text not null,"
            " rows bigint not null, loaded_at timestamptz not null default now(), landed_sha256 text,"
            " primary key (snapshot_date, table_name))"
        ).format(sql.Identifier(RAW))
    )
    # warehouses created before the landed day's checksum was recorded
    conn.execute(sql.SQL("alter table {}._loads add column if not exists landed_sha256 text").format(sql.Identifier(RAW)))


def _reconcile(conn: psycopg.Connection, load: str, table: str, info: dict[str, Any], source: Source, day: dt.date) -> int:
    """The rows target-postgres wrote for `table`, which must be the rows step 1 recorded."""
    count = sql.SQL("select count(*) from {}.{}").format(sql.Identifier(load), sql.Identifier(table))
    rows = int(conn.execute(count).fetchone()[0])  # type: ignore[index]
    if rows != info["rows"]:
        raise LoadError(
            f"reconciliation failed for {table} on {day}: the warehouse received {rows} rows, "
            f"{source.step} recorded {info['rows']}; nothing was committed; "
            f"check {info['dir']}",
            [source.rerun(day), rerun("load", day)],
        )
    return rows


def _identifier(name: str) -> str:
    """The name as PostgreSQL keeps it: at most 63 bytes, never cut inside a character (as the
    load table's column names already are)."""
    return name.encode()[:63].decode(errors="ignore")


def _replace_day(conn: psycopg.Connection, table: str, staged: dict[str, Column], load: str, day: dt.date) -> None:
    """Replace exactly the rows of `day` in raw.<table> with the load table's (`staged`: load column
    name -> raw column), casting back the numeric ones loaded as text (landing.load_stream_schema)."""
    target = sql.Identifier(RAW, table)
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in staged.values())
    values = sql.SQL(", ").join(
        sql.SQL("{}::numeric" if c.type == "numeric" else "{}").format(sql.Identifier(loaded)) for loaded, c in staged.items()
    )
    conn.execute(sql.SQL("delete from {} where snapshot_date = %s").format(target), (day,))
    conn.execute(
        sql.SQL("insert into {} (snapshot_date, {}) select %s::date, {} from {}").format(
            target, names, values, sql.Identifier(load, table)
        ),
        (day,),
    )


def _remove_gone_tables(conn: psycopg.Connection, landed: set[str], day: dt.date) -> list[str]:
    """Tables loaded for `day` before that the landed day no longer has (gone from the source):
    their rows of the day and their `raw._loads` row go, so raw holds exactly the landed day."""
    loaded = conn.execute(sql.SQL("select table_name from {}._loads where snapshot_date = %s").format(sql.Identifier(RAW)), (day,))
    changes = []
    for table in sorted({name for (name,) in loaded.fetchall()} - landed):
        if _columns(conn, RAW, table):
            conn.execute(sql.SQL("delete from {} where snapshot_date = %s").format(sql.Identifier(RAW, table)), (day,))
        conn.execute(
            sql.SQL("delete from {}._loads where snapshot_date = %s and table_name = %s").format(sql.Identifier(RAW)), (day, table)
        )
        changes.append(f"schema change in {RAW}.{table} on {day}: the table is gone from the source; the day's rows were removed")
    return changes


def _record_load(conn: psycopg.Connection, table: str, day: dt.date, rows: int, landed: str | None) -> None:
    conn.execute(
        sql.SQL(
            "insert into {}._loads (snapshot_date, table_name, rows, landed_sha256) values (%s, %s, %s, %s)"
            " on conflict (snapshot_date, table_name) do update"
            " set rows = excluded.rows, loaded_at = now(), landed_sha256 = excluded.landed_sha256"
        ).format(sql.Identifier(RAW)),
        (day, table, rows, landed),
    )


def _refresh_statistics(conn: psycopg.Connection, tables: list[str]) -> None:
    """ANALYZE every table written, in the commit's transaction, so dbt never sees the day without
    statistics (docs/decisions.md, "Planner statistics inside the commit")."""
    for table in tables:
        conn.execute(sql.SQL("analyze {}").format(sql.Identifier(RAW, table)))


def _ensure_raw_table(conn: psycopg.Connection, table: str, staged: list[Column], keys: list[str], day: dt.date) -> list[str]:
    """Create raw.<table> like the load table, or widen it when a day brings new columns.

    Returns the allowed drift, one sentence a change: new columns (earlier days read NULL) and
    dropped ones (this day reads NULL). A column whose type changed is refused, naming it."""
    existing = {c.name: c.type for c in _columns(conn, RAW, table)}
    target = sql.Identifier(RAW, table)
    if not existing:
        definitions = [sql.SQL("snapshot_date date not null")] + [
            sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in staged
        ]
        if keys:  # a table without keys in the source has none here either
            definitions.append(sql.SQL("primary key ({})").format(sql.SQL(", ").join(sql.Identifier(k) for k in ["snapshot_date", *keys])))
        conn.execute(sql.SQL("create table {} ({})").format(target, sql.SQL(", ").join(definitions)))
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
                "automatically",
                [Fix(note=f"migrate {RAW}.{table} by hand or restore the source type"), rerun("load", day)],
            )
    staged_names = {c.name for c in staged}
    for name in existing:
        if name != "snapshot_date" and name not in staged_names:
            changes.append(f"schema change in {RAW}.{table} on {day}: column {name} is gone from the source; this day reads NULL")
    return changes
