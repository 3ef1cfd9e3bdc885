"""Status and resume logic, on ledger rows built here, then on a real ledger (the quick tier's own
PostgreSQL): the one-line view, one resume advice and one clock for status and a failed step."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shlex
import sys
from pathlib import Path

import pytest

from northwind_elt import console, runner, status
from northwind_elt.console import StepResult
from northwind_elt.errors import Fix, GateError, resume
from northwind_elt.export import output_paths
from northwind_elt.ledger import Ledger, Run, connect
from northwind_elt.settings import Settings

DAY = dt.date(2024, 1, 1)
T0 = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def run(step: str, outcome: str, start: int, end: int | None = None) -> Run:
    return Run(
        run_id=f"{step}-{start}",
        day=DAY,
        step=step,
        started_at=T0 + dt.timedelta(minutes=start),
        ended_at=T0 + dt.timedelta(minutes=end if end is not None else start + 1) if outcome != "running" else None,
        outcome=outcome,
        rows={"t": 3},
        error=None if outcome == "succeeded" else "boom",
        log_path=None,
    )


def complete_day() -> dict[str, Run]:
    steps = ["extract-postgres", "extract-csv", "load", "transform", "export"]
    return {s: run(s, "succeeded", i * 2) for i, s in enumerate(steps)}


def test_a_complete_day_is_complete() -> None:
    ok, lines = status.report(complete_day(), DAY)
    assert ok and lines[-1].strip() == "complete"


def test_an_extract_rerun_after_the_load_makes_the_later_steps_stale() -> None:
    runs = complete_day()
    runs["extract-csv"] = run("extract-csv", "succeeded", 30)
    states = status.step_states(runs)
    assert states["load"] == "stale" and states["transform"] == "stale" and states["export"] == "stale"
    ok, lines = status.report(runs, DAY)
    assert not ok
    stripped = [line.strip() for line in lines]
    assert "next: make load DATE=2024-01-01" in stripped and "then: make pipeline DATE=2024-01-01 STEP=transform" in stripped


def test_a_rerun_that_landed_the_same_files_leaves_the_later_steps_fresh() -> None:
    runs = {step: dataclasses.replace(r, landing="landed-1") for step, r in complete_day().items()}
    runs["extract-csv"] = run("extract-csv", "succeeded", 30)  # after them all, same markers
    runs["load"] = dataclasses.replace(run("load", "succeeded", 40), landing="landed-1")  # after transform and export
    assert set(status.step_states(runs, "landed-1").values()) == {"succeeded"}
    landed_since = status.step_states(runs, "landed-2")  # the markers changed after the load
    assert [landed_since[s] for s in ("load", "transform", "export")] == ["stale", "stale", "stale"]


@pytest.mark.parametrize(
    ("failed", "commands"),
    [
        ("extract-postgres", ["make pipeline DATE=2024-01-01"]),
        ("extract-csv", ["make extract-csv DATE=2024-01-01", "make pipeline DATE=2024-01-01 STEP=load"]),
        ("load", ["make load DATE=2024-01-01", "make pipeline DATE=2024-01-01 STEP=transform"]),
        ("export", ["make export DATE=2024-01-01"]),
    ],
)
def test_the_resume_commands_start_at_the_first_step_not_succeeded(failed: str, commands: list[str]) -> None:
    runs = complete_day()
    runs[failed] = run(failed, "failed", 50)
    if failed == "extract-postgres":
        del runs["extract-csv"]
    assert status.first_incomplete(status.step_states(runs)) == failed
    assert console.resume_commands(failed, DAY) == commands


def test_a_step_never_run_after_a_success_is_next() -> None:
    runs = {k: v for k, v in complete_day().items() if k != "transform"}
    states = status.step_states(runs)
    assert states["transform"] == "not run" and states["export"] == "stale"


def test_a_day_whose_first_unfinished_step_is_running_says_wait_not_a_command_the_locks_refuse() -> None:
    runs = complete_day()
    runs["load"] = run("load", "running", 50)  # another worker's, holding the day's locks
    for view in (status.report, status.compact):
        ok, lines = view(runs, DAY)
        assert not ok and "wait: load is running; then make status DATE=2024-01-01" in lines[-1], lines
    runs["extract-csv"] = run("extract-csv", "failed", 60)  # its rerun would meet the load's shared lock too
    assert status.report(runs, DAY)[1][-1].strip() == "next: wait: load is running; then make status DATE=2024-01-01"
    del runs["load"]
    assert status.report(runs, DAY)[1][-2].strip() == "next: make extract-csv DATE=2024-01-01"


def test_days_ending_counts_calendar_days() -> None:
    assert status.days_ending(DAY, 3) == [dt.date(2023, 12, 30), dt.date(2023, 12, 31), DAY]
    assert status.days_ending(DAY, 1) == [DAY]


def test_an_error_line_carries_its_fix_as_a_command() -> None:
    error = GateError("transform refuses to run for 2024-01-01: the load of 2024-01-01 failed", [resume("load", DAY)])
    assert console.error_line(error) == (
        "GateError: transform refuses to run for 2024-01-01: the load of 2024-01-01 failed; run make pipeline DATE=2024-01-01 STEP=load"
    )
    assert console.command(Fix(step="extract-csv", day=DAY)) == "make extract-csv DATE=2024-01-01"
    assert console.command(Fix(note="migrate raw.orders by hand")) == "migrate raw.orders by hand"


def test_next_commands_start_with_what_the_error_names_then_finish_the_day() -> None:
    refused = "GateError: step 2 (load) refuses to run for 2024-01-01: …; run make extract-csv DATE=2024-01-01"
    assert console.next_commands("load", DAY, refused) == [
        "make extract-csv DATE=2024-01-01",
        "make pipeline DATE=2024-01-01 STEP=load",
    ]
    gate = "GateError: transform refuses …; run make pipeline DATE=2024-01-01 STEP=load"
    assert console.next_commands("transform", DAY, gate) == ["make pipeline DATE=2024-01-01 STEP=load"]
    own = "GateError: dbt did not build orders_details for 2024-01-01 in this Meltano job; run make transform DATE=2024-01-01"
    assert console.next_commands("transform", DAY, own) == ["make transform DATE=2024-01-01", "make export DATE=2024-01-01"]
    assert console.next_commands("export", DAY, "the Meltano job export stopped") == ["make export DATE=2024-01-01"]


def record(settings: Settings, day: dt.date, *runs: tuple[str, str, float], error: str | None = None) -> None:
    """Runs of `day` one after the other from noon, each (step, outcome, seconds); a failure's error is `error`."""
    ledger, at = Ledger(settings), dt.datetime.combine(day, dt.time(12), dt.timezone.utc)
    for step, outcome, seconds in runs:
        run = ledger.begin(day, step, os.getpid(), None)
        if outcome != "running":
            ledger.finish(run.run_id, outcome, {"t": 2155} if outcome == "succeeded" else None, error if outcome == "failed" else None)
        with connect(settings) as conn:
            times = (at, at + dt.timedelta(seconds=seconds) if outcome != "running" else None, run.run_id)
            conn.execute("update ops.runs set started_at = %s, ended_at = %s where run_id = %s", times)
        at += dt.timedelta(seconds=seconds + 1)


