"""End to end: `make pipeline` on the real data, the mart, the dbt tests and the export."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from conftest import D1, D2, Project


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def done(project: Project) -> Project:
    result = project.make("pipeline", f"DATE={D1}", check=True)
    assert "summary for 2024-01-01" in result.stdout
    return project


def test_pipeline_writes_csv_and_json(done: Project) -> None:
    out = done.data_dir / "output" / D1
    assert sorted(p.name for p in out.iterdir()) == ["orders_details.csv", "orders_details.json"]
    rows = list(csv.DictReader((out / "orders_details.csv").open(newline="")))
    data = json.loads((out / "orders_details.json").read_text())
    assert len(rows) == len(data) == 2155
    assert list(data[0]) == list(rows[0])
    assert [(int(r["order_id"]), int(r["product_id"])) for r in rows] == [(d["order_id"], d["product_id"]) for d in data]


def test_one_row_per_csv_order_line_each_joined_to_its_order(done: Project) -> None:
    source = list(csv.DictReader((done.settings.source_dir / "order_details.csv").open(newline="")))
    result = list(csv.DictReader((done.data_dir / "output" / D1 / "orders_details.csv").open(newline="")))
    assert sorted((int(r["order_id"]), int(r["product_id"])) for r in source) == [
        (int(r["order_id"]), int(r["product_id"])) for r in result
    ]
    assert all(r["order_date"] and r["customer_id"] for r in result)
    first = next(r for r in result if r["order_id"] == "10248" and r["product_id"] == "11")
    assert first["customer_id"] == "VINET" and first["order_date"] == "1996-07-04"


def test_rerun_gives_byte_identical_results(done: Project) -> None:
    out = done.data_dir / "output" / D1
    before = _digests(out)
    done.make("pipeline", f"DATE={D1}", check=True)
    assert _digests(out) == before


def test_another_day_leaves_the_first_unchanged(done: Project) -> None:
    out = done.data_dir / "output" / D1
    before_files = _digests(out)
    before_raw = done.raw_snapshot(D1)
    before_mart = done.sql("select * from marts.orders_details where snapshot_date = %s order by order_id, product_id", (D1,))
    done.make("pipeline", f"DATE={D2}", check=True)
    assert (done.data_dir / "output" / D2 / "orders_details.csv").exists()
    assert _digests(out) == before_files
    assert done.raw_snapshot(D1) == before_raw
    assert done.sql("select * from marts.orders_details where snapshot_date = %s order by order_id, product_id", (D1,)) == before_mart


def test_export_refuses_a_day_not_transformed(done: Project) -> None:
    result = done.make("export", "DATE=2023-12-30")
    assert result.returncode != 0
    assert "the transform has not built marts.orders_details for 2023-12-30" in result.stderr
    assert "make transform DATE=2023-12-30" in result.stderr
    assert not (done.data_dir / "output" / "2023-12-30").exists()


def test_a_failing_dbt_test_fails_transform_and_names_it(done: Project) -> None:
    day = "2024-01-03"
    for step in ("extract-postgres", "extract-csv", "load"):
        done.make(step, f"DATE={day}", check=True)
    done.sql("update raw.order_details set quantity = 0 where snapshot_date = %s and order_id = 10248 and product_id = 11", (day,))
    result = done.make("transform", f"DATE={day}")
    assert result.returncode != 0
    assert "FAILED: step transform" in result.stderr
    assert "quantity" in result.stderr  # the failing test (accepted range on quantity) is named
    assert f"make transform DATE={day}" in result.stderr
