"""No value given to make (or in its environment) ever reaches a shell (issue 13, item 6).

Each variable gets quotes that try to close the recipe's quoting, `;`, `$(…)`, backticks and
make's own `$(shell …)`; the marker file they would create must never appear, and the error
must name the variable. That holds for every name, also the ones the Makefile never reads
(GNU make expands a command-line variable when it exports it to a recipe) and its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import D1, D2, Project

PAYLOADS = [
    '{day}"; touch {marker}; "',
    "{day}'; touch {marker}; '",
    "{day}; touch {marker};",
    "$(touch {marker})`touch {marker}`",
    "$$(touch {marker})",
    "$(shell touch {marker})",
    "--help",  # an option to the command behind the target, were the value not bound to its own
]

# variable -> (make target, the other assignments the target needs, a valid value)
CASES = {
    "DATE": ("pipeline", [], D1),
    "STEP": ("pipeline", [f"DATE={D1}"], "load"),
    "START": ("backfill", [f"END={D2}"], D1),
    "END": ("backfill", [f"START={D1}"], D2),
    "DAYS": ("status", [], "1"),
    "SCALE": ("bench", [], "1"),
    "TEST_WORKERS": ("test", [], "2"),  # refused before any test runs
}


@pytest.mark.parametrize("name", list(CASES))
def test_no_make_variable_reaches_a_shell(project: Project, tmp_path: Path, name: str) -> None:
    target, others, valid = CASES[name]
    for i, payload in enumerate(PAYLOADS):
        marker = tmp_path / f"ran-{i}"
        value = payload.format(day=valid, marker=marker)
        result = project.make(target, *others, f"{name}={value}")
        assert not marker.exists(), f"{name}={value!r} ran a command through a shell"
        assert result.returncode != 0, f"{name}={value!r} was accepted:\n{result.stdout[-2000:]}"
        assert f"{name}=" in result.stderr, f"the error does not name {name}:\n{result.stderr[-2000:]}"


def test_no_environment_value_reaches_a_shell(project: Project, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for payload in PAYLOADS:
        value = payload.format(day=D1, marker=marker)
        result = project.make("extract-csv", env={"DATE": value})
        assert not marker.exists(), f"DATE={value!r} from the environment ran a command"
        assert result.returncode != 0 and "DATE=" in result.stderr


def test_pytest_args_are_arguments_not_shell(project: Project, tmp_path: Path) -> None:
    """PYTEST_ARGS is the developer's own argument list: split like a shell would, never run."""
    marker = tmp_path / "ran"
    value = f'--version "; touch {marker}; " $(touch {marker}) `touch {marker}`'
    result = project.run("make", "--no-print-directory", "test", f"PYTEST_ARGS={value}")
    assert not marker.exists()
    assert "pytest" in (result.stdout + result.stderr)


# Names the Makefile never reads, the loop variable of its protection, and names of its own.
ANY_NAMES = ["DATA_DIR", "ORDER_DETAILS_CSV", "NWELT_DB", "SOME_UNUSED_NAME_X", "name", "NWELT", "VENV", "SHELL", "MAKEFILE_LIST", "PYTHON"]
# how the value is given: make's command line, the environment, the environment with `make -e`
WAYS = ["command line", "environment", "environment -e"]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("name", ANY_NAMES)
def test_no_variable_of_any_name_reaches_a_shell(project: Project, tmp_path: Path, name: str, way: str) -> None:
    for i, payload in enumerate(PAYLOADS):
        marker = tmp_path / f"ran-{i}"
        value = payload.format(day="", marker=marker)
        if way == "command line":
            result = project.make("help", f"{name}={value}")
        else:
            result = project.make("help", *way.split()[1:], env={name: value})
        assert not marker.exists(), f"{name}={value!r} ({way}) ran a command"
        if name != "MAKEFILE_LIST":  # the list help reads: a command line replacing it empties help
            assert "make pipeline" in result.stdout, f"{name}={value!r} ({way}) broke make help:\n{result.stderr[-2000:]}"


def test_values_of_any_name_reach_recipes_verbatim(project: Project, tmp_path: Path) -> None:
    """A recipe (here a probe read after the Makefile) sees the text given, `$`, quotes and spaces
    included, from the command line and the environment; PATH still reaches it."""
    probe = tmp_path / "probe.mk"
    probe.write_text("probe:\n\t@.venv/bin/python -c 'import json, os; print(json.dumps(dict(os.environ)))'\n")
    value = f"{tmp_path}/a b $x $$y ${{z}} $(shell true) `true` 'q' \"q\" \\"
    result = project.run(
        "make", "--no-print-directory", "-f", "Makefile", "-f", str(probe), "probe", f"DATA_DIR={value}", f"SOME_UNUSED_NAME_X={value}",
        env={"ORDER_DETAILS_CSV": value, "DATE": value},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout)
    assert [seen.get(name) for name in ("DATA_DIR", "SOME_UNUSED_NAME_X", "ORDER_DETAILS_CSV", "DATE")] == [value] * 4
    assert seen["PATH"] == os.environ["PATH"]
