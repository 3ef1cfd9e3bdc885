"""Security: least-privilege roles, no secrets in the repository, none in logs or the ledger."""

from __future__ import annotations

import re
import subprocess

import psycopg
import pytest

from conftest import D1, ROOT, Project


def test_extract_role_cannot_write(project: Project) -> None:
    source = project.settings.source
    with psycopg.connect(source.conninfo(), autocommit=True) as conn:
        assert conn.execute("select count(*) from orders").fetchone() == (830,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("insert into shippers (shipper_id, company_name) values (99, 'x')")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("create table intruder (id int)")
        conn.execute("set default_transaction_read_only = off")  # a role may lift its own default…
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # …but has no privilege to write
            conn.execute("delete from shippers")


def test_loader_role_is_limited_to_the_warehouse(project: Project) -> None:
    settings = project.settings
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(settings.warehouse.conninfo(dbname=settings.source.database)).close()
    with psycopg.connect(settings.warehouse.conninfo(), autocommit=True) as conn:
        superuser = conn.execute("select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user").fetchone()
        assert superuser == (False, False, False)


def _tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True)
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
            assert match.group(1).startswith(("${", "$", "\"{{", "'{{", "{{")), f"literal password in {name}: {match.group(0)}"
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
    texts.append((project.data_dir / "ledger.sqlite").read_bytes().decode("latin-1"))
    for text in texts:
        for secret in secrets:
            assert secret not in text
