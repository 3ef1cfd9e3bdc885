"""Export the `orders_details` mart rows of day D to CSV and JSON.

    DATA_DIR/output/{D}/orders_details.csv    header + one line per order line, RFC 4180, \\n
    DATA_DIR/output/{D}/orders_details.json   a JSON array of objects, one per line of the CSV

Rows ordered by order_id, product_id; numbers keep their exact decimal text; no timestamp, so two
exports of a mart day are byte-identical. PostgreSQL writes both files (COPY, streamed to disk),
byte for byte as the Python serializers it replaced did (tests/unit/test_export_format.py keeps
them as the reference), except that a field with a bare carriage return is quoted. Both files
are written into a folder that replaces the day's folder in one rename. The gate: the mart build of D (marts._orders_details_builds) passed
dbt's tests and recorded the checksum of this DATA_DIR's landed day, with the rows the mart holds;
checked in the export's own REPEATABLE READ snapshot. Zero rows: a header-only CSV and `[]`.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from json.encoder import encode_basestring  # json.dumps(str, ensure_ascii=False)
from pathlib import Path
from typing import BinaryIO

import psycopg
from psycopg import sql

from . import faults
from .atomic import replace_dir
from .errors import ExportError, Fix, GateError, LoadError, resume
from .landing import Landing
from .settings import Settings
from .warehouse import connect

MART_SCHEMA = "marts"
MART = "orders_details"
BUILDS = f"_{MART}_builds"  # written by the mart's post-hook (transform/macros/mart_day.sql)


def output_paths(settings: Settings, day: dt.date) -> tuple[Path, Path]:
    folder = settings.data_dir / "output" / day.isoformat()
    return folder / f"{MART}.csv", folder / f"{MART}.json"


def _exists(conn: psycopg.Connection, table: str = MART) -> bool:
    return conn.execute("select to_regclass(%s)", (f"{MART_SCHEMA}.{table}",)).fetchone()[0] is not None  # type: ignore[index]


def _build_record(conn: psycopg.Connection, day: dt.date) -> tuple[str | None, int, dt.datetime, str | None] | None:
    """The transform's record of building `day` (landed checksum, rows, built_at, tested_at), if any."""
    if not _exists(conn) or not _exists(conn, BUILDS):
        return None
    # tested_at as JSON: a record of an older build table (no such column) reads as untested
    query = sql.SQL("select landed_sha256, rows, built_at, to_jsonb(b) ->> 'tested_at' from {} b where snapshot_date = %s")
    return conn.execute(query.format(sql.Identifier(MART_SCHEMA, BUILDS)), (day,)).fetchone()


def mark_tested(settings: Settings, day: dt.date, since: dt.datetime) -> int | None:
    """Record that the build of `day` made since `since` passed dbt's tests (the transform's close:
    dbt's build ended without error); returns its rows, or None if no such build exists."""
    with connect(settings) as conn:
        if not _exists(conn, BUILDS):
            return None
        query = sql.SQL("update {} set tested_at = now() where snapshot_date = %s and built_at >= %s returning rows")
        row = conn.execute(query.format(sql.Identifier(MART_SCHEMA, BUILDS)), (day, since)).fetchone()
    return int(row[0]) if row else None


def mart_rows_in(conn: psycopg.Connection, day: dt.date) -> int:
    query = sql.SQL("select count(*) from {} where snapshot_date = %s").format(sql.Identifier(MART_SCHEMA, MART))
    return int(conn.execute(query, (day,)).fetchone()[0])  # type: ignore[index]


# Each column type's CSV field and JSON value, as SQL over the column: the text Python wrote before,
# str() of an int or Decimal (numeric's own text while its scale is at most 6: the mart's are 2 and
# 4), date.isoformat() (DateStyle ISO) and json.dumps(str, ensure_ascii=False) (PostgreSQL's JSON
# escapes the same characters the same way). An empty string goes out as NULL: csv.writer wrote
# both as an empty field, where COPY would quote the empty string.
_FORMATS = {
    **dict.fromkeys(["smallint", "integer", "bigint", "numeric"], ("{}", "coalesce({}::text, 'null')")),
    "date": ("{}", "coalesce(json_scalar({})::text, 'null')"),
    **dict.fromkeys(["text", "character varying"], ("nullif({}, '')", "coalesce(json_scalar({})::text, 'null')")),
}


def _columns(conn: psycopg.Connection) -> list[tuple[str, str]]:
    query = (
        "select attname, atttypid::regtype::text from pg_attribute"
        " where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum"
    )
    columns: list[tuple[str, str]] = conn.execute(query, (f"{MART_SCHEMA}.{MART}",)).fetchall()
    for name, type_ in columns:
        if type_ not in _FORMATS:
            raise ExportError(f"{MART_SCHEMA}.{MART}.{name} is of type {type_}, which the export has no exact text for")
    return columns


