"""The quick tier's own PostgreSQL: a throwaway cluster of the embedded server's binaries (no
Meltano, no seed), for the modules whose logic is SQL (the ledger, the locks, the gates)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from northwind_elt import ledger
from northwind_elt import settings as settings_mod
from northwind_elt.database import EmbeddedPostgres
from northwind_elt.settings import PgConn, Settings


@pytest.fixture(scope="session")
def server(open_session_tmp: Path) -> Iterator[Settings]:
    home = open_session_tmp  # pytest's own folders are private (tests/conftest.py, open_folder)
    port = settings_mod.free_port(56432)
    wh = PgConn("127.0.0.1", port, "warehouse", "warehouse_loader", secrets.token_urlsafe(12))
    base = settings_mod.load()
    settings = dataclasses.replace(
        base, db_mode="embedded", pg_home=home / "pg", pg_port=port, warehouse=wh, source=wh, checkout_database=""
    )
    db = EmbeddedPostgres(settings)
    db.init()
    db.start()
    with db.admin() as conn:
        conn.execute(f"create role warehouse_loader login password '{wh.password}'")
        conn.execute("create database warehouse owner warehouse_loader")
    try:
        yield settings
    finally:
        db.stop()


@pytest.fixture
def warehouse(server: Settings, tmp_path: Path) -> Iterator[Settings]:
    """The server with an empty warehouse database and a fresh DATA_DIR."""
    db = EmbeddedPostgres(server)
    ledger._READY.clear()
    with db.admin() as conn:
        conn.execute("drop database if exists warehouse with (force)")
        conn.execute("create database warehouse owner warehouse_loader")
    yield dataclasses.replace(server, data_dir=tmp_path / "data", root=tmp_path)
