"""One writer per day: advisory `flock` locks on what a step writes and reads.

Each day has one lock file per resource (the postgres landing, the csv landing, the warehouse,
the output); dbt has one for all days, since every build rewrites the same staging views. A step takes exclusive locks on what it writes and shared locks on what it reads,
so the two extract tasks of a day can run in parallel while two runs of the same step, or a
load and an extract of the same day, never interleave. The kernel releases a `flock` when its
holder dies, even by SIGKILL, so a killed run never leaves a stale lock behind; child
processes inherit the lock so it is held until the last of them has ended.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

SHARED, EXCLUSIVE = "shared", "exclusive"

# what each step writes (exclusive) and reads (shared)
STEP_LOCKS: dict[str, dict[str, str]] = {
    "extract-postgres": {"postgres": EXCLUSIVE},
    "extract-csv": {"csv": EXCLUSIVE},
    "load": {"postgres": SHARED, "csv": SHARED, "warehouse": EXCLUSIVE},
    "transform": {"warehouse": EXCLUSIVE, "dbt": EXCLUSIVE},
    "export": {"warehouse": SHARED, "output": EXCLUSIVE},
}


# resources shared by all days: dbt rebuilds the same staging views and target/ for any day
GLOBAL = {"dbt"}


class LockBusy(Exception):
    """Another run holds the day."""


def locks_for(steps: list[str]) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for step in steps:
        for resource, mode in STEP_LOCKS[step].items():
            if wanted.get(resource) != EXCLUSIVE:
                wanted[resource] = mode
    return wanted


@contextmanager
def hold(data_dir: Path, day: dt.date, steps: list[str], wait_seconds: float = 0) -> Iterator[list[int]]:
    """Hold the locks of `steps` for `day`; yields the file descriptors (to pass to children)."""
    folder = data_dir / ".locks" / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        fds: list[int] = []
        for resource, mode in sorted(locks_for(steps).items()):  # fixed order: no deadlock
            path = (folder.parent if resource in GLOBAL else folder) / f"{resource}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            stack.callback(os.close, fd)
            _acquire(fd, path, mode, day, wait_seconds)
            if mode == EXCLUSIVE:
                holder = {"pid": os.getpid(), "steps": steps, "since": dt.datetime.now().isoformat(timespec="seconds")}
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(holder).encode(), 0)
            fds.append(fd)
        yield fds


def _acquire(fd: int, path: Path, mode: str, day: dt.date, wait_seconds: float) -> None:
    flag = (fcntl.LOCK_EX if mode == EXCLUSIVE else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(fd, flag)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                what = f"the {path.stem} project (all days)" if path.parent.name == ".locks" else f"{path.stem} of {day}"
                raise LockBusy(
                    f"day {day} is busy: {what} is held by {_holder(path)}; wait for it to finish and rerun"
                ) from None
            time.sleep(0.5)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another run (reading it)"
    return f"pid {info.get('pid')} running {', '.join(info.get('steps', []))} since {info.get('since')}"
