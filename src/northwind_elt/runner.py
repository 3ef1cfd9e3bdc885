"""Running steps for a day as their Meltano jobs: the code path of `make`, `nwelt` and Airflow.

A step run = `meltano run <job>` with RUN_DATE=D; the job's own first and last tasks
(`elt:open-<step>`, `elt:close-<step>`, tasks.py) take the locks, check the gate and record the
run in the ledger, exactly as under a plain `meltano run`. The runner adds what a terminal or
scheduler wants: the day's locks held across all the steps it runs (so nothing slips in between
them), the job's full output in a per-run log file, progress lines, the cause of a failure in one
sentence, and a process tree that dies with it (the job gets SIGKILL when the runner dies; its
guard then kills the plugins).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack, suppress
from pathlib import Path

from . import console, guard, locks
from .causes import find_cause, strip_log_prefix
from .console import StepResult
from .errors import ConfigError
from .ledger import Ledger, Run, identity
from .registry import get
from .settings import Settings, meltano_exe

# lines of a Meltano run worth showing live (the full output is in the log file)
PROGRESS = re.compile(
    r"(committed \S+: \d+ rows|exported \d+ rows|schema change in .+|published \S+: \d+ rows|"
    r"METRIC: .*\"record_count\".*|\d+ of \d+ (OK created|ERROR|FAIL)\b.*|Done\. PASS=.*)"
)
HEARTBEAT_SECONDS = float(os.environ.get("NWELT_HEARTBEAT_SECONDS") or 10)  # tests shorten it

# the Meltano jobs this process started and has not yet seen end: stopped with it (see stop_all)
_children: set[subprocess.Popen[str]] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()  # set by stop_all: a job started after it is killed at once


def stop_all() -> None:
    """Kill the Meltano jobs this process runs (their guards then stop the plugins)."""
    with _children_lock:
        _stopping.set()
        for child in list(_children):
            with suppress(ProcessLookupError):
                child.kill()


def open_log(settings: Settings, step: str, day: dt.date, command: str | None = None) -> Path:
    """Create the run's log file and write its first line (a full disk fails here, clearly)."""
    log_dir = settings.data_dir / "logs" / day.isoformat()
    log_path = log_dir / f"{step}-{dt.datetime.now():%Y%m%dT%H%M%S%f}.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log:
            log.write(f"nwelt: {step} for {day}: {command or f'meltano run {step}'}\n")
            log.flush()
            os.fsync(log.fileno())
    except OSError as exc:
        raise ConfigError(
            f"cannot write the log of {step} for {day} in {log_dir} ({exc.strerror}): free space or fix the "
            "permissions of DATA_DIR, then rerun"
        ) from None
    return log_path


def run_step(settings: Settings, step: str, day: dt.date, quiet: bool = False) -> StepResult:
    """Run one step's Meltano job for `day` (the caller holds the day's locks)."""
    return run_steps(settings, [step], day, quiet)[0]


def run_steps(
    settings: Settings,
    steps: list[str],
    day: dt.date,
    quiet: bool = False,
    announce: bool = False,
    step1_failed: threading.Event | None = None,
) -> list[StepResult]:
    """Run consecutive steps' Meltano jobs for `day` in one `meltano run <job> <job> …` (the
    caller holds the day's locks). One Meltano start instead of one per step; each step still has
    its own log file (the output switches at the line its `elt:open-<step>` task prints first),
    ledger row, progress lines and result. Stops at the first failure, as Meltano does; returns
    the results up to the first step that did not succeed (whether it started or not).
    `announce`: a line when each step starts and when it ends (a backfill's days).
    `step1_failed` (execute): this chain runs beside step-1 jobs; its load waits for them
    (locks.wait_for_step1), and once the event is set (one failed), a later step that did not
    start is not reported."""
    command = "meltano run " + " ".join(steps)
    follow = _Follower(settings, steps, day, quiet, command, announce)
    env = settings.meltano_env() | {"RUN_DATE": day.isoformat()}
    if step1_failed is not None:
        env[locks.STEP1_ENV] = identity(os.getpid())
    ledger = Ledger(settings.data_dir)
    try:
        process = subprocess.Popen(
            # --force: the project's locks decide who may run, not Meltano's job table (a killed
            # run would block the job for minutes); --no-state-update: every run is a full,
            # stateless extract. No --refresh-catalog: Meltano reuses tap-postgres's cached
            # catalog, which elt:open-extract-postgres removes whenever the source schema changed
            # (catalogs.py), so drift is still seen.
            [
                meltano_exe(),
                f"--environment={settings.meltano_environment}",
                "run",
                "--force",
                "--no-state-update",
                *steps,
            ],
            cwd=settings.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            preexec_fn=guard.die_with_parent,
        )
        owner = identity(process.pid)
        with _children_lock:
            _children.add(process)
            if _stopping.is_set():  # stop_all ran while this job was starting
                process.kill()
        try:
            code = follow.run(process, owner)
        except (OSError, ConfigError):  # a log cannot be written: stop the job (its guard cleans up)
            process.kill()
            process.wait()
            raise
        finally:
            follow.close()
            with _children_lock:
                _children.discard(process)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the log {follow.log_path} of {follow.step} for {day} ({exc.strerror}): free space, then rerun"
        ) from None
    results = []
    for step in steps:  # the ledger says which steps succeeded; the first other one failed
        run = ledger.of_owner(day, step, owner)
        if run is None and step1_failed is not None and step1_failed.is_set() and get(step).upstream:
            break  # not started because step 1 failed beside the chain: that failure is the report
        seconds, log_path = follow.seconds(step), follow.logs.get(step, follow.log_path)
        if run is not None and run.outcome == "succeeded":
            results.append(StepResult(step, day, True, seconds, run.rows, log_path=log_path))
            continue
        if code == 0:
            cause = f"the Meltano job {step} ended without recording success (is meltano.yml's job {step} complete?)"
        elif code < 0:
            cause = f"the Meltano job {step} was stopped by signal {signal.Signals(-code).name}"
        else:
            cause = find_cause(log_path.read_text(errors="replace"), step)
        run_id = ledger.begin(day, step, console.command(console.resume_fixes(step, day)[0]), log_path) if run is None else run.run_id
        if code >= 0:  # a stopped job stays `running` with its owner gone: reported as interrupted
            ledger.finish(run_id, "failed", error=cause)
        ledger.set_log(run_id, log_path)
        results.append(StepResult(step, day, False, seconds, cause=cause, log_path=log_path))
        break
    if announce:  # the earlier steps' ends were announced as the next one opened
        console.step_ended(results[-1])
    return results


