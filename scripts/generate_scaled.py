#!/usr/bin/env python3
"""Build a scaled Northwind: source database `northwind_k{K}` and `data/bench/order_details_k{K}.csv`.

    .venv/bin/python scripts/generate_scaled.py --scale 600      # ~500k orders, ~1.3M order details

Scale K = K copies of the real orders (830 rows) with order_id + 1000*k (k = 0..K-1), built by
one `insert ... select ... cross join generate_series` inside PostgreSQL; the CSV holds, for
each copy k, the real CSV's rows (same text, so 9.8 stays 9.8) with the same order_id offset.
Every other table stays as it is, so every detail's order exists and every order's customer,
employee, shipper and every product id stay valid (the foreign keys stay in place and are
checked by PostgreSQL). order_id is smallint in the source schema: it is widened to integer
here (a separate database; tap-postgres types both as integer anyway).

Deterministic (a rerun builds the same data; an existing database of the right size is
reused) and never touches `northwind` or the real source files. K=1 is the real data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFSET = 1000  # real order ids are 10248..11077: 830 < 1000, so copies never collide
BASE_ORDERS = 830


def database_name(scale: int) -> str:
    return f"northwind_k{scale}"


def csv_path(scale: int) -> Path:
    return ROOT / "data" / "bench" / f"order_details_k{scale}.csv"


def _settings(scale: int):  # type: ignore[no-untyped-def]
    os.environ["SOURCE_PG_DATABASE"] = database_name(scale)
    sys.path.insert(0, str(ROOT / "src"))
    from northwind_elt import settings

    return settings.load()


def build_database(scale: int) -> int:
    from northwind_elt.database import EmbeddedPostgres

    s = _settings(scale)
    name = s.source.database
    assert name == database_name(scale) and name != "northwind"
    db = EmbeddedPostgres(s)
    db.up(sync_passwords=False)  # creates northwind_k{K} if missing and seeds it from northwind.sql
    with db.admin(name) as conn:
        orders = conn.execute("select count(*) from orders").fetchone()[0]
        if orders == BASE_ORDERS * scale:
            return orders  # already built (the build below runs in one transaction)
        if orders != BASE_ORDERS:  # an unexpected state: rebuild from scratch
            conn.close()
            with db.admin() as admin:
                admin.execute(f'drop database "{name}" with (force)')
            db.up(sync_passwords=False)
            return build_database(scale)
        columns = [
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns"
                " where table_schema = 'public' and table_name = 'orders' order by ordinal_position"
            )
        ]
        select = ", ".join(f"o.{c} + {OFFSET} * k" if c == "order_id" else f"o.{c}" for c in columns)
        with conn.transaction():
            conn.execute("alter table orders alter column order_id type integer")
            if scale > 1:
                conn.execute(
                    f"insert into orders ({', '.join(columns)}) select {select}"
                    f" from orders o cross join generate_series(1, {scale - 1}) as k order by k, o.order_id"
                )
        conn.execute("vacuum analyze orders")
        return conn.execute("select count(*) from orders").fetchone()[0]


def build_csv(scale: int, source_csv: Path) -> int:
    target = csv_path(scale)
    target.parent.mkdir(parents=True, exist_ok=True)
    header, *rows = source_csv.read_bytes().splitlines(keepends=True)
    expected = len(rows) * scale
    if target.exists():
        with target.open("rb") as handle:
            if sum(1 for _ in handle) == expected + 1:
                return expected
    parsed = [row.split(b",", 1) for row in rows]  # order_id, the rest (kept byte for byte)
    tmp = target.with_suffix(".tmp")
    with tmp.open("wb", buffering=1 << 20) as out:  # streamed: one copy at a time
        out.write(header)
        for k in range(scale):
            out.write(b"".join(b"%d,%s" % (int(oid) + OFFSET * k, rest) for oid, rest in parsed))
    tmp.replace(target)
    return expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, required=True, help="K: copies of the real orders (1 = the real data)")
    args = parser.parse_args()
    if not 1 <= args.scale <= 2000:
        parser.error("--scale must be between 1 and 2000 (order ids must fit in integer and stay unique)")
    started = time.monotonic()
    orders = build_database(args.scale)
    s = _settings(args.scale)
    from northwind_elt import sourcedata

    details = build_csv(args.scale, sourcedata.ensure(s, "order_details.csv"))
    print(
        f"scale {args.scale}: database {database_name(args.scale)} ({orders} orders), "
        f"{csv_path(args.scale).relative_to(ROOT)} ({details} order details) in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
