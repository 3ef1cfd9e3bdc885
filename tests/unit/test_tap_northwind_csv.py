"""Tests for extract/tap-northwind-csv (run from a venv where the tap is installed)."""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from singer_sdk.testing import get_tap_test_class

from tap_northwind_csv import CsvInputError, TapNorthwindCsv

HEADER = "order_id,product_id,unit_price,quantity,discount"
ORDER_COLUMNS = {  # as meltano.yml configures them (test_the_configured_types_are_the_staging_models_casts)
    "order_id": "integer",
    "product_id": "integer",
    "unit_price": "numeric(12,2)",
    "quantity": "integer",
    "discount": "numeric(5,4)",
}
ORDER_KEYS = ["order_id", "product_id"]
DECIMALS = {**ORDER_COLUMNS, "unit_price": "decimal", "discount": "decimal"}  # numeric without a precision


def make_config(
    path: Path,
    columns: dict[str, str] = ORDER_COLUMNS,
    keys: list[str] = ORDER_KEYS,
    stream: str = "order_details",
) -> dict[str, Any]:
    return {"files": [{"stream": stream, "path": str(path), "key_properties": keys, "columns": columns}]}


# --- Singer SDK standard tests ----------------------------------------------
# get_tap_test_class needs its config when the class is created, so the sample
# file is written at import time into a temporary folder removed at exit.
_SAMPLE_DIR = Path(tempfile.mkdtemp(prefix="tap-northwind-csv-"))
atexit.register(shutil.rmtree, _SAMPLE_DIR, ignore_errors=True)
_SAMPLE_CSV = _SAMPLE_DIR / "order_details.csv"
_SAMPLE_CSV.write_text(
    f"{HEADER}\n10248,11,14,12,0\n10248,42,9.8,10,0\n10249,14,18.6,9,0.15\n",
    encoding="utf-8",
)

TestTapNorthwindCsvStandard = get_tap_test_class(TapNorthwindCsv, config=make_config(_SAMPLE_CSV))


