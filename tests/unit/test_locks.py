"""Day and project locks with real flock()s in real processes (no database)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from northwind_elt import locks
from northwind_elt.errors import LockBusy
from northwind_elt.ledger import identity

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


def _waiter(data_dir: Path, runner: str | None) -> subprocess.Popen[str]:
    """A child (as the chain's open-load is, of nwelt) that calls wait_for_step1 and prints the
    result and when it returned."""
    code = textwrap.dedent(f"""
        import datetime as dt, json, time
        from pathlib import Path
        from northwind_elt import locks
        print(json.dumps([locks.wait_for_step1(Path({str(data_dir)!r}), dt.date(2024, 1, 1)), time.time()]), flush=True)
    """)
    env = {k: v for k, v in os.environ.items() if k != locks.STEP1_ENV} | ({locks.STEP1_ENV: runner} if runner else {})
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)


def _result(child: subprocess.Popen[str]) -> tuple[list[str] | None, float]:
    out, _ = child.communicate(timeout=30)
    verdict, at = json.loads(out.splitlines()[-1])
    return verdict, at


@pytest.mark.parametrize("failed", [[], ["extract-csv"]])
def test_the_chain_waits_for_its_runners_verdict_on_step1(tmp_path: Path, failed: list[str]) -> None:
    """locks.wait_for_step1 (the chain's open-load in `make pipeline`) waits while its runner (an
    ancestor, named in the chain's environment) holds the day's step-1 lock, and returns the
    step-1 jobs the runner says failed."""
    with contextlib.ExitStack() as stack:
        fd = locks.hold_step1(stack, tmp_path, DAY)  # this process plays nwelt
        child = _waiter(tmp_path, identity(os.getpid()))
        time.sleep(1.0)
        assert child.poll() is None  # still waiting
        locks.settle_step1(fd, failed)
        released = time.time()
    verdict, at = _result(child)
    assert verdict == failed and at >= released


def test_no_verdict_means_load_does_not_start(tmp_path: Path) -> None:
    """The runner released the lock without a verdict (it died): the waiter refuses."""
    with contextlib.ExitStack() as stack:
        locks.hold_step1(stack, tmp_path, DAY)
        child = _waiter(tmp_path, identity(os.getpid()))
        time.sleep(0.5)
    verdict, _ = _result(child)
    assert verdict and "no verdict" in verdict[0]


def test_only_a_chain_its_runner_marked_ever_waits(tmp_path: Path) -> None:
    """Without the marker (a plain `meltano run`, a stranger's lock), or with a marker naming a
    process that is not an ancestor, nothing waits: the step goes on to its gate at once."""
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
        for runner in (None, identity(stranger.pid)):
            started = time.monotonic()
            verdict, _ = _result(_waiter(tmp_path, runner))
            assert verdict is None and time.monotonic() - started < 10
    finally:
        stranger.communicate("")


def test_a_symlink_in_place_of_the_step1_lock_is_refused(tmp_path: Path) -> None:
    folder = locks.day_folder(tmp_path, DAY)
    folder.mkdir(parents=True)
    (tmp_path / "elsewhere").write_text("{}")
    (folder / locks.STEP1_LOCK).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError), contextlib.ExitStack() as stack:  # the runner never writes through it
        locks.hold_step1(stack, tmp_path, DAY)
    verdict, _ = _result(_waiter(tmp_path, identity(os.getpid())))
    assert verdict and "no verdict" in verdict[0]
    assert (tmp_path / "elsewhere").read_text() == "{}"
