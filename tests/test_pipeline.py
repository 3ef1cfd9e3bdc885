"""End to end: `make pipeline` on the real data, the mart, the dbt tests and the export."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import shlex
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml

from conftest import D1, D2, ROOT, Project

EXTRACTS = ("extract-postgres", "extract-csv")


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def done(project: Project) -> Project:
    result = project.make("pipeline", f"DATE={D1}", check=True)
    assert "summary for 2024-01-01" in result.stdout
    return project


def test_each_step_is_its_own_meltano_run_with_its_own_log(done: Project) -> None:
    """make pipeline: the two extract jobs side by side, then load, transform and export, each its
    own `meltano run` (its own ledger row, owner and log); load opens once both extracts ended."""
    rows = done.sql(
        "select distinct on (step) step, owner_pid, started_at, ended_at, log_path from ops.runs"
        " where day = %s order by step, started_at desc",
        (D1,),
    )
    runs = {step: (owner, started, ended, log) for step, owner, started, ended, log in rows}
    assert len({run[0] for run in runs.values()}) == 5  # five Meltano processes
    assert runs["load"][1] >= max(runs["extract-postgres"][2], runs["extract-csv"][2])  # load waited for both
    # the extract jobs overlapped: each began (its log's name) before the other ended, and so did
    # their runs unless one waited for its tap's lock, busy with another module's run (make test's
    # workers; that the two extracts' locks never wait for each other: unit/test_locks.py)
    began = {s: dt.datetime.strptime(Path(runs[s][3]).stem.removeprefix(f"{s}-"), "%Y%m%dT%H%M%S%f").astimezone() for s in EXTRACTS}
    assert max(began.values()) < min(runs[s][2] for s in EXTRACTS), (began, runs)
    if not any("waiting:" in Path(runs[s][3]).read_text() for s in EXTRACTS):
        assert max(runs[s][1] for s in EXTRACTS) < min(runs[s][2] for s in EXTRACTS), runs
    for step, (_, _, _, log_path) in runs.items():
        log = Path(log_path).read_text()
        assert log.startswith(f"nwelt: {step} for {D1}: meltano run {step}\n")
        assert all(f"elt:open-{other}" not in log for other in runs if other != step)
    assert "committed raw.orders" in Path(runs["load"][3]).read_text()


def test_a_failure_in_the_last_step_names_it_and_keeps_the_steps_before(done: Project) -> None:
    """export dies (SIGKILL) in its close task: load and transform are recorded succeeded, export
    failed with its own log, and the resume command starts at export."""
    day = "2024-01-09"
    result = done.make("pipeline", f"DATE={day}", env={"NWELT_FAULT": "export"})
    assert result.returncode != 0
    assert f"FAILED: step export for {day}" in result.stderr and f"make export DATE={day}" in result.stderr
    states = dict(line.split()[:2] for line in done.make("status", f"DATE={day}").stdout.splitlines() if line.startswith("  "))
    assert states["load"] == states["transform"] == "succeeded" and states["export"] == "failed", states
    export_log = max((done.data_dir / "logs" / day).glob("export-*.log"), key=lambda p: p.stat().st_mtime).read_text()
    assert "meltano run export" in export_log and "Done. PASS=" not in export_log
    done.make("export", f"DATE={day}", check=True)  # the resume command finishes the day


def test_pipeline_writes_csv_and_json(done: Project) -> None:
    out = done.data_dir / "output" / D1
    assert sorted(p.name for p in out.iterdir()) == ["orders_details.csv", "orders_details.json"]
    rows = list(csv.DictReader((out / "orders_details.csv").open(newline="")))
    data = json.loads((out / "orders_details.json").read_text())
    assert len(rows) == len(data) == 2155
    assert list(data[0]) == list(rows[0])
    assert [(int(r["order_id"]), int(r["product_id"])) for r in rows] == [(d["order_id"], d["product_id"]) for d in data]


def test_the_files_are_the_bytes_the_python_serializers_wrote(done: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real day's files, written by COPY, are byte for byte those the export's previous Python
    serializers (kept as the reference in tests/unit/test_export_format.py) write for the mart's rows."""
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "unit"))
    from test_export_format import reference

    with psycopg.connect(done.settings.warehouse.conninfo()) as conn:
        cursor = conn.execute("select * from marts.orders_details where snapshot_date = %s order by order_id, product_id", (D1,))
        expected = reference([d.name for d in cursor.description or []], cursor.fetchall())
    out = done.data_dir / "output" / D1
    assert ((out / "orders_details.csv").read_bytes(), (out / "orders_details.json").read_bytes()) == expected


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
    assert "export refuses to run for 2023-12-30: the transform of 2023-12-30 has not succeeded" in result.stderr
    assert "make pipeline DATE=2023-12-30" in result.stderr  # never extracted here: the whole pipeline
    assert not (done.data_dir / "output" / "2023-12-30").exists()


