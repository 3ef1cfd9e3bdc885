"""Running steps for a day: the same code path for `make`, the Airflow DAG and backfills.

A step run = hold the day's locks, record it in the ledger, run the step's Meltano job with
RUN_DATE=D (its full output goes to a per-run log file), then record the outcome with rows per
table. On failure the last lines printed name the day, the step, the cause in one sentence,
the log file and the commands that resume the day.
"""

from __future__ import annotations

import datetime as dt
import queue
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import locks
from .ledger import STEPS, Ledger
from .settings import Settings, meltano_exe

# lines of a Meltano run worth showing live (the full output is in the log file)
PROGRESS = re.compile(
    r"(committed \S+: \d+ rows|exported \d+ rows|schema change in .+|"
    r"METRIC: .*\"record_count\".*|\d+ of \d+ (OK created|ERROR|FAIL)\b.*|Done\. PASS=.*)"
)
# lines that state a cause, most specific first
CAUSES = [
    re.compile(r"\b(GateError|PublishError|LoadError|ExportError|CsvInputError|LockBusy|ConfigError): (.+)"),
    re.compile(r"(psycopg2?\.\w*Error|sqlalchemy\.exc\.\w+): \(?[\w.]*\)? ?(.+)"),
    re.compile(r"\b(connection to server .+|password authentication failed.+|No space left on device.*|Permission denied.*)"),
    re.compile(r"\b((?:Failure|Error) in (?:test|model) .+)"),
    re.compile(r"\b([A-Z]\w*(?:Error|Exception)): (.+)"),
    re.compile(r"^(Error while parsing YAML file: .+|Another '.+' pipeline is already running.*)"),
]


def rerun_command(step: str, day: dt.date) -> str:
    return f"make {step} DATE={day.isoformat()}"


def resume_commands(step: str, day: dt.date) -> list[str]:
    """What to type to finish the day from `step` on."""
    index = STEPS.index(step)
    commands = [rerun_command(step, day)]
    if step == "extract-postgres":
        commands = [f"make pipeline DATE={day}"]
    elif index + 1 < len(STEPS) and step != "export":
        following = STEPS[index + 1]
        commands.append(f"make pipeline DATE={day} STEP={following}")
    return commands


@dataclass
class StepResult:
    step: str
    day: dt.date
    ok: bool
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    cause: str | None = None
    log_path: Path | None = None


def find_cause(log_text: str, step: str) -> str:
    """The sentence that says why a step failed, picked from its full log."""
    lines = [re.sub(r"^\S+Z \[\w+\s*\] \S+\s+", "", line).strip() for line in log_text.splitlines()]
    for pattern in CAUSES:
        for line in reversed(lines):
            match = pattern.search(line)
            if match:
                return (match.group(match.lastindex or 0) if pattern.groups else match.group(0)).strip()[:500]
    return f"the Meltano job {step} stopped without an error message (killed or crashed?); see the log"


def step_rows(settings: Settings, step: str, day: dt.date) -> dict[str, int]:
    """Rows per table produced by a successful step, read from what it wrote."""
    from .landing import SOURCES, Landing

    if step.startswith("extract-"):
        source = SOURCES[step.removeprefix("extract-")]
        return {table: info["rows"] for table, info in Landing(settings.data_dir).verify(source, day).items()}
    if step == "load":
        return {table: info["rows"] for (_, table), info in Landing(settings.data_dir).check_day(day).items()}
    if step == "transform":
        from .export import mart_rows

        return {"orders_details": mart_rows(settings, day)}
    if step == "export":
        from .export import output_paths

        csv_path = output_paths(settings, day)[0]
        return {"orders_details": max(0, sum(1 for _ in csv_path.open("rb")) - 1)}
    raise ValueError(step)


def run_step(
    settings: Settings, step: str, day: dt.date, lock_fds: list[int], quiet: bool = False, nice: int = 0
) -> StepResult:
    """Run one step's Meltano job for `day` (the caller holds the day's locks)."""
    with locks.hold_project(settings.root, step, day) as project_fds:
        return _run_step(settings, step, day, lock_fds + project_fds, quiet, nice)


def _run_step(
    settings: Settings, step: str, day: dt.date, lock_fds: list[int], quiet: bool, nice: int
) -> StepResult:
    ledger = Ledger(settings.data_dir)
    log_dir = settings.data_dir / "logs" / day.isoformat()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{step}-{dt.datetime.now():%Y%m%dT%H%M%S%f}.log"
    run_id = ledger.begin(day, step, rerun_command(step, day), log_path)
    env = settings.meltano_env() | {"RUN_DATE": day.isoformat(), "NWELT_RUN_ID": run_id}
    started = time.monotonic()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            # --force: our per-day locks decide who may run, not Meltano's job table (a killed
            # run would block the job for minutes); --no-state-update: every run is a full,
            # stateless extract. No --refresh-catalog: Meltano reuses tap-postgres's cached
            # catalog, which elt:stage-postgres removes whenever the source schema changed
            # (catalogs.py), so drift is still seen.
            # `nice`: a lower CPU priority for the whole job (used by backfills, see execute_days)
            [*(["nice", "-n", str(nice)] if nice else []), meltano_exe(), "run", "--force", "--no-state-update", step],
            cwd=settings.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            pass_fds=tuple(lock_fds),
            bufsize=1,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(_redact(line, settings))
            if not quiet and PROGRESS.search(line):
                print(f"  [{step}] {_short(line)}", flush=True)
        code = process.wait()
    seconds = time.monotonic() - started
    if code == 0:
        try:
            rows = step_rows(settings, step, day)
        except Exception as exc:  # the job said success but its output is not there
            code, cause = 1, f"{step} reported success but its output is not readable: {exc}"
        else:
            ledger.finish(run_id, "succeeded", rows)
            return StepResult(step, day, True, seconds, rows, log_path=log_path)
    else:
        cause = find_cause(log_path.read_text(errors="replace"), step)
    ledger.finish(run_id, "failed", error=cause)
    return StepResult(step, day, False, seconds, cause=cause, log_path=log_path)


