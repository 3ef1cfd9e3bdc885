"""One writer per day: advisory `flock` locks on what a step writes and reads.

Day locks: each day has one lock file per resource (the postgres landing, the csv landing, the
warehouse, the output). A step takes exclusive locks on what it writes and shared locks on what it
reads (registry.Step.writes/reads), so the two extract tasks of a day run in parallel while two
runs of one day never interleave: the second fails at once, naming the holder.

Who holds them: `elt:open-<step>`, the first task of every step's Meltano job, takes the step's
locks and hands them to the run's guard (guard.py), which holds them until the job ends. A
`make pipeline` (nwelt) holds the locks of all its steps for the whole day first, so no other run
slips in between its steps; a lock held by a process that is an ancestor of the open task (the
nwelt that started this `meltano run`) covers it.

Project locks: some state is shared by all days. Meltano keeps one catalog file per extractor
(`.meltano/run/<tap>/tap.properties.json`) and dbt one `transform/target`, so two runs of the
same plugin for different days would overwrite each other's. A step holds the lock of its
plugin while it runs; runs for other days wait for it (and say so) instead of failing.

The kernel releases a `flock` when its holder dies, even by SIGKILL, so a killed run never leaves
a stale lock behind.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from .errors import LockBusy
from .ledger import alive, identity
from .registry import EXCLUSIVE, get, locks_for

PROJECT_WAIT_SECONDS = 3600


def day_folder(data_dir: Path, day: dt.date) -> Path:
    return data_dir / ".locks" / day.isoformat()


@contextmanager
def hold(data_dir: Path, day: dt.date, steps: list[str], wait_seconds: float = 0) -> Iterator[list[int]]:
    """Hold the day locks of `steps` for `day` in this process; yields the file descriptors."""
    with ExitStack() as stack:
        yield acquire_day(stack, data_dir, day, steps, wait_seconds)


def acquire_day(
    stack: ExitStack, data_dir: Path, day: dt.date, steps: list[str], wait_seconds: float = 0, owner: int | None = None
) -> list[int]:
    """Take the day locks of `steps` (closed with `stack`); a lock an ancestor holds is skipped.

    `owner`: the process named as the holder (default: this one; the open task names the
    `meltano run` process, whose life the lock follows)."""
    folder = day_folder(data_dir, day)
    folder.mkdir(parents=True, exist_ok=True)
    fds = []
    for resource, mode in sorted(locks_for(steps).items()):  # fixed order: no deadlock
        fd = _take(folder / f"{resource}.lock", mode, wait_seconds, steps, f"day {day} is busy: {resource} of {day}", owner=owner)
        if fd is not None:
            stack.callback(os.close, fd)
            fds.append(fd)
    return fds


# held by a runner (`make pipeline`) while step-1 jobs run beside the `meltano run` that chains
# the first extract with the later steps (runner.execute): that chain's next open task waits for it
STEP1_LOCK = "step1-beside.lock"


def hold_step1(stack: ExitStack, data_dir: Path, day: dt.date) -> None:
    """Hold the day's step-1 lock in this process until `stack` closes."""
    folder = day_folder(data_dir, day)
    folder.mkdir(parents=True, exist_ok=True)
    fd = _take(folder / STEP1_LOCK, EXCLUSIVE, 0, ["step 1"], f"step 1 of {day}")
    if fd is not None:
        stack.callback(os.close, fd)


def wait_for_step1(data_dir: Path, day: dt.date) -> bool:
    """Wait while an ancestor of this process (the runner of this job) runs step-1 jobs beside
    it; True if there was such a wait. A lock anyone else holds is not waited for."""
    path = day_folder(data_dir, day) / STEP1_LOCK
    if not path.exists() or not _held_by_ancestor(path):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # the kernel frees it when the runner ends, however it ends
    finally:
        os.close(fd)
    return True


def acquire_project(stack: ExitStack, root: Path, step: str, day: dt.date, owner: int | None = None) -> list[int]:
    """Take the project-wide lock of `step`'s plugin, waiting (and saying so) for other days' runs."""
    resource = get(step).plugin_state
    if resource is None:
        return []
    folder = root / ".meltano" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    what = f"{step} for {day} waited too long: the project's {resource} state"
    fd = _take(folder / f"{resource}.lock", EXCLUSIVE, PROJECT_WAIT_SECONDS, [f"{step} {day}"], what, True, owner)
    if fd is None:
        return []
    stack.callback(os.close, fd)
    return [fd]


def _take(
    path: Path, mode: str, wait_seconds: float, steps: list[str], busy: str, announce: bool = False, owner: int | None = None
) -> int | None:
    """The locked file descriptor, or None when an ancestor of this process holds the lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        flag = (fcntl.LOCK_EX if mode == EXCLUSIVE else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, flag)
                break
            except BlockingIOError:
                if _held_by_ancestor(path):
                    os.close(fd)
                    return None
                if time.monotonic() >= deadline:
                    raise LockBusy(f"{busy} is held by {_holder(path)}; wait for it to finish and rerun") from None
                if announce:
                    print(f"  waiting: {path.stem} is in use by {_holder(path)}", flush=True)
                    announce = False
                time.sleep(0.1)
        if mode == EXCLUSIVE:
            pid = owner or os.getpid()
            holder = {
                "pid": pid,
                "owner": identity(pid),
                "steps": steps,
                "since": dt.datetime.now().isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        return fd
    except BaseException:
        with suppress(OSError):
            os.close(fd)
        raise


def _read_holder(path: Path) -> dict[str, object]:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def ancestors() -> set[str]:
    """identity() of every ancestor process of this one."""
    found = set()
    pid = os.getppid()
    while pid > 1:
        found.add(identity(pid))
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            break
        pid = int(stat[1])
    return found


def _held_by_ancestor(path: Path) -> bool:
    owner = _read_holder(path).get("owner")
    return isinstance(owner, str) and owner in ancestors()


def _holder(path: Path) -> str:
    info = _read_holder(path)
    owner = info.get("owner")
    if not info or (isinstance(owner, str) and not alive(owner)):  # the writer left; a reader holds it now
        return "another run that reads it (make status shows which)"
    steps = info.get("steps")
    return f"pid {info.get('pid')} running {', '.join(steps) if isinstance(steps, list) else steps} since {info.get('since')}"
