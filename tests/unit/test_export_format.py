"""The export's serializers: exact decimal text, JSON strings as json.dumps writes them, RFC 4180
CSV, and files of zero rows (no database: a cursor stand-in)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from northwind_elt import export


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        ("plain", '"plain"'),
        ('quote " and \\ and\nnewline', json.dumps('quote " and \\ and\nnewline', ensure_ascii=False)),
        ("Ærøskøbing ☕", '"Ærøskøbing ☕"'),
        (True, "true"),
        (10248, "10248"),
        (Decimal("14.00"), "14.00"),  # exact text: never through float
        (Decimal("0.1"), "0.1"),
        (dt.date(1996, 7, 4), '"1996-07-04"'),
        (dt.datetime(1996, 7, 4, 12, 30), '"1996-07-04T12:30:00"'),
        (1.5, "1.5"),
    ],
)
def test_json_values(value: Any, text: str) -> None:
    assert export._json(value) == text
    json.loads(text)  # valid JSON on its own


def test_csv_text_of_values() -> None:
    assert [export._text(v) for v in (None, "", Decimal("3.50"), dt.date(1996, 7, 4), 7)] == ["", "", "3.50", "1996-07-04", "7"]


class Cursor:
    """What _write reads of a server-side cursor: its description and its rows."""

    def __init__(self, names: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.description = [SimpleNamespace(name=n) for n in names]
        self.rows = rows

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.rows)


def test_write_csv_and_json_agree_row_for_row(tmp_path: Path) -> None:
    rows = [(10248, 'Vins et alcools, "Chevalier"', Decimal("14.00"), None), (10249, "Line\nbreak", Decimal("0.10"), dt.date(1996, 7, 5))]
    n = export._write(Cursor(["order_id", "name", "price", "shipped"], rows), tmp_path / "a.csv", tmp_path / "a.json")  # type: ignore[arg-type]
    assert n == 2
    text = (tmp_path / "a.csv").read_text()
    assert list(csv.reader(io.StringIO(text))) == [
        ["order_id", "name", "price", "shipped"],
        ["10248", 'Vins et alcools, "Chevalier"', "14.00", ""],
        ["10249", "Line\nbreak", "0.10", "1996-07-05"],
    ]
    raw = (tmp_path / "a.json").read_text()
    assert raw.startswith('[\n  {"order_id": 10248, ') and raw.endswith("}\n]\n")
    parsed = json.loads(raw, parse_float=Decimal)
    assert parsed[0] == {"order_id": 10248, "name": 'Vins et alcools, "Chevalier"', "price": Decimal("14.00"), "shipped": None}
    assert str(parsed[1]["price"]) == "0.10"


def test_zero_rows_give_a_header_and_an_empty_array(tmp_path: Path) -> None:
    assert export._write(Cursor(["order_id"], []), tmp_path / "a.csv", tmp_path / "a.json") == 0  # type: ignore[arg-type]
    assert (tmp_path / "a.csv").read_text() == "order_id\n"
    assert (tmp_path / "a.json").read_text() == "[\n]\n" and json.loads((tmp_path / "a.json").read_text()) == []
