"""Security: least-privilege roles, no secrets in the repository, none in logs or the ledger."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator

import psycopg
import pytest

from conftest import D1, ROOT, Project, free_port, new_project

# Every way a role with CONNECT + USAGE + SELECT could write in PostgreSQL 18. Each must fail
# for the extract role, with `default_transaction_read_only` and `transaction_read_only` off.
READER_WRITES = [
    # large objects
    "select lo_create(0)",
    "select lo_creat(-1)",
    "select lo_from_bytea(0, 'x')",
    "select lo_import('/etc/hostname')",
    "select lo_import('/etc/hostname', 4242)",
    "select lo_export(0, '/tmp/nwelt-lo-export')",
    "select lowrite(0, 'x')",
    "select lo_put(0, 0, 'x')",
    "select lo_truncate(0, 0)",
    "select lo_truncate64(0, 0)",
    "select lo_unlink(0)",
    # WAL: a message of any size in the log
    "select pg_logical_emit_message(false, 'x', 'x')",
    "select pg_logical_emit_message(false, 'x', 'x'::bytea, true)",
    # tables, rows, locks
    "insert into shippers (shipper_id, company_name) values (99, 'x')",
    "update shippers set phone = phone",
    "delete from shippers",
    "truncate shippers",
    "select * from shippers for update",
    "select * from shippers for share",
    "lock table shippers in exclusive mode",
    "merge into shippers s using (select 1 as id) v on s.shipper_id = v.id when matched then delete",
    # creating anything, anywhere
    "create temp table t (x int)",
    "create table pg_temp.t (x int)",
    "create table t (x int)",
    "create table public.t (x int)",
    "create table nwelt_guard.t (x int)",
    "select 1 as x into t",
    "create view v as select 1",
    "create function f() returns int language sql as 'select 1'",
    "create sequence s",
    "create schema s",
    "create publication p for table shippers",
    "create database nwelt_intruder",
    # changing what exists, its privileges, comments, statistics
    "alter table shippers add column x int",
    "drop table shippers",
    "grant select on shippers to public",
    "comment on table shippers is 'x'",
    "comment on role {reader} is 'x'",
    "alter default privileges grant select on tables to public",
    "alter default privileges in schema public grant select on tables to public",
    "reindex table shippers",
    "cluster shippers using pk_shippers",
    "select pg_clear_relation_stats('public', 'shippers')",
    "select pg_restore_relation_stats('schemaname', 'public', 'relname', 'shippers', 'relpages', 1::integer)",
    "select pg_stat_reset()",
    "select pg_stat_reset_single_table_counters('shippers'::regclass)",
    # transaction ids, notifications, two-phase commit
    "select txid_current()",
    "select pg_current_xact_id()",
    "select pg_notify('nwelt', 'x')",
    "alter role current_user createdb",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, database: None) -> Project:
    """A private copy of the source: a write these tests let through reaches no other module's."""
    return new_project(tmp_path_factory, "security", source_database="northwind_test_security")


def _read_write_connection(source) -> psycopg.Connection:  # type: ignore[no-untyped-def]
    conn = psycopg.connect(source.conninfo(), autocommit=True)
    conn.execute("set default_transaction_read_only = off")
    return conn


@pytest.mark.parametrize("statement", READER_WRITES)
def test_extract_role_cannot_write_even_with_read_only_off(project: Project, statement: str) -> None:
    source = project.settings.source
    statement = statement.format(reader=source.user)
    with _read_write_connection(source) as conn:
        assert conn.execute("show default_transaction_read_only").fetchone() == ("off",)
        if not statement.startswith("lock"):  # LOCK runs in a transaction block only
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # not merely read-only
                conn.execute(statement)
        if not statement.startswith("create database"):  # which runs outside one only
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction(force_rollback=True):
                conn.execute("set transaction_read_only = off")
                conn.execute(statement)


