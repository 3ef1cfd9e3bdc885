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
import stat
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


# `make pipeline` runs the step-1 jobs other than the first extract beside the `meltano run` that
# chains that extract with the later steps (runner.execute). While they run, the runner holds this
# day's step-1 lock; when they end it writes its verdict into the lock file and releases it. The
# chain, and only the chain, carries the runner's identity in STEP1_ENV: its load's open task
# waits for the lock and starts only on a verdict of success written by that runner.
STEP1_LOCK = "step1-beside.lock"
STEP1_ENV = "NWELT_STEP1_RUNNER"


def hold_step1(stack: ExitStack, data_dir: Path, day: dt.date) -> int:
    """Hold the day's step-1 lock until `stack` closes; returns its descriptor (for settle_step1)."""
    folder = day_folder(data_dir, day)
    folder.mkdir(parents=True, exist_ok=True)
    fd = _take(folder / STEP1_LOCK, EXCLUSIVE, 0, ["step 1"], f"step 1 of {day}")
    assert fd is not None  # the runner holds the day's locks: no ancestor holds this one
    stack.callback(os.close, fd)
    return fd


def settle_step1(fd: int, failed: list[str]) -> None:
    """Write the verdict on the step-1 jobs beside the chain (the ones that did not succeed)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"owner": identity(os.getpid()), "settled": True, "failed": failed}).encode(), 0)


def wait_for_step1(data_dir: Path, day: dt.date) -> list[str] | None:
    """In a chain started beside step-1 jobs (STEP1_ENV names this process's runner, an
    ancestor): wait until the runner settles them, and return the ones that did not succeed
    (all of them if the verdict is missing or not the runner's). Elsewhere: None, at once."""
    runner = os.environ.get(STEP1_ENV)
    if not runner or runner not in ancestors():
        return None
    unknown = ["the step-1 jobs beside this run (their runner left no verdict)"]
    try:
        fd = os.open(day_folder(data_dir, day) / STEP1_LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return unknown
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return unknown
        print("waiting for the step-1 jobs beside this run", flush=True)
        fcntl.flock(fd, fcntl.LOCK_SH)  # released when the runner settles or ends, however it ends
        try:
            verdict = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
        except ValueError:
            return unknown
    finally:
        os.close(fd)
    if not isinstance(verdict, dict) or verdict.get("owner") != runner or verdict.get("settled") is not True:
        return unknown
    failed = verdict.get("failed")
    return [str(step) for step in failed] if isinstance(failed, list) else unknown


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
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
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
