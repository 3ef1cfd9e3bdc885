"""Meltano's own commands, run as a user types them (docs: docs/operations.md, "Meltano").

Only `.env` (written by `make setup`) and RUN_DATE are set: every plugin setting that reads a
path or a connection has a default or comes from `.env`, and a relative DATA_DIR means the
project root's folder, wherever `meltano` runs from.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Project

MELTANO = str(ROOT / ".venv" / "bin" / "meltano")
PLUGINS = [
    "tap-postgres",
    "tap-northwind-csv",
    "tap-landing",
    "target-jsonl",
    "target-jsonl-postgres",
    "target-jsonl-csv",
    "target-postgres",
    "dbt-postgres",
    "elt",
]
ABOUT = ["tap-postgres", "tap-northwind-csv", "tap-landing", "target-postgres", "target-jsonl"]
# what a user's shell would not have: the variables nwelt and the test fixtures set
NOT_IN_A_USERS_SHELL = ("ORDER_DETAILS_CSV", "RUN_DATE", "DATA_DIR", "MELTANO_ENVIRONMENT", "MELTANO_PROJECT_ROOT")


def meltano(*args: str, cwd: Path = ROOT, timeout: int = 600, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in NOT_IN_A_USERS_SHELL}
    return subprocess.run([MELTANO, *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("plugin", PLUGINS)
def test_config_list_works_for_every_plugin(plugin: str) -> None:
    result = meltano("config", "list", "--all", plugin)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "referenced but not set" not in result.stdout + result.stderr


def test_config_list_shows_the_csv_default_and_its_override(tmp_path: Path) -> None:
    default = meltano("config", "list", "tap-northwind-csv")  # without --all: the file read is configuration, not hidden
    assert f"current value: '{ROOT}/data/source/order_details.csv'" in default.stdout
    other = tmp_path / "order_details.csv"
    overridden = meltano("config", "list", "tap-northwind-csv", ORDER_DETAILS_CSV=str(other))
    assert f"current value: '{other}' (from the ORDER_DETAILS_CSV variable in the environment)" in overridden.stdout


@pytest.mark.parametrize("command", [("config", "list", "tap-northwind-csv"), ("job", "list"), ("schedule", "list")])
def test_commands_run_in_the_env_files_environment_without_a_notice(command: tuple[str, ...]) -> None:
    """.env names MELTANO_ENVIRONMENT: config, job and schedule commands use it instead of logging
    that they ignore meltano.yml's default_environment."""
    result = meltano(*command)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Environment 'dev' is active" in result.stderr and "will be ignored" not in result.stderr


@pytest.mark.parametrize("plugin", ABOUT)
def test_invoke_about(plugin: str) -> None:
    result = meltano("invoke", plugin, "--about", "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["name"] == plugin


def test_missing_run_date_is_one_line_naming_the_variable() -> None:
    result = meltano("invoke", "tap-landing")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "set RUN_DATE=YYYY-MM-DD" in output


def test_schedule_list_shows_the_daily_pipeline() -> None:
    result = meltano("schedule", "list", "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    (schedule,) = json.loads(result.stdout)["schedules"]["job"]
    assert schedule["name"] == "daily-pipeline" and schedule["cron_interval"] == "0 0 * * *"
    jobs = {}
    for name in ("extract-postgres", "extract-csv", "load", "transform", "export"):
        listed = meltano("job", "list", name, "--format", "json")
        assert listed.returncode == 0, listed.stderr[-2000:]
        jobs[name] = json.loads(listed.stdout)["tasks"]
    # the schedule's job runs the five step jobs' tasks, in order
    assert schedule["job"]["tasks"] == [task for name in jobs for task in jobs[name]]


def test_meltano_run_with_only_run_date_and_a_relative_data_dir(project: Project) -> None:
    """`RUN_DATE=D meltano run extract-csv` reads the project's CSV by default, and with
    DATA_DIR=<relative> `meltano run load` (here from a subfolder) finds the landed day."""
    day = "2024-01-05"
    relative = Path("data") / f".test-data-{os.getpid()}"  # git-ignored: no other module's file listing sees it
    shutil.rmtree(ROOT / relative, ignore_errors=True)
    env = {"DATA_DIR": str(relative), "WAREHOUSE_PG_DATABASE": project.env["WAREHOUSE_PG_DATABASE"]}
    try:
        # --force: an earlier test's SIGKILLed `meltano run` stays "running" in Meltano's own records for
        # 5 minutes, and Meltano refuses the same block meanwhile (its message names --force)
        extract = meltano("run", "--force", "extract-postgres", "extract-csv", RUN_DATE=day, **env)
        assert extract.returncode == 0, extract.stderr[-3000:]
        landed = ROOT / relative / "csv" / "order_details" / day / "order_details.jsonl"
        source_rows = sum(1 for _ in (ROOT / "data" / "source" / "order_details.csv").open()) - 1
        assert sum(1 for _ in landed.open()) == source_rows
        load = meltano("run", "--force", "load", cwd=ROOT / "transform", RUN_DATE=day, **env)
        assert load.returncode == 0, load.stderr[-3000:]
        assert "relative path" not in load.stderr
        rows = project.sql("select count(*) from raw.order_details where snapshot_date = %s", (day,))
        assert rows == [(source_rows,)]
    finally:
        shutil.rmtree(ROOT / relative, ignore_errors=True)


def test_no_file_of_the_project_is_written_into_any_virtualenv() -> None:
    """Nothing of the project changes how a third-party interpreter behaves: no `.pth` or
    `sitecustomize` of ours in Meltano's virtualenv or any plugin's (only the editable installs' own)."""
    venvs = [ROOT / ".venv", *sorted(ROOT.glob(".meltano/*/*/venv"))]
    assert len(venvs) == 8
    for venv in venvs:
        assert not list(venv.glob("lib/python3*/site-packages/sitecustomize.py")), venv
        for path in venv.glob("lib/python3*/site-packages/*.pth"):
            assert "nwelt" not in path.name and "fast_exit" not in path.read_text(errors="replace"), path


@pytest.mark.parametrize("plugin", ["extract/tap-northwind-csv", "load/tap-landing", "load/target-jsonl-about"])
def test_an_editable_install_of_a_plugin_prints_no_warning_box(plugin: str, tmp_path: Path) -> None:
    """`make setup` and `meltano install` install the project's own plugins editable: setuptools'
    "Editable installation" box is noise the project would cause (its import-hook strategy)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "-e",
            str(ROOT / plugin),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Editable installation" not in result.stdout + result.stderr
