"""The steps of the pipeline, defined once.

Everything that needs to know the steps reads this module: the ledger and `status` (order,
upstream steps), the locks (what each step writes and reads), the runner (`make`, `nwelt`, the backfill),
the glue tasks inside each Meltano job, and the Airflow DAG (which loads
this file by path, so it imports nothing outside the standard library).

Adding a step: one `Step(...)` below, its Meltano job in meltano.yml
(`elt:open-<step>`, the step's plugins, `elt:close-<step>`; a test checks they agree) and the
step's own code (what `open`/`close` do for it, in tasks.py).
"""

from __future__ import annotations

from dataclasses import dataclass

SHARED, EXCLUSIVE = "shared", "exclusive"


@dataclass(frozen=True)
class Step:
    name: str  # the make target, the Meltano job and the ledger's step name
    upstream: tuple[str, ...]  # steps whose success for D this step needs
    writes: tuple[str, ...]  # day resources it changes (held exclusively while it runs)
    reads: tuple[str, ...]  # day resources it reads (held shared)
    plugins: str  # the Meltano block between elt:open-<name> and elt:close-<name> ("" = glue only)
    plugin_state: str | None  # project-wide state its plugin rewrites whatever the day (a lock)
    retries: int  # Airflow retries: only steps reading live sources can gain from a retry
    summary: str

    @property
    def job(self) -> str:
        return self.name

    @property
    def task_id(self) -> str:
        """The Airflow task id."""
        return self.name.replace("-", "_")

    def locks(self) -> dict[str, str]:
        return {**{r: SHARED for r in self.reads}, **{r: EXCLUSIVE for r in self.writes}}


STEPS: tuple[Step, ...] = (
    Step(
        name="extract-postgres",
        upstream=(),
        writes=("postgres",),
        reads=(),
        plugins="tap-postgres target-jsonl-postgres",
        plugin_state="tap-postgres",
        retries=2,
        summary="step 1a: all source tables -> data/postgres/{table}/{DATE}/",
    ),
    Step(
        name="extract-csv",
        upstream=(),
        writes=("csv",),
        reads=(),
        plugins="tap-northwind-csv target-jsonl-csv",
        plugin_state="tap-northwind-csv",
        retries=2,
        summary="step 1b: order_details.csv -> data/csv/order_details/{DATE}/",
    ),
    Step(
        name="load",
        upstream=("extract-postgres", "extract-csv"),
        writes=("warehouse",),
        reads=("postgres", "csv"),
        plugins="tap-landing target-postgres",
        plugin_state="tap-landing",
        retries=0,
        summary="step 2: the day's landed files -> warehouse raw layer (refuses unless step 1 succeeded)",
    ),
    Step(
        name="transform",
        upstream=("load",),
        writes=("warehouse",),
        reads=("postgres", "csv"),
        plugins="dbt-postgres:build",
        plugin_state="dbt",
        retries=0,
        summary="dbt build of the orders_details mart for DATE (refuses unless the load succeeded)",
    ),
    Step(
        name="export",
        upstream=("transform",),
        writes=("output",),
        reads=("warehouse",),
        plugins="",
        plugin_state=None,
        retries=0,
        summary="mart rows of DATE -> data/output/{DATE}/orders_details.csv and .json",
    ),
)

BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}
NAMES: list[str] = [s.name for s in STEPS]


def get(name: str) -> Step:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown step {name!r}: use one of {', '.join(NAMES)}") from None


def downstream_of(name: str) -> list[str]:
    """`name` and every step after it, in order (what `make pipeline STEP=name` runs)."""
    return NAMES[NAMES.index(get(name).name) :]


def locks_for(names: list[str]) -> dict[str, str]:
    """The day resources `names` need together: exclusive wins over shared."""
    wanted: dict[str, str] = {}
    for name in names:
        for resource, mode in get(name).locks().items():
            if wanted.get(resource) != EXCLUSIVE:
                wanted[resource] = mode
    return wanted