# --- helpers -------------------------------------------------------------------
def write_csv(tmp_path: Path, content: str | bytes, name: str = "order_details.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        # newline="" keeps "\r\n" as written, so tests control the line endings.
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(content)
    return path


def run_tap(config: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> str:
    """Run a full sync in-process and return the Singer messages written to stdout."""
    capsys.readouterr()  # drop anything printed before the sync
    TapNorthwindCsv(config=config, parse_env_config=False).sync_all()
    return capsys.readouterr().out


def records(stdout: str) -> list[dict[str, Any]]:
    messages = [json.loads(line, parse_float=Decimal) for line in stdout.splitlines()]
    return [m["record"] for m in messages if m["type"] == "RECORD"]


def sync_error(config: dict[str, Any]) -> str:
    """Run a sync that must fail and return the CsvInputError message."""
    with pytest.raises(CsvInputError) as excinfo:
        TapNorthwindCsv(config=config, parse_env_config=False).sync_all()
    return str(excinfo.value)


# --- records -------------------------------------------------------------------
def test_integers_are_ints_and_decimals_are_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n10248,11,14,12,0\n10248,42,9.8,10,0.15\n")
    stdout = run_tap(make_config(path), capsys)

    # The raw JSON text must carry the numbers exactly as written in the file.
    assert '"unit_price":9.8,' in stdout
    assert '"discount":0.15}' in stdout
    assert '"unit_price":14,' in stdout
    assert "9.80000" not in stdout and "0.1499" not in stdout

    rows = records(stdout)
    assert rows == [
        {"order_id": 10248, "product_id": 11, "unit_price": 14, "quantity": 12, "discount": 0},
        {
            "order_id": 10248,
            "product_id": 42,
            "unit_price": Decimal("9.8"),
            "quantity": 10,
            "discount": Decimal("0.15"),
        },
    ]
    assert all(type(row["quantity"]) is int for row in rows)


def test_schema_message_types_columns_and_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n1,2,3,4,0\n")
    messages = [json.loads(line) for line in run_tap(make_config(path), capsys).splitlines()]
    schema_message = next(m for m in messages if m["type"] == "SCHEMA")
    properties = schema_message["schema"]["properties"]
    assert schema_message["stream"] == "order_details"
    assert schema_message["key_properties"] == ORDER_KEYS
    assert properties["order_id"] == {"type": "integer"}
    assert properties["quantity"] == {"type": ["integer", "null"]}
    assert properties["unit_price"] == {"type": ["number", "null"]}


def test_lean_messages_drop_types_and_time_extracted_not_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`lean_messages` (the project's setting for target-jsonl-csv): the SCHEMA names the keys but
    no column (target-jsonl validates every record against it), RECORD messages carry no
    time_extracted, the records are the same."""
    path = write_csv(tmp_path, f"{HEADER}\n10248,11,14,12,0\n10248,42,9.8,10,0.15\n")
    full = [json.loads(line) for line in run_tap(make_config(path), capsys).splitlines()]
    lean = [json.loads(line) for line in run_tap({**make_config(path), "lean_messages": True}, capsys).splitlines()]
    schema = next(m for m in lean if m["type"] == "SCHEMA")
    assert schema["schema"] == {"type": "object"}
    assert schema["key_properties"] == ORDER_KEYS
    assert all("time_extracted" in m for m in full if m["type"] == "RECORD")
    assert not any("time_extracted" in m for m in lean)
    assert [m["record"] for m in lean if m["type"] == "RECORD"] == [m["record"] for m in full if m["type"] == "RECORD"]
    # and the tap still refuses what it cannot carry, lean or not
    bad = write_csv(tmp_path, f"{HEADER}\n10248,11,abc,12,0\n")
    with pytest.raises(CsvInputError, match="unit_price"):
        TapNorthwindCsv(config={**make_config(bad), "lean_messages": True}, parse_env_config=False).sync_all()


def test_records_keep_file_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [f"{order_id},{product},1,1,0" for order_id, product in [(3, 1), (1, 9), (2, 5)]]
    path = write_csv(tmp_path, HEADER + "\n" + "\n".join(lines) + "\n")
    rows = records(run_tap(make_config(path), capsys))
    assert [(r["order_id"], r["product_id"]) for r in rows] == [(3, 1), (1, 9), (2, 5)]


def test_header_in_another_order_maps_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path, "discount,quantity,unit_price,product_id,order_id\n0.05,7,9.8,42,10248\n")
    assert records(run_tap(make_config(path), capsys)) == [
        {
            "order_id": 10248,
            "product_id": 42,
            "unit_price": Decimal("9.8"),
            "quantity": 7,
            "discount": Decimal("0.05"),
        }
    ]


def test_bom_and_crlf_are_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content = f"\ufeff{HEADER}\r\n10248,11,14,12,0\r\n10248,42,9.8,10,0\r\n".encode()
    path = write_csv(tmp_path, content)
    rows = records(run_tap(make_config(path), capsys))
    assert [r["product_id"] for r in rows] == [11, 42]
    assert rows[1]["unit_price"] == Decimal("9.8")


def test_quoted_string_with_comma_and_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    columns = {"id": "integer", "note": "string"}
    path = write_csv(tmp_path, 'id,note\r\n1,"Chai, organic\nsecond line"\r\n2,plain\r\n')
    rows = records(run_tap(make_config(path, columns, ["id"], "notes"), capsys))
    assert rows == [{"id": 1, "note": "Chai, organic\nsecond line"}, {"id": 2, "note": "plain"}]


def test_empty_values_become_null(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n10248,11,,12,\n")
    stdout = run_tap(make_config(path), capsys)
    assert '"unit_price":null' in stdout
    assert records(stdout) == [{"order_id": 10248, "product_id": 11, "unit_price": None, "quantity": 12, "discount": None}]


def test_other_column_types(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    columns = {"id": "integer", "name": "string", "active": "boolean", "born": "date"}
    path = write_csv(tmp_path, "id,name,active,born\n1,Ann,true,1968-12-08\n2,,0,\n")
    assert records(run_tap(make_config(path, columns, ["id"], "people"), capsys)) == [
        {"id": 1, "name": "Ann", "active": True, "born": "1968-12-08"},
        {"id": 2, "name": None, "active": False, "born": None},
    ]


def test_negative_numbers_and_duplicate_keys_pass_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n1,2,-3.5,-4,0\n1,2,3.5,4,0\n")
    rows = records(run_tap(make_config(path), capsys))
    assert [(r["unit_price"], r["quantity"]) for r in rows] == [
        (Decimal("-3.5"), -4),
        (Decimal("3.5"), 4),
    ]


# --- errors --------------------------------------------------------------------
def test_wrong_column_count(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n10248,11,14,12,0\n10248,42,9.8,10\n")
    message = sync_error(make_config(path))
    assert f"{path} line 3:" in message
    assert "found 4 values but the header has 5 columns" in message


def test_text_in_integer_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n10248,11,14,12,0\n10248,42,9.8,abc,0\n")
    message = sync_error(make_config(path))
    assert message == (f"{path} line 3, column quantity: 'abc' is not an integer; fix the row and rerun extract-csv for the day")


def test_text_in_decimal_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n10248,11,n/a,12,0\n")
    message = sync_error(make_config(path))
    assert f"{path} line 2, column unit_price: 'n/a' is not a decimal number" in message


def test_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    columns = {"id": "integer", "note": "string"}
    path = write_csv(tmp_path, 'id,note\n1,"two\nlines"\nx,after\n')
    message = sync_error(make_config(path, columns, ["id"], "notes"))
    assert f"{path} line 4, column id: 'x' is not an integer" in message


def test_empty_key_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n10248,,14,12,0\n")
    message = sync_error(make_config(path))
    assert f"{path} line 2, column product_id: key column is empty" in message


def test_missing_column_in_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "order_id,product_id,unit_price,quantity\n1,2,3,4\n")
    message = sync_error(make_config(path))
    assert f"{path} line 1:" in message
    assert "missing columns ['discount']" in message


def test_renamed_and_extra_columns_in_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "order_id,product_id,unit_price,qty,discount,note\n1,2,3,4,0,x\n")
    message = sync_error(make_config(path))
    assert "missing columns ['quantity']" in message
    assert "unexpected columns ['qty', 'note']" in message


def test_missing_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "10248,11,14,12,0\n10248,42,9.8,10,0\n")
    message = sync_error(make_config(path))
    assert f"{path} line 1:" in message
    assert "the first row must be the header" in message


def test_empty_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "")
    message = sync_error(make_config(path))
    assert f"{path}: the file is empty" in message


def test_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    content = f"{HEADER}\n10248,11,14,12,0\n".encode() + b"10248,42,9.8,1\xe9,0\n"
    path = write_csv(tmp_path, content)
    message = sync_error(make_config(path))
    bad_offset = content.index(b"\xe9")
    assert f"{path} line 3: byte offset {bad_offset} is not valid UTF-8" in message


def test_bad_utf8_far_into_the_file_reports_exact_line(tmp_path: Path) -> None:
    good_rows = "".join(f"{n},1,1,1,0\n" for n in range(5000))
    content = f"{HEADER}\n{good_rows}".encode() + b"9999,1,\xff,1,0\n"
    path = write_csv(tmp_path, content)
    bad_offset = content.index(b"\xff")
    message = sync_error(make_config(path))
    assert f"{path} line 5002: byte offset {bad_offset} is not valid UTF-8" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    message = sync_error(make_config(path))
    assert str(path) in message
    assert "ORDER_DETAILS_CSV" in message


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n1,2,3,4,0\n")
    real_open = os.open

    def deny(file: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(file) == path:  # chmod 000 would not stop root, so simulate it
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    message = sync_error(make_config(path))
    assert str(path) in message
    assert "Permission denied" in message and "ORDER_DETAILS_CSV" in message


def test_cli_exits_non_zero_and_reports_on_stderr(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n10248,11,14,12,0\n10248,42,9.8,abc,0\n")
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(make_config(path)), encoding="utf-8")
    executable = Path(sys.executable).parent / "tap-northwind-csv"
    result = subprocess.run(
        [str(executable), "--config", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert f"{path} line 3, column quantity: 'abc' is not an integer" in result.stderr
    assert '"order_id":10248,"product_id":11' in result.stdout  # row 2 was already emitted


def test_a_huge_field_is_refused_without_reading_its_line_whole(tmp_path: Path) -> None:
    """A 300 MB field (one line): refused naming the line, and the tap's memory stays far below
    the line's size (the csv module alone would read the whole line before refusing the field)."""
    path = tmp_path / "order_details.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(f"{HEADER}\n10248,11,14,12,0\n10248,42,")
        chunk = "9" * (1 << 20)
        for _ in range(300):
            handle.write(chunk)
        handle.write(",10,0\n")
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(make_config(path)), encoding="utf-8")
    executable = Path(sys.executable).parent / "tap-northwind-csv"
    process = subprocess.Popen(
        [str(executable), "--config", str(config_file)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    stderr = process.stderr.read() if process.stderr else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode != 0
    assert f"{path} line 3: the line is longer than 1048576 characters" in stderr
    assert usage.ru_maxrss < 150 * 1024, f"peak RSS {usage.ru_maxrss} KiB"  # ru_maxrss is in KiB on Linux


def test_writer_writes_every_byte_when_the_output_takes_part_of_a_block() -> None:
    """With PYTHONUNBUFFERED, stdout's binary layer is the raw file: a write may take only part
    of a block (a full pipe, a signal). The writer must loop, or a record line is cut."""
    from tap_northwind_csv.writer import _write_all

    class Trickle:  # a raw file that takes at most 7 bytes per call
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, view: memoryview) -> int:
            chunk = bytes(view[:7])
            self.data += chunk
            return len(chunk)

    payload = bytearray(b'{"type":"RECORD","record":{"a":1}}\n' * 300)
    out = Trickle()
    _write_all(out, payload)  # type: ignore[arg-type]
    assert bytes(out.data) == bytes(payload)


def test_tap_output_through_a_slow_pipe_is_complete(tmp_path: Path) -> None:
    """Run the tap as Meltano does (stdout a pipe, PYTHONUNBUFFERED=1) with a reader slower than
    the tap: every line must be whole JSON, and all rows must arrive."""
    rows = 30_000
    csv_file = tmp_path / "big.csv"
    csv_file.write_text(
        "order_id,product_id,unit_price,quantity,discount\n"
        + "".join(f"{i},{i % 77 + 1},{i % 100}.25,{i % 9 + 1},0.05\n" for i in range(rows))
    )
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "files": [
                    {
                        "stream": "order_details",
                        "path": str(csv_file),
                        "key_properties": ["order_id", "product_id"],
                        "columns": {
                            "order_id": "integer",
                            "product_id": "integer",
                            "unit_price": "decimal",
                            "quantity": "integer",
                            "discount": "decimal",
                        },
                    }
                ]
            }
        )
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_northwind_csv.tap", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert process.stdout is not None
    records = 0
    while True:
        line = process.stdout.readline()
        if not line:
            break
        message = json.loads(line)  # a cut line would not parse
        records += message["type"] == "RECORD"
        if records % 5000 == 0:
            time.sleep(0.05)  # let the pipe fill up
    assert process.wait() == 0
    assert records == rows


# --- numbers arrive exactly or are refused ---------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1E+5", Decimal("100000")),  # an exponent: the same number, exactly
        ("1234567890123456789012345678901234567890", Decimal("1234567890123456789012345678901234567890")),
        ("0.1234567890123456789012345678901234567891", Decimal("0.1234567890123456789012345678901234567891")),
        ("1.7976931348623157E+308", Decimal("1.7976931348623157E+308")),  # the largest double, written out
        ("-2.2250738585072014E-308", Decimal("-2.2250738585072014E-308")),  # the smallest normal double
        ("-0", Decimal("0")),  # numeric has no negative zero: the same value
        ("0E-5", Decimal("0")),
        ("1." + "1" * 16383, Decimal("1." + "1" * 16383)),  # PostgreSQL numeric's maximum scale
    ],
)
def test_decimals_in_range_are_emitted_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: Decimal) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n10248,11,{text},12,0\n")
    (row,) = records(run_tap(make_config(path, DECIMALS), capsys))
    assert row["unit_price"] == expected
    assert Decimal(str(row["unit_price"])).as_tuple().digits == Decimal(text).as_tuple().digits


