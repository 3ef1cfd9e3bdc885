"""Atomic writes: the target is the old bytes or the new ones, never a mix, and nothing is left beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from northwind_elt import atomic


def test_a_failed_write_leaves_the_target_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    atomic.write_json(target, {"b": 1, "a": [1, 2]})
    assert target.read_bytes() == b'{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'  # stable: sorted keys, newline
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_bytes().startswith(b'{\n  "a"') and sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


def test_key_order_is_kept_when_it_matters(tmp_path: Path) -> None:
    atomic.write_json(tmp_path / "s.json", {"z": 1, "a": 2}, sort_keys=False)
    assert (tmp_path / "s.json").read_text() == '{\n  "z": 1,\n  "a": 2\n}\n'


def test_replace_dir_swaps_a_whole_folder(tmp_path: Path) -> None:
    target = tmp_path / "day"
    for version in ("one", "two"):
        staged = tmp_path / f".{version}.building"
        staged.mkdir()
        (staged / "file").write_text(version)
        atomic.replace_dir(staged, target)
        assert (target / "file").read_text() == version and not staged.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day"]  # the previous version is gone
