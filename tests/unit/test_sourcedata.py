"""Where the source files come from: the project's folder, ../shared/northwind, or a download,
always checked against the pinned SHA-256 sums."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import pytest

from northwind_elt import settings as settings_mod
from northwind_elt import sourcedata
from northwind_elt.settings import ConfigError


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> settings_mod.Settings:
    monkeypatch.setenv("SOURCE_DATA_DIR", str(tmp_path / "source"))
    monkeypatch.setenv("NORTHWIND_SHARED_DIR", str(tmp_path / "shared"))
    (tmp_path / "shared").mkdir()
    return settings_mod.load()


def test_copies_from_shared_and_verifies(isolated: settings_mod.Settings) -> None:
    original = settings_mod.ROOT / "data" / "source" / "order_details.csv"  # fetched by make setup
    (isolated.shared_dir / "order_details.csv").write_bytes(original.read_bytes())
    path = sourcedata.ensure(isolated, "order_details.csv")
    assert path == isolated.source_dir / "order_details.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sourcedata.FILES["order_details.csv"]


def test_checksum_mismatch_is_a_clear_error_and_writes_nothing(isolated: settings_mod.Settings) -> None:
    (isolated.shared_dir / "order_details.csv").write_text("order_id,product_id\n1,2\n")
    with pytest.raises(ConfigError, match=r"checksum mismatch for order_details.csv .* expected sha256 f507c2f9"):
        sourcedata.ensure(isolated, "order_details.csv")
    assert not (isolated.source_dir / "order_details.csv").exists()
    assert list(isolated.source_dir.iterdir()) == []  # no temporary file left behind


def test_a_file_already_in_the_folder_is_used_as_is(isolated: settings_mod.Settings) -> None:
    isolated.source_dir.mkdir(parents=True)
    mine = isolated.source_dir / "northwind.sql"
    mine.write_text("-- my own copy\n")
    assert sourcedata.ensure(isolated, "northwind.sql") == mine
    assert mine.read_text() == "-- my own copy\n"


def test_without_shared_copy_it_downloads_from_the_pinned_commit(isolated: settings_mod.Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def offline(url: str, timeout: int) -> None:
        asked.append(url)
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConfigError, match=r"cannot download northwind\.sql"):
        sourcedata.ensure(isolated, "northwind.sql")
    assert asked == [f"{sourcedata.REPO_URL}/{sourcedata.COMMIT}/data/northwind.sql"]
