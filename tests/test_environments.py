"""Meltano environments: `dev` is the embedded server, `prod` external servers from the environment.

A second embedded cluster on another port stands in for the external servers (as Docker Compose
would publish them): `meltano --environment=prod run …` and `make pipeline` with NWELT_DB=external
must use it, and leave the dev server's databases alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, Project, free_port, open_folder
from northwind_elt.database import EmbeddedPostgres

MELTANO = str(ROOT / ".venv" / "bin" / "meltano")
WAREHOUSE = "warehouse_prod_standin"


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory, database: None) -> Iterator[tuple[Project, int]]:
    """Servers that are not the dev one: a second cluster, seeded, with the roles, on its own port."""
    port = free_port()
    with open_folder("external-pg") as home:
        yield from _external(tmp_path_factory, port, home)


def _external(tmp_path_factory: pytest.TempPathFactory, port: int, home: Path) -> Iterator[tuple[Project, int]]:
    data_dir = tmp_path_factory.mktemp("data-prod")
    server = Project(
        data_dir,
        {"NWELT_PG_HOME": str(home / "pg"), "NWELT_PG_PORT": str(port), "DATA_DIR": str(data_dir), "WAREHOUSE_PG_DATABASE": WAREHOUSE},
    )
    cluster = EmbeddedPostgres(server.settings)
    cluster.up()
    # what a user of external servers sets: where they are (no NWELT_PG_* of the embedded server)
    user = Project(
        data_dir,
        {
            "DATA_DIR": str(data_dir),
            "WAREHOUSE_PG_DATABASE": WAREHOUSE,
            "SOURCE_PG_HOST": "127.0.0.1",
            "SOURCE_PG_PORT": str(port),
            "WAREHOUSE_PG_HOST": "127.0.0.1",
            "WAREHOUSE_PG_PORT": str(port),
        },
    )
    try:
        yield user, port
    finally:
        cluster.stop()


def _mart_rows(port: int, project: Project, day: str) -> int:
    conninfo = project.settings.warehouse.conninfo(port=str(port))
    with psycopg.connect(conninfo) as conn:
        return int(conn.execute("select count(*) from marts.orders_details where snapshot_date = %s", (day,)).fetchone()[0])  # type: ignore[index]


def _dev_has(database: str) -> bool:
    dev = Project(Path("."), {}).settings
    with EmbeddedPostgres(dev).admin() as conn:
        return conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone() is not None


def test_meltano_prod_environment_uses_the_external_servers(external: tuple[Project, int]) -> None:
    project, port = external
    day = "2024-05-01"
    result = project.run(
        MELTANO, "--environment=prod", "run", "extract-postgres", "extract-csv", "load", "transform", "export", env={"RUN_DATE": day}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (project.data_dir / "output" / day / "orders_details.csv").read_text().count("\n") - 1
    assert lines > 0 and _mart_rows(port, project, day) == lines
    assert not _dev_has(WAREHOUSE)  # the dev server never saw this warehouse


def test_make_with_external_servers_runs_meltano_in_prod(external: tuple[Project, int]) -> None:
    project, port = external
    day = "2024-05-02"
    result = project.make("pipeline", f"DATE={day}", env={"NWELT_DB": "external"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for job in ("extract-postgres", "extract-csv"):  # the two Meltano runs: the chain starts with extract-postgres
        log = next((project.data_dir / "logs" / day).glob(f"{job}-*.log")).read_text()
        assert "Environment 'prod' is active" in log
    exported = (project.data_dir / "output" / day / "orders_details.csv").read_text().count("\n") - 1
    assert exported > 0 and _mart_rows(port, project, day) == exported


def test_dev_is_the_default_environment(project: Project) -> None:
    listed = project.run(MELTANO, "environment", "list")
    assert listed.returncode == 0 and "dev" in listed.stdout and "prod" in listed.stdout
    result = project.run(MELTANO, "run", "--dry-run", "export", env={"RUN_DATE": "2024-05-03"})
    assert result.returncode == 0 and "Environment 'dev' is active" in result.stderr
