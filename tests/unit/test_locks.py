"""The day locks on a real PostgreSQL: the holder the open task forks, who may run beside whom, and
a lock that ends with its holder or its owner, whatever killed it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from northwind_elt import ledger as ledger_mod
from northwind_elt import locks
from northwind_elt.database import EmbeddedPostgres
from northwind_elt.errors import LedgerError, LockBusy
from northwind_elt.ledger import Ledger, connect
from northwind_elt.settings import Settings

DAY = dt.date(2024, 1, 1)


@pytest.fixture
def env(warehouse: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of the throwaway server, also in the environment (what the steps' children read)."""
    wh = warehouse.warehouse
    for name, value in {"HOST": wh.host, "PORT": str(wh.port), "DATABASE": wh.database, "USER": wh.user, "PASSWORD": wh.password}.items():
        monkeypatch.setenv(f"WAREHOUSE_PG_{name}", value)
    monkeypatch.setenv("NWELT_DB", "embedded")
    monkeypatch.setenv("NWELT_LOCK_WAIT_SECONDS", "0")
    return warehouse


@pytest.fixture
def owner() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for the `meltano run` that owns a job."""
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def held(settings: Settings, holder_pid: int) -> bool:
    with connect(settings) as conn:
        return conn.execute("select exists(select 1 from pg_locks where pid = %s and locktype = 'advisory')", (holder_pid,)).fetchone() == (
            True,
        )


def until(condition, seconds: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_one_run_of_a_days_step_at_a_time_naming_the_holder(env: Settings, owner: subprocess.Popen[bytes]) -> None:
    holder = locks.start_holder(env, "extract-postgres", DAY, owner.pid)
    Ledger(env).begin(DAY, "extract-postgres", owner.pid, holder)
    with pytest.raises(
        LockBusy,
        match=rf"extract-postgres for {DAY} is busy: {DAY} postgres is held by extract-postgres for {DAY} \(meltano run pid {owner.pid}",
    ):
        locks.start_holder(env, "extract-postgres", DAY, owner.pid)
    with pytest.raises(LockBusy, match="postgres is held"):
        locks.start_holder(env, "load", DAY, owner.pid)  # reads what the extract writes
    export = locks.start_holder(env, "export", DAY, owner.pid)[0]
    other_day = locks.start_holder(env, "export", DAY + dt.timedelta(days=1), owner.pid)[0]
    assert held(env, export) and held(env, other_day)  # another day's run of a step is free


def test_a_day_held_by_a_pipeline_is_refused_naming_it(env: Settings) -> None:
    busy = rf"day {DAY} is busy: {DAY} pipeline is held by pipeline of {DAY}, nwelt pid {os.getpid()} on "
    with locks.whole_day(env, DAY), pytest.raises(LockBusy, match=busy), locks.whole_day(env, DAY):
        pass
    with locks.whole_day(env, DAY):  # free again
        pass


def test_a_busy_day_is_refused_in_one_line_while_another_session_locks_the_ledger(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_mod, "STATEMENT_TIMEOUT", "300ms")
    with locks.whole_day(env, DAY), connect(env) as other, other.transaction():
        other.execute("lock table ops.runs in access exclusive mode")  # an admin's alter table, a vacuum full
        busy = f"{DAY} pipeline is held by another run \\(ops.runs, which names it, did not answer"
        with pytest.raises(LockBusy, match=busy), locks.whole_day(env, DAY):
            pass


def test_a_server_that_ends_idle_sessions_ends_no_hold(env: Settings, owner: subprocess.Popen[bytes]) -> None:
    with connect(env) as conn:  # a DBA's setting on an external server; new sessions get it
        conn.execute("alter database warehouse set idle_session_timeout = '300ms'")
    holder = locks.start_holder(env, "export", DAY, owner.pid)[0]
    with locks.whole_day(env, DAY):
        time.sleep(1)
        with pytest.raises(LockBusy), locks.whole_day(env, DAY):
            pass
    assert held(env, holder)


def test_the_two_extracts_run_side_by_side_and_release_frees_the_day(env: Settings, owner: subprocess.Popen[bytes]) -> None:
    postgres = locks.start_holder(env, "extract-postgres", DAY, owner.pid)
    csv = locks.start_holder(env, "extract-csv", DAY, owner.pid)
    locks.release(env, (postgres[0], csv[1]))  # not that session: nothing happens
    assert held(env, postgres[0])
    locks.release(env, postgres)
    locks.release(env, csv)
    assert not held(env, postgres[0]) and not held(env, csv[0])  # free when release returns
    load = locks.start_holder(env, "load", DAY, owner.pid)[0]
    assert held(env, load)


def test_a_busy_day_is_waited_for_when_asked(env: Settings, owner: subprocess.Popen[bytes]) -> None:
    first = locks.start_holder(env, "export", DAY, owner.pid)
    env = dataclasses.replace(env, lock_wait=30)  # NWELT_LOCK_WAIT_SECONDS, nwelt --wait
    started = time.monotonic()
    threading.Timer(1.0, locks.release, (env, first)).start()
    second = locks.start_holder(env, "export", DAY, owner.pid)[0]
    assert held(env, second) and time.monotonic() - started >= 0.9


@pytest.mark.parametrize("killed", ["owner", "holder"])
def test_the_lock_ends_with_its_owner_or_its_holder(env: Settings, killed: str) -> None:
    def children() -> set[int]:
        return {int(p) for p in subprocess.run(["pgrep", "-P", str(os.getpid())], capture_output=True, text=True).stdout.split()}

    owner = subprocess.Popen(["sleep", "600"])
    before = children()
    pid, _ = locks.start_holder(env, "transform", DAY, owner.pid)
    (holder_os_pid,) = children() - before  # forked from this process
    os.kill(owner.pid if killed == "owner" else holder_os_pid, signal.SIGKILL)
    owner.wait() if killed == "owner" else None
    assert until(lambda: not held(env, pid)), "the server kept the lock of a dead run"
    again = subprocess.Popen(["sleep", "600"])
    try:
        assert held(env, locks.start_holder(env, "transform", DAY, again.pid)[0])
    finally:
        again.kill()
        owner.kill()


def test_lock_keys_are_stable_and_distinct() -> None:
    assert locks.key("2024-01-01 postgres") == locks.key("2024-01-01 postgres")
    assert len({locks.key(f"{d} {r}") for d in ("2024-01-01", "2024-01-02") for r in ("postgres", "csv", "warehouse", "output")}) == 8


def test_a_holder_waiting_for_its_plugin_lets_go_when_its_job_ends(env: Settings, owner: subprocess.Popen[bytes]) -> None:
    """Day 2 waits behind day 1 for the checkout's tap; its job is stopped meanwhile (Ctrl-C, a
    timeout): the waiting holder ends too and frees day 2's locks."""
    locks.start_holder(env, "extract-postgres", DAY, owner.pid)  # holds the checkout's tap-postgres
    second = subprocess.Popen(["sleep", "600"])
    refused: list[Exception] = []

    def day_two() -> None:
        try:
            locks.start_holder(env, "extract-postgres", DAY + dt.timedelta(days=1), second.pid)
        except (LockBusy, LedgerError) as exc:
            refused.append(exc)

    waiting = threading.Thread(target=day_two)
    waiting.start()
    day2 = locks.key(f"{DAY + dt.timedelta(days=1)} postgres") & 0xFFFFFFFF
    with connect(env) as conn:

        def holders() -> tuple[int, ...] | None:
            return conn.execute("select count(*) from pg_locks where locktype = 'advisory' and objid = %s::bigint::oid", (day2,)).fetchone()

        assert until(lambda: holders() == (1,))  # day 2's locks taken; its plugin's lock awaited
        second.kill()
        second.wait()
        assert until(lambda: holders() == (0,))
    waiting.join(10)
    assert len(refused) == 1 and not waiting.is_alive()


def test_runs_of_one_checkout_into_two_databases_take_turns_on_its_plugin(env: Settings, owner: subprocess.Popen[bytes]) -> None:
    """`make bench` (its own warehouse database) beside `make pipeline`, from one checkout: the
    checkout's tap-postgres lock is taken on the checkout's home warehouse, so the second waits
    (advisory locks are per database: each in its own would not see the other's)."""
    with EmbeddedPostgres(env).admin() as admin:
        admin.execute("drop database if exists warehouse_other with (force)")
        admin.execute("create database warehouse_other owner warehouse_loader")
    home = dataclasses.replace(env, checkout_database=env.warehouse.database)
    other = dataclasses.replace(home, warehouse=dataclasses.replace(env.warehouse, database="warehouse_other"))
    first = locks.start_holder(home, "extract-postgres", DAY, owner.pid)
    second: list[tuple[int, dt.datetime]] = []
    waiting = threading.Thread(target=lambda: second.append(locks.start_holder(other, "extract-postgres", DAY, owner.pid)))
    waiting.start()
    time.sleep(2)
    assert not second, "a run into another database took the checkout's tap while the first held it"
    locks.release(home, first)
    waiting.join(10)
    assert second and held(other, second[0][0])
