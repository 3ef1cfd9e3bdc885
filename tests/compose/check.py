"""Assertions of tests/compose/run.sh (`make test-compose`), run with the project's .venv Python.

    check.py roles                  the Compose servers on localhost:5433/:5434 are seeded, with the
                                    read-only source role and the warehouse loader role
    check.py same-result A B        day result folders A (Compose) and B (outside Compose) hold
                                    rows, and the same rows and figures
    check.py owned DIR UID GID      every file under DIR belongs to UID:GID (not root)
    check.py airflow-run JSON DAY   `airflow dags list-runs -o json` has a successful run for DAY

Each prints what it checked and exits non-zero with the reason when a check fails.
"""

from __future__ import annotations

import csv
import json
import sys
from decimal import Decimal
from pathlib import Path

import psycopg
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]


def fail(message: str) -> None:
    sys.exit(f"test-compose: FAILED: {message}")


def roles() -> None:
    env = {k: v or "" for k, v in dotenv_values(ROOT / ".env").items()}
    tcp = {"host": "127.0.0.1", "autocommit": True, "connect_timeout": 10}
    with psycopg.connect(
        port=5433, dbname=env["SOURCE_PG_DATABASE"], user=env["SOURCE_PG_USER"], password=env["SOURCE_PG_PASSWORD"], **tcp
    ) as conn:
        orders = conn.execute("select count(*) from orders").fetchone()[0]
        if not orders:
            fail("the source has no orders: it was not seeded from data/source/northwind.sql")
        try:
            conn.execute("delete from shippers")
            fail(f"{env['SOURCE_PG_USER']} could delete from the source: the role is not read-only")
        except psycopg.errors.ReadOnlySqlTransaction:
            pass
    with psycopg.connect(
        port=5434, dbname=env["WAREHOUSE_PG_DATABASE"], user=env["WAREHOUSE_PG_USER"], password=env["WAREHOUSE_PG_PASSWORD"], **tcp
    ) as conn:
        owner, superuser = conn.execute(
            "select pg_get_userbyid(datdba), (select rolsuper from pg_roles where rolname = current_user)"
            " from pg_database where datname = current_database()"
        ).fetchone()
        if owner != env["WAREHOUSE_PG_USER"] or superuser:
            fail(f"warehouse owner {owner!r} (superuser: {superuser}); expected {env['WAREHOUSE_PG_USER']!r}, no superuser")
    print(
        f"test-compose: ok: source seeded ({orders} orders, read-only {env['SOURCE_PG_USER']}); warehouse owned by {owner} (no superuser)"
    )


def read_rows(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    path = folder / "orders_details.csv"
    if not path.exists():
        fail(f"{path} is missing")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def figures(header: list[str], rows: list[dict[str, str]]) -> dict[str, Decimal]:
    """Row count and the sum of every column that is numeric in all rows."""
    sums: dict[str, Decimal] = {"rows": Decimal(len(rows))}
    for column in header:
        try:
            sums[column] = sum((Decimal(r[column]) for r in rows if r[column] != ""), Decimal(0))
        except ArithmeticError:
            continue
    return sums


def same_result(compose: str, outside: str) -> None:
    (h1, r1), (h2, r2) = read_rows(Path(compose)), read_rows(Path(outside))
    if not r1:
        fail(f"{compose}/orders_details.csv has no rows")
    if h1 != h2:
        fail(f"columns differ: {h1} (Compose) vs {h2} (outside)")
    f1, f2 = figures(h1, r1), figures(h2, r2)
    if f1 != f2:
        diff = {k: (f1.get(k), f2.get(k)) for k in f1.keys() | f2.keys() if f1.get(k) != f2.get(k)}
        fail(f"figures differ (Compose, outside): {diff}")
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    if sorted(map(key, r1)) != sorted(map(key, r2)):
        fail("same figures but different rows")
    json_rows = json.loads((Path(compose) / "orders_details.json").read_text())
    if len(json_rows) != len(r1):
        fail(f"orders_details.json has {len(json_rows)} rows, the CSV {len(r1)}")
    shown = ", ".join(f"{k}={v}" for k, v in sorted(f1.items()))
    print(f"test-compose: ok: the same {len(r1)} rows and figures in and outside Compose ({shown})")


def owned(folder: str, uid: str, gid: str) -> None:
    files = [p for p in Path(folder).rglob("*")]
    if not files:
        fail(f"{folder} is empty")
    wrong = [p for p in files if (p.lstat().st_uid, p.lstat().st_gid) != (int(uid), int(gid))]
    if wrong:
        fail(
            f"{len(wrong)} of {len(files)} files under {folder} are not owned by {uid}:{gid}, e.g. "
            f"{wrong[0]} ({wrong[0].lstat().st_uid}:{wrong[0].lstat().st_gid})"
        )
    print(f"test-compose: ok: all {len(files)} files under {folder} belong to {uid}:{gid}")


def airflow_run(listing: str, day: str) -> None:
    runs = json.loads(Path(listing).read_text())
    mine = [r for r in runs if str(r.get("logical_date", "")).startswith(day)]
    if not mine:
        fail(f"no Airflow run for {day} in {runs}")
    if mine[0].get("state") != "success":
        fail(f"the Airflow run for {day} is {mine[0].get('state')!r}")
    print(f"test-compose: ok: Airflow run {mine[0].get('run_id')} for {day} succeeded")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"roles": roles, "same-result": same_result, "owned": owned, "airflow-run": airflow_run}[command](*args)
