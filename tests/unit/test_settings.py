"""Writing `.env` on first set-up (no database): fresh passwords, private file, and a port for
the embedded server that no other server on the machine already listens on."""

from __future__ import annotations

import shutil
import socket
import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from northwind_elt import settings


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(settings.ROOT / ".env.example", tmp_path / ".env.example")
    monkeypatch.delenv("NWELT_PG_PORT", raising=False)
    return tmp_path


def test_env_gets_private_random_passwords(project: Path) -> None:
    assert settings.ensure_env_file(project) is True
    values = dotenv_values(project / ".env")
    assert values["SOURCE_PG_PASSWORD"] and values["SOURCE_PG_PASSWORD"] != values["WAREHOUSE_PG_PASSWORD"]
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600
    assert settings.ensure_env_file(project) is False  # never rewritten


def test_a_port_another_server_listens_on_is_not_chosen(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second checkout or another user's server on the default port: the new `.env` takes the
    next free port for every *_PG_PORT, so `make db-up` starts instead of failing."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # a port some other server holds, standing in for the default
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(settings, "DEFAULT_PG_PORT", busy)
        assert settings.ensure_env_file(project) is True
        values = dotenv_values(project / ".env")
        ports = {values[name] for name in ("NWELT_PG_PORT", "SOURCE_PG_PORT", "WAREHOUSE_PG_PORT")}
        assert ports == {str(settings.free_port(busy))} and str(busy) not in ports


def test_a_given_port_wins(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NWELT_PG_PORT", "61234")
    settings.ensure_env_file(project)
    values = dotenv_values(project / ".env")
    assert {values[name] for name in ("NWELT_PG_PORT", "SOURCE_PG_PORT", "WAREHOUSE_PG_PORT")} == {"61234"}
