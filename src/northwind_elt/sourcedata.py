"""Where the challenge's source files come from (they are never committed).

Order of preference: the project's git-ignored source-data folder; a copy from `../shared/northwind/`
beside the repository; a download from the challenge's public repository at a pinned commit;
checked against pinned SHA-256 sums and written atomically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

from .atomic import atomic_path
from .errors import ConfigError
from .settings import Settings

REPO_URL = "https://raw.githubusercontent.com/techindicium/code-challenge"
COMMIT = "2a9ede179003a4bec46f7c1cb67dc06af72a28a2"
FILES: dict[str, str] = {
    "northwind.sql": "482f27528f8bc4eac65fe240ebc393fb9984991f215067ba3d47ce8a067d41d5",
    "order_details.csv": "f507c2f918918c3243455237622e4724ad8f261bef3a710cc4925941da2040e8",
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _public(path: Path) -> None:
    """The challenge's public files stay readable by others (every process here runs with umask
    077): the Docker Compose servers read them through a bind mount as their own OS users."""
    mode = 0o755 if path.is_dir() else 0o644
    if path.stat().st_uid == os.geteuid() and path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)
    if path.is_file():
        _public(path.parent)


def ensure(settings: Settings, name: str) -> Path:
    """Return the path of source file `name`, fetching it into the source-data folder if absent."""
    target = settings.source_dir / name
    if target.exists():
        _public(target)
        return target
    expected = FILES[name]
    settings.source_dir.mkdir(parents=True, exist_ok=True)
    _public(settings.source_dir)
    local = settings.shared_dir / name
    with atomic_path(target) as tmp:
        if local.exists():
            origin = str(local)
            shutil.copyfile(local, tmp)
        else:
            import urllib.request  # only a download needs it (and its start-up cost)

            origin = f"{REPO_URL}/{COMMIT}/data/{name}"
            try:
                with urllib.request.urlopen(origin, timeout=60) as response, tmp.open("wb") as out:
                    shutil.copyfileobj(response, out)
            except OSError as exc:
                raise ConfigError(
                    f"cannot download {name} from {origin} ({exc}); place the file at {target} "
                    f"or in {settings.shared_dir}/ and rerun `make setup` (a Docker image build takes "
                    "it from data/source/ of the checkout: run `make setup` there first, then build again)"
                ) from None
        actual = sha256_of(tmp)
        if actual != expected:
            raise ConfigError(
                f"checksum mismatch for {name} from {origin}: expected sha256 {expected}, got {actual}; "
                f"the file is not the challenge's pinned version (commit {COMMIT[:12]}): replace it and rerun"
            )
    _public(target)
    print(f"source data: {name} from {origin} (sha256 checked)", file=sys.stderr)
    return target
