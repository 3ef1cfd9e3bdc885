"""The Airflow DAG (orchestrate/airflow/dags/northwind_elt.py), checked with a real Airflow 3.

Airflow lives in its own venv (`make airflow-setup` -> .venv-airflow), not in the pipeline's
.venv, so these tests run Airflow's interpreter and CLI in subprocesses. Without
.venv-airflow they skip, except in CI (CI=true), where they fail.

The failing run uses `airflow dags test` (the whole DAG in one process, tasks one after the
other), the succeeding one `make airflow` (a real scheduler and API server); both with a
throwaway AIRFLOW_HOME (SQLite) and the module's own DATA_DIR and warehouse database (the
`project` fixture of conftest.py); the tasks inherit that environment, so they never touch data/
or the warehouse of `make pipeline`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import D2, Project, free_port
from northwind_elt import settings as settings_mod
from northwind_elt.landing import load_schema_name

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_BIN = ROOT / ".venv-airflow" / "bin"
DAGS = ROOT / "orchestrate" / "airflow" / "dags"
TASKS = ["extract_postgres", "extract_csv", "load", "transform", "export"]


@pytest.fixture(autouse=True)
def _airflow_installed() -> None:
    if (AIRFLOW_BIN / "airflow").exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(".venv-airflow is missing: CI must run `make airflow-setup` before the tests")
    pytest.skip("Airflow is not installed: run make airflow-setup")


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NWELT_HOME", "NWELT_EXTRACT_RETRIES")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    env.update(extra)
    return env


# -- DAG integrity: parse the DAG folder as the scheduler would -------------------------------

SUMMARY_SCRIPT = r"""
import json, sys
from airflow.models.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
dag = bag.dags.get("northwind_elt")
summary = {"import_errors": {path: str(error) for path, error in bag.import_errors.items()}, "dag_ids": sorted(bag.dag_ids)}
if dag is not None:
    summary.update(
        schedule=str(dag.schedule),
        start_date=dag.start_date.isoformat(),
        catchup=dag.catchup,
        max_active_runs=dag.max_active_runs,
        tags=sorted(dag.tags),
        doc_md=dag.doc_md or "",
        tasks={
            t.task_id: {
                "upstream": sorted(t.upstream_task_ids),
                "retries": t.retries,
                "exponential_backoff": t.retry_exponential_backoff,
                "operator": type(t).__name__,
                "execution_timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                "command": t.python_callable.__globals__["step_command"](t.op_kwargs["step"], "2019-09-01"),
            }
            for t in dag.tasks
        },
    )
print("SUMMARY " + json.dumps(summary))
"""


def dag_summary(tmp_path: Path, **env: str) -> dict:
    result = subprocess.run(
        [str(AIRFLOW_BIN / "python"), "-c", SUMMARY_SCRIPT, str(DAGS)],
        env=airflow_env(tmp_path / "airflow", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert result.returncode == 0 and lines, f"parsing the DAG folder failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("SUMMARY "))


def test_dag_integrity(tmp_path: Path) -> None:
    summary = dag_summary(tmp_path)
    assert summary["import_errors"] == {}
    assert summary["dag_ids"] == ["northwind_elt"]
    assert summary["schedule"] == "@daily"
    assert summary["start_date"] == "1970-01-01T00:00:00+00:00"  # no past day is silently skipped
    assert summary["catchup"] is False
    assert summary["max_active_runs"] == 1
    assert summary["tags"] == ["elt", "northwind"]
    assert "backfill create" in summary["doc_md"]
    assert summary["doc_md"].lstrip().startswith("### northwind_elt")  # the module docstring

    tasks = summary["tasks"]
    assert sorted(tasks) == sorted(TASKS)
    assert tasks["extract_postgres"]["upstream"] == [] and tasks["extract_csv"]["upstream"] == []
    assert tasks["load"]["upstream"] == ["extract_csv", "extract_postgres"]
    assert tasks["transform"]["upstream"] == ["load"]
    assert tasks["export"]["upstream"] == ["transform"]

    for task_id in ("extract_postgres", "extract_csv"):  # extracts retry, with back-off
        assert tasks[task_id]["retries"] == 2 and tasks[task_id]["exponential_backoff"] is True
    for task_id in ("load", "transform", "export"):  # a retry cannot fix a refused gate or a failed test
        assert tasks[task_id]["retries"] == 0

    for task_id, task in tasks.items():  # the same command as `make <step>`, as an argument list
        step = task_id.replace("_", "-")
        assert task["operator"] == "PythonOperator"  # no shell between Airflow and nwelt
        assert task["command"] == [f"{ROOT}/.venv/bin/nwelt", "run", step, "--date", "2019-09-01", "--wait", "600"]
        assert task["execution_timeout"] == 7200


def test_dag_reads_nwelt_home_and_extract_retries_from_env(tmp_path: Path) -> None:
    summary = dag_summary(tmp_path, NWELT_HOME="/srv/northwind-elt", NWELT_EXTRACT_RETRIES="0")
    assert summary["import_errors"] == {}
    for task in summary["tasks"].values():
        assert task["retries"] == 0
        assert task["command"][0] == "/srv/northwind-elt/.venv/bin/nwelt"


# -- real runs: `airflow dags test` --------------------------------------------------------------


def airflow(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AIRFLOW_BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def run_dag(project: Project, tmp_path: Path, day: str, **env_overrides: str) -> tuple[dict[str, str], str]:
    """Run the DAG for `day` with `airflow dags test`; return the task states and the output."""
    env = airflow_env(
        tmp_path / "airflow",
        **project.env,  # this module's own DATA_DIR and warehouse database
        NWELT_EXTRACT_RETRIES="0",  # a failing extract fails at once instead of waiting for back-off
        **env_overrides,
    )
    migrated = airflow(env, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    test = airflow(env, "dags", "test", "northwind_elt", day, timeout=1200)
    output = test.stdout + test.stderr
    (tmp_path / "dags-test.log").write_text(output)

    runs = airflow(env, "dags", "list-runs", "northwind_elt", "-o", "json")
    assert runs.returncode == 0, runs.stderr[-3000:]
    (run,) = json.loads(runs.stdout)
    assert run["logical_date"].startswith(day)
    states = airflow(env, "tasks", "states-for-dag-run", "northwind_elt", run["run_id"], "-o", "json")
    assert states.returncode == 0, states.stderr[-3000:]
    return {row["task_id"]: row["state"] for row in json.loads(states.stdout)}, output


def rows_loaded(settings: settings_mod.Settings, day: str) -> dict[str, int]:
    """Rows of `day` in the warehouse's raw layer, per table, plus a leftover load schema if any."""
    found: dict[str, int] = {}
    with psycopg.connect(settings.warehouse.conninfo(), autocommit=True) as conn:
        tables = conn.execute(
            "select table_name from information_schema.columns where table_schema = 'raw' and column_name = 'snapshot_date'"
        ).fetchall()
        for (table,) in tables:
            query = sql.SQL("select count(*) from raw.{} where snapshot_date = %s").format(sql.Identifier(table))
            count = conn.execute(query, (day,)).fetchone()[0]  # type: ignore[index]
            if count:
                found[f"raw.{table}"] = count
        schema = load_schema_name(settings_mod.parse_date(day))
        if conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone():
            found[f"schema {schema}"] = 1
    return found


