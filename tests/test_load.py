"""Step 2: the gated, atomic, idempotent load into the warehouse (real target-postgres)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import D1, D2, Project
from northwind_elt import warehouse
from northwind_elt.errors import LoadError
from northwind_elt.landing import SOURCES, GateError, Landing

D3 = "2024-01-03"


@pytest.fixture(scope="module")
def loaded(project: Project) -> Project:
    for step in ("extract-postgres", "extract-csv", "load"):
        project.make(step, f"DATE={D1}", check=True)
    return project


def _loads(project: Project, day: str) -> dict[str, int]:
    return dict(project.sql("select table_name, rows from raw._loads where snapshot_date = %s", (day,)))


def test_load_holds_fourteen_tables_with_step1_counts(loaded: Project) -> None:
    counts = _loads(loaded, D1)
    assert len(counts) == 14
    assert counts["orders"] == 830 and counts["order_details"] == 2155
    assert counts["customer_customer_demo"] == 0 and counts["customer_demographics"] == 0
    assert loaded.sql("select count(*) from raw.orders where snapshot_date = %s", (D1,)) == [(830,)]
    assert loaded.sql("select count(*) from raw.customer_demographics") == [(0,)]
    # no load schema is left behind
    assert loaded.sql("select nspname from pg_namespace where nspname like 'load\\_%%'") == []


def test_column_types_survive(loaded: Project) -> None:
    types = dict(
        loaded.sql("select table_name || '.' || column_name, data_type from information_schema.columns where table_schema = 'raw'")
    )
    assert types["orders.order_id"] == "bigint"
    assert types["orders.freight"] == "numeric"
    assert types["order_details.unit_price"] == "numeric"
    assert types["order_details.quantity"] == "bigint"
    assert types["orders.order_date"] == "date"
    assert types["customers.company_name"] == "text"
    assert types["orders.snapshot_date"] == "date"
    assert not [c for c in types if "._sdc_" in c]
    # exact numerics: values as in the source, no float drift
    assert loaded.sql("select freight::text from raw.orders where order_id = 10248 and snapshot_date = %s", (D1,)) == [("32.38",)]
    assert loaded.sql(
        "select unit_price::text, discount::text from raw.order_details where order_id = 10248 and product_id = 42 and snapshot_date = %s",
        (D1,),
    ) == [("9.8", "0")]
    # bytea content is recoverable from its hex text
    assert loaded.sql(
        "select decode(picture, 'hex') = ''::bytea from raw.categories where category_id = 1 and snapshot_date = %s", (D1,)
    ) == [(True,)]


def test_a_new_day_has_planner_statistics_when_dbt_runs_whatever_the_history(loaded: Project) -> None:
    """No planner cliff: after the load of a new day on a table with 40 days of history, the
    planner's estimate for `snapshot_date = <new day>` is the day's real size, not 1 row.

    With every earlier day in the statistics' most-common-values list and none for the new day,
    the planner estimated 1 row per input and chose nested loops (34-61 s mart builds). Autovacuum
    is switched off on the tables: the guarantee must not depend on its timing."""
    new_day, tables = "2024-01-09", ("order_details", "orders", "products")

    def estimate(table: str, day: str) -> int:
        plan = loaded.sql(f"explain (format json) select * from raw.{table} where snapshot_date = %s", (day,))[0][0]
        return int(plan[0]["Plan"]["Plan Rows"])

    def columns(table: str) -> str:
        return ", ".join(
            f'"{c}"'
            for (c,) in loaded.sql(
                "select column_name from information_schema.columns where table_schema = 'raw' and table_name = %s"
                " and column_name <> 'snapshot_date' order by ordinal_position",
                (table,),
            )
        )

    history = "snapshot_date between date '2023-11-01' and date '2023-12-10'"
    try:  # 40 earlier days, analyzed, as on a warehouse that has run for weeks
        for table in tables:
            loaded.sql(f"alter table raw.{table} set (autovacuum_enabled = false)")
            loaded.sql(
                f"insert into raw.{table} (snapshot_date, {columns(table)}) select date '2023-11-01' + n, {columns(table)}"
                f" from raw.{table}, generate_series(0, 39) n where snapshot_date = %s",
                (D1,),
            )
            loaded.sql(f"analyze raw.{table}")
        for step in ("extract-postgres", "extract-csv", "load"):
            loaded.make(step, f"DATE={new_day}", check=True)
        for table in tables:
            rows = loaded.sql(f"select count(*) from raw.{table} where snapshot_date = %s", (new_day,))[0][0]
            assert rows > 0
            assert estimate(table, new_day) >= rows / 2, (table, estimate(table, new_day), rows)
    finally:
        for table in tables:
            loaded.sql(f"delete from raw.{table} where {history} or snapshot_date = %s", (new_day,))
            loaded.sql(f"alter table raw.{table} reset (autovacuum_enabled)")
        loaded.sql("delete from raw._loads where snapshot_date = %s", (new_day,))


def test_gate_refuses_a_day_without_step1(loaded: Project) -> None:
    before = loaded.raw_snapshot(D1)
    result = loaded.make("load", f"DATE={D2}")
    assert result.returncode != 0
    assert f"extract-postgres has not succeeded for {D2}" in result.stderr and f"extract-csv has not succeeded for {D2}" in result.stderr
    assert f"  resume: make pipeline DATE={D2}" in result.stderr  # the day's first step on, as make status says
    assert _loads(loaded, D2) == {}
    assert loaded.sql("select nspname from pg_namespace where nspname = 'load_20240102'") == []
    assert loaded.raw_snapshot(D1) == before


def test_gate_refuses_when_only_one_task_succeeded(loaded: Project) -> None:
    loaded.make("extract-csv", f"DATE={D2}", check=True)
    result = loaded.make("load", f"DATE={D2}")
    assert result.returncode != 0
    cause = result.stderr.split("resume:")[0].split("cause:")[1]
    assert f"extract-postgres has not succeeded for {D2}" in cause and "extract-csv" not in cause
    assert f"  resume: make pipeline DATE={D2}" in result.stderr  # from the day's first step, as make status says
    assert _loads(loaded, D2) == {}


def test_gate_refuses_a_file_altered_after_step1(loaded: Project) -> None:
    loaded.make("extract-postgres", f"DATE={D3}", check=True)
    loaded.make("extract-csv", f"DATE={D3}", check=True)
    path = loaded.data_dir / f"postgres/orders/{D3}/orders.jsonl"
    original = path.read_bytes()
    path.write_bytes(original.replace(b"VINET", b"VINEX", 1))
    try:
        result = loaded.make("load", f"DATE={D3}")
        assert result.returncode != 0
        assert "changed after extract-postgres wrote it" in result.stderr
        assert f"make extract-postgres DATE={D3}" in result.stderr
        assert _loads(loaded, D3) == {}
        path.unlink()  # deleted is refused too
        result = loaded.make("load", f"DATE={D3}")
        assert result.returncode != 0 and "is missing" in result.stderr
    finally:
        path.write_bytes(original)


def test_reload_and_other_days_leave_a_day_identical(loaded: Project) -> None:
    before = loaded.raw_snapshot(D1)
    loaded.make("load", f"DATE={D1}", check=True)
    assert loaded.raw_snapshot(D1) == before
    loaded.make("extract-postgres", f"DATE={D2}", check=True)
    loaded.make("load", f"DATE={D2}", check=True)
    assert loaded.raw_snapshot(D1) == before
    assert _loads(loaded, D2)["orders"] == 830


def test_load_works_with_the_source_database_unreachable(loaded: Project) -> None:
    result = loaded.make("load", f"DATE={D1}", env={"SOURCE_PG_PORT": "1", "SOURCE_PG_PASSWORD": "wrong"})
    assert result.returncode == 0, result.stderr


def test_load_killed_mid_commit_leaves_the_day_intact(loaded: Project) -> None:
    before = loaded.raw_snapshot(D1)
    result = loaded.make("load", f"DATE={D1}", env={"NWELT_FAULT": "commit-load"})
    assert result.returncode != 0
    assert "FAILED: step load" in result.stderr
    assert loaded.raw_snapshot(D1) == before
    loaded.make("load", f"DATE={D1}", check=True)
    assert loaded.raw_snapshot(D1) == before


def test_a_load_table_short_of_rows_is_not_committed(loaded: Project) -> None:
    """Reconciliation: a load table with fewer rows than step 1 recorded (a target that lost a
    batch) is refused, naming the table and both counts, and nothing is committed."""
    before, day = loaded.raw_snapshot(D1), dt.date.fromisoformat(D1)
    assert loaded.make("load", f"DATE={D1}", env={"NWELT_FAULT": "commit-load"}).returncode != 0  # leaves the load schema
    load = f"load_{day:%Y%m%d}"
    loaded.sql(f"delete from {load}.orders where order_id = (select min(order_id) from {load}.orders)")
    settings = loaded.settings
    with pytest.raises(
        LoadError, match=f"reconciliation failed for orders on {D1}: the warehouse received 829 rows, extract-postgres recorded 830"
    ):
        warehouse.commit(settings, day, Landing(settings.data_dir).landed_checksum(day))
    assert loaded.raw_snapshot(D1) == before


def test_duplicate_key_is_refused_at_extract_and_keeps_the_good_day(loaded: Project, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Policy: a duplicate (order_id, product_id) rejects the day; the earlier good files stay."""
    before = loaded.day_files(D1, "csv")
    bad = tmp_path / "order_details.csv"
    shutil.copyfile(loaded.settings.source_dir / "order_details.csv", bad)
    with bad.open("a") as handle:
        handle.write("10248,11,14,12,0\n")
    result = loaded.make("extract-csv", f"DATE={D1}", env={"ORDER_DETAILS_CSV": str(bad)})
    assert result.returncode != 0
    assert "duplicate key (order_id=10248, product_id=11)" in result.stderr
    assert loaded.day_files(D1, "csv") == before