def test_extract_role_writes_nothing(project: Project) -> None:
    """Statements PostgreSQL only warns about, and the state after every attempt above."""
    from northwind_elt.database import EmbeddedPostgres

    source = project.settings.source
    with _read_write_connection(source) as conn:
        assert conn.execute("select count(*) from orders").fetchone() == (830,)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        for statement in ("analyze shippers", "vacuum shippers"):
            conn.execute(statement)  # PostgreSQL skips a table the role may not maintain
        assert len([n for n in notices if "permission denied" in n]) == 2, notices
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.cursor().copy("copy shippers from stdin") as copy:
            copy.write_row((98, "x", "y"))
        # PostgreSQL lets every role change its own session defaults: each start of a step
        # (and `make db-up`) resets the extract role's, so read-only is back for the next one
        conn.execute("alter role current_user set default_transaction_read_only = off")
    EmbeddedPostgres(project.settings).up(sync_passwords=False)
    with psycopg.connect(source.conninfo(), autocommit=True) as conn:
        assert conn.execute("show default_transaction_read_only").fetchone() == ("on",)
    with EmbeddedPostgres(project.settings).admin(source.database) as admin:
        assert admin.execute("select count(*) from pg_largeobject_metadata").fetchone() == (0,)
        assert admin.execute("select count(*) from shippers").fetchone() == (6,)
        owned = admin.execute(
            "select count(*) from pg_class c join pg_roles r on r.oid = c.relowner where r.rolname = %s", (source.user,)
        ).fetchone()
        assert owned == (0,)
        acl = admin.execute(
            "select count(*) from pg_default_acl a join pg_roles r on r.oid = a.defaclrole where r.rolname = %s", (source.user,)
        ).fetchone()
        assert acl == (0,)


def test_loader_role_is_limited_to_the_warehouse(project: Project) -> None:
    settings = project.settings
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(settings.warehouse.conninfo(dbname=settings.source.database)).close()
    with psycopg.connect(settings.warehouse.conninfo(), autocommit=True) as conn:
        superuser = conn.execute("select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user").fetchone()
        assert superuser == (False, False, False)


def test_roles_connect_only_to_their_own_databases(project: Project) -> None:
    """Neither role gets into the maintenance database `postgres`, `template1` or the other role's
    database, nor holds TEMP there (temporary tables and functions: the writes left to a role that
    may connect, with read-only switched off)."""
    settings = project.settings
    source, warehouse = settings.source, settings.warehouse
    could: list[str] = []
    for role, own, others in (
        (source, source.database, ["postgres", "template1", warehouse.database]),
        (warehouse, warehouse.database, ["postgres", "template1", source.database]),
    ):
        with psycopg.connect(role.conninfo(), autocommit=True) as conn:  # the control: its own database
            for name in others:
                held = conn.execute(
                    "select has_database_privilege(current_user, %s, 'CONNECT'), has_database_privilege(current_user, %s, 'TEMP')",
                    (name, name),
                ).fetchone()
                if held != (False, False):
                    could.append(f"{role.user} holds CONNECT, TEMP = {held} on {name}")
            if role is warehouse:  # the loader keeps what it needs in the warehouse it owns
                assert conn.execute("select has_database_privilege(current_user, %s, 'TEMP')", (own,)).fetchone() == (True,)
        for name in others:
            try:
                conn = psycopg.connect(role.conninfo(dbname=name), autocommit=True)
            except psycopg.OperationalError as refused:
                assert "permission denied for database" in str(refused)
                continue
            with conn:  # it got in: show what it can write there
                conn.execute("set default_transaction_read_only = off")
                for statement in ("create temp table t (x int)", "create function pg_temp.f() returns int language sql as 'select 1'"):
                    try:
                        conn.execute(statement)
                        could.append(f"{role.user} connected to {name} and ran: {statement}")
                    except psycopg.errors.InsufficientPrivilege:
                        could.append(f"{role.user} connected to {name}; refused: {statement}")
    assert not could, "\n".join(could)


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [f for f in listed.stdout.splitlines() if (ROOT / f).is_file()]


