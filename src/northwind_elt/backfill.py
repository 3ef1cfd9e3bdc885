"""A backfill: the pipeline for every day of a range, days side by side."""

from __future__ import annotations

import datetime as dt
import os
import queue
import threading
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
    stop = threading.Event()
    results: dict[dt.date, list[StepResult]] = {}
    done = {day: threading.Event() for day in days}
    todo: queue.Queue[dt.date] = queue.Queue()
    for day in days:
        todo.put(day)

    def run(day: dt.date) -> list[StepResult]:
        try:
            return execute(settings, day, steps, wait_seconds, quiet=True, whole_day=True)
        except LockBusy as exc:  # another run has this day: report it, go on with the others
            return [StepResult(steps[0], day, False, 0.0, cause=str(exc))]

    def worker() -> None:
        while not stop.is_set():
            try:
                day = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[day] = run(day)
            finally:
                done[day].set()

    with ThreadPoolExecutor(width) as pool:
        workers = [pool.submit(worker) for _ in range(width)]
        try:
            for day in days:
                while not done[day].wait(1):
                    for w in workers:
                        exc = w.exception() if w.done() else None
                        if exc is not None:
                            raise exc from None
                if day not in results:  # its worker raised
                    for w in workers:
                        w.result()
                yield results[day]
        finally:
            stop.set()