def test_a_consistent_edit_of_a_landed_day_is_refused_and_the_raw_key_catches_a_forged_ledger(loaded: Project) -> None:
    """Files edited with every checksum rewritten to match (records, _manifest.json, _SUCCESS, the
    task marker) pass the file checks, but the run ledger never saw step 1 publish them: refused.
    With the ledger forged too, the raw table's primary key refuses the duplicated key, and
    nothing is committed."""
    day = "2024-01-04"
    for step in ("extract-postgres", "extract-csv"):
        loaded.make(step, f"DATE={day}", check=True)
    folder = loaded.data_dir / f"postgres/orders/{day}"
    path = folder / "orders.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], *lines]))  # a duplicated record, re-signed below
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = {"rows": len(lines) + 1, "sha256": digest}
    for name in ("_manifest.json", "_SUCCESS"):
        (folder / name).write_text(json.dumps({**json.loads((folder / name).read_text()), **entry}))
    files = {p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in folder.iterdir()}
    marker = loaded.data_dir / f"postgres/_manifests/{day}.json"
    content = json.loads(marker.read_text())
    content["tables"]["orders"] = {**entry, "files": files}
    marker.write_text(json.dumps(content))
    refused = loaded.make("load", f"DATE={day}")
    assert refused.returncode != 0
    assert f"the run ledger's latest extract-postgres of {day} did not succeed publishing these files" in refused.stderr
    assert f"resume: make pipeline DATE={day}\n" in refused.stderr  # extract-postgres first: the whole day
    forged = hashlib.sha256(marker.read_bytes()).hexdigest()  # a writer of the ledger as well as of the data folder
    loaded.sql("update ops.runs set landing = %s where day = %s and step = 'extract-postgres' and outcome = 'succeeded'", (forged, day))
    result = loaded.make("load", f"DATE={day}")
    assert result.returncode != 0
    assert f"the primary key of raw.orders refuses the landed orders of {day} (Key (snapshot_date, order_id)=({day}, " in result.stderr
    assert f"make extract-postgres DATE={day}" in result.stderr
    assert _loads(loaded, day) == {}


