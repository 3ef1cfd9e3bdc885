"""The landing layout without a database: publish a staged day, verify it, and the gate
(`verify`, `check_day`) refusing each kind of damage; the external sort's spill and merge."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from landed_day import CSV, DAY, LINE_SCHEMA, ORDER_SCHEMA, POSTGRES, jsonl, land, land_day, order_lines, orders, stream

from northwind_elt import landing as landing_mod
from northwind_elt.console import error_line
from northwind_elt.landing import GateError, Landing, PublishError


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path -> content)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- publish, then verify --------------------------------------------------------------------------
def test_publish_sorts_by_key_and_verify_returns_what_publish_recorded(tmp_path: Path) -> None:
    landing = land_day(tmp_path, order_count=5, line_count=7)
    published = landing.verify(POSTGRES, DAY)
    assert set(published) == {"orders", "shippers"}
    records = landing.records_file(POSTGRES, "orders", DAY)
    assert [r["order_id"] for r in _lines(records)] == [10248, 10249, 10250, 10251, 10252]  # staged reversed
    assert published["orders"]["rows"] == 5
    assert published["orders"]["sha256"] == hashlib.sha256(records.read_bytes()).hexdigest()
    assert published["orders"]["dir"] == records.parent
    assert published["shippers"]["rows"] == 0  # a stream without records still lands, empty
    assert landing.schema(POSTGRES, "orders", DAY) == {"stream": "orders", "key_properties": ["order_id"], "schema": ORDER_SCHEMA}
    assert not Landing(tmp_path).staging_dir(POSTGRES).exists()  # staging consumed


def test_check_day_returns_every_table_of_both_sources(tmp_path: Path) -> None:
    landing = land_day(tmp_path, order_count=3, line_count=4)
    found = landing.check_day(DAY)
    assert {(source.name, table): info["rows"] for (source, table), info in found.items()} == {
        ("postgres", "orders"): 3,
        ("postgres", "shippers"): 0,
        ("csv", "order_details"): 4,
    }


def test_a_rerun_of_the_same_day_writes_byte_identical_files(tmp_path: Path) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"
    land_day(first)
    land_day(second)
    land_day(second)  # and again over itself
    assert _files(first) == _files(second)


def test_unselected_streams_are_not_landed(tmp_path: Path) -> None:
    landing = Landing(tmp_path)
    land(
        landing,
        POSTGRES,
        {"public-orders": jsonl(orders(2)), "public-shippers": jsonl(orders(1))},
        [stream("public-orders", ORDER_SCHEMA, ["order_id"]), stream("public-shippers", ORDER_SCHEMA, ["order_id"], selected=False)],
    )
    assert set(landing.verify(POSTGRES, DAY)) == {"orders"}


def test_publish_without_staged_output_or_streams_is_refused(tmp_path: Path) -> None:
    landing = Landing(tmp_path)
    with pytest.raises(PublishError) as refused:
        landing.publish(CSV, DAY, {"streams": [stream("order_details", LINE_SCHEMA, ["order_id", "product_id"])]})
    assert re.search(r"nothing staged .*make extract-csv DATE=2024-01-01", error_line(refused.value))
    landing.stage(CSV, DAY)
    with pytest.raises(PublishError) as refused:
        landing.publish(CSV, DAY, {"streams": []})
    assert re.search(r"catalog lists no streams.*make extract-csv DATE=2024-01-01", error_line(refused.value))


# -- the gate refuses each kind of damage -----------------------------------------------------------
def _truncate(landing: Landing) -> None:
    path = landing.records_file(POSTGRES, "orders", DAY)
    path.write_bytes(path.read_bytes()[:-10])


def _drop_a_line(landing: Landing) -> None:
    path = landing.records_file(POSTGRES, "orders", DAY)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))


def _edit_a_value(landing: Landing) -> None:  # same rows, same size, other bytes
    path = landing.records_file(POSTGRES, "orders", DAY)
    path.write_text(path.read_text().replace("C001", "C999"))


def _append_a_line(landing: Landing) -> None:
    path = landing.records_file(POSTGRES, "orders", DAY)
    with path.open("a") as handle:
        handle.write('{"order_id": 99999, "customer_id": null, "freight": null}\n')


def _delete_records(landing: Landing) -> None:
    landing.records_file(POSTGRES, "orders", DAY).unlink()


def _delete_table_success(landing: Landing) -> None:
    (landing.day_dir(POSTGRES, "orders", DAY) / "_SUCCESS").unlink()


def _delete_table_folder(landing: Landing) -> None:
    for path in landing.day_dir(POSTGRES, "orders", DAY).iterdir():
        path.unlink()
    landing.day_dir(POSTGRES, "orders", DAY).rmdir()


def _delete_task_marker(landing: Landing) -> None:
    landing.task_marker(POSTGRES, DAY).unlink()


def _task_marker_a_folder(landing: Landing) -> None:
    landing.task_marker(POSTGRES, DAY).unlink()
    landing.task_marker(POSTGRES, DAY).mkdir()


def _task_marker_a_fifo(landing: Landing) -> None:
    landing.task_marker(POSTGRES, DAY).unlink()
    os.mkfifo(landing.task_marker(POSTGRES, DAY))


DAMAGE: dict[str, Callable[[Landing], None]] = {
    "truncated": _truncate,
    "line-dropped": _drop_a_line,
    "value-edited": _edit_a_value,
    "line-appended": _append_a_line,
    "records-deleted": _delete_records,
    "table-success-deleted": _delete_table_success,
    "table-folder-deleted": _delete_table_folder,
    "task-marker-deleted": _delete_task_marker,
    "task-marker-a-folder": _task_marker_a_folder,
    "task-marker-a-fifo": _task_marker_a_fifo,  # never opened: reading a FIFO waits for a writer
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_the_gate_refuses_damage_and_names_the_rerun(tmp_path: Path, damage: str) -> None:
    landing = land_day(tmp_path)
    landing.verify(POSTGRES, DAY)  # intact first
    DAMAGE[damage](landing)
    with pytest.raises(GateError) as refused:
        landing.verify(POSTGRES, DAY)
    assert re.search(r"extract-postgres.*2024-01-01.*run make extract-postgres DATE=2024-01-01", error_line(refused.value))
    with pytest.raises(GateError) as refused:
        landing.check_day(DAY)
    message = error_line(refused.value).removeprefix("GateError: ")
    assert message.startswith("step 2 (load) refuses to run for 2024-01-01")
    assert "make extract-postgres DATE=2024-01-01" in message
    assert "make extract-csv" not in message  # the csv task is intact: only the broken one is named
    landing.verify(CSV, DAY)
    if damage.startswith("task-marker"):  # status and the later gates see no landing
        assert landing.marker_checksum(POSTGRES, DAY) is None and landing.landed_checksum(DAY) is None


def test_a_publish_removes_what_a_killed_publish_of_the_day_left(tmp_path: Path) -> None:
    landing = land_day(tmp_path)
    parent = landing.day_dir(POSTGRES, "orders", DAY).parent
    leftovers = [parent / f".{DAY}.1234abcd.building", parent / f".{DAY}.old.1234abcd"]
    another_days = parent / f".{DAY.replace(day=2)}.1234abcd.building"
    for folder in [*leftovers, another_days]:
        folder.mkdir()
        (folder / "orders.jsonl").write_text("{}\n")
    marker = landing.task_marker(POSTGRES, DAY)
    leftovers.append(marker.with_name(f".{marker.name}.1234abcd.tmp"))  # a marker's write, killed
    leftovers[-1].write_text("{")
    marker.unlink()
    marker.mkdir()  # not a marker: replaced
    land_day(tmp_path)
    assert not any(path.exists() for path in leftovers) and another_days.exists()
    assert marker.is_file()


def test_a_day_never_extracted_is_refused_naming_both_tasks(tmp_path: Path) -> None:
    landing = Landing(tmp_path)
    with pytest.raises(GateError) as refused:
        landing.check_day(DAY)
    assert "make extract-postgres DATE=2024-01-01" in error_line(refused.value)
    assert "make extract-csv DATE=2024-01-01" in error_line(refused.value)


def test_another_day_does_not_satisfy_the_gate(tmp_path: Path) -> None:
    landing = land_day(tmp_path)
    other = DAY.replace(day=2)
    with pytest.raises(GateError, match="2024-01-02"):
        landing.check_day(other)


def test_a_republished_day_passes_the_gate_again(tmp_path: Path) -> None:
    landing = land_day(tmp_path)
    _truncate(landing)
    with pytest.raises(GateError):
        landing.check_day(DAY)
    land_day(tmp_path)  # the rerun the message names
    assert landing.check_day(DAY)


def test_a_rerun_removes_table_folders_the_source_no_longer_has(tmp_path: Path) -> None:
    """A table dropped from the source, or a folder someone added: the gate refuses the day, and
    the rerun it names publishes exactly the tables the source has now, so the day passes again."""
    landing = land_day(tmp_path)
    added = tmp_path / "postgres" / "intruder" / DAY.isoformat()
    added.mkdir(parents=True)
    (added / "intruder.jsonl").write_text("{}\n")
    with pytest.raises(GateError, match="intruder"):
        landing.check_day(DAY)
    # the source lost its shippers table: the rerun lands orders only
    land(landing, POSTGRES, {"public-orders": jsonl(orders(2))}, [stream("public-orders", ORDER_SCHEMA, ["order_id"])])
    assert sorted(table for (_, table) in landing.check_day(DAY)) == ["order_details", "orders"]
    assert not added.exists() and not (tmp_path / "postgres" / "shippers" / DAY.isoformat()).exists()
    assert (tmp_path / "postgres" / "intruder").is_dir()  # only the day's folder goes


# -- duplicate keys and the previous day ------------------------------------------------------------
def test_a_duplicate_key_is_refused_and_the_previous_day_stays_intact(tmp_path: Path) -> None:
    landing = land_day(tmp_path)
    before = _files(tmp_path / "postgres")
    duplicated = [*orders(3), {"order_id": 10249, "customer_id": "OTHER", "freight": 1.0}]
    with pytest.raises(PublishError, match=r"extract-postgres orders for 2024-01-01: duplicate key \(order_id=10249\)"):
        land(landing, POSTGRES, {"public-orders": jsonl(duplicated)}, [stream("public-orders", ORDER_SCHEMA, ["order_id"])])
    assert _files(tmp_path / "postgres") == before  # nothing replaced, no building folder left
    landing.check_day(DAY)


# -- the external sort: runs spilled to disk and merged ----------------------------------------------
@pytest.fixture()
def spills(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """SORT_CHUNK_ROWS = 3, and the paths of the run files the sort spills."""
    monkeypatch.setattr(landing_mod, "SORT_CHUNK_ROWS", 3)
    made: list[Path] = []
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        made.append(Path(name))
        return fd, name

    monkeypatch.setattr(landing_mod.tempfile, "mkstemp", mkstemp)
    return made


def test_spilled_runs_merge_into_key_order_and_are_removed(tmp_path: Path, spills: list[Path]) -> None:
    lines = order_lines(40)
    lines.append({"order_id": 9, "product_id": 3, "unit_price": 1, "quantity": 1, "discount": 0})  # 9 < 10248 as numbers
    random.Random(7).shuffle(lines)
    landing = Landing(tmp_path)
    land(landing, CSV, {"order_details": jsonl(lines)}, [stream("order_details", LINE_SCHEMA, ["order_id", "product_id"])])
    assert len(spills) == 13  # 41 rows in runs of 3: 13 spilled, the last 2 rows merged from memory
    assert not any(path.exists() for path in spills)
    landed = _lines(landing.records_file(CSV, "order_details", DAY))
    keys = [(r["order_id"], r["product_id"]) for r in landed]
    assert keys == sorted((r["order_id"], r["product_id"]) for r in lines)
    assert keys[0] == (9, 3)
    assert landing.verify(CSV, DAY)["order_details"]["rows"] == 41
    assert sorted(p.name for p in landing.day_dir(CSV, "order_details", DAY).iterdir()) == [
        "_SUCCESS",
        "_manifest.json",
        "_schema.json",
        "order_details.jsonl",
    ]


@pytest.mark.parametrize("staged_order", ["shuffled", "in key order", "in key order but rows 4 and 5 swapped"])
def test_the_merge_equals_the_in_memory_sort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staged_order: str) -> None:
    """Runs in key order (the usual file) are joined without a merge; runs that overlap, even by
    one row across their edge (runs of 4: rows 1-4 and 5-8), are merged."""
    lines = order_lines(25)
    if staged_order == "shuffled":
        random.Random(3).shuffle(lines)
    elif staged_order.endswith("swapped"):
        lines[3], lines[4] = lines[4], lines[3]
    staged = jsonl(lines)
    catalog = [stream("order_details", LINE_SCHEMA, ["order_id", "product_id"])]
    land(Landing(tmp_path / "memory"), CSV, {"order_details": staged}, catalog)
    monkeypatch.setattr(landing_mod, "SORT_CHUNK_ROWS", 4)
    land(Landing(tmp_path / "spilled"), CSV, {"order_details": staged}, catalog)
    assert _files(tmp_path / "memory" / "csv") == _files(tmp_path / "spilled" / "csv")


@pytest.mark.parametrize("record", [{"code": None, "n": 1}, {"n": 1}], ids=["null", "missing"])
def test_a_null_key_is_refused_and_nothing_is_published(tmp_path: Path, record: dict[str, Any]) -> None:
    nullable = {"type": "object", "properties": {"code": {"type": ["string", "null"]}, "n": {"type": ["integer"]}}}
    landing = Landing(tmp_path)
    with pytest.raises(
        PublishError, match=r"extract-postgres codes for 2024-01-01: a key is null \(code=null, n=1\); a day's keys are never null"
    ):
        land(landing, POSTGRES, {"public-codes": jsonl([{"code": "b", "n": 2}, record])}, [stream("public-codes", nullable, ["code", "n"])])
    assert not landing.task_marker(POSTGRES, DAY).exists()


def test_a_malformed_staged_line_is_refused_by_name_and_nothing_is_published(tmp_path: Path) -> None:
    landing = Landing(tmp_path)
    staged = jsonl(orders(2)) + '{"order_id": 3, "customer_id": "V\n'  # cut short: a broken write
    with pytest.raises(PublishError, match=r"^extract-postgres orders for 2024-01-01: a staged line is not a JSON record \(.+\): rerun"):
        land(landing, POSTGRES, {"public-orders": staged}, [stream("public-orders", ORDER_SCHEMA, ["order_id"])])
    assert not landing.task_marker(POSTGRES, DAY).exists()


def test_a_duplicate_key_in_two_different_runs_is_refused(tmp_path: Path, spills: list[Path]) -> None:
    lines = order_lines(20)
    lines.append({**lines[1], "quantity": 999})  # the same key as row 2 (first run), in the last run
    landing = Landing(tmp_path)
    with pytest.raises(PublishError, match=r"duplicate key \(order_id=10248, product_id=2\)"):
        land(landing, CSV, {"order_details": jsonl(lines)}, [stream("order_details", LINE_SCHEMA, ["order_id", "product_id"])])
    assert len(spills) >= 2
    assert not any(path.exists() for path in spills)  # runs removed on the error path too
    assert not (tmp_path / "csv" / "order_details").exists() or not any((tmp_path / "csv" / "order_details").iterdir())
    assert not landing.task_marker(CSV, DAY).exists()
