"""What the README and docs/operations.md tell a new user on a Debian host: commands it has, where
the Airflow password is, that results are private and how to share them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README, OPERATIONS = (ROOT / "README.md").read_text(), (ROOT / "docs" / "operations.md").read_text()


def code_lines(text: str) -> list[str]:
    return [line for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S) for line in block.splitlines()]


def test_compose_commands_are_the_ones_debian_packages() -> None:
    lines = code_lines(README) + code_lines(OPERATIONS)
    assert any(line.startswith("docker-compose ") for line in lines)
    assert not [line for line in lines if line.startswith("docker compose ")]  # v2: not packaged by bookworm


def test_the_airflow_password_and_the_privacy_of_results_are_explained() -> None:
    assert (
        "The first `make airflow` prints the admin password; it stays in\n`.airflow/simple_auth_manager_passwords.json.generated`"
        in OPERATIONS
    )
    assert "umask 077" in README and "To share a day" in README


def test_make_error_lines_shown_name_their_targets_recipe() -> None:
    """The docs show make's last line as the user sees it: `Makefile:N` is that target's recipe."""
    makefile = (ROOT / "Makefile").read_text().splitlines()
    shown = re.findall(r"make: \*\*\* \[Makefile:(\d+): ([\w-]+)\] Error", README + OPERATIONS)
    assert shown
    for number, target in shown:
        line = int(number) - 1
        assert makefile[line].startswith("\t"), (number, target)
        rule = next(text for text in reversed(makefile[:line]) if not text.startswith("\t"))
        assert rule.startswith(f"{target}:"), (number, target, rule)
