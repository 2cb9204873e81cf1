"""The fragment sensor against a changed table: new fragments, vanished fragments, data already present."""

from __future__ import annotations

import dagster as dg

from fashion_assets.defs.automation import fragment_sensor
from fashion_assets.defs.partitions import FRAGMENTS
from fashion_assets.defs.resources import FashionTable
from fashion_assets.defs.sync import apply_partitions, plan_sync
from fashion_assets.execution.driver import run_feature
from fashion_assets.ingest import ingest
from fashion_assets.project import Project


def evaluate(instance: dg.DagsterInstance) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, resources={"table": FashionTable()}) as ctx:
        return fragment_sensor(ctx)


def test_sensor_adds_new_fragments_and_requests_one_run(settings, instance):
    project = Project(settings)
    ingest(project.table, settings.source_dir, project.specs(), settings.fragment_rows)
    frags = [str(f.id) for f in project.table.fragments()]
    result = evaluate(instance)
    (add,) = result.dynamic_partitions_requests
    assert isinstance(add, dg.AddDynamicPartitionsRequest)
    assert add.partitions_def_name == FRAGMENTS and list(add.partition_keys) == frags
    (run,) = result.run_requests
    assert {k.to_user_string() for k in run.asset_selection} == set(project.features)
    assert run.tags["dagster/asset_partition_range_start"] == frags[0]
    assert run.tags["dagster/asset_partition_range_end"] == frags[-1]


def test_sensor_reports_present_data_without_recompute_and_deletes_vanished(settings, instance):
    project = Project(settings)
    ingest(project.table, settings.source_dir, project.specs(), settings.fragment_rows)
    apply_partitions(plan_sync(project, instance), instance)  # partitions known, nothing recorded
    # colour tags computed outside Dagster (say, before a compaction): the sensor must record them
    run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    first, *rest = project.table.fragments()
    project.table.dataset().delete(_ids_filter(project, first.id))
    result = evaluate(instance)
    deletes = [
        r for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)
    ]
    assert [list(d.partition_keys) for d in deletes] == [[str(first.id)]]
    reported = {(e.asset_key.to_user_string(), e.partition) for e in result.asset_events}
    assert reported == {("color_tags", str(f.id)) for f in rest}
    (run,) = result.run_requests  # model features are still missing
    assert "color_tags" not in {k.to_user_string() for k in run.asset_selection}


def test_sensor_requests_nothing_while_a_refresh_is_in_flight(settings, instance):
    project = Project(settings)
    ingest(project.table, settings.source_dir, project.specs(), settings.fragment_rows)
    instance.add_run(
        dg.DagsterRun(
            job_name="features_job", status=dg.DagsterRunStatus.STARTED, tags={"fashion/refresh": "1"}
        )
    )
    run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))  # mid-run commits
    result = evaluate(instance)
    assert result.run_requests == []
    assert result.dynamic_partitions_requests  # partitions are still kept in sync
    assert result.asset_events == []  # the running refresh reports its own fragments


def _ids_filter(project: Project, fragment_id: int) -> str:
    ids = project.table.dataset().get_fragment(fragment_id).to_table(columns=["id"])["id"].to_pylist()
    return f"id IN ({', '.join(map(str, ids))})"


def test_a_big_backlog_is_split_into_runs(settings, instance, monkeypatch):
    monkeypatch.setenv("FASHION_MAX_FRAGMENTS_PER_RUN", "2")
    project = Project(settings)
    ingest(project.table, settings.source_dir, project.specs(), settings.fragment_rows)
    frags = [str(f.id) for f in project.table.fragments()]
    assert len(frags) > 2
    (run,) = evaluate(instance).run_requests
    assert run.tags["dagster/asset_partition_range_start"] == frags[0]
    assert run.tags["dagster/asset_partition_range_end"] == frags[1]
