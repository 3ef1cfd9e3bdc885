"""`nwelt`'s command line: what it accepts, and one line naming the make variable when it does not."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from northwind_elt import cli, database, export, ledger, locks
from northwind_elt import settings as settings_mod
from northwind_elt.console import error_line
from northwind_elt.database import EmbeddedPostgres
from northwind_elt.errors import NweltError
from northwind_elt.settings import Settings


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return cli.build_parser().parse_args(list(argv))


def test_the_commands_make_runs() -> None:
    run = parse("run", "load", "--date", "2024-01-01", "--wait", "600")
    assert (run.func, run.step, run.date, run.wait) == (cli.cmd_run, "load", "2024-01-01", 600.0)
    assert parse("pipeline", "--date", "", "--from-step", "transform").from_step == "transform"
    assert parse("pipeline").wait is None  # NWELT_LOCK_WAIT_SECONDS decides
    assert parse("status", "--days", "7").days == 7
    status = parse("status", "--start", "2024-01-01", "--end", "2024-01-03")
    assert (status.start, status.end, status.days) == ("2024-01-01", "2024-01-03", None)
    task = parse("task", "close", "export")
    assert (task.func, task.action, task.step, task.date) == (cli.cmd_task, "close", "export", "")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["pipeline", "--from-step", "nope"], "STEP='nope': not a step; use one of extract-postgres"),
        (["status", "--days", "0"], "DAYS='0': not a number of days"),
        (["status", "--days", "$(touch x)"], "DAYS='$(touch x)'"),
        (["status", "--days", "²"], "DAYS='²': not a number of days"),  # a digit to isdigit(), not to int()
        (["run", "nope"], "invalid choice: 'nope'"),
        (["task", "open", "load", "--date"], "expected one argument"),
        (["run", "load", "--wait=-5"], "--wait='-5': not a number of seconds"),
        (["backfill", "--wait", "nan"], "--wait='nan': not a number of seconds"),
    ],
)
def test_bad_arguments_are_one_line(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(*argv)
    assert exit_.value.code == 2 and says in capsys.readouterr().err


def test_a_bad_date_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "load", "--date", "2024-13-01"]) == 2
    err = capsys.readouterr().err
    assert err == "ConfigError: DATE='2024-13-01' is not a date: use the form YYYY-MM-DD, e.g. DATE=2024-01-01\n"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["status", "--start", "2024-01-01"], "ConfigError: status needs START=YYYY-MM-DD and END=YYYY-MM-DD (START <= END)"),
        (["status", "--start", "2024-01-02", "--end", "2024-01-01"], "ConfigError: END=2024-01-01 is before START=2024-01-02"),
        (["status", "--start", "2024-01-01", "--end", "2024-01-02", "--days", "3"], "ConfigError: status takes START and END, or DATE"),
        (["backfill", "--end", "2024-01-01"], "ConfigError: backfill needs START=YYYY-MM-DD and END=YYYY-MM-DD"),
        (["status", "--start", "0001-01-01", "--end", "2024-01-01"], "ConfigError: START=0001-01-01 END=2024-01-01: status takes at most"),
    ],
)
def test_a_bad_range_is_one_line_naming_it(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith(says)


def test_a_bad_setting_is_one_line_naming_it(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NWELT_HEARTBEAT_SECONDS", "abc")
    assert cli.main(["status", "--date", "2024-01-01"]) == 2
    assert capsys.readouterr().err.startswith("ConfigError: NWELT_HEARTBEAT_SECONDS='abc' is not a number")


def test_a_server_that_is_not_running_is_one_line_naming_host_and_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """External servers, nothing listening (psycopg: `Connection refused`): the server, not libpq's words."""
    port = settings_mod.free_port(47000)
    for prefix in ("SOURCE", "WAREHOUSE"):
        monkeypatch.setenv(f"{prefix}_PG_HOST", "127.0.0.1")
        monkeypatch.setenv(f"{prefix}_PG_PORT", str(port))
    monkeypatch.setenv("NWELT_DB", "external")
    assert cli.main(["status", "--date", "2024-01-01"]) == 1
    assert capsys.readouterr().err == (
        f"LedgerError: the warehouse's PostgreSQL at 127.0.0.1:{port} (NWELT_DB=external) is not running or is stopping: "
        "start it (or fix WAREHOUSE_PG_*), then rerun\n"
    )


