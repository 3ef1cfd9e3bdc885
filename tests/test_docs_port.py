"""`make docs` on a port that is taken: it serves on the next free port and prints that address,
or, when DOCS_PORT chose the port, stops with one line naming DOCS_PORT; never a traceback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import ROOT, Project, wait_for

DEFAULT_PORT = 8081  # DOCS_PORT unset, or the 8081 of .env.example
ADDRESS = re.compile(rf"^dbt docs on http://127\.0\.0\.1:(\d+) \(port {DEFAULT_PORT} is taken; Ctrl-C to stop\)$")


@contextmanager
def taken(port: int = 0) -> Iterator[int]:
    """A port some other program listens on at 127.0.0.1 (`port`, unless another already does)."""
    with socket.socket() as other:
        try:
            other.bind(("127.0.0.1", port))
            other.listen()
        except OSError:
            pass  # taken already
        yield other.getsockname()[1] if port == 0 else port


@contextmanager
def make_docs(project: Project, docs_port: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`make docs` running (it serves until stopped) and the lines it printed so far; stopped at the end."""
    env = {**os.environ, **project.env, "DOCS_PORT": docs_port}
    process = subprocess.Popen(
        ["make", "--no-print-directory", "docs"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
        process.wait(timeout=60)
        reader.join(timeout=10)


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return response.status == 200 and b"dbt" in response.read()
    except OSError:
        return False


def printed_port(lines: list[str]) -> int | None:
    return next((int(m.group(1)) for m in map(ADDRESS.match, list(lines)) if m), None)


def test_a_taken_port_serves_on_the_next_free_one(project: Project) -> None:
    with taken(DEFAULT_PORT), make_docs(project, "") as (process, lines):
        assert wait_for(lambda: printed_port(lines) or process.poll() is not None, 300)
        port = printed_port(lines)
        assert port is not None and port != DEFAULT_PORT, "".join(lines[-40:])
        assert wait_for(lambda: answers(port), 60), "".join(lines[-40:])
    output = "".join(lines)
    assert "Traceback" not in output and "Address already in use" not in output, output[-3000:]


def test_a_chosen_port_that_is_taken_is_one_line_naming_docs_port(project: Project) -> None:
    with taken() as port, make_docs(project, str(port)) as (process, lines):
        process.wait(timeout=300)
    output = "".join(lines)
    expected = (
        f"ConfigError: DOCS_PORT={port}: the port is taken on 127.0.0.1 (another `make docs`?); "
        "stop what listens there, or set another DOCS_PORT\n"
    )
    assert process.returncode != 0 and expected in output and "Traceback" not in output, output[-3000:]
