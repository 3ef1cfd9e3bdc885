"""The step registry is the one home of the step graph: meltano.yml and the lock table agree
with it."""

from __future__ import annotations

import itertools
import shlex
from pathlib import Path

import yaml

from northwind_elt import registry
from northwind_elt.registry import EXCLUSIVE, SHARED

ROOT = Path(__file__).resolve().parents[2]


def _meltano_jobs() -> dict[str, list[str]]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    return {job["name"]: job["tasks"] for job in project["jobs"]}


def test_every_step_is_a_meltano_job_opened_and_closed_by_the_glue() -> None:
    jobs = _meltano_jobs()
    assert set(jobs) - {"pipeline"} == set(registry.NAMES)
    for step in registry.STEPS:
        assert jobs[step.name] == registry.job_tasks(step.name), step.name
    assert jobs["load"] == ["elt:open-load", "tap-landing target-postgres", "elt:close-load"]


def test_every_glue_command_of_a_job_exists_and_names_its_step() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    elt = next(p for p in project["plugins"]["utilities"] if p["name"] == "elt")
    for step in registry.NAMES:
        for action in ("open", "close"):
            assert elt["commands"][f"{action}-{step}"] == f"task {action} {step}"  # the day: RUN_DATE


def test_upstream_steps_come_first_and_exist() -> None:
    for index, step in enumerate(registry.STEPS):
        for up in step.upstream:
            assert registry.NAMES.index(up) < index


def test_a_step_locks_what_it_writes_exclusively_and_what_it_reads_shared() -> None:
    assert registry.get("load").locks() == {"postgres": SHARED, "csv": SHARED, "warehouse": EXCLUSIVE}
    assert registry.get("export").locks() == {"warehouse": SHARED, "output": EXCLUSIVE}


def test_the_two_extracts_can_run_side_by_side_but_load_waits_for_both() -> None:
    postgres, csv, load = (registry.get(n).locks() for n in ("extract-postgres", "extract-csv", "load"))
    assert not set(postgres) & set(csv)
    assert set(postgres) <= set(load) and set(csv) <= set(load)


def test_downstream_and_unknown_steps() -> None:
    assert registry.downstream_of("load") == ["load", "transform", "export"]
    try:
        registry.get("nope")
    except ValueError as exc:
        assert "extract-postgres" in str(exc)
    else:
        raise AssertionError("an unknown step was accepted")


def test_the_pipeline_job_is_the_five_jobs_in_order() -> None:
    jobs = _meltano_jobs()
    assert jobs["pipeline"] == [task for step in registry.NAMES for task in registry.job_tasks(step)]


def test_the_plugins_install_from_a_checkout_whose_path_has_a_space() -> None:
    """Meltano expands ${MELTANO_PROJECT_ROOT} in a pip_url, then splits it like a shell
    (plugin_install_service.get_pip_install_args): each local package's path must be quoted."""
    from meltano.core.utils import expand_env_vars

    root = "/home/a user/My Projects/northwind-elt"
    plugins = []
    for path in [ROOT / "meltano.yml", *ROOT.glob("*/*.meltano.yml")]:
        plugins += [p for kind in (yaml.safe_load(path.read_text()).get("plugins") or {}).values() for p in kind]
    local = 0
    for plugin in plugins:
        args = shlex.split(expand_env_vars(plugin.get("pip_url", ""), {"MELTANO_PROJECT_ROOT": root}))
        for flag, value in itertools.pairwise(args):
            if flag == "-e":
                assert value == root or value.startswith(f"{root}/"), (plugin["name"], args)
                local += 1
    assert local == 5  # the project (twice), tap-northwind-csv, tap-landing, target-jsonl-about
