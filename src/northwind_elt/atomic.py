"""Atomic file and folder writes: write beside the target, fsync, then rename over it."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed over `target`, on any error
    removed, leaving `target` exactly as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(target: Path, obj: Any, sort_keys: bool = True) -> None:
    """Stable JSON: two-space indent, trailing newline, keys sorted unless their order matters."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n", encoding="utf-8")


def replace_dir(staged: Path, target: Path) -> None:
    """Put the complete folder `staged` at `target`, replacing any previous version, which is moved
    aside first, then removed: readers see the old folder or the new one (for an instant, none),
    never a mix."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old.{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.rename(target, old)
    os.rename(staged, target)
    _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
