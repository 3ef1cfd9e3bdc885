"""Day and project locks with real flock()s in real processes (no database)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from northwind_elt import locks
from northwind_elt.errors import LockBusy

DAY = dt.date(2024, 1, 1)


def hold_in_child(data_dir: Path, steps: list[str]) -> subprocess.Popen[str]:
    """Another process that takes the day locks of `steps` and keeps them until its stdin closes."""
    code = textwrap.dedent(f"""
        import datetime as dt, sys
        from pathlib import Path
        from northwind_elt import locks
        with locks.hold(Path({str(data_dir)!r}), dt.date(2024, 1, 1), {steps!r}):
            print("held", flush=True)
            sys.stdin.read()
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_second_writer_of_the_day_is_refused_naming_the_holder(tmp_path: Path) -> None:
    child = hold_in_child(tmp_path, ["load"])
    try:
        with pytest.raises(LockBusy) as refused, locks.hold(tmp_path, DAY, ["transform"]):
            pass
        assert f"pid {child.pid} running load" in str(refused.value)
    finally:
        child.communicate("")


def test_a_reader_blocks_a_writer_and_other_days_are_free(tmp_path: Path) -> None:
    child = hold_in_child(tmp_path, ["load"])  # reads postgres and csv (shared)
    try:
        with pytest.raises(LockBusy), locks.hold(tmp_path, DAY, ["extract-csv"]):  # an extract writes what load reads
            pass
        with locks.hold(tmp_path, DAY + dt.timedelta(days=1), ["extract-csv", "load"]):
            pass
    finally:
        child.communicate("")
    with locks.hold(tmp_path, DAY, ["extract-csv"]):  # released when the holder ended
        pass


def test_a_lock_held_by_an_ancestor_covers_its_descendants(tmp_path: Path) -> None:
    """nwelt holds the day; the open task of the Meltano job it started (a grandchild) goes on."""
    code = textwrap.dedent(f"""
        import datetime as dt
        from contextlib import ExitStack
        from pathlib import Path
        from northwind_elt import locks
        with ExitStack() as stack:
            fds = locks.acquire_day(stack, Path({str(tmp_path)!r}), dt.date(2024, 1, 1), ["load"])
            print(len(fds))
    """)
    with locks.hold(tmp_path, DAY, ["extract-postgres", "extract-csv", "load"]):  # all three exclusive
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert child.stdout.strip() == "0"  # nothing taken: covered by this (ancestor) process
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "3"  # on its own it takes postgres, csv and warehouse
