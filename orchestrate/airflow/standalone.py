"""`airflow standalone` for this project (`make airflow`), run with .venv-airflow's Python.

The same as `airflow standalone` (API server + UI, scheduler, DAG processor, triggerer; SQLite
and LocalExecutor), except that the scheduler and the triggerer start without their log servers
(`--skip-serve-logs`): Airflow binds those to every interface (ports 8793/8794) with no setting
to change it, and on one machine the UI reads the task logs from disk without them. The UI
listens where `AIRFLOW__API__HOST`/`AIRFLOW__API__PORT` say (the Makefile: 127.0.0.1:8080).
"""

from __future__ import annotations

from airflow.cli.commands import standalone_command


class _SubCommand(standalone_command.SubCommand):
    def __init__(self, parent, name: str, command: list[str], env: dict[str, str]) -> None:
        if command[:1] in (["scheduler"], ["triggerer"]):
            command = [*command, "--skip-serve-logs"]
        super().__init__(parent, name, command, env)


standalone_command.SubCommand = _SubCommand

if __name__ == "__main__":
    standalone_command.StandaloneCommand().run()