TAMPERED = "2024-01-05"


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content, indent=2))


def _write(path: Path, text: str = "{}\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# kind: (the task whose day is broken, the path (under DATA_DIR) the refusal must name, the change)
TAMPERING: dict[str, tuple[str, str, Callable[[Path], None]]] = {
    # the hole of issue 13: a column removed from a schema loaded with rc 0 and ship_name empty
    "schema-column-removed": (
        "postgres",
        "postgres/orders/{D}/_schema.json",
        lambda p: _edit_json(p, lambda s: s["schema"]["properties"].pop("ship_name")),
    ),
    "csv-schema-type-changed": (
        "csv",
        "csv/order_details/{D}/_schema.json",
        lambda p: _edit_json(p, lambda s: s["schema"]["properties"]["unit_price"].update(type=["string", "null"])),
    ),
    "schema-keys-changed": ("postgres", "postgres/orders/{D}/_schema.json", lambda p: _edit_json(p, lambda s: s.update(key_properties=[]))),
    "manifest-edited": ("postgres", "postgres/orders/{D}/_manifest.json", lambda p: _edit_json(p, lambda m: m.update(rows=1))),
    "success-deleted": ("postgres", "postgres/shippers/{D}/_SUCCESS", lambda p: p.unlink()),
    "schema-deleted": ("csv", "csv/order_details/{D}/_schema.json", lambda p: p.unlink()),
    "file-added": ("csv", "csv/order_details/{D}/extra.jsonl", _write),
    "hidden-file-added": ("postgres", "postgres/orders/{D}/.orders.jsonl.swp", _write),
    "table-folder-added": ("postgres", "postgres/bogus/{D}", lambda p: _write(p / "bogus.jsonl")),
    "table-folder-missing": ("postgres", "postgres/region/{D}", shutil.rmtree),
    "marker-of-another-day": ("csv", "csv/_manifests/{D}.json", lambda p: shutil.copyfile(p.parent / f"{D1}.json", p)),
}


@pytest.fixture()
def intact_day(loaded: Project, tmp_path: Path) -> Iterator[Project]:
    """TAMPERED extracted by both tasks; each test may break it, and gets it back afterwards."""
    for step in ("extract-postgres", "extract-csv"):
        if not (loaded.data_dir / step.removeprefix("extract-") / "_manifests" / f"{TAMPERED}.json").exists():
            loaded.make(step, f"DATE={TAMPERED}", check=True)
    backup = tmp_path / "backup"
    for source in ("postgres", "csv"):
        shutil.copytree(loaded.data_dir / source, backup / source)
    yield loaded
    for source in ("postgres", "csv"):
        shutil.rmtree(loaded.data_dir / source)
        shutil.copytree(backup / source, loaded.data_dir / source)


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_gate_refuses_any_edit_deletion_or_added_file(intact_day: Project, kind: str) -> None:
    """Landing integrity covers every file step 2 reads: each change is refused before anything
    is written, naming the file and the command that rebuilds the day."""
    source, relative, tamper = TAMPERING[kind]
    path = intact_day.data_dir / relative.format(D=TAMPERED)
    tamper(path)
    result = intact_day.make("load", f"DATE={TAMPERED}")
    assert result.returncode != 0
    assert str(path) in result.stderr, result.stderr
    assert f"  resume: make extract-{source} DATE={TAMPERED}" in result.stderr
    assert _loads(intact_day, TAMPERED) == {}
    assert intact_day.sql("select nspname from pg_namespace where nspname = 'load_20240105'") == []


def test_untampered_day_passes_the_gate_and_schema_reads_are_verified(intact_day: Project) -> None:
    """The gate accepts the day as written; a schema changed after the gate ran is refused when
    step 2 reads it (tap-landing and the commit read schemas through `Landing.schema`)."""
    landing = Landing(intact_day.data_dir)
    day = dt.date.fromisoformat(TAMPERED)
    assert len(landing.check_day(day)) == 14
    source = SOURCES["postgres"]
    assert "ship_name" in landing.schema(source, "orders", day)["schema"]["properties"]
    path = landing.day_dir(source, "orders", day) / "_schema.json"
    _edit_json(path, lambda s: s["schema"]["properties"].pop("ship_name"))
    with pytest.raises(GateError, match=f"{path} is missing or changed after extract-postgres wrote it"):
        landing.schema(source, "orders", day)
