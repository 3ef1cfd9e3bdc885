"""Fault-injection points for the reliability tests: `point("name")` kills the process with
SIGKILL right there when NWELT_FAULT names it, like a power loss in the middle of a step's writes."""

from __future__ import annotations

import os
import signal

from .settings import fault


def point(name: str, day: object = None) -> None:
    """Die here if NWELT_FAULT is `name` or `name@<day>` (to fail one day of a backfill)."""
    if fault() in (name, f"{name}@{day}"):
        os.kill(os.getpid(), signal.SIGKILL)
