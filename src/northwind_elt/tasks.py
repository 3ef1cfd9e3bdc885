"""The glue tasks that open and close every step's Meltano job (`elt:open-<step>`, `elt:close-<step>`).

Every entry point (make, nwelt, the Airflow DAG, plain `meltano run <job>`) runs a step as its
Meltano job, so these two tasks are where every step run gets the same guarantees:

- open: take the step's day locks and its plugin's project lock (registry.Step), record the run in
  the ledger (owned by the `meltano run` process), check the step's gate, prepare its input, and
  hand the locks to the run's guard (guard.py) for the rest of the job;
- close: finish the step's work (publish, commit, export), record success with rows per table,
  stop the guard.

A refused gate or a failed close is recorded as a failed run, with the cause.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import catalogs, guard, locks, warehouse
from . import export as export_mod
from .console import error_line
from .errors import Fix, GateError, NweltError, PublishError, rerun, resume
from .landing import Landing, Source, source_of
from .ledger import Ledger, identity
from .registry import NAMES, get
from .settings import Settings


def catalog_path(settings: Settings, source: Source) -> Path:
    """The catalog the tap ran with (Meltano writes it on every run)."""
    return settings.root / ".meltano" / "run" / source.tap / "tap.properties.json"


# -- open: gate and preparation of each step ------------------------------------------------
def _open_extract(settings: Settings, step: str, day: dt.date, run_id: str) -> None:
    Landing(settings.data_dir, settings.staging_root).stage(source_of(step), day)
    if step == "extract-postgres":
        kept = catalogs.refresh_if_schema_changed(settings, source_of(step).tap)
        print("source schema unchanged: the cached catalog is used" if kept else "the catalog will be discovered")


def _open_load(settings: Settings, step: str, day: dt.date, run_id: str) -> None:
    warehouse.prepare(settings, day)  # the gate (both step-1 tasks, files intact), then a clean load schema
    Ledger(settings.data_dir).set_landing(run_id, Landing(settings.data_dir).landed_checksum(day) or "")


def _first_incomplete(ledger: Ledger, day: dt.date) -> Fix:
    """The day from its first step not succeeded on (what `make status` would say next)."""
    from .status import first_incomplete, step_states

    step = first_incomplete(step_states(ledger.latest(day))) or NAMES[0]
    return Fix(day=day) if step == NAMES[0] else resume(step, day)


def _open_transform(settings: Settings, step: str, day: dt.date, run_id: str) -> None:
    """Transform's gate: the load of D succeeded, and the landed files are the ones it loaded."""
    ledger = Ledger(settings.data_dir)
    load = ledger.latest(day).get("load")
    if load is None or load.outcome != "succeeded":
        state = "has not run" if load is None else load.outcome
        raise GateError(f"transform refuses to run for {day}: the load of {day} {state}", [_first_incomplete(ledger, day)])
    landing = Landing(settings.data_dir)
    try:
        landing.check_day(day)
    except GateError as exc:
        raise GateError(f"transform refuses to run for {day}: {exc.message}", exc.fixes) from None
    current = landing.landed_checksum(day)
    if ledger.landing_of(load.run_id) != current:
        raise GateError(
            f"transform refuses to run for {day}: the landed files of {day} changed after the load of {day}",
            [resume("load", day)],
        )
    if warehouse.loaded_checksum(settings, day) != current:
        raise GateError(
            f"transform refuses to run for {day}: the warehouse's raw rows of {day} were loaded from other landed "
            f"files than this DATA_DIR's ({settings.data_dir}): another DATA_DIR sharing the warehouse loaded {day} since",
            [resume("load", day)],
        )


def _open_export(settings: Settings, step: str, day: dt.date, run_id: str) -> None:
    ledger = Ledger(settings.data_dir)
    last = ledger.latest(day).get("transform")
    if last is None or last.outcome != "succeeded":
        state = "has not run" if last is None else last.outcome
        raise GateError(
            f"export refuses to run for {day}: the transform of {day} {state} (its rows are untested)",
            [_first_incomplete(ledger, day)],
        )


OPENERS: dict[str, Callable[[Settings, str, dt.date, str], None]] = {
    "extract-postgres": _open_extract,
    "extract-csv": _open_extract,
    "load": _open_load,
    "transform": _open_transform,
    "export": _open_export,
}


# -- close: the step's own finishing work; returns rows per table ----------------------------
def _close_extract(settings: Settings, step: str, day: dt.date, started: dt.datetime) -> dict[str, int]:
    source = source_of(step)
    path = catalog_path(settings, source)
    if not path.exists() or path.stat().st_mtime < started.timestamp():  # Meltano writes it on every run
        raise PublishError(f"{source.tap} did not run in this Meltano job (no catalog at {path} since the job began)", [rerun(step, day)])
    tables = Landing(settings.data_dir, settings.staging_root).publish(source, day, json.loads(path.read_text()))
    for table, entry in tables.items():
        print(f"published {source.name}/{table}/{day}: {entry['rows']} rows")
    return {table: int(entry["rows"]) for table, entry in tables.items()}


