"""The guard of one step run: a step's processes live and die together.

`elt:open-<step>` (the first task of every step's Meltano job) starts a guard, detached in its own
session, and hands it the step's locks. While the `meltano run` process that owns the run lives,
the guard notes that process's descendants (tap, target, dbt) a few times a second. Then:

- `elt:close-<step>` recorded the outcome and stops the guard (SIGTERM): it exits, which releases
  the locks for the next step of the same `meltano run`;
- the `meltano run` process ended without that (a plugin failed; Meltano, nwelt, make or Airflow
  was stopped or killed): the guard kills every descendant it saw that still runs, so no orphaned
  target can finish a write the ledger already calls failed or interrupted, undoes what the step
  leaves behind (tasks.abandon: a load's schema), and exits, releasing the locks.

The glue tasks themselves die with their parent (PR_SET_PDEATHSIG), so a commit that had not
finished is rolled back by the server.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from .ledger import alive, identity

POLL_SECONDS = 0.25


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Get SIGKILL when the parent process dies (Linux PR_SET_PDEATHSIG), at once if it already has.

    The glue tasks call it (a commit in flight dies with its `meltano run`), and nwelt runs it in
    each Meltano job before exec (the job dies with nwelt)."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the call
        os.kill(os.getpid(), signal.SIGKILL)


def guard_file(data_dir: Path, day: dt.date, step: str) -> Path:
    return data_dir / ".locks" / day.isoformat() / f"{step}.guard"


def start(data_dir: Path, step: str, day: dt.date, owner: int, fds: list[int]) -> None:
    """Start the guard of `step` for `day`, owned by process `owner`, holding `fds`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "northwind_elt.guard", "--step", step, "--date", day.isoformat(), "--owner", identity(owner)],
        pass_fds=tuple(fds),
        start_new_session=True,  # a Ctrl-C or a kill of the job's process group does not reach it
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NWELT_GUARD_DATA_DIR": str(data_dir)},
    )
    path = guard_file(data_dir, day, step)
    path.write_text(identity(process.pid))
    process.returncode = 0  # detached on purpose: it outlives this task (no "still running" warning)


def running(data_dir: Path, day: dt.date, step: str) -> bool:
    """Is the guard of `step` for `day` (holding its locks) still running?"""
    try:
        return alive(guard_file(data_dir, day, step).read_text().strip())
    except OSError:
        return False


def stop(data_dir: Path, day: dt.date, step: str, timeout: float = 10) -> None:
    """Stop the guard of `step` for `day` (the step recorded its outcome) and wait for it."""
    path = guard_file(data_dir, day, step)
    try:
        who = path.read_text().strip()
    except OSError:
        return
    pid = int(who.split(":", 1)[0])
    if alive(who):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(who) and time.monotonic() < deadline:
            time.sleep(0.02)
    path.unlink(missing_ok=True)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[str]:
    tree, found, todo = _children(), set(), [pid]
    me = os.getpid()
    while todo:
        for child in tree.get(todo.pop(), []):
            if child != me:
                found.add(identity(child))
                todo.append(child)
    return found


def watch(owner: str) -> set[str]:
    """Wait until process `owner` ends; return its descendants (last seen) that still run."""
    pid = int(owner.split(":", 1)[0])
    seen: set[str] = set()
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = None
    while alive(owner):
        seen |= _descendants(pid)
        seen = {p for p in seen if alive(p)}
        if pidfd is not None:
            select.select([pidfd], [], [], POLL_SECONDS)
        else:
            time.sleep(POLL_SECONDS)
    return {p for p in seen if alive(p)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m northwind_elt.guard")
    parser.add_argument("--step", required=True)
    parser.add_argument("--date", required=True)
    parser.add_argument("--owner", required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # the close task: success recorded
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    survivors = watch(args.owner)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # from here on, finish the clean-up
    for process in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(process.split(":", 1)[0]), signal.SIGKILL)
    day = dt.date.fromisoformat(args.date)
    data_dir = Path(os.environ["NWELT_GUARD_DATA_DIR"])
    from . import settings as settings_mod
    from . import tasks

    with contextlib.suppress(Exception):  # best effort: the next run of the step cleans up too
        tasks.abandon(settings_mod.load(), args.step, day)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the locks are free before the guard file goes
    guard_file(data_dir, day, args.step).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
