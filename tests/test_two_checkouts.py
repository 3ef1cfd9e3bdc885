"""Two checkouts of the project on one warehouse server and one shared landing folder, each with
its own local folders (.venv, .meltano, transform/target, logs' host), as two workers on two
machines would run it: the second checkout reaches the first one's server as an external server.

- a step of day D running in one checkout makes the same step of D in the other refuse;
- `make status DATE=D` shows the same history in both;
- SIGKILL of the first checkout's run frees the lock for the second.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, Project, wait_for
from northwind_elt.ledger import Ledger

DAY = "2024-05-01"


@pytest.fixture(scope="module")
def second(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A second checkout: the repository's files (committed or not, never its local state),
    set up by its own `make setup`, pointed at the first checkout's server as external servers
    and at the same DATA_DIR."""
    checkout = tmp_path_factory.mktemp("checkout-b") / "northwind-elt"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    settings = project.settings
    env = {
        "NWELT_DB": "external",  # the first checkout's server, reached over TCP as another host would
        "DATA_DIR": str(project.data_dir),  # the shared landing folder
        "NORTHWIND_SHARED_DIR": str(settings.source_dir),  # the source files, as the first checkout has them
    }
    for prefix, conn in (("SOURCE", settings.source), ("WAREHOUSE", settings.warehouse)):
        env |= {f"{prefix}_PG_HOST": conn.host, f"{prefix}_PG_PORT": str(conn.port), f"{prefix}_PG_DATABASE": conn.database}
        env |= {f"{prefix}_PG_USER": conn.user, f"{prefix}_PG_PASSWORD": conn.password}
    other = Project(project.data_dir, env)
    setup = subprocess.run(
        ["make", "--no-print-directory", "setup"], cwd=checkout, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    other.root = checkout  # type: ignore[attr-defined]
    return other


def make(checkout: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=checkout, env={**os.environ, **env}, capture_output=True, text=True)


def test_two_checkouts_share_one_history_and_one_set_of_locks(project: Project, second: Project) -> None:
    b: Path = second.root  # type: ignore[attr-defined]
    Ledger(project.settings).latest(dt.date.fromisoformat(DAY))  # the ledger exists before the first run polls it
    env_a = {**os.environ, **project.env, "RUN_DATE": DAY}
    first = subprocess.Popen(
        [str(ROOT / ".venv/bin/meltano"), "run", "extract-postgres"],
        cwd=ROOT,
        env=env_a,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running = "select count(*) from ops.runs where day = %s and step = 'extract-postgres' and outcome = 'running'"
    assert wait_for(lambda: project.sql(running, (DAY,)) == [(1,)]), "the first checkout's run never took the day"
    os.kill(first.pid, signal.SIGSTOP)  # it holds the day's locks and cannot finish before the other tries
    try:
        refused = make(b, second.env, "extract-postgres", f"DATE={DAY}")
    finally:
        os.kill(first.pid, signal.SIGKILL)  # killed outright: the server frees its locks
        first.wait()
    assert refused.returncode != 0
    busy = (
        f"LockBusy: extract-postgres for {DAY} is busy: {DAY} postgres is held by extract-postgres for {DAY} (meltano run pid {first.pid}"
    )
    assert busy in refused.stderr, refused.stderr[-3000:]

    done = make(b, second.env, "pipeline", f"DATE={DAY}")  # the lock is free: the other checkout runs the day
    assert done.returncode == 0, done.stderr[-3000:]
    status_a = project.make("status", f"DATE={DAY}")
    status_b = make(b, second.env, "status", f"DATE={DAY}")
    assert status_a.returncode == status_b.returncode == 0
    assert status_a.stdout == status_b.stdout and "complete" in status_a.stdout
    runs = project.sql("select outcome from ops.runs where day = %s and step = 'extract-postgres' order by started_at", (DAY,))
    assert runs == [("running",), ("succeeded",)]  # the killed run never closed (status: interrupted, then superseded)
    assert project.make("export", f"DATE={DAY}").returncode == 0  # the first checkout takes the other's work as its own
