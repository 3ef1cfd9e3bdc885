"""Tests for load/tap-landing on a landed day built in a temporary folder (no database):
the Singer SDK's standard tap tests, BATCH chunking byte for byte, and the RECORD fallback."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import urllib.parse
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from landed_day import CSV, DAY, ORDER_SCHEMA, POSTGRES, jsonl, land, land_day, orders, stream
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from northwind_elt.errors import Fix
from northwind_elt.landing import GateError, Landing, load_column_name
from tap_landing.tap import TapLanding

# --- Singer SDK standard tests ----------------------------------------------
# get_tap_test_class needs its config when the class is created, so the day is landed at import
# time into a temporary folder removed at exit.
_SAMPLE_DIR = Path(tempfile.mkdtemp(prefix="tap-landing-"))
atexit.register(shutil.rmtree, _SAMPLE_DIR, ignore_errors=True)
land_day(_SAMPLE_DIR)

TestTapLandingStandard = get_tap_test_class(
    TapLanding,
    config={"data_dir": str(_SAMPLE_DIR), "date": DAY.isoformat()},
    # an empty table lands and replays as a schema without records (two Northwind tables are empty)
    suite_config=SuiteConfig(ignore_no_records_for_streams=["load_20240101-shippers"]),
)


# --- helpers -------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tap cuts its chunks into <project root>/.meltano/staging (Meltano sets the root)."""
    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(tmp_path))


def sync(capsys: pytest.CaptureFixture[str], data_dir: Path, batch_rows: int) -> list[dict[str, Any]]:
    """Run the tap in process; its Singer messages."""
    capsys.readouterr()
    TapLanding(config={"data_dir": str(data_dir), "date": DAY.isoformat(), "batch_rows": batch_rows}).sync_all()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def batch_files(messages: list[dict[str, Any]], stream: str) -> list[Path]:
    return [
        Path(urllib.parse.urlparse(url).path) for m in messages if m["type"] == "BATCH" and m["stream"] == stream for url in m["manifest"]
    ]


def records(messages: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    return [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == stream]


def replayed_lines(landing: Landing) -> list[dict[str, Any]]:
    """The landed order_details records as RECORD messages carry them: decimals as their exact
    text (the load schema declares them as strings), everything else as landed."""
    landed = [json.loads(line, parse_float=Decimal) for line in landing.records_file(CSV, "order_details", DAY).read_text().splitlines()]
    return [{**r, "unit_price": str(r["unit_price"]), "discount": str(r["discount"])} for r in landed]


ORDERS = "load_20240101-orders"
LINES = "load_20240101-order_details"


# --- BATCH messages --------------------------------------------------------------
def test_a_big_table_is_cut_into_chunks_byte_for_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    landing = land_day(tmp_path, order_count=3, line_count=11)
    messages = sync(capsys, tmp_path, batch_rows=4)
    assert not records(messages, LINES)
    chunks = batch_files(messages, LINES)
    landed = landing.records_file(CSV, "order_details", DAY).read_bytes()
    assert [len(c.read_bytes().splitlines()) for c in chunks] == [4, 4, 3]
    assert b"".join(c.read_bytes() for c in chunks) == landed  # never parsed, never rewritten
    assert all(c.parent.is_relative_to(tmp_path / ".meltano" / "staging" / "tap_landing" / DAY.isoformat()) for c in chunks)
    # a table within batch_rows is referenced where it landed, not copied
    assert batch_files(messages, ORDERS) == [landing.records_file(POSTGRES, "orders", DAY)]
    # an empty table sends its schema and no batch
    assert not batch_files(messages, "load_20240101-shippers")
    assert any(m["type"] == "SCHEMA" and m["stream"] == "load_20240101-shippers" for m in messages)


def test_chunks_of_an_earlier_replay_are_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    land_day(tmp_path, line_count=9)
    first = batch_files(sync(capsys, tmp_path, batch_rows=2), LINES)
    assert len(first) == 5
    land_day(tmp_path, line_count=4)  # step 1 reran with fewer rows
    second = batch_files(sync(capsys, tmp_path, batch_rows=2), LINES)
    assert len(second) == 2
    assert sorted(p.name for p in second[0].parent.iterdir()) == sorted(p.name for p in second)  # no stale chunk


# --- RECORD fallback -------------------------------------------------------------
def test_batch_rows_zero_replays_record_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    landing = land_day(tmp_path, line_count=6)
    messages = sync(capsys, tmp_path, batch_rows=0)
    assert not any(m["type"] == "BATCH" for m in messages)
    assert records(messages, LINES) == replayed_lines(landing)


def test_a_project_folder_needing_url_escaping_falls_back_to_record_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "my project #1"  # where the chunks would be cut
    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(root))
    landing = land_day(tmp_path / "data", order_count=3, line_count=11)
    messages = sync(capsys, tmp_path / "data", batch_rows=4)
    assert not any(m["type"] == "BATCH" for m in messages)
    assert records(messages, LINES) == replayed_lines(landing)
    assert len(records(messages, ORDERS)) == 3
    assert not (root / ".meltano" / "staging" / "tap_landing").exists()  # nothing cut


