"""One writer per day: session-level advisory locks in the warehouse server.

A step takes, for its day, an exclusive lock on what it writes and a shared lock on what it
reads (registry.Step.writes/reads): the two extracts of a day run side by side, while two runs
of one day's step never interleave (the second fails at once, or waits `NWELT_LOCK_WAIT_SECONDS`).
A step whose plugin keeps state in the checkout whatever the day (Meltano's catalog file,
target-jsonl's staging folder, dbt's target/) also takes that checkout's lock of the plugin, and
waits for it, so runs of other days fall in line behind it.

`elt:open-<step>` cannot hold a session for the rest of its Meltano job (the next task starts
when it exits), so it starts the holder, `python -m northwind_elt.locks`: a process that opens a
session, takes the locks, reports, and then only waits. The holder ends, and the server drops
its locks with its session, when `elt:close-<step>` terminates that session, when the
`meltano run` owning the job ends without closing (a plugin failed, a kill: its pidfd), or when
the holder itself is killed. No lock outlives its holder, whatever host it ran on.
"""

from __future__ import annotations

import argparse
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


def wanted(settings: Settings, step: str, day: dt.date) -> list[tuple[str, str, bool]]:
    """(name, mode, waits) of every lock `step` takes for `day`, in one fixed order (no deadlock)."""
    names = [(f"{day} {resource}", mode, False) for resource, mode in sorted(get(step).locks().items())]
    state = get(step).plugin_state
    if state:  # local state of this checkout: named by host and folder
        names.append((f"checkout {socket.gethostname()}:{settings.root} {state}", "exclusive", True))
    return names


def _holder_of(conn: psycopg.Connection[Any], name: str) -> str:
    """Who holds lock `name`, as a person wants to read it."""
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


def _acquire(conn: psycopg.Connection[Any], name: str, mode: str, wait: float, busy: str) -> None:
    """Take lock `name` in this session, waiting up to `wait` seconds (and saying so once)."""
    function = "pg_try_advisory_lock_shared" if mode == SHARED else "pg_try_advisory_lock"
    deadline = time.monotonic() + wait
    said = False
    while conn.execute(f"select {function}(%s)", (key(name),)).fetchone() != (True,):
        if time.monotonic() >= deadline:
            raise LockBusy(f"{busy} is held by {_holder_of(conn, name)}; wait for it to finish and rerun")
        if not said:
            print(f"waiting {busy} is in use by {_holder_of(conn, name)}", flush=True)
            said = True
        time.sleep(0.2)


def take(conn: psycopg.Connection[Any], settings: Settings, step: str, day: dt.date) -> None:
    """Take every lock of `step` for `day` in this session, or raise LockBusy."""
    for name, mode, waits in wanted(settings, step, day):
        _acquire(conn, name, mode, 3600 if waits else settings.lock_wait, f"{step} for {day} is busy: {name}")


@contextmanager
def whole_day(settings: Settings, day: dt.date) -> Iterator[None]:
    """Hold day D for a run of several steps (`make pipeline`, a backfill's day) in this process's
    own session: a second such run of D is refused (or waits), not interleaved step by step."""
    with connect(settings) as conn:
        _acquire(conn, f"{day} whole day", "exclusive", settings.lock_wait, f"day {day} is busy: the day")
        yield


def start_holder(settings: Settings, step: str, day: dt.date, owner_pid: int) -> tuple[int, dt.datetime]:
    """Start the holder of `step`'s locks for `day`, living as long as process `owner_pid` does at
    most; returns its session (server pid, backend start) once it holds them."""
    owner = os.pidfd_open(owner_pid)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "northwind_elt.locks", step, day.isoformat(), str(owner)],
            pass_fds=(owner,),
            start_new_session=True,  # a Ctrl-C of the job's process group does not reach it
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    finally:
        os.close(owner)
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


def release(settings: Settings, holder_pid: int) -> None:
    """End the holder's session: the server drops its locks before this returns."""
    with connect(settings) as conn:
        conn.execute("select pg_terminate_backend(%s, 10000)", (holder_pid,))


def main(argv: list[str] | None = None) -> int:
    """The holder: take the locks, say so on stdout, wait for the owner or the session to end."""
    from . import settings as settings_mod

    parser = argparse.ArgumentParser(prog="python -m northwind_elt.locks")
    parser.add_argument("step")
    parser.add_argument("day", type=dt.date.fromisoformat)
    parser.add_argument("owner_fd", type=int)
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        settings = settings_mod.load()
        conn = connect(settings)
        take(conn, settings, args.step, args.day)
        pid, start = conn.execute("select pid, backend_start from pg_stat_activity where pid = pg_backend_pid()").fetchone()  # type: ignore[misc]
    except LockBusy as exc:
        print(f"busy {exc.message}", flush=True)
        return 1
    except Exception as exc:  # reported by the open task, in one line
        print(f"error {getattr(exc, 'message', None) or f'{type(exc).__name__}: {exc}'}", flush=True)
        return 1
    print(f"held {pid} {start.isoformat()}", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the open task has read all it needs and exits
    select.select([args.owner_fd, conn.fileno()], [], [])  # the job ended, or the session did
    return 0


if __name__ == "__main__":
    sys.exit(main())
