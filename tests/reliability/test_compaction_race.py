"""Scenario 4: compaction lands while a feature run is computing; one side fails cleanly, nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fashion_assets.compaction import compact
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
