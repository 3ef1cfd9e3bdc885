"""The backfill's scheduling without Meltano: days side by side, results in day order, and a
backfill that is stopped starts no new day."""

from __future__ import annotations

import datetime as dt
import threading
import time
from types import SimpleNamespace

import pytest

from northwind_elt import runner as backfill  # execute_days: the backfill
from northwind_elt import settings as settings_mod
from northwind_elt.console import StepResult
from northwind_elt.errors import ConfigError, LockBusy

DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(12)]
SETTINGS = SimpleNamespace(backfill_days=2)


class FakeDays:
    """Stands in for the run of a day: takes a while, and counts the days running at once."""

    def __init__(self) -> None:
        self.started: list[dt.date] = []
        self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, settings: object, day: dt.date, steps: list[str], *args: object, **kwargs: object) -> list[StepResult]:
        with self.lock:
            self.started.append(day)
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.3 if day.day % 2 else 0.1)  # later days can finish first
        with self.lock:
            self.running -= 1
        return [StepResult(step, day, True, 0.1) for step in steps]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeDays:
    fake = FakeDays()
    monkeypatch.setattr(backfill, "execute", fake)
    return fake


def test_days_run_side_by_side_and_come_back_in_day_order(fake: FakeDays) -> None:
    results = [r[0].day for r in backfill.execute_days(SETTINGS, DAYS)]  # type: ignore[arg-type]
    assert results == DAYS and sorted(fake.started) == DAYS
    assert fake.most == 2  # NWELT_BACKFILL_DAYS' default: two days at once, never more


def test_a_stopped_backfill_starts_no_new_day(fake: FakeDays) -> None:
    days = backfill.execute_days(SETTINGS, DAYS)  # type: ignore[arg-type]
    assert next(days)[0].day == DAYS[0]
    days.close()  # what a signal or an error in the caller does; returns once the days in flight end
    started = list(fake.started)
    time.sleep(0.5)
    assert fake.started == started and len(started) <= 4, started


@pytest.mark.parametrize("value", ["0", "abc", "-1", "9"])
def test_a_bad_number_of_days_is_a_config_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NWELT_BACKFILL_DAYS", value)
    with pytest.raises(ConfigError, match="NWELT_BACKFILL_DAYS"):
        settings_mod.load()


def test_a_day_another_run_holds_is_reported_as_not_run_not_as_a_failed_step(
    fake: FakeDays, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No step of a busy day ran here: the backfill says who holds it, and no `FAILED: step`
    block blames its first step (the closing status shows the day as the ledger has it)."""

    def execute(settings: object, day: dt.date, steps: list[str], *args: object) -> list[StepResult]:
        if day == DAYS[1]:
            raise LockBusy(f"day {day} is busy: {day} pipeline is held by pipeline of {day}, nwelt pid 7 on host")
        return fake(settings, day, steps)

    monkeypatch.setattr(backfill, "execute", execute)
    assert [len(r) for r in backfill.execute_days(SETTINGS, DAYS[:3])] == [5, 0, 5]  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    busy = next(line for line in lines if "2024-01-02" in line)
    assert busy.startswith("day ") and " done: 2024-01-02 not run: day 2024-01-02 is busy: " in busy and "FAILED" not in busy
