"""The tap: reads its `files` setting and builds one stream per CSV file."""

from __future__ import annotations

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from tap_northwind_csv.streams import PARSERS, CsvFileStream
from tap_northwind_csv.writer import BufferedMsgSpecWriter


class TapNorthwindCsv(Tap):
    """Singer tap for local CSV files with a declared, typed set of columns."""

    name = "tap-northwind-csv"
    # msgspec encoding and a buffered stdout (see writer.py): about half of the tap's time
    # per row went into the standard library's JSON encoder and a flush per message
    message_writer_class = BufferedMsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "files",
            th.ArrayType(
                th.ObjectType(
                    th.Property("stream", th.StringType, required=True),
                    th.Property("path", th.StringType, required=True),
                    th.Property("key_properties", th.ArrayType(th.StringType)),
                    th.Property(
                        "columns",
                        th.ObjectType(
                            additional_properties=th.StringType(allowed_values=list(PARSERS))
                        ),
                        required=True,
                        description="Ordered mapping: column name -> type "
                        "(integer, decimal, string, boolean, date).",
                    ),
                )
            ),
            required=True,
            description="One entry per CSV file; each becomes one stream.",
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """Return one full-table stream per entry of `files`."""
        return [CsvFileStream(self, file_config) for file_config in self.config["files"]]


if __name__ == "__main__":
    TapNorthwindCsv.cli()
