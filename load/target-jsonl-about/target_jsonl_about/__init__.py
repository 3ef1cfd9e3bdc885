"""target-jsonl 0.1.4, unchanged, plus `--about`.

target-jsonl 0.1.4 (the only target-jsonl on PyPI) parses only `--config`, so `meltano invoke
target-jsonl --about` failed. This entry point answers `--about` (text, or `--format json` /
`--format markdown` like the Singer SDK's) from the package's own metadata and the settings the
project uses, and hands every other call to target-jsonl's own `main` untouched.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

SETTINGS = {
    "destination_path": "folder the <stream>.jsonl files are appended to ('' = the working directory)",
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
    from target_jsonl import main as target_main

    target_main()
