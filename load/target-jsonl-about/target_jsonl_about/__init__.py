"""target-jsonl 0.1.4, unchanged, plus `--about` and a `working_directory` setting.

target-jsonl 0.1.4 (the only target-jsonl on PyPI) parses only `--config`, so `meltano invoke
target-jsonl --about` failed. This entry point answers `--about` (text, or `--format json` /
`--format markdown` like the Singer SDK's) from the package's own metadata and the settings the
project uses, and hands every other call to target-jsonl's own `main` untouched.

`working_directory`: target-jsonl creates its `destination_path` folder again for every record it
writes (a `mkdir` and a `stat` per record), unless `destination_path` is empty, when it appends to
`<stream>.jsonl` in its working directory. With `destination_path: ""` and `working_directory`
set, this entry point creates that folder once and starts target-jsonl inside it: the same files,
without the per-record folder work. Meltano starts plugins in whatever folder `meltano` was
started from, so the folder must be named, not inherited.
"""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import version
from pathlib import Path

SETTINGS = {
    "destination_path": "folder the <stream>.jsonl files are appended to ('' = the working directory)",
    "working_directory": "folder target-jsonl runs in, created once (this entry point's setting)",
    "do_timestamp_file": "append a timestamp to each file name (the project: false)",
    "custom_name": "one file name for every stream",
}


def about() -> dict[str, object]:
    return {
        "name": "target-jsonl",
        "version": version("target-jsonl"),
        "description": "Singer target writing each stream's RECORD messages to <stream>.jsonl",
        "capabilities": [],
        "settings": {"type": "object", "properties": {k: {"type": "string", "description": v} for k, v in SETTINGS.items()}},
    }


def enter_working_directory(args: list[str]) -> list[str]:
    """Change into the config's `working_directory` (created if missing); returns the arguments
    with the config file's path made absolute, since target-jsonl opens it after the change."""
    flag = next((i for i, arg in enumerate(args[:-1]) if arg in ("-c", "--config")), None)
    if flag is None:
        return args
    config_path = Path(args[flag + 1]).absolute()
    folder = json.loads(config_path.read_text()).get("working_directory")
    if not folder:
        return args
    Path(folder).mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    return [*args[: flag + 1], str(config_path), *args[flag + 2 :]]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "--about" in args:
        info = about()
        kind = args[args.index("--format") + 1] if "--format" in args[:-1] else "text"
        if kind == "json":
            print(json.dumps(info, indent=2))
        else:
            print(f"Name: {info['name']}\nVersion: {info['version']}\n{info['description']}\nSettings:")
            for name, text in SETTINGS.items():
                print(f"  {name}: {text}")
        return
    sys.argv[1:] = enter_working_directory(args)
    from target_jsonl import main as target_main

    target_main()
