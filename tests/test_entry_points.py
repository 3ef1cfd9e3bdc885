"""Every entry point gives the same guarantees: `meltano run <job>` as much as `make`.

The ledger, the locks and the gates are owned by the glue tasks inside each Meltano job, so a plain
`meltano run` is recorded, refused when the day is busy, gated, and leaves nothing half-done when
it is killed; `make`/`nwelt` add only the output around it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Project, pids_of, processes_of, wait_for

MELTANO = str(ROOT / ".venv" / "bin" / "meltano")
JOBS = ["extract-postgres", "extract-csv", "load", "transform", "export"]


def meltano(project: Project, day: str, *jobs: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`RUN_DATE=D meltano run <jobs>` as a Meltano user types it (only RUN_DATE set)."""
    # --force: a run an earlier test SIGKILLed stays "running" in Meltano's own records for 5 minutes
    return project.run(MELTANO, "run", "--force", *jobs, env={"RUN_DATE": day, **(env or {})})


def outcomes(project: Project, day: str) -> dict[str, str]:
    status = project.make("status", f"DATE={day}").stdout
    return {line.split()[0]: line.split()[1] for line in status.splitlines() if line.strip().split(" ")[0] in JOBS}


@pytest.fixture(scope="module")
def made(project: Project) -> Project:
    project.make("pipeline", "DATE=2024-03-01", check=True)
    return project


def test_the_five_jobs_through_meltano_run_give_the_bytes_make_pipeline_gives(made: Project, tmp_path: Path) -> None:
    fresh = Project(tmp_path / "data", {**made.env, "DATA_DIR": str(tmp_path / "data")})
    for job in JOBS:
        result = meltano(fresh, "2024-03-01", job)
        assert result.returncode == 0, f"meltano run {job}:\n{result.stderr[-3000:]}"
    assert fresh.day_files("2024-03-01") == made.day_files("2024-03-01")
    for name in ("orders_details.csv", "orders_details.json"):
        assert (fresh.data_dir / "output/2024-03-01" / name).read_bytes() == (made.data_dir / "output/2024-03-01" / name).read_bytes()
    assert set(outcomes(fresh, "2024-03-01").values()) == {"succeeded"}  # the ledger saw every job


