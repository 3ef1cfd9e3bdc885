"""The console: commands from fixes, the one-line error and back, the summary, the failure block
and the backfill's lines."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from northwind_elt import console, runner
from northwind_elt.console import StepResult
from northwind_elt.errors import Fix, GateError, PublishError, rerun, resume

DAY = dt.date(2024, 1, 1)


@pytest.mark.parametrize(
    ("fix", "line"),
    [
        (Fix(day=DAY), "make pipeline DATE=2024-01-01"),
        (rerun("load", DAY), "make load DATE=2024-01-01"),
        (resume("load", DAY), "make pipeline DATE=2024-01-01 STEP=load"),
        (resume("export", DAY), "make export DATE=2024-01-01"),  # the last step: nothing after it
        (resume("extract-postgres", DAY), "make pipeline DATE=2024-01-01"),  # from the first step: the day
        (Fix(note="migrate raw.orders by hand"), "migrate raw.orders by hand"),
    ],
)
def test_a_fix_is_one_make_command(fix: Fix, line: str) -> None:
    assert console.command(fix) == line


def test_an_error_line_carries_its_commands_and_gives_them_back() -> None:
    exc = GateError("step 2 (load) refuses to run", [rerun("extract-csv", DAY), resume("load", DAY)])
    line = console.error_line(exc)
    assert (
        line
        == "GateError: step 2 (load) refuses to run; run make extract-csv DATE=2024-01-01; then make pipeline DATE=2024-01-01 STEP=load"
    )
    assert console.commands_in(line) == ["make extract-csv DATE=2024-01-01", "make pipeline DATE=2024-01-01 STEP=load"]
    assert console.commands_in("ValueError: no commands") == []


def test_next_commands_finish_the_day() -> None:
    assert console.next_commands("transform", DAY, None) == ["make transform DATE=2024-01-01", "make export DATE=2024-01-01"]
    named = console.error_line(GateError("x", [rerun("extract-csv", DAY)]))
    assert console.next_commands("load", DAY, named) == ["make extract-csv DATE=2024-01-01", "make pipeline DATE=2024-01-01 STEP=load"]
    # a first step whose error names another command: that command, then the whole day
    down = "LedgerError: the embedded PostgreSQL (127.0.0.1:55432) is not running; run make db-up"
    assert console.next_commands("extract-postgres", DAY, down) == ["make db-up", "make pipeline DATE=2024-01-01"]
    own = console.error_line(PublishError("x", [rerun("extract-postgres", DAY)]))  # its own rerun: the whole day
    assert console.next_commands("extract-postgres", DAY, own) == ["make pipeline DATE=2024-01-01"]


def test_summary_and_failure_block(capsys: pytest.CaptureFixture[str]) -> None:
    results = [
        StepResult("extract-postgres", DAY, True, 2.04, {"orders": 830, "customers": 91}),
        StepResult("load", DAY, False, 1.5, cause="GateError: nope; run make extract-csv DATE=2024-01-01", log_path=Path("/x/load.log")),
        StepResult("transform", DAY, False, None, cause="killed"),  # no time recorded in the ledger
    ]
    console.print_summary(results)
    console.report_failure(results[1], ["make extract-csv DATE=2024-01-01", "make pipeline DATE=2024-01-01 STEP=load"])
    out, err = capsys.readouterr()
    assert out.splitlines()[1:] == [
        "summary for 2024-01-01:",
        "  extract-postgres  ok           921 rows     2.0 s",
        "  load              FAILED         -          1.5 s",
        "  transform         FAILED         -            -  ",
    ]
    assert err.splitlines()[1:] == [
        "FAILED: step load for 2024-01-01",
        "  cause:  GateError: nope",  # the commands it names are the resume lines
        "  log:    /x/load.log",
        "  resume: make extract-csv DATE=2024-01-01",
        "  then:   make pipeline DATE=2024-01-01 STEP=load",
    ]


def test_backfill_lines(capsys: pytest.CaptureFixture[str]) -> None:
    console.step_started("load", DAY)
    console.step_ended(StepResult("load", DAY, True, 3.25, {"t": 7}))
    console.step_ended(StepResult("export", DAY, False, 0.5, cause="ExportError: " + "x" * 200))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2024-01-01 load              started"
    assert lines[1] == "2024-01-01 load              ok             7 rows     3.2 s"
    assert lines[2].startswith("2024-01-01 export            FAILED      0.5 s: ExportError: x") and len(lines[2]) < 170


def test_a_backfill_counts_the_days_as_they_end(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Two days at a time end in any order: `day n of N` counts the days ended, with the time elapsed
    and an estimate of the rest (the average time a day took so far, times the days left)."""

    def execute(settings: object, day: dt.date, steps: list[str], *args: object) -> list[StepResult]:
        time.sleep({1: 0.6, 2: 0.1, 3: 0.9}[day.day])  # the second day ends first, the first second
        return [StepResult(step, day, day.day != 2 or step != "export", 0.1) for step in steps]

    monkeypatch.setattr(runner, "execute", execute)
    days = [DAY + dt.timedelta(days=i) for i in range(3)]
    assert [results[0].day for results in runner.execute_days(SimpleNamespace(backfill_days=2), days)] == days  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    assert [re.sub(r"\d+ s", "N s", line) for line in lines] == [
        "day 1 of 3 done: 2024-01-02 FAILED at export; N s elapsed, about N s left",
        "day 2 of 3 done: 2024-01-01 ok; N s elapsed, about N s left",
        "day 3 of 3 done: 2024-01-03 ok; N s elapsed",
    ]
    console.day_finished(DAY, [StepResult("load", DAY, True, 1.0)], 2, 8, 130.4)
    console.day_finished(DAY, [StepResult("load", DAY, True, 1.0)], 1, 400, 31.0)
    assert capsys.readouterr().out.splitlines() == [
        "day 2 of 8 done: 2024-01-01 ok; 2 min 10 s elapsed, about 6 min 31 s left",
        "day 1 of 400 done: 2024-01-01 ok; 31 s elapsed, about 3 h 26 min left",
    ]