def _mart_rows(project: Project, day: str) -> int:
    return project.sql("select count(*) from marts.orders_details where snapshot_date = %s", (day,))[0][0]


def _raw_rows(project: Project, day: str) -> int:
    return project.sql("select count(*) from raw.order_details where snapshot_date = %s", (day,))[0][0]


def _exported_rows(project: Project, day: str) -> tuple[int, int]:
    out = project.data_dir / "output" / day
    return len(list(csv.DictReader((out / "orders_details.csv").open(newline="")))), len(
        json.loads((out / "orders_details.json").read_text())
    )


def test_order_details_without_rows_is_refused_and_the_day_stays_whole(done: Project, tmp_path: Path) -> None:
    """Empty-day policy: a header-only order_details.csv is refused at extract; D stays as it was, end to end."""
    empty = tmp_path / "order_details.csv"
    empty.write_text((done.settings.source_dir / "order_details.csv").read_text().splitlines()[0] + "\n")
    landed, out = done.day_files(D1), _digests(done.data_dir / "output" / D1)
    result = done.make("pipeline", f"DATE={D1}", env={"ORDER_DETAILS_CSV": str(empty)})
    assert result.returncode != 0
    assert "FAILED: step extract-csv" in result.stderr
    assert str(empty) in result.stderr and "the file has a header but no data rows" in result.stderr, result.stderr
    assert done.day_files(D1) == landed  # previous files kept (extract-postgres rewrote its own identically)
    assert _digests(done.data_dir / "output" / D1) == out
    assert _raw_rows(done, D1) == _mart_rows(done, D1) == _exported_rows(done, D1)[0] == 2155
    # the day's latest extract-csv failed: the load refuses its files until a rerun succeeds
    assert "did not succeed publishing these files" in done.make("load", f"DATE={D1}").stderr
    done.make("extract-csv", f"DATE={D1}", check=True)
    assert done.day_files(D1) == landed
    done.make("pipeline", f"DATE={D1}", "STEP=load", check=True)


def test_the_mart_holds_exactly_the_raw_order_lines_of_a_day_even_none(done: Project) -> None:
    """A mart row of D that raw does not have is impossible, even when raw holds no order line for D."""
    try:
        done.sql("delete from raw.order_details where snapshot_date = %s", (D1,))
        done.make("transform", f"DATE={D1}", check=True)
        assert _raw_rows(done, D1) == _mart_rows(done, D1) == 0
        done.make("export", f"DATE={D1}", check=True)
        assert _exported_rows(done, D1) == (0, 0)  # raw, mart and files agree: a header-only CSV, []
        assert (done.data_dir / "output" / D1 / "orders_details.csv").read_text().startswith("snapshot_date,order_id,")
    finally:
        done.make("pipeline", f"DATE={D1}", "STEP=load", check=True)
    assert _raw_rows(done, D1) == _mart_rows(done, D1) == _exported_rows(done, D1)[0] == 2155


