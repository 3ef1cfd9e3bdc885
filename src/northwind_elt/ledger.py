"""The run ledger: one row per step run, in SQLite beside the data (DATA_DIR/ledger.sqlite).

It lives with the landed files rather than in the warehouse so that step 1 can record without
the warehouse, and so that a day's files and the story of how they were made travel together.
A step run is written by the glue tasks inside its Meltano job, whatever started it (`make`,
`nwelt`, `meltano run`, Airflow): `elt:open-<step>` inserts a `running` row owned by the
`meltano run` process, `elt:close-<step>` records success (or failure, when its own work fails).
A job that ends without its close task (a plugin failed, the run was killed) leaves a `running`
row whose owner process is gone: it is reported as `interrupted`. When nwelt ran the job (make,
Airflow, backfill) it records such a run `failed`, with the cause read from the job's log, unless
the job was killed by a signal.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import LedgerError

SCHEMA = """
create table if not exists runs (
    run_id text primary key,
    day text not null,
    step text not null,
    started_at text not null,
    ended_at text,
    outcome text not null check (outcome in ('running', 'succeeded', 'failed')),
    rows_json text,
    error text,
    rerun text not null,
    log_path text,
    pid text not null,
    host text not null
);
create index if not exists runs_day_step on runs (day, step, started_at);
"""
# columns added since the first release: (name, definition), added to an older ledger in place
MIGRATIONS = [
    ("landing", "text"),  # for load: the digest of the landed day it loaded
]


@dataclass(frozen=True)
class Run:
    run_id: str
    day: dt.date
    step: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    outcome: str  # running / succeeded / failed / interrupted (derived)
    rows: dict[str, int]
    error: str | None
    rerun: str
    log_path: str | None

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def seconds(self) -> float | None:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, or None if there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def identity(pid: int) -> str:
    """A process's pid and start time: unlike the pid alone, never reused by another process."""
    stat = _proc_stat(pid)
    return f"{pid}:{stat[1]}" if stat else str(pid)


def alive(pid_identity: str) -> bool:
    """Is the process of `identity(pid)` (on this host) still running?"""
    return _alive(pid_identity, socket.gethostname())


def _alive(identity: str, host: str) -> bool:
    """Is the process that wrote a `running` row still running? (not gone, not a zombie,
    and its pid not reused by another process since)"""
    if host != socket.gethostname():
        return True  # cannot tell from here: trust the row
    pid_s, _, started = identity.partition(":")
    stat = _proc_stat(int(pid_s))
    if stat is None:
        try:
            os.kill(int(pid_s), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc/self/stat").exists()
    state, start = stat
    return state != "Z" and (not started or start == started)


class Ledger:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "ledger.sqlite"

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            for _ in range(100):  # switching to WAL ignores the busy timeout: retry while another opens it
                try:
                    if conn.execute("pragma journal_mode").fetchone()[0] != "wal":
                        conn.execute("pragma journal_mode=wal")
                    conn.executescript(SCHEMA)
                    have = {row[1] for row in conn.execute("pragma table_info(runs)")}
                    for name, definition in MIGRATIONS:
                        if name not in have:
                            conn.execute(f"alter table runs add column {name} {definition}")
                    return conn
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "duplicate column" not in str(exc):
                        raise
                    time.sleep(0.05)
            raise LedgerError(f"the run ledger {self.path} stays locked by another process; wait and rerun")
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"the run ledger {self.path} cannot be used ({exc}): it is damaged or not a ledger. Move it aside "
                f"(mv {self.path} {self.path}.broken) and rerun; a new ledger starts empty (landed files and the "
                "warehouse are not affected, only the history of earlier runs is set aside)"
            ) from None
        except OSError as exc:
            raise LedgerError(f"the run ledger {self.path} cannot be opened ({exc.strerror}): check DATA_DIR") from None

    def begin(self, day: dt.date, step: str, rerun: str, log_path: Path | None, owner: int | None = None) -> str:
        """Record a step run as running, owned by process `owner` (default: this process)."""
        run_id = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        with self._connect() as conn:
            conn.execute(
                "insert into runs (run_id, day, step, started_at, outcome, rerun, log_path, pid, host)"
                " values (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (
                    run_id,
                    day.isoformat(),
                    step,
                    _now(),
                    rerun,
                    str(log_path) if log_path else None,
                    identity(owner or os.getpid()),
                    socket.gethostname(),
                ),
            )
        return run_id

    def finish(
        self, run_id: str, outcome: str, rows: dict[str, int] | None = None, error: str | None = None, only_running: bool = False
    ) -> None:
        """Record the outcome of a run (with `only_running`, only if nothing recorded one yet)."""
        with self._connect() as conn:
            conn.execute(
                "update runs set ended_at = ?, outcome = ?, rows_json = ?, error = ? where run_id = ?"
                + (" and outcome = 'running'" if only_running else ""),
                (_now(), outcome, json.dumps(rows or {}, sort_keys=True), error, run_id),
            )

    def set_landing(self, run_id: str, digest: str) -> None:
        with self._connect() as conn:
            conn.execute("update runs set landing = ? where run_id = ?", (digest, run_id))

    def landing_of(self, run_id: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute("select landing from runs where run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    _COLUMNS = "run_id, day, step, started_at, ended_at, outcome, rows_json, error, rerun, log_path, pid, host"

    @staticmethod
    def _run(row: tuple) -> Run:  # type: ignore[type-arg]
        run_id, day_s, step, started, ended, outcome, rows_json, error, rerun, log_path, pid, host = row
        if outcome == "running" and not _alive(str(pid), host):
            outcome = "interrupted"
            error = error or "the run ended without recording an outcome (killed?)"
        return Run(
            run_id=run_id,
            day=dt.date.fromisoformat(day_s),
            step=step,
            started_at=dt.datetime.fromisoformat(started),
            ended_at=dt.datetime.fromisoformat(ended) if ended else None,
            outcome=outcome,
            rows=json.loads(rows_json) if rows_json else {},
            error=error,
            rerun=rerun,
            log_path=log_path,
        )

    def latest(self, day: dt.date) -> dict[str, Run]:
        """The latest run of each step for `day`."""
        if not self.path.exists():
            return {}
        with self._connect() as conn:
            rows = conn.execute(f"select {self._COLUMNS} from runs where day = ? order by started_at", (day.isoformat(),)).fetchall()
        return {row[2]: self._run(row) for row in rows}

    def of_owner(self, day: dt.date, step: str, owner: str) -> Run | None:
        """The latest run of `step` for `day` owned by the process of identity `owner`."""
        with self._connect() as conn:
            row = conn.execute(
                f"select {self._COLUMNS} from runs where day = ? and step = ? and pid = ? order by started_at desc limit 1",
                (day.isoformat(), step, owner),
            ).fetchone()
        return self._run(row) if row else None

    def set_log(self, run_id: str, log_path: Path) -> None:
        with self._connect() as conn:
            conn.execute("update runs set log_path = ? where run_id = ?", (str(log_path), run_id))
