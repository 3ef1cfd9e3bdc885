"""The landing layout of step 1: the only module that knows where a day's files live.

    DATA_DIR/{source}/{table}/{D}/{table}.jsonl    records, one JSON object a line, sorted by key
    DATA_DIR/{source}/{table}/{D}/_schema.json      the Singer stream schema and key properties
    DATA_DIR/{source}/{table}/{D}/_manifest.json    row count, byte size and SHA-256 of the file
    DATA_DIR/{source}/{table}/{D}/_SUCCESS          written last
    DATA_DIR/{source}/_manifests/{D}.json           the task's success marker, written last: every
                                                    table of the task with its rows, the records'
                                                    SHA-256, and the exact file list of its day
                                                    folder with each file's size and SHA-256

`publish` writes a day (stage, rename, task marker last); the gate (`verify`, `check_day`) trusts
only the task marker, and `schema` parses `_schema.json` only from bytes the marker names. Why:
docs/decisions.md, "Gates" and "Landing (step 1)".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import itertools
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from . import faults
from .atomic import atomic_path, replace_dir, write_json
from .errors import Fix, GateError, PublishError


@dataclass(frozen=True)
class Source:
    name: str  # folder under DATA_DIR
    step: str  # the step (and make target) that writes it
    tap: str  # the Meltano extractor
    namespace: str  # the extractor's namespace, used by target-jsonl's staging path

    def rerun(self, day: dt.date) -> Fix:
        """What rebuilds this source's landing of `day`: its extract step."""
        return Fix(step=self.step, day=day)

    def broken(self, day: dt.date, problem: str) -> GateError:
        """The gate's refusal of this source's landing of `day`, naming its rerun."""
        return GateError(f"{self.step} output for {day} is broken: {problem}", [self.rerun(day)])


SOURCES: dict[str, Source] = {
    "postgres": Source("postgres", "extract-postgres", "tap-postgres", "tap_postgres"),
    "csv": Source("csv", "extract-csv", "tap-northwind-csv", "tap_northwind_csv"),
}


def source_of(step: str) -> Source:
    """The source an extract step lands (extract-postgres: postgres)."""
    return next(source for source in SOURCES.values() if source.step == step)


SORT_CHUNK_ROWS = 200_000
SCHEMA_FILE = "_schema.json"
MARKERS_DIR = "_manifests"


