"""Writing `.env` on first set-up (no database): fresh passwords, private file, and a port for
the embedded server that no other server on the machine already listens on."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import socket
import stat
import time
from pathlib import Path

import pytest
from dotenv import dotenv_values

from northwind_elt import settings
from northwind_elt.errors import ConfigError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(settings.ROOT / ".env.example", tmp_path / ".env.example")
    monkeypatch.delenv("NWELT_PG_PORT", raising=False)
    return tmp_path


def test_env_gets_private_random_passwords(project: Path) -> None:
    assert settings.ensure_env_file(project) is True
    values = dotenv_values(project / ".env")
    assert values["SOURCE_PG_PASSWORD"] and values["SOURCE_PG_PASSWORD"] != values["WAREHOUSE_PG_PASSWORD"]
    assert values["AIRFLOW_JWT_SECRET"] and values["AIRFLOW_API_SECRET"] != values["AIRFLOW_JWT_SECRET"]
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600
    assert settings.ensure_env_file(project) is False  # never rewritten


def test_an_older_env_gains_the_new_settings_and_keeps_the_rest(project: Path) -> None:
    assert settings.ensure_env_file(project) is True
    older = [line for line in (project / ".env").read_text().splitlines() if not line.startswith(("AIRFLOW_", "MELTANO_"))]
    older = [line if not line.startswith("SOURCE_PG_PASSWORD=") else "SOURCE_PG_PASSWORD=kept" for line in older]
    (project / ".env").write_text("\n".join([*older, "AIRFLOW_JWT_SECRET=mine"]))  # no final newline
    assert settings.add_missing_settings(project) == ["AIRFLOW_DB_PASSWORD", "AIRFLOW_API_SECRET", "MELTANO_ENVIRONMENT"]
    values = dotenv_values(project / ".env")
    assert values["SOURCE_PG_PASSWORD"] == "kept" and values["AIRFLOW_JWT_SECRET"] == "mine"
    assert values["AIRFLOW_DB_PASSWORD"] and values["AIRFLOW_API_SECRET"] != values["AIRFLOW_DB_PASSWORD"]
    assert values["MELTANO_ENVIRONMENT"] == "dev" and "AIRFLOW_USE_JOB_SCHEDULE" not in values  # has a default
    assert settings.add_missing_settings(project) == []


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


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("NWELT_HEARTBEAT_SECONDS", "abc", "is not a number from 0.1 to 3600"),
        ("NWELT_LOCK_WAIT_SECONDS", "-1", "is not a number from 0 to 86400"),
        ("NWELT_BACKFILL_DAYS", "1.5", "is not a whole number from 1 to 8"),
        ("NWELT_PG_PORT", "5432a", "is not a whole number from 1 to 65535"),
        ("WAREHOUSE_PG_PORT", "0", "is not a whole number from 1 to 65535"),
        ("DOCS_PORT", "99999", "is not a whole number from 1 to 65535"),
    ],
)
def test_a_bad_number_is_one_line_naming_it_and_what_is_accepted(
    project: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        settings.load(project)
    assert error.value.message == f"{name}={value!r} {says}: fix or unset it (.env or the environment)"


def test_the_other_settings_are_checked_too(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NWELT_DB", "sqlite")
    with pytest.raises(ConfigError, match=r"^NWELT_DB='sqlite': use 'embedded' \(default\) or 'external'$"):
        settings.load(project)
    monkeypatch.setenv("NWELT_DB", "embedded")
    (project / "pg").write_text("")
    monkeypatch.setenv("NWELT_PG_HOME", "pg")  # a folder setting is relative to the project root
    with pytest.raises(
        ConfigError, match=f"^NWELT_PG_HOME={re.escape(str(project / 'pg'))} is a file, not a folder: point NWELT_PG_HOME at a folder"
    ):
        settings.load(project)


def test_docs_port_is_chosen_in_the_environment_or_in_env_by_a_port_of_ones_own(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make docs` takes the next free port unless DOCS_PORT was chosen: .env.example's 8081 (in
    every `.env` that `make setup` wrote) is not a choice."""
    monkeypatch.delenv("DOCS_PORT", raising=False)
    settings.ensure_env_file(project)
    assert settings.load(project).docs_port is None
    with (project / ".env").open("a") as env:
        env.write("DOCS_PORT=9000\n")
    assert settings.load(project).docs_port == 9000
    monkeypatch.setenv("DOCS_PORT", "8081")
    assert settings.load(project).docs_port == 8081


def test_every_variable_is_in_the_table_of_operations_md() -> None:
    """docs/operations.md lists every NWELT_* variable the project reads (and DOCS_PORT) in one table."""
    text = (settings.ROOT / "docs" / "operations.md").read_text()
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z_]+)`", "\n".join(line for line in section.splitlines() if line.startswith("| `"))))
    readers = [*(settings.ROOT / "src" / "northwind_elt").glob("*.py"), *(settings.ROOT / "orchestrate").rglob("*.py")]
    readers += [settings.ROOT / name for name in (".env.example", "docker-compose.yml", "Makefile", "meltano.yml")]
    read = {name for path in readers for name in re.findall(r"\b(NWELT_[A-Z_]*[A-Z]|DOCS_PORT)\b", path.read_text())}
    assert read - documented == set()


def test_the_meltano_environment_follows_nwelt_db_and_a_disagreement_is_one_line(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NWELT_DB", raising=False)  # the .env alone decides
    (project / ".env").write_text("NWELT_DB=external\nSOURCE_PG_HOST=db\nWAREHOUSE_PG_HOST=db\n")
    assert settings.add_missing_settings(project)[-1] == "MELTANO_ENVIRONMENT"
    assert dotenv_values(project / ".env")["MELTANO_ENVIRONMENT"] == "prod"  # an older .env of your own servers
    assert settings.load(project).meltano_environment == "prod"
    (project / ".env").write_text("NWELT_DB=external\nSOURCE_PG_HOST=db\nWAREHOUSE_PG_HOST=db\nMELTANO_ENVIRONMENT=dev\n")
    with pytest.raises(settings.ConfigError, match=r"set MELTANO_ENVIRONMENT=prod in \.env"):
        settings.load(project)


@pytest.mark.parametrize("zone", ["EST+5", "UTC0", "JST-9"])
def test_the_day_d_is_accepted_from_00_00_utc_of_d_in_every_time_zone(zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's daily run of D starts at 00:00 UTC of D: west of UTC the local date is still D-1
    then. D is accepted, D+1 is not; an empty DATE is the local date."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        now = dt.datetime(2024, 1, 2, 0, 5, tzinfo=dt.timezone.utc)
        assert settings.parse_date("2024-01-02", now=now) == dt.date(2024, 1, 2)
        assert settings.parse_date("", now=now) == now.astimezone().date()
        with pytest.raises(ConfigError, match=r"RUN_DATE=2024-01-03 is in the future \(today is 2024-01-02\)"):
            settings.parse_date("2024-01-03", name="RUN_DATE", now=now)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("raw", ["2024-W27-1", "2024-183", "20240701", "2024-07-01T00:00", "\uff12\uff10\uff12\uff14-07-01"])
def test_only_the_form_yyyy_mm_dd_is_a_date(raw: str) -> None:
    """Python's fromisoformat also takes week dates (2024-W27-1, ten characters like a day),
    which dbt's check refuses: the day would be loaded, then the transform refused."""
    with pytest.raises(ConfigError, match=r"is not a date: use the form YYYY-MM-DD"):
        settings.parse_date(raw, name="RUN_DATE")