def test_the_chained_meltano_run_completes_the_day_and_the_ledger_knows(made: Project) -> None:
    result = meltano(made, "2024-03-02", *JOBS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(outcomes(made, "2024-03-02").values()) == {"succeeded"}
    assert made.make("status", "DATE=2024-03-02").returncode == 0


def test_two_meltano_runs_of_a_step_and_day_never_interleave(made: Project) -> None:
    env = {**os.environ, **made.env, "RUN_DATE": "2024-03-03"}
    first = subprocess.Popen(
        [MELTANO, "run", "extract-postgres"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    running = "select count(*) from ops.runs where day = '2024-03-03' and step = 'extract-postgres' and outcome = 'running'"
    assert wait_for(lambda: made.sql(running) == [(1,)])  # its open task holds the day's locks
    # the first run holds the day now; stopped here, it cannot end before the second one tries
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = meltano(made, "2024-03-03", "extract-postgres")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-3000:]
    assert second.returncode != 0
    busy = "LockBusy: extract-postgres for 2024-03-03 is busy: 2024-03-03 postgres is held by extract-postgres for 2024-03-03"
    assert f"{busy} (meltano run pid {first.pid} on " in second.stderr
    assert outcomes(made, "2024-03-03")["extract-postgres"] == "succeeded"  # the refusal did not overwrite it


def test_transform_refuses_a_day_not_loaded_by_every_entry_point(made: Project) -> None:
    day = "2024-03-04"
    by_meltano = meltano(made, day, "transform")
    assert by_meltano.returncode != 0
    refusal = f"transform refuses to run for {day}: the load of {day} has not succeeded; run make pipeline DATE={day}"
    assert refusal in by_meltano.stderr
    by_make = made.make("transform", f"DATE={day}")
    sentence, _, command = refusal.partition("; run ")  # make's block: the sentence, then the command as its resume line
    assert by_make.returncode != 0 and f"cause:  GateError: {sentence}\n" in by_make.stderr and f"resume: {command}\n" in by_make.stderr
    assert outcomes(made, day)["transform"] == "failed"
    by_dbt = made.run(MELTANO, "invoke", "dbt-postgres", "build", env={"RUN_DATE": day})  # plain dbt: on-run-start
    assert by_dbt.returncode != 0
    assert f"the warehouse holds no load of {day}" in by_dbt.stdout + by_dbt.stderr
    assert made.sql("select count(*) from marts.orders_details where snapshot_date = %s", (day,)) == [(0,)]


def test_transform_refuses_landed_files_that_changed_after_the_load(made: Project, csv_copy: Path) -> None:
    day = "2024-03-05"
    made.make("extract-postgres", f"DATE={day}", check=True)
    made.make("extract-csv", f"DATE={day}", check=True)
    made.make("load", f"DATE={day}", check=True)
    lines = csv_copy.read_text().splitlines()
    csv_copy.write_text("\n".join(lines[:-1]) + "\n")  # one order line fewer: a different day
    made.make("extract-csv", f"DATE={day}", check=True, env={"ORDER_DETAILS_CSV": str(csv_copy)})
    refused = meltano(made, day, "transform")
    assert refused.returncode != 0
    assert f"the landed files of {day} changed after the load, or another DATA_DIR" in refused.stderr
    assert f"; run make pipeline DATE={day} STEP=load" in refused.stderr
    made.make("pipeline", f"DATE={day}", "STEP=load", check=True)  # what the refusal says
    rows = made.sql("select count(*) from marts.orders_details where snapshot_date = %s", (day,))[0][0]
    assert rows == len(lines) - 2  # header and the dropped line


@pytest.mark.parametrize("killed", ["meltano", "nwelt"])
def test_a_killed_runner_leaves_no_plugin_running_and_no_half_load(made: Project, killed: str) -> None:
    day = "2024-03-06" if killed == "meltano" else "2024-03-07"
    made.make("extract-postgres", f"DATE={day}", check=True)
    made.make("extract-csv", f"DATE={day}", check=True)
    env = {**os.environ, **made.env, "RUN_DATE": day}
    command = [MELTANO, "run", "load"] if killed == "meltano" else [str(ROOT / ".venv/bin/nwelt"), "run", "load", "--date", day]
    runner = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: any("target-postgres" in c for c in processes_of(made))), "target-postgres never started"
    runner.send_signal(signal.SIGKILL)  # the runner alone: its children are not signalled
    runner.wait()
    assert wait_for(lambda: not any("target-postgres" in c or "tap-landing" in c or "meltano" in c for c in processes_of(made)), 30), (
        processes_of(made)
    )
    assert outcomes(made, day)["load"] == "interrupted"
    assert made.sql("select count(*) from raw._loads where snapshot_date = %s", (day,)) == [(0,)]  # nothing committed
    made.make("pipeline", f"DATE={day}", "STEP=load", check=True)  # the day is free again
    assert made.sql("select count(*) from pg_namespace where nspname like 'load\\_%%'") == [(0,)]  # no scratch schema left
    assert made.make("status", f"DATE={day}").returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_nwelt_stops_its_jobs_plugins_too(made: Project, sig: signal.Signals) -> None:
    """Airflow's timeout or a kill stops nwelt: dbt, a grandchild, stops with it and writes nothing
    after the locks are free (it ran on, orphaned, for seconds). SIGINT and SIGHUP take SIGTERM's
    path (unit/test_runner.py)."""
    day = {signal.SIGTERM: "2024-03-20", signal.SIGKILL: "2024-03-22"}[sig]
    made.make("pipeline", f"DATE={day}", check=True)
    built = made.sql("select built_at from marts._orders_details_builds where snapshot_date = %s", (day,))
    runner = subprocess.Popen(
        [str(ROOT / ".venv/bin/nwelt"), "run", "transform", "--date", day],
        cwd=ROOT,
        env={**os.environ, **made.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert wait_for(lambda: any("/bin/dbt build" in c for c in processes_of(made))), "dbt never started"
    runner.send_signal(sig)
    assert runner.wait(30) == (-sig if sig == signal.SIGKILL else 128 + sig)
    assert wait_for(lambda: not any("dbt" in c or "meltano" in c for c in processes_of(made)), 2), processes_of(made)
    assert made.sql("select built_at from marts._orders_details_builds where snapshot_date = %s", (day,)) == built
    assert outcomes(made, day)["transform"] == "interrupted"
    made.make("pipeline", f"DATE={day}", "STEP=transform", check=True)


def test_a_close_task_never_records_work_that_did_not_happen(made: Project) -> None:
    """`meltano run elt:open-transform elt:close-transform`: dbt never ran, so no success."""
    result = made.run(MELTANO, "run", "elt:open-transform", "elt:close-transform", env={"RUN_DATE": "2024-03-01"})
    assert result.returncode != 0
    assert "dbt did not build orders_details for 2024-03-01 in this Meltano job" in result.stderr
    assert outcomes(made, "2024-03-01")["transform"] == "failed"
    made.make("pipeline", "DATE=2024-03-01", "STEP=transform", check=True)


def test_without_run_date_a_job_says_so_in_one_line(made: Project) -> None:
    result = made.run(MELTANO, "run", "export", env={"RUN_DATE": ""})
    assert result.returncode != 0
    assert "ConfigError: RUN_DATE is not set: give the day, e.g. RUN_DATE=2024-01-01 meltano run export" in result.stderr
    assert "Traceback" not in result.stderr


def test_transform_refuses_raw_rows_another_data_dir_loaded(made: Project, tmp_path: Path, csv_copy: Path) -> None:
    day = "2024-03-08"
    for step in ("extract-postgres", "extract-csv", "load"):
        made.make(step, f"DATE={day}", check=True)
    other = Project(tmp_path / "other", {**made.env, "DATA_DIR": str(tmp_path / "other")})  # same warehouse
    csv_copy.write_text("\n".join(csv_copy.read_text().splitlines()[:-1]) + "\n")
    for step in ("extract-postgres", "extract-csv", "load"):
        other.make(step, f"DATE={day}", check=True, env={"ORDER_DETAILS_CSV": str(csv_copy)})
    refused = made.make("transform", f"DATE={day}")
    assert refused.returncode != 0
    assert "the warehouse's raw rows of 2024-03-08 were loaded from other landed files than this DATA_DIR's" in refused.stderr
    # the ledger's latest extract-csv published the other's files: this DATA_DIR's extract reruns
    assert f"resume: make extract-csv DATE={day}\n  then:   make pipeline DATE={day} STEP=load" in refused.stderr, refused.stderr
    made.make("extract-csv", f"DATE={day}", check=True)
    made.make("pipeline", f"DATE={day}", "STEP=load", check=True)  # this DATA_DIR's day again


def _session_leader(pid: int) -> bool:
    try:
        return os.getsid(pid) == pid
    except ProcessLookupError:  # the open task, ended meanwhile
        return False


def test_a_run_whose_lock_holder_died_is_not_recorded_as_succeeded(made: Project) -> None:
    day = "2024-03-09"
    made.make("extract-postgres", f"DATE={day}", check=True)
    made.make("extract-csv", f"DATE={day}", check=True)
    env = {**os.environ, **made.env, "RUN_DATE": day}
    # --force: the killed `meltano run load` of an earlier test is still "running" in Meltano's own
    # records for 5 minutes, and Meltano would refuse this block for it (its message names --force)
    job = subprocess.Popen(
        [MELTANO, "run", "--force", "load"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    running = "select count(*) from ops.runs where day = %s and step = 'load' and outcome = 'running'"
    assert wait_for(lambda: made.sql(running, (day,)) == [(1,)]), "the load never opened"  # its holder holds the locks
    os.kill(job.pid, signal.SIGSTOP)  # the job cannot reach its close meanwhile
    try:
        holders = [pid for pid, line in pids_of(made).items() if "task open load" in line and _session_leader(pid)]
        assert holders  # forked by the open task, in a session of its own
        for pid in holders:
            os.kill(pid, signal.SIGKILL)  # the lock holder alone (e.g. the OOM killer): the server frees the locks
    finally:
        os.kill(job.pid, signal.SIGCONT)
    _, err = job.communicate(timeout=600)
    sys.stderr.write(err[-6000:])  # shown by pytest if the test fails: the job's own account
    assert job.returncode != 0
    assert f"the locks of this run of load for {day} were lost before the step closed" in err
    assert outcomes(made, day)["load"] == "failed"
    made.make("pipeline", f"DATE={day}", "STEP=load", check=True)
