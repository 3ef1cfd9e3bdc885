"""The glue tasks that Meltano jobs call between plugins (`meltano run elt:<task>`).

Each takes the day and the settings; none reads the environment itself.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from . import catalogs, warehouse
from . import export as export_mod
from .landing import SOURCES, Landing, PublishError, Source
from .settings import Settings


def catalog_path(settings: Settings, source: Source) -> Path:
    """The catalog the tap ran with (Meltano writes it on every run)."""
    return settings.root / ".meltano" / "run" / source.tap / "tap.properties.json"


def stage(settings: Settings, source_name: str, day: dt.date) -> None:
    Landing(settings.data_dir).stage(SOURCES[source_name], day)
    if source_name == "postgres":
        kept = catalogs.refresh_if_schema_changed(settings, SOURCES[source_name].tap)
        print("source schema unchanged: the cached catalog is used" if kept else "the catalog will be discovered")


def publish(settings: Settings, source_name: str, day: dt.date) -> None:
    source = SOURCES[source_name]
    path = catalog_path(settings, source)
    if not path.exists():
        raise PublishError(f"no catalog at {path}: {source.tap} did not run; run {source.rerun(day)}")
    tables = Landing(settings.data_dir).publish(source, day, json.loads(path.read_text()))
    for table, entry in tables.items():
        print(f"published {source.name}/{table}/{day}: {entry['rows']} rows")


def prepare_load(settings: Settings, day: dt.date) -> None:
    warehouse.prepare(settings, day)


def commit_load(settings: Settings, day: dt.date) -> None:
    for table, rows in warehouse.commit(settings, day).items():
        print(f"committed raw.{table}/{day}: {rows} rows")
    # the BATCH chunk files tap-landing cut for this day are no longer needed
    shutil.rmtree(settings.data_dir / ".staging" / "tap_landing" / day.isoformat(), ignore_errors=True)


def export(settings: Settings, day: dt.date) -> None:
    rows = export_mod.export(settings, day)
    csv_path, json_path = export_mod.output_paths(settings, day)
    print(f"exported {rows} rows to {csv_path} and {json_path}")
