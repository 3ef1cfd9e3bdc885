#!/usr/bin/env python3
"""Benchmark the pipeline on a scaled Northwind against raw PostgreSQL COPY.

    .venv/bin/python scripts/bench.py --scale 600            # or: make bench SCALE=600
    .venv/bin/python scripts/bench.py --scale 1 --repeat 3   # the median of 3 runs
    .venv/bin/python scripts/bench.py --scale 600 --config default   # the plugins' default settings

Builds the scaled source first (scripts/generate_scaled.py), then runs, for one day, every step
with `nwelt run <step>` (the same path as `make <step>`: locks, ledger, Meltano job) against
DATA_DIR=data/bench/k{K}, SOURCE_PG_DATABASE=northwind_k{K}, WAREHOUSE_PG_DATABASE=warehouse_bench_k{K}
and ORDER_DETAILS_CSV=data/bench/order_details_k{K}.csv, and the physical reference:
  copy-out  psql \\copy of each of the 13 source tables to CSV (reference of extract-postgres)
  copy-csv  a plain copy of the order_details CSV file (reference of extract-csv)
  copy-in   psql \\copy of all 14 CSV files into fresh tables with their primary keys in the
            warehouse database (reference of load)

Printed per step: wall seconds, rows, rows per second, CPU seconds, peak RSS and the ratio to raw COPY.
CPU is the step's process tree (os.wait4 of the step runner: Meltano, plugins, dbt, glue) and,
for the embedded server, what PostgreSQL spent meanwhile (`PG CPU`); their sum over step 1 and
step 2, divided by the cores, is the shortest time any schedule of that work could take.
Seconds are the step's own (as `make status` records them, from the open task's record, the locks
taken, to the outcome); time spent waiting for a project-wide plugin lock held by another run (e.g. a concurrent
test suite) is excluded and printed as `wait`. Peak RSS is measured by polling the step's process tree with psutil every 50 ms: `tree` is the
largest sum over the tree at one instant, `max proc` the largest single process (and its name).
A benchmark prints figures; it never asserts times.

--days N (alone: 60) loads N consecutive days, one after the other, into one fresh warehouse
(DATA_DIR data/bench/k{K}-days, warehouse warehouse_bench_k{K}_days) and prints, for each day, the
load's and the transform's seconds and what one more ANALYZE of every raw table costs at that
history length, then their median and max: a day whose mart build is planned without statistics
for the new snapshot_date shows up as a transform many times slower than the median.

--config default runs the same plugins with their default settings (the baseline of the
tuning): target-postgres with validate_records, record metadata, activate_version,
batch_size_rows=10000 and INSERT (no use_copy), tap-landing emitting one RECORD message per row, and the two extract
tasks one after the other; it uses its own DATA_DIR (…-default) and warehouse database
(warehouse_bench_k{K}_default). The tuned run starts both extract tasks at once, as `make pipeline`
does (`--step1 sequential` times them one after the other instead).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

import generate_scaled  # noqa: E402

STEPS = ["extract-postgres", "extract-csv", "load", "transform", "export"]
EXTRACTS = ["extract-postgres", "extract-csv"]
STEP1 = "step 1 (parallel)"


def warehouse_name(scale: int, config: str = "tuned") -> str:
    """One warehouse per scale and config: a day of another scale left in it (or its dead rows)
    would weigh on every step that reads the raw tables or the mart."""
    return f"warehouse_bench_k{scale}" + ("" if config == "tuned" else f"_{config}")


REFERENCE = {"extract-postgres": "copy-out", "extract-csv": "copy-csv", "load": "copy-in"}

# the plugins' own defaults (the settings meltano.yml tunes), as Meltano environment overrides
DEFAULT_SETTINGS = {
    "TARGET_POSTGRES_VALIDATE_RECORDS": "true",
    "TARGET_POSTGRES_ADD_RECORD_METADATA": "true",
    "TARGET_POSTGRES_ACTIVATE_VERSION": "true",
    "TARGET_POSTGRES_BATCH_SIZE_ROWS": "10000",
    "TARGET_POSTGRES_USE_COPY": "false",
    "TAP_LANDING_BATCH_ROWS": "0",  # RECORD messages (the plain Singer path, as before the tuning)
    "TAP_NORTHWIND_CSV_LEAN_MESSAGES": "false",  # full SCHEMA messages, time_extracted on every record
}
# target-jsonl's own way to write into a folder: `destination_path` (a mkdir per record), not the
# entry point's working_directory
DEFAULT_SETTINGS.update(
    {
        f"TARGET_JSONL_{tap.upper()}_DESTINATION_PATH": str(ROOT / ".meltano" / "staging" / namespace)
        for tap, namespace in (("postgres", "tap_postgres"), ("csv", "tap_northwind_csv"))
    }
)


@dataclass
class Sample:
    seconds: float
    rows: int
    tree_rss: int = 0
    proc_rss: int = 0
    proc_name: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0  # user + system seconds of the whole process tree (the step's own processes)
    server_cpu: float | None = None  # seconds the PostgreSQL server spent meanwhile (embedded only)


def _poll(process: psutil.Process, sample: Sample, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            procs = [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        total = 0
        for proc in procs:
            try:
                rss = proc.memory_info().rss
                total += rss
                if rss > sample.proc_rss:
                    sample.proc_rss = rss
                    cmd = proc.cmdline()
                    sample.proc_name = Path(cmd[1] if len(cmd) > 1 and cmd[0].endswith("python") else cmd[0]).name if cmd else proc.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
                pass
        sample.tree_rss = max(sample.tree_rss, total)
        stop.wait(0.05)


def measured(cmd: list[str], env: dict[str, str], log: Path, check: bool = True) -> tuple[Sample, str]:
    """Run `cmd`, polling its process tree for RSS; returns the sample and the output."""
    sample = Sample(0.0, 0)
    started = time.monotonic()
    with log.open("w") as out:
        popen = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        stop = threading.Event()
        poller = threading.Thread(target=_poll, args=(psutil.Process(popen.pid), sample, stop), daemon=True)
        poller.start()
        # wait4: this child's resource usage, which includes every descendant it waited for
        # (Meltano, the plugins, dbt), and nothing of steps running in other threads
        _, status, usage = os.wait4(popen.pid, 0)
        popen.returncode = code = os.waitstatus_to_exitcode(status)
        sample.seconds = time.monotonic() - started
        sample.cpu = usage.ru_utime + usage.ru_stime
        stop.set()
        poller.join()
    text = log.read_text(errors="replace")
    sample.extra["code"] = code
    if code != 0 and check:
        sys.exit(f"FAILED ({code}): {' '.join(cmd)}\n{text[-3000:]}")
    return sample, text


def server_cpu(settings) -> float | None:  # type: ignore[no-untyped-def]
    """CPU seconds used so far by the embedded PostgreSQL server: the postmaster, its live
    processes and the backends it has reaped (connections that ended). None for an external server."""
    if not settings.embedded:
        return None
    from northwind_elt.database import EmbeddedPostgres

    try:
        postmaster = psutil.Process(int((EmbeddedPostgres(settings).data / "postmaster.pid").read_text().split()[0]))
        total = sum(postmaster.cpu_times()[:4])  # user, system, children_user, children_system
        for child in postmaster.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(child.cpu_times()[:2])
        return total
    except (OSError, ValueError, psutil.Error):
        return None


class Bench:
    def __init__(self, scale: int, config: str, day: str) -> None:
        self.scale, self.config, self.day = scale, config, day
        suffix = "" if config == "tuned" else f"-{config}"
        self.data_dir = ROOT / "data" / "bench" / f"k{scale}{suffix}"
        self.env = dict(os.environ)
        self.env.update(
            {
                "DATA_DIR": str(self.data_dir),
                "SOURCE_PG_DATABASE": generate_scaled.database_name(scale),
                "WAREHOUSE_PG_DATABASE": warehouse_name(scale, config),
                "ORDER_DETAILS_CSV": str(generate_scaled.csv_path(scale)),
            }
        )
        if config == "default":
            self.env.update(DEFAULT_SETTINGS)
        os.environ.update(self.env)  # for settings.load() below
        from northwind_elt import settings

        self.settings = settings.load()
        self.logs = self.data_dir / "bench-logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- the pipeline -------------------------------------------------------------------------
    def step(self, step: str, run: int) -> Sample:
        cmd = [str(ROOT / ".venv" / "bin" / "nwelt"), "run", step, "--date", self.day]
        server_before = server_cpu(self.settings)
        sample, text = measured(cmd, self.env, self.logs / f"{step}-{run}.log", check=False)
        server_after = server_cpu(self.settings)
        if server_before is not None and server_after is not None:
            sample.server_cpu = server_after - server_before
        if sample.extra.get("code") and re.search(r"\.meltano/run/\S+ (was not found|did not run)|no catalog at \S+\.meltano/run/", text):
            # another Meltano run of the same project (e.g. a test calling `meltano run` directly)
            # replaced .meltano/run/<plugin>/ under this one: not a pipeline failure, run it again
            print(f"  {step}: .meltano/run/ was replaced by a concurrent Meltano run; running the step again", flush=True)
            sample, text = measured(cmd, self.env, self.logs / f"{step}-{run}.retry.log")
        elif sample.extra.get("code"):
            sys.exit(f"FAILED: {' '.join(cmd)}\n{text[-3000:]}")
        match = re.search(rf"^\s+{re.escape(step)}\s+ok\s+(\d+) rows\s+([\d.]+) s", text, re.M)
        if match:  # the step's own seconds exclude waiting for project locks held by other runs
            sample.rows = int(match.group(1))
            sample.extra["wait"] = max(0.0, sample.seconds - float(match.group(2)))
            sample.seconds = float(match.group(2))
        return sample

    # -- raw COPY -----------------------------------------------------------------------------
    def _psql(self, conn, script: Path, name: str, run: int) -> Sample:  # type: ignore[no-untyped-def]
        from northwind_elt.database import bin_dir

        env = self.env | {"PGPASSWORD": conn.password, "PGREQUIREAUTH": "scram-sha-256"}
        cmd = [
            str(bin_dir() / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            conn.host,
            "-p",
            str(conn.port),
            "-U",
            conn.user,
            "-d",
            conn.database,
            "-f",
            str(script),
        ]
        return measured(cmd, env, self.logs / f"{name}-{run}.log")[0]

    def tables(self) -> dict[str, tuple[list[tuple[str, str]], list[str]]]:
        """{table: ([(column, type)], [key columns])} of the source, plus order_details (the CSV)."""
        from northwind_elt.database import EmbeddedPostgres

        with EmbeddedPostgres(self.settings).admin(self.settings.source.database) as db:
            cols = db.execute(
                "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a"
                " join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = 'public' and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped"
                " order by c.relname, a.attnum"
            ).fetchall()
            keys = db.execute(
                "select c.relname, a.attname from pg_index i join pg_class c on c.oid = i.indrelid"
                " join pg_namespace n on n.oid = c.relnamespace"
                " join pg_attribute a on a.attrelid = c.oid and a.attnum = any(i.indkey)"
                " where n.nspname = 'public' and i.indisprimary order by c.relname, array_position(i.indkey, a.attnum)"
            ).fetchall()
        result: dict[str, tuple[list[tuple[str, str]], list[str]]] = {}
        for table, column, type_ in cols:
            result.setdefault(table, ([], []))[0].append((column, type_))
        for table, column in keys:
            result[table][1].append(column)
        result["order_details"] = (
            [
                ("order_id", "integer"),
                ("product_id", "integer"),
                ("unit_price", "numeric"),
                ("quantity", "integer"),
                ("discount", "numeric"),
            ],
            ["order_id", "product_id"],
        )
        return result

    def raw_copy(self, run: int) -> dict[str, Sample]:
        folder = self.data_dir / "rawcopy"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        tables = self.tables()
        source_tables = [t for t in tables if t != "order_details"]
        out = folder / "copy-out.sql"
        out.write_text("".join(f"\\copy public.{t} to '{folder / t}.csv' with (format csv, header)\n" for t in source_tables))
        results = {"copy-out": self._psql(self.settings.source, out, "copy-out", run)}
        started = time.monotonic()
        shutil.copyfile(self.settings.csv_path, folder / "order_details.csv")
        results["copy-csv"] = Sample(time.monotonic() - started, 0)
        ddl = ["drop schema if exists rawcopy cascade;", "create schema rawcopy;"]
        for table, (columns, keys) in tables.items():
            body = [f'"{c}" {t}' for c, t in columns] + ([f"primary key ({', '.join(keys)})"] if keys else [])
            ddl.append(f"create table rawcopy.{table} ({', '.join(body)});")
        copy_in = folder / "copy-in.sql"
        copy_in.write_text(
            "\n".join(ddl)
            + "\n"
            + "".join(f"\\copy rawcopy.{t} from '{folder / t}.csv' with (format csv, header)\n" for t in tables)
            + "".join(f"analyze rawcopy.{t};\n" for t in tables)
        )
        results["copy-in"] = self._psql(self.settings.warehouse, copy_in, "copy-in", run)
        rows = {t: sum(1 for _ in (folder / f"{t}.csv").open("rb")) - 1 for t in tables}
        results["copy-out"].rows = sum(v for t, v in rows.items() if t != "order_details")
        results["copy-csv"].rows = rows["order_details"]
        results["copy-in"].rows = sum(rows.values())
        cleanup = folder / "cleanup.sql"
        cleanup.write_text("drop schema rawcopy cascade;\n")
        self._psql(self.settings.warehouse, cleanup, "cleanup", run)
        return results


def days_run(scale: int, days: int, first: str) -> None:
    """Load `days` days into one fresh warehouse; print each day's load, ANALYZE and transform time."""
    import datetime as dt

    import psycopg

    from northwind_elt.database import EmbeddedPostgres

    bench = Bench(scale, "days", first)
    for folder in ("postgres", "csv", "output"):
        shutil.rmtree(bench.data_dir / folder, ignore_errors=True)
    database = EmbeddedPostgres(bench.settings)
    with database.admin() as conn:  # a fresh warehouse: the history starts empty
        conn.execute(f'drop database if exists "{bench.settings.warehouse.database}" with (force)')
    database.provision(sync_passwords=False)
    start = dt.date.fromisoformat(first)
    loads, analyzes, transforms = [], [], []
    print(f"{days} days from {first}, scale {scale}, one warehouse ({bench.settings.warehouse.database})", flush=True)
    for i in range(days):
        bench.day = (start + dt.timedelta(days=i)).isoformat()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda s, i=i: bench.step(s, i), EXTRACTS))
        load = bench.step("load", i)
        with psycopg.connect(bench.settings.warehouse.conninfo(), autocommit=True) as conn:
            tables = [t for (t,) in conn.execute("select tablename from pg_tables where schemaname = 'raw' and tablename <> '_loads'")]
            started = time.monotonic()
            for table in tables:
                conn.execute(f'analyze raw."{table}"')
            analyze = time.monotonic() - started
            history = conn.execute("select count(*) from raw.order_details").fetchone()[0]  # type: ignore[index]
        transform = bench.step("transform", i)
        loads.append(load.seconds)
        analyzes.append(analyze)
        transforms.append(transform.seconds)
        print(
            f"  day {i + 1:>3}/{days} {bench.day}  load {load.seconds:6.2f} s  ANALYZE of the {len(tables)} raw tables {analyze:5.2f} s"
            f"  transform {transform.seconds:6.2f} s  (raw.order_details: {history} rows)",
            flush=True,
        )
    print(f"\n{days} days, scale {scale}; {psutil.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for name, values in (("load", loads), ("ANALYZE (all raw tables)", analyzes), ("transform", transforms)):
        print(f"{name:<25} median {statistics.median(values):6.2f} s  max {max(values):6.2f} s (day {values.index(max(values)) + 1})")


def median(samples: list[Sample]) -> Sample:
    best = sorted(samples, key=lambda s: s.seconds)[len(samples) // 2]
    servers = [s.server_cpu for s in samples if s.server_cpu is not None]
    return Sample(
        statistics.median(s.seconds for s in samples),
        best.rows,
        max(s.tree_rss for s in samples),
        max(s.proc_rss for s in samples),
        best.proc_name,
        cpu=statistics.median(s.cpu for s in samples),
        server_cpu=statistics.median(servers) if servers else None,
    )


def mib(n: int) -> str:
    return f"{n / 2**20:.0f}" if n else "-"


def scale_arg(raw: str) -> int:
    """--scale, given as `make bench SCALE=K`: errors name SCALE."""
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"SCALE={raw!r} is not a scale: use a whole number >= 1, e.g. SCALE=10")
    return int(raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=scale_arg, required=True)
    parser.add_argument("--repeat", type=int, default=0, help="runs to take the median of (default: 3 for K<=10, else 1)")
    parser.add_argument("--date", default="2024-01-01", help="the day the runs are for")
    parser.add_argument("--config", choices=["tuned", "default"], default="tuned", help="tuned (meltano.yml) or the plugins' defaults")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset of the steps")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw COPY reference")
    parser.add_argument(
        "--step1",
        choices=["parallel", "sequential"],
        default=None,
        help="run the two extract tasks at once as `make pipeline` does (default for tuned), "
        "or one after the other (default for --config default: the untuned baseline)",
    )
    parser.add_argument("--pipeline", action="store_true", help="also time `nwelt pipeline` (extracts in parallel), --repeat times")
    parser.add_argument(
        "--backfill", type=int, default=0, metavar="DAYS", help="also time `nwelt backfill` of DAYS days ending the day before --date"
    )
    parser.add_argument(
        "--days",
        type=int,
        nargs="?",
        const=60,
        default=0,
        metavar="N",
        help="instead: load N days (alone: 60) into one warehouse and print each day's transform time",
    )
    args = parser.parse_args()
    if args.days:
        generate_scaled.build_database(args.scale)
        generate_scaled.build_csv(args.scale, generate_scaled.ROOT / "data" / "source" / "order_details.csv")
        days_run(args.scale, args.days, args.date)
        return 0
    repeat = args.repeat or (3 if args.scale <= 10 else 1)
    steps = [s for s in STEPS if s in args.steps.split(",")]
    step1 = args.step1 or ("parallel" if args.config == "tuned" else "sequential")

    started = time.monotonic()
    generate_scaled.build_database(args.scale)
    generate_scaled.build_csv(args.scale, generate_scaled.ROOT / "data" / "source" / "order_details.csv")
    print(f"scaled source ready ({time.monotonic() - started:.1f} s)", flush=True)
    bench = Bench(args.scale, args.config, args.date)
    samples: dict[str, list[Sample]] = {}
    for run in range(repeat):
        todo = list(steps)
        if step1 == "parallel" and all(s in todo for s in EXTRACTS):
            # as `make pipeline` runs them: both extract tasks at once
            started, server_before = time.monotonic(), server_cpu(bench.settings)
            with ThreadPoolExecutor(2) as pool:
                both = dict(zip(EXTRACTS, pool.map(bench.step, EXTRACTS, [run] * len(EXTRACTS)), strict=True))
            server_after = server_cpu(bench.settings)
            wall = Sample(
                time.monotonic() - started,
                sum(x.rows for x in both.values()),
                sum(x.tree_rss for x in both.values()),
                max(x.proc_rss for x in both.values()),
                max(both.values(), key=lambda x: x.proc_rss).proc_name,
                cpu=sum(x.cpu for x in both.values()),
            )
            if server_before is not None and server_after is not None:
                wall.server_cpu = server_after - server_before
            for sample in both.values():  # the server's time cannot be split between two concurrent steps
                sample.server_cpu = None
            samples.setdefault(STEP1, []).append(wall)
            for step, sample in both.items():
                samples.setdefault(step, []).append(sample)
                print(
                    f"  run {run + 1}/{repeat} {step:<17} {sample.seconds:7.1f} s {sample.rows:>9} rows  peak {mib(sample.proc_rss)} MiB ({sample.proc_name}), in parallel",
                    flush=True,
                )
            print(f"  run {run + 1}/{repeat} {STEP1:<17} {wall.seconds:7.1f} s wall", flush=True)
            todo = [s for s in todo if s not in EXTRACTS]
        for step in todo:
            sample = bench.step(step, run)
            samples.setdefault(step, []).append(sample)
            wait = f" (+{sample.extra['wait']:.1f} s wait)" if sample.extra.get("wait", 0) > 0.5 else ""
            print(
                f"  run {run + 1}/{repeat} {step:<17} {sample.seconds:7.1f} s{wait} {sample.rows:>9} rows  peak {mib(sample.proc_rss)} MiB ({sample.proc_name})",
                flush=True,
            )
        if not args.no_raw:
            for name, sample in bench.raw_copy(run).items():
                samples.setdefault(name, []).append(sample)
                print(f"  run {run + 1}/{repeat} {name:<17} {sample.seconds:7.1f} s {sample.rows:>9} rows", flush=True)

    nwelt = str(ROOT / ".venv" / "bin" / "nwelt")
    if args.pipeline:
        for run in range(repeat):
            sample, _ = measured([nwelt, "pipeline", "--date", args.date], bench.env, bench.logs / f"pipeline-{run}.log")
            samples.setdefault("nwelt pipeline", []).append(sample)
            print(f"  run {run + 1}/{repeat} nwelt pipeline    {sample.seconds:7.1f} s wall (locks included)", flush=True)
    if args.backfill:
        import datetime as dt

        end = dt.date.fromisoformat(args.date) - dt.timedelta(days=1)
        start = end - dt.timedelta(days=args.backfill - 1)
        sample, _ = measured([nwelt, "backfill", "--start", str(start), "--end", str(end)], bench.env, bench.logs / "backfill.log")
        samples[f"backfill {args.backfill} d"] = [sample]
        print(f"  backfill {start}..{end}: {sample.seconds:.1f} s wall, {sample.seconds / args.backfill:.1f} s per day", flush=True)

    med = {name: median(s) for name, s in samples.items()}
    cpu = psutil.cpu_count()
    mem = psutil.virtual_memory().total / 2**30
    print(
        f"\nscale {args.scale} ({args.config} settings), day {args.date}, median of {repeat} run(s); "
        f"{cpu} cores, {mem:.0f} GiB RAM, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'step':<17} {'seconds':>8} {'rows':>9} {'rows/s':>9} {'CPU s':>7} {'PG CPU s':>8} {'tree MiB':>9} {'max proc MiB':>13}  {'x raw COPY':>10}  largest process"
    )
    extra = [n for n in med if n.startswith(("nwelt pipeline", "backfill"))]
    for name in [*steps, *(n for n in (STEP1, "copy-out", "copy-csv", "copy-in") if n in med), *extra]:
        s = med[name]
        ref = med.get(REFERENCE.get(name, ""))
        ratio = f"{s.seconds / ref.seconds:10.1f}" if ref and ref.seconds > 0 else f"{'-':>10}"
        rate = f"{s.rows / s.seconds:9.0f}" if s.seconds > 0 and s.rows else f"{'-':>9}"
        cpu_s = f"{s.cpu:7.1f}" if s.cpu else f"{'-':>7}"
        server = f"{s.server_cpu:8.1f}" if s.server_cpu is not None else f"{'-':>8}"
        print(
            f"{name:<17} {s.seconds:8.2f} {s.rows:>9} {rate} {cpu_s} {server} {mib(s.tree_rss):>9} {mib(s.proc_rss):>13}  {ratio}  {s.proc_name}"
        )
    core = [n for n in ("extract-postgres", "extract-csv", "load") if n in med]
    if core:
        total = sum(med[n].seconds for n in core)
        line = f"step 1 + step 2 (extract-postgres + extract-csv + load, one after the other): {total:.1f} s"
        if STEP1 in med and "load" in med:
            line += f"; as the pipeline runs them (extracts in parallel, then load): {med[STEP1].seconds + med['load'].seconds:.1f} s"
        if all(n in med for n in ("copy-out", "copy-csv", "copy-in")):
            raw = med["copy-out"].seconds + med["copy-csv"].seconds + med["copy-in"].seconds
            line += f"; raw COPY {raw:.2f} s; ratio {total / raw:.0f}x"
        print(line)
        parts = [med.get(STEP1), med.get("load")]
        if all(x is not None and x.server_cpu is not None for x in parts) and cpu:
            busy = sum(x.cpu + x.server_cpu for x in parts)  # type: ignore[union-attr,operator]
            print(
                f"CPU of step 1 + step 2 as the pipeline runs them: {busy:.1f} s (processes and PostgreSQL server); "
                f"on {cpu} cores no schedule of this work takes less than {busy / cpu:.1f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
