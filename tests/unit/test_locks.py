"""Day and project locks with real flock()s in real processes (no database)."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys
import textwrap
import time
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


def test_the_chain_waits_for_its_own_runners_step1_lock_and_no_one_elses(tmp_path: Path) -> None:
    """locks.wait_for_step1 (the chain's open-load in `make pipeline`): it waits while an ancestor
    holds the day's step-1 lock, and returns at once when a stranger holds it."""
    waiter = textwrap.dedent(f"""
        import datetime as dt, time
        from pathlib import Path
        from northwind_elt import locks
        waited = locks.wait_for_step1(Path({str(tmp_path)!r}), dt.date(2024, 1, 1))
        print(waited, time.time(), flush=True)
    """)
    assert locks.wait_for_step1(tmp_path, DAY) is False  # no lock file yet
    with contextlib.ExitStack() as stack:
        locks.hold_step1(stack, tmp_path, DAY)  # this process: the ancestor of the waiter below
        child = subprocess.Popen([sys.executable, "-c", waiter], stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert child.poll() is None  # still waiting
        released = time.time()
    out, _ = child.communicate(timeout=30)
    waited, at = out.split()
    assert waited == "True" and float(at) >= released

    holder = textwrap.dedent(f"""
        import contextlib, datetime as dt, sys
        from pathlib import Path
        from northwind_elt import locks
        with contextlib.ExitStack() as stack:
            locks.hold_step1(stack, Path({str(tmp_path)!r}), dt.date(2024, 1, 1))
            print("held", flush=True)
            sys.stdin.read()
    """)
    stranger = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert stranger.stdout is not None and stranger.stdout.readline().strip() == "held"
        started = time.monotonic()
        assert locks.wait_for_step1(tmp_path, DAY) is False  # not an ancestor: not waited for
        assert time.monotonic() - started < 1
    finally:
        stranger.communicate("")
