"""No value given to make (or in its environment) ever reaches a shell (issue 13, item 6).

Each variable gets quotes that try to close the recipe's quoting, `;`, `$(…)`, backticks and
make's own `$(shell …)`; the marker file they would create must never appear, and the error
must name the variable.
"""

from __future__ import annotations

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
]

# variable -> (make target, the other assignments the target needs, a valid value)
CASES = {
    "DATE": ("pipeline", [], D1),
    "STEP": ("pipeline", [f"DATE={D1}"], "load"),
    "START": ("backfill", [f"END={D2}"], D1),
    "END": ("backfill", [f"START={D1}"], D2),
    "DAYS": ("status", [], "1"),
    "SCALE": ("bench", [], "1"),
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
