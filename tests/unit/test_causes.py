"""Reading the cause of a failed step from its Meltano log."""

from __future__ import annotations

from northwind_elt.causes import find_cause

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
    assert find_cause(log, "load").startswith("GateError: step 2 (load) refuses to run for 2024-01-01")


def test_a_database_error_is_shown_without_its_class_prefix_noise() -> None:
    log = PREFIX + "sqlalchemy.exc.DataError: (psycopg.errors.NumericValueOutOfRange) bigint out of range\n"
    assert find_cause(log, "load") == "bigint out of range"


def test_a_failing_dbt_test_is_named() -> None:
    log = "15:51:11  Failure in test not_null_orders_details_line_total (models/marts/orders_details.yml)\n15:51:12  Done. PASS=60 WARN=0 ERROR=1"
    assert find_cause(log, "transform") == "Failure in test not_null_orders_details_line_total (models/marts/orders_details.yml)"


def test_a_silent_death_says_so() -> None:
    assert "stopped without an error message" in find_cause("just some output\n", "export")
