"""Assertions of tests/compose/run.sh (`make test-compose`), run with the project's .venv Python.

    check.py roles                  the Compose servers on localhost:5433/:5434 are seeded, with the
                                    read-only source role and the warehouse loader role
    check.py same-result A B        day result folders A (Compose) and B (outside Compose) hold
                                    rows, and the same rows and figures
    check.py owned DIR UID GID      every file under DIR belongs to UID:GID (not root)
    check.py airflow-run JSON DAY   `airflow dags list-runs -o json` has a successful run for DAY
    check.py same-bytes A B         day result folders A and B hold byte-identical CSV and JSON
    check.py running-host DAY STEP  waits until the ledger (warehouse, localhost:5434) has STEP of
                                    DAY running, and prints the host running it
    check.py not-published DAY OUT  the ledger has no succeeded load of DAY, no raw table has rows
                                    of DAY and OUT/DAY does not exist
    check.py never-interleaved DAY...  no two ledger runs of the same step and day overlapped in time
    check.py celery-figures CSV DAY...  per day: seconds and which worker ran which task (CSV from the
                                    metadata database: day, task, hostname, start, end, state); fails
                                    unless every day succeeded and both workers ran tasks

Each prints what it checked and exits non-zero with the reason when a check fails.
"""

from __future__ import annotations

import csv
import datetime as dt
import filecmp
import itertools
import json
import os
import sys
import time
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


def same_bytes(compose: str, outside: str) -> None:
    for name in ("orders_details.csv", "orders_details.json"):
        a, b = Path(compose) / name, Path(outside) / name
        if not a.exists() or not b.exists():
            fail(f"{a if not a.exists() else b} is missing")
        if not filecmp.cmp(a, b, shallow=False):
            fail(f"{a} and {b} differ")
    print(f"test-compose: ok: {compose} is byte for byte {outside} (CSV and JSON)")


def warehouse() -> psycopg.Connection[tuple[object, ...]]:
    env = {k: v or "" for k, v in dotenv_values(ROOT / ".env").items()}
    return psycopg.connect(
        host="127.0.0.1",
        port=int(os.environ.get("NWELT_TEST_WAREHOUSE_PORT", "5434")),  # another port: a trial stack beside CI
        dbname=env["WAREHOUSE_PG_DATABASE"],
        user=env["WAREHOUSE_PG_USER"],
        password=env["WAREHOUSE_PG_PASSWORD"],
        autocommit=True,
        connect_timeout=10,
    )


def running_host(day: str, step: str, timeout: str = "600") -> None:
    deadline = time.monotonic() + float(timeout)
    with warehouse() as conn:
        while time.monotonic() < deadline:
            try:
                row = conn.execute(
                    "select host from ops.runs where day = %s and step = %s and outcome = 'running' order by started_at desc limit 1",
                    (day, step),
                ).fetchone()
            except psycopg.errors.UndefinedTable:  # before the first step made the ledger
                row = None
            if row:
                print(row[0])
                return
            time.sleep(0.2)
    fail(f"no {step} of {day} started within {timeout} s")


def not_published(day: str, output: str) -> None:
    with warehouse() as conn:
        loads = conn.execute("select count(*) from ops.runs where day = %s and step = 'load' and outcome = 'succeeded'", (day,)).fetchone()[
            0
        ]
        tables = conn.execute(
            "select table_name from information_schema.columns where table_schema = 'raw' and column_name = 'snapshot_date'"
        ).fetchall()
        rows = {t: conn.execute(f'select count(*) from raw."{t}" where snapshot_date = %s', (day,)).fetchone()[0] for (t,) in tables}
    if loads:
        fail(f"the ledger records a succeeded load of {day}")
    if any(rows.values()):
        fail(f"raw tables hold rows of {day} after a killed load: {rows}")
    if (Path(output) / day).exists():
        fail(f"{output}/{day} exists after a killed load")
    print(f"test-compose: ok: nothing of {day} published ({len(tables)} raw tables without its rows, no {output}/{day})")


def never_interleaved(*days: str) -> None:
    with warehouse() as conn:
        runs = conn.execute(
            "select day::text, step, host, started_at, coalesce(ended_at, clock_timestamp()) from ops.runs"
            " where day = any(%s::date[]) order by day, step, started_at",
            (list(days),),
        ).fetchall()
    for a, b in itertools.pairwise(runs):
        if a[:2] == b[:2] and b[3] < a[4]:
            fail(f"{a[1]} of {a[0]} ran twice at once: on {a[2]} from {a[3]} and on {b[2]} from {b[3]}")
    print(f"test-compose: ok: {len(runs)} step runs of {', '.join(days)} in the ledger, never two of a step and day at once")


def celery_figures(listing: str, *days: str) -> None:
    with open(listing, newline="") as handle:
        rows = [r for r in csv.reader(handle) if r]
    hosts = {r[2] for r in rows if r[0] in days and r[2]}
    t0 = min(dt.datetime.fromisoformat(r[3]) for r in rows if r[0] in days and r[3])
    print("test-compose: the backfill across the workers (seconds from its first task):")
    for day in days:
        mine = [r for r in rows if r[0] == day]
        if not mine or any(r[5] != "success" for r in mine):
            fail(f"not every task of {day} succeeded: {mine}")
        start = min(dt.datetime.fromisoformat(r[3]) for r in mine)
        end = max(dt.datetime.fromisoformat(r[4]) for r in mine)
        print(f"  {day}  {(end - start).total_seconds():6.1f} s")
        for r in sorted(mine, key=lambda r: r[3]):
            s0 = (dt.datetime.fromisoformat(r[3]) - t0).total_seconds()
            s1 = (dt.datetime.fromisoformat(r[4]) - t0).total_seconds()
            print(f"      {r[1]:<17} {r[2]:<18} {s0:6.1f} -> {s1:6.1f}")
    if len(hosts) < 2:
        fail(f"the backfill ran on {sorted(hosts)} only, not on two workers")
    print(f"test-compose: ok: {len(days)} days succeeded, tasks ran on {', '.join(sorted(hosts))}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {
        "roles": roles,
        "same-result": same_result,
        "owned": owned,
        "airflow-run": airflow_run,
        "same-bytes": same_bytes,
        "running-host": running_host,
        "not-published": not_published,
        "never-interleaved": never_interleaved,
        "celery-figures": celery_figures,
    }[command](*args)