# the first line every `elt:open-<step>` task prints (tasks.open_step), as Meltano logs it
OPENING = re.compile(r"\belt\s+opening (\S+) for (\d{4}-\d{2}-\d{2})$")


class _Follower:
    """Copies a chain's output into each step's log, shows progress, and says something at least
    every HEARTBEAT_SECONDS."""

    def __init__(self, settings: Settings, steps: list[str], day: dt.date, quiet: bool, command: str, announce: bool = False) -> None:
        self.settings, self.steps, self.day, self.quiet, self.command = settings, steps, day, quiet, command
        self.announce = announce
        self.step = steps[0]
        self.log_path = open_log(settings, self.step, day, command)
        self.logs = {self.step: self.log_path}
        self.started = {self.step: time.monotonic()}
        self.ended: float | None = None
        self._log = self.log_path.open("a")
        self._last = time.monotonic()
        if announce:
            console.step_started(self.step, day)

    def _next_step_opens(self, line: str, owner: str) -> tuple[str, Run] | None:
        """The step this line opens and the current step's run, if the line is the open task's
        first line of the chain's next step: from `elt`, for this day, and only once the current
        step has closed with success (a value that merely looks like that line, in a log or an
        error message, switches nothing)."""
        opening = OPENING.search(line.rstrip())
        order = self.steps.index(self.step)
        if not opening or opening.group(2) != self.day.isoformat() or order + 1 >= len(self.steps):
            return None
        step = self.steps[order + 1]
        if opening.group(1) != step:
            return None
        run = Ledger(self.settings.data_dir).of_owner(self.day, self.step, owner)
        return (step, run) if run is not None and run.outcome == "succeeded" else None

    def _switch(self, step: str, closed: Run) -> None:
        """The next step of the chain has begun: its own log from here on."""
        if self.announce:
            console.step_ended(StepResult(self.step, self.day, True, self.seconds(self.step), closed.rows, log_path=self.log_path))
            console.step_started(step, self.day)
        log_path = open_log(self.settings, step, self.day, self.command)
        self._log.close()
        self.logs[step], self.started[step] = log_path, time.monotonic()
        self.step, self.log_path = step, log_path  # last: the heartbeat reads started[self.step]
        self._log = self.log_path.open("a")

    def run(self, process: subprocess.Popen[str], owner: str) -> int:
        assert process.stdout is not None
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(done,), daemon=True)
        beat.start()
        try:
            for line in process.stdout:
                opens = self._next_step_opens(line, owner)
                if opens is not None:
                    self._switch(*opens)
                self._log.write(_redact(line, self.settings))
                if not self.quiet and PROGRESS.search(line):
                    short = _short(line)
                    if short is not None:
                        console.progress(self.step, short)
                        self._last = time.monotonic()
            return process.wait()
        finally:
            self.ended = time.monotonic()
            done.set()

    def _heartbeat(self, done: threading.Event) -> None:
        while not done.wait(1):
            if not self.quiet and time.monotonic() - self._last >= HEARTBEAT_SECONDS:
                step = self.step
                rows = rows_so_far(self.settings, step, self.day)
                extra = f", {rows} rows so far" if rows is not None else ""
                console.progress(step, f"running for {time.monotonic() - self.started[step]:.0f} s{extra}")
                self._last = time.monotonic()

    def seconds(self, step: str) -> float:
        """From the step's start (the job's, for the first) to the next step's start or the end;
        0 for a step that never started."""
        if step not in self.started:
            return 0.0
        order = list(self.started)
        after = order[order.index(step) + 1] if order.index(step) + 1 < len(order) else None
        end = self.started[after] if after else (self.ended or time.monotonic())
        return end - self.started[step]

    def close(self) -> None:
        self._log.close()