def test_no_password_in_any_committed_file(project: Project) -> None:
    settings = project.settings
    secrets = [s for s in (settings.source.password, settings.warehouse.password) if s]
    assert secrets, "the test needs the real passwords to look for"
    files = _tracked_files()
    assert "meltano.yml" in files and ".env" not in files and ".env.example" in files
    for name in files:
        text = (ROOT / name).read_text(errors="ignore")
        for secret in secrets:
            assert secret not in text, f"a password is in {name}"
    # every password-like setting in the Meltano project is a variable, never a literal
    for name in [f for f in files if f.endswith(".yml") or f.endswith(".yaml")]:
        for match in re.finditer(r"^\s*password:\s*(\S+)", (ROOT / name).read_text(), re.M):
            assert match.group(1).startswith(("${", "$", '"{{', "'{{", "{{")), f"literal password in {name}: {match.group(0)}"
    for line in (ROOT / ".env.example").read_text().splitlines():
        if "PASSWORD=" in line and not line.startswith("#"):
            assert line.split("=", 1)[1] == "", f".env.example must not ship a password: {line}"


def test_passwords_never_reach_logs_or_ledger(project: Project) -> None:
    wrong = "Wrong-Secret-4711"
    project.make("extract-postgres", f"DATE={D1}", check=True)
    failed = project.make("extract-postgres", "DATE=2024-01-02", env={"SOURCE_PG_PASSWORD": wrong})
    assert failed.returncode != 0
    assert "password authentication failed" in failed.stderr
    settings = project.settings
    secrets = [settings.source.password, settings.warehouse.password, wrong]
    texts = [failed.stdout, failed.stderr]
    texts += [p.read_text(errors="ignore") for p in (project.data_dir / "logs").rglob("*.log")]
    texts += [str(row) for row in project.sql("select * from ops.runs")]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_compose_source_locks_the_reader_down_alike() -> None:
    """docker/source-init.sh revokes the same functions and installs the same DDL guard."""
    from northwind_elt.database import READER_REVOKED_FUNCTIONS

    script = re.sub(r"\s+", " ", (ROOT / "docker" / "source-init.sh").read_text())
    for function in READER_REVOKED_FUNCTIONS:
        assert function in script, f"docker/source-init.sh does not revoke {function}"
    assert "on ddl_command_start execute function nwelt_guard.refuse_reader_ddl()" in script


@pytest.fixture
def squatter() -> Iterator[tuple[int, list[bytes]]]:
    """Another user's process on a stopped server's port, posing as PostgreSQL: it asks every
    client for its password in clear text and keeps what each sends back."""
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", free_port()))

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with client, contextlib.suppress(OSError, struct.error):
                client.settimeout(10)
                while True:  # SSL and GSS requests, refused, then the startup message
                    length = struct.unpack("!I", client.recv(4, socket.MSG_WAITALL))[0]
                    if struct.unpack("!I", client.recv(length - 4, socket.MSG_WAITALL)[:4])[0] not in (80877103, 80877104):
                        break
                    client.sendall(b"N")
                client.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
                received.append(client.recv(4096))

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1], received
    finally:
        server.close()


@pytest.mark.parametrize(
    ("server", "command"),
    [
        ("WAREHOUSE", ["make", "--no-print-directory", "status", f"DATE={D1}", "NWELT_DB=external"]),
        ("SOURCE", [".venv/bin/meltano", "invoke", "tap-postgres", "--discover"]),
        ("WAREHOUSE", [".venv/bin/meltano", "invoke", "dbt-postgres:debug"]),
        ("WAREHOUSE", [".venv/bin/meltano", "invoke", "target-postgres"]),
    ],
    ids=["nwelt", "tap-postgres", "dbt", "target-postgres"],
)
def test_a_process_squatting_the_servers_port_gets_no_password(
    project: Project, squatter: tuple[int, list[bytes]], server: str, command: list[str]
) -> None:
    port, received = squatter
    schema = '{"type": "SCHEMA", "stream": "t", "schema": {"properties": {"id": {"type": "integer"}}}, "key_properties": ["id"]}\n'
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, **project.env, f"{server}_PG_PORT": str(port), "RUN_DATE": D1},
        input=schema if command[-1] == "target-postgres" else "",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert 'authentication method requirement "scram-sha-256" failed' in result.stdout + result.stderr
    assert received, "the client never reached the squatter"
    assert all(not reply.startswith(b"p") for reply in received), "a client sent its password"
    secrets = [project.settings.source.password.encode(), project.settings.warehouse.password.encode()]
    assert not [s for s in secrets for reply in received if s in reply]