def test_failed_extract_stops_the_day_before_load(project: Project, tmp_path: Path) -> None:
    # A CSV that cannot be read: a path that does not exist (tests run as root, and root reads
    # any file whatever its mode, so chmod cannot make one unreadable).
    missing_csv = tmp_path / "missing" / "order_details.csv"
    states, output = run_dag(project, tmp_path, D2, ORDER_DETAILS_CSV=str(missing_csv))
    assert states == {
        "extract_postgres": "success",
        "extract_csv": "failed",
        "load": "upstream_failed",
        "transform": "upstream_failed",
        "export": "upstream_failed",
    }, f"task states {states}; output in {tmp_path / 'dags-test.log'}"
    assert f"FAILED: step extract-csv for {D2}" in output
    assert str(missing_csv) in output  # the cause names the file
    # project.settings = settings.load() with this module's WAREHOUSE_PG_DATABASE
    assert rows_loaded(project.settings, D2) == {}, f"rows of {D2} reached the warehouse"


# -- a real scheduler: `make airflow` on a non-default port (docs: docs/operations.md, "Airflow") ------


def test_make_airflow_on_another_port_runs_a_past_day(project: Project, tmp_path: Path) -> None:
    """`AIRFLOW__API__PORT=<a free port> make airflow`, then a DAG run for a past day before 2024: the
    workers reach the execution API on the moved port, every task succeeds with the step's own
    summary in its log, and the day's export has every row."""
    import socket
    import time

    port, day = free_port(), "2019-09-01"
    env = airflow_env(tmp_path / "airflow", **project.env, NWELT_EXTRACT_RETRIES="0", AIRFLOW__API__PORT=str(port))
    env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"  # the triggered run only: unpausing would also run the latest day
    env.pop("AIRFLOW__CORE__DAGS_FOLDER")  # the Makefile sets it
    log = (tmp_path / "standalone.log").open("w")
    server = subprocess.Popen(
        ["make", "--no-print-directory", "airflow"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            listed = airflow(env, "dags", "list", "-o", "json")
            if listed.returncode == 0 and "northwind_elt" in listed.stdout:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=5).close()
                    break
                except OSError:
                    pass
            assert server.poll() is None, f"make airflow exited; see {tmp_path / 'standalone.log'}"
            time.sleep(5)
        # the UI listens on 127.0.0.1 only, and no log server listens anywhere
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{port} " in listening and f"0.0.0.0:{port} " not in listening and f"*:{port} " not in listening
        assert ":8793 " not in listening and ":8794 " not in listening
        assert airflow(env, "dags", "unpause", "northwind_elt").returncode == 0
        trigger = airflow(env, "dags", "trigger", "northwind_elt", "--logical-date", f"{day}T00:00:00+00:00", "-o", "json")
        assert trigger.returncode == 0, trigger.stderr[-3000:]
        state, run_id = "", ""
        while time.monotonic() < deadline + 900 and state not in ("success", "failed"):
            time.sleep(3)
            runs = airflow(env, "dags", "list-runs", "northwind_elt", "-o", "json")
            matching = [r for r in json.loads(runs.stdout or "[]") if r["logical_date"].startswith(day)]
            state, run_id = (matching[0]["state"], matching[0]["run_id"]) if matching else ("", "")
        assert state == "success", f"DAG run of {day}: {state!r}; see {tmp_path / 'standalone.log'}"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
    logs = sorted((tmp_path / "airflow" / "logs" / "dag_id=northwind_elt" / f"run_id={run_id}").glob("task_id=*/attempt=*.log"))
    assert sorted(log.parent.name.removeprefix("task_id=") for log in logs) == sorted(TASKS), logs  # one attempt each
    assert all(f"summary for {day}:" in log.read_text() for log in logs)  # the step's own summary is in its task's log
    output = project.data_dir / "output" / day / "orders_details.csv"
    assert output.with_suffix(".json").stat().st_size > 0
    rows = project.sql("select count(*) from marts.orders_details where snapshot_date = %s", (day,))[0][0]
    assert rows > 0
    import csv

    with output.open(newline="") as handle:
        assert sum(1 for _ in csv.reader(handle)) - 1 == rows
