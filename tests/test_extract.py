"""Step 1: both extract tasks, run with `make` against the real embedded PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import D1, D2, ROOT, Project

SOURCE_TABLES = {
    "categories",
    "customer_customer_demo",
    "customer_demographics",
    "customers",
    "employee_territories",
    "employees",
    "orders",
    "products",
    "region",
    "shippers",
    "suppliers",
    "territories",
    "us_states",
}


@pytest.fixture(scope="module")
def extracted(project: Project) -> Project:
    project.make("extract-postgres", f"DATE={D1}", check=True)
    project.make("extract-csv", f"DATE={D1}", check=True)
    return project


def _lines(path: Path) -> int:
    return sum(1 for _ in path.open("rb"))


def test_fourteen_files_with_real_counts(extracted: Project) -> None:
    data = extracted.data_dir
    landed = {p.parent.parent.name for p in data.glob(f"postgres/*/{D1}/*.jsonl")}
    assert landed == SOURCE_TABLES
    assert _lines(data / f"postgres/orders/{D1}/orders.jsonl") == 830
    assert _lines(data / f"csv/order_details/{D1}/order_details.jsonl") == 2155
    for empty in ("customer_customer_demo", "customer_demographics"):
        path = data / f"postgres/{empty}/{D1}/{empty}.jsonl"
        assert path.exists() and path.stat().st_size == 0


def test_each_file_has_schema_manifest_and_marker(extracted: Project) -> None:
    folder = extracted.data_dir / f"postgres/orders/{D1}"
    schema = json.loads((folder / "_schema.json").read_text())
    assert schema["key_properties"] == ["order_id"]
    assert schema["schema"]["properties"]["order_date"]["format"] == "date"
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["rows"] == 830 and len(manifest["sha256"]) == 64
    assert (folder / "_SUCCESS").exists()
    marker = json.loads((extracted.data_dir / f"postgres/_manifests/{D1}.json").read_text())
    assert set(marker["tables"]) == SOURCE_TABLES
    orders = marker["tables"]["orders"]
    assert orders["rows"] == 830 and orders["sha256"] == manifest["sha256"]
    # the marker lists every file of the folder with its size and digest
    assert orders["files"] == {
        p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in folder.iterdir()
    }
    assert set(orders["files"]) == {"orders.jsonl", "_schema.json", "_manifest.json", "_SUCCESS"}


def test_records_sorted_by_key_and_typed(extracted: Project) -> None:
    path = extracted.data_dir / f"csv/order_details/{D1}/order_details.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    keys = [(r["order_id"], r["product_id"]) for r in records]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert isinstance(records[0]["quantity"], int)
    assert '"unit_price": 9.8,' in path.read_text()  # exact decimal text, no float noise


def test_rerun_is_byte_identical(extracted: Project) -> None:
    before = extracted.day_files(D1)
    assert len(before) == 14 * 4 + 2
    extracted.make("extract-postgres", f"DATE={D1}", check=True)
    extracted.make("extract-csv", f"DATE={D1}", check=True)
    assert extracted.day_files(D1) == before


def test_one_task_without_the_other(extracted: Project) -> None:
    extracted.make("extract-csv", f"DATE={D2}", check=True)
    assert (extracted.data_dir / f"csv/order_details/{D2}/_SUCCESS").exists()
    assert not list(extracted.data_dir.glob(f"postgres/*/{D2}"))


def test_invalid_date_is_refused(extracted: Project) -> None:
    result = extracted.make("extract-postgres", "DATE=2024-13-01")
    assert result.returncode != 0
    assert "DATE='2024-13-01' is not a date" in result.stderr and "YYYY-MM-DD" in result.stderr


def test_bad_csv_row_names_file_line_column_and_keeps_good_day(extracted: Project, csv_copy: Path) -> None:
    before = extracted.day_files(D1, "csv")
    lines = csv_copy.read_text().splitlines()
    lines[6] = "10250,41,7.7,abc,0"
    csv_copy.write_text("\n".join(lines) + "\n")
    result = extracted.make("extract-csv", f"DATE={D1}", env={"ORDER_DETAILS_CSV": str(csv_copy)})
    assert result.returncode != 0
    assert "FAILED: step extract-csv" in result.stderr
    assert f"{csv_copy} line 7, column quantity: 'abc' is not an integer" in result.stderr
    assert f"make extract-csv DATE={D1}" in result.stderr
    assert extracted.day_files(D1, "csv") == before  # the earlier good day is untouched


def test_wrong_column_count(extracted: Project, csv_copy: Path) -> None:
    lines = csv_copy.read_text().splitlines()
    lines[3] = "10249,14,18.6,9"
    csv_copy.write_text("\n".join(lines) + "\n")
    result = extracted.make("extract-csv", f"DATE={D2}", env={"ORDER_DETAILS_CSV": str(csv_copy)})
    assert result.returncode != 0
    assert "line 4: found 4 values but the header has 5 columns" in result.stderr


def test_missing_csv(extracted: Project, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = extracted.make("extract-csv", f"DATE={D2}", env={"ORDER_DETAILS_CSV": str(missing)})
    assert result.returncode != 0
    assert f"{missing}: cannot read the CSV file" in result.stderr


def test_unreachable_source_names_host_and_keeps_good_day(extracted: Project) -> None:
    before = extracted.day_files(D1, "postgres")
    result = extracted.make("extract-postgres", f"DATE={D1}", env={"SOURCE_PG_PORT": "1"})
    assert result.returncode != 0
    assert "FAILED: step extract-postgres" in result.stderr
    assert "127.0.0.1" in result.stderr and "port 1" in result.stderr
    assert extracted.day_files(D1, "postgres") == before


def test_an_empty_cached_catalog_is_rediscovered_not_refused(extracted: Project) -> None:
    """A run killed while Meltano wrote the catalog leaves it empty; Meltano would refuse it."""
    extracted.make("extract-postgres", f"DATE={D1}", check=True)  # the cache and its schema fingerprint
    catalog = ROOT / ".meltano" / "run" / "tap-postgres" / "tap.properties.json"
    catalog.write_text("")
    result = extracted.make("extract-postgres", f"DATE={D1}")
    assert result.returncode == 0, result.stderr[-2000:]