DAY = dt.date(2024, 1, 1)


@pytest.mark.parametrize(
    "use",
    [
        ledger.connect,
        lambda settings: export.export(settings, DAY),
        lambda settings: locks.start_holder(settings, "load", DAY, os.getpid()),
    ],
    ids=["ledger", "export", "lock-holder"],
)
def test_the_embedded_server_not_running_names_make_db_up(warehouse: Settings, use: Callable[[Settings], object]) -> None:
    """The embedded server stopped (`make db-down`): whatever wrapped psycopg's error (a LedgerError,
    an ExportError around a LoadError, the lock holder's message through its pipe) says so, and
    names `make db-up`."""
    port = settings_mod.free_port(47000)
    stopped = dataclasses.replace(warehouse, pg_port=port, warehouse=dataclasses.replace(warehouse.warehouse, port=port))
    with pytest.raises(NweltError) as raised:
        use(stopped)
    down = database.server_down(stopped, raised.value)
    assert down is not None and error_line(down) == (
        f"{type(raised.value).__name__}: the embedded PostgreSQL (127.0.0.1:{port}) is not running or is stopping (`make db-down`?); "
        "run make db-up; then rerun"
    )
    wrong_password = dataclasses.replace(warehouse, warehouse=dataclasses.replace(warehouse.warehouse, password="wrong"))
    with pytest.raises(NweltError) as refused:
        use(wrong_password)
    assert database.server_down(wrong_password, refused.value) is None  # a running server: its own words


PROVISION_LOCK = "select pg_advisory_lock(hashtext('northwind-elt provision'))"


def test_a_server_stopped_while_a_command_starts_it_is_one_line(
    server: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make db-down` racing the start of `make pipeline` or `make status` (database.ensure_running):
    the fast shutdown ends the start-up provisioning's session (psycopg's AdminShutdown, a traceback
    before). Here the provisioning waits for its lock, held by the test, until the server stops."""
    db = EmbeddedPostgres(server)
    monkeypatch.setenv("NWELT_DB", "embedded")
    monkeypatch.setenv("NWELT_PG_HOME", str(server.pg_home))
    monkeypatch.setenv("NWELT_PG_PORT", str(server.pg_port))
    waiting = "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query like '%northwind-elt provision%'"
    with db.admin() as holder, ThreadPoolExecutor(1) as pool:
        holder.execute(PROVISION_LOCK)
        status = pool.submit(cli.main, ["status", "--date", "2024-01-01"])
        try:
            deadline = time.monotonic() + 60
            while not (provisioning := holder.execute(waiting).fetchone() == (1,)) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            db.stop()  # `make db-down`: a fast shutdown ends every session
            db.start()  # the other tests' server
    assert provisioning and status.result() == 1
    assert capsys.readouterr().err == (
        f"LedgerError: the embedded PostgreSQL (127.0.0.1:{server.pg_port}) is not running or is stopping (`make db-down`?); "
        "run make db-up; then rerun\n"
    )


def test_a_server_started_on_demand_says_so(server: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    db = EmbeddedPostgres(server)
    db.start()  # running: nothing to say
    assert capsys.readouterr().err == ""
    db.stop()
    db.start()  # `make db-up`: its own status line follows
    assert capsys.readouterr().err == ""
    db.stop()
    db.start(announce=True)  # a step, status or the docs, which needed it
    assert db.status().running
    assert capsys.readouterr().err == f"the embedded PostgreSQL was not running: started it on 127.0.0.1:{server.pg_port}\n"


def test_setup_refuses_a_checkout_whose_path_holds_a_single_quote_before_writing_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """meltano.yml quotes the checkout's path in the local packages' pip_urls (a space is fine):
    a ' ended `make setup` in a 45-line Meltano traceback (`No closing quotation`)."""
    root = tmp_path / "o'brien" / "northwind-elt"
    root.mkdir(parents=True)
    monkeypatch.setattr(settings_mod, "ROOT", root)
    with pytest.raises(NweltError, match=r"^the checkout's path .*o'brien/northwind-elt holds a ': Meltano cannot install"):
        cli.cmd_setup(parse("setup"))
    assert list(root.iterdir()) == []
