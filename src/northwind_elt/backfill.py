"""A backfill: the pipeline for every day of a range, days side by side."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from . import registry
from .console import StepResult
from .errors import ConfigError, LockBusy
from .runner import execute
from .settings import Settings


def days_in_flight() -> int:
    """Days run at once (NWELT_BACKFILL_DAYS, default 2): each runs its steps one after the other,
    so two days keep both cores busy while each waits for its turn at a plugin."""
    raw = os.environ.get("NWELT_BACKFILL_DAYS") or "2"
    if not raw.isdigit() or not 1 <= int(raw) <= 8:
        raise ConfigError(f"NWELT_BACKFILL_DAYS={raw!r} is not a number of days from 1 to 8: fix or unset it")
    return int(raw)


def execute_days(settings: Settings, days: list[dt.date], wait_seconds: float = 0) -> Iterator[list[StepResult]]:
    """Run the whole pipeline for each of `days`, yielding each day's results in day order.

    Each day is one `meltano run` of every step (runner.execute's whole_day: one Meltano start a
    day, not one a step), under the day's locks. days_in_flight() days run side by side; a step
    waits for the other day's run of the same plugin (its project lock, locks.py), so the days
    fall into line one step apart: while day N transforms, day N+1 loads. A failed day does not
    stop the others: its later steps are skipped and its results say what failed and how to
    resume. Each step prints a line when it starts and when it ends. When the caller stops (a
    signal, an error), the days in flight finish or are killed and no new day starts.
    """
    steps = registry.NAMES
    width = min(days_in_flight(), len(days))

    def run(day: dt.date) -> list[StepResult]:
        try:
            return execute(settings, day, steps, wait_seconds, quiet=True, whole_day=True)
        except LockBusy as exc:  # another run has this day: report it, go on with the others
            return [StepResult(steps[0], day, False, 0.0, cause=str(exc))]

    with ThreadPoolExecutor(width) as pool:  # runs the days in order, `width` at a time
        futures = [pool.submit(run, day) for day in days]
        try:
            for future in futures:
                yield future.result()
        finally:  # stopped (a signal, an error, the caller gone): no day that has not started starts
            for future in futures:
                future.cancel()
