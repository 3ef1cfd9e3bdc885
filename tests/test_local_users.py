"""Other OS users on the machine get nothing (issue 13, item 4).

Run as root (as CI does): a second OS user, `nobody`, tries every role over the server's Unix
socket and over TCP, with no password and with guessed ones, and tries to read every file that
holds a secret or run details, including the plugin configs a SIGKILL mid-step leaves behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from conftest import D1, ROOT, Project
from northwind_elt.database import EmbeddedPostgres, bin_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second OS user (CI runs as root)")

OTHER = "nobody"
RUNUSER = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"
GUESSES = [None, "", "postgres", "password", "northwind", "warehouse"]


def as_other(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNUSER, "-u", OTHER, "--", *args], capture_output=True, text=True, timeout=60, cwd="/", env=env)


def psql_as_other(host: str, port: int, user: str, database: str, password: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    if password is not None:
        env["PGPASSWORD"] = password
    return as_other(
        str(bin_dir() / "psql"),
        "-X",
        "-w",
        "-At",
        "-h",
        host,
        "-p",
        str(port),
        "-U",
        user,
        "-d",
        database,
        "-c",
        "select 'connected as ' || current_user",
        env=env,
    )


def roles(project: Project) -> list[tuple[str, str]]:
    s = project.settings
    return [("postgres", "postgres"), (s.source.user, s.source.database), (s.warehouse.user, s.warehouse.database)]


def test_other_user_cannot_connect_as_any_role(project: Project) -> None:
    settings = project.settings
    db = EmbeddedPostgres(settings)
    # controls: the server is up, the project's user gets in, the psql binary runs as nobody
    with db.admin() as conn:
        assert conn.execute("select current_user").fetchone() == ("postgres",)
    with psycopg.connect(settings.source.conninfo()) as conn:
        assert conn.execute("select current_user").fetchone() == (settings.source.user,)
    assert as_other(str(bin_dir() / "psql"), "--version").returncode == 0
    guesses = [*GUESSES, settings.source.user, settings.warehouse.user]
    for user, database in roles(project):
        for host in (str(db.socket_dir), "127.0.0.1", "localhost"):
            for password in guesses:
                result = psql_as_other(host, settings.pg_port, user, database, password)
                assert result.returncode != 0 and "connected as" not in result.stdout, (
                    f"{OTHER} connected as {user} via {host} (password {password!r})"
                )
    socket_dir = db.socket_dir
    assert socket_dir.stat().st_mode & 0o077 == 0, f"{socket_dir} is open to others"
    assert db.data.stat().st_mode & 0o777 == 0o700 and db.home.stat().st_mode & 0o077 == 0


def test_db_up_migrates_a_trust_cluster(project: Project) -> None:
    """A cluster made by an older version (local trust, open socket folder) is closed by `make db-up`."""
    settings = project.settings
    db = EmbeddedPostgres(settings)
    hba = db.data / "pg_hba.conf"
    old = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    hba.write_text(old)
    for path in (db.home, db.socket_dir, *db.socket_dir.glob(".s.PGSQL.*[0-9]")):  # as they were
        path.chmod(0o777 if path.is_socket() else 0o755)
    with db.admin() as conn:
        conn.execute("select pg_reload_conf()")
    deadline = time.monotonic() + 60  # the server applies the reload when it gets to it
    while (
        "connected as postgres" not in (opened := psql_as_other(str(db.socket_dir), settings.pg_port, "postgres", "postgres", None)).stdout
    ):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "connected as postgres" in opened.stdout, "the test could not recreate the old hole"
    project.make("db-up", check=True)
    assert "trust" not in hba.read_text()
    for user, database in roles(project):
        result = psql_as_other(str(db.socket_dir), settings.pg_port, user, database, None)
        assert result.returncode != 0 and "connected as" not in result.stdout, f"{OTHER} still gets in as {user}"


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _kill_mid_step(project: Project) -> list[Path]:
    """Start extract-postgres, SIGKILL its whole process group once Meltano has written the
    plugins' configs; return the config files it left behind."""
    run_dir = ROOT / ".meltano" / "run"
    password = project.settings.source.password
    before = set(run_dir.rglob("*config.json"))
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "nwelt"), "run", "extract-postgres", "--date", D1],
        cwd=ROOT,
        env={**os.environ, **project.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    left: list[Path] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            left = [p for p in run_dir.rglob("*config.json") if p not in before]
            if any(password in _text(p) for p in left):
                break
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert left, "no plugin config appeared before the step ended"
    return [p for p in left if p.exists()]


def test_other_user_reads_no_secret(project: Project) -> None:
    settings = project.settings
    project.make("pipeline", f"DATE={D1}", check=True)  # dbt's target/ and logs, step logs
    left = _kill_mid_step(project)
    assert any(settings.source.password in p.read_text() for p in left), "no config with the password was left"
    for path in left:
        assert path.stat().st_mode & 0o077 == 0, f"{path} was created readable by others"
    private = [
        ROOT / ".meltano",
        ROOT / "transform" / "target",
        ROOT / "transform" / "logs",
        settings.data_dir / "logs",
        EmbeddedPostgres(settings).home,
    ]
    if (ROOT / ".airflow").exists():
        private.append(ROOT / ".airflow")
    files = [ROOT / ".env", *left]
    for folder in private:
        assert folder.is_dir(), folder
        files += [p for p in folder.rglob("*") if p.is_file() and "venv" not in p.parts][:3000]
    assert any(p.name.endswith(".log") for p in files) and any("target" in p.parts for p in files)
    readable = as_other("/bin/sh", "-c", 'for f in "$@"; do cat -- "$f" >/dev/null 2>&1 && echo "$f"; done', "sh", *map(str, files))
    assert readable.stdout.strip() == "", f"{OTHER} can read:\n{readable.stdout[:3000]}"
    for folder in private:  # nor list what is there
        assert as_other("/bin/ls", str(folder)).returncode != 0, f"{OTHER} can list {folder}"
    for secret_file in [ROOT / ".env"]:
        assert secret_file.stat().st_mode & 0o077 == 0, f"{secret_file} is readable by others"