def test_export_writes_only_rows_built_from_this_data_dir(done: Project, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two DATA_DIRs sharing one warehouse: each exports only mart rows built from its own landed day."""
    other = Project(tmp_path_factory.mktemp("data-other"), {**done.env})
    other.env["DATA_DIR"] = str(other.data_dir)
    out = done.data_dir / "output" / D1
    before = _digests(out)
    # a new DATA_DIR where D1 was never extracted: the warehouse's rows of D1 are not its own
    result = other.make("pipeline", f"DATE={D1}", "STEP=export")
    assert result.returncode != 0
    assert f"make pipeline DATE={D1}" in result.stderr and str(other.data_dir) in result.stderr, result.stderr
    assert not (other.data_dir / "output" / D1).exists()
    # the other DATA_DIR lands D1 from other files (one order line less) and builds the mart from them
    csv_file = other.data_dir / "order_details.csv"
    lines = (done.settings.source_dir / "order_details.csv").read_text().splitlines()
    csv_file.write_text("\n".join(lines[:-1]) + "\n")
    for step in ("extract-postgres", "extract-csv", "load", "transform"):
        other.make(step, f"DATE={D1}", check=True, env={"ORDER_DETAILS_CSV": str(csv_file)})
    assert _mart_rows(done, D1) == 2154
    # this DATA_DIR's export refuses them, naming the command that rebuilds D1 from its own files
    result = done.make("export", f"DATE={D1}")
    assert result.returncode != 0
    assert "built from other landed files" in result.stderr
    # the ledger's latest extract-csv of D1 published the other's files: this one's extract reruns
    assert f"resume: make extract-csv DATE={D1}\n  then:   make pipeline DATE={D1} STEP=load" in result.stderr, result.stderr
    assert _digests(out) == before
    done.make("extract-csv", f"DATE={D1}", check=True)
    done.make("pipeline", f"DATE={D1}", "STEP=load", check=True)
    assert _digests(out) == before  # the rows of this DATA_DIR again, byte for byte
    # the exported columns are the mart's, without provenance
    header = (out / "orders_details.csv").read_text().splitlines()[0]
    assert "sha256" not in header and "landed" not in header
    assert header.split(",") == [
        c
        for (c,) in done.sql(
            "select column_name from information_schema.columns where table_schema = 'marts' and table_name = 'orders_details'"
            " order by ordinal_position"
        )
    ]


def test_a_failing_dbt_test_fails_transform_and_names_it(done: Project) -> None:
    day = "2024-01-03"
    for step in ("extract-postgres", "extract-csv", "load"):
        done.make(step, f"DATE={day}", check=True)
    done.sql("update raw.order_details set quantity = 0 where snapshot_date = %s and order_id = 10248 and product_id = 11", (day,))
    result = done.make("transform", f"DATE={day}")
    assert result.returncode != 0
    assert "FAILED: step transform" in result.stderr
    assert "quantity" in result.stderr  # the failing test (accepted range on quantity) is named
    assert f"  resume: make pipeline DATE={day}\n" in result.stderr  # the data must change: the whole day, not dbt again


def test_dbt_unit_tests_pass_and_stay_out_of_the_daily_build(done: Project) -> None:
    """The mart's dbt unit tests run here (`dbt-postgres:unit-test`), every one of them, and pass;
    the daily build leaves them out (they answer the same every day)."""
    spec = yaml.safe_load((ROOT / "transform/models/marts/orders_details_unit_tests.yml").read_text())
    names = [test["name"] for test in spec["unit_tests"]]
    result = done.run(str(ROOT / ".venv/bin/meltano"), "invoke", "dbt-postgres:unit-test", env={"RUN_DATE": D1})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert all(f"PASS orders_details::{name} " in output for name in names) and " ERROR=0 " in output, output[-3000:]
    log = max((done.data_dir / "logs" / D1).glob("transform-*.log"), key=lambda p: p.stat().st_mtime).read_text()
    assert "PASS=" in log and not any(name in log for name in names)


def test_dbt_relation_cache_race_cannot_happen(done: Project, tmp_path: Path) -> None:
    """The daily build's dbt flags cannot hit dbt's relation-cache race (issue: "Cache
    inconsistency detected: in rename, new key ... stg_northwind__customers already in cache").

    tests/dbt_cache_race.py runs the real dbt build, with the flags of transformers.meltano.yml,
    the profile's 2 threads and the real warehouse, holding the race window open; with
    `--no-populate-cache` it fails every time."""
    plugins = yaml.safe_load((ROOT / "transform" / "transformers.meltano.yml").read_text())["plugins"]["utilities"]
    build = next(p for p in plugins if p["name"] == "dbt-postgres")["commands"]["build"]["args"]
    env = {
        **os.environ,
        **done.settings.meltano_env(),
        "RUN_DATE": D1,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROJECT_DIR": str(ROOT / "transform"),
        "DBT_PROFILES_DIR": str(ROOT / "transform" / "profiles" / "postgres"),
    }
    python = ROOT / ".meltano" / "utilities" / "dbt-postgres" / "venv" / "bin" / "python"
    result = subprocess.run(
        [
            str(python),
            str(ROOT / "tests" / "dbt_cache_race.py"),
            *shlex.split(build),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert "Cache inconsistency" not in output, output[-3000:]
    assert result.returncode == 0, output[-3000:]
    assert _mart_rows(done, D1) == 2155
