"""`make status`: what the ledger says about a day (the same on every host), and what finishes it."""

from __future__ import annotations

import datetime as dt

from .console import next_commands
from .ledger import Ledger, Run
from .registry import NAMES, get
from .settings import Settings


def step_states(runs: dict[str, Run]) -> dict[str, str]:
    """succeeded / failed / interrupted / running / not run / stale (an input changed since)."""
    states: dict[str, str] = {}
    for step in NAMES:
        run = runs.get(step)
        states[step] = "not run" if run is None else run.outcome
        for up in get(step).upstream if states[step] == "succeeded" else ():
            ended = runs[up].ended_at if up in runs else None
            if states[up] != "succeeded" or (run and ended and ended > run.started_at):
                states[step] = "stale"
    return states


def first_incomplete(states: dict[str, str]) -> str | None:
    return next((step for step in NAMES if states[step] != "succeeded"), None)


def report(runs: dict[str, Run], day: dt.date) -> tuple[bool, list[str]]:
    states = step_states(runs)
    lines = [f"day {day}", f"  {'step':<17} {'outcome':<12} {'rows':>8} {'seconds':>8}  note"]
    for step in NAMES:
        run = runs.get(step)
        rows = f"{run.total_rows:>8}" if run and run.outcome == "succeeded" else f"{'-':>8}"
        secs = f"{run.seconds:>8.1f}" if run and run.seconds is not None else f"{'-':>8}"
        note = (run.error or "") if run and states[step] != "succeeded" else ""
        lines.append(f"  {step:<17} {states[step]:<12} {rows} {secs}  {note[:100]}")
    incomplete = first_incomplete(states)
    if incomplete is None:
        lines.append("  complete")
        return True, lines
    cause = runs[incomplete].error if states[incomplete] in ("failed", "interrupted") else None
    return False, lines + [f"  {'next:' if i == 0 else 'then:'} {c}" for i, c in enumerate(next_commands(incomplete, day, cause))]


def days_ending(last: dt.date, count: int) -> list[dt.date]:
    """The `count` calendar days up to and including `last`, oldest first (never before year 1)."""
    count = max(1, min(count, (last - dt.date.min).days + 1))
    return [last - dt.timedelta(days=i) for i in reversed(range(count))]


def print_days(settings: Settings, days: list[dt.date]) -> int:
    reports = [report(Ledger(settings).latest(day), day) for day in days]
    print("\n".join(line for _, lines in reports for line in lines))
    return 0 if all(ok for ok, _ in reports) else 1
