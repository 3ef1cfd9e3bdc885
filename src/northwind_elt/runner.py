"""Running a day's steps as their Meltano jobs (`meltano run <step>`, RUN_DATE=D) for make, nwelt,
Airflow and the backfill. The jobs' glue tasks (tasks.py) lock, gate and record; the runner adds a
log file per run, progress and heartbeat lines, the cause of a failure, and jobs that die with it."""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext, suppress
from typing import TextIO

from . import console, database, locks, sourcedata
from .causes import find_cause, strip_log_prefix
from .console import StepResult
from .errors import ConfigError, LedgerError, LockBusy
from .landing import Landing, source_of
from .ledger import Ledger
from .registry import NAMES, get
from .settings import Settings, job, meltano_exe

# lines of a Meltano run worth showing live (the full output is in the log file)
PROGRESS = re.compile(
    r"(committed \S+: \d+ rows|exported \d+ rows|schema change in .+|published \S+: \d+ rows|waiting: .+|"
    r"METRIC: .*\"record_count\".*|\d+ of \d+ (OK created|ERROR|FAIL)\b.*|Done\. PASS=.*)"
)

_children: set[subprocess.Popen[str]] = set()  # the Meltano jobs this process runs: stopped with it
_children_lock, _stopping = threading.RLock(), threading.Event()  # _stopping: a job started after stop_all dies


def die_with_parent() -> None:
    """Get SIGKILL when the parent process dies (Linux PR_SET_PDEATHSIG), at once if it already has:
    a Meltano job dies with the nwelt that started it, a glue task (and its commit) with its job. A
    glue task of nwelt's job whose `meltano run` (its process group's leader) died while it started
    up has another parent already: it dies too, before taking any lock."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent or (job() and parent != os.getpgrp()):
        os.kill(os.getpid(), signal.SIGKILL)


def _kill(job: subprocess.Popen[str]) -> None:
    """Kill a Meltano job with its plugins (dbt, taps, targets): its process group."""
    with suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGKILL)


def stop_all(signum: int, frame: object) -> None:
    """The handler of SIGTERM, SIGINT and SIGHUP (Airflow's timeout, make's Ctrl-C): kill the Meltano
    jobs this process runs (their lock holders end with them), then exit."""
    with _children_lock:
        _stopping.set()
        for child in list(_children):
            _kill(child)
    sys.exit(128 + signum)


def run_step(settings: Settings, step: str, day: dt.date, quiet: bool = False) -> StepResult:
    """Run one step's Meltano job for `day`; its result as the ledger recorded it."""
    log_dir = settings.data_dir / "logs" / day.isoformat()
    log_path = log_dir / f"{step}-{dt.datetime.now():%Y%m%dT%H%M%S%f}.log"
    try:  # the log's first line: a full disk or a read-only DATA_DIR fails here, clearly
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"nwelt: {step} for {day}: meltano run {step}\n")
    except OSError as exc:
        raise ConfigError(
            f"cannot write the log of {step} for {day} in {log_dir} ({exc.strerror}): free space or fix DATA_DIR, then rerun"
        ) from None
    token = uuid.uuid4().hex  # finds this job's run in the ledger, whatever pid Meltano had
    env = settings.meltano_env() | {"RUN_DATE": day.isoformat(), "NWELT_JOB": token}
    # --force: the project's locks decide who may run; --no-state-update: a full extract (decisions.md)
    command = [meltano_exe(), f"--environment={settings.meltano_environment}", "run", "--force", "--no-state-update", step]
    try:
        with log_path.open("a") as log:
            try:
                process = subprocess.Popen(
                    command,
                    cwd=settings.root,
                    env=env,
                    stdin=subprocess.DEVNULL,  # a background group reading the terminal would stop
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    preexec_fn=die_with_parent,
                    process_group=0,  # the job's own group: _kill reaches its plugins
                )
            except OSError as exc:
                raise ConfigError(f"cannot start {command[0]} for {step} ({exc.strerror}): run `make setup`, then rerun") from None
            with _children_lock:
                _children.add(process)
                if _stopping.is_set():  # stop_all ran while this job was starting
                    _kill(process)
            try:
                code = _follow(settings, process, log, step, token, quiet)
            finally:
                with _children_lock:
                    _children.discard(process)
                if process.poll() is None:  # the log could not be written: stop the job
                    _kill(process)
                    process.wait()
    except OSError as exc:
        raise ConfigError(f"cannot write the log {log_path} of {step} for {day} ({exc.strerror}): free space, then rerun") from None
    ledger = Ledger(settings)
    try:
        run = ledger.of_job(step, token)
    except LedgerError:  # the warehouse is out of reach: the job's log says why
        run = None
    if run is not None:
        ledger.update(run.run_id, "log_path", str(log_path))
        if run.outcome == "succeeded":
            return StepResult(step, day, True, run.seconds, run.rows, log_path=log_path)
    if run is not None and run.outcome == "failed":
        cause = run.error
    elif code < 0:
        cause = f"the Meltano job {step} was stopped by signal {signal.Signals(-code).name}"
    elif code == 0:
        cause = f"the Meltano job {step} ended without recording success (is meltano.yml's job {step} complete?)"
    else:
        cause = find_cause(log_path.read_text(errors="replace"), step, day)
        if f"port {settings.pg_port} " in cause and (down := database.server_down(settings, Exception(cause))):  # the embedded server's
            cause = f"{down.message}; run make db-up"
    if run is not None and run.outcome != "failed" and code >= 0:  # a stopped job stays interrupted
        ledger.finish(run.run_id, "failed", error=cause)
        run = ledger.of_job(step, token)
    return StepResult(step, day, False, run.seconds if run else None, cause=cause, log_path=log_path)  # the ledger's seconds