def whole_day(transform_seconds: float) -> list[tuple[str, str, float]]:
    steps = [("extract-postgres", 3.3), ("extract-csv", 2.3), ("load", 2.4), ("transform", transform_seconds)]
    return [(step, "succeeded", seconds) for step, seconds in steps]


def test_a_range_is_one_line_a_day_ending_with_why_it_exits_1(warehouse: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    days = [DAY + dt.timedelta(days=i) for i in range(4)]
    record(warehouse, days[0], *whole_day(7.3), ("export", "succeeded", 0.3))
    record(warehouse, days[1], *whole_day(7.1), ("export", "failed", 0.2), error="ExportError: no; run make export DATE=2024-01-02")
    record(warehouse, days[2], ("extract-postgres", "running", 0))  # its lock session is gone: interrupted
    exported = output_paths(warehouse, days[0])
    for path in exported:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("exported\n")
    assert status.print_status(warehouse, days, one_line=True) == 1
    assert capsys.readouterr().out.splitlines() == [
        "day         state                        exported  slowest step               next",
        "2024-01-01  complete                         2155  transform 7.3 s            -",
        "2024-01-02  export failed                       -  transform 7.1 s            make export DATE=2024-01-02",
        "2024-01-03  extract-postgres interrupted        -  -                          make pipeline DATE=2024-01-03",
        "2024-01-04  not run                             -  -                          make pipeline DATE=2024-01-04",
        "exit 1: 3 of 4 days are not complete; make status exits 0 once every step of every day shown has succeeded",
    ]
    assert status.print_status(warehouse, days[:1], one_line=True) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("  -")  # complete: no exit line
    exported[1].unlink()  # the export's files are gone: the day is not complete, whatever the ledger says
    assert status.print_status(warehouse, days[:1], one_line=True) == 1
    assert capsys.readouterr().out.splitlines()[1].startswith("2024-01-01  export stale")
    assert status.print_status(warehouse, days[1:2], one_line=False) == 1
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "  next: make export DATE=2024-01-02",
        "exit 1: 2024-01-02 is not complete; make status exits 0 once every step of every day shown has succeeded",
    ]


