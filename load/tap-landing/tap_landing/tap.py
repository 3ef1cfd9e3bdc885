"""A Singer tap over one day of landed files.

Discovery reads the day's task markers (`Landing.check_day`; the load job's `elt:open-load`
verified every file): unless both step-1 tasks succeeded for the day, the tap fails before
emitting anything, so no target can write. Each landed table becomes a stream named
`load_<yyyymmdd>-<table>`, which target-postgres writes into the per-day load schema
`load_<yyyymmdd>`.

The tap reads no landed records file: it reads the private copy the load's gate wrote as it
verified that file (`Landing.verified_copy`, under .meltano/staging/tap_landing/{D}/), so what
the target loads is exactly what was verified, even if the landed file is swapped meanwhile.

With `batch_rows` > 0 (the project's setting) the tap emits Singer SDK BATCH messages instead of
one RECORD message per row: each points at an uncompressed JSONL file of at most `batch_rows`
records (`file://` URL), which the target reads itself. A verified copy that small is referenced
directly; a bigger one is cut, byte for byte and never parsed, into chunk files beside it (the
target reads a whole batch file into memory, so the chunk size bounds its memory; `elt:close-load`
removes them). The files hold the landed records as they are, so values keep their exact decimal
text (target-postgres parses numbers as Decimal). The stream schema declares decimal (`number`)
columns as strings (`landing.load_stream_schema`): target-postgres then COPYs their exact text
into text columns and `elt:close-load` casts them back to numeric; RECORD messages carry them as
strings. A column whose name holds a double quote travels under a stand-in name
(`landing.load_column_name`). `batch_rows: 0`, a project folder whose path needs URL escaping, or a
table with such a column replays RECORD messages (the plain Singer path).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
import urllib.parse
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig, StorageTarget

from northwind_elt.landing import Landing, Source, decimal_columns, load_column_name, load_schema_name, load_stream_schema

JSONL = BaseBatchFileEncoding(format="jsonl", compression=None)


class LandedStream(Stream):
    """One landed table of one day, replayed line by line (never loaded whole)."""

    def __init__(self, tap: Tap, source: Source, table: str, day: dt.date, landing: Landing, rows: int) -> None:
        stored = landing.schema(source, table, day)
        self.path = landing.verified_copy(source, table, day)
        if not self.path.is_file():
            raise SystemExit(
                f"tap-landing: no verified copy of {landing.records_file(source, table, day)} ({self.path}): the load job's "
                f"gate writes it; run the whole job (RUN_DATE={day} meltano run load), not the tap alone"
            )
        self.rows = rows
        self.chunk_dir = self.path.with_suffix("")  # its chunks, if cut
        # decimals declared as strings: target-postgres COPYs text exactly (warehouse.commit casts back)
        super().__init__(tap, schema=load_stream_schema(stored["schema"]), name=f"{load_schema_name(day)}-{table}")
        # no key properties: the load table is new for each load, so target-postgres appends (COPY)
        # instead of merging every batch into it (an anti-join insert, then an update of every row);
        # elt:close-load writes raw.<table> with the landed key as its primary key
        self.primary_keys = []
        self.decimals = sorted(decimal_columns(stored["schema"]))
        # columns whose load name is a stand-in (a double quote in the name): the records are
        # renamed, so they travel as RECORD messages, not as the landed bytes
        self.renamed = {name: load_column_name(name) for name in stored["schema"].get("properties", {}) if load_column_name(name) != name}

    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        with self.path.open("rb") as handle:
            for line in handle:
                record = json.loads(line, parse_float=Decimal)
                for name in self.decimals:  # the decimal's exact text, as the schema declares it
                    if record.get(name) is not None:
                        record[name] = str(record[name])
                for name, stand_in in self.renamed.items():
                    if name in record:
                        record[stand_in] = record.pop(name)
                yield record

    # -- BATCH messages ------------------------------------------------------------------------
    def get_batch_config(self, config: Any) -> BatchConfig | None:
        rows = int(config.get("batch_rows") or 0)
        if rows <= 0 or not _url_safe(self.chunk_dir) or self.renamed:
            return None  # RECORD messages (the SDK's batch URLs break on such paths; renamed columns)
        return BatchConfig(encoding=JSONL, storage=StorageTarget(root=self.chunk_dir.as_uri()), batch_size=rows)

    def get_batches(self, batch_config: BatchConfig, context: Any = None) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        limit = batch_config.batch_size
        shutil.rmtree(self.chunk_dir, ignore_errors=True)  # chunks of an earlier load of the day
        if self.rows == 0:
            return
        if self.rows <= limit:
            yield JSONL, [self.path.as_uri()]
            return
        self.chunk_dir.mkdir(parents=True)
        with self.path.open("rb") as handle:
            number = 0
            while True:
                lines = list(itertools.islice(handle, limit))
                if not lines:
                    break
                chunk = self.chunk_dir / f"{number:05d}.jsonl"
                chunk.write_bytes(b"".join(lines))
                number += 1
                yield JSONL, [chunk.as_uri()]


def _url_safe(path: Path) -> bool:
    """True when the path's file URL needs no percent-encoding (singer-sdk 0.54 re-encodes an
    encoded URL and then looks for a folder literally named `a%20b`)."""
    return urllib.parse.quote(str(path)) == str(path)


class TapLanding(Tap):
    name = "tap-landing"
    config_jsonschema = th.PropertiesList(
        th.Property("data_dir", th.StringType, required=True, description="DATA_DIR of the landing layout"),
        th.Property("date", th.DateType, description="the day D to replay (YYYY-MM-DD; Meltano reads RUN_DATE)"),
        th.Property(
            "batch_rows",
            th.IntegerType,
            default=0,
            description="emit BATCH messages of at most this many records (0: one RECORD message per row)",
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        raw_day = self.config.get("date")
        if not raw_day:
            raise SystemExit("tap-landing: the day to load is not set: set RUN_DATE=YYYY-MM-DD (e.g. RUN_DATE=2024-01-01 meltano run load)")
        day = dt.date.fromisoformat(raw_day)
        data_dir = Path(self.config["data_dir"])
        root = Path(os.environ.get("MELTANO_PROJECT_ROOT", ".")).resolve()
        if not data_dir.is_absolute():  # DATA_DIR=data means <project root>/data, wherever meltano runs from
            data_dir = root / data_dir
        landing = Landing(data_dir, root / ".meltano" / "staging")  # the project's one staging folder
        # both step-1 tasks succeeded (their markers), else GateError naming what to rerun; the
        # load job's open task verified every file into the copies read here
        tables = landing.check_day(day, verify=False)
        return [LandedStream(self, source, table, day, landing, info["rows"]) for (source, table), info in tables.items()]
