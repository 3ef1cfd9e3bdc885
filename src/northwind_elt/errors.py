"""One base error for every failure a user can fix: a sentence saying what is wrong and `Fix`es
saying which step to run for which day (only console.py turns a Fix into a command line)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Fix:
    """Run `step` for `day`; with `then_rest`, every step after it too. `step=None`: the whole
    pipeline of the day. `note`: a fix that is not a command ("migrate raw.orders by hand")."""

    step: str | None = None
    day: dt.date | None = None
    then_rest: bool = False
    note: str | None = None


class NweltError(Exception):
    def __init__(self, message: str, fixes: Sequence[Fix] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.fixes = list(fixes)


class ConfigError(NweltError): ...  # A setting or argument is invalid.


class GateError(NweltError): ...  # An upstream step did not (fully) succeed for a day: this step must not run.


class PublishError(NweltError): ...  # Step 1's staged output cannot be published.


class LoadError(NweltError): ...  # The load of a day cannot be committed.


class ExportError(NweltError): ...  # The export cannot run for this day.


class DataTestError(NweltError): ...  # dbt's data tests found that the day's data breaks a rule.


class LockBusy(NweltError): ...  # Another run holds the day (or the checkout's plugin state).


class LedgerError(NweltError): ...  # The run ledger (or the server it lives in) cannot be used.


def rerun(step: str, day: dt.date) -> Fix:
    return Fix(step=step, day=day)


def resume(step: str, day: dt.date) -> Fix:
    return Fix(step=step, day=day, then_rest=True)
