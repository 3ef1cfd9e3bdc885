"""`make status`: what the ledger says about days (the same on every host), and what finishes them:
a day's steps (DATE=D), or one line a day (START/END, DAYS)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from .console import StepResult, next_commands, wait_for, without_commands
from .errors import LedgerError
from .export import output_paths
from .landing import SOURCES, Landing
from .ledger import Ledger, Run
from .registry import NAMES, get
from .settings import Settings


def step_states(
    runs: dict[str, Run], landed: str | None = None, exported: bool = True, markers: dict[str, str | None] | None = None
) -> dict[str, str]:
    """succeeded / failed / interrupted / running / not run / stale: an upstream step is not
    succeeded, or the step worked from another landing of the day than `landed` (the landed
    checksum now, which the gates compare; unknown: an upstream run ended after it began), or
    (an extract) its task marker is not the one it published (`markers`: each extract's now,
    None if gone), or (the export) its files are gone (`exported` False)."""
    states: dict[str, str] = {}
    for step in NAMES:
        run = runs.get(step)
        states[step] = "not run" if run is None else run.outcome
        if run is None or run.outcome != "succeeded":
            continue
        if markers is not None and step in markers and run.landing and markers[step] != run.landing:
            states[step] = "stale"  # what the load's gate refuses
        for up in get(step).upstream:
            ended = runs[up].ended_at if up in runs else None
            since = run.landing != landed if run.landing and landed else bool(ended and ended > run.started_at)
            if states[up] != "succeeded" or since:
                states[step] = "stale"
    if states[NAMES[-1]] == "succeeded" and not exported:
        states[NAMES[-1]] = "stale"
    return states


def first_incomplete(states: dict[str, str]) -> str | None:
    return next((step for step in NAMES if states[step] != "succeeded"), None)


def _causes(runs: dict[str, Run], states: dict[str, str]) -> dict[str, str | None]:
    return {step: run.error for step, run in runs.items() if states[step] in ("failed", "interrupted")}


def resume_advice(day: dt.date, states: dict[str, str], causes: dict[str, str | None]) -> list[str]:
    """The commands that finish `day` ([] when complete): from its first step not succeeded, starting
    with what that step's error names; while a step runs, to wait. The one source of status's
    `next:` and a failure's `resume:`."""
    if running := [s for s in NAMES if states[s] == "running"]:
        return [wait_for(running[0], day)]
    step = first_incomplete(states)
    return [] if step is None else next_commands(step, day, causes.get(step))


def failure_advice(settings: Settings, failed: StepResult) -> list[str]:
    """What finishes the day of a step that just failed: the day as the ledger has it, with this
    failure (from the failed step on if the ledger is out of reach)."""
    try:
        runs = Ledger(settings).latest(failed.day)
        states = step_states(runs, *on_disk(settings, failed.day))
    except LedgerError:
        runs, states = {}, dict.fromkeys(NAMES, "succeeded")
    return resume_advice(failed.day, states | {failed.step: "failed"}, _causes(runs, states) | {failed.step: failed.cause})


OnDisk = tuple[str | None, bool, dict[str, str | None] | None]  # step_states' landed, exported, markers
UNKNOWN: OnDisk = (None, True, None)


def on_disk(settings: Settings, day: dt.date) -> OnDisk:
    """What status compares the ledger with: the landed checksum, the export's files, the task markers."""
    landing = Landing(settings.data_dir)
    markers = {s.step: landing.marker_checksum(s, day) for s in SOURCES.values()}
    return landing.landed_checksum(day), all(path.exists() for path in output_paths(settings, day)), markers


def report(runs: dict[str, Run], day: dt.date, disk: OnDisk = UNKNOWN) -> tuple[bool, list[str]]:
    """The detailed view of a day: one line a step, then the commands that finish it."""
    states = step_states(runs, *disk)
    lines = [f"day {day}", f"  {'step':<17} {'outcome':<12} {'rows':>8} {'seconds':>8}  note"]
    commands = resume_advice(day, states, _causes(runs, states))
    for step in NAMES:
        run = runs.get(step)
        rows = f"{run.total_rows:>8}" if run and run.outcome == "succeeded" else f"{'-':>8}"
        secs = f"{run.seconds:>8.1f}" if run and run.seconds is not None else f"{'-':>8}"
        note = without_commands(run.error, commands) if run and states[step] != "succeeded" else ""
        lines.append(f"  {step:<17} {states[step]:<12} {rows} {secs}  {note[:100]}")
    return not commands, lines + ([f"  {'next:' if i == 0 else 'then:'} {c}" for i, c in enumerate(commands)] or ["  complete"])


COMPACT_HEADER = f"{'day':<10}  {'state':<28} {'exported':>8}  {'slowest step':<26} next"


def compact(runs: dict[str, Run], day: dt.date, disk: OnDisk = UNKNOWN) -> tuple[bool, list[str]]:
    """One line for a day: its state, the rows its export wrote, its slowest step, the next command."""
    states = step_states(runs, *disk)
    step, commands = first_incomplete(states), resume_advice(day, states, _causes(runs, states))
    state = "complete" if step is None else f"{step} {states[step]}" if runs else "not run"
    export = runs.get(NAMES[-1])
    rows = str(export.total_rows) if export and export.outcome == "succeeded" else "-"
    slowest = max((r for r in runs.values() if r.seconds is not None), key=lambda r: r.seconds or 0.0, default=None)
    slow = f"{slowest.step} {slowest.seconds:.1f} s" if slowest else "-"
    return not commands, [f"{day}  {state:<28} {rows:>8}  {slow:<26} {commands[0] if commands else '-'}"]


def days_ending(last: dt.date, count: int) -> list[dt.date]:
    """The `count` calendar days up to and including `last`, oldest first (never before year 1)."""
    count = max(1, min(count, (last - dt.date.min).days + 1))
    return [last - dt.timedelta(days=i) for i in reversed(range(count))]


def print_status(settings: Settings, days: Sequence[dt.date], one_line: bool, command: str = "make status") -> int:
    """Print the days (consecutive, oldest first) in the detailed or the one-line view; 1 unless every
    day is complete, said in the last line (make then adds its `Error 1`)."""
    latest: dict[dt.date, dict[str, Run]] = {day: {} for day in days}
    for run in Ledger(settings).between(days[0], days[-1]):  # one query, oldest run first
        latest[run.day][run.step] = run
    view = compact if one_line else report
    reports = {day: view(runs, day, on_disk(settings, day)) for day, runs in latest.items()}
    lines = ([COMPACT_HEADER] if one_line else []) + [line for _, shown in reports.values() for line in shown]
    incomplete = [day for day, (ok, _) in reports.items() if not ok]
    if incomplete:
        which = f"{incomplete[0]} is" if len(incomplete) == 1 else f"{len(incomplete)} of {len(days)} days are"
        lines.append(f"exit 1: {which} not complete; {command} exits 0 once every step of every day shown has succeeded")
    print("\n".join(lines))
    return 1 if incomplete else 0
