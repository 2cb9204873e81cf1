"""Scenario 1: SIGKILL in the middle of a model feature over several fragments, some already finished;
and SIGKILL of a driver that started its own Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from fashion_assets.execution.checkpoints import CheckpointStore
from fashion_assets.execution.driver import RunSummary, run_feature
from fashion_assets.execution.runners import InProcessRunner
from fashion_assets.project import Project

from .helpers import child_env, make_project, referenced_files_exist

FRAG_ROWS = 20
CHECKPOINT = 10

KILLED_RUN = Path(__file__).resolve().parent.parent / "killed_run.py"


def rerun_in_process(project: Project) -> RunSummary:
    """``image_embedding`` again, in process, with the same checkpoint size: the user's next refresh."""
    return run_feature(
        project.table,
        project.features["image_embedding"],
        project.spec("image_embedding"),
        runner=InProcessRunner(),
        checkpoint_size=CHECKPOINT,
    )


def test_sigkill_mid_model_feature_over_several_fragments(tmp_path, monkeypatch):
    project = make_project(tmp_path, 80, FRAG_ROWS, monkeypatch)  # 4 fragments of 20
    frags = [f.id for f in project.table.fragments()]
    assert len(frags) == 4
    counter = tmp_path / "computed.txt"
    proc = subprocess.Popen(
        [sys.executable, str(KILLED_RUN), str(counter), "5", str(CHECKPOINT), "1"], env=child_env()
    )
    deadline = time.time() + 180
    target = 2 * FRAG_ROWS + CHECKPOINT  # two fragments finished and committed, one checkpoint into the third
    while time.time() < deadline and proc.poll() is None:
        done = sum(int(x) for x in counter.read_text().split()) if counter.exists() else 0
        if done >= target:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    computed_before = sum(int(x) for x in counter.read_text().split())
    assert target <= computed_before < len(frags) * FRAG_ROWS, "kill the run mid-way"

    # the table is readable at its latest version, and the manifest references no missing file
    ds = project.table.dataset()
    assert ds.count_rows() == 80
    ds.to_table(columns=["id", "image_embedding", "image_embedding_error"])
    assert referenced_files_exist(project) == []
    status = project.status().features["image_embedding"]
    finished = status.materialized
    assert len(finished) >= 2 and status.missing, status
    # a finished fragment holds real values; an unfinished one reads as missing, not as nulls "computed"
    assert ds.count_rows("image_embedding IS NOT NULL") == len(finished) * FRAG_ROWS

    spec = project.spec("image_embedding")
    saved = CheckpointStore.beside(project.table.db_uri, "products", "image_embedding", spec.version)
    loaded = [saved.load(f, spec.type) for f in status.missing]
    checkpointed = sum(t.num_rows for t in loaded if t is not None)

    rerun = rerun_in_process(project)
    assert rerun.failures == []
    assert sorted(rerun.skipped) == sorted(finished)  # finished fragments not recomputed
    assert sorted(rerun.committed) == sorted(status.missing)
    assert rerun.rows_resumed == checkpointed
    assert rerun.rows_computed == len(status.missing) * FRAG_ROWS - checkpointed
    recomputed = computed_before + rerun.rows_computed - 80
    assert 0 <= recomputed <= CHECKPOINT  # at most one checkpoint of the in-flight fragment lost
    assert project.status().features["image_embedding"].missing == []
    assert project.table.dataset().count_rows("image_embedding IS NULL") == 0
    assert referenced_files_exist(project) == []


def test_sigkill_driver_that_started_its_own_ray(tmp_path, monkeypatch):
    """The driver started a private local Ray (as ``fashion-assets refresh`` does) and is killed while its
    actor computes: every Ray process of that run goes with it, and the next run resumes from what the actor
    checkpointed and the driver committed."""
    rows = 5 * FRAG_ROWS  # the actor has 2 fragments queued and may finish them before it notices
    project = make_project(tmp_path, rows, FRAG_ROWS, monkeypatch)
    counter = tmp_path / "computed.txt"
    proc = subprocess.Popen(
        [sys.executable, str(KILLED_RUN), str(counter), "5", str(CHECKPOINT), "1", "ray"], env=child_env()
    )
    deadline = time.time() + 240
    target = FRAG_ROWS + CHECKPOINT  # one fragment computed, one checkpoint into the next
    while time.time() < deadline and proc.poll() is None:
        done = sum(int(x) for x in counter.read_text().split()) if counter.exists() else 0
        if done >= target:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    ray_procs = psutil.Process(proc.pid).children(recursive=True)
    names = sorted({p.name() for p in ray_procs})
    assert any("raylet" in n for n in names) and any("gcs_server" in n for n in names), names
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The actor notices its driver is gone within seconds (it may finish a batch and save a checkpoint
    # meanwhile: harmless, only the driver commits). Ray's two agents wait about 60 s more on the dead GCS
    # before they exit (measured: 62-63 s); they are idle, and waiting for them here would cost CI a minute.
    _, alive = psutil.wait_procs(ray_procs, timeout=30)
    left = sorted(p.name() for p in alive)
    assert set(left) <= {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}, (
        f"Ray processes still running: {left}"
    )
    computed_before = sum(int(x) for x in counter.read_text().split())  # now that no actor can add to it
    assert target <= computed_before < rows, "kill the run mid-way"

    status = project.status().features["image_embedding"]
    assert referenced_files_exist(project) == []
    rerun = rerun_in_process(project)
    assert rerun.failures == [] and sorted(rerun.committed) == sorted(status.missing)
    assert sorted(rerun.skipped) == sorted(status.materialized)
    recomputed = computed_before + rerun.rows_computed - rows
    assert 0 <= recomputed <= CHECKPOINT  # one actor, one fragment in flight: at most one checkpoint lost
    assert project.status().features["image_embedding"].missing == []
    assert project.table.dataset().count_rows("image_embedding IS NULL") == 0
