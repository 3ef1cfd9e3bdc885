"""The backfill's scheduling without Meltano: days side by side, results in day order, and a
backfill that is stopped starts no new day."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from northwind_elt import backfill
from northwind_elt.console import StepResult
from northwind_elt.errors import ConfigError

DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(12)]


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dt.date]:
    """Replace the run of a day with one that takes a while (later days are quicker)."""
    days: list[dt.date] = []
    lock = threading.Lock()

    def fake_execute(settings: object, day: dt.date, steps: list[str], *args: object, **kwargs: object) -> list[StepResult]:
        with lock:
            days.append(day)
        time.sleep(0.3 if day.day % 2 else 0.1)
        return [StepResult(step, day, True, 0.1) for step in steps]

    monkeypatch.setattr(backfill, "execute", fake_execute)
    return days


def test_days_run_side_by_side_and_come_back_in_day_order(started: list[dt.date]) -> None:
    began = time.monotonic()
    results = [r[0].day for r in backfill.execute_days(None, DAYS)]  # type: ignore[arg-type]
    assert results == DAYS and sorted(started) == DAYS
    assert time.monotonic() - began < 0.2 * len(DAYS)  # one at a time would take 2.4 s


def test_a_stopped_backfill_starts_no_new_day(started: list[dt.date]) -> None:
    days = backfill.execute_days(None, DAYS)  # type: ignore[arg-type]
    assert next(days)[0].day == DAYS[0]
    days.close()  # what a signal or an error in the caller does
    time.sleep(0.8)
    assert len(started) <= 4, started


@pytest.mark.parametrize("value", ["0", "abc", "-1", "9"])
def test_a_bad_number_of_days_is_a_config_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NWELT_BACKFILL_DAYS", value)
    with pytest.raises(ConfigError, match="NWELT_BACKFILL_DAYS"):
        backfill.days_in_flight()
