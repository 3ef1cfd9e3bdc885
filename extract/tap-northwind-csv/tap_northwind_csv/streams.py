"""One Singer stream per configured CSV file.

The file is read row by row with the csv module, so memory stays flat however
big the file is. Each value is typed from its exact text: integers become int,
decimals become decimal.Decimal (never float, so 9.8 is emitted as 9.8).
A column's type is the warehouse type it ends up in (`integer`, `bigint`,
`numeric(p,s)`, ...), and a value that type cannot hold is refused here, where
it enters, rather than failing a later step: an integer outside its range, a
decimal past its precision, a nonzero decimal whose magnitude is outside a
double's normal range (the Singer SDK's conformance, which other taps of the
pipeline run, turns one past the largest double into null) or with more digits
after the point than PostgreSQL's numeric keeps. Anything unexpected stops the
run with a CsvInputError that names the file, the line, the column, the
offending value and the limit.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import os
import re
import stat
import sys
import typing as t
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import partial
from pathlib import Path

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

if t.TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

RERUN = "rerun extract-csv for the day"
POINT_AT_IT = "check that ORDER_DETAILS_CSV (the `paths.order_details` setting) names a readable CSV file, then " + RERUN

# JSON schema for each supported column type (nullable; key columns are not); numeric(p,s) is a number.
COLUMN_SCHEMAS: dict[str, dict[str, t.Any]] = {
    "integer": {"type": "integer"},
    "bigint": {"type": "integer"},
    "decimal": {"type": "number"},
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
}

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_NUMERIC = re.compile(r"numeric\(([1-9][0-9]{0,3}), *([0-9]{1,4})\)")  # numeric(precision, scale), as PostgreSQL spells it
# the range of each integer type (target-postgres stores them all as bigint; the models cast to the column's type)
INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
BIGINT_MIN, BIGINT_MAX = INTEGER_RANGES["bigint"]
# nonzero decimals must lie within a double's normal range: the Singer SDK's conformance
# (math.isinf on each number; off in this tap, on in tap-postgres) turns anything that overflows
# a double into null, and any hop that goes through a float would turn a smaller one into 0
DECIMAL_MIN = Decimal(sys.float_info.min)  # 2.2250738585072014E-308, exactly
DECIMAL_MAX = Decimal(sys.float_info.max)  # 1.7976931348623157E+308, exactly
# PostgreSQL's numeric keeps at most this many digits after the decimal point
NUMERIC_MAX_SCALE = 16383
# The csv module refuses a field longer than csv.field_size_limit() (131,072 characters), but
# only after the file iterator has read the whole physical line into memory: one 600 MB field
# would take over a gigabyte before the refusal. Lines are therefore read at most this many
# characters at a time, and a longer one is refused. Only a row of several text fields near the
# field limit could be valid and longer; the project's order_details columns are numbers.
MAX_LINE_CHARS = 1 << 20
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class CsvInputError(Exception):
    """The CSV file is missing, unreadable or does not match the configuration."""


def _parse_integer(text: str, column_type: str = "bigint") -> int:
    if text.isascii() and text.isdecimal() and len(text) < 10:  # plain digits below 10**9: within every range
        return int(text)
    if not _INTEGER.fullmatch(text):
        raise ValueError("is not an integer")
    low, high = INTEGER_RANGES[column_type]
    # checked before int(): past 19 digits it is out of range anyway, and Python refuses to
    # convert more than 4300 digits
    if len(text.lstrip("+-").lstrip("0")) > 19 or not low <= (value := int(text)) <= high:
        raise ValueError(f"is outside the warehouse's {column_type} range ({low} to {high})")
    return value


def _parse_decimal(text: str) -> Decimal:
    # The regex rejects what Decimal() would otherwise accept: NaN, Infinity,
    # surrounding spaces and "1_000".
    if not _DECIMAL.fullmatch(text):
        raise ValueError("is not a decimal number")
    if len(text) < 300 and "e" not in text and "E" not in text:  # plain and short: within both limits below
        return Decimal(text)
    try:
        value = Decimal(text)  # exact, whatever the context's precision
    except InvalidOperation:  # an exponent past what decimal itself can hold
        value = Decimal("Infinity")
    if value and not DECIMAL_MIN <= value.copy_abs() <= DECIMAL_MAX:  # copy_abs: exact, unlike abs()
        raise ValueError(
            "is outside a double's range and would not arrive exactly (a nonzero decimal must "
            "have a magnitude from 2.2250738585072014E-308 to 1.7976931348623157E+308)"
        )
    if -value.as_tuple().exponent > NUMERIC_MAX_SCALE:  # type: ignore[operator]
        raise ValueError(f"has more than {NUMERIC_MAX_SCALE} digits after the decimal point (PostgreSQL numeric's limit)")
    return value


def _parse_numeric(precision: int, scale: int, context: decimal.Context, text: str) -> Decimal:
    """A decimal that numeric(precision, scale) holds once PostgreSQL rounds it to `scale` digits
    after the point (half away from zero); the value itself is kept exactly as written.
    `context`: precision + 1 digits (the parser's, made once)."""
    value = _parse_decimal(text)
    whole_digits = precision - scale
    rounded = value.quantize(Decimal(1).scaleb(-scale), ROUND_HALF_UP, context) if value.adjusted() < whole_digits else value
    if rounded and rounded.adjusted() >= whole_digits:
        largest = Decimal(10) ** whole_digits - Decimal(10) ** -scale
        raise ValueError(f"is more than the warehouse's numeric({precision},{scale}) holds (at most {largest:f} in magnitude)")
    return value


def _shown(text: str) -> str:
    """The offending value as an error message quotes it (the start of a very long one)."""
    return repr(text) if len(text) <= 80 else f"{text[:40] + '…'!r} ({len(text)} characters)"


def _parse_boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("is not a boolean (true/false)")


def _parse_date(text: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError("is not a date (YYYY-MM-DD)") from None


PARSERS: dict[str, t.Callable[[str], t.Any]] = {
    "decimal": _parse_decimal,
    "string": str,
    "boolean": _parse_boolean,
    "date": _parse_date,
}


TYPES = ["integer", "bigint", "numeric(p,s)", "decimal", "string", "boolean", "date"]  # decimal: numeric without limits
TYPE_PATTERN = r"^(integer|bigint|numeric\([0-9]+, *[0-9]+\)|decimal|string|boolean|date)$"


def parser_of(column_type: str) -> t.Callable[[str], t.Any] | None:
    """The parser of a column type (None: no such type)."""
    if column_type in INTEGER_RANGES:
        return partial(_parse_integer, column_type=column_type)
    if match := _NUMERIC.fullmatch(column_type):
        precision, scale = int(match[1]), int(match[2])
        valid = precision <= 1000 and scale <= precision
        return partial(_parse_numeric, precision, scale, decimal.Context(prec=precision + 1)) if valid else None
    return PARSERS.get(column_type)


def _locate_invalid_utf8(path: Path) -> tuple[int, int]:
    """Return (line number, byte offset) of the first byte that is not UTF-8.

    Only called after a UnicodeDecodeError: the text reader decodes in chunks,
    so it cannot tell us exactly where the bad byte is. A second pass over the
    raw bytes, one line at a time, can.
    """
    offset = 0
    with path.open("rb") as raw_file:
        for line_number, raw_line in enumerate(raw_file, start=1):
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return line_number, offset + exc.start
            offset += len(raw_line)
    return 0, offset  # not reached when the file really has a bad byte


class CsvFileStream(Stream):
    """Full-table stream over one CSV file described in the tap config."""

    # the parsers above give JSON-ready values (int, finite Decimal, str, bool, None; a date as
    # its text): the SDK's per-value conformance would hand each one back unchanged
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, file_config: dict[str, t.Any]) -> None:
        self.path = Path(file_config["path"])
        self.columns: dict[str, str] = dict(file_config["columns"])
        key_properties: list[str] = list(file_config.get("key_properties") or [])

        self.parsers: dict[str, t.Callable[[str], t.Any]] = {}
        for column, column_type in self.columns.items():
            if (parser := parser_of(column_type)) is None:
                msg = f"stream {file_config['stream']}: column {column} has type {column_type!r}; use one of {', '.join(TYPES)}"
                raise CsvInputError(msg)
            self.parsers[column] = parser
        unknown_keys = [key for key in key_properties if key not in self.columns]
        if unknown_keys:
            msg = f"stream {file_config['stream']}: key_properties {unknown_keys} are not listed in columns"
            raise CsvInputError(msg)

        properties: dict[str, t.Any] = {}
        for column, column_type in self.columns.items():
            column_schema = dict(COLUMN_SCHEMAS.get(column_type, COLUMN_SCHEMAS["decimal"]))
            if column not in key_properties:
                column_schema["type"] = [column_schema["type"], "null"]
            properties[column] = column_schema
        schema = {
            "type": "object",
            "properties": properties,
            "required": key_properties,
        }

        super().__init__(tap=tap, schema=schema, name=file_config["stream"])
        self.primary_keys = key_properties
        self.replication_key = None

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Yield one typed record per CSV row, in file order."""
        try:
            with self._open() as csv_file:
                reader = csv.reader(self._bounded_lines(csv_file))
                try:
                    yield from self._typed_rows(reader)
                except UnicodeDecodeError:
                    line_number, byte_offset = _locate_invalid_utf8(self.path)
                    msg = (
                        f"{self.path} line {line_number}: byte offset {byte_offset} is not valid UTF-8; save the file as UTF-8 and {RERUN}"
                    )
                    raise CsvInputError(msg) from None
                except csv.Error as exc:
                    msg = f"{self.path} line {reader.line_num}: {exc}; fix the file and {RERUN}"
                    raise CsvInputError(msg) from None
        except (FileNotFoundError, PermissionError) as exc:
            raise CsvInputError(f"{self.path}: cannot read the CSV file ({exc.strerror}); {POINT_AT_IT}") from None

    def _open(self) -> t.TextIO:
        """The file, refused in one line unless it is a regular file: a FIFO with no writer would
        block the run forever (it is opened without waiting, then checked)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CsvInputError(f"{self.path}: not a regular file (a directory, FIFO, socket or device); {POINT_AT_IT}")
            os.set_blocking(fd, True)
            return open(fd, encoding="utf-8-sig", newline="")  # closed by the caller's with
        except BaseException:
            os.close(fd)
            raise

    def _bounded_lines(self, csv_file: t.TextIO) -> t.Iterator[str]:
        """The file's physical lines, refusing one longer than MAX_LINE_CHARS without reading it whole."""
        line_number = 0
        while line := csv_file.readline(MAX_LINE_CHARS + 1):
            line_number += 1
            if len(line) > MAX_LINE_CHARS:
                msg = (
                    f"{self.path} line {line_number}: the line is longer than {MAX_LINE_CHARS} characters "
                    f"(a field holds at most {csv.field_size_limit()}); fix the file and {RERUN}"
                )
                raise CsvInputError(msg)
            yield line

    def _typed_rows(self, reader: t.Iterator[list[str]]) -> t.Iterator[dict[str, t.Any]]:
        header = next(reader, None)
        if header is None:
            msg = f"{self.path}: the file is empty; expected a header row: "
            msg += f"{','.join(self.columns)}"
            raise CsvInputError(msg)
        self._check_header(header)

        parsers = [self.parsers[name] for name in header]
        keys = set(self.primary_keys or [])
        in_order = header == list(self.columns)
        rows = 0
        for row in reader:
            line_num = reader.line_num  # type: ignore[attr-defined]
            if len(row) != len(header):
                msg = (
                    f"{self.path} line {line_num}: found {len(row)} values but the "
                    f"header has {len(header)} columns; fix the row and {RERUN}"
                )
                raise CsvInputError(msg)
            record: dict[str, t.Any] = {}
            for name, parse, text in zip(header, parsers, row, strict=True):
                if text == "":
                    if name in keys:
                        msg = f"{self.path} line {line_num}, column {name}: key column is empty; fix the row and {RERUN}"
                        raise CsvInputError(msg)
                    record[name] = None
                    continue
                try:
                    record[name] = parse(text)
                except ValueError as exc:
                    msg = f"{self.path} line {line_num}, column {name}: {_shown(text)} {exc}; fix the row and {RERUN}"
                    raise CsvInputError(msg) from None
            # the configured column order, whatever the header's: the output does not
            # depend on how the file happens to order its columns
            yield record if in_order else {name: record[name] for name in self.columns}
            rows += 1
        if rows == 0:
            # Empty-day policy: the file is a full snapshot of every order line, so a header
            # without rows is a broken upstream export, not a day without orders; publishing it
            # would empty the day in raw, the mart and the exported files. Nothing is published.
            msg = (
                f"{self.path}: the file has a header but no data rows; a day's order lines are "
                f"never empty (policy: the day is rejected, the previous files of the day are "
                f"kept); fix the file and {RERUN}"
            )
            raise CsvInputError(msg)

    def _check_header(self, header: list[str]) -> None:
        """The header must name exactly the configured columns, in any order."""
        expected = set(self.columns)
        missing = [name for name in self.columns if name not in header]
        extra = [name for name in header if name not in expected]
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if not (missing or extra or duplicated):
            return
        problems = []
        if missing:
            problems.append(f"missing columns {missing}")
        if extra:
            problems.append(f"unexpected columns {extra}")
        if duplicated:
            problems.append(f"duplicated columns {duplicated}")
        msg = (
            f"{self.path} line 1: header {header} does not match the configured "
            f"columns ({'; '.join(problems)}); the first row must be the header "
            f"{','.join(self.columns)} (any order); fix the header and {RERUN}"
        )
        raise CsvInputError(msg)
