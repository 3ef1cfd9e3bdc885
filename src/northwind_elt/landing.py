"""The landing layout of step 1: the only module that knows where a day's files live.

    DATA_DIR/{source}/{table}/{D}/{table}.jsonl    records, one JSON object a line, sorted by key
    DATA_DIR/{source}/{table}/{D}/_schema.json      the Singer stream schema and key properties
    DATA_DIR/{source}/{table}/{D}/_manifest.json    row count, byte size and SHA-256 of the file
    DATA_DIR/{source}/{table}/{D}/_SUCCESS          written last
    DATA_DIR/{source}/_manifests/{D}.json           the task's success marker: every table of the
                                                    task with its rows and SHA-256, written last

target-jsonl writes into DATA_DIR/.staging/{tap namespace}/{D}/ (it appends and drops SCHEMA
messages); `publish` turns that into the layout above: every table folder is assembled and checked
beside its final place first; then the task marker is removed, the folders are renamed in, and
the marker is rewritten last, so a crash leaves either no marker (step 2 refuses) or a
complete, consistent day, and an error before the swap leaves the previous day untouched.
Nothing here holds a timestamp or run id, so a rerun of a day writes byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import faults
from .atomic import atomic_path, replace_dir, write_json


@dataclass(frozen=True)
class Source:
    name: str  # folder under DATA_DIR
    step: str  # the step (and make target) that writes it
    tap: str  # the Meltano extractor
    namespace: str  # the extractor's namespace, used by target-jsonl's staging path

    def rerun(self, day: dt.date) -> str:
        return f"make {self.step} DATE={day.isoformat()}"


SOURCES: dict[str, Source] = {
    "postgres": Source("postgres", "extract-postgres", "tap-postgres", "tap_postgres"),
    "csv": Source("csv", "extract-csv", "tap-northwind-csv", "tap_northwind_csv"),
}

SORT_CHUNK_ROWS = 200_000


from .errors import GateError, PublishError  # noqa: E402  (re-exported: landing's failures)


def table_name(stream: str) -> str:
    """tap-postgres names streams `<schema>-<table>`; the landing layout uses the table."""
    return stream.split("-", 1)[1] if "-" in stream else stream


class Landing:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    # -- paths -----------------------------------------------------------------------------
    def staging_dir(self, source: Source, day: dt.date) -> Path:
        return self.data_dir / ".staging" / source.namespace / day.isoformat()

    def day_dir(self, source: Source, table: str, day: dt.date) -> Path:
        return self.data_dir / source.name / table / day.isoformat()

    def records_file(self, source: Source, table: str, day: dt.date) -> Path:
        return self.day_dir(source, table, day) / f"{table}.jsonl"

    def task_marker(self, source: Source, day: dt.date) -> Path:
        return self.data_dir / source.name / "_manifests" / f"{day.isoformat()}.json"

    # -- step 1 ----------------------------------------------------------------------------
    def stage(self, source: Source, day: dt.date) -> Path:
        """Empty the staging folder target-jsonl will append to (left over by a crashed run)."""
        staging = self.staging_dir(source, day)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return staging

    def publish(self, source: Source, day: dt.date, catalog: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Publish the staged output of `source` for `day`; returns {table: {rows, sha256}}."""
        staging = self.staging_dir(source, day)
        if not staging.is_dir():
            raise PublishError(f"nothing staged at {staging}: run the whole step again ({source.rerun(day)})")
        streams = [s for s in catalog.get("streams", []) if _selected(s)]
        if not streams:
            raise PublishError(f"the {source.tap} catalog lists no streams: check the source and rerun {source.rerun(day)}")
        built: list[tuple[Path, Path]] = []  # (building folder, final folder)
        tables: dict[str, dict[str, Any]] = {}
        try:
            # 1. build and check every table folder beside its final place; nothing is replaced yet,
            #    so an error here (a duplicate key, a full disk) leaves the previous day intact
            for stream in sorted(streams, key=lambda s: s["tap_stream_id"]):
                table = table_name(stream["stream"])
                final = self.day_dir(source, table, day)
                building = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.building")
                built.append((building, final))
                tables[table] = self._build_table(source, day, table, stream, staging / f"{stream['stream']}.jsonl", building)
            # 2. swap: invalidate the marker, rename each folder in, write the marker last
            marker = self.task_marker(source, day)
            marker.unlink(missing_ok=True)
            for building, final in built:
                replace_dir(building, final)
                faults.point(f"publish-{source.name}", day)  # some tables replaced, marker not yet written
            write_json(marker, {"day": day.isoformat(), "source": source.name, "step": source.step, "tables": tables})
        finally:
            for building, _ in built:
                shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        return tables

    def _build_table(
        self, source: Source, day: dt.date, table: str, stream: dict[str, Any], staged: Path, building: Path
    ) -> dict[str, Any]:
        keys = list(stream.get("key_properties") or _metadata_keys(stream))
        building.mkdir(parents=True)
        target = building / f"{table}.jsonl"
        what = f"{source.step} {table} for {day}"
        rows, digest, size = _write_sorted(staged, target, keys, building, what)
        entry = {"rows": rows, "sha256": digest}
        schema = {"stream": table, "key_properties": keys, "schema": stream["schema"]}
        write_json(building / "_schema.json", schema, sort_keys=False)  # column order matters
        write_json(building / "_manifest.json", {"table": table, "file": target.name, "bytes": size, **entry})
        write_json(building / "_SUCCESS", entry)
        return entry

    # -- the gate (read by step 2 and by status) ---------------------------------------------
    def verify(self, source: Source, day: dt.date) -> dict[str, dict[str, Any]]:
        """Check that `source`'s task succeeded for `day` and its files are intact.

        Returns {table: {rows, sha256, dir}}; raises GateError naming the task and the rerun.
        """
        marker = self.task_marker(source, day)
        if not marker.exists():
            raise GateError(
                f"{source.step} has not succeeded for {day} (no success marker {marker}): run {source.rerun(day)}"
            )
        recorded = json.loads(marker.read_text())["tables"]
        result: dict[str, dict[str, Any]] = {}
        for table, expected in recorded.items():
            folder = self.day_dir(source, table, day)
            path = folder / f"{table}.jsonl"
            problem = None
            if not (folder / "_SUCCESS").exists() or not path.exists():
                problem = f"{path} or its success marker is missing"
            else:
                rows, digest = _count_and_hash(path)
                if digest != expected["sha256"] or rows != expected["rows"]:
                    problem = (
                        f"{path} changed after {source.step} wrote it "
                        f"({rows} rows, sha256 {digest[:12]}…; recorded {expected['rows']} rows, {expected['sha256'][:12]}…)"
                    )
            if problem:
                raise GateError(f"{source.step} output for {day} is broken: {problem}: run {source.rerun(day)}")
            result[table] = {**expected, "dir": folder}
        return result

    def schema(self, source: Source, table: str, day: dt.date) -> dict[str, Any]:
        stored: dict[str, Any] = json.loads((self.day_dir(source, table, day) / "_schema.json").read_text())
        return stored

    def check_day(self, day: dt.date) -> dict[tuple[Source, str], dict[str, Any]]:
        """The gate of step 2: both step-1 tasks succeeded for `day`, files intact.

        Returns {(source, table): {rows, sha256, dir}}; raises one GateError naming every
        missing or broken task and its rerun command.
        """
        found: dict[tuple[Source, str], dict[str, Any]] = {}
        problems = []
        for source in SOURCES.values():
            try:
                found.update({(source, table): info for table, info in self.verify(source, day).items()})
            except GateError as exc:
                problems.append(str(exc))
        if problems:
            raise GateError(f"step 2 (load) refuses to run for {day}: " + "; ".join(problems))
        return found

    def day_digest(self, day: dt.date) -> str:
        """What a load of `day` loaded: a digest of both tasks' markers (which record every landed
        file), after the gate has checked the files against them."""
        self.check_day(day)
        digest = hashlib.sha256()
        for source in SOURCES.values():
            digest.update(self.task_marker(source, day).read_bytes())
        return digest.hexdigest()


