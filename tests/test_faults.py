"""Fault injection on real components. Each case checks the same promises:

(a) no step reports a success it did not earn, (b) nothing landed, loaded or exported is partial,
(c) earlier good days are untouched, (d) the error names the step and the cause, (e) rerunning the
printed command completes the day with results byte-identical to a clean run.

SIGKILL faults use the fault points of `northwind_elt.faults` (inside the writes) or kill the
whole process group mid-run; disk faults use a real tmpfs that is full or read-only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, Project

GOOD = "2024-03-01"  # a complete day that no fault may touch
DAY = "2024-03-02"  # the day the faults hit


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "/." not in f"/{p.relative_to(folder)}"
    }


def _day_state(project: Project, day: str) -> dict[str, object]:
    """Everything a day left behind: landed files, raw rows, mart rows, result files."""
    mart = project.sql("select to_regclass('marts.orders_details') is not null")[0][0]
    return {
        "landed": project.day_files(day),
        "raw": project.raw_snapshot(day),
        "mart": project.sql("select * from marts.orders_details where snapshot_date = %s order by 2, 3", (day,)) if mart else [],
        "output": _tree(project.data_dir / "output" / day) if (project.data_dir / "output" / day).exists() else {},
    }


@pytest.fixture(scope="module")
def clean(project: Project) -> dict[str, object]:
    """Two clean days; DAY's state is the reference every recovered run must reproduce."""
    project.make("pipeline", f"DATE={GOOD}", check=True)
    project.make("pipeline", f"DATE={DAY}", check=True)
    return {"good": _day_state(project, GOOD), "day": _day_state(project, DAY)}


def _status(project: Project, day: str) -> dict[str, str]:
    output = project.make("status", f"DATE={day}").stdout
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s+(extract-postgres|extract-csv|load|transform|export)\s+(\S+)", output, re.M)}


def _recover(project: Project, result: subprocess.CompletedProcess[str], clean: dict[str, object]) -> None:
    """Run the commands the failure printed; the day must end as the clean run left it."""
    commands = re.findall(r"^\s+(?:resume|then):\s+(make .+)$", result.stderr, re.M)
    assert commands, result.stderr
    for command in commands:
        project.run(*command.split(), check=True)
    assert _status(project, DAY) == dict.fromkeys(["extract-postgres", "extract-csv", "load", "transform", "export"], "succeeded")
    assert _day_state(project, DAY) == clean["day"]
    assert _day_state(project, GOOD) == clean["good"]


@pytest.mark.parametrize(
    ("step", "fault"),
    [
        ("load", "commit-load"),  # inside the commit transaction
        ("export", "export"),  # files written, not yet renamed into place
    ],
)
def test_sigkill_mid_write(project: Project, clean: dict[str, object], step: str, fault: str) -> None:
    """(The extracts' writes are killed in test_a_failed_extract_in_make_pipeline_stops_it_before_load.)"""
    result = project.make(step, f"DATE={DAY}", env={"NWELT_FAULT": fault})
    assert result.returncode != 0
    assert f"FAILED: step {step} for {DAY}" in result.stderr  # (d)
    assert _status(project, DAY)[step] == "failed"  # (a)
    state = _day_state(project, DAY)
    assert state["raw"] == clean["day"]["raw"] and state["output"] == clean["day"]["output"]  # (b)
    assert _day_state(project, GOOD) == clean["good"]  # (c)
    _recover(project, result, clean)  # (e)


