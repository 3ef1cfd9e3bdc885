"""The gates' decisions on a real PostgreSQL, each reading the data's own record: transform reads
the raw layer's load record (raw._loads) against the landing markers, export reads the mart's
build record (tested, same landing, same rows)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from landed_day import CSV, DAY, POSTGRES, land_day

from northwind_elt import export, tasks
from northwind_elt.errors import Fix, GateError
from northwind_elt.landing import Landing, Source
from northwind_elt.ledger import Ledger, Run, connect
from northwind_elt.settings import Settings

RUN = Run(run_id="r", day=DAY, step="transform", started_at=dt.datetime.now(dt.timezone.utc), ended_at=None, outcome="running")


def loaded(settings: Settings, checksum: str | None) -> None:
    with connect(settings) as conn:
        conn.execute("create schema if not exists raw")
        conn.execute("create table if not exists raw._loads (snapshot_date date, table_name text, rows bigint, landed_sha256 text)")
        conn.execute("insert into raw._loads values (%s, 'orders', 5, %s)", (DAY, checksum))


def refusal(settings: Settings) -> GateError:
    with pytest.raises(GateError) as caught:
        tasks._open_transform(settings, RUN)
    return caught.value


def test_transform_refuses_a_day_never_extracted_or_loaded(warehouse: Settings) -> None:
    exc = refusal(warehouse)
    assert exc.message == f"transform refuses to run for {DAY}: the load of {DAY} has not succeeded"
    assert [(f.step, f.then_rest) for f in exc.fixes] == [(None, False)]  # make pipeline DATE=D
    land_day(warehouse.data_dir)
    assert [(f.step, f.then_rest) for f in refusal(warehouse).fixes] == [("load", True)]  # make pipeline DATE=D STEP=load


def test_transform_refuses_raw_rows_of_other_landed_files(warehouse: Settings) -> None:
    land_day(warehouse.data_dir)
    loaded(warehouse, "0" * 64)
    assert "were loaded from other landed files than this DATA_DIR's" in refusal(warehouse).message


def test_transform_runs_on_the_load_of_the_files_landed_now(warehouse: Settings) -> None:
    landing = land_day(warehouse.data_dir)
    loaded(warehouse, landing.landed_checksum(DAY))
    tasks._open_transform(warehouse, RUN)  # no refusal
    land_day(warehouse.data_dir, line_count=6)  # step 1 ran again: another day's files
    assert "changed after the load" in refusal(warehouse).message


def extracted(settings: Settings, landing: Landing, *sources: Source) -> None:
    """Runs of the extract steps recorded as the extract's close records them: succeeded, with the
    digest of the task marker they published."""
    ledger = Ledger(settings)
    for source in sources:
        run = ledger.begin(DAY, source.step, 1, None)
        ledger.update(run.run_id, "landing", landing.marker_checksum(source, DAY) or "")
        ledger.finish(run.run_id, "succeeded")


def test_load_takes_only_a_landing_the_ledger_saw_step_1_publish(warehouse: Settings) -> None:
    ledger = Ledger(warehouse)
    load = ledger.begin(DAY, "load", 1, None)
    landing = land_day(warehouse.data_dir)
    with pytest.raises(GateError) as refused:
        tasks._open_load(warehouse, load)
    assert (
        "the run ledger's latest extract-postgres and extract-csv of 2024-01-01 did not succeed publishing these files"
        in refused.value.message
    )
    extracted(warehouse, landing, POSTGRES, CSV)
    tasks._open_load(warehouse, load)  # no refusal
    land_day(warehouse.data_dir, line_count=6)  # the CSV's day rewritten with consistent checksums, not by step 1
    with pytest.raises(GateError) as refused:
        tasks._open_load(warehouse, load)
    assert "latest extract-csv of 2024-01-01 did not succeed" in refused.value.message
    assert refused.value.fixes == [Fix(step="extract-csv", day=DAY)]


@pytest.mark.parametrize("outcome", ["failed", "running"])  # running: a run killed (its row stays running)
def test_load_refuses_when_the_latest_extract_failed_though_an_earlier_one_published_the_files(warehouse: Settings, outcome: str) -> None:
    """A rerun of extract-csv that failed (bad CSV) leaves the earlier files in place; loading them
    would ignore that the day's last step 1 failed, which status shows."""
    ledger = Ledger(warehouse)
    landing = land_day(warehouse.data_dir)
    extracted(warehouse, landing, POSTGRES, CSV)
    load = ledger.begin(DAY, "load", 1, None)
    tasks._open_load(warehouse, load)  # no refusal
    rerun = ledger.begin(DAY, CSV.step, 1, None)
    if outcome == "failed":
        ledger.finish(rerun.run_id, "failed", error="CsvInputError: …")
    with pytest.raises(GateError) as refused:
        tasks._open_load(warehouse, load)
    assert "latest extract-csv of 2024-01-01 did not succeed" in refused.value.message
    assert refused.value.fixes == [Fix(step="extract-csv", day=DAY)]


