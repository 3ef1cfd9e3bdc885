"""The fast-exit hook (src/northwind_elt/fast_exit.py): installed into a site-packages folder, it
makes Python skip its shutdown collections, and what programs write still arrives whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from northwind_elt import fast_exit

# A cycle whose finalizer says so (built in a namespace of its own, so the program's globals are in
# no cycle); a file closed by `with`; a file left open in the globals; a logging file handler;
# standard output never flushed by the program.
PROGRAM = """
import logging, sys
ns = {}
exec("class Cycle:\\n    def __del__(self):\\n        print('cycle collected', flush=True)", ns)
a = ns["Cycle"](); a.me = a; del a
with open(sys.argv[1] + "/closed.txt", "w") as closed:
    closed.write("closed")
unclosed = open(sys.argv[1] + "/unclosed.txt", "w"); unclosed.write("all of it")
handler = logging.FileHandler(sys.argv[1] + "/logged.txt"); logging.getLogger().addHandler(handler)
handler.setFormatter(logging.Formatter("%(message)s")); logging.getLogger().warning("logged")
print("last words", end="")
"""


def _run(site: Path | None, out: Path, **env: str) -> str:
    """PROGRAM's output under the base Python (no virtualenv, so no hook), `site` added if given."""
    setup = f"import site; site.addsitedir({str(site)!r}); " if site else ""
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return subprocess.run(
        [str(python), "-c", setup + "exec(" + repr(PROGRAM) + ")", str(out)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout


@pytest.mark.parametrize(("hooked", "env", "collected"), [(False, {}, True), (True, {}, False), (True, {"NWELT_FAST_EXIT": "0"}, True)])
def test_the_hook_skips_only_the_shutdown_collections(tmp_path: Path, hooked: bool, env: dict[str, str], collected: bool) -> None:
    site, out = tmp_path / "site", tmp_path / "out"
    site.mkdir()
    out.mkdir()
    fast_exit.install(str(site))
    assert _run(site if hooked else None, out, **env) == "last words" + ("cycle collected\n" if collected else "")
    assert (out / "closed.txt").read_text() == "closed"
    assert (out / "unclosed.txt").read_text() == "all of it"
    assert (out / "logged.txt").read_text() == "logged\n"


def test_install_is_idempotent_and_repairs_a_changed_copy(tmp_path: Path) -> None:
    assert fast_exit.install(str(tmp_path)) is True
    assert (tmp_path / "nwelt_fast_exit.pth").read_text() == "import nwelt_fast_exit; nwelt_fast_exit.register()\n"
    assert fast_exit.install(str(tmp_path)) is False
    (tmp_path / "nwelt_fast_exit.py").write_text("broken")
    assert fast_exit.install(str(tmp_path)) is True
    assert (tmp_path / "nwelt_fast_exit.py").read_text() == Path(fast_exit.__file__).read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nwelt_fast_exit.pth", "nwelt_fast_exit.py"]
