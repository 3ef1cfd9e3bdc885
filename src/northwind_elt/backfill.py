"""A backfill: the pipeline for every day of a range, run like an assembly line."""

from __future__ import annotations

import datetime as dt
import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from . import registry
from .console import StepResult
from .errors import LockBusy
from .runner import execute
from .settings import Settings


def execute_days(settings: Settings, days: list[dt.date], wait_seconds: float = 0) -> Iterator[list[StepResult]]:
    """Run the whole pipeline for each of `days`, yielding each day's results in day order.

    The days go through the registry's stages (steps grouped by depth) like an assembly line: while
    day N exports, day N+1 transforms, day N+2 loads and day N+3 is extracted. Stages of one day
    stay in order (each under the day's locks); two stages never use the same plugin, so they never
    wait for each other's project locks. With start-up bound steps this keeps both cores busy; every
    stage but the slowest (transform) runs niced, so the CPU goes first where the line waits. A
    failed day does not stop the others: its later stages are skipped and its results say what
    failed and how to resume. Each step prints a line when it starts and when it ends.
    """
    stages = [([s.name for s in steps], max(s.backfill_nice for s in steps)) for steps in registry.stages()]
    results: dict[dt.date, list[StepResult]] = {day: [] for day in days}
    queues: list[queue.Queue[dt.date]] = [queue.Queue() for _ in range(len(stages) + 1)]
    for day in days:
        queues[0].put(day)

    def run(day: dt.date, steps: list[str], nice: int) -> list[StepResult]:
        try:
            return execute(settings, day, steps, wait_seconds, quiet=True, nice=nice, announce=True)
        except LockBusy as exc:  # another run has this day: report it, go on with the others
            return [StepResult(steps[0], day, False, 0.0, cause=str(exc))]

    def stage(index: int) -> None:
        for _ in days:
            day = queues[index].get()
            if all(r.ok for r in results[day]):
                results[day] += run(day, *stages[index])
            queues[index + 1].put(day)

    with ThreadPoolExecutor(len(stages)) as pool:
        workers = [pool.submit(stage, index) for index in range(len(stages))]
        for _ in days:
            while True:
                try:
                    day = queues[-1].get(timeout=1)
                    break
                except queue.Empty:
                    for worker in workers:
                        exc = worker.exception() if worker.done() else None
                        if exc is not None:
                            raise exc from None
            yield results[day]