@pytest.mark.parametrize(
    ("step", "fault"),
    [("extract-postgres", "publish-postgres"), ("extract-csv", "publish-csv")],  # after the first table folder is swapped in
)
def test_a_failed_extract_in_make_pipeline_stops_it_before_load(project: Project, clean: dict[str, object], step: str, fault: str) -> None:
    """SIGKILL in the middle of an extract's publish, in `make pipeline`, which runs the two
    extract jobs side by side: the other extract finishes, load never starts (no run recorded),
    the failure names the extract, a load started by hand refuses naming it, and the printed
    commands restore the day."""
    count = "select count(*) from ops.runs where day = %s and step = 'load'"
    loads = project.sql(count, (DAY,))
    result = project.make("pipeline", f"DATE={DAY}", env={"NWELT_FAULT": fault})
    assert result.returncode != 0
    assert f"FAILED: step {step} for {DAY}" in result.stderr  # (d)
    other = "extract-csv" if step == "extract-postgres" else "extract-postgres"
    states = _status(project, DAY)
    assert states[step] == "failed" and states[other] == "succeeded", states  # (a)
    assert project.sql(count, (DAY,)) == loads
    assert not (project.data_dir / step.removeprefix("extract-") / "_manifests" / f"{DAY}.json").exists()  # (b)
    state = _day_state(project, DAY)
    assert all(state[part] == clean["day"][part] for part in ("raw", "mart", "output"))  # (b): nothing loaded
    refused = project.make("load", f"DATE={DAY}")
    assert refused.returncode != 0 and f"{step} has not succeeded for {DAY}" in refused.stderr
    assert _day_state(project, GOOD) == clean["good"]  # (c)
    _recover(project, result, clean)  # (e)


