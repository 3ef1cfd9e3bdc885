"""The benchmark's scaled Northwind (scripts/generate_scaled.py): complete, consistent, deterministic,
and never touching the real source. (The benchmark itself prints figures; no test times anything.)"""

from __future__ import annotations

import hashlib
import os
import sys

import pytest

from conftest import ROOT
from northwind_elt import settings as settings_mod
from northwind_elt.database import EmbeddedPostgres

sys.path.insert(0, str(ROOT / "scripts"))
import generate_scaled

K = 3


@pytest.fixture(scope="module")
def scaled(database: None):  # type: ignore[no-untyped-def]
    settings = settings_mod.load()
    db = EmbeddedPostgres(settings)
    name = generate_scaled.database_name(K)
    saved = os.environ.get("SOURCE_PG_DATABASE")  # generate_scaled points it at the scaled database
    with db.admin() as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
    csv = generate_scaled.csv_path(K)
    csv.unlink(missing_ok=True)
    yield db, name, csv, settings
    if saved is None:
        os.environ.pop("SOURCE_PG_DATABASE", None)
    else:
        os.environ["SOURCE_PG_DATABASE"] = saved
    with db.admin() as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
    csv.unlink(missing_ok=True)


def _count(db: EmbeddedPostgres, database: str, query: str) -> int:
    with db.admin(database) as conn:
        return conn.execute(query).fetchone()[0]  # type: ignore[index]


def test_scaled_source_is_complete_consistent_and_deterministic(scaled) -> None:  # type: ignore[no-untyped-def]
    db, name, csv, settings = scaled
    real, real_csv = settings.source.database, settings.source_dir / "order_details.csv"
    assert real != name
    real_orders = _count(db, real, "select count(*) from orders")

    assert generate_scaled.build_database(K) == K * real_orders
    details = generate_scaled.build_csv(K, real_csv)
    assert details == K * (len(real_csv.read_bytes().splitlines()) - 1)
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()

    # all 13 tables, the other tables as they are, every foreign key still enforced and valid
    assert _count(db, name, "select count(*) from information_schema.tables where table_schema = 'public'") == 13
    assert _count(db, name, "select count(*) from products") == _count(db, real, "select count(*) from products")
    assert _count(db, name, "select count(*) from pg_constraint where contype = 'f' and convalidated") == _count(
        db, real, "select count(*) from pg_constraint where contype = 'f'"
    )
    assert _count(db, name, "select count(distinct order_id) from orders") == K * real_orders
    # every CSV line points at an order of the scaled database and a real product
    with db.admin(name) as conn:
        order_ids = {r[0] for r in conn.execute("select order_id from orders")}
        product_ids = {r[0] for r in conn.execute("select product_id from products")}
    lines = csv.read_text().splitlines()[1:]
    assert all(int(line.split(",")[0]) in order_ids and int(line.split(",")[1]) in product_ids for line in lines)

    # the real source is untouched; a second build changes nothing (a rebuilt CSV is byte-identical)
    assert _count(db, real, "select count(*) from orders") == real_orders
    assert generate_scaled.build_database(K) == K * real_orders
    csv.unlink()
    generate_scaled.build_csv(K, real_csv)
    assert hashlib.sha256(csv.read_bytes()).hexdigest() == digest
