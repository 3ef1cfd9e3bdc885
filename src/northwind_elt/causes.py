"""Reading why a step failed from its full log: the one sentence that says it."""

from __future__ import annotations

import datetime as dt
import re

from .console import error_line
from .errors import DataTestError, Fix

# lines that state a cause, most specific first; a pattern's last group is the sentence
CAUSES = [
    re.compile(r"\b((?:GateError|PublishError|LoadError|ExportError|CsvInputError|LockBusy|ConfigError|LedgerError): .+)"),
    re.compile(r"(psycopg2?\.\w*Error|sqlalchemy\.exc\.\w+): \(?[\w.]*\)? ?(.+)"),
    re.compile(r"\b(connection to server .+|password authentication failed.+|No space left on device.*|Permission denied.*)"),
    re.compile(r"\b((?:Failure|Error) in (?:test|model|unit_test) .+)"),
    re.compile(r"\b([A-Z]\w*(?:Error|Exception)): (.+)"),
    re.compile(r"^(Error while parsing YAML file: .+|Another '.+' pipeline is already running.*)"),
]
_PREFIX = re.compile(r"^\S+Z \[\w+\s*\] \S+\s+")


def strip_log_prefix(line: str) -> str:
    """A Meltano log line without its timestamp, level and plugin name."""
    return _PREFIX.sub("", line.strip()).strip()


def find_cause(log_text: str, step: str, day: dt.date) -> str:
    """The sentence that says why a step failed, picked from its full log. A failed data test is
    the day's data breaking a rule: rerunning dbt alone fails again, so it names the whole day."""
    lines = [strip_log_prefix(line) for line in log_text.splitlines()]
    for pattern in CAUSES:
        for line in reversed(lines):
            if match := pattern.search(line):
                cause = match.group(match.lastindex or 0).strip()[:500]
                if not cause.startswith("Failure in test "):
                    return cause
                problem = f"{cause}: the data of {day} breaks this test; fix it at its source (or fix the test), then rerun the day"
                return error_line(DataTestError(problem, [Fix(day=day)]))
    return f"the Meltano job {step} stopped without an error message (killed or crashed?); see the log"