def _follow(settings: Settings, process: subprocess.Popen[str], log: TextIO, step: str, token: str, quiet: bool) -> int:
    """Copy the job's output into its log and, unless `quiet`, show its progress; its exit code."""
    assert process.stdout is not None
    secrets = [s for s in (settings.source.password, settings.warehouse.password) if s]
    last = started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        nonlocal last
        source, begun = source_of(step) if step.startswith("extract-") else None, False
        while not done.wait(min(1.0, settings.heartbeat_seconds)):
            if time.monotonic() - last >= settings.heartbeat_seconds:
                # rows staged so far once the job's run has begun: until it holds its tap's lock, the
                # staging folder is another run's of this checkout
                begun = begun or bool(source and _begun(settings, step, token))
                rows = Landing(settings.data_dir, settings.staging_root).staged_rows(source) if source and begun else None
                so_far = f", {rows} rows so far" if rows is not None else ""
                console.progress(step, f"running for {time.monotonic() - started:.0f} s{so_far}")
                last = time.monotonic()

    beats = threading.Thread(target=heartbeat, daemon=True)
    if not quiet:
        beats.start()
    try:
        for line in process.stdout:
            for secret in secrets:
                line = line.replace(secret, "********")
            log.write(line)
            if not quiet and PROGRESS.search(line) and (short := _short(line)):
                console.progress(step, short)
                last = time.monotonic()
        return process.wait()
    finally:
        done.set()
        if beats.is_alive():  # no line after the step's end
            beats.join()


def _begun(settings: Settings, step: str, token: str) -> bool:
    try:
        return Ledger(settings).of_job(step, token) is not None
    except LedgerError:
        return False


def _short(line: str) -> str | None:
    line = strip_log_prefix(line)
    metric = re.search(r'"value":\s*(\d+).*"stream":\s*"([^"]+)"', line)
    if "METRIC" in line and metric:
        return None if metric.group(1) == "0" else f"{metric.group(2)}: {metric.group(1)} rows"
    return line[:160]


def execute(settings: Settings, day: dt.date, steps: list[str], quiet: bool = False, announce: bool = False) -> list[StepResult]:
    """Run `steps` for `day`: the step-1 jobs side by side, then each later step's job in order;
    stops at the first failure. `announce`: a line when each step starts and ends (a backfill)."""
    database.ensure_running(settings)
    if "extract-csv" in steps and settings.csv_path == settings.source_dir / "order_details.csv":
        sourcedata.ensure(settings, "order_details.csv")

    def one(step: str) -> StepResult:
        if announce:
            console.step_started(step, day)
        result = run_step(settings, step, day, quiet)
        if announce:
            console.step_ended(result)
        return result

    first = [s for s in steps if not get(s).upstream]
    with locks.whole_day(settings, day) if len(steps) > 1 else nullcontext():
        with ThreadPoolExecutor(max(1, len(first))) as pool:
            results = list(pool.map(one, first))
        for step in steps[len(first) :]:
            if not all(r.ok for r in results):
                break
            results.append(one(step))
    return results


def install_signal_handlers() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop_all)


def execute_days(settings: Settings, days: list[dt.date]) -> Iterator[list[StepResult]]:
    """Run the whole pipeline for each of `days`, NWELT_BACKFILL_DAYS side by side (each as `make
    pipeline` runs it), yielding each day's results in day order ([]: another run held the day); a
    failed day does not stop the others. When the caller stops, no day that has not started starts."""
    started, done, done_lock = time.monotonic(), 0, threading.Lock()

    def run(day: dt.date) -> list[StepResult]:
        nonlocal done
        busy = None
        try:
            results = execute(settings, day, NAMES, True, True)
        except LockBusy as exc:  # another run has this day: no step of it ran here; go on with the others
            results, busy = [], exc.message
        with done_lock:  # days end in any order: count them as they end
            done += 1
            console.day_finished(day, results, done, len(days), time.monotonic() - started, busy)
        return results

    with ThreadPoolExecutor(min(settings.backfill_days, len(days))) as pool:
        futures = [pool.submit(run, day) for day in days]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
