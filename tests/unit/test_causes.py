"""Reading the cause of a failed step from its Meltano log."""

from __future__ import annotations

import datetime as dt

from northwind_elt.causes import find_cause
from northwind_elt.console import next_commands

DAY = dt.date(2024, 1, 1)

PREFIX = "2026-11-29T15:51:25.207101Z [info     ] elt          "


def test_a_glue_error_wins_over_the_traceback_around_it() -> None:
    log = "\n".join(
        [
            PREFIX + "Traceback (most recent call last):",
            PREFIX
            + "GateError: step 2 (load) refuses to run for 2024-01-01: extract-csv has not succeeded; run make extract-csv DATE=2024-01-01",
            "2026-11-29T15:51:25.323024Z [error    ] meltano      Block run completed",
            PREFIX + "RuntimeError: something generic",
        ]
    )
    assert find_cause(log, "load", DAY).startswith("GateError: step 2 (load) refuses to run for 2024-01-01")


def test_a_database_error_is_shown_without_its_class_prefix_noise() -> None:
    log = PREFIX + "sqlalchemy.exc.DataError: (psycopg.errors.NumericValueOutOfRange) bigint out of range\n"
    assert find_cause(log, "load", DAY) == "bigint out of range"


def test_a_failing_data_test_is_named_and_sends_the_user_back_to_the_whole_day() -> None:
    log = "15:51:11  Failure in test not_null_orders_details_line_total (models/marts/orders_details.yml)\n15:51:12  Done. PASS=60 WARN=0 ERROR=1"
    cause = find_cause(log, "transform", DAY)
    assert cause.startswith("DataTestError: Failure in test not_null_orders_details_line_total (models/marts/orders_details.yml): ")
    assert "fix it at its source" in cause
    assert next_commands("transform", DAY, cause) == ["make pipeline DATE=2024-01-01"]  # not `make transform`: it would fail again


def test_a_silent_death_says_so() -> None:
    assert "stopped without an error message" in find_cause("just some output\n", "export", DAY)
