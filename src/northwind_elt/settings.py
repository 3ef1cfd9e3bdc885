"""The one place that reads the environment: everything else receives a `Settings` and a parsed
`datetime.date`. Values come from the process environment first, then from the git-ignored `.env`
at the project root (the repository ships `.env.example` only).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from .atomic import atomic_path
from .errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PG_PORT, DEFAULT_DOCS_PORT = 55432, 8081
MAX_LOCK_WAIT = 86400  # seconds: NWELT_LOCK_WAIT_SECONDS and `nwelt … --wait`


def meltano_exe() -> str:
    """The `meltano` installed beside this interpreter (the project's .venv)."""
    candidate = Path(sys.executable).with_name("meltano")
    return str(candidate) if candidate.exists() else "meltano"


@dataclass(frozen=True)
class PgConn:
    host: str
    port: int
    database: str
    user: str
    password: str

    def conninfo(self, **overrides: str) -> str:
        """A libpq keyword/value string (the password is not logged anywhere by callers). SCRAM only:
        a server that asks for the password itself (one squatting a stopped server's port) gets none."""
        params = {"host": self.host, "port": str(self.port), "dbname": self.database, "user": self.user, "password": self.password}
        params |= {"connect_timeout": "10", "application_name": "northwind-elt", "require_auth": "scram-sha-256", **overrides}
        return " ".join(f"{k}='{_quote(v)}'" for k, v in params.items())

    def describe(self) -> str:
        """Where this connection points, safe to print (never the password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.database}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


@dataclass(frozen=True)
class Settings:
    root: Path
    data_dir: Path
    source_dir: Path
    csv_path: Path
    db_mode: str  # "embedded" (managed here) or "external" (e.g. Docker Compose servers)
    pg_port: int
    pg_home: Path
    source: PgConn
    warehouse: PgConn
    env: dict[str, str]
    checkout_database: str = ""  # the warehouse database .env names: home of the checkout's plugin locks ("": warehouse's)
    lock_wait: float = 0.0  # seconds a step waits for a busy day (NWELT_LOCK_WAIT_SECONDS)
    heartbeat_seconds: float = 10.0  # a line at least this often while a step runs (NWELT_HEARTBEAT_SECONDS)
    backfill_days: int = 2  # days a backfill runs side by side (NWELT_BACKFILL_DAYS)
    docs_port: int | None = None  # DOCS_PORT when chosen; None: 8081, or the next free port (cli.cmd_docs)
    shared_dir: Path = ROOT.parent / "shared" / "northwind"  # the challenge's files beside the repo (NORTHWIND_SHARED_DIR)

    @property
    def embedded(self) -> bool:
        return self.db_mode == "embedded"

    @property
    def meltano_environment(self) -> str:
        """The Meltano environment of these settings: dev (embedded server) or prod (external)."""
        return meltano_environment_of(self.db_mode)

    @property
    def staging_root(self) -> Path:
        """Where target-jsonl writes step 1 before it is published (see load/loaders.meltano.yml)."""
        return self.root / ".meltano" / "staging"

    def meltano_env(self) -> dict[str, str]:
        """Environment for a Meltano subprocess: the resolved settings, never re-derived there."""
        env = {
            **os.environ,
            **self.env,
            "MELTANO_PROJECT_ROOT": str(self.root),
            "DATA_DIR": str(self.data_dir),
            "ORDER_DETAILS_CSV": str(self.csv_path),
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "NWELT_LOCK_WAIT_SECONDS": str(self.lock_wait),
        }
        for prefix, conn in (("SOURCE", self.source), ("WAREHOUSE", self.warehouse)):  # the names `load` reads
            env |= {f"{prefix}_PG_HOST": conn.host, f"{prefix}_PG_PORT": str(conn.port), f"{prefix}_PG_DATABASE": conn.database}
            env |= {f"{prefix}_PG_USER": conn.user, f"{prefix}_PG_PASSWORD": conn.password}
        return env


def meltano_environment_of(db_mode: str | None) -> str:
    """The Meltano environment of a server choice: dev (embedded, the default) or prod (external)."""
    return "prod" if db_mode == "external" else "dev"


def _environment(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """.env's values, and the process environment over them."""
    values = {k: v for k, v in dotenv_values(root / ".env").items() if v is not None}
    # a plain `meltano` command runs in .env's MELTANO_ENVIRONMENT, make and nwelt in NWELT_DB's: one choice
    named, chosen = values.get("MELTANO_ENVIRONMENT"), meltano_environment_of(values.get("NWELT_DB"))
    if named in ("dev", "prod") and named != chosen:
        raise ConfigError(
            f".env sets NWELT_DB={values.get('NWELT_DB', '')!r} and MELTANO_ENVIRONMENT={named}, which disagree (a plain "
            f"`meltano` command would use the other servers): set MELTANO_ENVIRONMENT={chosen} in .env"
        )
    return values, values | dict(os.environ)


def load(root: Path = ROOT) -> Settings:
    dotenv, env = _environment(root)

    def get(name: str, default: str = "") -> str:
        return env.get(name) or default

    def number(name: str, default: float, low: float = 1, high: float = 65535, kind: type = int) -> float:
        raw = get(name, str(default))
        try:
            value = kind(raw)
            if not low <= value <= high:
                raise ValueError
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{name}={raw!r} is not {what} from {low:g} to {high:g}: fix or unset it (.env or the environment)") from None
        return float(value)

    def folder(name: str, default: str) -> Path:
        """A folder setting; relative to the project root."""
        path = root / get(name, default)  # an absolute value replaces the root
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{name}={path} is a file, not a folder: point {name} at a folder (or remove the file)")
        return path

    data_dir = folder("DATA_DIR", "data")
    source_dir = Path(get("SOURCE_DATA_DIR", str(root / "data" / "source")))
    csv_path = Path(get("ORDER_DETAILS_CSV", str(source_dir / "order_details.csv")))
    db_mode = get("NWELT_DB", "embedded")
    if db_mode not in ("embedded", "external"):
        raise ConfigError(f"NWELT_DB={db_mode!r}: use 'embedded' (default) or 'external'")
    pg_port = int(number("NWELT_PG_PORT", DEFAULT_PG_PORT))
    default_host = "127.0.0.1" if db_mode == "embedded" else ""
    docs_port = int(number("DOCS_PORT", DEFAULT_DOCS_PORT))  # chosen: set in the environment, or in .env to another port than 8081

    def conn(prefix: str, database: str, user: str) -> PgConn:
        host = get(f"{prefix}_PG_HOST", default_host)
        if not host:
            raise ConfigError(f"NWELT_DB=external needs {prefix}_PG_HOST (see .env.example)")
        return PgConn(
            host=host,
            port=int(number(f"{prefix}_PG_PORT", pg_port)),
            database=get(f"{prefix}_PG_DATABASE", database),
            user=get(f"{prefix}_PG_USER", user),
            password=get(f"{prefix}_PG_PASSWORD"),
        )

    return Settings(
        root=root,
        data_dir=data_dir,
        source_dir=source_dir,
        csv_path=csv_path,
        db_mode=db_mode,
        pg_port=pg_port,
        pg_home=folder("NWELT_PG_HOME", ".pg"),
        source=conn("SOURCE", "northwind", "northwind_reader"),
        warehouse=conn("WAREHOUSE", "warehouse", "warehouse_loader"),
        checkout_database=dotenv.get("WAREHOUSE_PG_DATABASE") or get("WAREHOUSE_PG_DATABASE", "warehouse"),
        env={k: v for k, v in env.items() if k.isupper()},
        lock_wait=number("NWELT_LOCK_WAIT_SECONDS", 0, 0, MAX_LOCK_WAIT, float),
        heartbeat_seconds=number("NWELT_HEARTBEAT_SECONDS", 10, 0.1, 3600, float),
        backfill_days=int(number("NWELT_BACKFILL_DAYS", 2, 1, 8)),
        docs_port=docs_port if os.environ.get("DOCS_PORT") or docs_port != DEFAULT_DOCS_PORT else None,
        shared_dir=Path(get("NORTHWIND_SHARED_DIR", str(root.parent / "shared" / "northwind"))),
    )


def fault() -> str:
    """NWELT_FAULT: the fault-injection point the reliability tests arm (faults.py)."""
    return os.environ.get("NWELT_FAULT", "")


def job() -> str:
    """NWELT_JOB: the token nwelt gives each Meltano job it starts (recorded with the run)."""
    return os.environ.get("NWELT_JOB", "")


def run_date() -> str:
    """RUN_DATE: the day of a Meltano job (its glue tasks read it)."""
    return os.environ.get("RUN_DATE", "")


def parse_date(raw: str | None, name: str = "DATE", now: dt.datetime | None = None) -> dt.date:
    """DATE=YYYY-MM-DD; empty means today (local). Later days than today, local or UTC, are refused:
    there is nothing to extract (Airflow's run of D starts at 00:00 UTC of D, still D-1 west of UTC).

    `name` is the variable the value came from (DATE, START, END, RUN_DATE), named in errors."""
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone()  # `now` in the local time zone
    today, latest = now.date(), max(now.date(), now.astimezone(dt.timezone.utc).date())
    if raw is None or raw.strip() == "":
        return today
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip(), re.ASCII):  # fromisoformat takes 2024-W27-1 too
            raise ValueError
        day = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a date: use the form YYYY-MM-DD, e.g. {name}=2024-01-01") from None
    if day > latest:
        raise ConfigError(f"{name}={day} is in the future (today is {latest}): pick today or a past day")
    return day


