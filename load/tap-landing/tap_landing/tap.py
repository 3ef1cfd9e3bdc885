"""A Singer tap over one day of landed files.

Discovery runs the gate (`Landing.check_day`): unless both step-1 tasks succeeded for the day
and their files still match what step 1 recorded, the tap fails before emitting anything, so
no target can write. Each landed table becomes a stream named `load_<yyyymmdd>-<table>`, which
target-postgres writes into the per-day load schema `load_<yyyymmdd>`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from northwind_elt.landing import Landing, Source, load_schema_name


class LandedStream(Stream):
    """One landed table of one day, replayed line by line (never loaded whole)."""

    def __init__(self, tap: Tap, source: Source, table: str, day: dt.date, landing: Landing) -> None:
        stored = landing.schema(source, table, day)
        self.path = landing.records_file(source, table, day)
        super().__init__(tap, schema=stored["schema"], name=f"{load_schema_name(day)}-{table}")
        self.primary_keys = stored["key_properties"]

    def get_records(self, context: dict[str, Any] | None) -> Iterable[dict[str, Any]]:
        with self.path.open("rb") as handle:
            for line in handle:
                yield json.loads(line, parse_float=Decimal)


class TapLanding(Tap):
    name = "tap-landing"
    config_jsonschema = th.PropertiesList(
        th.Property("data_dir", th.StringType, required=True, description="DATA_DIR of the landing layout"),
        th.Property("date", th.DateType, required=True, description="the day D to replay (YYYY-MM-DD)"),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        day = dt.date.fromisoformat(self.config["date"])
        landing = Landing(Path(self.config["data_dir"]))
        tables = landing.check_day(day)  # the gate: raises GateError naming what to rerun
        return [LandedStream(self, source, table, day, landing) for (source, table) in tables]