@pytest.mark.parametrize(
    "text",
    [
        "1E+400",  # past the largest double: the SDK's record check would turn it into null
        "-1E+400",
        "1.7976931348623158E+308",
        "1E-400",  # below the smallest normal double: a float hop would turn it into 0
        "-2.2250738585072013E-308",
        "1E+99999999999999999999",  # past what Python's decimal can hold
    ],
)
def test_decimals_outside_a_doubles_range_are_refused(tmp_path: Path, text: str) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n10248,11,14,12,0\n10248,42,{text},10,0\n")
    message = sync_error(make_config(path, DECIMALS))
    assert message.startswith(f"{path} line 3, column unit_price: {text!r} is outside a double's range")
    assert "2.2250738585072014E-308 to 1.7976931348623157E+308" in message
    assert message.endswith("fix the row and rerun extract-csv for the day")


def test_decimal_with_more_digits_after_the_point_than_numeric_keeps_is_refused(tmp_path: Path) -> None:
    text = "1." + "1" * 16384
    path = write_csv(tmp_path, f"{HEADER}\n10248,11,14,12,{text}\n")
    message = sync_error(make_config(path, DECIMALS))
    assert f"{path} line 2, column discount: '1.1111" in message
    assert "(16386 characters) has more than 16383 digits after the decimal point" in message


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("9223372036854775807", True),
        ("-9223372036854775808", True),
        ("000000000000000000000000000042", True),  # leading zeros are not magnitude
        ("9223372036854775808", False),
        ("-9223372036854775809", False),
        ("1" * 5000, False),  # past Python's int() digit limit: still a clear refusal
    ],
)
def test_integers_must_fit_the_warehouse_bigint(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, accepted: bool) -> None:
    path = write_csv(tmp_path, f"{HEADER}\n{text},11,14,12,0\n")
    config = make_config(path, {**ORDER_COLUMNS, "order_id": "bigint"})
    if accepted:
        (row,) = records(run_tap(config, capsys))
        assert row["order_id"] == int(text)
        return
    message = sync_error(config)
    shown = repr(text) if len(text) <= 80 else f"'{text[:40]}…' ({len(text)} characters)"
    assert message == (
        f"{path} line 2, column order_id: {shown} is outside the warehouse's bigint range "
        "(-9223372036854775808 to 9223372036854775807); fix the row and rerun extract-csv for the day"
    )


