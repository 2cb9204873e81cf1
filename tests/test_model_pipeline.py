"""Model features end to end on real local Ray: only-missing, features on features, versions, failures, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
import ray

from fashion_assets.catalog.sample import generate_sample
from fashion_assets.execution.checkpoints import CheckpointStore
from fashion_assets.execution.driver import run_feature
from fashion_assets.execution.runners import RayRunner
from fashion_assets.features.image_embedding import ImageEmbedding
from fashion_assets.ingest import ingest
from fashion_assets.models.profiles import ClipSpec, ModelProfile
from fashion_assets.project import Project
from fashion_assets.refresh import run_ingest, run_refresh
from fashion_assets.settings import Settings


def alive_actors() -> list:
    """Actors of the connected Ray that are still alive (works without the dashboard)."""
    from ray._private import state

    return [a for a in state.actors().values() if a["State"] != "DEAD"]


@pytest.fixture
def small(settings, source, monkeypatch) -> Settings:
    """60 clean rows in fragments of 30: model features are slow on 2 CPU cores."""
    generate_sample(source, 60, seed=5, clean=True)
    monkeypatch.setenv("FASHION_FRAGMENT_ROWS", "30")
    return Settings(settings.db_uri, settings.table_name, settings.source_dir, 30)


def test_every_model_feature_through_refresh_then_only_new_rows(settings, instance, source, monkeypatch):
    generate_sample(source, 90, seed=5)  # small: every model step starts a Ray
    monkeypatch.setenv("FASHION_FRAGMENT_ROWS", "45")
    run_ingest(instance)
    project = Project(settings)
    first = run_refresh(project, instance)
    assert first["success"], first.get("errors")
    status = project.status()
    for name, fs in status.features.items():
        assert fs.missing == [], name
        assert first["features"][name]["fragments_computed"] == len(status.fragments)
    table = project.table.dataset().to_table()
    emb = table["image_embedding"].combine_chunks()
    assert emb.type == pa.list_(pa.float32(), 512)
    norms = [sum(x * x for x in v) ** 0.5 for v in emb.to_pylist()[:20] if v is not None]
    assert norms and all(abs(n - 1) < 1e-3 for n in norms)
    # a feature on a feature: a caption embedding exactly where there is a caption
    for row in table.select(["caption", "caption_embedding", "caption_embedding_error"]).to_pylist():
        if row["caption"]:
            assert row["caption_embedding"] is not None
        else:
            assert row["caption_embedding"] is None

    generate_sample(source, 120, seed=5)
    new = run_ingest(instance)["fragments_added"]
    second = run_refresh(project, instance)
    for name in status.features:
        assert second["features"][name]["fragments_computed"] == len(new), name


def test_caption_version_change_makes_caption_embedding_stale(small):
    project = Project(small)
    ingest(project.table, small.source_dir, project.specs(), small.fragment_rows)
    for name in ("caption", "caption_embedding"):
        run_feature(project.table, project.features[name], project.spec(name))
    assert project.status().features["caption_embedding"].missing == []
    project.features["caption"].version += "-next"  # a new caption version
    project.prepare()
    status = project.status()
    assert len(status.features["caption"].missing) == len(status.fragments)
    assert len(status.features["caption_embedding"].missing) == len(status.fragments)
    assert status.features["caption_embedding"].version.endswith("-next")
    again = run_feature(project.table, project.features["caption"], project.spec("caption"))
    assert len(again.committed) == len(status.fragments)  # recomputed, not appended to


def test_no_actors_left_after_a_failed_run_and_the_next_run_finishes(small, tmp_path):
    project = Project(small)
    ingest(project.table, small.source_dir, project.specs(), small.fragment_rows)
    spec = project.spec("image_embedding")
    gone = ClipSpec("local", "ViT-B-32", str(tmp_path / "missing.pt"), "local:missing.pt")  # deleted since
    broken = ImageEmbedding(ModelProfile("tiny", gone, project.profile.blip))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        failed = run_feature(project.table, broken, spec, runner=RayRunner())
        assert failed.committed == [] and len(failed.failures) == len(project.table.fragments())
        assert "missing.pt" in failed.failures[0].error or "worker" in failed.failures[0].error
        time.sleep(1)
        assert alive_actors() == []
        good = run_feature(project.table, project.features["image_embedding"], spec, runner=RayRunner())
        assert good.failures == [] and len(good.committed) == len(project.table.fragments())
        time.sleep(1)
        assert alive_actors() == []
    finally:
        ray.shutdown()


KILLED_RUN = Path(__file__).resolve().parent / "killed_run.py"


def test_killed_run_resumes_and_recomputes_at_most_one_checkpoint(settings, tmp_path, monkeypatch):
    generate_sample(settings.source_dir, 150, seed=3, clean=True)
    monkeypatch.setenv("FASHION_FRAGMENT_ROWS", "1000")  # one fragment of 300 rows
    project = Project(Settings(settings.db_uri, "products", settings.source_dir, 1000))
    ingest(project.table, settings.source_dir, project.specs(), 1000)
    (frag,) = project.table.fragments()
    counter = tmp_path / "computed.txt"
    proc = subprocess.Popen(
        [sys.executable, str(KILLED_RUN), str(counter), "10", "30", "8"], env=dict(os.environ)
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        done = sum(int(x) for x in counter.read_text().split()) if counter.exists() else 0
        if done >= 60:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    computed_before = sum(int(x) for x in counter.read_text().split())
    assert 60 <= computed_before < frag.physical_rows, "kill the run mid-fragment"
    spec = project.spec("image_embedding")
    saved = CheckpointStore.beside(project.table.db_uri, "products", "image_embedding", spec.version)
    checkpointed = saved.load(frag.id, spec.type).num_rows
    assert checkpointed % 30 == 0 and checkpointed > 0

    rerun = run_feature(project.table, project.features["image_embedding"], spec, checkpoint_size=30)
    assert rerun.rows_resumed == checkpointed
    assert rerun.rows_computed == frag.physical_rows - checkpointed
    recomputed = computed_before + rerun.rows_computed - frag.physical_rows
    assert 0 <= recomputed <= 30, json.dumps({"before": computed_before, "rerun": rerun.rows_computed})
    assert project.status().features["image_embedding"].missing == []
    assert saved.load(frag.id, spec.type) is None  # checkpoints cleared after the commit
    assert project.table.dataset().count_rows("image_embedding IS NULL") == 0
