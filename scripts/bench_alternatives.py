#!/usr/bin/env python3
"""The same work as step 1 + step 2, done the ways users would pick instead of this pipeline.

    make bench-alternatives SCALE=600        # builds .venv-bench (requirements-bench.txt) first

On the scaled source of `make bench SCALE=K` (scripts/generate_scaled.py: database northwind_k{K}
and data/bench/order_details_k{K}.csv), each tool does step 1 (all 13 source tables plus the
order_details CSV to local files) and then step 2 (those files into the warehouse database
warehouse_bench_k{K}, one schema per tool, dropped first):

  raw COPY  COPY ... TO STDOUT per table into CSV files, the CSV copied; COPY ... FROM STDIN
            into tables with the source's column types and primary keys (psycopg2)
  pandas    read_sql + to_csv per table, read_csv + to_csv for the CSV; read_csv + to_sql
            (the plain approach: default settings, SQLAlchemy + psycopg2)
  dlt       sql_database source (all tables) + a CSV resource; extract and normalize to its
            local load packages (step 1), load with its PostgreSQL destination (step 2);
            default settings

and, unless --no-project, this pipeline as `make pipeline` runs it (the same path as
scripts/bench.py, tuned settings): step 1 is `nwelt run extract-postgres` and `extract-csv` side by
side, step 2 is `nwelt run load`; last, the ratio of this pipeline to each peer.

Printed per tool and step: wall seconds, CPU seconds of the tool's process tree, CPU seconds of
the embedded PostgreSQL server meanwhile, peak RSS, and whether decimals arrive exactly (checked
in the warehouse against the source: orders.freight and order_details.unit_price, sum of the
exact text). A benchmark prints figures; it asserts nothing.

The tools run in their own venv (.venv-bench) so their dependencies never meet the project's:
this script runs under the project's venv (it builds the source and measures), and starts itself
under .venv-bench with `--worker TOOL --step N` for each measured piece of work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
TOOLS = ["copy", "pandas", "dlt"]
LABEL = {"copy": "raw COPY", "pandas": "pandas", "dlt": "dlt", "project": "this pipeline (extracts at once)"}


# -- the workers (run under .venv-bench) ----------------------------------------------------------
def _dsn(prefix: str) -> dict[str, str]:
    return json.loads(os.environ[f"NWELT_ALT_{prefix}"])


def _url(conn: dict[str, str], driver: str = "postgresql+psycopg2") -> str:
    from urllib.parse import quote

    return f"{driver}://{quote(conn['user'])}:{quote(conn['password'])}@{conn['host']}:{conn['port']}/{conn['dbname']}"


def _psycopg2(conn: dict[str, str]):  # type: ignore[no-untyped-def]
    import psycopg2

    return psycopg2.connect(**{k: conn[k] for k in ("host", "port", "dbname", "user", "password")})


def _source_tables(cur) -> dict[str, dict[str, list]]:  # type: ignore[no-untyped-def]
    cur.execute(
        "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a"
        " join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped order by c.relname, a.attnum"
    )
    tables: dict[str, dict[str, list]] = {}
    for table, column, type_ in cur.fetchall():
        tables.setdefault(table, {"columns": [], "keys": []})["columns"].append([column, type_])
    cur.execute(
        "select c.relname, a.attname from pg_index i join pg_class c on c.oid = i.indrelid"
        " join pg_namespace n on n.oid = c.relnamespace join pg_attribute a on a.attrelid = c.oid and a.attnum = any(i.indkey)"
        " where n.nspname = 'public' and i.indisprimary order by c.relname, array_position(i.indkey, a.attnum)"
    )
    for table, column in cur.fetchall():
        tables[table]["keys"].append(column)
    return tables


CSV_TABLE = {
    "columns": [
        ["order_id", "integer"],
        ["product_id", "integer"],
        ["unit_price", "numeric"],
        ["quantity", "integer"],
        ["discount", "numeric"],
    ],
    "keys": ["order_id", "product_id"],
}


def work_copy(step: int, out: Path, csv: Path) -> None:
    if step == 1:
        with _psycopg2(_dsn("SOURCE")) as conn, conn.cursor() as cur:
            tables = _source_tables(cur)
            for table in tables:
                with (out / f"{table}.csv").open("w") as handle:
                    cur.copy_expert(f'copy public."{table}" to stdout with (format csv, header)', handle)
        shutil.copyfile(csv, out / "order_details.csv")
        (out / "_tables.json").write_text(json.dumps({**tables, "order_details": CSV_TABLE}))
        return
    tables = json.loads((out / "_tables.json").read_text())
    with _psycopg2(_dsn("WAREHOUSE")) as conn, conn.cursor() as cur:
        cur.execute("drop schema if exists alt_copy cascade; create schema alt_copy")
        for table, spec in tables.items():
            body = [f'"{c}" {t}' for c, t in spec["columns"]] + ([f"primary key ({', '.join(spec['keys'])})"] if spec["keys"] else [])
            cur.execute(f'create table alt_copy."{table}" ({", ".join(body)})')
            with (out / f"{table}.csv").open() as handle:
                cur.copy_expert(f'copy alt_copy."{table}" from stdin with (format csv, header)', handle)


def work_pandas(step: int, out: Path, csv: Path) -> None:
    import pandas as pd
    import sqlalchemy

    if step == 1:
        engine = sqlalchemy.create_engine(_url(_dsn("SOURCE")))
        with engine.connect() as conn:
            tables = [r[0] for r in conn.execute(sqlalchemy.text("select tablename from pg_tables where schemaname = 'public' order by 1"))]
            for table in tables:
                pd.read_sql(f'select * from public."{table}"', conn).to_csv(out / f"{table}.csv", index=False)
        pd.read_csv(csv).to_csv(out / "order_details.csv", index=False)
        return
    engine = sqlalchemy.create_engine(_url(_dsn("WAREHOUSE")))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("drop schema if exists alt_pandas cascade; create schema alt_pandas"))
    for path in sorted(out.glob("*.csv")):
        pd.read_csv(path).to_sql(path.stem, engine, schema="alt_pandas", if_exists="replace", index=False)


def work_dlt(step: int, out: Path, csv: Path) -> None:
    import csv as csv_mod
    from decimal import Decimal

    import dlt
    from dlt.sources.sql_database import sql_database

    pipeline = dlt.pipeline(
        pipeline_name="bench_alternatives",
        pipelines_dir=str(out / "pipelines"),
        dataset_name="alt_dlt",
        destination=dlt.destinations.postgres(credentials=_url(_dsn("WAREHOUSE"), "postgresql")),
    )
    if step == 1:

        @dlt.resource(name="order_details", primary_key=["order_id", "product_id"])
        def order_details():  # type: ignore[no-untyped-def]
            with csv.open(newline="") as handle:
                for row in csv_mod.DictReader(handle):
                    yield {
                        "order_id": int(row["order_id"]),
                        "product_id": int(row["product_id"]),
                        "unit_price": Decimal(row["unit_price"]),
                        "quantity": int(row["quantity"]),
                        "discount": Decimal(row["discount"]),
                    }

        pipeline.extract([sql_database(credentials=_url(_dsn("SOURCE")), schema="public"), order_details()])
        pipeline.normalize()
        return
    with _psycopg2(_dsn("WAREHOUSE")) as conn, conn.cursor() as cur:
        cur.execute("drop schema if exists alt_dlt cascade; drop schema if exists alt_dlt_staging cascade")
    pipeline.load()


WORKERS = {"copy": work_copy, "pandas": work_pandas, "dlt": work_dlt}


# -- the orchestrator (run under the project's .venv) ------------------------------------------
def exact_check(settings, schema: str, where: str = "true") -> str:  # type: ignore[no-untyped-def]
    """'yes' when orders.freight and order_details.unit_price hold the source's exact values."""
    from decimal import Decimal

    import psycopg

    with psycopg.connect(settings.source.conninfo()) as src:
        freight = src.execute("select sum(freight::numeric)::text from public.orders").fetchone()[0]
    with open(settings.csv_path) as handle:
        next(handle)
        price = str(sum(Decimal(line.split(",")[2]) for line in handle))
    try:
        with psycopg.connect(settings.warehouse.conninfo()) as wh:
            got = wh.execute(
                f"select (select sum(freight::numeric)::text from {schema}.orders where {where}),"
                f" (select sum(unit_price::numeric)::text from {schema}.order_details where {where})"
            ).fetchone()
    except psycopg.Error as exc:
        return f"? ({type(exc).__name__})"
    same = [got[0] is not None and Decimal(got[0]) == Decimal(freight), got[1] is not None and Decimal(got[1]) == Decimal(price)]
    return "yes" if all(same) else "no (" + ", ".join(n for n, ok in zip(["freight", "unit_price"], same, strict=True) if not ok) + ")"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    parser.add_argument("--no-project", action="store_true", help="skip the project's own steps")
    parser.add_argument("--date", default="2024-01-01", help="the day the project's steps run for")
    parser.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--step", type=int, choices=[1, 2], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        WORKERS[args.worker](args.step, Path(args.out), Path(args.csv))
        return 0
    if not 1 <= args.scale <= 2000:
        parser.error("--scale must be between 1 and 2000")
    if not BENCH_PYTHON.exists():
        sys.exit(f"{BENCH_PYTHON} is missing: run make bench-alternatives (it creates .venv-bench)")

    sys.path.insert(0, str(ROOT / "scripts"))
    import bench
    import generate_scaled

    os.environ["WAREHOUSE_PG_DATABASE"] = bench.warehouse_name(args.scale)
    generate_scaled.build_database(args.scale)  # also creates the warehouse database if missing
    generate_scaled.build_csv(args.scale, ROOT / "data" / "source" / "order_details.csv")
    runner = bench.Bench(args.scale, "tuned", args.date)  # the same source, CSV and warehouse as make bench
    settings = runner.settings
    from psycopg.conninfo import conninfo_to_dict

    env = dict(runner.env)
    env["NWELT_ALT_SOURCE"] = json.dumps({k: str(v) for k, v in conninfo_to_dict(settings.source.conninfo()).items()})
    env["NWELT_ALT_WAREHOUSE"] = json.dumps({k: str(v) for k, v in conninfo_to_dict(settings.warehouse.conninfo()).items()})
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    results: dict[str, dict[str, object]] = {}
    base = ROOT / "data" / "bench" / f"alternatives-k{args.scale}"
    logs = base / "logs"
    for tool in [t for t in TOOLS if t in args.tools.split(",")]:
        out = base / tool
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        logs.mkdir(parents=True, exist_ok=True)
        for step in (1, 2):
            cmd = [str(BENCH_PYTHON), __file__, "--worker", tool, "--step", str(step), "--out", str(out), "--csv", str(settings.csv_path)]
            before = bench.server_cpu(settings)
            sample, text = bench.measured(cmd, env, logs / f"{tool}-step{step}.log", check=False)
            after = bench.server_cpu(settings)
            sample.server_cpu = None if before is None or after is None else after - before
            if sample.extra.get("code"):
                print(f"{LABEL[tool]} step {step} FAILED; see {logs / f'{tool}-step{step}.log'}:\n{text[-1500:]}", flush=True)
            results.setdefault(tool, {})[f"step{step}"] = sample
            print(f"  {LABEL[tool]:<22} step {step}: {sample.seconds:7.1f} s, {sample.cpu:6.1f} CPU s", flush=True)
        results[tool]["exact"] = exact_check(settings, f"alt_{tool}")
    if not args.no_project:
        for name, steps in (("step1", ["extract-postgres", "extract-csv"]), ("step2", ["load"])):
            before, started = bench.server_cpu(settings), time.monotonic()
            with ThreadPoolExecutor(len(steps)) as pool:  # the extracts at once, as make pipeline runs them
                samples = list(pool.map(lambda step: runner.step(step, 0), steps))
            after = bench.server_cpu(settings)
            total = bench.Sample(
                time.monotonic() - started,
                sum(s.rows for s in samples),
                sum(s.tree_rss for s in samples),  # peaks of processes running at once: at most their sum
                max(s.proc_rss for s in samples),
                cpu=sum(s.cpu for s in samples),
            )
            total.server_cpu = None if before is None or after is None else after - before
            results.setdefault("project", {})[name] = total
            print(f"  {LABEL['project']:<22} {name}: {total.seconds:7.1f} s, {total.cpu:6.1f} CPU s", flush=True)
        results["project"]["exact"] = exact_check(settings, "raw", f"snapshot_date = '{args.date}'")

    print(
        f"\nscale {args.scale}: step 1 (13 tables + the CSV to local files) and step 2 (into the warehouse), "
        f"one after the other; load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)"
    )
    print(
        f"{'tool':<22} {'step 1 s':>9} {'step 2 s':>9} {'total s':>8} {'CPU s':>7} {'PG CPU s':>9} {'max proc MiB':>13}  exact decimals (this data)"
    )
    for tool, r in results.items():
        s1, s2 = r["step1"], r["step2"]
        server = "-" if s1.server_cpu is None or s2.server_cpu is None else f"{s1.server_cpu + s2.server_cpu:.1f}"  # type: ignore[union-attr]
        print(
            f"{LABEL[tool]:<22} {s1.seconds:9.1f} {s2.seconds:9.1f} {s1.seconds + s2.seconds:8.1f} "  # type: ignore[union-attr]
            f"{s1.cpu + s2.cpu:7.1f} {server:>9} {bench.mib(max(s1.proc_rss, s2.proc_rss)):>13}  {r['exact']}"
        )  # type: ignore[union-attr]
    if "project" in results:
        mine = results["project"]
        for tool, r in results.items():
            if tool != "project":
                wall = [x["step1"].seconds + x["step2"].seconds for x in (mine, r)]  # type: ignore[union-attr]
                cpu = [x["step1"].cpu + x["step2"].cpu for x in (mine, r)]  # type: ignore[union-attr]
                pg = [[x[s].server_cpu for s in ("step1", "step2")] for x in (mine, r)]  # type: ignore[union-attr]
                known = all(v is not None for v in pg[0] + pg[1])  # an external server's CPU is not measured
                both = f", {(cpu[0] + sum(pg[0])) / (cpu[1] + sum(pg[1])):.2f}x with the server's" if known else ""  # type: ignore[arg-type]
                print(
                    f"this pipeline / {LABEL[tool]}: {wall[0] / wall[1]:.2f}x the wall time, {cpu[0] / cpu[1]:.2f}x the CPU of the processes{both}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