def test_sigkill_mid_transform(project: Project, clean: dict[str, object]) -> None:
    env = {**os.environ, **project.env}
    process = subprocess.Popen(
        ["make", "--no-print-directory", "transform", f"DATE={DAY}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    logs = project.data_dir / "logs" / DAY
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        newest = max(logs.glob("transform-*.log"), key=lambda p: p.stat().st_mtime, default=None)
        if newest and "orders_details" in newest.read_text(errors="ignore"):
            break
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert _status(project, DAY)["transform"] in ("interrupted", "succeeded")
    assert _day_state(project, DAY)["mart"] == clean["day"]["mart"]  # old day or new day, never half
    project.make("pipeline", f"DATE={DAY}", "STEP=transform", check=True)
    assert _day_state(project, DAY) == clean["day"]


def test_source_refusing_the_password(project: Project, clean: dict[str, object]) -> None:
    result = project.make("extract-postgres", f"DATE={DAY}", env={"SOURCE_PG_PASSWORD": "not-the-password"})
    assert result.returncode != 0
    assert "password authentication failed for user" in result.stderr
    assert _day_state(project, DAY) == clean["day"]
    _recover(project, result, clean)


@pytest.mark.parametrize("step", ["load", "transform", "export"])
def test_warehouse_down(project: Project, clean: dict[str, object], step: str) -> None:
    result = project.make(step, f"DATE={DAY}", env={"WAREHOUSE_PG_PORT": "1"})
    assert result.returncode != 0
    cause = result.stderr.split("cause:")[1].splitlines()[0]
    assert "127.0.0.1" in cause and ("port 1" in cause or ":1/" in cause), cause
    assert _day_state(project, DAY) == clean["day"]
    _recover(project, result, clean)


@contextlib.contextmanager
def _tmpfs(path: Path, size_kib: int, readonly: bool = False) -> Iterator[Path]:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("disk-fault tests need root to mount a tmpfs")
        pytest.skip("disk-fault tests need root to mount a tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)], check=True)
    try:
        if readonly:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_disk_full_during_step1(project: Project, clean: dict[str, object]) -> None:
    with _tmpfs(project.settings.staging_root, 64):  # where target-jsonl writes
        result = project.make("extract-postgres", f"DATE={DAY}")
    assert result.returncode != 0
    assert "No space left on device" in result.stderr
    assert _day_state(project, DAY) == clean["day"]
    _recover(project, result, clean)


def test_readonly_data_folder_during_step1(project: Project, clean: dict[str, object]) -> None:
    with _tmpfs(project.settings.staging_root, 1024, readonly=True):
        result = project.make("extract-csv", f"DATE={DAY}")
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    assert _day_state(project, DAY) == clean["day"]
    _recover(project, result, clean)


@pytest.mark.parametrize("readonly", [False, True], ids=["disk-full", "read-only"])
def test_disk_fault_during_export(project: Project, clean: dict[str, object], readonly: bool) -> None:
    output = project.data_dir / "output"
    saved = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    size = sum(len(b) for b in saved.values())
    with _tmpfs(output, size // 1024 + 64, readonly=False):
        for path, content in saved.items():  # the earlier results, on the small disk
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        if readonly:
            subprocess.run(["mount", "-o", "remount,ro", str(output)], check=True)
        result = project.make("export", f"DATE={DAY}")
        assert result.returncode != 0
        assert ("Read-only file system" if readonly else "No space left on device") in result.stderr
        assert _tree(output / DAY) == clean["day"]["output"]
        assert _tree(output / GOOD) == clean["good"]["output"]
    for path, content in saved.items():  # back on the real disk
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    _recover(project, result, clean)


def test_landed_file_damaged_after_step1(project: Project, clean: dict[str, object]) -> None:
    """An edited landed file, refused by the load and restored by the commands it names. Each kind of
    damage is refused in unit/test_landing.py; edits, deletions and additions end to end in
    test_load.py (::test_gate_refuses_any_edit_deletion_or_added_file, ::test_gate_refuses_a_file_altered_after_step1)."""
    path = project.data_dir / f"csv/order_details/{DAY}/order_details.jsonl"
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"quantity": 12', b'"quantity": 13', 1))
    result = project.make("load", f"DATE={DAY}")
    assert result.returncode != 0
    assert f"make extract-csv DATE={DAY}" in result.stderr
    assert _day_state(project, DAY)["raw"] == clean["day"]["raw"]
    project.make("extract-csv", f"DATE={DAY}", check=True)
    assert path.read_bytes() == original
    project.make("pipeline", f"DATE={DAY}", "STEP=load", check=True)
    assert _day_state(project, DAY) == clean["day"]


def test_full_disk_when_the_step_log_is_opened(project: Project, clean: dict[str, object]) -> None:
    logs = project.data_dir / "logs"
    saved = {p: p.read_bytes() for p in logs.rglob("*") if p.is_file()}
    with _tmpfs(logs, 64):
        try:  # fill the disk (blocks, or inodes: a tiny tmpfs has few)
            with (logs / "filler").open("wb") as filler:
                while True:
                    filler.write(b"x" * 4096)
                    filler.flush()
        except OSError:
            pass
        result = project.make("extract-csv", f"DATE={DAY}")
    for path, content in saved.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"cannot write the log of extract-csv for {DAY}" in result.stderr and "No space left on device" in result.stderr
    assert _day_state(project, DAY) == clean["day"]


def test_clear_errors_for_a_damaged_ledger_a_data_dir_file_and_bad_dates(project: Project, tmp_path: Path) -> None:
    before = project.sql("select count(*) from ops.runs")
    project.sql("alter table ops.runs rename column outcome to outcome_damaged")  # changed by hand
    try:
        result = project.make("status", f"DATE={DAY}")
    finally:
        project.sql("alter table ops.runs rename column outcome_damaged to outcome")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "LedgerError: the run ledger ops.runs on " in result.stderr and "it is kept as it is" in result.stderr
    assert project.sql("select count(*) from ops.runs") == before  # never emptied

    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    result = project.make("pipeline", f"DATE={DAY}", env={"DATA_DIR": str(a_file)})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"DATA_DIR={a_file} is a file, not a folder" in result.stderr

    result = project.make("backfill", "START=2024-13-01", "END=2024-01-02")
    assert result.returncode != 0 and "START='2024-13-01' is not a date" in result.stderr
    result = project.make("backfill", "START=2024-01-02", "END=2024-01-01")
    assert result.returncode != 0 and "END=2024-01-01 is before START=2024-01-02" in result.stderr