def built(settings: Settings, checksum: str | None, rows: int, tested: bool) -> None:
    with connect(settings) as conn:
        conn.execute("create schema if not exists marts")
        conn.execute("create table marts.orders_details (snapshot_date date, order_id int, product_id int, unit_price numeric)")
        conn.execute("insert into marts.orders_details select %s, 10248, g, 14.50 from generate_series(1, 2) g", (DAY,))
        conn.execute(
            "create table marts._orders_details_builds (snapshot_date date primary key, landed_sha256 text, rows bigint,"
            " built_at timestamptz default now(), tested_at timestamptz)"
        )
        conn.execute(
            "insert into marts._orders_details_builds values (%s, %s, %s, now(), case when %s then now() end)",
            (DAY, checksum, rows, tested),
        )


def export_refusal(settings: Settings) -> str:
    with pytest.raises(GateError) as caught:
        export.export(settings, DAY)
    return caught.value.message


def test_export_refuses_a_day_not_transformed(warehouse: Settings) -> None:
    land_day(warehouse.data_dir)
    assert export_refusal(warehouse) == f"export refuses to run for {DAY}: the transform of {DAY} has not succeeded"


def test_export_refuses_a_build_that_did_not_pass_its_tests(warehouse: Settings) -> None:
    landing = land_day(warehouse.data_dir)
    built(warehouse, landing.landed_checksum(DAY), 2, tested=False)
    assert "did not pass its tests" in export_refusal(warehouse)
    assert not export.output_paths(warehouse, DAY)[0].exists()


def test_export_takes_a_tested_build_of_this_landing_only(warehouse: Settings) -> None:
    landing = land_day(warehouse.data_dir)
    built(warehouse, landing.landed_checksum(DAY), 2, tested=True)
    assert export.export(warehouse, DAY) == 2
    csv_path, json_path = export.output_paths(warehouse, DAY)
    assert csv_path.read_text().splitlines()[0] == "snapshot_date,order_id,product_id,unit_price"
    assert json.loads(json_path.read_text())[1] == {"snapshot_date": "2024-01-01", "order_id": 10248, "product_id": 2, "unit_price": 14.50}
    land_day(warehouse.data_dir, line_count=6)
    assert "built from other landed files than this DATA_DIR's" in _message(warehouse)


def _message(settings: Settings) -> str:
    from northwind_elt.errors import ExportError

    with pytest.raises(ExportError) as caught:
        export.export(settings, DAY)
    return caught.value.message


def test_mark_tested_needs_a_build_made_in_this_job(warehouse: Settings) -> None:
    landing = land_day(warehouse.data_dir)
    assert export.mark_tested(warehouse, DAY, RUN.started_at) is None  # no build record at all
    built(warehouse, landing.landed_checksum(DAY), 2, tested=False)
    later = dataclasses.replace(RUN, started_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1))
    assert export.mark_tested(warehouse, DAY, later.started_at) is None  # built before this job began
    assert export.mark_tested(warehouse, DAY, RUN.started_at - dt.timedelta(minutes=1)) == 2
    assert export.export(warehouse, DAY) == 2
    assert Landing(warehouse.data_dir).landed_checksum(DAY) is not None
