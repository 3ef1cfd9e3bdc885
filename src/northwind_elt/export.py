"""Export the `orders_details` mart rows of day D to CSV and JSON.

    DATA_DIR/output/{D}/orders_details.csv    header + one line per order line, RFC 4180, \\n
    DATA_DIR/output/{D}/orders_details.json   a JSON array of objects, one per line of the CSV

Rows are ordered by order_id, product_id; numbers keep their exact decimal text; the output
holds no timestamp, so two exports of the same mart day are byte-identical. Both files are
written into a temporary folder that replaces the day's folder in one rename.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import uuid
from decimal import Decimal
from json.encoder import encode_basestring  # json.dumps(str, ensure_ascii=False)
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from . import faults
from .atomic import replace_dir
from .ledger import Ledger
from .settings import Settings
from .warehouse import LoadError, connect

MART_SCHEMA = "marts"
MART = "orders_details"


from .errors import ExportError  # noqa: E402  (re-exported)


def output_paths(settings: Settings, day: dt.date) -> tuple[Path, Path]:
    folder = settings.data_dir / "output" / day.isoformat()
    return folder / f"{MART}.csv", folder / f"{MART}.json"


def _mart_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("select to_regclass(%s)", (f"{MART_SCHEMA}.{MART}",)).fetchone()[0] is not None  # type: ignore[index]


def mart_rows(settings: Settings, day: dt.date) -> int:
    with connect(settings) as conn:
        if not _mart_exists(conn):
            return 0
        query = sql.SQL("select count(*) from {} where snapshot_date = %s").format(sql.Identifier(MART_SCHEMA, MART))
        return int(conn.execute(query, (day,)).fetchone()[0])  # type: ignore[index]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _json(value: Any) -> str:
    """One JSON value; numbers keep their exact decimal text (never through float)."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is str:
        encoded: str = encode_basestring(value)
        return encoded
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is Decimal:
        return str(value)
    if kind is dt.date or kind is dt.datetime:
        return f'"{value.isoformat()}"'
    return json.dumps(value if isinstance(value, (list, dict, float)) else str(value), ensure_ascii=False)


def export(settings: Settings, day: dt.date) -> int:
    try:
        conn = connect(settings)
    except LoadError as exc:
        raise ExportError(str(exc)) from None
    last = Ledger(settings.data_dir).latest(day).get("transform")
    if last is not None and last.outcome != "succeeded":
        raise ExportError(
            f"the last transform of {day} {last.outcome} (its rows are untested): run make transform DATE={day} first"
        )
    with conn:
        if not _mart_exists(conn) or mart_rows(settings, day) == 0:
            raise ExportError(
                f"the transform has not built {MART_SCHEMA}.{MART} for {day}: run make transform DATE={day} first"
            )
        query = sql.SQL("select * from {} where snapshot_date = %s order by order_id, product_id").format(
            sql.Identifier(MART_SCHEMA, MART)
        )
        with conn.cursor(name="export") as cursor:  # server-side cursor: memory stays flat
            cursor.itersize = 5000
            cursor.execute(query, (day,))
            csv_path, json_path = output_paths(settings, day)
            building = csv_path.parent.with_name(f".{day}.{uuid.uuid4().hex[:8]}.building")
            building.mkdir(parents=True)
            try:
                rows = _write(cursor, building / csv_path.name, building / json_path.name)
                faults.point("export", day)  # files written, not yet published
                replace_dir(building, csv_path.parent)
            finally:
                shutil.rmtree(building, ignore_errors=True)
    return rows


def _write(cursor: psycopg.Cursor, csv_file: Path, json_file: Path) -> int:
    rows = 0
    with csv_file.open("w", newline="", encoding="utf-8") as c, json_file.open("w", encoding="utf-8") as j:
        writer = csv.writer(c, lineterminator="\n")
        keys: list[str] | None = None
        j.write("[")
        for record in cursor:
            if keys is None:
                names = [d.name for d in cursor.description or []]
                writer.writerow(names)
                keys = [encode_basestring(n) + ": " for n in names]
            writer.writerow([_text(v) for v in record])
            fields = ", ".join([k + _json(v) for k, v in zip(keys, record, strict=True)])
            j.write(("\n  {" if rows == 0 else ",\n  {") + fields + "}")
            rows += 1
        j.write("\n]\n")
    return rows


__all__ = ["ExportError", "export", "mart_rows", "output_paths"]
