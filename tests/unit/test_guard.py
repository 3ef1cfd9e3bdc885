"""The guard of a step run: when the process owning the run dies, its descendants die too and
the locks are released (real processes, no database)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from northwind_elt import guard, locks
from northwind_elt.ledger import alive, identity

DAY = dt.date(2024, 1, 1)


def _wait(condition, seconds: float = 20) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def owner_with_a_plugin(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """A stand-in for `meltano run`: it starts a guard holding the day lock of extract-csv (as the
    open task does), then a long-running child (a plugin); prints the child's pid."""
    code = textwrap.dedent(f"""
        import datetime as dt, subprocess, sys, time
        from contextlib import ExitStack
        from pathlib import Path
        from northwind_elt import guard, locks
        import os
        data = Path({str(tmp_path)!r})
        with ExitStack() as stack:
            fds = locks.acquire_day(stack, data, dt.date(2024, 1, 1), ["extract-csv"])
            guard.start(data, "extract-csv", dt.date(2024, 1, 1), os.getpid(), fds)
        plugin = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(plugin.pid, flush=True)
        time.sleep(600)
    """)
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert owner.stdout is not None
    return owner, int(owner.stdout.readline())


def test_when_the_owner_is_killed_the_guard_kills_the_plugin_and_frees_the_day(tmp_path: Path) -> None:
    owner, plugin = owner_with_a_plugin(tmp_path)
    plugin_id = identity(plugin)
    assert _wait(lambda: guard.guard_file(tmp_path, DAY, "extract-csv").exists())
    time.sleep(1)  # the guard has seen the plugin
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert _wait(lambda: not alive(plugin_id)), "the plugin outlived its run"
    assert _wait(lambda: not guard.guard_file(tmp_path, DAY, "extract-csv").exists())
    with locks.hold(tmp_path, DAY, ["extract-csv"]):  # the lock went with the guard
        pass


def test_a_stopped_guard_keeps_the_plugins_and_releases_the_lock(tmp_path: Path) -> None:
    owner, plugin = owner_with_a_plugin(tmp_path)
    try:
        assert _wait(lambda: guard.guard_file(tmp_path, DAY, "extract-csv").exists())
        guard.stop(tmp_path, DAY, "extract-csv")  # what the close task does after recording success
        with locks.hold(tmp_path, DAY, ["extract-csv"]):
            pass
        assert alive(identity(plugin))
    finally:
        os.kill(plugin, signal.SIGKILL)
        owner.kill()
        owner.wait()
