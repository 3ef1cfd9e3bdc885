"""The run ledger: one row per step run in `ops.runs` on the warehouse server, one history for every
host. A `running` row whose lock session is gone reads as `interrupted`. It serves status, resume
and one check of the load gate (`produced`); the other gates read the data itself."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .errors import LedgerError
from .settings import PgConn, Settings

SCHEMA = """
create schema if not exists ops;
create table if not exists ops.runs (
    run_id text primary key, day date not null, step text not null,
    started_at timestamptz not null default clock_timestamp(), ended_at timestamptz,
    outcome text not null check (outcome in ('running', 'succeeded', 'failed')),
    rows jsonb not null default '{}', error text, log_path text,
    host text not null, owner_pid integer not null, -- the `meltano run` (on host) whose job it is
    job text,                                       -- the token nwelt gave the job (NWELT_JOB)
    holder_pid integer, holder_start timestamptz,   -- the session holding the run's locks
    landing text                                    -- extract: its task marker's digest; later steps: the landed day's
);
create index if not exists runs_day_step on ops.runs (day, step, started_at);
"""
_COLUMNS = "run_id, day, step, started_at, ended_at, outcome, rows, error, log_path, holder_pid, holder_start, landing"
# a running row is interrupted once the session holding its locks is gone
_OUTCOME = (
    "case when outcome = 'running' and not exists (select 1 from pg_stat_activity a"
    " where a.pid = holder_pid and a.backend_start = holder_start) then 'interrupted' else outcome end"
)


@dataclass(frozen=True)
class Run:
    run_id: str
    day: dt.date
    step: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    outcome: str  # running / succeeded / failed / interrupted (derived)
    rows: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    log_path: str | None = None
    holder: tuple[int, dt.datetime] | None = None  # the session holding its locks (pid, start)
    landing: str | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def seconds(self) -> float | None:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else None


_READY: set[str] = set()  # warehouses whose ops schema this process has seen
STATEMENT_TIMEOUT = "60s"  # a query of the ledger or the locks never waits longer (a session locking ops.runs)


def connect(settings: Settings, server: PgConn | None = None, **options: str) -> psycopg.Connection[Any]:
    """An autocommit connection to the warehouse (or `server`), home of the ledger and the locks (the ops schema made on first use)."""
    server = server or settings.warehouse
    where = server.describe()
    extra = {"options": " ".join(f"-c {k}={v}" for k, v in ({"statement_timeout": STATEMENT_TIMEOUT} | options).items())}
    try:
        conn = psycopg.connect(server.conninfo(application_name="northwind-elt ops", **extra), autocommit=True)
        if where not in _READY and conn.execute("select to_regclass('ops.runs')").fetchone() == (None,):
            with conn.transaction():  # one creator at a time: concurrent `create … if not exists` can collide
                conn.execute("select pg_advisory_xact_lock(hashtext('northwind-elt ops schema'))")
                conn.execute(SCHEMA)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fix = (
            "run `make db-up` (it starts the server and sets the passwords .env holds)"
            if settings.embedded
            else "check WAREHOUSE_PG_* and that the server runs"
        )
        raise LedgerError(f"cannot use the run ledger on the warehouse {where}: {first}; {fix}") from None
    _READY.add(where)
    return conn


class Ledger:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection to the ledger; a ledger that cannot be used is one line, never emptied."""
        with connect(self.settings) as conn:
            try:
                yield conn
            except psycopg.errors.QueryCanceled as exc:
                raise LedgerError(
                    f"the run ledger ops.runs on {self.settings.warehouse.describe()} did not answer in {STATEMENT_TIMEOUT} ({exc}): "
                    "another session holds a lock on it (see pg_locks); rerun once it is free"
                ) from None
            except psycopg.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise LedgerError(
                    f"the run ledger ops.runs on {self.settings.warehouse.describe()} cannot be used ({first}); it is kept as it "
                    "is: repair it, or rename it aside (alter table ops.runs rename to runs_broken) and rerun to start a new one"
                ) from None

    def begin(self, day: dt.date, step: str, owner_pid: int, holder: tuple[int, dt.datetime] | None, job: str = "") -> Run:
        """Record a step run as running, owned by the `meltano run` process `owner_pid` on this host."""
        run_id = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        with self._conn() as conn:
            started = conn.execute(
                "insert into ops.runs (run_id, day, step, outcome, host, owner_pid, holder_pid, holder_start, job)"
                " values (%s, %s, %s, 'running', %s, %s, %s, %s, %s) returning started_at",
                (run_id, day, step, socket.gethostname(), owner_pid, *(holder or (None, None)), job or None),
            ).fetchone()
        assert started is not None
        return Run(run_id, day, step, started[0], None, "running", holder=holder)

    def finish(self, run_id: str, outcome: str, rows: dict[str, int] | None = None, error: str | None = None) -> None:
        with self._conn() as conn:
            conn.execute(
                "update ops.runs set ended_at = clock_timestamp(), outcome = %s, rows = %s, error = %s where run_id = %s",
                (outcome, Jsonb(rows or {}), error, run_id),
            )

    def update(self, run_id: str, column: str, value: str) -> None:
        """Set a run's `log_path` or `landing`."""
        with self._conn() as conn:
            conn.execute(sql.SQL("update ops.runs set {} = %s where run_id = %s").format(sql.Identifier(column)), (value, run_id))

    def produced(self, step: str, day: dt.date, marker: str) -> bool:
        """Whether the latest run of the extract `step` for `day` succeeded publishing the task marker
        of digest `marker` (a later failed run leaves the files, but says their day is not done)."""
        with self._conn() as conn:
            query = (
                "select outcome = 'succeeded' and landing = %s from ops.runs where day = %s and step = %s order by started_at desc limit 1"
            )
            return conn.execute(query, (marker, day, step)).fetchone() == (True,)

    def _select(self, where: str, params: tuple[Any, ...]) -> list[Run]:
        columns = _COLUMNS.replace("outcome", _OUTCOME, 1) + ", started_at < pg_postmaster_start_time()"  # began before a restart
        with self._conn() as conn:
            rows = conn.execute(f"select {columns} from ops.runs where {where} order by started_at", params).fetchall()
        restarted = "the warehouse's PostgreSQL stopped or restarted while it ran (make db-down?), ending its locks"
        runs = []
        for row in rows:
            run = Run(*row[:9], holder=(row[9], row[10]) if row[9] else None, landing=row[11])  # type: ignore[misc]
            if run.outcome == "interrupted":
                run = replace(run, error=run.error or (restarted if row[12] else "the run ended without recording an outcome (killed?)"))
            runs.append(run)
        return runs

    def between(self, first: dt.date, last: dt.date) -> list[Run]:
        """Every run of the days from `first` to `last`, oldest first."""
        return self._select("day between %s and %s", (first, last))

    def latest(self, day: dt.date) -> dict[str, Run]:
        """The latest run of each step for `day`."""
        return {run.step: run for run in self._select("day = %s", (day,))}

    def of_owner(self, day: dt.date, step: str, owner_pid: int) -> Run | None:
        """The latest run of `step` for `day` owned by the `meltano run` process `owner_pid` here."""
        where = "day = %s and step = %s and host = %s and owner_pid = %s"
        return next(reversed(self._select(where, (day, step, socket.gethostname(), owner_pid))), None)

    def of_job(self, step: str, job: str) -> Run | None:
        """The run of `step` in the job nwelt started with token `job`, if it began."""
        return next(reversed(self._select("step = %s and job = %s", (step, job))), None)
