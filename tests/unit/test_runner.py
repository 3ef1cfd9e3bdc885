"""The runner's heartbeat: a line at least every NWELT_HEARTBEAT_SECONDS while a step's job runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from northwind_elt import runner
from northwind_elt.landing import SOURCES, Landing
from northwind_elt.ledger import Ledger
from northwind_elt.settings import Settings


def _beats(settings: Settings, token: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The heartbeat lines of an extract-csv job that runs for 1.5 s (a stand-in that prints nothing)."""
    job = subprocess.Popen(["sleep", "1.5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert runner._follow(settings, job, io.StringIO(), "extract-csv", token, quiet=False) == 0
    return [line for line in capsys.readouterr().out.splitlines() if "running for" in line]


def test_an_extract_counts_its_staged_rows_only_once_its_run_has_begun(warehouse: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """Until its open task holds the tap's lock (its ledger row), the checkout's staging folder holds
    another run's rows: the heartbeat says the job runs, without a count."""
    settings = dataclasses.replace(warehouse, heartbeat_seconds=0.1)
    staging = Landing(settings.data_dir, settings.staging_root).staging_dir(SOURCES["csv"])
    staging.mkdir(parents=True)
    (staging / "order_details.jsonl").write_text("{}\n" * 3)  # another run's
    waiting = _beats(settings, "token-1", capsys)
    assert waiting and not any("rows so far" in line for line in waiting), waiting
    Ledger(settings).begin(dt.date(2024, 1, 1), "extract-csv", os.getpid(), None, "token-1")
    begun = _beats(settings, "token-1", capsys)
    assert begun and all(line.endswith(", 3 rows so far") for line in begun), begun


GLUE_TASK = "from northwind_elt.runner import die_with_parent; die_with_parent(); print('alive')"


def test_a_glue_task_whose_meltano_run_died_while_it_started_dies_before_any_lock() -> None:
    """nwelt runs each job in its own process group, led by `meltano run`. A glue task whose parent
    is not that leader was adopted (its `meltano run` was killed while the task imported): it must
    not take the day's locks for a dead job (its holder would watch its new parent for ever)."""
    env = {**os.environ, "NWELT_JOB": "token"}
    adopted = subprocess.run([sys.executable, "-c", GLUE_TASK], env=env, capture_output=True, text=True, process_group=0)
    assert adopted.returncode == -9 and adopted.stdout == ""
    leader = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', {GLUE_TASK!r}]))"
    child = subprocess.run([sys.executable, "-c", leader], env=env, capture_output=True, text=True, process_group=0)
    assert child.returncode == 0 and child.stdout == "alive\n"
    plain = subprocess.run([sys.executable, "-c", GLUE_TASK], env={**env, "NWELT_JOB": ""}, capture_output=True, text=True, process_group=0)
    assert plain.stdout == "alive\n"  # a plain `meltano run` may share its shell's group


NWELT_WITH_A_JOB = """
import subprocess
from northwind_elt import runner
runner.install_signal_handlers()
job = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True, process_group=0)
with runner._children_lock:
    runner._children.add(job)
print(job.stdout.readline().strip(), flush=True)  # the job's own child: a plugin
job.wait()
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signalled_nwelt_kills_its_jobs_whole_process_group(sig: signal.Signals) -> None:
    """Airflow's timeout, a Ctrl-C, a closed terminal: nwelt exits 128+N and its job's plugins die
    with the job (test_entry_points.py runs it with dbt)."""
    nwelt = subprocess.Popen([sys.executable, "-c", NWELT_WITH_A_JOB], stdout=subprocess.PIPE, text=True)
    assert nwelt.stdout is not None
    plugin = int(nwelt.stdout.readline())
    nwelt.send_signal(sig)
    assert nwelt.wait(10) == 128 + sig
    deadline = time.monotonic() + 5
    while _alive(plugin) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(plugin)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, killed and not yet reaped by init, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
