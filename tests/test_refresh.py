"""Refresh through Dagster on a real instance: only missing fragments are computed, counted, not assumed."""

from __future__ import annotations

import re

import dagster as dg
import pytest

from fashion_assets.catalog.sample import generate_sample
from fashion_assets.defs.partitions import FRAGMENTS
from fashion_assets.project import Project
from fashion_assets.refresh import run_ingest, run_refresh


@pytest.fixture
def cheap_only():
    """Refresh colour tags only: model features have their own tests (Ray start-up costs seconds)."""
    return ["color_tags"]


def test_ingest_registers_fragments_as_partitions(settings, instance):
    meta = run_ingest(instance)
    project = Project(settings)
    keys = instance.get_dynamic_partitions(FRAGMENTS)
    assert keys == [str(f.id) for f in project.table.fragments()] == meta["fragments_added"]
    assert meta["rows_added"] == project.table.dataset().count_rows()


def test_refresh_computes_only_new_fragments(settings, instance, source, cheap_only):
    run_ingest(instance)
    project = Project(settings)
    first = run_refresh(project, instance, cheap_only)
    n_frags = len(project.table.fragments())
    rows = project.table.dataset().count_rows()
    assert first["success"]
    assert first["features"]["color_tags"]["fragments_computed"] == n_frags
    assert first["features"]["color_tags"]["rows_computed"] == rows
    assert project.status().features["color_tags"].missing == []
    # every partition is recorded as materialized in Dagster
    recorded = instance.get_materialized_partitions(dg.AssetKey("color_tags"))
    assert recorded == set(instance.get_dynamic_partitions(FRAGMENTS))

    generate_sample(source, 480, seed=7)  # more rows in the source folder
    meta = run_ingest(instance)
    new = meta["fragments_added"]
    assert new
    second = run_refresh(project, instance, cheap_only)
    assert second["features"]["color_tags"]["fragments_computed"] == len(new)
    assert second["features"]["color_tags"]["rows_computed"] == meta["rows_added"]
    assert project.status().features["color_tags"].missing == []


def test_refresh_with_nothing_missing_computes_nothing_and_writes_no_version(settings, instance, cheap_only):
    run_ingest(instance)
    project = Project(settings)
    run_refresh(project, instance, cheap_only)
    version = project.table.dataset().version
    runs = len(instance.get_runs())
    again = run_refresh(project, instance, cheap_only)
    assert again["run_id"] is None
    assert again["features"]["color_tags"]["fragments_computed"] == 0
    assert project.table.dataset().version == version
    assert len(instance.get_runs()) == runs


def test_colour_tags_values(settings, instance, cheap_only):
    run_ingest(instance)
    project = Project(settings)
    run_refresh(project, instance, cheap_only)
    rows = project.table.dataset().to_table(columns=["description", "color_tags"]).to_pylist()
    for r in rows:
        words = re.findall(r"[a-z]+", r["description"].lower())
        for colour in r["color_tags"].split(", ") if r["color_tags"] else []:
            assert colour in words
        for colour in ("black", "white", "red", "blue", "green"):
            if colour in words:
                assert colour in r["color_tags"]