def _selected(stream: dict[str, Any]) -> bool:
    for entry in stream.get("metadata", []):
        if entry.get("breadcrumb") == []:
            meta = entry.get("metadata", {})
            return meta.get("selected", meta.get("selected-by-default", True)) is not False
    return True


def _metadata_keys(stream: dict[str, Any]) -> list[str]:
    for entry in stream.get("metadata", []):
        if entry.get("breadcrumb") == []:
            return list(entry.get("metadata", {}).get("table-key-properties") or [])
    return []


def _count_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    rows = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            rows += block.count(b"\n")
    return rows, digest.hexdigest()


_JSON = json.JSONDecoder(parse_float=Decimal)  # one decoder: json.loads(..., parse_float=) builds one per call


def _sort_key(keys: list[str]):  # type: ignore[no-untyped-def]
    """Order by the key values (typed, nulls last), then by the whole line: a total order.

    The key of a line is the tuple (key values, line): it ends with the line itself."""

    def key(line: bytes) -> tuple[Any, ...]:
        if not keys:
            return ((), line)
        record = _JSON.decode(line.decode())
        values = tuple((record.get(k) is None, record.get(k) if record.get(k) is not None else 0) for k in keys)
        return (values, line)

    return key


def _sorted_runs(lines: Iterable[bytes], keys: list[str], scratch: Path) -> Iterator[tuple[Any, bytes]]:
    """Sort lines by key with bounded memory: sorted runs of SORT_CHUNK_ROWS, spilled and merged.

    Yields (key values, line); each line is parsed once (and once more if its run was spilled)."""
    key = _sort_key(keys)
    runs: list[Path] = []
    chunk: list[tuple[Any, bytes]] = []
    for line in lines:
        chunk.append(key(line))
        if len(chunk) >= SORT_CHUNK_ROWS:
            chunk.sort()
            run = Path(tempfile.mkstemp(dir=scratch, suffix=".run")[1])
            run.write_bytes(b"".join(line for _, line in chunk))
            runs.append(run)
            chunk = []
    chunk.sort()
    if not runs:
        yield from chunk
        return
    handles = [run.open("rb") for run in runs]
    try:
        yield from heapq.merge(*(map(key, handle) for handle in handles), iter(chunk))
    finally:
        for handle in handles:
            handle.close()
        for run in runs:
            run.unlink(missing_ok=True)