def free_port(first: int, tries: int = 100) -> int:
    """The first port from `first` on that nothing listens on at 127.0.0.1 (`first` if none is)."""
    for port in range(first, first + tries):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return first


def _fresh_secret(name: str, value: str) -> str | None:
    """A fresh random value for a secret .env.example leaves empty (…PASSWORD, …_SECRET), else None."""
    return secrets.token_urlsafe(18) if name.endswith(("PASSWORD", "_SECRET")) and not value else None


def add_missing_settings(root: Path = ROOT) -> list[str]:
    """Append to an existing `.env` what .env.example gained since it was written: its secrets (e.g.
    the Celery profile's AIRFLOW_DB_PASSWORD), each with a fresh random value, and
    MELTANO_ENVIRONMENT, from the file's NWELT_DB. Nothing else: the rest has defaults. Returns their names."""
    target = root / ".env"
    if not target.exists():
        return []
    present = dotenv_values(target)
    added = []
    for line in (root / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#") and name not in present and (secret := _fresh_secret(name, value)):
            added.append(f"{name}={secret}\n")
    if "MELTANO_ENVIRONMENT" not in present:
        added.append(f"MELTANO_ENVIRONMENT={meltano_environment_of(present.get('NWELT_DB'))}\n")
    if added:
        text = target.read_text()
        with target.open("a") as handle:
            handle.write(("" if text.endswith("\n") or not text else "\n") + "".join(added))
    return [line.partition("=")[0] for line in added]


def ensure_env_file(root: Path = ROOT) -> bool:
    """Create `.env` from `.env.example` with fresh random passwords. Returns True if created."""
    target = root / ".env"
    if target.exists():
        return False
    # a port given (e.g. a second checkout on the same machine), else the default or, when another
    # server (another checkout, another user) already listens there, the next free one
    port = os.environ.get("NWELT_PG_PORT") or str(free_port(DEFAULT_PG_PORT))
    lines = []
    for line in (root / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and (secret := _fresh_secret(name, value)):
            line = f"{name}={secret}"
        elif sep and port and name.endswith("PG_PORT"):
            line = f"{name}={port}"
        elif sep and name in ("NWELT_UID", "NWELT_GID") and not value:  # Compose runs containers as you
            line = f"{name}={os.getuid() if name == 'NWELT_UID' else os.getgid()}"
        lines.append(line)
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o600)
    return True
