"""One writer per day: session-level advisory locks in the warehouse server, exclusive on what a step
writes, shared on what it reads (registry.py), plus its plugin's state lock. `elt:open-<step>` forks
a holder whose session takes them and waits; the server drops them when that session ends."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, NoReturn

import psycopg

from .errors import LedgerError, LockBusy
from .ledger import connect
from .registry import EXCLUSIVE, SHARED, get
from .settings import Settings, job


def key(name: str) -> int:
    """The advisory lock key (a signed bigint) of a lock name."""
    return int.from_bytes(hashlib.sha256(f"northwind-elt {name}".encode()).digest()[:8], "big", signed=True)


def _holder_of(conn: psycopg.Connection[Any], name: str) -> str:
    """Who holds lock `name`, as a person reads it."""
    k = key(name)
    try:
        row = conn.execute(
            "select r.step, r.day, r.host, r.owner_pid, coalesce(r.started_at, a.backend_start), a.application_name"
            " from pg_locks l join pg_stat_activity a on a.pid = l.pid left join ops.runs r on r.holder_pid = l.pid"
            " and r.outcome = 'running' and r.holder_start = a.backend_start"
            " where l.locktype = 'advisory' and l.objsubid = 1 and l.classid = %s::bigint::oid and l.objid = %s::bigint::oid"
            " and l.granted order by r.started_at desc nulls last limit 1",
            ((k >> 32) & 0xFFFFFFFF, k & 0xFFFFFFFF),
        ).fetchone()
    except psycopg.errors.QueryCanceled:  # statement_timeout: another session locks ops.runs
        return "another run (ops.runs, which names it, did not answer: another session locks that table)"
    if row is None:
        return "another run, which just ended"
    step, day, host, pid, started, session = row
    if step is None:  # a session of no run: a pipeline's or backfill's hold on the day (whole_day)
        return f"{session} (since {started:%H:%M:%S})"
    return f"{step} for {day} (meltano run pid {pid} on {host}, since {started:%H:%M:%S})"


def _acquire(
    conn: psycopg.Connection[Any], name: str, mode: str, wait: float, what: str, say: Callable[[str], object] = print, owner: int = -1
) -> None:
    """Take lock `name` for `what` in this session, waiting up to `wait` seconds (saying so once),
    and not after the process of pidfd `owner` has ended."""
    function = "pg_try_advisory_lock_shared" if mode == SHARED else "pg_try_advisory_lock"
    deadline, said = time.monotonic() + wait, False
    while conn.execute(f"select {function}(%s)", (key(name),)).fetchone() != (True,):
        if time.monotonic() >= deadline:
            raise LockBusy(f"{what} is busy: {name} is held by {_holder_of(conn, name)}; wait for it to finish and rerun")
        if not said:
            say(f"  waiting: {what} waits: {name} is in use by {_holder_of(conn, name)}")
            said = True
        if owner >= 0 and select.select([owner], [], [], 0.2)[0]:
            raise LockBusy(f"{what} stopped while it waited for {name}")
        time.sleep(0.2 if owner < 0 else 0)


def take(
    conn: psycopg.Connection[Any], settings: Settings, step: str, day: dt.date, say: Callable[[str], object], owner: int
) -> psycopg.Connection[Any]:
    """Take every lock of `step` for `day` in this session, in one fixed order (no deadlock), or
    raise LockBusy. The plugin's state lock waits. A checkout's is named by host and folder and
    taken in the database .env names (advisory locks are per database), in a second session if the
    run writes to another; returns the session holding it."""
    for resource, mode in sorted(get(step).locks().items()):
        _acquire(conn, f"{day} {resource}", mode, settings.lock_wait, f"{step} for {day}", say, owner)
    state, home = get(step).plugin_state or "", conn
    if state.startswith("checkout "):
        state = f"checkout {socket.gethostname()}:{settings.root} {state.split()[1]}"
        if settings.checkout_database not in ("", settings.warehouse.database):
            try:
                home = connect(settings, replace(settings.warehouse, database=settings.checkout_database), idle_session_timeout="0")
            except LedgerError:  # not on this run's server: the lock stays where the run writes, said once
                say(
                    f"  note: {settings.checkout_database} is not reachable here: the checkout's lock is taken in {settings.warehouse.database}"
                )
    if state:
        _acquire(home, state, EXCLUSIVE, 3600, f"{step} for {day}", say, owner)
    return home


@contextmanager
def whole_day(settings: Settings, day: dt.date) -> Iterator[None]:
    """Hold day D for a run of several steps (`make pipeline`, a backfill's day) in this process's
    own session: a second such run of D is refused (or waits), not interleaved step by step."""
    with connect(settings, idle_session_timeout="0") as conn:  # idle while the steps run, by design
        name = f"pipeline of {day}, nwelt pid {os.getpid()} on {socket.gethostname()}"  # who holds the day, for _holder_of
        conn.execute("select set_config('application_name', %s, false)", (name,))
        _acquire(conn, f"{day} pipeline", EXCLUSIVE, settings.lock_wait, f"day {day}")
        yield


def start_holder(settings: Settings, step: str, day: dt.date, owner_pid: int) -> tuple[int, dt.datetime]:
    """Fork the holder of `step`'s locks for `day` (it lives as long as `owner_pid` at most); its
    server session (pid, backend start) once it holds them."""
    try:
        owner = os.pidfd_open(owner_pid)  # alive: this task's parent
    except OSError as exc:
        raise LedgerError(f"cannot watch the `meltano run` process ({exc.strerror}): the locks need Linux 5.3+ (pidfd_open)") from None
    group = owner_pid if job() and os.getpgid(owner_pid) == owner_pid else 0  # the group nwelt gave the job
    read, write = os.pipe()
    sys.stdout.flush()
    if os.fork() == 0:  # the holder: what it prints goes to the pipe
        os.close(read)
        _hold(settings, step, day, owner, group, write)
    os.close(write)
    os.close(owner)
    with os.fdopen(read) as replies:
        for line in replies:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "say":
                print(rest, flush=True)
            elif kind == "held":
                pid, start = rest.split(" ", 1)
                return int(pid), dt.datetime.fromisoformat(start)
            else:
                raise (LockBusy if kind == "busy" else LedgerError)(rest)
    raise LedgerError(f"the lock holder of {step} for {day} ended before it held the locks")


def release(settings: Settings, holder: tuple[int, dt.datetime]) -> None:
    """End the holder's session (that very one: pid and start); its locks are free when this returns,
    a checkout's lock in a second session (`take`) a moment later, as the holder exits."""
    try:
        with connect(settings) as conn:
            conn.execute("select pg_terminate_backend(pid, 10000) from pg_stat_activity where pid = %s and backend_start = %s", holder)
    except psycopg.Error:  # the server is gone, and the locks with it
        pass


def _hold(settings: Settings, step: str, day: dt.date, owner: int, group: int, out: int) -> NoReturn:
    """The holder: its own process session, the locks, a line on `out`, then wait for the end. A job
    that ends without its close (killed) loses its process `group` (its plugins) before its locks."""

    def say(line: str) -> None:
        os.write(out, f"{line}\n".encode())

    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # Meltano waits for its pipes to close
            os.dup2(devnull, fd)
        for sig in (signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        conn = connect(settings, idle_session_timeout="0")  # idle for the whole step, by design
        home = take(conn, settings, step, day, lambda line: say(f"say {line}"), owner)
        pid, start = conn.execute("select pid, backend_start from pg_stat_activity where pid = pg_backend_pid()").fetchone()  # type: ignore[misc]
        say(f"held {pid} {start.isoformat()}")
        os.close(out)  # the open task has read all it needs
        if owner in select.select([owner, conn.fileno(), home.fileno()], [], [])[0] and group:  # the job ended, or a session did
            with contextlib.suppress(ProcessLookupError):  # once sent, no process of the group runs again
                os.killpg(group, signal.SIGKILL)
    except LockBusy as exc:
        say(f"busy {exc.message}")
    except BaseException as exc:  # reported by the open task, in one line
        with contextlib.suppress(OSError):
            say(f"error {getattr(exc, 'message', None) or f'{type(exc).__name__}: {exc}'}")
    finally:
        os._exit(0)
