"""Compaction: only fully materialized fragments, never while a feature run is in flight, values kept, and
the orchestration stays true: new fragments are materialized partitions and a refresh computes nothing."""

from __future__ import annotations

import uuid

import dagster as dg
import pyarrow as pa
import pytest

from fashion_assets.catalog.sample import generate_sample
from fashion_assets.compaction import compact, plan_compaction
from fashion_assets.defs.automation import RUN_TAG
from fashion_assets.defs.partitions import FRAGMENTS
from fashion_assets.defs.sync import apply_partitions, plan_sync
from fashion_assets.features.registry import FEATURE_NAMES
from fashion_assets.indexes import index_status, update_indexes
from fashion_assets.ingest import ingest
from fashion_assets.project import Project
from fashion_assets.refresh import run_refresh
from fashion_assets.search import search
from fashion_assets.settings import Settings
from tests.test_checks import synthetic_features

FRAGMENT_ROWS = 50
COLUMNS = ["id", *FEATURE_NAMES, *(f"{n}_error" for n in FEATURE_NAMES)]


@pytest.fixture
def grown(tmp_path, monkeypatch) -> Project:
    """Four small fragments (four ingests of 15 rows), like a frequent ingest schedule leaves them."""
    source = tmp_path / "source"
    s = Settings(str(tmp_path / "db"), "products", str(source), FRAGMENT_ROWS)
    monkeypatch.setenv("FASHION_DB_URI", s.db_uri)
    monkeypatch.setenv("FASHION_SOURCE_DIR", s.source_dir)
    monkeypatch.setenv("FASHION_FRAGMENT_ROWS", str(FRAGMENT_ROWS))
    project = Project(s)
    for rows in (15, 30, 45, 60):
        generate_sample(source, rows, seed=2, clean=True)
        ingest(project.table, s.source_dir, project.specs(), FRAGMENT_ROWS)
    assert [f.physical_rows for f in project.table.fragments()] == [15, 15, 15, 15]
    return project


def snapshot(project: Project) -> dict[int, dict]:
    rows = project.table.dataset().to_table(columns=COLUMNS).to_pylist()
    return {r["id"]: r for r in rows}


def resource(project: Project):
    from fashion_assets.defs.resources import FashionTable

    s = project.settings
    return FashionTable(
        db_uri=s.db_uri, table_name=s.table_name, source_dir=s.source_dir, fragment_rows=s.fragment_rows
    )


def run_compaction(project: Project, instance: dg.DagsterInstance) -> dict:
    from fashion_assets.defs.maintenance import compaction_job

    result = compaction_job.execute_in_process(instance=instance, resources={"table": resource(project)})
    assert result.success
    return result.output_for_node("compact_fragments")


def test_plan_excludes_fragments_missing_any_feature(grown):
    frags = [f.id for f in grown.table.fragments()]
    plan = plan_compaction(grown)
    assert plan.eligible == [] and set(plan.excluded) == set(frags)
    synthetic_features(grown)
    plan = plan_compaction(grown)
    assert plan.eligible == frags and plan.small == frags and not plan.excluded
    # a column reset (a new feature version) makes every fragment unfinished again
    grown.table.dataset().drop_columns(["caption_embedding", "caption_embedding_error"])
    grown.table.ensure_columns([grown.spec("caption_embedding")])
    plan = plan_compaction(grown)
    assert plan.eligible == [] and all("caption_embedding" in why for why in plan.excluded.values())
    assert compact(grown).skipped and grown.table.fragments()[0].id == frags[0]


