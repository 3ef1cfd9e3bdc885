"""The export's bytes: PostgreSQL writes them (COPY), and they are the bytes the Python serializers
it replaced wrote, kept below as the reference. Compared on a mart table of the contract's columns
and types (transform/models/marts/orders_details.yml) in the quick tier's own PostgreSQL, with
awkward values and a day of zero rows; tests/test_pipeline.py compares the real Northwind day."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from decimal import Decimal
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from landed_day import DAY, land_day
from psycopg import sql

from northwind_elt import export
from northwind_elt.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "transform" / "models" / "marts" / "orders_details.yml"


# -- the reference: the export's Python serializers before COPY, unchanged -----------------------
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


def reference(names: list[str], records: Iterable[tuple[Any, ...]]) -> tuple[bytes, bytes]:
    """The CSV and JSON files the Python serializers wrote for these rows (as psycopg reads them)."""
    c, j = io.StringIO(newline=""), io.StringIO()
    writer = csv.writer(c, lineterminator="\n")
    writer.writerow(names)
    keys = [encode_basestring(n) + ": " for n in names]
    j.write("[")
    for rows, record in enumerate(records):
        writer.writerow([_text(v) for v in record])
        fields = ", ".join([k + _json(v) for k, v in zip(keys, record, strict=True)])
        j.write(("\n  {" if rows == 0 else ",\n  {") + fields + "}")
    j.write("\n]\n")
    return c.getvalue().encode("utf-8"), j.getvalue().encode("utf-8")


# -- a mart of the contract's columns in the throwaway server -------------------------------------
def contract() -> list[tuple[str, str]]:
    model = yaml.safe_load(CONTRACT.read_text())["models"][0]
    return [(c["name"], c["data_type"]) for c in model["columns"]]


NAMES = [n for n, _ in contract()]
TEXTS = [n for n, t in contract() if t == "text"]
AWKWARD = [
    'comma, "quotes" and a \\backslash\\',
    "two\nlines and\r\nCRLF",
    "tab\there",
    "  leading and trailing spaces  ",
    "Ærøskøbing, Tōkyō ☕ 🚚 e\u0301 \u2028 \u00a0",
    "".join(chr(c) for c in range(1, 32)) + "\x7f",  # every control character
    "null",
    "\\.",
    '"',
    ",",
    "",
]


@pytest.fixture
def mart(warehouse: Settings) -> psycopg.Connection:
    with psycopg.connect(warehouse.warehouse.conninfo(), autocommit=True) as conn:
        conn.execute("create schema marts")
        columns = sql.SQL(", ").join(sql.SQL("{} " + t).format(sql.Identifier(n)) for n, t in contract())
        conn.execute(sql.SQL("create table marts.orders_details ({})").format(columns))
        conn.execute(
            "create table marts._orders_details_builds (snapshot_date date primary key, landed_sha256 text, rows bigint,"
            " built_at timestamptz default now(), tested_at timestamptz)"
        )
        yield conn


def insert(conn: psycopg.Connection, day: dt.date, order_id: int, product_id: int, **values: Any) -> None:
    names = ["snapshot_date", "order_id", "product_id", *values]
    query = sql.SQL("insert into marts.orders_details ({}) values ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(sql.Placeholder() * len(names))
    )
    conn.execute(query, (day, order_id, product_id, *values.values()))


def exported(settings: Settings, conn: psycopg.Connection, day: dt.date = DAY) -> tuple[bytes, bytes]:
    """export.export's files for `day` (a tested build of this landing recorded for its rows)."""
    landing = land_day(settings.data_dir)
    conn.execute(
        "insert into marts._orders_details_builds select %s, %s, count(*), now(), now() from marts.orders_details where snapshot_date = %s",
        (day, landing.landed_checksum(day), day),
    )
    rows = export.export(settings, day)
    csv_path, json_path = export.output_paths(settings, day)
    assert rows == len(json.loads(json_path.read_bytes()))
    return csv_path.read_bytes(), json_path.read_bytes()


