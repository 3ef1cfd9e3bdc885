"""
### northwind_elt

The northwind-elt pipeline as one daily Airflow DAG. One run per day D, the run's logical date
(`{{ ds }}`; a scheduled `@daily` run of Airflow 3 starts at 00:00 UTC of D itself): the
Northwind source tables and `order_details.csv` are landed on disk for D, loaded into the
warehouse, modelled by dbt into the `orders_details` mart and exported to
`data/output/D/orders_details.{csv,json}`.

```
extract_postgres ─┐
                  ├─> load ─> transform ─> export
extract_csv ──────┘
```

* Each task runs `nwelt run <step> --date D --wait 600` (an argument list, no shell), exactly
  what `make <step> DATE=D` runs; its log shows the step's output, and on failure the cause,
  the step's own log file and the command that resumes the day.
* Every task has an `execution_timeout` (NWELT_TASK_TIMEOUT_MINUTES, default 120); on timeout
  the step's whole process group is stopped and the task fails.
* Extract tasks retry with exponential back-off; `load`, `transform` and `export` do not
  (a retry cannot fix a refused gate or a failed dbt test: fix the cause, then clear the task).
* The gate lives in the step: clearing only `load` still refuses when an extract of D is missing.
* Any past day can run: `start_date` is 1970-01-01 so no day is silently skipped; a future
  day fails loudly (nwelt refuses it). `catchup=False`: enabling the DAG runs only the latest
  day. For past days run `airflow dags test northwind_elt 2024-01-01` (one day, in the
  foreground) or `airflow backfill create --dag-id northwind_elt --from-date 2024-01-01
  --to-date 2024-01-31` (Airflow 3, with the scheduler running), or `make backfill
  START=... END=...` without Airflow.
* `max_active_runs=1`: days run one after another.
* The schedule is this DAG's `@daily`; Meltano's `schedules:` entry `daily-pipeline` in
  meltano.yml says the same for `meltano schedule list` (this DAG wins if they ever differ).

The repository is found from this file's location (orchestrate/airflow/dags/ -> three folders
up); set NWELT_HOME to point elsewhere. Settings (DATA_DIR, NWELT_DB, SOURCE_PG_*,
WAREHOUSE_PG_*, ...) come from the repository's .env, or from the environment of the Airflow
worker, which every task inherits.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

NWELT_HOME = Path(os.environ.get("NWELT_HOME") or Path(__file__).resolve().parents[3])
NWELT = NWELT_HOME / ".venv" / "bin" / "nwelt"
LOCK_WAIT_SECONDS = 600


def _registry() -> ModuleType:
    """The project's step registry (src/northwind_elt/registry.py: standard library only), loaded
    by path: Airflow's environment does not install the project's package."""
    relative = Path("src", "northwind_elt", "registry.py")
    candidates = [NWELT_HOME / relative, Path(__file__).resolve().parents[3] / relative]
    path = next((c for c in candidates if c.exists()), candidates[0])
    spec = importlib.util.spec_from_file_location("northwind_elt_registry", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


REGISTRY = _registry()


def _whole_number(name: str, default: str | None) -> int | None:
    """A whole-number setting from the environment; a bad value fails the DAG's import in one line."""
    text = os.environ.get(name, default)
    if text is not None and not text.isdigit():
        raise ValueError(f"{name}={text!r} is not a whole number: fix or unset it")
    return None if text is None else int(text)


# Extracts read live sources, so a retry can help (a source restarting, a busy network); the
# registry says how many. NWELT_EXTRACT_RETRIES overrides it (0 in tests that expect a failure).
RETRIES_OVERRIDE = _whole_number("NWELT_EXTRACT_RETRIES", None)
EXECUTION_TIMEOUT = timedelta(minutes=_whole_number("NWELT_TASK_TIMEOUT_MINUTES", "120") or 120)
BACKOFF = {
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,  # waits about 1, 2, 4, ... minutes between tries
    "max_retry_delay": timedelta(minutes=15),
}


def step_command(step: str, ds: str) -> list[str]:
    """The command of one step for one day: the same as `make <step> DATE=<ds>`."""
    return [str(NWELT), "run", step, "--date", ds, "--wait", str(LOCK_WAIT_SECONDS)]


def day_of(dag_run: Any, ds: str | None) -> str:
    """The run's day: its logical date; for a run triggered without one (`airflow dags trigger`'s
    default), the UTC day it was triggered for."""
    return ds or dag_run.run_after.astimezone(timezone.utc).date().isoformat()


def run_step(step: str, dag_run: Any, ds: str | None = None) -> None:
    """Run the step for the run's day, its output in the task log; stop it with the task."""
    ds = day_of(dag_run, ds)
    command = step_command(step, ds)
    print("running:", " ".join(command), flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
        code = process.wait()
    finally:  # a timeout or a killed task: stop nwelt and its Meltano/dbt children too
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    if code != 0:
        raise AirflowException(f"step {step} for {ds} failed (exit {code}); the cause and the command to resume are above")


def step_task(step) -> PythonOperator:  # type: ignore[no-untyped-def]
    """A task that runs one pipeline step (a registry.Step) for the run's logical date."""
    retries = RETRIES_OVERRIDE if step.retries and RETRIES_OVERRIDE is not None else step.retries
    return PythonOperator(
        task_id=step.task_id,
        python_callable=run_step,
        op_kwargs={"step": step.name},
        retries=retries,
        execution_timeout=EXECUTION_TIMEOUT,
        **(BACKOFF if retries else {}),
    )


with DAG(
    dag_id="northwind_elt",
    description="Northwind source + order_details.csv -> warehouse -> orders_details mart -> CSV/JSON",
    doc_md=__doc__,
    schedule="@daily",
    start_date=datetime(1970, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["northwind", "elt"],
) as dag:
    tasks = {step.name: step_task(step) for step in REGISTRY.STEPS}
    for step in REGISTRY.STEPS:  # the registry's upstream steps are the DAG's edges
        for upstream in step.upstream:
            tasks[upstream] >> tasks[step.name]
