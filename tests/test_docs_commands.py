"""The Meltano commands the README and docs/operations.md show, run exactly as written.

Every `meltano …` line of their code blocks runs here in document order (with this module's
DATA_DIR and warehouse database), and must succeed. Lines for the `prod` environment need
external servers: tests/test_environments.py runs them against a second cluster.
"""

from __future__ import annotations

import re
import shlex

import pytest

from conftest import ROOT, Project

DOCS = [ROOT / "README.md", ROOT / "docs" / "operations.md"]
MELTANO = str(ROOT / ".venv" / "bin" / "meltano")
COMMAND = re.compile(r"^((?:[A-Z_]+=\S+\s+)*)(?:\.venv/bin/)?meltano\s+(.*)$")


def documented_commands() -> list[tuple[str, dict[str, str], list[str]]]:
    """(where, environment assignments, meltano arguments) of every documented meltano line; a
    command shown in both documents runs once (`.venv/bin/meltano` and `meltano` are one command)."""
    found: dict[str, tuple[dict[str, str], list[str]]] = {}  # the command as one line -> its parts
    shown_in: dict[str, list[str]] = {}  # the command -> the documents showing it
    for doc in DOCS:
        fence: str | None = None  # the language of the code block we are in, if any
        for line in doc.read_text().splitlines():
            if line.startswith("```"):
                fence = None if fence is not None else (line[3:].strip() or "bash")
                continue
            if fence not in ("bash", "sh", "console"):
                continue
            match = COMMAND.match(line.split(" #")[0].strip())
            if match:
                assignments, args = dict(a.split("=", 1) for a in shlex.split(match.group(1))), shlex.split(match.group(2))
                key = " ".join([*(f"{k}={v}" for k, v in assignments.items()), "meltano", *args])
                found.setdefault(key, (assignments, args))
                docs = shown_in.setdefault(key, [])
                if doc.name not in docs:
                    docs.append(doc.name)
    return [(f"{', '.join(shown_in[key])}: {key}", *parts) for key, parts in found.items()]


COMMANDS = documented_commands()


def test_the_docs_show_meltano_commands() -> None:
    shown = {" ".join(args[:2]) for _, _, args in COMMANDS}
    assert {"run extract-postgres", "config list", "schedule list"} <= shown, shown


@pytest.mark.parametrize(("where", "assignments", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_meltano_command_works(project: Project, where: str, assignments: dict[str, str], args: list[str]) -> None:
    if "--environment=prod" in args:
        pytest.skip("needs external servers: tests/test_environments.py runs the prod environment against a second cluster")
    result = project.run(MELTANO, *args, env=assignments)
    assert result.returncode == 0, f"{where}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