@pytest.mark.parametrize(
    ("column", "text", "limit"),
    [
        ("quantity", "3000000000", "is outside the warehouse's integer range (-2147483648 to 2147483647)"),
        ("quantity", "-2147483649", "is outside the warehouse's integer range (-2147483648 to 2147483647)"),
        ("unit_price", "1E+20", "is more than the warehouse's numeric(12,2) holds (at most 9999999999.99 in magnitude)"),
        ("unit_price", "-9999999999.995", "is more than the warehouse's numeric(12,2) holds (at most 9999999999.99 in magnitude)"),
        ("discount", "10", "is more than the warehouse's numeric(5,4) holds (at most 9.9999 in magnitude)"),
        ("discount", "9.99995", "is more than the warehouse's numeric(5,4) holds (at most 9.9999 in magnitude)"),
    ],
)
def test_a_value_the_warehouse_type_cannot_hold_is_refused_where_it_enters(tmp_path: Path, column: str, text: str, limit: str) -> None:
    values = {"order_id": "10248", "product_id": "11", "unit_price": "14", "quantity": "12", "discount": "0", column: text}
    path = write_csv(tmp_path, f"{HEADER}\n{','.join(values.values())}\n")
    assert (
        sync_error(make_config(path)) == f"{path} line 2, column {column}: {text!r} {limit}; fix the row and rerun extract-csv for the day"
    )


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ("quantity", "2147483647"),
        ("quantity", "-2147483648"),
        ("unit_price", "-9999999999.994"),
        ("discount", "9.99994"),
        ("discount", "0.00001"),
    ],
)
def test_the_largest_values_the_warehouse_type_holds_arrive_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], column: str, text: str
) -> None:
    values = {"order_id": "10248", "product_id": "11", "unit_price": "14", "quantity": "12", "discount": "0", column: text}
    path = write_csv(tmp_path, f"{HEADER}\n{','.join(values.values())}\n")
    (row,) = records(run_tap(make_config(path), capsys))
    assert row[column] == (int(text) if column == "quantity" else Decimal(text))


def test_the_configured_types_are_the_staging_models_casts() -> None:
    """meltano.yml's column types are the warehouse types the staging model casts to: one limit, checked twice."""
    root = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((root / "extract" / "extractors.meltano.yml").read_text())
    (tap,) = [p for p in config["plugins"]["extractors"] if p["name"] == "tap-northwind-csv"]
    (entry,) = tap["config"]["files"]
    model = (root / "transform" / "models" / "staging" / "stg_northwind__order_details.sql").read_text()
    casts = {name: kind.replace(" ", "") for kind, name in re.findall(r"::([a-z]+(?:\([0-9, ]+\))?) as (\w+)", model)}
    assert casts == entry["columns"] == ORDER_COLUMNS


def test_a_csv_that_is_not_a_regular_file_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "order_details.csv"
    os.mkfifo(fifo)  # no writer: opening it for reading the usual way blocks forever
    message = sync_error(make_config(fifo))
    assert message == (
        f"{fifo}: not a regular file (a directory, FIFO, socket or device); check that ORDER_DETAILS_CSV "
        "(the `paths.order_details` setting) names a readable CSV file, then rerun extract-csv for the day"
    )