class Landing:
    def __init__(self, data_dir: Path, staging_root: Path | None = None) -> None:
        self.data_dir = data_dir
        # where target-jsonl writes (settings.Settings.staging_root: the project's .meltano/staging)
        self.staging_root = staging_root or data_dir / ".staging"

    # -- paths -----------------------------------------------------------------------------
    def staging_dir(self, source: Source) -> Path:
        """target-jsonl's folder for `source`, whatever the day: a tap runs one day at a time, under its lock."""
        return self.staging_root / source.namespace

    def day_dir(self, source: Source, table: str, day: dt.date) -> Path:
        return self.data_dir / source.name / table / day.isoformat()

    def records_file(self, source: Source, table: str, day: dt.date) -> Path:
        return self.day_dir(source, table, day) / f"{table}.jsonl"

    def task_marker(self, source: Source, day: dt.date) -> Path:
        return self.data_dir / source.name / MARKERS_DIR / f"{day.isoformat()}.json"

    def load_dir(self, day: dt.date) -> Path:
        """The load's private folder for `day`: the verified copies target-postgres reads, and
        their chunks (emptied by the load's gate, removed by its close)."""
        return self.staging_root / "tap_landing" / day.isoformat()

    def verified_copy(self, source: Source, table: str, day: dt.date) -> Path:
        """The copy the load's gate wrote of a landed records file, under a name needing no URL escaping."""
        return self.load_dir(day) / f"{hashlib.sha1(f'{source.name}/{table}'.encode()).hexdigest()[:12]}.jsonl"

    def staged_rows(self, source: Source) -> int:
        """Records a running extract of `source` has staged so far (progress lines)."""
        total = 0
        for path in self.staging_dir(source).glob("*.jsonl"):
            with suppress(OSError), path.open("rb") as handle:
                total += sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        return total

    # -- step 1 ----------------------------------------------------------------------------
    def stage(self, source: Source, day: dt.date) -> Path:
        """Empty the staging folder target-jsonl will append to (left over by a crashed run)."""
        staging = self.staging_dir(source)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return staging

    def publish(self, source: Source, day: dt.date, catalog: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Publish the staged output of `source` for `day`; returns {table: {rows, sha256}}."""
        staging = self.staging_dir(source)
        if not staging.is_dir():
            raise PublishError(f"nothing staged at {staging}: the step must run whole", [source.rerun(day)])
        streams = [s for s in catalog.get("streams", []) if _selected(s)]
        if not streams:
            raise PublishError(f"the {source.tap} catalog lists no streams: check the source", [source.rerun(day)])
        for leftover in (self.data_dir / source.name).glob(f"*/.{day.isoformat()}.*"):  # a killed publish's (day locked)
            _remove(leftover)
        built: list[tuple[Path, Path]] = []  # (building folder, final folder)
        tables: dict[str, dict[str, Any]] = {}
        try:
            # 1. build and check every table folder beside its final place; nothing is replaced yet,
            #    so an error here (a duplicate key, a full disk) leaves the previous day intact
            for stream in sorted(streams, key=lambda s: s["tap_stream_id"]):
                table = stream["stream"].split("-", 1)[-1]  # tap-postgres names streams `<schema>-<table>`
                final = self.day_dir(source, table, day)
                building = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.building")
                built.append((building, final))
                tables[table] = self._build_table(source, day, table, stream, building)
            # 2. swap: invalidate the marker, rename each folder in, write the marker last
            marker = self.task_marker(source, day)
            _remove(marker)
            for building, final in built:
                replace_dir(building, final)
                faults.point(f"publish-{source.name}", day)  # some tables replaced, marker not yet written
            # a table the source no longer has (or a folder someone added): the day is the new set
            for stale in sorted(set(self._table_folders(source, day)) - set(tables)):
                _remove(self.day_dir(source, stale, day))
            write_json(marker, {"day": day.isoformat(), "source": source.name, "step": source.step, "tables": tables})
        finally:
            for building, _ in built:
                shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        return tables

    def _build_table(self, source: Source, day: dt.date, table: str, stream: dict[str, Any], building: Path) -> dict[str, Any]:
        keys = list(stream.get("key_properties") or _stream_metadata(stream).get("table-key-properties") or [])
        building.mkdir(parents=True)
        target = building / f"{table}.jsonl"
        what = f"{source.step} {table} for {day}"
        rows, digest, size = _write_sorted(self.staging_dir(source) / f"{stream['stream']}.jsonl", target, keys, building, what)
        entry = {"rows": rows, "sha256": digest}
        schema = {"stream": table, "key_properties": keys, "schema": stream["schema"]}
        write_json(building / SCHEMA_FILE, schema, sort_keys=False)  # column order matters
        write_json(building / "_manifest.json", {"table": table, "file": target.name, "bytes": size, **entry})
        write_json(building / "_SUCCESS", entry)
        # every file of the folder, exactly as it will be published (the records file is not hashed again)
        files: dict[str, dict[str, Any]] = {}
        for path in sorted(building.iterdir()):
            if path.name == target.name:
                files[path.name] = {"bytes": size, "sha256": digest}
            elif path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                files[path.name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            else:
                raise PublishError(f"{what}: unexpected {path} in the folder being built", [source.rerun(day)])
        return {**entry, "files": files}

    # -- the gate (read by step 2 and by status) ---------------------------------------------
    def verify(self, source: Source, day: dt.date, copy: bool = False) -> dict[str, dict[str, Any]]:
        """Check that `source`'s task succeeded for `day` and every file of the day is as it wrote it:
        the folders, file lists, sizes and SHA-256 its marker records. With `copy`, each records file
        is written to `verified_copy` as it is hashed, so the load reads the very bytes verified.
        Returns {table: {rows, sha256, files, dir}}; raises GateError naming every change and the rerun."""
        recorded = self._recorded(source, day)
        step = source.step
        problems: list[str] = []
        for extra in sorted(set(self._table_folders(source, day)) - set(recorded)):
            problems.append(f"{self.day_dir(source, extra, day)} was added after {step} wrote the day (it holds no such table)")
        result: dict[str, dict[str, Any]] = {}
        for table, expected in recorded.items():
            folder = self.day_dir(source, table, day)
            files: dict[str, dict[str, Any]] = expected["files"]
            try:
                present = set(os.listdir(folder))
            except OSError:
                problems.append(f"{folder} is missing")
                continue
            problems += [f"{folder / name} was added after {step} wrote it" for name in sorted(present - set(files))]
            problems += [f"{folder / name} is missing" for name in sorted(set(files) - present)]
            for name in sorted(present & set(files)):
                path, want = folder / name, files[name]
                if not path.is_file() or path.stat().st_size != want["bytes"]:
                    problems.append(f"{path} changed after {step} wrote it (not a file of {want['bytes']} bytes)")
                    continue
                if name == f"{table}.jsonl":
                    rows, digest = _count_and_hash(path, self.verified_copy(source, table, day) if copy else None)
                    if rows != expected["rows"] or digest != expected["sha256"]:
                        problems.append(
                            f"{path} changed after {step} wrote it ({rows} rows, sha256 {digest[:12]}…; "
                            f"recorded {expected['rows']} rows, {expected['sha256'][:12]}…)"
                        )
                elif hashlib.sha256(path.read_bytes()).hexdigest() != want["sha256"]:
                    problems.append(f"{path} changed after {step} wrote it (sha256 differs from the marker's)")
            result[table] = {**expected, "dir": folder}
        if problems:
            raise source.broken(day, "; ".join(problems))
        return result

    def schema(self, source: Source, table: str, day: dt.date) -> dict[str, Any]:
        """The table's `_schema.json`, parsed from bytes whose SHA-256 is the one the marker records
        (so step 2 reads exactly the schema the gate verified)."""
        path = self.day_dir(source, table, day) / SCHEMA_FILE
        want = self._recorded(source, day).get(table, {}).get("files", {}).get(SCHEMA_FILE)
        data = None
        with suppress(OSError):
            data = path.read_bytes()
        if want is None or data is None or hashlib.sha256(data).hexdigest() != want["sha256"]:
            raise source.broken(day, f"{path} is missing or changed after {source.step} wrote it")
        schema: dict[str, Any] = json.loads(data)
        return schema

    def _recorded(self, source: Source, day: dt.date) -> dict[str, dict[str, Any]]:
        """The tables the task marker of `source` for `day` records, each with its file list."""
        marker = self.task_marker(source, day)
        if not marker.is_file():
            raise GateError(f"{source.step} has not succeeded for {day} (no success marker {marker})", [source.rerun(day)])
        try:
            content = json.loads(marker.read_bytes())
            tables: dict[str, dict[str, Any]] = content["tables"]
            ok = content.get("day") == day.isoformat() and content.get("source") == source.name
            ok = ok and all(isinstance(t.get("files"), dict) and isinstance(t.get("rows"), int) for t in tables.values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise source.broken(day, f"the success marker {marker} is unreadable, is not this day's, or predates per-file checksums")
        return tables

    def _table_folders(self, source: Source, day: dt.date) -> list[str]:
        """Every folder DATA_DIR/{source}/*/{D} that exists (a table of the day, recorded or not)."""
        try:
            entries = os.listdir(self.data_dir / source.name)
        except OSError:
            return []
        return [t for t in entries if t != MARKERS_DIR and os.path.lexists(self.day_dir(source, t, day))]

    def check_day(self, day: dt.date, verify: bool = True, copy: bool = False) -> dict[tuple[Source, str], dict[str, Any]]:
        """The gate of step 2: both step-1 tasks succeeded for `day`, their files intact (`verify`,
        `copy`: see `verify`; without `verify`, what the markers record, once the gate has run).
        Returns {(source, table): {rows, sha256, dir}}; raises one GateError naming every missing
        or broken task and its rerun command."""
        found: dict[tuple[Source, str], dict[str, Any]] = {}
        problems: list[GateError] = []
        if copy:  # a fresh folder: no copy or chunk of an earlier load of the day
            shutil.rmtree(self.load_dir(day), ignore_errors=True)
            self.load_dir(day).mkdir(parents=True)
        for source in SOURCES.values():
            try:
                if verify:
                    tables = self.verify(source, day, copy)
                else:
                    tables = {t: {**e, "dir": self.day_dir(source, t, day)} for t, e in self._recorded(source, day).items()}
                found.update({(source, table): info for table, info in tables.items()})
            except GateError as exc:
                problems.append(exc)
        if problems:
            raise GateError(
                f"step 2 (load) refuses to run for {day}: " + "; ".join(p.message for p in problems),
                [fix for p in problems for fix in p.fixes],
            )
        return found

    def _marker(self, source: Source, day: dt.date) -> bytes | None:
        """The task marker's bytes; None if there is no marker file (a folder or FIFO there is not read)."""
        path = self.task_marker(source, day)
        return path.read_bytes() if path.is_file() else None

    def marker_checksum(self, source: Source, day: dt.date) -> str | None:
        """SHA-256 of `source`'s task marker for `day` (None: no marker): what the extract's close
        records in the ledger, and what the load's gate finds there."""
        marker = self._marker(source, day)
        return None if marker is None else hashlib.sha256(marker).hexdigest()

    def landed_checksum(self, day: dt.date) -> str | None:
        """SHA-256 of day D as this DATA_DIR landed it: the bytes of both task markers, which record
        every landed file (None if a task has no marker for D). The load and the mart build record
        it, transform and export compare it (docs/decisions.md, "Provenance in side tables")."""
        digest = hashlib.sha256()
        for name, source in sorted(SOURCES.items()):
            if (marker := self._marker(source, day)) is None:
                return None
            digest.update(f"{name}\0{len(marker)}\0".encode())
            digest.update(marker)
        return digest.hexdigest()


def _remove(path: Path) -> None:
    """Remove what is at `path`, a folder (not through a link) or anything else; nothing: fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _stream_metadata(stream: dict[str, Any]) -> dict[str, Any]:
    """The catalog metadata of the stream itself (breadcrumb []), not of one of its properties."""
    return next((entry.get("metadata", {}) for entry in stream.get("metadata", []) if entry.get("breadcrumb") == []), {})


def _selected(stream: dict[str, Any]) -> bool:
    meta = _stream_metadata(stream)
    return meta.get("selected", meta.get("selected-by-default", True)) is not False


def _count_and_hash(path: Path, copy: Path | None = None) -> tuple[int, str]:
    """Rows and SHA-256 of a records file, read once (and written to `copy` as it is read)."""
    digest = hashlib.sha256()
    rows = 0
    with path.open("rb") as handle, open(copy or os.devnull, "wb") as out:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            rows += block.count(b"\n")
            out.write(block)
    return rows, digest.hexdigest()


def _key_reader(keys: list[str]) -> Callable[[bytes], tuple[Any, ...]]:
    """The values of `keys` in a JSON line (a missing one as null, a number with a point as Decimal).
    Only those fields are decoded, unless a name holds a character msgspec cannot match by."""
    names = {f"k{i}": name for i, name in enumerate(keys)}
    try:
        struct = msgspec.defstruct("Key", [(n, Any, None) for n in names], rename=names)
    except ValueError:  # a double quote, a backslash or a control character in a name
        whole = msgspec.json.Decoder(dict[str, Any], float_hook=Decimal).decode
        return lambda line: tuple(map(whole(line).get, keys))
    decode = msgspec.json.Decoder(struct, float_hook=Decimal).decode
    return lambda line: msgspec.structs.astuple(decode(line))


def _sorted_runs(lines: Iterable[bytes], keys: list[str], scratch: Path, what: str) -> Iterator[tuple[Any, bytes]]:
    """Sort lines with bounded memory (runs of SORT_CHUNK_ROWS, spilled and merged), yielding (key
    values, line): by key, then by the whole line, a total order. Each line's key is read once (and
    once more if its run was spilled); a null in a key is refused, as raw's primary key would."""
    read = _key_reader(keys)

    def key(line: bytes) -> tuple[Any, bytes]:
        try:
            values = read(line) if keys else ()
        except msgspec.DecodeError as exc:  # target-jsonl wrote it: a broken write, a full disk
            raise PublishError(f"{what}: a staged line is not a JSON record ({exc}): rerun the step") from None
        if None in values:
            shown = ", ".join(f"{k}={'null' if v is None else v}" for k, v in zip(keys, values, strict=True))
            raise PublishError(f"{what}: a key is null ({shown}); a day's keys are never null: fix the source and rerun")
        return values, line

    runs: list[Path] = []
    edges: list[tuple[Any, Any]] = []  # the first and the last item of each sorted run
    chunk: list[tuple[Any, bytes]] = []
    for line in lines:
        chunk.append(key(line))
        if len(chunk) >= SORT_CHUNK_ROWS:
            chunk.sort()
            fd, name = tempfile.mkstemp(dir=scratch, suffix=".run")
            with os.fdopen(fd, "wb") as spill:
                spill.write(b"".join(line for _, line in chunk))
            runs.append(Path(name))
            edges.append((chunk[0], chunk[-1]))
            chunk = []
    chunk.sort()
    if not runs:
        yield from chunk
        return
    edges += [(chunk[0], chunk[-1])] if chunk else []
    handles = [run.open("rb") for run in runs]
    try:
        parts = [*(map(key, handle) for handle in handles), iter(chunk)]
        # runs that do not overlap (a file that came in key order) follow each other: no merge
        in_order = all(before[1] < after[0] for before, after in itertools.pairwise(edges))
        yield from itertools.chain(*parts) if in_order else heapq.merge(*parts)
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
        for current, line in _sorted_runs(lines(), keys, scratch, what):
            if keys:
                if current == previous:
                    shown = ", ".join(f"{k}={v}" for k, v in zip(keys, current, strict=True))
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


# Step 2 moves decimal columns as text: target-postgres's COPY path (`use_copy`) sends a DECIMAL
# column through a float (SQLAlchemy's bind processor) and loses digits; text goes byte for byte.
# tap-landing declares every `number` column a string, and `warehouse.commit` casts it back: the
# raw layer stays numeric, with the landed text's exact value.
def decimal_columns(schema: dict[str, Any]) -> set[str]:
    """The columns a landed stream schema types as `number` (JSON decimals)."""
    return {name for name, prop in schema.get("properties", {}).items() if "number" in _types(prop)}


def load_stream_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The landed stream schema as step 2 declares it to target-postgres: decimals as strings,
    every column under its `load_column_name`."""
    properties = dict(schema.get("properties", {}))
    for name in decimal_columns(schema):
        properties[name] = {"type": ["string", "null"] if "null" in _types(properties[name]) else ["string"]}
    declared = {**schema, "properties": {load_column_name(name): prop for name, prop in properties.items()}}
    if "required" in schema:
        declared["required"] = [load_column_name(name) for name in schema["required"]]
    return declared


# target-postgres 0.8.1 quotes COPY's column names without doubling a double quote inside one (a
# column `Author's "Nick"` is a syntax error), so such a column travels under a stand-in name
# (tap-landing renames it in the schema and every record) and
# `warehouse.commit` writes it into raw under its own name.
def load_column_name(name: str) -> str:
    """The column's name in the day's load schema: its own, unless it holds a double quote."""
    if '"' not in name:
        return name
    return "nwelt_quoted_" + hashlib.sha256(name.encode()).hexdigest()[:16]


def _types(prop: dict[str, Any]) -> list[str]:
    kind = prop.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)