def test_a_cause_loses_only_the_commands_the_resume_lines_give() -> None:
    shown = ["make load DATE=2024-01-01", "make pipeline DATE=2024-01-01 STEP=transform"]
    gate = "GateError: nope; run make load DATE=2024-01-01"
    assert console.without_commands(gate, shown) == "GateError: nope"
    assert console.without_commands("LedgerError: down; run make db-up; then rerun", ["make db-up", *shown]) == "LedgerError: down"
    # a later step's advice the resume reruns anyway (it goes on to the day's end): shown once
    later = "ExportError: not built; run make pipeline DATE=2024-01-01 STEP=transform; then make export DATE=2024-01-01"
    assert console.without_commands(later, shown) == "ExportError: not built"
    earlier = "ExportError: not this DATA_DIR's rows; run make pipeline DATE=2024-01-01"  # from before the resume's start
    assert console.without_commands(earlier, shown) == earlier
    loads = "GateError: step 2 refuses; run make extract-postgres DATE=2024-01-01; then make extract-csv DATE=2024-01-01"
    assert console.without_commands(loads, ["make pipeline DATE=2024-01-01"]) == "GateError: step 2 refuses"
    assert console.without_commands(loads, ["make pipeline DATE=2024-01-02"]) == loads  # another day
    kept = "LoadError: raw.orders has another type; run migrate raw.orders by hand; then make load DATE=2024-01-01"
    assert console.without_commands(kept, shown) == kept
    assert console.without_commands("ValueError: x", shown) == "ValueError: x" and console.without_commands(None, shown) == ""


def test_only_a_whole_command_is_taken_from_an_error_line() -> None:
    line = "GateError: no load; run make pipeline DATE=2024-01-01 first (make load DATE=2024-01-01 if its extracts ran)"
    assert console.commands_in(line) == []
    assert console.commands_in("GateError: x; run make pipeline DATE=2024-01-01 STEP=load; then rerun") == [
        "make pipeline DATE=2024-01-01 STEP=load"
    ]