def _write_sorted(staged: Path, target: Path, keys: list[str], scratch: Path, what: str) -> tuple[int, str, int]:
    """Write `staged` sorted into `target`; refuse duplicate keys (they would be merged on load)."""
    digest = hashlib.sha256()
    rows = size = 0
    previous: tuple[Any, ...] | None = None

    def lines() -> Iterator[bytes]:
        if not staged.exists():  # target-jsonl writes no file for a stream without records
            return
        with staged.open("rb") as handle:
            for line in handle:
                yield line if line.endswith(b"\n") else line + b"\n"

    with atomic_path(target) as tmp, tmp.open("wb", buffering=1 << 20) as out:
        for current, line in _sorted_runs(lines(), keys, scratch):
            if keys:
                if current == previous:
                    shown = ", ".join(f"{k}={v[1]}" for k, v in zip(keys, current, strict=True))
                    raise PublishError(
                        f"{what}: duplicate key ({shown}); a day must hold each key once "
                        "(policy: the day is rejected, nothing is published): fix the source and rerun"
                    )
                previous = current
            out.write(line)
            digest.update(line)
            rows += 1
            size += len(line)
    return rows, digest.hexdigest(), size


def load_schema_name(day: dt.date) -> str:
    """The warehouse schema step 2 writes a day into before committing it to the raw layer."""
    return f"load_{day:%Y%m%d}"
