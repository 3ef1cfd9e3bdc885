"""One writer per day: session-level advisory locks in the warehouse server. A step locks what it
writes exclusively and what it reads shared (registry.py), and waits for its checkout's lock of
its plugin's local state. `elt:open-<step>` exits before the job goes on, so it starts the holder
(`python -m northwind_elt.locks`): a session that takes the locks, reports, and waits. The server
drops them with the session: when `elt:close-<step>` ends it, when the owning `meltano run` ends
(a pidfd), or when the holder is killed."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from .errors import LedgerError, LockBusy
from .ledger import connect
from .registry import SHARED, get
from .settings import Settings


def key(name: str) -> int:
    """The advisory lock key (a signed bigint) of a lock name."""
    return int.from_bytes(hashlib.sha256(f"northwind-elt {name}".encode()).digest()[:8], "big", signed=True)


def _holder_of(conn: psycopg.Connection[Any], name: str) -> str:
    """Who holds lock `name`, as a person reads it."""
    k = key(name)
    row = conn.execute(
        "select r.step, r.day, r.host, r.owner_pid, r.started_at from pg_locks l"
        " join ops.runs r on r.holder_pid = l.pid and r.outcome = 'running'"
        " where l.locktype = 'advisory' and l.objsubid = 1 and l.classid = %s::bigint::oid and l.objid = %s::bigint::oid"
        " and l.granted order by r.started_at desc limit 1",
        ((k >> 32) & 0xFFFFFFFF, k & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return "another run (a `make pipeline` or backfill of the day?)"
    step, day, host, pid, started = row
    return f"{step} for {day} (meltano run pid {pid} on {host}, since {started:%H:%M:%S})"


def _acquire(conn: psycopg.Connection[Any], name: str, mode: str, wait: float, what: str) -> None:
    """Take lock `name` for `what` in this session, waiting up to `wait` seconds (saying so once)."""
    function = "pg_try_advisory_lock_shared" if mode == SHARED else "pg_try_advisory_lock"
    deadline, said = time.monotonic() + wait, False
    while conn.execute(f"select {function}(%s)", (key(name),)).fetchone() != (True,):
        if time.monotonic() >= deadline:
            raise LockBusy(f"{what} is busy: {name} is held by {_holder_of(conn, name)}; wait for it to finish and rerun")
        if not said:
            print(f"waiting {what} waits: {name} is in use by {_holder_of(conn, name)}", flush=True)
            said = True
        time.sleep(0.2)


def take(conn: psycopg.Connection[Any], settings: Settings, step: str, day: dt.date) -> None:
    """Take every lock of `step` for `day` in this session, in one fixed order (no deadlock), or
    raise LockBusy. The checkout's lock of the plugin (named by host and folder) waits."""
    for resource, mode in sorted(get(step).locks().items()):
        _acquire(conn, f"{day} {resource}", mode, settings.lock_wait, f"{step} for {day}")
    if get(step).plugin_state:
        name = f"checkout {socket.gethostname()}:{settings.root} {get(step).plugin_state}"
        _acquire(conn, name, "exclusive", 3600, f"{step} for {day}")


@contextmanager
def whole_day(settings: Settings, day: dt.date) -> Iterator[None]:
    """Hold day D for a run of several steps (`make pipeline`, a backfill's day) in this process's
    own session: a second such run of D is refused (or waits), not interleaved step by step."""
    with connect(settings) as conn:
        _acquire(conn, f"{day} pipeline", "exclusive", settings.lock_wait, f"day {day}")
        yield


def start_holder(settings: Settings, step: str, day: dt.date, owner_pid: int) -> tuple[int, dt.datetime]:
    """Start the holder of `step`'s locks for `day`, living as long as process `owner_pid` does at
    most; returns its session (server pid, backend start) once it holds them."""
    process = subprocess.Popen(
        [sys.executable, "-m", "northwind_elt.locks", step, day.isoformat(), str(owner_pid)],
        start_new_session=True,  # a Ctrl-C of the job's process group does not reach it
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    with process.stdout:
        for line in process.stdout:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "waiting":
                print(f"  waiting: {rest}", flush=True)
            elif kind == "held":
                pid, start = rest.split(" ", 1)
                process.returncode = 0  # it runs on, detached, until the step closes or its job ends
                return int(pid), dt.datetime.fromisoformat(start)
            else:
                process.wait()
                raise (LockBusy if kind == "busy" else LedgerError)(rest)
    process.wait()
    raise LedgerError(f"the lock holder of {step} for {day} ended before it held the locks (exit {process.returncode})")


def release(settings: Settings, holder: tuple[int, dt.datetime]) -> None:
    """End the holder's session (that very session: pid and start): the server drops its locks
    before this returns."""
    with connect(settings) as conn:
        conn.execute("select pg_terminate_backend(pid, 10000) from pg_stat_activity where pid = %s and backend_start = %s", holder)


def main(argv: list[str] | None = None) -> int:
    """The holder: take the locks, say so on stdout, wait for the owner or the session to end."""
    from . import settings as settings_mod

    step, day, owner = argv or sys.argv[1:]
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        owner_fd = os.pidfd_open(int(owner))  # alive: its open task waits for this process (Linux 5.3+)
        settings = settings_mod.load()
        conn = connect(settings)
        take(conn, settings, step, dt.date.fromisoformat(day))
        pid, start = conn.execute("select pid, backend_start from pg_stat_activity where pid = pg_backend_pid()").fetchone()  # type: ignore[misc]
    except LockBusy as exc:
        print(f"busy {exc.message}", flush=True)
        return 1
    except Exception as exc:  # reported by the open task, in one line
        print(f"error {getattr(exc, 'message', None) or f'{type(exc).__name__}: {exc}'}", flush=True)
        return 1
    print(f"held {pid} {start.isoformat()}", flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the open task has read all it needs
    select.select([owner_fd, conn.fileno()], [], [])  # the job ended, or the session did
    return 0


if __name__ == "__main__":
    sys.exit(main())
