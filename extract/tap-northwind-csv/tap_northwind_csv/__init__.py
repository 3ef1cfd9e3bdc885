"""Singer tap that streams typed rows from local CSV files."""

from tap_northwind_csv.streams import CsvInputError
from tap_northwind_csv.tap import TapNorthwindCsv

__all__ = ["CsvInputError", "TapNorthwindCsv"]
