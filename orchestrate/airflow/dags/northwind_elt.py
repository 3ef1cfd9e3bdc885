"""The northwind-elt pipeline as one daily Airflow DAG.

Each task runs the same command as `make <step> DATE=...`, with the run's logical date:

    {repo}/.venv/bin/nwelt run <step> --date {{ ds }} --wait 600

so the run ledger, the per-day locks, the gate before `load` and the failure messages are the
project's own, whether a step runs from make or from Airflow. The repository is found from
this file's location (orchestrate/airflow/dags/ -> three folders up); set NWELT_HOME to point
elsewhere (e.g. a deployment that mounts the DAG folder apart from the repository).

Settings (DATA_DIR, NWELT_DB, SOURCE_PG_*, WAREHOUSE_PG_*, ...) come from the repository's
.env, or from the environment of the Airflow worker, which every task inherits.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

NWELT_HOME = Path(os.environ.get("NWELT_HOME") or Path(__file__).resolve().parents[3])
NWELT = NWELT_HOME / ".venv" / "bin" / "nwelt"

# Extracts read live sources, so a retry can help (a source restarting, a busy network).
# NWELT_EXTRACT_RETRIES=0 turns retries off, e.g. in tests that expect a failure at once.
EXTRACT_RETRIES = int(os.environ.get("NWELT_EXTRACT_RETRIES", "2"))
BACKOFF = {
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,  # waits about 1, 2, 4, ... minutes between tries
    "max_retry_delay": timedelta(minutes=15),
}

DOC_MD = """
### northwind_elt

One run per day D, the run's logical date (`{{ ds }}`; a scheduled `@daily` run of Airflow 3
starts at 00:00 UTC of D itself): the Northwind source tables and
`order_details.csv` are landed on disk for D, loaded into the warehouse, modelled by dbt
into the `orders_details` mart and exported to `data/output/D/orders_details.{csv,json}`.

```
extract_postgres ─┐
                  ├─> load ─> transform ─> export
extract_csv ──────┘
```

* Each task runs `nwelt run <step> --date D --wait 600`, exactly what `make <step> DATE=D`
  runs; its log shows the step's summary, and on failure the cause, the step's own log file
  and the command that resumes the day.
* Extract tasks retry with exponential back-off; `load`, `transform` and `export` do not
  (a retry cannot fix a refused gate or a failed dbt test: fix the cause, then clear the task).
* The gate lives in the step: clearing only `load` still refuses when an extract of D is missing.
* `catchup=False`: enabling the DAG runs only the latest day. For past days run
  `airflow backfill create --dag-id northwind_elt --from-date 2024-01-01 --to-date 2024-01-31`
  (Airflow 3), or `make backfill START=... END=...` without Airflow.
* `max_active_runs=1`: days run one after another.
"""


def step(task_id: str, retries: int = 0) -> BashOperator:
    """A task that runs one pipeline step for the run's logical date."""
    name = task_id.replace("_", "-")
    return BashOperator(
        task_id=task_id,
        bash_command=f"{shlex.quote(str(NWELT))} run {name} --date {{{{ ds }}}} --wait 600",
        retries=retries,
        **(BACKOFF if retries else {}),
    )


with DAG(
    dag_id="northwind_elt",
    description="Northwind source + order_details.csv -> warehouse -> orders_details mart -> CSV/JSON",
    doc_md=DOC_MD,
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["northwind", "elt"],
) as dag:
    extract_postgres = step("extract_postgres", retries=EXTRACT_RETRIES)
    extract_csv = step("extract_csv", retries=EXTRACT_RETRIES)
    load = step("load")
    transform = step("transform")
    export = step("export")

    [extract_postgres, extract_csv] >> load >> transform >> export
