"""A backfill: the pipeline for every day of a range, days side by side."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from . import registry
from .console import StepResult, error_line
from .errors import LockBusy
from .runner import execute
from .settings import Settings


def execute_days(settings: Settings, days: list[dt.date]) -> Iterator[list[StepResult]]:
    """Run the whole pipeline for each of `days`, yielding each day's results in day order.

    settings.backfill_days days run side by side, each as `make pipeline` runs it; a step waits
    for the other day's run of the same plugin (its checkout lock, locks.py), so the days fall
    into line one step apart. A failed day does not stop the others: its results say what
    failed and how to resume. When the caller stops (a signal, an error), the days in flight
    finish or are killed and no new day starts.
    """

    def run(day: dt.date) -> list[StepResult]:
        try:
            return execute(settings, day, registry.NAMES, True, True)
        except LockBusy as exc:  # another run has this day: report it, go on with the others
            return [StepResult(registry.NAMES[0], day, False, 0.0, cause=error_line(exc))]

    with ThreadPoolExecutor(min(settings.backfill_days, len(days))) as pool:
        futures = [pool.submit(run, day) for day in days]
        try:
            for future in futures:
                yield future.result()
        finally:  # stopped: no day that has not started starts
            for future in futures:
                future.cancel()
