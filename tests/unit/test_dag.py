"""The DAG imports cleanly in Airflow's own interpreter (.venv-airflow), as the scheduler would load
it, and its tasks are the registry's steps. Without .venv-airflow this skips, except in CI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from northwind_elt import registry

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-airflow" / "bin" / "python"
DAG = ROOT / "orchestrate" / "airflow" / "dags" / "northwind_elt.py"

SCRIPT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("northwind_elt_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
run = SimpleNamespace(run_after=datetime(2024, 1, 2, 21, tzinfo=timezone(timedelta(hours=-5))))  # 2024-01-03 UTC
print(json.dumps({"days": [module.day_of(run, "2024-01-01"), module.day_of(run, None)]}))
print(json.dumps({t.task_id: sorted(t.upstream_task_ids) for t in module.dag.tasks}))
"""


def test_the_dag_imports_and_its_graph_is_the_registry(tmp_path: Path) -> None:
    if not PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(".venv-airflow is missing: run make airflow-setup")
        pytest.skip("Airflow is not installed: run make airflow-setup")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run([str(PYTHON), "-c", SCRIPT, str(DAG)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    *_, days, graph = map(json.loads, result.stdout.strip().splitlines())
    assert days == {"days": ["2024-01-01", "2024-01-03"]}  # a run without a logical date: the UTC day it ran after
    assert graph == {s.task_id: sorted(registry.get(u).task_id for u in s.upstream) for s in registry.STEPS}


def test_a_bad_setting_fails_the_import_in_one_line(tmp_path: Path) -> None:
    if not PYTHON.exists():
        pytest.skip("Airflow is not installed: run make airflow-setup")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "NWELT_TASK_TIMEOUT_MINUTES": "abc"}
    result = subprocess.run([str(PYTHON), "-c", SCRIPT, str(DAG)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == "ValueError: NWELT_TASK_TIMEOUT_MINUTES='abc' is not a whole number: fix or unset it"
