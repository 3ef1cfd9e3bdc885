"""The tap: reads its `files` setting and builds one stream per CSV file."""

from __future__ import annotations

import os
from pathlib import Path

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from tap_northwind_csv.streams import TYPE_PATTERN, CsvFileStream, CsvInputError
from tap_northwind_csv.writer import BufferedMsgSpecWriter


def _from_project_root(path: str) -> Path:
    """A relative path is read from the Meltano project root (not from the current folder)."""
    root = os.environ.get("MELTANO_PROJECT_ROOT")
    return Path(root, path) if root and not Path(path).is_absolute() else Path(path)


class TapNorthwindCsv(Tap):
    """Singer tap for local CSV files with a declared, typed set of columns."""

    name = "tap-northwind-csv"
    # msgspec encoding and a buffered stdout (see writer.py): much of the tap's time per row
    # went into the standard library's JSON encoder and a flush per message (docs/performance.md)
    message_writer_class = BufferedMsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "files",
            th.ArrayType(
                th.ObjectType(
                    th.Property("stream", th.StringType, required=True),
                    th.Property("path", th.StringType, description="The CSV file (or set `paths`)."),
                    th.Property("key_properties", th.ArrayType(th.StringType)),
                    th.Property(
                        "columns",
                        th.ObjectType(additional_properties=th.StringType(pattern=TYPE_PATTERN)),
                        required=True,
                        description="Ordered mapping: column name -> the warehouse type its values must fit "
                        "(integer, bigint, numeric(p,s), decimal, string, boolean, date).",
                    ),
                )
            ),
            required=True,
            description="One entry per CSV file; each becomes one stream.",
        ),
        th.Property(
            "lean_messages",
            th.BooleanType,
            default=False,
            description="SCHEMA messages without column types and RECORD messages without time_extracted, "
            "for a target that only appends records to files (the values are checked here either way).",
        ),
        th.Property(
            "paths",
            th.ObjectType(additional_properties=th.StringType),
            description="Stream name -> CSV file; wins over the `path` of that stream's `files` entry.",
        ),
    ).to_dict()

    def sync_all(self) -> None:  # type: ignore[misc]  # final in the SDK; extended here only to flush its writer
        """Sync every stream, then write what the buffered writer holds, also when a stream
        fails (the records before a refused row reach the target, as with the SDK's writer)."""
        writer = self.message_writer
        if isinstance(writer, BufferedMsgSpecWriter):
            writer.lean = bool(self.config.get("lean_messages"))
        try:
            super().sync_all()
        finally:
            if isinstance(writer, BufferedMsgSpecWriter):
                writer.flush()

    def discover_streams(self) -> list[Stream]:
        """Return one full-table stream per entry of `files`."""
        paths = self.config.get("paths") or {}
        streams: list[Stream] = []
        for file_config in self.config["files"]:
            path = paths.get(file_config["stream"]) or file_config.get("path")
            if not path:
                raise CsvInputError(f"stream {file_config['stream']}: no CSV file configured (set `paths` or `path`)")
            streams.append(CsvFileStream(self, {**file_config, "path": str(_from_project_root(path))}))
        return streams


if __name__ == "__main__":
    TapNorthwindCsv.cli()
