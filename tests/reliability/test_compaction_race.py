"""Scenario 4: compaction and a feature run commit to the same fragments, in either order; one side fails
cleanly, nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from lance.optimize import Compaction

from fashion_assets.compaction import compact, plan_compaction
from fashion_assets.execution.driver import run_feature
from fashion_assets.execution.runners import InProcessRunner, Job, Outcome
from fashion_assets.features.registry import FEATURE_NAMES
from tests.test_checks import synthetic_features

from .helpers import expected_color_tags, make_project, referenced_files_exist, stored


class CompactAfterFirst:
    """Computes like InProcessRunner, but runs a compaction right after the first fragment is computed
    (its column file written, not yet committed): the run's later commits meet a compacted table."""

    def __init__(self, project) -> None:
        self.project = project
        self.report = None

    def run(self, job: Job, tasks: Sequence) -> Iterator[Outcome]:
        for i, outcome in enumerate(InProcessRunner().run(job, tasks)):
            if i == 0:
                self.report = compact(self.project, target_rows=100)
            yield outcome


def test_compaction_during_a_feature_run(tmp_path, monkeypatch):
    project = make_project(tmp_path, 60, 15, monkeypatch)  # 4 fragments of 15
    f0, f1, f2, f3 = (f.id for f in project.table.fragments())
    synthetic_features(project, [f0, f1])  # f0, f1 fully materialized: eligible for compaction
    before = stored(project, "color_tags")
    version = project.table.dataset().version

    # a run recomputing color_tags on f0 (about to be compacted away) and computing f2, f3 (kept out)
    runner = CompactAfterFirst(project)
    s = run_feature(
        project.table,
        project.features["color_tags"],
        project.spec("color_tags"),
        fragment_ids=[f0, f2, f3],
        runner=runner,
        recompute=True,
        commit_every=8,
    )
    assert runner.report is not None and runner.report.removed_ids == [f0, f1]
    assert s.failures == []
    assert s.not_committed == [f0]  # the compacted fragment's file is dropped, reported, never committed
    assert sorted(s.committed) == [f2, f3]
    assert project.table.dataset().version > version

    # nothing lost: every row is there; compacted rows keep their values; new values are right
    ds = project.table.dataset()
    assert ds.count_rows() == 60
    after = stored(project, "color_tags")
    expected = expected_color_tags(project)
    for pid, value in after.items():
        assert value == (before[pid] if pid in before and before[pid] is not None else expected[pid])
    assert referenced_files_exist(project) == []

    # the next refresh computes nothing for color_tags; the other features only on f2, f3
    status = project.status()
    assert status.features["color_tags"].missing == []
    for name in FEATURE_NAMES[1:]:
        assert status.features[name].missing == [f2, f3], name
    again = run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    assert again.committed == [] and again.rows_computed == 0


def test_compaction_that_read_an_older_version_does_not_undo_a_feature_commit(tmp_path, monkeypatch):
    """The other order: compaction reads the table, a feature commit to one of the fragments it is rewriting
    lands, then compaction tries to commit the rewrite it made from the older data. Lance must refuse it
    (``compact`` then plans again), or the newer feature values would silently revert."""
    project = make_project(tmp_path, 60, 15, monkeypatch)  # 4 fragments of 15
    f0, f1, f2, f3 = (f.id for f in project.table.fragments())
    synthetic_features(project, [f0, f1])  # eligible; color_tags "blue" everywhere on them
    ds = project.table.dataset()
    excluded = sorted(plan_compaction(project, 100, ds).excluded)
    assert excluded == [f2, f3]
    options = {"target_rows_per_fragment": 100, "excluded_fragment_ids": excluded}
    planned = Compaction.plan(ds, options)
    rewrites = [task.execute(ds) for task in planned.tasks]  # written from the "blue" data

    # meanwhile: color_tags recomputed on f0 from the descriptions (real values, not "blue")
    s = run_feature(
        project.table,
        project.features["color_tags"],
        project.spec("color_tags"),
        fragment_ids=[f0],
        recompute=True,
    )
    assert s.committed == [f0]
    recomputed = stored(project, "color_tags")
    expected = expected_color_tags(project)
    f0_ids = set(ds.get_fragment(f0).to_table(columns=["id"])["id"].to_pylist())
    assert any(expected[i] != "blue" for i in f0_ids), "the recompute must change something to be seen"

    with pytest.raises(OSError, match="(?i)conflict"):
        Compaction.commit(ds, rewrites, options)
    assert stored(project, "color_tags") == recomputed  # nothing reverted

    report = compact(project, target_rows=100)  # plans again on the new version and lands
    assert report.removed_ids == [f0, f1]
    after = stored(project, "color_tags")
    assert after == recomputed
    assert all(after[i] == expected[i] for i in f0_ids)
    assert referenced_files_exist(project) == []
