"""Bad input in order_details.csv, through the real pipeline.

Policy (docs/guarantees.md, "Bad input policy"): the file is either accepted exactly, or the day is rejected with a
message naming the file, the line and the column; nothing is quarantined and no earlier good day
is touched. The CSV tap checks shape and types; publishing checks duplicate keys; dbt tests
check values and references (negative quantity, empty price, an order that does not exist).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Project

BASE = "2024-04-01"
HEADER = "order_id,product_id,unit_price,quantity,discount"


@pytest.fixture(scope="module")
def base(project: Project) -> Project:
    project.make("extract-csv", f"DATE={BASE}", check=True)
    return project


@pytest.fixture()
def real_lines(base: Project) -> list[str]:
    return (base.settings.source_dir / "order_details.csv").read_text().splitlines()


def _extract(project: Project, path: Path, day: str = "2024-04-02") -> subprocess.CompletedProcess[str]:
    return project.make("extract-csv", f"DATE={day}", env={"ORDER_DETAILS_CSV": str(path)})


def _landed(project: Project, day: str = "2024-04-02") -> bytes:
    return (project.data_dir / f"csv/order_details/{day}/order_details.jsonl").read_bytes()


REJECTED = {
    # kind: (how to break the real file, what the message must say)
    "wrong-column-count": (lambda ls: [*ls[:5], "10249,14,18.6,9", *ls[6:]], "line 6: found 4 values but the header has 5 columns"),
    "missing-header": (lambda ls: ls[1:], "line 1: header ['10248', '11', '14', '12', '0'] does not match the configured columns"),
    "non-numeric-quantity": (lambda ls: [*ls[:3], "10249,14,18.6,nine,0", *ls[4:]], "line 4, column quantity: 'nine' is not an integer"),
    "comma-inside-a-number": (lambda ls: [*ls[:3], '10249,14,"18,6",9,0', *ls[4:]], "line 4, column unit_price: '18,6' is not a decimal"),
    "empty-file": (lambda ls: [], "the file is empty"),
    "header-without-rows": (lambda ls: ls[:1], "the file has a header but no data rows"),  # empty-day policy
    "renamed-header-column": (
        lambda ls: ["order_id,product_id,price,quantity,discount", *ls[1:]],
        "(missing columns ['unit_price']; unexpected columns ['price'])",
    ),
}


@pytest.mark.parametrize("kind", sorted(REJECTED))
def test_rejected_with_file_line_and_column(base: Project, real_lines: list[str], tmp_path: Path, kind: str) -> None:
    before = base.day_files(BASE, "csv")
    breaker, message = REJECTED[kind]
    path = tmp_path / "order_details.csv"
    path.write_text("\n".join(breaker(real_lines)) + ("\n" if breaker(real_lines) else ""))
    result = _extract(base, path, BASE)
    assert result.returncode != 0
    assert "FAILED: step extract-csv" in result.stderr
    assert str(path) in result.stderr and message in result.stderr, result.stderr
    assert base.day_files(BASE, "csv") == before  # the good day is untouched


def test_non_utf8_bytes_rejected_with_line(base: Project, real_lines: list[str], tmp_path: Path) -> None:
    path = tmp_path / "order_details.csv"
    path.write_bytes(("\n".join(real_lines[:9]) + "\n").encode() + b"10251,22,16.8,6,0\xff\n")
    result = _extract(base, path)
    assert result.returncode != 0
    assert f"{path} line 10: byte offset" in result.stderr and "is not valid UTF-8" in result.stderr


@pytest.mark.parametrize("kind", ["crlf", "bom", "quoted", "reordered-header"])
def test_accepted_variants_land_identically(base: Project, real_lines: list[str], tmp_path: Path, kind: str) -> None:
    path = tmp_path / "order_details.csv"
    if kind == "crlf":
        path.write_bytes(("\r\n".join(real_lines) + "\r\n").encode())
    elif kind == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(real_lines) + "\n").encode())
    elif kind == "quoted":
        path.write_text("\n".join(",".join(f'"{v}"' for v in line.split(",")) for line in real_lines) + "\n")
    else:
        order = [4, 3, 2, 1, 0]
        path.write_text("\n".join(",".join(line.split(",")[i] for i in order) for line in real_lines) + "\n")
    day = f"2024-04-1{['crlf', 'bom', 'quoted', 'reordered-header'].index(kind)}"
    result = _extract(base, path, day)
    assert result.returncode == 0, result.stderr
    assert _landed(base, day) == (base.data_dir / f"csv/order_details/{BASE}/order_details.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("kind", "edit", "failing_test"),
    [
        ("negative-quantity", ("10248,11,14,12,0", "10248,11,14,-12,0"), "quantity_positive"),
        ("empty-price", ("10248,11,14,12,0", "10248,11,,12,0"), "not_null_stg_northwind__order_details_unit_price"),
        ("order-without-order", ("10248,11,14,12,0", "99999,11,14,12,0"), "order_id_in_orders_same_day"),
    ],
)
def test_bad_values_pass_extract_and_fail_transform_naming_the_test(
    base: Project, real_lines: list[str], tmp_path: Path, kind: str, edit: tuple[str, str], failing_test: str
) -> None:
    day = {"negative-quantity": "2024-04-21", "empty-price": "2024-04-22", "order-without-order": "2024-04-23"}[kind]
    path = tmp_path / "order_details.csv"
    path.write_text("\n".join(edit[1] if line == edit[0] else line for line in real_lines) + "\n")
    base.make("extract-postgres", f"DATE={day}", check=True)
    assert _extract(base, path, day).returncode == 0
    base.make("load", f"DATE={day}", check=True)
    result = base.make("transform", f"DATE={day}")
    assert result.returncode != 0
    assert failing_test in result.stderr, result.stderr
    # the data breaks a rule: a rerun of dbt alone would fail again, so the advice is the whole day
    assert "fix it at its source" in result.stderr and f"  resume: make pipeline DATE={day}\n" in result.stderr
    refused = base.make("export", f"DATE={day}")
    assert refused.returncode != 0 and f"  resume: make pipeline DATE={day}\n" in refused.stderr


def test_huge_file_streams_with_flat_memory(base: Project, real_lines: list[str], tmp_path: Path) -> None:
    """~215k rows (100 copies with shifted order ids): accepted, counted, memory bounded."""
    path = tmp_path / "order_details.csv"
    with path.open("w") as out:
        out.write(HEADER + "\n")
        for copy in range(100):
            for line in real_lines[1:]:
                order_id, rest = line.split(",", 1)
                out.write(f"{int(order_id) + copy * 100000},{rest}\n")
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    result = base.run(
        sys.executable, "-c", probe, "make", "--no-print-directory", "extract-csv", "DATE=2024-04-30", env={"ORDER_DETAILS_CSV": str(path)}
    )
    assert result.returncode == 0, result.stderr
    peak_mib = int(result.stdout.strip().splitlines()[-1]) / 1024
    rows = sum(1 for _ in (base.data_dir / "csv/order_details/2024-04-30/order_details.jsonl").open("rb"))
    assert rows == 215500
    assert peak_mib < 400, f"peak RSS of one process {peak_mib:.0f} MiB"


# Numbers arrive exactly or are refused at extract. Each extra row: (the CSV line, the column, the
# value raw.order_details must hold, compared as numeric and as text).
EXACT = [
    ("90001,1,1E+5,1,0", "unit_price", "100000"),  # an exponent: stored as the integer it is
    ("90002,1,9999999999.994999999999,1,0", "unit_price", "9999999999.994999999999"),  # numeric(12,2)'s largest, once rounded
    ("90003,1,0.1234567890123456789012345678901234567891,1,0", "unit_price", "0.1234567890123456789012345678901234567891"),
    ("90004,1,1234567890.12345678901234567890,1,0", "unit_price", "1234567890.12345678901234567890"),
    ("90005,1,-0,1,-0.0", "discount", "0.0"),  # numeric has no negative zero: the same value
    ("90006,1,14,1,9.99994", "discount", "9.99994"),  # numeric(5,4)'s largest, once rounded
    ("90007,1,-2.2250738585072014E-308,1,0", "unit_price", "-2.2250738585072014E-308"),
    ("2147483647,-2147483648,1,1,0", "order_id", "2147483647"),  # integer's bounds
]


def test_accepted_numbers_arrive_exactly_in_the_warehouse(base: Project, real_lines: list[str], tmp_path: Path) -> None:
    day = "2024-04-24"
    path = tmp_path / "order_details.csv"
    path.write_text("\n".join([*real_lines, *(line for line, _, _ in EXACT)]) + "\n")
    base.make("extract-postgres", f"DATE={day}", check=True)
    assert _extract(base, path, day).returncode == 0
    base.make("load", f"DATE={day}", check=True)
    for line, column, expected in EXACT:
        order_id, product_id = (int(v) for v in line.split(",")[:2])
        rows = base.sql(
            f"select {column}::text, {column} = %s::numeric from raw.order_details"
            " where snapshot_date = %s and order_id = %s and product_id = %s",
            (expected, day, order_id, product_id),
        )
        assert len(rows) == 1 and rows[0][1] is True, (line, rows)
        if "E" not in expected:  # the text too, digit for digit
            assert rows[0][0] == expected
    assert base.sql("select count(*) from raw.order_details where snapshot_date = %s", (day,)) == [(2155 + len(EXACT),)]


@pytest.mark.parametrize("batch_rows", ["50000", "0"])
def test_many_digit_decimal_arrives_exactly_through_copy(base: Project, real_lines: list[str], tmp_path: Path, batch_rows: str) -> None:
    """target-postgres loads with COPY (the project's `use_copy: true`), which sends a DECIMAL
    column through a float: decimals travel as text in the load schema and the commit casts them
    back to numeric. Both ways tap-landing hands records over (BATCH files, RECORD messages) keep
    every digit."""
    day = {"50000": "2024-04-25", "0": "2024-04-26"}[batch_rows]
    path = tmp_path / "order_details.csv"
    path.write_text("\n".join([*real_lines, "90011,1,1234567890.5678901234567,1,0.0000000001"]) + "\n")
    base.make("extract-postgres", f"DATE={day}", check=True)
    assert _extract(base, path, day).returncode == 0
    base.make("load", f"DATE={day}", check=True, env={"TAP_LANDING_BATCH_ROWS": batch_rows})
    log = max((base.data_dir / "logs" / day).glob("load-*.log"), key=lambda p: p.stat().st_mtime).read_text()
    assert "Inserting with SQL: COPY" in log and "Inserting with SQL: INSERT" not in log
    rows = base.sql(
        "select unit_price::text, discount::text, pg_typeof(unit_price)::text from raw.order_details"
        " where snapshot_date = %s and order_id = 90011 and product_id = 1",
        (day,),
    )
    assert rows == [("1234567890.5678901234567", "0.0000000001", "numeric")]
    assert base.sql("select freight::text from raw.orders where snapshot_date = %s and order_id = 10248", (day,)) == [("32.38",)]


REFUSED_NUMBERS = {
    # kind: (the extra line, the column and value the message must name)
    "decimal-above-a-double": ("10248,99,1E+400,1,0", "column unit_price: '1E+400' is outside a double's range"),
    "decimal-below-a-double": ("10248,99,14,1,1E-400", "column discount: '1E-400' is outside a double's range"),
    "integer-past-integer": (
        "2147483648,1,14,1,0",
        "column order_id: '2147483648' is outside the warehouse's integer range (-2147483648 to 2147483647)",
    ),
    "quantity-past-integer": (
        "10248,99,14,3000000000,0",
        "column quantity: '3000000000' is outside the warehouse's integer range (-2147483648 to 2147483647)",
    ),
    "price-past-numeric-12-2": (
        "10248,99,1E+20,1,0",
        "column unit_price: '1E+20' is more than the warehouse's numeric(12,2) holds (at most 9999999999.99 in magnitude)",
    ),
}


@pytest.mark.parametrize("kind", sorted(REFUSED_NUMBERS))
def test_numbers_that_cannot_arrive_exactly_are_refused_at_extract(base: Project, real_lines: list[str], tmp_path: Path, kind: str) -> None:
    before = base.day_files(BASE, "csv")
    line, message = REFUSED_NUMBERS[kind]
    path = tmp_path / "order_details.csv"
    path.write_text("\n".join([*real_lines, line]) + "\n")
    result = _extract(base, path, BASE)
    assert result.returncode != 0
    assert "FAILED: step extract-csv" in result.stderr
    assert f"{path} line {len(real_lines) + 1}, {message}" in result.stderr, result.stderr
    assert base.day_files(BASE, "csv") == before  # the good day is untouched
