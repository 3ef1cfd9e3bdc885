"""The embedded server's start, on the quick tier's throwaway cluster."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest

from northwind_elt.database import EmbeddedPostgres
from northwind_elt.errors import ConfigError
from northwind_elt.settings import Settings, free_port


def test_a_start_that_finds_the_server_starting_waits_until_it_accepts_connections(server: Settings) -> None:
    """Two commands (two `make` runs at once) find the server stopped: the second
    finds it starting, by the first, and connects once it accepts connections (a traceback before)."""
    db, first = EmbeddedPostgres(server), None
    try:
        for _ in range(3):
            db.stop()
            first = multiprocessing.get_context("fork").Process(target=EmbeddedPostgres(server).start)
            first.start()
            deadline = time.monotonic() + 60
            while not (db.data / "postmaster.pid").exists():  # the first has just launched the server
                assert first.is_alive() and time.monotonic() < deadline, "the first start launched no server"
                time.sleep(0.001)
            db.start()
            with db.admin() as conn:
                assert conn.execute("select 1").fetchone() == (1,)
            first.join(90)
            assert first.exitcode == 0
    finally:
        if first is not None and first.is_alive():
            first.kill()
        db.start()


def test_a_server_folder_a_shell_would_expand_is_refused_before_any_shell_sees_it(server: Settings, tmp_path: Path) -> None:
    """pg_ctl and initdb run the server through `sh -c` with paths in double quotes: `$(…)` in
    NWELT_PG_HOME (a make variable) would run. Refused, in one line naming it."""
    tmp_path.chmod(0o755)
    witness = tmp_path / "ran"
    home = tmp_path / f"pg$(touch {witness})"
    settings = dataclasses.replace(server, pg_home=home, pg_port=free_port(57000))
    with pytest.raises(ConfigError, match=r"^NWELT_PG_HOME .* holds '\$': pg_ctl and initdb pass its path through a shell"):
        db = EmbeddedPostgres(settings)
        db.init()
        db.start()
    assert not witness.exists()


def test_a_server_folder_with_spaces_holds_the_server(server: Settings) -> None:
    """A checkout in "My Projects": the socket folder inside it too (a short path)."""
    folder = Path(tempfile.mkdtemp(prefix="my projects "))
    folder.chmod(0o755)
    db = EmbeddedPostgres(dataclasses.replace(server, pg_home=folder / "pg", pg_port=free_port(57100)))
    assert " " in str(db.socket_dir)
    try:
        db.init()
        db.start()
        with db.admin() as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        db.stop()
        shutil.rmtree(folder)


def test_a_folder_above_the_project_is_never_opened_to_the_servers_user(server: Settings, open_tmp: Path) -> None:
    """As root the server runs as another OS user, which must enter the folders above its home. A
    private one outside the project (/root) is refused, naming it, never opened to every user."""
    if os.geteuid() != 0:
        pytest.skip("only root runs the server as another OS user")
    closed = open_tmp / "private"
    closed.mkdir(mode=0o700)
    db = EmbeddedPostgres(dataclasses.replace(server, pg_home=closed / "pg", pg_port=free_port(57200)))
    with pytest.raises(ConfigError, match=rf"cannot enter {closed} \(mode 700\): put the project"):
        db.init()
    assert stat.S_IMODE(closed.stat().st_mode) == 0o700


def test_a_link_in_the_project_to_a_private_folder_does_not_open_it(server: Settings, open_tmp: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs the server as another OS user")
    project, private = open_tmp / "project", open_tmp / "private"
    project.mkdir(mode=0o755)
    private.mkdir(mode=0o700)
    (project / "link").symlink_to(private)
    db = EmbeddedPostgres(dataclasses.replace(server, root=project, pg_home=project / "link" / "pg", pg_port=free_port(57300)))
    with pytest.raises(ConfigError, match=rf"cannot enter {private} \(mode 700\)"):
        db.init()
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
