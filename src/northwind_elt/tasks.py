"""The glue tasks that open and close every step's Meltano job, whoever starts it (make, nwelt,
Airflow, a plain `meltano run`). Open (`elt:open-<step>`): locks, ledger row, the gate, the input
prepared. Close (`elt:close-<step>`): publish, commit, mark tested or export; success recorded,
locks released. A failure in either (a gate's refusal too) is recorded and releases the locks."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable

from . import catalogs, locks, warehouse
from . import export as export_mod
from .console import error_line
from .errors import Fix, GateError, NweltError, PublishError, rerun, resume
from .landing import SOURCES, Landing, source_of
from .ledger import Ledger, Run
from .registry import get
from .settings import Settings, job


# -- open: gate and preparation of each step ------------------------------------------------
def _open_extract(settings: Settings, run: Run) -> None:
    Landing(settings.data_dir, settings.staging_root).stage(source_of(run.step), run.day)
    if run.step == "extract-postgres":
        kept = catalogs.refresh_if_schema_changed(settings, source_of(run.step).tap)
        print("source schema unchanged: the cached catalog is used" if kept else "the catalog will be discovered")


def _open_load(settings: Settings, run: Run) -> None:
    """The gate of step 2: both step-1 tasks succeeded for D (their markers, and the ledger's record
    of what their latest runs published), and their files are intact, copied as verified for the load."""
    landing, ledger = Landing(settings.data_dir, settings.staging_root), Ledger(settings)
    landing.check_day(run.day, copy=True)
    if unknown := [s for s in SOURCES.values() if not ledger.produced(s.step, run.day, landing.marker_checksum(s, run.day) or "")]:
        raise GateError(
            f"step 2 (load) refuses to run for {run.day}: the run ledger's latest {' and '.join(s.step for s in unknown)} of "
            f"{run.day} did not succeed publishing these files (it failed or was stopped, or the files were rewritten with their "
            "checksums, or landed elsewhere)",
            [s.rerun(run.day) for s in unknown],
        )
    warehouse.drop_load_schema(settings, run.day)  # left by a failed or killed load of the day


def _open_transform(settings: Settings, run: Run) -> None:
    """Transform's gate: raw holds a load of D made from the landed files that are there now."""
    day = run.day
    landed, loaded = Landing(settings.data_dir).landed_checksum(day), warehouse.loaded_checksum(settings, day)
    fix = Fix(day=day) if landed is None else resume("load", day)  # nothing landed: the whole day
    if loaded is None:
        raise GateError(f"transform refuses to run for {day}: the load of {day} has not succeeded", [fix])
    if loaded != landed:
        raise GateError(
            f"transform refuses to run for {day}: the warehouse's raw rows of {day} were loaded from other landed files than this "
            f"DATA_DIR's ({settings.data_dir}) holds now: the landed files of {day} changed after the load, or another DATA_DIR "
            f"sharing the warehouse loaded {day} since",
            [fix],
        )


OPENERS: dict[str, Callable[[Settings, Run], None]] = {
    "extract-postgres": _open_extract,
    "extract-csv": _open_extract,
    "load": _open_load,
    "transform": _open_transform,
    "export": lambda settings, run: None,  # its gate reads the build record in the export's own snapshot
}


# -- close: the step's own finishing work; returns rows per table ----------------------------
def _close_extract(settings: Settings, run: Run) -> dict[str, int]:
    source = source_of(run.step)
    path = catalogs.run_dir(settings, source.tap) / "tap.properties.json"
    if not path.exists() or path.stat().st_mtime < run.started_at.timestamp():  # Meltano writes it on every run
        raise PublishError(
            f"{source.tap} did not run in this Meltano job (no catalog at {path} since the job began)", [rerun(run.step, run.day)]
        )
    landing = Landing(settings.data_dir, settings.staging_root)
    tables = landing.publish(source, run.day, json.loads(path.read_text()))
    Ledger(settings).update(run.run_id, "landing", landing.marker_checksum(source, run.day) or "")  # what the load's gate checks
    for table, entry in tables.items():
        print(f"published {source.name}/{table}/{run.day}: {entry['rows']} rows")
    return {table: int(entry["rows"]) for table, entry in tables.items()}


def _close_load(settings: Settings, run: Run) -> dict[str, int]:
    counts = warehouse.commit(settings, run.day, run.landing)
    for table, rows in counts.items():
        print(f"committed raw.{table}/{run.day}: {rows} rows")
    shutil.rmtree(Landing(settings.data_dir, settings.staging_root).load_dir(run.day), ignore_errors=True)  # its copies
    return counts


def _close_transform(settings: Settings, run: Run) -> dict[str, int]:
    rows = export_mod.mark_tested(settings, run.day, run.started_at)
    if rows is None:
        raise GateError(f"dbt did not build {export_mod.MART} for {run.day} in this Meltano job", [rerun(run.step, run.day)])
    return {export_mod.MART: rows}


def _close_export(settings: Settings, run: Run) -> dict[str, int]:
    rows = export_mod.export(settings, run.day)
    print(f"exported {rows} rows to {' and '.join(map(str, export_mod.output_paths(settings, run.day)))}")
    return {export_mod.MART: rows}


CLOSERS: dict[str, Callable[[Settings, Run], dict[str, int]]] = {
    "extract-postgres": _close_extract,
    "extract-csv": _close_extract,
    "load": _close_load,
    "transform": _close_transform,
    "export": _close_export,
}


# -- the tasks ---------------------------------------------------------------------------------
def _recorded_failure(ledger: Ledger, run: Run, exc: Exception) -> None:
    ledger.finish(run.run_id, "failed", error=error_line(exc) if isinstance(exc, NweltError) else f"{type(exc).__name__}: {exc}")


def open_step(settings: Settings, step: str, day: dt.date) -> Run:
    """`elt:open-<step>`: locks, ledger row, gate, preparation."""
    owner = os.getppid()  # the `meltano run` process: the locks live as long as it does at most
    holder = locks.start_holder(settings, step, day, owner)
    ledger = Ledger(settings)
    try:
        run = ledger.begin(day, step, owner, holder, job())
        try:
            OPENERS[step](settings, run)
            if get(step).upstream:  # the landed day it works from (load: commits; status: compares)
                ledger.update(run.run_id, "landing", Landing(settings.data_dir).landed_checksum(day) or "")
        except Exception as exc:
            _recorded_failure(ledger, run, exc)
            raise
    except BaseException:
        locks.release(settings, holder)
        raise
    return run


def close_step(settings: Settings, step: str, day: dt.date) -> dict[str, int]:
    """`elt:close-<step>`: the step's finishing work, its outcome in the ledger, the locks released."""
    ledger = Ledger(settings)
    run = ledger.of_owner(day, step, os.getppid())
    if run is None or run.outcome not in ("running", "interrupted"):
        raise GateError(
            f"elt:close-{step} for {day} found no open run of {step} in this Meltano job: run the whole job", [rerun(step, day)]
        )
    try:
        if run.outcome != "running" or run.holder is None:
            raise GateError(
                f"the locks of this run of {step} for {day} were lost before the step closed (their holder ended)", [rerun(step, day)]
            )
        rows = CLOSERS[step](settings, run)
        ledger.finish(run.run_id, "succeeded", rows)
    except Exception as exc:
        _recorded_failure(ledger, run, exc)
        raise
    finally:
        if run.holder is not None:
            locks.release(settings, run.holder)
    return rows
