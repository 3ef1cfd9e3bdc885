"""Console output: the only module that turns steps and fixes into command lines and prints
summaries, failures and the backfill's lines."""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Fix, NweltError
from .registry import NAMES


def command(fix: Fix) -> str:
    """The command line of a fix (`make load DATE=2024-01-01`, `make pipeline DATE=… STEP=load`)."""
    if fix.note:
        return fix.note
    day = f" DATE={fix.day.isoformat()}" if fix.day else ""
    if fix.step is None or (fix.then_rest and fix.step == NAMES[0]):
        return f"make pipeline{day}"
    if fix.then_rest and fix.step != NAMES[-1]:
        return f"make pipeline{day} STEP={fix.step}"
    return f"make {fix.step}{day}"


def resume_commands(step: str, day: dt.date) -> list[str]:
    """What finishes the day from `step` on: the step, then the rest (from the first step: the pipeline)."""
    index = NAMES.index(step)
    if index == 0:
        return [command(Fix(day=day))]
    return [command(Fix(step=s, day=day, then_rest=s != step)) for s in NAMES[index : index + 2]]


def wait_for(step: str, day: dt.date) -> str:
    """The advice while `step` of `day` runs: its locks would refuse any rerun of the day."""
    return f"wait: {step} is running; then make status DATE={day.isoformat()}"


def error_line(exc: NweltError) -> str:
    """One line: the class, the sentence, the commands that fix it (see commands_in)."""
    fixes = FIX_SEPARATOR.join(command(f) for f in exc.fixes)
    return f"{type(exc).__name__}: {exc.message}" + (f"{FIX_MARKER}{fixes}" if fixes else "")


FIX_MARKER, FIX_SEPARATOR = "; run ", "; then "
COMMAND = re.compile(r"make [\w-]+( [A-Z_]+=\S+)*")  # what commands_in takes for a command: no prose


def _fixes(cause: str | None) -> tuple[str, list[str]]:
    """An error line (error_line) split into its sentence and the fixes it names ([] if none)."""
    if not cause or FIX_MARKER not in cause:
        return cause or "", []
    sentence, _, fixes = cause.rpartition(FIX_MARKER)
    return sentence, [f.strip() for f in fixes.split(FIX_SEPARATOR)]


def commands_in(cause: str | None) -> list[str]:
    """The commands an error line (error_line) names, in order; [] if it names none."""
    return [c for c in _fixes(cause)[1] if COMMAND.fullmatch(c)]


def _reach(command: str) -> tuple[str, int] | None:
    """The day and the first step a command runs, through the day's end (`make pipeline DATE=D`:
    its first step; `… STEP=S` and `make S DATE=D`: S); None for another command."""
    match = re.fullmatch(r"make ([\w-]+) DATE=(\S+)(?: STEP=([\w-]+))?", command)
    step = match and (match[3] or (NAMES[0] if match[1] == "pipeline" else match[1]))
    return (match[2], NAMES.index(step)) if match and step in NAMES else None


def without_commands(cause: str | None, shown: Sequence[str]) -> str:
    """An error line without its commands when the resume lines `shown` cover each (shown, or a step
    the resume reruns on its way to the day's end); kept whole when it names anything else to do."""
    sentence, fixes = _fixes(cause)
    start = _reach(shown[0]) if shown else None

    def covered(fix: str) -> bool:
        reach = _reach(fix)
        return fix in shown or fix == "rerun" or bool(start and reach and reach[0] == start[0] and reach[1] >= start[1])

    return sentence if fixes and all(map(covered, fixes)) else cause or ""


def next_commands(step: str, day: dt.date, cause: str | None) -> list[str]:
    """What to run after `step` failed for `day`: the commands its error names, then the day from `step` on."""
    named = commands_in(cause)
    if not named:
        return resume_commands(step, day)
    if named[-1].startswith("make pipeline"):
        return named  # already runs the rest of the day
    if named[-1] == command(Fix(step=step, day=day)):  # its own rerun: the day from it on
        return [*named[:-1], *resume_commands(step, day)]
    return [*named, command(Fix(step=step, day=day, then_rest=True))]


@dataclass
class StepResult:
    step: str
    day: dt.date
    ok: bool
    seconds: float | None  # the ledger's: from the open task's record to the outcome's (None: none recorded)
    rows: dict[str, int] = field(default_factory=dict)
    cause: str | None = None
    log_path: Path | None = None


def report_failure(r: StepResult, commands: Sequence[str]) -> None:
    """The failure block; `commands`: what finishes the day (status.failure_advice, as `make status` says)."""
    lines = ["", f"FAILED: step {r.step} for {r.day}", f"  cause:  {without_commands(r.cause, commands)}"]
    lines += [f"  log:    {r.log_path}"] if r.log_path else []
    lines += [f"  {'resume:' if i == 0 else 'then:  '} {line}" for i, line in enumerate(commands)]
    print("\n".join(lines), file=sys.stderr)


def _secs(value: float | None) -> str:
    return f"{value:7.1f} s" if value is not None else f"{'-':>7}  "


def print_summary(results: Sequence[StepResult]) -> None:
    if not results:
        return
    print(f"\nsummary for {results[0].day}:")
    for r in results:
        rows = f"{sum(r.rows.values()):>8} rows" if r.ok else "       -     "
        print(f"  {r.step:<17} {'ok' if r.ok else 'FAILED':<7} {rows} {_secs(r.seconds)}")


def say(line: str) -> None:
    """One line, in one write: the lines of days run side by side never run into each other."""
    print(f"{line}\n", end="", flush=True)


def step_started(step: str, day: dt.date) -> None:
    say(f"{day} {step:<17} started")


def step_ended(r: StepResult) -> None:
    ok = f"ok      {sum(r.rows.values()):>8} rows {_secs(r.seconds)}"
    say(f"{r.day} {r.step:<17} " + (ok if r.ok else f"FAILED  {_secs(r.seconds)}: {(r.cause or '')[:120]}"))


def duration(value: float) -> str:
    """`42 s`, `3 min 05 s`, `2 h 07 min`."""
    s = round(value)
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def day_finished(day: dt.date, results: Sequence[StepResult], done: int, total: int, elapsed: float, busy: str | None = None) -> None:
    """The backfill's progress as each day ends (in any order): how many, how long, about how long
    still; `busy`: why no step ran (another run held the day)."""
    failed = next((r for r in results if not r.ok), None)
    left = f", about {duration(elapsed / done * (total - done))} left" if done < total else ""
    outcome = f"not run: {busy}" if busy else f"FAILED at {failed.step}" if failed else "ok"
    say(f"day {done} of {total} done: {day} {outcome}; {duration(elapsed)} elapsed{left}")


def progress(step: str, text: str) -> None:
    say(f"  [{step}] {text}")
