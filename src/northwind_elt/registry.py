"""The steps of the pipeline, defined once, for the locks, status, the runner, the glue tasks and
the Airflow DAG (which loads this file by path: standard library only). meltano.yml repeats each
step's job (job_tasks) and the `pipeline` job: tests/unit/test_registry.py checks them."""

from __future__ import annotations

from dataclasses import dataclass

SHARED, EXCLUSIVE = "shared", "exclusive"


@dataclass(frozen=True)
class Step:
    name: str  # the make target, the Meltano job and the ledger's step name
    upstream: tuple[str, ...]  # steps whose success for D this step needs
    writes: str  # day resources it changes, space-separated like plugins (locked exclusively while it runs)
    reads: str  # day resources it reads (locked shared)
    plugins: str  # the Meltano block between elt:open-<name> and elt:close-<name> ("" = glue only)
    plugin_state: str | None  # state its plugin rewrites whatever the day: "checkout X" or "warehouse X" (a lock)
    retries: int = 0  # Airflow retries: only steps reading live sources can gain from a retry

    @property
    def task_id(self) -> str:
        """The Airflow task id."""
        return self.name.replace("-", "_")

    def locks(self) -> dict[str, str]:
        return {**dict.fromkeys(self.reads.split(), SHARED), **dict.fromkeys(self.writes.split(), EXCLUSIVE)}


STEPS: tuple[Step, ...] = (
    Step("extract-postgres", (), "postgres", "", "tap-postgres target-jsonl-postgres", "checkout tap-postgres", retries=2),
    Step("extract-csv", (), "csv", "", "tap-northwind-csv target-jsonl-csv", "checkout tap-northwind-csv", retries=2),
    Step("load", ("extract-postgres", "extract-csv"), "warehouse", "postgres csv", "tap-landing target-postgres", "checkout tap-landing"),
    Step("transform", ("load",), "warehouse", "postgres csv", "dbt-postgres:build", "warehouse dbt"),
    Step("export", ("transform",), "output", "warehouse", "", None),
)
NAMES: list[str] = [s.name for s in STEPS]


def get(name: str) -> Step:
    for step in STEPS:
        if step.name == name:
            return step
    raise ValueError(f"unknown step {name!r}: use one of {', '.join(NAMES)}")


def downstream_of(name: str) -> list[str]:
    """`name` and every step after it, in order (what `make pipeline STEP=name` runs)."""
    return NAMES[NAMES.index(get(name).name) :]


def job_tasks(name: str) -> list[str]:
    """The tasks of a step's Meltano job, as meltano.yml must list them."""
    step = get(name)
    return [f"elt:open-{name}", *([step.plugins] if step.plugins else []), f"elt:close-{name}"]
