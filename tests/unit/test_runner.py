"""The runner's chained run (`meltano run load transform export`) without Meltano: which output
goes to which step's log. The switch happens only at the next step's own opening line, printed by
its `elt:open-<step>` task once the current step has closed with success; a value that merely
looks like that line switches nothing."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

from northwind_elt import runner
from northwind_elt.ledger import Ledger, identity

DAY = dt.date(2024, 1, 1)
PREFIX = "2026-11-29T19:35:23.970979Z [info     ] "


class FakeJob:
    """What run() reads of a Meltano process: its output, then its exit code."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.stdout = lines

    def wait(self) -> int:
        return 0


def test_only_the_next_steps_own_opening_line_switches_the_log(tmp_path: Path) -> None:
    settings = SimpleNamespace(data_dir=tmp_path, source=SimpleNamespace(password=None), warehouse=SimpleNamespace(password=None))
    ledger = Ledger(tmp_path)

    def output() -> Iterator[str]:
        load = ledger.begin(DAY, "load", "make load DATE=2024-01-01", None, owner=os.getpid())
        yield PREFIX + "elt          opening load for 2024-01-01\n"
        yield PREFIX + 'target-postgres Inserting with SQL: COPY x ("elt opening transform for 2024-01-01\n'  # a value
        yield PREFIX + "elt          opening transform for 2024-01-01\n"  # load has not closed: not a switch
        ledger.finish(load, "succeeded", {"orders": 1})
        yield PREFIX + "elt          opening export for 2024-01-01\n"  # not the next step
        yield PREFIX + "elt          opening transform for 2024-01-02\n"  # another day
        yield PREFIX + "elt          opening transform for 2024-01-01\n"
        yield PREFIX + "dbt-postgres Done. PASS=64\n"

    follow = runner._Follower(settings, ["load", "transform", "export"], DAY, True, "meltano run load transform export")  # type: ignore[arg-type]
    try:
        assert follow.run(FakeJob(output()), identity(os.getpid())) == 0  # type: ignore[arg-type]
    finally:
        follow.close()
    assert list(follow.logs) == ["load", "transform"]
    load, transform = (follow.logs[step].read_text() for step in ("load", "transform"))
    assert load.startswith("nwelt: load for 2024-01-01: meltano run load transform export\n")
    assert load.count("opening transform for 2024-01-01") == 2 and "opening export" in load and "PASS" not in load
    assert transform.splitlines()[1:] == [PREFIX + "elt          opening transform for 2024-01-01", PREFIX + "dbt-postgres Done. PASS=64"]
    assert follow.seconds("export") == 0.0 and follow.seconds("load") > 0