def test_a_data_dir_needing_url_escaping_is_replayed_from_chunks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "my data #1"
    landing = land_day(data_dir, order_count=3, line_count=11)
    messages = sync(capsys, data_dir, batch_rows=4)
    chunks = batch_files(messages, ORDERS)  # small enough to be referenced, but its URL would break: copied
    assert [c.read_bytes() for c in chunks] == [landing.records_file(POSTGRES, "orders", DAY).read_bytes()]
    assert all(" " not in str(c) for c in chunks)


def test_numbers_keep_their_exact_decimal_text_in_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    land_day(tmp_path, order_count=3)
    messages = sync(capsys, tmp_path, batch_rows=0)
    assert [r["freight"] for r in records(messages, ORDERS)] == ["0.25", "1.25", "2.25"]
    schema = next(m for m in messages if m["type"] == "SCHEMA" and m["stream"] == ORDERS)
    assert schema["key_properties"] == ["order_id"]
    # decimals are strings in the load schema (target-postgres COPYs text exactly; the commit
    # casts them back to numeric); the landed schema still says number
    assert schema["schema"]["properties"]["freight"]["type"] == ["string", "null"]
    assert "number" in Landing(tmp_path).schema(POSTGRES, "orders", DAY)["schema"]["properties"]["freight"]["type"]


def test_a_column_with_a_double_quote_travels_under_a_stand_in_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """target-postgres 0.8.1's COPY statement does not escape a double quote in a column name: the
    load schema, its key properties and every record name such a column by its stand-in, and the
    table travels as RECORD messages (the landed bytes carry the real name)."""
    quoted = 'Author\'s "Nick"'
    schema = {"type": "object", "properties": {quoted: {"type": ["string"]}, "n": {"type": ["number", "null"]}}, "required": [quoted]}
    landing = land_day(tmp_path)  # then extract-postgres lands a day with one more table
    land(
        landing,
        POSTGRES,
        {"public-orders": jsonl(orders(2)), "public-notes": jsonl([{quoted: "ann", "n": 1.5}, {quoted: "bob", "n": None}])},
        [stream("public-orders", ORDER_SCHEMA, ["order_id"]), stream("public-notes", schema, [quoted])],
    )
    messages = sync(capsys, tmp_path, batch_rows=50000)
    stand_in = load_column_name(quoted)
    assert '"' not in stand_in and stand_in != load_column_name('Author\'s "Nick2"') and len(stand_in.encode()) <= 63
    assert load_column_name("Note ID") == "Note ID"  # names without a double quote are their own
    declared = next(m for m in messages if m["type"] == "SCHEMA" and m["stream"] == "load_20240101-notes")
    assert list(declared["schema"]["properties"]) == [stand_in, "n"] and declared["schema"]["required"] == [stand_in]
    assert declared["key_properties"] == [stand_in]
    assert records(messages, "load_20240101-notes") == [{stand_in: "ann", "n": "1.5"}, {stand_in: "bob", "n": None}]
    assert batch_files(messages, LINES)  # the other tables still go as BATCH files


# --- the gate ----------------------------------------------------------------------
def test_discovery_runs_the_gate(tmp_path: Path) -> None:
    landing = land_day(tmp_path)
    landing.task_marker(CSV, DAY).unlink()
    with pytest.raises(GateError) as refused:
        TapLanding(config={"data_dir": str(tmp_path), "date": DAY.isoformat(), "batch_rows": 4})
    assert refused.value.fixes == [Fix(step="extract-csv", day=DAY)]
