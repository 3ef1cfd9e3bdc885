"""Fault-injection points for the reliability tests.

`point("name")` does nothing unless the environment variable NWELT_FAULT names that point,
in which case the process kills itself with SIGKILL right there: no cleanup, no exception
handler, exactly like a machine losing power mid-write. The points sit in the middle of each
step's writes, where a crash would hurt most.
"""

from __future__ import annotations

import os
import signal

from .settings import fault


def point(name: str, day: object = None) -> None:
    """Die here if NWELT_FAULT is `name` or `name@<day>` (to fail one day of a backfill)."""
    if fault() in (name, f"{name}@{day}"):
        os.kill(os.getpid(), signal.SIGKILL)
