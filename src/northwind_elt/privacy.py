"""Files that hold secrets are never readable by other OS users, set here and nowhere else.

Every process `nwelt` starts (make targets, Airflow tasks, `elt:` tasks, and all their children)
runs with umask 077, so what it creates is private from its first byte, even under SIGKILL; the
folders where tools write secrets or run details are made 0700 and `.env` 0600 on every start,
also when a plain `meltano run` or an older version wrote them (docs/decisions.md).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from .settings import Settings


def restrict_umask() -> None:
    """Files and folders created from now on by this process and its children: owner only."""
    os.umask(0o077)


def private_dirs(settings: Settings) -> list[Path]:
    """Folders that hold secrets or run details: 0700, created so if absent."""
    root = settings.root
    return [
        root / ".meltano",  # run/<plugin>/*config.json: the plugins' settings with real passwords
        root / "transform" / "target",  # dbt artifacts (compiled SQL, run results)
        root / "transform" / "logs",
        root / ".airflow",  # airflow.cfg, the simple auth manager's passwords, its database
        settings.data_dir / "logs",  # the step logs
    ]


def _private(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        info = path.lstat()
        if info.st_uid == os.geteuid() and not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & ~0o077 | (mode & 0o700))


def secure(settings: Settings) -> None:
    """Make the project's secret-holding paths private (quick: a few stat calls)."""
    for folder in private_dirs(settings):
        if folder.is_relative_to(settings.root) and folder.parent.is_dir():
            with contextlib.suppress(OSError):
                folder.mkdir(mode=0o700, exist_ok=True)  # before the tool that fills it runs
        _private(folder, 0o700)
    run = settings.root / ".meltano" / "run"
    if run.is_dir():  # configs a killed or plain `meltano run` left readable
        for path in [run, *run.rglob("*")]:
            _private(path, 0o700 if path.is_dir() else 0o600)
    _private(settings.root / ".env", 0o600)
