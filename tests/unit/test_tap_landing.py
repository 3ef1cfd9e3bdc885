"""Tests for load/tap-landing on a landed day built in a temporary folder (no database):
the Singer SDK's standard tap tests, BATCH chunking byte for byte, and the RECORD fallback."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

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

_SAMPLE_ROOT = _SAMPLE_DIR / "project"  # the project root the tap sees while the class is built
Landing(_SAMPLE_DIR, _SAMPLE_ROOT / ".meltano" / "staging").check_day(DAY, copy=True)  # the load job's gate
with mock.patch.dict(os.environ, {"MELTANO_PROJECT_ROOT": str(_SAMPLE_ROOT)}):
    TestTapLandingStandard = get_tap_test_class(
        TapLanding,
        config={"data_dir": str(_SAMPLE_DIR), "date": DAY.isoformat()},
        # an empty table lands and replays as a schema without records (two Northwind tables are empty)
        suite_config=SuiteConfig(ignore_no_records_for_streams=["load_20240101-shippers"]),
    )


# --- helpers -------------------------------------------------------------------
def staging(root: Path) -> Path:
    """Where the tap finds the gate's verified copies and cuts its chunks (Meltano sets the root)."""
    return root / ".meltano" / "staging"


@pytest.fixture(scope="module", autouse=True)
def _sample_root() -> Iterator[None]:
    """The SDK's standard tests run the tap over the sample day with its verified copies."""
    with mock.patch.dict(os.environ, {"MELTANO_PROJECT_ROOT": str(_SAMPLE_ROOT)}):
        yield


@pytest.fixture(autouse=True)
def _project_root(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.cls is None:  # this module's own tests: a project root of their own
        monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(tmp_path))


def sync(capsys: pytest.CaptureFixture[str], data_dir: Path, batch_rows: int, root: Path | None = None) -> list[dict[str, Any]]:
    """The load job's gate (the verified copies), then the tap in process; its Singer messages."""
    Landing(data_dir, staging(root or data_dir)).check_day(DAY, copy=True)
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
    landing = Landing(tmp_path, staging(tmp_path))
    land_day(tmp_path, order_count=3, line_count=11)
    messages = sync(capsys, tmp_path, batch_rows=4)
    assert not records(messages, LINES)
    chunks = batch_files(messages, LINES)
    landed = landing.records_file(CSV, "order_details", DAY).read_bytes()
    assert [len(c.read_bytes().splitlines()) for c in chunks] == [4, 4, 3]
    assert b"".join(c.read_bytes() for c in chunks) == landed  # never parsed, never rewritten
    assert all(c.parent.is_relative_to(landing.load_dir(DAY)) for c in chunks)
    # a table within batch_rows is referenced as the gate's verified copy, not cut
    assert batch_files(messages, ORDERS) == [Landing(tmp_path, staging(tmp_path)).verified_copy(POSTGRES, "orders", DAY)]
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
    messages = sync(capsys, tmp_path / "data", batch_rows=4, root=root)
    assert not any(m["type"] == "BATCH" for m in messages)
    assert records(messages, LINES) == replayed_lines(landing)
    assert len(records(messages, ORDERS)) == 3
    assert not [p for p in (staging(root) / "tap_landing" / DAY.isoformat()).iterdir() if p.is_dir()]  # nothing cut


def test_the_tap_reads_the_verified_copy_not_the_landed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A landed file swapped after the gate verified it (and put back before the close) is not
    what is loaded: the target reads the copy the gate wrote as it verified the file."""
    landing = land_day(tmp_path, order_count=3, line_count=11)
    path = landing.records_file(POSTGRES, "orders", DAY)
    verified = path.read_bytes()
    Landing(tmp_path, staging(tmp_path)).check_day(DAY, copy=True)
    path.write_bytes(verified.replace(b"0.25", b"9.25"))  # swapped in after the gate
    for batch_rows, kind in ((50000, "BATCH"), (2, "BATCH"), (0, "RECORD")):
        capsys.readouterr()
        TapLanding(config={"data_dir": str(tmp_path), "date": DAY.isoformat(), "batch_rows": batch_rows}).sync_all()
        messages = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
        if kind == "BATCH":
            assert b"".join(p.read_bytes() for p in batch_files(messages, ORDERS)) == verified
        else:
            assert [r["freight"] for r in records(messages, ORDERS)] == ["0.25", "1.25", "2.25"]


def test_without_the_gates_copies_the_tap_refuses(tmp_path: Path) -> None:
    land_day(tmp_path)
    with pytest.raises(SystemExit) as refused:
        TapLanding(config={"data_dir": str(tmp_path), "date": DAY.isoformat(), "batch_rows": 4})
    assert "no verified copy of" in str(refused.value) and "run the whole job (RUN_DATE=2024-01-01 meltano run load)" in str(refused.value)


def test_numbers_keep_their_exact_decimal_text_in_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    land_day(tmp_path, order_count=3)
    messages = sync(capsys, tmp_path, batch_rows=0)
    assert [r["freight"] for r in records(messages, ORDERS)] == ["0.25", "1.25", "2.25"]
    schema = next(m for m in messages if m["type"] == "SCHEMA" and m["stream"] == ORDERS)
    assert schema["key_properties"] == []  # target-postgres appends into the new load table; raw keeps the key
    # decimals are strings in the load schema (target-postgres COPYs text exactly; the commit
    # casts them back to numeric); the landed schema still says number
    assert schema["schema"]["properties"]["freight"]["type"] == ["string", "null"]
    assert "number" in Landing(tmp_path).schema(POSTGRES, "orders", DAY)["schema"]["properties"]["freight"]["type"]


def test_a_column_with_a_double_quote_travels_under_a_stand_in_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """target-postgres 0.8.1's COPY statement does not escape a double quote in a column name: the
    load schema and every record name such a column by its stand-in, and the
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
    assert declared["key_properties"] == []
    assert records(messages, "load_20240101-notes") == [{stand_in: "ann", "n": "1.5"}, {stand_in: "bob", "n": None}]
    assert batch_files(messages, LINES)  # the other tables still go as BATCH files


# --- the gate ----------------------------------------------------------------------
def test_discovery_runs_the_gate(tmp_path: Path) -> None:
    landing = land_day(tmp_path)
    landing.task_marker(CSV, DAY).unlink()
    with pytest.raises(GateError) as refused:
        TapLanding(config={"data_dir": str(tmp_path), "date": DAY.isoformat(), "batch_rows": 4})
    assert refused.value.fixes == [Fix(step="extract-csv", day=DAY)]