def test_compaction_job_merges_only_materialized_fragments_and_refresh_computes_nothing(grown, instance):
    project = grown
    frags = [f.id for f in project.table.fragments()]
    synthetic_features(project)  # every feature of every fragment, as finished feature runs leave them
    apply_partitions(plan_sync(project, instance), instance)  # what the sensor does: partitions + records
    update_indexes(project.table)
    before = snapshot(project)

    out = run_compaction(project, instance)
    assert not out.get("skipped")
    after_frags = [f.id for f in project.table.fragments()]
    assert out["removed_ids"] == sorted(set(frags) - set(after_frags))
    assert len(after_frags) < len(frags)
    assert snapshot(project) == before  # every value (and failure reason) kept, row for row

    # Dagster's picture is already true: partitions = fragments, all recorded materialized
    assert sorted(instance.get_dynamic_partitions(FRAGMENTS), key=int) == [str(f) for f in after_frags]
    for name in FEATURE_NAMES:
        recorded = instance.get_materialized_partitions(dg.AssetKey(name))
        assert {str(f) for f in after_frags} <= recorded
    plan = plan_sync(project, instance)
    assert not plan.add and not plan.delete and not plan.features_missing
    # the search indexes follow the rows into the new fragments (Lance remaps them)
    status = index_status(project.table)
    assert all(s["indexed_rows"] == 60 and s["unindexed_rows"] == 0 for s in status.values()), status
    assert search(project, "product 1007", k=1, mode="fts")[0]["id"] == 1007

    version = project.table.dataset().version
    runs = len(instance.get_runs())
    refresh = run_refresh(project, instance)
    assert refresh["run_id"] is None and refresh["success"]
    assert all(v["rows_computed"] == 0 for v in refresh["features"].values())
    assert project.table.dataset().version == version and len(instance.get_runs()) == runs


def test_unfinished_fragment_is_not_compacted_and_still_missing(grown, instance):
    project = grown
    frags = [f.id for f in project.table.fragments()]
    synthetic_features(project, frags[:2])
    synthetic_features(project, frags[3:])  # fragment 2 untouched: it bounds the merge
    apply_partitions(plan_sync(project, instance), instance)
    out = run_compaction(project, instance)
    after = [f.id for f in project.table.fragments()]
    assert frags[2] in after and frags[3] in after  # the unfinished one and the lone one after it stay
    assert set(out["removed_ids"]) == {frags[0], frags[1]}
    status = project.status()
    for name in FEATURE_NAMES:
        assert status.features[name].missing == [frags[2]]  # not turned into "materialized" nulls
    plan = plan_sync(project, instance)
    assert plan.missing == {name: [str(frags[2])] for name in FEATURE_NAMES}
    assert not plan.add and not plan.delete


def test_no_compaction_while_a_feature_run_is_in_flight(grown, instance):
    project = grown
    synthetic_features(project)
    apply_partitions(plan_sync(project, instance), instance)
    run = dg.DagsterRun(
        job_name="features_job",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={RUN_TAG: "1"},
    )
    instance.add_run(run)
    version = project.table.dataset().version
    out = run_compaction(project, instance)
    assert out["skipped"] == "feature runs in flight" and out["runs"] == [run.run_id]
    assert project.table.dataset().version == version

    instance.report_run_canceled(run)
    out = run_compaction(project, instance)
    assert not out.get("skipped") and project.table.dataset().version > version


def test_a_write_during_compaction_makes_it_plan_again(grown, monkeypatch):
    """A feature commit landing between the plan and the compaction commit is a conflict Lance detects;
    compaction plans again on the new version instead of overwriting it."""
    import fashion_assets.compaction as compaction

    project = grown
    synthetic_features(project)
    real_plan = compaction.plan_compaction
    calls: list[int] = []

    def plan_then_write(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        if not calls:  # a feature run rewrites a fragment's column while compaction reads the old version
            synthetic_features(
                project,
                [plan.eligible[0]],
                values={"color_tags": lambda ids, good: pa.array(["red"] * len(ids))},
            )
        calls.append(plan.table_version)
        return plan

    monkeypatch.setattr(compaction, "plan_compaction", plan_then_write)
    report = compaction.compact(project)
    assert len(calls) == 2 and calls[1] > calls[0]  # re-planned on the newer version
    assert report.fragments_removed == 4
    tags = project.table.dataset().to_table(columns=["id", "color_tags"]).to_pylist()
    first_fragment_ids = sorted(r["id"] for r in tags)[:15]
    assert {r["color_tags"] for r in tags if r["id"] in first_fragment_ids} == {"red"}  # the write survived
