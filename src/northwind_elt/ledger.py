"""The run ledger: one row per step run, in SQLite beside the data (DATA_DIR/ledger.sqlite).

It lives with the landed files rather than in the warehouse so that step 1 can record without
the warehouse, and so that a day's files and the story of how they were made travel together.
A run killed with SIGKILL cannot write its end: a `running` row whose process is gone is
reported as `interrupted`.
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

STEPS = ["extract-postgres", "extract-csv", "load", "transform", "export"]

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


def _identity(pid: int) -> str:
    stat = _proc_stat(pid)
    return f"{pid}:{stat[1]}" if stat else str(pid)


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        for _ in range(100):  # switching to WAL ignores the busy timeout: retry while another opens it
            try:
                if conn.execute("pragma journal_mode").fetchone()[0] != "wal":
                    conn.execute("pragma journal_mode=wal")
                conn.executescript(SCHEMA)
                return conn
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                time.sleep(0.05)
        raise sqlite3.OperationalError(f"the run ledger {self.path} stays locked")

    def begin(self, day: dt.date, step: str, rerun: str, log_path: Path | None) -> str:
        run_id = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        with self._connect() as conn:
            conn.execute(
                "insert into runs (run_id, day, step, started_at, outcome, rerun, log_path, pid, host)"
                " values (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (run_id, day.isoformat(), step, _now(), rerun, str(log_path) if log_path else None, _identity(os.getpid()), socket.gethostname()),
            )
        return run_id

    def finish(self, run_id: str, outcome: str, rows: dict[str, int] | None = None, error: str | None = None) -> None:
        with self._connect() as conn:
            conn.execute(
                "update runs set ended_at = ?, outcome = ?, rows_json = ?, error = ? where run_id = ?",
                (_now(), outcome, json.dumps(rows or {}, sort_keys=True), error, run_id),
            )

    def latest(self, day: dt.date) -> dict[str, Run]:
        """The latest run of each step for `day`."""
        if not self.path.exists():
            return {}
        with self._connect() as conn:
            rows = conn.execute(
                "select run_id, day, step, started_at, ended_at, outcome, rows_json, error, rerun, log_path, pid, host"
                " from runs where day = ? order by started_at",
                (day.isoformat(),),
            ).fetchall()
        latest: dict[str, Run] = {}
        for run_id, day_s, step, started, ended, outcome, rows_json, error, rerun, log_path, pid, host in rows:
            if outcome == "running" and not _alive(str(pid), host):
                outcome = "interrupted"
                error = error or "the process ended without recording an outcome (killed?)"
            latest[step] = Run(
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
        return latest

    def days(self) -> list[dt.date]:
        if not self.path.exists():
            return []
        with self._connect() as conn:
            return [dt.date.fromisoformat(d) for (d,) in conn.execute("select distinct day from runs order by day")]