def rows_so_far(settings: Settings, step: str, day: dt.date) -> int | None:
    """Records written so far by a running step, where that can be read cheaply."""
    if step.startswith("extract-"):
        from .landing import Landing, source_of

        staging = Landing(settings.data_dir, settings.staging_root).staging_dir(source_of(step))
        total = 0
        for path in staging.glob("*.jsonl"):
            try:
                with path.open("rb") as handle:
                    total += sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
            except OSError:
                pass
        return total
    if step == "load":  # rows target-postgres has committed into the day's load schema so far
        from .landing import load_schema_name
        from .warehouse import connect

        try:
            with connect(settings) as conn:
                row = conn.execute(
                    "select coalesce(sum(n_tup_ins), 0) from pg_stat_user_tables where schemaname = %s", (load_schema_name(day),)
                ).fetchone()
        except Exception:  # progress is best effort: the step's own errors are reported by the step
            return None
        return int(row[0]) if row else None
    return None


def _short(line: str) -> str | None:
    line = strip_log_prefix(line)
    metric = re.search(r'"value":\s*(\d+).*"stream":\s*"([^"]+)"', line)
    if "METRIC" in line and metric:
        if metric.group(1) == "0":
            return None  # a stream's count before it starts: not progress, and misleading before a failure
        return f"{metric.group(2)}: {metric.group(1)} rows"
    return line[:160]


def _redact(line: str, settings: Settings) -> str:
    for secret in (settings.source.password, settings.warehouse.password):
        if secret:
            line = line.replace(secret, "********")
    return line


def execute(
    settings: Settings,
    day: dt.date,
    steps: list[str],
    wait_seconds: float = 0,
    quiet: bool = False,
    whole_day: bool = False,
) -> list[StepResult]:
    """Run `steps` for `day` in order, holding the day's locks throughout; stops at the first
    failure. The first extract and the steps after step 1 run chained in one `meltano run` (see
    run_steps), the other extracts beside it as their own jobs; the chain's next step (load)
    waits in its open task until they end (locks.wait_for_step1) and does not start if one
    failed. `whole_day` (a backfill's day): every step in one `meltano run`, the extracts one
    after the other (the backfill runs days side by side instead), each step announced."""
    if settings.embedded:
        from .database import EmbeddedPostgres

        EmbeddedPostgres(settings).up(sync_passwords=False)
    if "extract-csv" in steps and settings.csv_path == settings.source_dir / "order_details.csv":
        from . import sourcedata

        sourcedata.ensure(settings, "order_details.csv")

    with ExitStack() as stack:
        locks.acquire_day(stack, settings.data_dir, day, steps, wait_seconds)
        extracts = [s for s in steps if s.startswith("extract-")]
        beside = extracts[1:] if not whole_day else []
        chain = [s for s in steps if s not in beside]
        if not beside:
            return run_steps(settings, chain, day, quiet, announce=whole_day)
        step1_failed = threading.Event()
        # the step-1 lock is settled and released before the pool waits for the chain, whatever
        # happens: a job that raised or did not succeed is a failure, so load does not start
        with ThreadPoolExecutor(len(beside) + 1) as pool, ExitStack() as step1:
            fd = locks.hold_step1(step1, settings.data_dir, day)
            side = {step: pool.submit(run_step, settings, step, day, quiet) for step in beside}
            chained = pool.submit(run_steps, settings, chain, day, quiet, False, step1_failed)
            try:
                side_results = [future.result() for future in side.values()]
            finally:
                wait(side.values())
                failed = [step for step, future in side.items() if future.exception() is not None or not future.result().ok]
                if failed:
                    step1_failed.set()
                locks.settle_step1(fd, failed)
                step1.close()  # the chain's load may open now
            chain_results = chained.result()
    return chain_results[:1] + side_results + (chain_results[1:] if not step1_failed.is_set() else [])


def install_signal_handlers() -> None:
    """SIGTERM/SIGINT/SIGHUP (Airflow's timeout, make's Ctrl-C): stop the running jobs, then exit."""

    def handler(signum: int, frame: object) -> None:
        stop_all()
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)
