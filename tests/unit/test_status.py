"""Status and resume logic, on ledger rows built here (no database, no Meltano)."""

from __future__ import annotations

import datetime as dt

import pytest

from northwind_elt import console, status
from northwind_elt.errors import Fix, GateError, resume
from northwind_elt.ledger import Run

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
