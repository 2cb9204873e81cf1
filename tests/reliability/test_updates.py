"""Scenario 5: changed inputs are recomputed (only them) and their old feature values are never current."""

from __future__ import annotations

import lance
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fashion_assets.catalog.source import PRODUCT_SCHEMA
from fashion_assets.execution.driver import run_feature
from fashion_assets.execution.runners import InProcessRunner
from fashion_assets.store.table import StoreError
from fashion_assets.store.updates import update_rows

from .helpers import expected_color_tags, make_project, referenced_files_exist, stored


def refreshed(project, tmp_path, monkeypatch):
    s = run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    assert s.failures == [] and project.status().features["color_tags"].missing == []
    return s


def changed_rows(project, ids: list[int]) -> pa.Table:
    ds = project.table.dataset()
    rows = ds.to_table(columns=PRODUCT_SCHEMA.names, filter=f"id IN ({', '.join(map(str, ids))})")
    desc = pc.binary_join_element_wise(rows["description"], pa.scalar(" in bright pink"), "")
    return rows.set_column(rows.schema.get_field_index("description"), "description", desc)


def test_lance_update_would_serve_stale_values(tmp_path, monkeypatch):
    """The hazard update_rows exists for (NOTES.md): Lance's own update() keeps the old feature value."""
    project = make_project(tmp_path, 20, 10, monkeypatch)
    refreshed(project, tmp_path, monkeypatch)
    pid = sorted(stored(project, "color_tags"))[0]
    lance.dataset(project.table.uri).update({"description": "'plain pink scarf'"}, where=f"id = {pid}")
    status = project.status().features["color_tags"]
    assert status.missing == []  # reads as materialized ...
    assert stored(project, "color_tags")[pid] != "pink"  # ... while stale


def test_updated_rows_are_recomputed_only_them(tmp_path, monkeypatch):
    project = make_project(tmp_path, 40, 10, monkeypatch)
    refreshed(project, tmp_path, monkeypatch)
    ids = sorted(stored(project, "color_tags"))[3:6]  # three rows of the first fragment
    old = stored(project, "color_tags")
    version = project.table.dataset().version
    new_frags = update_rows(project.table, changed_rows(project, ids), PRODUCT_SCHEMA)
    assert project.table.dataset().version == version + 1  # one commit: deletes and append together
    assert project.table.dataset().count_rows() == 40
    # the new versions carry no feature value: missing, null, never the old value
    status = project.status().features["color_tags"]
    assert status.missing == new_frags
    now = stored(project, "color_tags")
    assert all(now[i] is None for i in ids)
    assert all(now[i] == old[i] for i in now if i not in ids)  # the others untouched
    s = run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    assert s.committed == new_frags and s.rows_computed == 3  # only them
    now = stored(project, "color_tags")
    assert now == expected_color_tags(project)
    assert all("pink" in now[i] for i in ids)
    assert referenced_files_exist(project) == []


def test_update_of_model_feature_input_recomputes_only_changed_rows(tmp_path, monkeypatch):
    project = make_project(tmp_path, 20, 10, monkeypatch)
    spec = project.spec("image_embedding")
    run_feature(project.table, project.features["image_embedding"], spec, runner=InProcessRunner())
    ids = sorted(project.table.dataset().to_table(columns=["id"])["id"].to_pylist())[:2]
    rows = changed_rows(project, ids)
    swapped = pa.array(list(reversed(rows["image_bytes"].to_pylist())), pa.binary())
    rows = rows.set_column(rows.schema.get_field_index("image_bytes"), "image_bytes", swapped)
    update_rows(project.table, rows, PRODUCT_SCHEMA)
    assert project.table.dataset().count_rows("image_embedding IS NULL") == 2
    s = run_feature(project.table, project.features["image_embedding"], spec, runner=InProcessRunner())
    assert s.rows_computed == 2 and project.status().features["image_embedding"].missing == []


def test_failed_update_commit_changes_nothing(tmp_path, monkeypatch):
    project = make_project(tmp_path, 20, 10, monkeypatch)
    refreshed(project, tmp_path, monkeypatch)
    version, old = project.table.dataset().version, stored(project, "color_tags")
    ids = sorted(old)[:2]

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lance.LanceDataset, "commit", staticmethod(broken))
    with pytest.raises(StoreError, match="cannot commit updated rows"):
        update_rows(project.table, changed_rows(project, ids), PRODUCT_SCHEMA)
    monkeypatch.undo()
    assert project.table.dataset().version == version
    assert stored(project, "color_tags") == old  # old rows intact, no half-applied update


def test_deleted_rows_disappear_from_status(tmp_path, monkeypatch):
    project = make_project(tmp_path, 30, 10, monkeypatch)
    refreshed(project, tmp_path, monkeypatch)
    frags = [f.id for f in project.table.fragments()]
    ids = sorted(stored(project, "color_tags"))
    first = project.table.dataset().get_fragment(frags[0]).to_table(columns=["id"])["id"].to_pylist()
    project.table.dataset().delete(f"id IN ({', '.join(map(str, first))})")  # a whole fragment
    project.table.dataset().delete(f"id = {ids[-1]}")
    status = project.status()
    assert status.rows == 30 - len(first) - 1
    assert status.fragments == frags[1:]
    assert (
        status.features["color_tags"].missing == []
        and status.features["color_tags"].materialized == frags[1:]
    )
    s = run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    assert s.rows_computed == 0