def _close_load(settings: Settings, step: str, day: dt.date, started: dt.datetime) -> dict[str, int]:
    counts = warehouse.commit(settings, day)
    for table, rows in counts.items():
        print(f"committed raw.{table}/{day}: {rows} rows")
    # the BATCH chunk files tap-landing cut for this day are no longer needed
    shutil.rmtree(settings.data_dir / ".staging" / "tap_landing" / day.isoformat(), ignore_errors=True)
    return counts


def _close_transform(settings: Settings, step: str, day: dt.date, started: dt.datetime) -> dict[str, int]:
    built = export_mod.built_at(settings, day)
    if built is None or built < started:
        raise GateError(f"dbt did not build {export_mod.MART} for {day} in this Meltano job", [rerun(step, day)])
    return {export_mod.MART: export_mod.mart_rows(settings, day)}


def _close_export(settings: Settings, step: str, day: dt.date, started: dt.datetime) -> dict[str, int]:
    rows = export_mod.export(settings, day)
    csv_path, json_path = export_mod.output_paths(settings, day)
    print(f"exported {rows} rows to {csv_path} and {json_path}")
    return {export_mod.MART: rows}


CLOSERS: dict[str, Callable[[Settings, str, dt.date, dt.datetime], dict[str, int]]] = {
    "extract-postgres": _close_extract,
    "extract-csv": _close_extract,
    "load": _close_load,
    "transform": _close_transform,
    "export": _close_export,
}


def release_meltano_job(settings: Settings, step: str) -> int:
    """Mark Meltano's own record of an earlier run of this step's tap/target pair failed if it
    still says RUNNING (its `meltano run` was killed). Called under the step's project lock, so no
    other run of the pair is alive: without this a plain `meltano run <job>` would refuse to start
    for minutes after a killed run ("Another ... pipeline is already running"). Returns how many."""
    pair = get(step).plugins.split()
    database = settings.root / ".meltano" / "meltano.db"
    if len(pair) != 2 or not database.exists():
        return 0
    with sqlite3.connect(database, timeout=30) as conn:
        return conn.execute(
            "update runs set state = 'FAIL', ended_at = ? where state = 'RUNNING' and job_name like ?",
            (dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" "), f"%:{pair[0]}-to-{pair[1]}"),
        ).rowcount


def abandon(settings: Settings, step: str, day: dt.date) -> None:
    """Undo what a run of `step` that ended without closing leaves behind (called by its guard)."""
    if step == "load":
        warehouse.drop_load_schema(settings, day)


# -- the tasks ---------------------------------------------------------------------------------
@contextmanager
def _failure_recorded(ledger: Ledger, run_id: str) -> Iterator[None]:
    """Record the run failed, with the cause, if the block raises (then re-raise)."""
    try:
        yield
    except NweltError as exc:
        ledger.finish(run_id, "failed", error=error_line(exc))
        raise
    except Exception as exc:
        ledger.finish(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise


def open_step(settings: Settings, step: str, day: dt.date, rerun_text: str) -> str:
    """`elt:open-<step>`: locks, ledger row, gate, preparation, guard. Returns the run id."""
    upstream = get(step).upstream
    # the first line of every step in a job's output: where the runner starts the step's own log
    # when several jobs run in one `meltano run` (runner.OPENING)
    print(f"opening {step} for {day}", flush=True)
    owner = os.getppid()  # the `meltano run` process: the run lives as long as it does
    ledger = Ledger(settings.data_dir)
    beside_failed = locks.wait_for_step1(settings.data_dir, day) if upstream else None
    if beside_failed:  # a step-1 job beside this chain failed: this step does not start and records
        # no run (the runner reports that failure); the gate below still checks the files
        raise GateError(f"{step} for {day} not started: {', '.join(beside_failed)} did not succeed", [Fix(day=day)])
    with ExitStack() as stack:
        fds = locks.acquire_day(stack, settings.data_dir, day, [step], owner=owner)
        fds += locks.acquire_project(stack, settings.root, step, day, owner=owner)
        release_meltano_job(settings, step)
        run_id = ledger.begin(day, step, rerun_text, None, owner=owner)
        with _failure_recorded(ledger, run_id):
            OPENERS[step](settings, step, day, run_id)
        guard.start(settings.data_dir, step, day, owner, fds)
    return run_id


def close_step(settings: Settings, step: str, day: dt.date) -> dict[str, int]:
    """`elt:close-<step>`: the step's finishing work, its outcome in the ledger, the guard stopped."""
    ledger = Ledger(settings.data_dir)
    run = ledger.of_owner(day, step, identity(os.getppid()))
    if run is None or run.outcome != "running":
        raise GateError(
            f"elt:close-{step} for {day} found no open run of {step} in this Meltano job: run the whole job",
            [rerun(step, day)],
        )
    with _failure_recorded(ledger, run.run_id):
        if not guard.running(settings.data_dir, day, step):
            raise GateError(
                f"the guard of this run of {step} for {day} ended before the step closed: its locks were not held", [rerun(step, day)]
            )
        rows = CLOSERS[step](settings, step, day, run.started_at)
    run_id = run.run_id
    ledger.finish(run_id, "succeeded", rows)
    guard.stop(settings.data_dir, day, step)
    return rows
