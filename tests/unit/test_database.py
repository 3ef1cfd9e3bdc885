"""The embedded server's start, on the quick tier's throwaway cluster."""

from __future__ import annotations

import multiprocessing
import time

from northwind_elt.database import EmbeddedPostgres
from northwind_elt.settings import Settings


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
