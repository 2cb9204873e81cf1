"""Shared fixtures: the tiny model profile, a sample catalogue, a fresh table, a real Dagster instance."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["FASHION_MODEL_PROFILE"] = "tiny"  # offline, deterministic models everywhere in the tests
os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from fashion_assets.catalog.sample import generate_sample  # noqa: E402
from fashion_assets.settings import Settings  # noqa: E402


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A 300-row sample catalogue with the real file's quirks."""
    out = tmp_path / "source"
    generate_sample(out, 300, seed=7)
    return out


@pytest.fixture
def settings(tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at a fresh table under tmp_path, also exported as FASHION_* variables."""
    s = Settings(str(tmp_path / "db"), "products", str(source), 100)
    monkeypatch.setenv("FASHION_DB_URI", s.db_uri)
    monkeypatch.setenv("FASHION_SOURCE_DIR", s.source_dir)
    monkeypatch.setenv("FASHION_FRAGMENT_ROWS", str(s.fragment_rows))
    return s


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real, persistent Dagster instance in its own DAGSTER_HOME with the project's dagster.yaml."""
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).parent.parent / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as inst:
        yield inst
