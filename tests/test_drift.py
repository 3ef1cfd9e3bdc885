"""Schema drift between days and awkward identifiers, on a private copy of the source database.

Policy (docs/guarantees.md, "Schema drift policy"): a new column is added to the raw table (earlier days read NULL)
and reported; a dropped column reads NULL for the new day and is reported; a changed type is
refused by the load with a message naming table and column, leaving every loaded day as it was.
A changed CSV header is refused by extract-csv (tests/test_csv_inputs.py).
"""

from __future__ import annotations

import pytest

from conftest import Project, new_project
from northwind_elt.database import EmbeddedPostgres

SOURCE_DB = "northwind_test_drift"


@pytest.fixture(scope="module")
def drift(tmp_path_factory: pytest.TempPathFactory, database: None) -> Project:
    project = new_project(tmp_path_factory, "drift", source_database=SOURCE_DB)
    project.make("pipeline", "DATE=2024-05-01", check=True)
    return project


def _source(project: Project, statement: str) -> None:
    with EmbeddedPostgres(project.settings).admin(SOURCE_DB) as conn:
        conn.execute(statement)


def test_added_column_is_added_and_reported(drift: Project) -> None:
    _source(drift, "alter table orders add column priority text default 'normal'")
    result = drift.make("pipeline", "DATE=2024-05-02", check=True)
    assert "schema change in raw.orders on 2024-05-02: new column priority (text); earlier days read NULL" in result.stdout
    assert drift.sql("select snapshot_date::text, count(priority) from raw.orders group by 1 order by 1") == [
        ("2024-05-01", 0),
        ("2024-05-02", 830),
    ]


def test_dropped_column_reads_null_and_is_reported(drift: Project) -> None:
    _source(drift, "alter table shippers drop column phone")
    result = drift.make("pipeline", "DATE=2024-05-03", check=True)
    assert "schema change in raw.shippers on 2024-05-03: column phone is gone from the source" in result.stdout
    assert drift.sql("select snapshot_date::text, count(phone) from raw.shippers group by 1 order by 1") == [
        ("2024-05-01", 6),
        ("2024-05-02", 6),
        ("2024-05-03", 0),
    ]


def test_retyped_column_is_refused_by_the_load(drift: Project) -> None:
    before = drift.raw_snapshot("2024-05-01")
    _source(drift, "alter table products alter column units_in_stock type text")
    try:
        result = drift.make("pipeline", "DATE=2024-05-04")
        assert result.returncode != 0
        assert "FAILED: step load for 2024-05-04" in result.stderr
        assert "schema drift in products on 2024-05-04: column units_in_stock is text in the landed files but bigint" in result.stderr
        assert drift.sql("select count(*) from raw._loads where snapshot_date = '2024-05-04'") == [(0,)]
        assert drift.raw_snapshot("2024-05-01") == before
    finally:
        _source(drift, "alter table products alter column units_in_stock type smallint using units_in_stock::smallint")
    drift.make("pipeline", "DATE=2024-05-04", "STEP=extract-postgres", check=True)


def test_awkward_identifiers_survive_the_pipeline(drift: Project) -> None:
    _source(drift, 'create table "Order Notes" ("Note ID" integer primary key, "Text" text, "Author\'s ""Nick""" text)')
    _source(drift, "insert into \"Order Notes\" values (1, 'first, \"quoted\"', 'ann'), (2, null, 'bob')")
    drift.make("pipeline", "DATE=2024-05-05", check=True)
    assert (drift.data_dir / "postgres" / "Order Notes" / "2024-05-05" / "Order Notes.jsonl").exists()
    # loaded with COPY, whose statement target-postgres 0.8.1 writes without escaping the quotes:
    # the column travels under a stand-in name and reaches raw under its own
    log = max((drift.data_dir / "logs" / "2024-05-05").glob("load-*.log"), key=lambda p: p.stat().st_mtime).read_text()
    assert "Inserting with SQL: COPY" in log and "Inserting with SQL: INSERT" not in log
    columns = drift.sql("select column_name from information_schema.columns where table_schema = 'raw' and table_name = 'Order Notes'")
    assert sorted(name for (name,) in columns) == ['Author\'s "Nick"', "Note ID", "Text", "snapshot_date"]
    assert drift.sql('select "Note ID", "Text", "Author\'s ""Nick""" from raw."Order Notes" order by 1') == [
        (1, 'first, "quoted"', "ann"),
        (2, None, "bob"),
    ]


def test_a_table_gone_from_the_source_leaves_the_day_when_it_is_rerun(drift: Project) -> None:
    """Rerunning a day after a table was dropped from the source: its landed folder of the day and
    its raw rows of the day go, and the day transforms (raw holds exactly the landed day)."""
    day = "2024-05-07"
    _source(drift, "create table short_lived (id integer primary key)")
    _source(drift, "insert into short_lived values (1), (2)")
    drift.make("pipeline", f"DATE={day}", check=True)
    assert drift.sql("select count(*) from raw.short_lived where snapshot_date = %s", (day,)) == [(2,)]
    _source(drift, "drop table short_lived")
    result = drift.make("pipeline", f"DATE={day}", check=True)
    assert f"schema change in raw.short_lived on {day}: the table is gone from the source" in result.stdout
    assert not (drift.data_dir / "postgres" / "short_lived" / day).exists()
    assert drift.sql("select count(*) from raw.short_lived where snapshot_date = %s", (day,)) == [(0,)]
    assert drift.sql("select count(*) from raw._loads where snapshot_date = %s and table_name = 'short_lived'", (day,)) == [(0,)]


def test_text_values_arrive_exactly_through_copy(drift: Project) -> None:
    """The load uses COPY: text that COPY's format escapes (tab, newlines, backslash, the literal
    `\\N` that means NULL in COPY text) arrives exactly, and an empty string stays apart from NULL."""
    day = "2024-05-08"
    values = ["tab\there", "new\nline", "carriage\rreturn", "back\\slash", "\\N", "", None, 'a "quoted", comma', "ünï €"]
    with EmbeddedPostgres(drift.settings).admin(SOURCE_DB) as conn:
        conn.execute("create table awkward_texts (id integer primary key, t text)")
        for number, value in enumerate(values):
            conn.execute("insert into awkward_texts values (%s, %s)", (number, value))
    try:
        result = drift.make("pipeline", f"DATE={day}", check=True)
        log = max((drift.data_dir / "logs" / day).glob("load-*.log"), key=lambda p: p.stat().st_mtime).read_text()
        assert "Inserting with SQL: COPY" in log, result.stdout[-2000:]
        rows = drift.sql("select id, t from raw.awkward_texts where snapshot_date = %s order by id", (day,))
        assert rows == list(enumerate(values))
    finally:
        _source(drift, "drop table awkward_texts")


def test_a_table_without_a_key_keeps_every_row_even_equal_ones(drift: Project) -> None:
    """A source table without a primary key has none in raw either: equal rows all arrive."""
    day = "2024-05-09"
    _source(drift, "create table keyless_log (note text)")
    _source(drift, "insert into keyless_log values ('same'), ('same'), (null)")
    try:
        drift.make("pipeline", f"DATE={day}", check=True)
        rows = drift.sql("select note from raw.keyless_log where snapshot_date = %s order by note", (day,))
        assert rows == [("same",), ("same",), (None,)]
    finally:
        _source(drift, "drop table keyless_log")
