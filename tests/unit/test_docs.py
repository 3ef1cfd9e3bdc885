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
