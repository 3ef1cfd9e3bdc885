"""Skip the garbage collections Python makes while it shuts down, in every process of a run.

`nwelt setup` copies this file into the site-packages of every virtualenv of the project (the
project's own, Meltano's plugins': dbt, the taps, the targets, the glue) as `nwelt_fast_exit.py`,
with a `nwelt_fast_exit.pth` that makes Python import it and call `register()` at start-up (the way
setuptools' `distutils-precedence.pth` runs in every virtualenv).

Why: the pipeline's processes are short command-line runs, and at exit Python walks every object
it still tracks (dbt's parsed project, SQLAlchemy's and Meltano's modules) to collect cycles, memory
the operating system takes back anyway. Across the fifteen or so Python processes of a day that
walk was about a fifth of a warm `make pipeline` (docs/performance.md). The handler registered
here runs after every other exit handler (they run last-registered first), so the program's own
clean-up (logging flushed, files and connections closed) is done; it then freezes what is left, so
the shutdown collections have nothing to walk. Nothing changes while a program runs.

What it gives up: the finalizers of objects that only a reference cycle keeps alive at exit do not
run. Python does not promise they run (its docs say so; it warns about unclosed files), and no
program of this pipeline needs them: target-jsonl opens and closes its file for every record,
logging flushes its handlers in its own exit handler, standard output is flushed by Python itself,
the glue writes atomically and closes what it writes, and every landed file is checked
(tests/unit/test_fast_exit.py shows each case). NWELT_FAST_EXIT=0 in the environment turns it off.

This module is imported by every Python start: standard library only, nothing done at import.
"""

from __future__ import annotations

import atexit
import gc
import os

MODULE = "nwelt_fast_exit"


def _skip_shutdown_collections() -> None:
    gc.disable()
    gc.freeze()


def register() -> None:
    if os.environ.get("NWELT_FAST_EXIT", "1") != "0":
        atexit.register(_skip_shutdown_collections)


def install(site_packages: str) -> bool:
    """Put the module and its .pth into a virtualenv's site-packages; True if anything changed."""
    import tempfile
    from pathlib import Path

    folder = Path(site_packages)
    wanted = {  # the module first: the .pth imports it
        folder / f"{MODULE}.py": Path(__file__).read_text(),
        folder / f"{MODULE}.pth": f"import {MODULE}; {MODULE}.register()\n",
    }
    changed = False
    for path, text in wanted.items():
        if path.is_file() and not path.is_symlink() and path.read_text() == text:
            continue
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
        with open(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)  # whole or not at all, even with two setups at once
        changed = True
    return changed