def _short(line: str) -> str:
    line = re.sub(r"^\S+Z \[\w+\s*\] \S+\s+", "", line.strip())
    metric = re.search(r'"value":\s*(\d+).*"stream":\s*"([^"]+)"', line)
    if "METRIC" in line and metric:
        return f"{metric.group(2)}: {metric.group(1)} rows"
    return line[:160]


def _redact(line: str, settings: Settings) -> str:
    for secret in (settings.source.password, settings.warehouse.password):
        if secret:
            line = line.replace(secret, "********")
    return line


def report_failure(result: StepResult) -> None:
    day = result.day
    print(file=sys.stderr)
    print(f"FAILED: step {result.step} for {day}", file=sys.stderr)
    print(f"  cause:  {result.cause}", file=sys.stderr)
    if result.log_path:
        print(f"  log:    {result.log_path}", file=sys.stderr)
    for i, command in enumerate(resume_commands(result.step, day)):
        print(f"  {'resume:' if i == 0 else 'then:  '} {command}", file=sys.stderr)


def print_summary(results: list[StepResult]) -> None:
    if not results:
        return
    print(f"\nsummary for {results[0].day}:")
    for r in results:
        rows = f"{sum(r.rows.values()):>8} rows" if r.ok else "       -     "
        print(f"  {r.step:<17} {'ok' if r.ok else 'FAILED':<7} {rows} {r.seconds:7.1f} s")


def execute(
    settings: Settings, day: dt.date, steps: list[str], wait_seconds: float = 0, quiet: bool = False, nice: int = 0
) -> list[StepResult]:
    """Run `steps` for `day` in order under the day's locks (the two extracts in parallel);
    stops at the first failure."""
    if settings.embedded:
        from .database import EmbeddedPostgres

        EmbeddedPostgres(settings).up(sync_passwords=False)
    if "extract-csv" in steps and settings.csv_path == settings.source_dir / "order_details.csv":
        from . import sourcedata

        sourcedata.ensure(settings, "order_details.csv")
    results: list[StepResult] = []
    with locks.hold(settings.data_dir, day, steps, wait_seconds) as fds:
        extracts = [s for s in steps if s.startswith("extract-")]
        if len(extracts) > 1:
            with ThreadPoolExecutor(len(extracts)) as pool:
                results += list(pool.map(lambda s: run_step(settings, s, day, fds, quiet, nice), extracts))
        else:
            results += [run_step(settings, s, day, fds, quiet, nice) for s in extracts]
        for step in [s for s in steps if s not in extracts]:
            if not all(r.ok for r in results):
                break
            results.append(run_step(settings, step, day, fds, quiet, nice))
    return results


# A backfill runs days through these stages like an assembly line (see execute_days).
# (steps, niceness): the slowest stage, transform, keeps the normal CPU priority and the others
# yield to it, so the line moves at the pace of its bottleneck.
STAGES = [(["extract-postgres", "extract-csv"], 5), (["load"], 5), (["transform"], 0), (["export"], 5)]


def execute_days(
    settings: Settings, days: list[dt.date], wait_seconds: float = 0
) -> Iterator[list[StepResult]]:
    """Run the whole pipeline for each of `days`, yielding each day's results in day order.

    The days go through STAGES like an assembly line: while day N exports, day N+1 transforms,
    day N+2 loads and day N+3 is extracted. Stages of one day stay in order (each under the day's
    locks); two stages never use the same plugin, so they never wait for each other's project
    locks. With start-up bound steps this keeps both cores busy; the stages other than the
    slowest run niced, so the CPU goes first where the line waits. A failed day does not stop the
    others: its later stages are skipped and its results say what failed and how to resume.
    """
    results: dict[dt.date, list[StepResult]] = {day: [] for day in days}
    queues: list[queue.Queue[dt.date]] = [queue.Queue() for _ in range(len(STAGES) + 1)]
    for day in days:
        queues[0].put(day)

    def run(day: dt.date, steps: list[str], nice: int) -> list[StepResult]:
        try:
            return execute(settings, day, steps, wait_seconds, quiet=True, nice=nice)
        except locks.LockBusy as exc:  # another run has this day: report it, go on with the others
            return [StepResult(steps[0], day, False, 0.0, cause=str(exc))]

    def stage(index: int) -> None:
        for _ in days:
            day = queues[index].get()
            if all(r.ok for r in results[day]):
                results[day] += run(day, *STAGES[index])
            queues[index + 1].put(day)

    with ThreadPoolExecutor(len(STAGES)) as pool:
        workers = [pool.submit(stage, index) for index in range(len(STAGES))]
        for _ in days:
            while True:
                try:
                    day = queues[-1].get(timeout=1)
                    break
                except queue.Empty:
                    for worker in workers:
                        if worker.done() and worker.exception():
                            raise worker.exception()  # type: ignore[misc]
            yield results[day]
