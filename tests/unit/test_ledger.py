"""The run ledger (ops.runs) on a real PostgreSQL: what it records, and a running run whose lock
session is gone reading as interrupted."""

from __future__ import annotations

import datetime as dt
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from northwind_elt import ledger as ledger_mod
from northwind_elt.errors import LedgerError
from northwind_elt.ledger import Ledger, connect
from northwind_elt.settings import Settings

DAY = dt.date(2024, 1, 1)


def session(settings: Settings) -> tuple[psycopg.Connection, tuple[int, dt.datetime]]:
    """A server session standing in for a lock holder: its pid and backend start."""
    conn = connect(settings)
    row = conn.execute("select pid, backend_start from pg_stat_activity where pid = pg_backend_pid()").fetchone()
    assert row is not None
    return conn, (row[0], row[1])


def test_a_run_is_recorded_and_closed(warehouse: Settings) -> None:
    ledger = Ledger(warehouse)
    holder, ident = session(warehouse)
    begun = ledger.begin(DAY, "load", os.getpid(), ident)
    assert ledger.latest(DAY)["load"] == begun
    ledger.update(begun.run_id, "landing", "abc")
    ledger.update(begun.run_id, "log_path", "/tmp/x.log")
    ledger.finish(begun.run_id, "succeeded", {"orders": 3, "customers": 2})
    run = ledger.latest(DAY)["load"]
    assert (run.outcome, run.rows, run.total_rows, run.landing, run.log_path) == (
        "succeeded",
        {"orders": 3, "customers": 2},
        5,
        "abc",
        "/tmp/x.log",
    )
    assert run.seconds is not None and run.seconds >= 0
    holder.close()
    assert ledger.latest(DAY)["load"].outcome == "succeeded"  # a closed run stays what it was


def test_a_running_run_whose_lock_session_ended_is_interrupted(warehouse: Settings) -> None:
    ledger = Ledger(warehouse)
    holder, ident = session(warehouse)
    ledger.begin(DAY, "extract-csv", os.getpid(), ident)
    assert ledger.latest(DAY)["extract-csv"].outcome == "running"
    holder.close()  # the holder died: the server ends its session
    run = ledger.latest(DAY)["extract-csv"]
    assert run.outcome == "interrupted" and run.error is not None and "killed?" in run.error


def test_latest_is_per_step_and_of_owner_per_meltano_process(warehouse: Settings) -> None:
    ledger = Ledger(warehouse)
    first = ledger.begin(DAY, "transform", 111, None).run_id
    ledger.finish(first, "failed", error="boom")
    second = ledger.begin(DAY, "transform", 222, None).run_id
    ledger.finish(second, "succeeded")
    ledger.begin(DAY + dt.timedelta(days=1), "transform", 111, None)
    assert ledger.latest(DAY)["transform"].run_id == second
    owned = ledger.of_owner(DAY, "transform", 111)
    assert owned is not None and owned.run_id == first and owned.error == "boom"
    assert ledger.of_owner(DAY, "load", 111) is None


def test_first_use_from_many_connections_at_once_creates_the_ledger_once(warehouse: Settings) -> None:
    import northwind_elt.ledger as ledger_mod

    errors: list[BaseException] = []

    def use() -> None:
        try:
            Ledger(warehouse).latest(DAY)
        except BaseException as exc:
            errors.append(exc)

    ledger_mod._READY.clear()
    threads = [threading.Thread(target=use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_damaged_ledger_is_one_line_and_kept_as_it_is(warehouse: Settings) -> None:
    ledger = Ledger(warehouse)
    ledger.finish(ledger.begin(DAY, "load", 1, None).run_id, "succeeded")
    with connect(warehouse) as conn:
        conn.execute("alter table ops.runs drop column outcome")  # damaged (by hand, a bad restore …)
    try:
        ledger.latest(DAY)
    except LedgerError as exc:
        assert "\n" not in exc.message and exc.message.startswith("the run ledger ops.runs on ")
        assert 'column "outcome" does not exist' in exc.message and "rename it aside" in exc.message
    else:
        raise AssertionError("a damaged ledger was read as if whole")
    with connect(warehouse) as conn:  # never emptied or replaced: the history is still there to inspect
        assert conn.execute("select count(*) from ops.runs where day = %s", (DAY,)).fetchone() == (1,)


def test_a_ledger_locked_by_another_session_fails_in_one_line_instead_of_waiting_for_ever(
    warehouse: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(warehouse)
    ledger.begin(DAY, "load", 1, None)
    monkeypatch.setattr(ledger_mod, "STATEMENT_TIMEOUT", "300ms")
    with ThreadPoolExecutor(1) as pool, connect(warehouse) as other, other.transaction():
        other.execute("lock table ops.runs in access exclusive mode")  # an admin's alter table, a vacuum full
        error = pool.submit(ledger.latest, DAY).exception(timeout=10)  # still waiting: TimeoutError, the test fails
    assert isinstance(error, LedgerError) and "did not answer in 300ms (canceling statement due to statement timeout)" in error.message
    assert ledger.latest(DAY)["load"].outcome == "interrupted"  # lock released: read as before


def test_an_interrupted_run_names_a_server_restart_when_the_server_started_after_it(warehouse: Settings) -> None:
    ledger = Ledger(warehouse)
    ledger.begin(DAY, "load", 1, (999999, dt.datetime.now(dt.timezone.utc)))  # a holder session that never was
    with connect(warehouse) as conn:  # as if the server had (re)started after the run began
        conn.execute("update ops.runs set started_at = pg_postmaster_start_time() - interval '1 minute'")
    assert "PostgreSQL stopped or restarted while it ran" in (ledger.latest(DAY)["load"].error or "")
    with connect(warehouse) as conn:  # a run that began after the server started: killed, not the server
        conn.execute("update ops.runs set started_at = pg_postmaster_start_time() + interval '1 minute'")
    assert "(killed?)" in (ledger.latest(DAY)["load"].error or "")
