"""Shared fixtures: a real embedded PostgreSQL, real `make`/Meltano/dbt runs, isolated data.

Each test module gets its own DATA_DIR (a temporary folder) and its own warehouse database,
so modules cannot see each other's days. The source database is the real Northwind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from northwind_elt import settings as settings_mod
from northwind_elt.database import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]
D1 = "2024-01-01"
D2 = "2024-01-02"


@dataclass
class Project:
    """The repository, run as a user would, with its own DATA_DIR and warehouse database."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, check: bool = False, env: dict[str, str] | None = None, timeout: int = 900
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args), cwd=ROOT, env={**os.environ, **self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def make(
        self, target: str, *assignments: str, check: bool = False, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`make <target> DATE=...` exactly as a user types it."""
        return self.run("make", "--no-print-directory", target, *assignments, check=check, env=env)

    @property
    def settings(self) -> settings_mod.Settings:
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            return settings_mod.load()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.settings.warehouse.conninfo(), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def day_files(self, day: str, *sources: str) -> dict[str, str]:
        """sha256 of every landed file of `day` (relative path -> digest)."""
        digests = {}
        for source in sources or ("postgres", "csv"):
            for path in sorted((self.data_dir / source).glob(f"*/{day}/*")):
                digests[str(path.relative_to(self.data_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
            marker = self.data_dir / source / "_manifests" / f"{day}.json"
            if marker.exists():
                digests[str(marker.relative_to(self.data_dir))] = hashlib.sha256(marker.read_bytes()).hexdigest()
        return digests

    def raw_snapshot(self, day: str) -> dict[str, list[tuple[Any, ...]]]:
        """Every raw table's rows for `day`, for comparing a day before and after."""
        tables = [
            t
            for (t,) in self.sql(
                "select table_name from information_schema.tables where table_schema = 'raw' and table_name <> '_loads' order by 1"
            )
        ]
        return {t: self.sql(f'select * from raw."{t}" where snapshot_date = %s order by 2, 3', (day,)) for t in tables}


# The end-to-end tests (node id prefixes) that change what every run of this checkout or server
# shares, or read it whole. `make test` runs them after the others, alone; the others run two
# modules at a time.
SERIAL = {
    "tests/test_extract.py": "writes an empty cached catalog into .meltano/run",
    "tests/test_faults.py::test_disk_full_during_step1": "mounts a small disk over the checkout's staging folder",
    "tests/test_faults.py::test_readonly_data_folder_during_step1": "mounts a read-only disk over the staging folder",
    "tests/test_local_users.py": "opens the server's pg_hba.conf to trust; lists .meltano while runs change it",
    "tests/test_environments.py": "runs on a second cluster, where the checkout's tap lock is another than the first's",
    "tests/test_docs_site.py": "serves transform/target, which every dbt build rewrites",
    "tests/test_docs_port.py": "serves transform/target, which every dbt build rewrites; binds 8081",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test outside tests/unit is end to end (`e2e`): `pytest -m "not e2e"` (make test-unit)
    runs the quick tier alone, on a throwaway server of its own. The tests SERIAL names are also `serial`."""
    for key in SERIAL:  # a key naming no test would leave that test running beside the others
        path, _, name = key.partition("::")
        if not (ROOT / path).is_file() or (name and f"def {name}(" not in (ROOT / path).read_text()):
            raise pytest.UsageError(f"SERIAL in tests/conftest.py names {key}, which is not a test: correct it")
    unit = ROOT / "tests" / "unit"
    for item in items:
        if unit not in item.path.parents:
            item.add_marker(pytest.mark.e2e)
        if item.nodeid.startswith(tuple(SERIAL)):
            item.add_marker(pytest.mark.serial)


@contextlib.contextmanager
def open_folder(prefix: str) -> Iterator[Path]:
    """A temporary folder the embedded server's OS user may enter (as root, the server runs as
    another user, and the project never opens folders above it). pytest's own are private, and
    each pytest process (an xdist worker) closes pytest-of-<user> again when it starts."""
    folder = Path(tempfile.mkdtemp(prefix=f"nwelt-test-{prefix}-"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    with open_folder("tmp") as folder:
        yield folder


@pytest.fixture(scope="session")
def open_session_tmp() -> Iterator[Path]:
    with open_folder("session") as folder:
        yield folder


def free_port() -> int:
    """A port nothing listens on at 127.0.0.1 now, chosen by the kernel (a fixed one may be some
    client's ephemeral port just then)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition, seconds: float = 120) -> bool:  # type: ignore[no-untyped-def]
    """Poll `condition` until it holds (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def pids_of(project: Project) -> dict[int, str]:
    """pid -> command line of the processes running with this project's DATA_DIR (plugins included)."""
    marker = f"DATA_DIR={project.data_dir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return found


def processes_of(project: Project) -> list[str]:
    """Command lines of the processes running with this project's DATA_DIR (plugins included)."""
    return list(pids_of(project).values())


def _make_or_fail(target: str) -> None:
    """`make <target>`; if it fails, every test that needs it errors with make's own output."""
    result = subprocess.run(["make", "--no-print-directory", target], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"make {target} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}", pytrace=False)


def _setup_done() -> None:
    _make_or_fail("setup")


@pytest.fixture(scope="session")
def database() -> None:
    """The embedded PostgreSQL is up (make db-up), seeded, with roles."""
    _setup_done()
    _make_or_fail("db-up")


def new_project(tmp_path_factory: pytest.TempPathFactory, name: str, source_database: str | None = None) -> Project:
    """A fresh DATA_DIR and a fresh warehouse database (and optionally a private, freshly seeded
    copy of the source database, for tests that change the source)."""
    data_dir = tmp_path_factory.mktemp(f"data-{name}")
    warehouse = f"warehouse_test_{name}"
    # the suffix: Meltano refuses a plain `meltano run` of a block another module's run has in its
    # own records as running (without --force): each module's runs name their blocks apart
    env = {"DATA_DIR": str(data_dir), "WAREHOUSE_PG_DATABASE": warehouse, "MELTANO_RUN_STATE_ID_SUFFIX": name}
    if source_database:
        env["SOURCE_PG_DATABASE"] = source_database
    project = Project(data_dir, env)
    db = EmbeddedPostgres(project.settings)
    with db.admin() as conn:
        for database in (warehouse, source_database):
            if database:
                conn.execute(f'drop database if exists "{database}" with (force)')
    db.up(sync_passwords=False)  # creates (and seeds) the databases of this project, one provisioner at a time
    return project


@pytest.fixture(scope="module")
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, database: None) -> Project:
    return new_project(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))


@pytest.fixture()
def csv_copy(tmp_path: Path) -> Path:
    """A private copy of the real order_details.csv that a test may break."""
    source = settings_mod.load().source_dir / "order_details.csv"
    target = tmp_path / "order_details.csv"
    shutil.copyfile(source, target)
    return target