def test_a_failure_block_and_status_give_the_same_advice(warehouse: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """`make load` before the extracts: the gate names both extracts, yet the day's first step not
    succeeded is extract-postgres, so both say what the docs' table says: the whole pipeline."""
    cause = "GateError: step 2 (load) refuses to run …; run make extract-postgres DATE=2024-01-01; then make extract-csv DATE=2024-01-01"
    record(warehouse, DAY, ("load", "failed", 0.1), error=cause)
    failed = StepResult("load", DAY, False, 0.1, cause=cause)
    console.report_failure(failed, status.failure_advice(warehouse, failed))
    status.print_status(warehouse, [DAY], one_line=False)
    captured = capsys.readouterr()
    resume_lines = [line.split(":", 1)[1].strip() for line in captured.err.splitlines() if line.strip().startswith(("resume:", "then:"))]
    next_lines = [line.split(":", 1)[1].strip() for line in captured.out.splitlines() if line.strip().startswith(("next:", "then:"))]
    assert resume_lines == next_lines == ["make pipeline DATE=2024-01-01"]
    # the extracts done, the load refused again: the load's own advice, from the ledger's failure
    record(warehouse, DAY, ("extract-postgres", "succeeded", 1), ("extract-csv", "succeeded", 1))
    failed = StepResult("load", DAY, False, 0.1, cause="LoadError: the landed files changed; run make load DATE=2024-01-01")
    assert status.failure_advice(warehouse, failed) == ["make load DATE=2024-01-01", "make pipeline DATE=2024-01-01 STEP=transform"]


FAKE_MELTANO = """
import datetime as dt, os, sys, time
from northwind_elt import settings
from northwind_elt.ledger import Ledger
time.sleep(1)  # Meltano starting: before elt:open-<step> records the run
Ledger(settings.load()).begin(dt.date.fromisoformat(os.environ["RUN_DATE"]), sys.argv[-1], os.getpid(), None, os.environ["NWELT_JOB"])
sys.exit("a plugin failed")  # no elt:close-<step>: nwelt records the failure
"""


def test_a_failed_steps_summary_shows_the_seconds_status_shows(
    warehouse: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One clock: the ledger's (the open task's record to the outcome's), not the job's wall time."""
    fake = tmp_path / "meltano"
    fake.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(FAKE_MELTANO)} "$@"\n')  # a path may hold a space
    fake.chmod(0o755)
    monkeypatch.setattr(runner, "meltano_exe", lambda: str(fake))
    result = runner.run_step(warehouse, "load", DAY, quiet=True)
    run = Ledger(warehouse).latest(DAY)["load"]
    assert not result.ok and run.outcome == "failed" and run.seconds is not None and run.seconds < 1
    assert result.seconds == run.seconds


@pytest.mark.parametrize("marker", [None, "another"], ids=["marker-gone", "marker-rewritten"])
def test_an_extract_whose_task_marker_is_not_the_one_it_published_is_stale(marker: str | None) -> None:
    """Status says what the load's gate would: the day's landing is not what step 1 published, so
    the extract reruns (it said `complete`, or `make load`, which the gate then refused)."""
    runs = {step: dataclasses.replace(r, landing="published") for step, r in complete_day().items()}
    markers = {"extract-postgres": "published", "extract-csv": marker}
    states = status.step_states(runs, None, True, markers)
    assert [states[s] for s in status.NAMES] == ["succeeded", "stale", "stale", "stale", "stale"]
    ok, lines = status.report(runs, DAY, (None, True, markers))
    assert not ok and "next: make extract-csv DATE=2024-01-01" in [line.strip() for line in lines]
    assert status.step_states(runs, None, True, dict.fromkeys(markers, "published"))["export"] == "succeeded"
