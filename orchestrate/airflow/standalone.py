"""`airflow standalone` for this project (`make airflow`), run with .venv-airflow's Python.

The same as `airflow standalone` (API server + UI, scheduler, DAG processor, triggerer; SQLite
and LocalExecutor), except that the scheduler and the triggerer start without their log servers
(`--skip-serve-logs`): Airflow binds those to every interface (ports 8793/8794) with no setting
to change it, and on one machine the UI reads the task logs from disk without them.

Settings, from the environment, with the project's defaults:
- `AIRFLOW_HOME`: the repository's `.airflow`;
- `AIRFLOW__API__HOST`/`AIRFLOW__API__PORT`: where the UI and the API listen (127.0.0.1:8080);
- `AIRFLOW__CORE__EXECUTION_API_SERVER_URL`: follows the port, so the workers reach the API;
- `AIRFLOW__CORE__PARALLELISM`: the machine's cores (LocalExecutor's workers);
- the API's JWT secret and secret key: one of each, kept in AIRFLOW_HOME (mode 0600) and given to
  every component, so a task's token always verifies (left to Airflow, each component that
  starts before airflow.cfg exists makes up its own: "Invalid auth token: Signature verification
  failed").
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def _kept_secret(home: Path, name: str) -> str:
    """A random secret stored in `home/name` (created once, private)."""
    path = home / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def configure(environ: os._Environ[str] = os.environ) -> None:
    def default(name: str, value: str) -> str:  # an empty variable counts as unset
        if not environ.get(name):
            environ[name] = value
        return environ[name]

    home = Path(default("AIRFLOW_HOME", str(Path(__file__).resolve().parents[2] / ".airflow")))
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = default("AIRFLOW__API__PORT", "8080")
    if not port.isdigit():
        sys.exit(f"AIRFLOW__API__PORT={port!r} is not a port number")
    default("AIRFLOW__API__HOST", "127.0.0.1")
    default("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://127.0.0.1:{port}/execution/")
    default("AIRFLOW__CORE__PARALLELISM", str(os.cpu_count() or 2))
    default("AIRFLOW__API_AUTH__JWT_SECRET", _kept_secret(home, ".jwt_secret"))
    default("AIRFLOW__API__SECRET_KEY", _kept_secret(home, ".api_secret_key"))


configure()  # before Airflow reads its configuration

from airflow.cli.commands import standalone_command  # noqa: E402


class _SubCommand(standalone_command.SubCommand):
    def __init__(self, parent, name: str, command: list[str], env: dict[str, str]) -> None:
        if command[:1] in (["scheduler"], ["triggerer"]):
            command = [*command, "--skip-serve-logs"]
        super().__init__(parent, name, command, env)


standalone_command.SubCommand = _SubCommand

if __name__ == "__main__":
    standalone_command.StandaloneCommand().run()
