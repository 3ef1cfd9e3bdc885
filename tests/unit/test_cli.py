"""`nwelt`'s command line: what it accepts, and one line naming the make variable when it does not."""

from __future__ import annotations

import pytest

from northwind_elt import cli


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return cli.build_parser().parse_args(list(argv))


def test_the_commands_make_runs() -> None:
    run = parse("run", "load", "--date", "2024-01-01", "--wait", "600")
    assert (run.func, run.step, run.date, run.wait) == (cli.cmd_run, "load", "2024-01-01", 600.0)
    assert parse("pipeline", "--date", "", "--from-step", "transform").from_step == "transform"
    assert parse("pipeline").wait is None  # NWELT_LOCK_WAIT_SECONDS decides
    assert parse("status", "--days", "7").days == 7
    task = parse("task", "close", "export")
    assert (task.func, task.action, task.step, task.date) == (cli.cmd_task, "close", "export", "")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["pipeline", "--from-step", "nope"], "STEP='nope': not a step; use one of extract-postgres"),
        (["status", "--days", "0"], "DAYS='0': not a number of days"),
        (["status", "--days", "$(touch x)"], "DAYS='$(touch x)'"),
        (["run", "nope"], "invalid choice: 'nope'"),
        (["task", "open", "load", "--date"], "expected one argument"),
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


def test_a_bad_setting_is_one_line_naming_it(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NWELT_HEARTBEAT_SECONDS", "abc")
    assert cli.main(["status", "--date", "2024-01-01"]) == 2
    assert capsys.readouterr().err.startswith("ConfigError: NWELT_HEARTBEAT_SECONDS='abc' is not a number")
