"""Scenario 6: a feature version bump makes every fragment missing; an interrupted recompute never shows a
mix of versions as current."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from fashion_assets.execution.driver import run_feature
from fashion_assets.execution.runners import InProcessRunner, Job, Outcome

from .helpers import expected_color_tags, make_project, referenced_files_exist, stored


class InterruptAfter:
    """Yields ``n`` fragments, then raises KeyboardInterrupt (a Ctrl-C / cancelled run half-way)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def run(self, job: Job, tasks: Sequence) -> Iterator[Outcome]:
        for i, outcome in enumerate(InProcessRunner().run(job, tasks)):
            if i == self.n:
                raise KeyboardInterrupt
            yield outcome


class BumpAfterFirst:
    """Computes at the old version; the version is bumped (columns reset) after the first fragment."""

    def __init__(self, project) -> None:
        self.project = project

    def run(self, job: Job, tasks: Sequence) -> Iterator[Outcome]:
        for i, outcome in enumerate(InProcessRunner().run(job, tasks)):
            if i == 0:
                self.project.features["color_tags"].version += "-bumped"
                self.project.prepare()
            yield outcome


def test_version_bump_then_interrupted_recompute(tmp_path, monkeypatch):
    project = make_project(tmp_path, 40, 10, monkeypatch)  # 4 fragments
    frags = [f.id for f in project.table.fragments()]
    run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    assert project.status().features["color_tags"].missing == []

    project.features["color_tags"].version = "2"
    assert project.prepare() == ["color_tags: reset to version 2"]
    status = project.status().features["color_tags"]
    assert status.version == "2" and status.missing == frags and status.materialized == []
    assert project.table.dataset().count_rows("color_tags IS NOT NULL") == 0  # no v1 value left to serve

    with pytest.raises(KeyboardInterrupt):
        run_feature(
            project.table,
            project.features["color_tags"],
            project.spec("color_tags"),
            runner=InterruptAfter(2),
            commit_every=8,
        )
    status = project.status().features["color_tags"]
    # the finished fragments are kept at the new version, the rest read as missing
    assert status.materialized == frags[:2] and status.missing == frags[2:]
    assert project.table.dataset().count_rows("color_tags IS NOT NULL") == 20  # only v2 values, 2 fragments
    assert referenced_files_exist(project) == []

    s = run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    assert s.skipped == frags[:2] and s.committed == frags[2:] and s.rows_computed == 20
    assert stored(project, "color_tags") == expected_color_tags(project)


def test_values_of_the_old_version_are_not_committed_after_a_bump(tmp_path, monkeypatch):
    project = make_project(tmp_path, 30, 10, monkeypatch)
    frags = [f.id for f in project.table.fragments()]
    s = run_feature(
        project.table,
        project.features["color_tags"],
        project.spec("color_tags"),
        runner=BumpAfterFirst(project),
        commit_every=8,
    )
    # computed at the old version, written after the reset: refused as stale, never reported current
    assert sorted(s.not_committed) == frags and s.committed == []
    status = project.status().features["color_tags"]
    assert status.version.endswith("-bumped") and status.missing == frags
    assert project.table.dataset().count_rows("color_tags IS NOT NULL") == 0
