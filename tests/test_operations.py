"""Operations: the run ledger, `make status`, resume commands, SIGKILL, backfill, one writer a day."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from conftest import ROOT, Project, processes_of

DAY = "2024-02-01"


def _status_rows(output: str) -> dict[str, str]:
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\s+(extract-postgres|extract-csv|load|transform|export)\s+(\S+(?: run)?)", output, re.M)
    }


def test_status_after_a_complete_day(project: Project) -> None:
    project.make("pipeline", f"DATE={DAY}", check=True)
    result = project.make("status", f"DATE={DAY}")
    assert result.returncode == 0, result.stdout
    assert set(_status_rows(result.stdout).values()) == {"succeeded"}
    assert "complete" in result.stdout
    rows = project.sql("select step, outcome, rows, log_path from ops.runs where day = %s order by started_at", (DAY,))
    assert {r[0] for r in rows} == {"extract-postgres", "extract-csv", "load", "transform", "export"}
    assert all(r[1] == "succeeded" and Path(r[3]).is_file() for r in rows)
    assert next(r[2] for r in rows if r[0] == "extract-postgres")["orders"] == 830
    # a step run again on the same landed files leaves the day complete, as the gates see it
    for step in ("extract-csv", "load"):
        project.make(step, f"DATE={DAY}", check=True)
        again = project.make("status", f"DATE={DAY}")
        assert again.returncode == 0 and set(_status_rows(again.stdout).values()) == {"succeeded"}, (step, again.stdout)


def test_unreadable_csv_status_and_printed_commands_complete_the_day(project: Project, tmp_path: Path) -> None:
    day = "2024-02-02"
    unreadable = tmp_path / "order_details.csv"
    unreadable.mkdir()  # a folder where the file should be: unreadable as a CSV, even for root
    result = project.make("pipeline", f"DATE={day}", env={"ORDER_DETAILS_CSV": str(unreadable)})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    tail = lines[lines.index(f"FAILED: step extract-csv for {day}") :]
    assert len(tail) <= 7  # the block is the end of the output (then make's own one-line note)
    assert "not a regular file" in tail[1] and str(unreadable) in tail[1]  # a folder: refused before it is read
    assert tail[2].strip().startswith("log:") and Path(tail[2].split("log:")[1].strip()).exists()
    assert tail[3].strip() == f"resume: make extract-csv DATE={day}"
    assert tail[4].strip() == f"then:   make pipeline DATE={day} STEP=load"
    # no misleading count before the failure (a heartbeat's "0 rows so far" on a busy machine is true)
    assert not re.search(r"\[extract-csv\] (?!running for).* 0 rows", result.stdout)

    status = project.make("status", f"DATE={day}")
    assert status.returncode != 0
    # one clock (the ledger's) for the summary and status, though the plugin failed before the close task
    summary_seconds = re.search(r"^  extract-csv\s+FAILED\s+-\s+([\d.]+) s$", result.stdout, re.M)
    status_seconds = re.search(r"^  extract-csv\s+failed\s+-\s+([\d.]+)  CsvInputError", status.stdout, re.M)
    assert summary_seconds and status_seconds and summary_seconds.group(1) == status_seconds.group(1), (result.stdout, status.stdout)
    # the report says why it exits non-zero before make's own `Error 1` line
    assert (
        status.stdout.splitlines()[-1]
        == f"exit 1: {day} is not complete; make status exits 0 once every step of every day shown has succeeded"
    )
    assert re.fullmatch(r"make(\[\d+\])?: \*\*\* \[Makefile:\d+: status\] Error 1", status.stderr.strip())  # make[1] under make test
    assert _status_rows(status.stdout) == {
        "extract-postgres": "succeeded",
        "extract-csv": "failed",
        "load": "not run",
        "transform": "not run",
        "export": "not run",
    }
    commands = re.findall(r"(?:next|then): (make .+)$", status.stdout, re.M)
    assert commands[0] == f"make extract-csv DATE={day}"
    for command in commands:  # the file is fixed (the default CSV): run what status printed
        project.run(*command.split(), check=True)
    assert project.make("status", f"DATE={day}").returncode == 0


def test_sigkilled_step_is_reported_interrupted_and_rerun_completes(project: Project) -> None:
    day = "2024-02-03"
    env = {**os.environ, **project.env}
    process = subprocess.Popen(
        ["make", "--no-print-directory", "extract-postgres", f"DATE={day}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120  # kill while the target runs: Meltano is extracting
    while time.monotonic() < deadline and not any("target-jsonl" in c for c in processes_of(project)):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    status = project.make("status", f"DATE={day}")
    assert _status_rows(status.stdout)["extract-postgres"] == "interrupted"
    assert not (project.data_dir / "postgres" / "_manifests" / f"{day}.json").exists()
    project.make("pipeline", f"DATE={day}", check=True)
    assert project.make("status", f"DATE={day}").returncode == 0


def test_backfill_goes_past_a_failed_day(project: Project) -> None:
    result = project.make("backfill", "START=2024-01-01", "END=2024-01-04", env={"NWELT_FAULT": "export@2024-01-02"})
    assert result.returncode != 0
    summary = result.stdout.split("status of 2024-01-01 .. 2024-01-04 (make status DATE=D shows a day's steps):\n")[1]
    assert summary == project.make("status", "START=2024-01-01", "END=2024-01-04").stdout.replace("make status", "make backfill")
    lines = summary.splitlines()
    assert lines[0].split() == ["day", "state", "exported", "slowest", "step", "next"] and len(lines) == 6
    days = {line.split()[0]: line for line in lines[1:5]}
    complete = [day for day, line in days.items() if line.split()[1] == "complete"]
    assert complete == ["2024-01-01", "2024-01-03", "2024-01-04"]
    for day in complete:  # one line a day: the rows exported, the slowest step and its seconds, nothing to run
        assert re.fullmatch(rf"{day}  complete +2155  \S+ [\d.]+ s +-", days[day]), days[day]
    assert re.fullmatch(r"2024-01-02  export failed +-  \S+ [\d.]+ s +make export DATE=2024-01-02", days["2024-01-02"])
    assert lines[5] == "exit 1: 2024-01-02 is not complete; make backfill exits 0 once every step of every day shown has succeeded"
    assert "stopped without an error message (killed or crashed?)" in project.make("status", "DATE=2024-01-02").stdout
    # every step says when it starts and how it ended, as it happens (day, step, rows, seconds)
    assert re.search(r"^2024-01-03 load\s+started$", result.stdout, re.M)
    assert re.search(r"^2024-01-03 load\s+ok\s+\d+ rows\s+[\d.]+ s$", result.stdout, re.M)
    assert re.search(r"^2024-01-02 export\s+FAILED\s+[\d.]+ s: ", result.stdout, re.M)
    # every day that ends says how far the backfill is: day n of N, the time so far, about how long still
    progress = re.findall(r"^day (\d) of 4 done: (\S+) (ok|FAILED at export); (.+)$", result.stdout, re.M)
    assert [int(n) for n, *_ in progress] == list(range(1, 5)) and sorted(day for _, day, *_ in progress) == list(days)
    assert all(re.fullmatch(r"(\d+ min )?\d+ s elapsed, about (\d+ min )?\d+ s left", rest) for *_, rest in progress[:-1])
    assert re.fullmatch(r"(\d+ min )?\d+ s elapsed", progress[-1][3])
    for day in complete:
        assert (project.data_dir / "output" / day / "orders_details.json").exists()
    assert not (project.data_dir / "output" / "2024-01-02").exists()


def test_two_pipelines_for_one_day_never_interleave(project: Project) -> None:
    day = "2024-02-04"
    env = {**os.environ, **project.env}
    first = subprocess.Popen(
        ["make", "--no-print-directory", "pipeline", f"DATE={day}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # the first run holds the day once it writes a step's log (nwelt takes the day before)
    logs = project.data_dir / "logs" / day
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None and not any(logs.glob("*.log")):
        time.sleep(0.05)
    assert first.poll() is None, "the first pipeline ended before the second could start"
    second = project.make("pipeline", f"DATE={day}")
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert second.returncode != 0
    assert re.search(
        rf"LockBusy: day {day} is busy: {day} pipeline is held by pipeline of {day}, nwelt pid \d+ on \S+ \(since ", second.stderr
    )
    assert project.make("status", f"DATE={day}").returncode == 0
    # different days do proceed side by side
    other = subprocess.Popen(
        ["make", "--no-print-directory", "extract-csv", "DATE=2024-02-05"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    project.make("extract-csv", "DATE=2024-02-06", check=True)
    assert other.wait(timeout=300) == 0


def test_a_long_step_says_how_far_it_is(project: Project) -> None:
    """At least every NWELT_HEARTBEAT_SECONDS (10 s by default; shortened here) a running step
    prints a line, with the rows landed so far for an extract."""
    result = project.make("extract-postgres", "DATE=2024-02-07", env={"NWELT_HEARTBEAT_SECONDS": "0.2"}, check=True)
    beats = re.findall(r"^  \[extract-postgres\] running for \d+ s, (\d+) rows so far$", result.stdout, re.M)
    [(rows,)] = project.sql("select rows from ops.runs where day = '2024-02-07' and step = 'extract-postgres'")
    assert beats and all(int(beat) <= sum(rows.values()) for beat in beats), (result.stdout, rows)  # this run's rows


def test_status_shows_today_without_date_and_the_last_days_with_days(project: Project) -> None:
    today = dt.date.today()
    shown = re.findall(r"^day (\S+)$", project.make("status").stdout, re.M)
    assert shown == [today.isoformat()]
    lines = project.make("status", "DATE=2024-02-03", "DAYS=3").stdout.splitlines()  # one line a day, after a header
    assert lines[0].split()[:2] == ["day", "state"]
    assert [line.split()[0] for line in lines[1:4]] == ["2024-02-01", "2024-02-02", "2024-02-03"]
    days = project.make("status", "DAYS=2").stdout.splitlines()  # without DATE: the days ending today
    assert [line.split()[0] for line in days[1:3]] == [(today - dt.timedelta(days=1)).isoformat(), today.isoformat()]


def test_a_load_before_its_extracts_says_what_status_says(project: Project) -> None:
    """The gate names both extracts; the failure block and status both start at the day's first
    step not succeeded, extract-postgres: the whole pipeline (the docs' resume table)."""
    day = "2024-02-08"
    refused = project.make("load", f"DATE={day}")
    assert refused.returncode != 0 and f"step 2 (load) refuses to run for {day}: extract-postgres has not succeeded" in refused.stderr
    assert "make extract-" not in refused.stderr  # the block names one way on: the resume line
    resume = re.findall(r"^  (?:resume|then): +(.+)$", refused.stderr, re.M)
    status = project.make("status", f"DATE={day}")
    assert re.findall(r"^  (?:next|then): (.+)$", status.stdout, re.M) == resume == [f"make pipeline DATE={day}"]
    assert project.make("status", f"START={day}", f"END={day}").stdout.splitlines()[1].split()[-2:] == ["pipeline", f"DATE={day}"]