def read_back(conn: psycopg.Connection, day: dt.date = DAY) -> tuple[bytes, bytes]:
    """The reference's files for the rows of `day`, read as the previous export read them."""
    with conn.cursor() as cursor:
        cursor.execute("select * from marts.orders_details where snapshot_date = %s order by order_id, product_id", (day,))
        return reference([d.name for d in cursor.description or []], cursor.fetchall())


def test_awkward_values_give_the_reference_bytes(warehouse: Settings, mart: psycopg.Connection) -> None:
    insert(mart, DAY, 1, 1)  # NULL in every nullable column
    for i, value in enumerate(AWKWARD, start=2):
        insert(mart, DAY, i, 1, **{name: value for name in TEXTS})
    insert(mart, DAY, 20, 1, customer_id="", ship_region=None, product_name="")  # an empty string beside NULL
    numbers = [
        (Decimal("0.00"), 0, Decimal("0.0000"), Decimal("0.00")),
        (Decimal("14.00"), 1, Decimal("0.1500"), Decimal("11.90")),
        (Decimal("9999999999.99"), 2147483647, Decimal("1.0000"), Decimal("999999999999.99")),
        (Decimal("-0.01"), -2147483648, Decimal("0.0001"), Decimal("-123.40")),
    ]
    for i, (price, quantity, discount, total) in enumerate(numbers, start=30):
        insert(
            mart, DAY, i, 1, freight=price, unit_price=price, quantity=quantity, employee_id=quantity, discount=discount, line_total=total
        )
    for i, day in enumerate([dt.date(1, 1, 1), dt.date(996, 7, 4), dt.date(1996, 7, 4), dt.date(9999, 12, 31)], start=40):
        insert(mart, DAY, i, 1, order_date=day, required_date=day, shipped_date=day)
    insert(mart, DAY, 50, 2, ship_name="ordered", product_name="second")
    insert(mart, DAY, 50, 1, ship_name="by key", product_name="first")
    insert(mart, DAY + dt.timedelta(days=1), 1, 1, ship_name="another day")

    new, old = exported(warehouse, mart), read_back(mart)
    assert new == old
    csv_rows = list(csv.reader(io.StringIO(new[0].decode(), newline="")))
    assert csv_rows[0] == NAMES and len(csv_rows) == len(json.loads(new[1])) + 1 == 1 + 12 + len(AWKWARD)
    assert json.loads(new[1], parse_float=Decimal)[-1]["product_name"] == "second"  # order_id, product_id


def test_a_day_of_zero_rows(warehouse: Settings, mart: psycopg.Connection) -> None:
    insert(mart, DAY + dt.timedelta(days=1), 1, 1)
    assert exported(warehouse, mart) == read_back(mart) == ((",".join(NAMES) + "\n").encode(), b"[\n]\n")


def test_a_lone_carriage_return_is_quoted(warehouse: Settings, mart: psycopg.Connection) -> None:
    """The one byte that can differ (docs/performance.md, 2026-12-06): COPY quotes a field holding
    a carriage return without a line feed, as csv.writer does since CPython 3.11.9 (gh-67044); an
    older csv.writer (this venv's 3.11.7) left it bare, and no CSV reader read the row back whole."""
    insert(mart, DAY, 1, 1, ship_address="line\rbreak", ship_city="Reims")
    (new_csv, new_json), (old_csv, old_json) = exported(warehouse, mart), read_back(mart)
    assert new_json == old_json
    assert b',"line\rbreak",Reims,' in new_csv
    assert old_csv in (new_csv, new_csv.replace(b'"line\rbreak"', b"line\rbreak"))
    row = next(csv.DictReader(io.StringIO(new_csv.decode(), newline="")))
    assert row["ship_address"] == "line\rbreak" and row["ship_city"] == "Reims"


def test_a_column_type_without_an_exact_text_is_refused(warehouse: Settings, mart: psycopg.Connection) -> None:
    mart.execute("alter table marts.orders_details add column weight double precision")
    insert(mart, DAY, 1, 1)
    with pytest.raises(export.ExportError, match=r"marts.orders_details.weight is of type double precision"):
        exported(warehouse, mart)
    assert not export.output_paths(warehouse, DAY)[0].exists()
