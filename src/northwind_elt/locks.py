"""One writer per day: advisory `flock` locks on what a step writes and reads.

Day locks: each day has one lock file per resource (the postgres landing, the csv landing, the
warehouse, the output). A run takes exclusive locks on what its steps write and shared locks on
what they read, for its whole duration, so the two extract tasks of a day can run in parallel
while two runs of one day never interleave: the second fails at once, naming the holder.

Project locks: some state is shared by all days. Meltano keeps one catalog file per extractor
(`.meltano/run/<tap>/tap.properties.json`) and dbt one `transform/target`, so two runs of the
same plugin for different days would overwrite each other's. A step holds the lock of its
plugin while it runs; runs for other days wait for it (and say so) instead of failing.

The kernel releases a `flock` when its holder dies, even by SIGKILL, so a killed run never leaves
a stale lock behind; child processes inherit the locks, which are held until the last of them
has ended.
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
    "transform": {"warehouse": EXCLUSIVE},
    "export": {"warehouse": SHARED, "output": EXCLUSIVE},
}

# the project-wide state each step's plugin rewrites, whatever the day
PROJECT_LOCKS: dict[str, str] = {
    "extract-postgres": "tap-postgres",
    "extract-csv": "tap-northwind-csv",
    "load": "tap-landing",
    "transform": "dbt",
}
PROJECT_WAIT_SECONDS = 3600


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
            path = folder / f"{resource}.lock"
            fds.append(stack.enter_context(_locked(path, mode, wait_seconds, steps, f"day {day} is busy: {resource} of {day}")))
        yield fds


@contextmanager
def hold_project(root: Path, step: str, day: dt.date) -> Iterator[list[int]]:
    """Hold the project-wide lock of `step`'s plugin, waiting for runs of other days."""
    resource = PROJECT_LOCKS.get(step)
    if resource is None:
        yield []
        return
    folder = root / ".meltano" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    what = f"{step} for {day} waited too long: the project's {resource} state"
    with _locked(folder / f"{resource}.lock", EXCLUSIVE, PROJECT_WAIT_SECONDS, [f"{step} {day}"], what, announce=True) as fd:
        yield [fd]


@contextmanager
def _locked(path: Path, mode: str, wait_seconds: float, steps: list[str], busy: str, announce: bool = False) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flag = (fcntl.LOCK_EX if mode == EXCLUSIVE else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, flag)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(f"{busy} is held by {_holder(path)}; wait for it to finish and rerun") from None
                if announce:
                    print(f"  waiting: {path.stem} is in use by {_holder(path)}", flush=True)
                    announce = False
                time.sleep(0.5)
        if mode == EXCLUSIVE:
            holder = {"pid": os.getpid(), "steps": steps, "since": dt.datetime.now().isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield fd
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another run (reading it)"
    return f"pid {info.get('pid')} running {', '.join(info.get('steps', []))} since {info.get('since')}"
