"""Small real tables for the reliability suite: a clean sample catalogue ingested in small fragments."""

from __future__ import annotations

import os
from pathlib import Path

from fashion_assets.catalog.sample import generate_sample
from fashion_assets.features.color_tags import ColorTags
from fashion_assets.ingest import ingest
from fashion_assets.project import Project
from fashion_assets.settings import Settings


def make_project(tmp_path: Path, rows: int, fragment_rows: int, monkeypatch=None, seed: int = 4) -> Project:
    """``rows`` clean products ingested in fragments of ``fragment_rows``; env exported for subprocesses."""
    source = tmp_path / "source"
    generate_sample(source, rows, seed=seed, clean=True)
    s = Settings(str(tmp_path / "db"), "products", str(source), fragment_rows)
    if monkeypatch is not None:
        monkeypatch.setenv("FASHION_DB_URI", s.db_uri)
        monkeypatch.setenv("FASHION_SOURCE_DIR", s.source_dir)
        monkeypatch.setenv("FASHION_FRAGMENT_ROWS", str(fragment_rows))
        monkeypatch.setenv("FASHION_TABLE", s.table_name)
    project = Project(s)
    ingest(project.table, s.source_dir, project.specs(), fragment_rows)
    return project


def referenced_files_exist(project: Project) -> list[str]:
    """Every data/deletion file the latest manifest references that is NOT on disk (empty = no orphans)."""
    ds = project.table.dataset()
    base = Path(project.table.uri)
    missing = []
    for frag in ds.get_fragments():
        for d in frag.metadata.files:
            if not (base / "data" / d.path).exists():
                missing.append(f"fragment {frag.fragment_id}: data/{d.path}")
    return missing


def expected_color_tags(project: Project) -> dict[int, str]:
    """color_tags recomputed here from the current descriptions, by id."""
    t = project.table.dataset().to_table(columns=["id", "description"]).combine_chunks()
    if t.num_rows == 0:
        return {}
    values = ColorTags().compute(t.to_batches()[0]).values.to_pylist()
    return dict(zip(t["id"].to_pylist(), values, strict=True))


def stored(project: Project, column: str) -> dict[int, object]:
    t = project.table.dataset().to_table(columns=["id", column])
    return dict(zip(t["id"].to_pylist(), t[column].to_pylist(), strict=True))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("LANCE_LOG", "error")
    return env