def export(settings: Settings, day: dt.date) -> int:
    try:
        conn = connect(settings)
    except LoadError as exc:
        raise ExportError(exc.message, exc.fixes) from None
    with conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # the proof and the rows: one snapshot
        _check_provenance(conn, settings, day)
        csv_path, json_path = output_paths(settings, day)
        building = csv_path.parent.with_name(f".{day}.{uuid.uuid4().hex[:8]}.building")
        building.mkdir(parents=True)
        try:
            rows = _write(conn, day, building / csv_path.name, building / json_path.name)
            faults.point("export", day)  # files written, not yet published
            replace_dir(building, csv_path.parent)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return rows


def _check_provenance(conn: psycopg.Connection, settings: Settings, day: dt.date) -> None:
    """Refuse unless the mart rows of `day` were built from this DATA_DIR's landed day."""
    landed = Landing(settings.data_dir).landed_checksum(day)
    build = _build_record(conn, day)
    never_landed = f"{day} was never extracted into this DATA_DIR ({settings.data_dir})"
    if build is None:
        fix = Fix(day=day) if landed is None else resume("transform", day)
        raise GateError(f"export refuses to run for {day}: the transform of {day} has not succeeded", [fix])
    if build[3] is None:
        raise GateError(
            f"export refuses to run for {day}: the last build of {day} did not pass its tests (its rows are untested)",
            [resume("transform", day)],
        )
    if landed is None:
        raise ExportError(f"the warehouse's rows of {day} are not this DATA_DIR's: {never_landed}", [Fix(day=day)])
    built_from, built_rows, _, _ = build
    if built_from != landed:
        raise ExportError(
            f"{MART_SCHEMA}.{MART} holds rows of {day} built from other landed files than this DATA_DIR's "
            f"({settings.data_dir}): another DATA_DIR sharing the warehouse, or an earlier extract of {day}, "
            "was loaded and transformed last",
            [resume("load", day)],
        )
    rows = mart_rows_in(conn, day)
    if rows != built_rows:
        raise ExportError(
            f"{MART_SCHEMA}.{MART} has {rows} rows for {day} but its build recorded {built_rows}: the mart was changed after the transform",
            [resume("transform", day)],
        )


def _write(conn: psycopg.Connection, day: dt.date, csv_file: Path, json_file: Path) -> int:
    """Write the mart rows of `day` as read in the transaction of `conn`; returns their number."""
    conn.execute("set local datestyle = 'ISO'; set local client_encoding = 'UTF8'")  # COPY sends the files' bytes
    columns = _columns(conn)
    source = sql.SQL("from {} where snapshot_date = {} order by order_id, product_id").format(
        sql.Identifier(MART_SCHEMA, MART), sql.Literal(day)
    )
    fields = sql.SQL(", ").join(sql.SQL(_FORMATS[t][0] + " as {}").format(sql.Identifier(n), sql.Identifier(n)) for n, t in columns)
    # one line per row, `  {"key": value, ...},`, written as a one-column CSV whose quote and
    # delimiter characters no line holds (JSON escapes every control character): COPY writes each
    # line as it is (its text format would double the backslashes)
    pieces: list[sql.Composable] = []
    for i, (name, type_) in enumerate(columns):
        pieces.append(sql.Literal(("  {" if i == 0 else ", ") + encode_basestring(name) + ": "))
        pieces.append(sql.SQL(_FORMATS[type_][1]).format(sql.Identifier(name)))
    line = sql.SQL(" || ").join([*pieces, sql.Literal("},")])
    with csv_file.open("wb") as out:
        rows = _copy(conn, sql.SQL("copy (select {} {}) to stdout (format csv, header)").format(fields, source), out)
    with json_file.open("wb") as out:
        out.write(b"[\n")
        _copy(conn, sql.SQL("copy (select {} {}) to stdout (format csv, quote e'\\x01', delimiter e'\\x02')").format(line, source), out)
        if rows:
            out.seek(-2, os.SEEK_END)  # no comma after the last object: its line's ",\n" becomes "\n"
        out.write(b"\n]\n" if rows else b"]\n")
    return rows


def _copy(conn: psycopg.Connection, query: sql.Composed, out: BinaryIO) -> int:
    with conn.cursor() as cursor:
        with cursor.copy(query) as copy:
            for block in copy:
                out.write(block)
        return cursor.rowcount
