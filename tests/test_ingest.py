"""Ingest: new rows only, in fragments, every reject recorded with its reason, bad folders refused."""

from __future__ import annotations

import pytest

from fashion_assets.catalog.sample import generate_sample
from fashion_assets.catalog.source import SourceError
from fashion_assets.ingest import ingest, read_rejects
from fashion_assets.project import Project


def test_ingest_appends_in_fragments_and_records_rejects(settings, source):
    project = Project(settings)
    report = ingest(project.table, source, project.specs(), settings.fragment_rows)
    sample = generate_sample(source, 300, seed=7)  # same content again: tells us what to expect
    expected_rows = len(sample.unique_ids) - len(sample.missing_image)
    assert report.rows_added == expected_rows == project.table.dataset().count_rows()
    assert report.fragments_added == [str(f.id) for f in project.table.fragments()]
    assert all(f.physical_rows <= settings.fragment_rows for f in project.table.fragments())
    reasons = {(r["id"], r["reason"]) for r in report.rejected}
    assert {(str(i), "missing image file") for i in sample.missing_image} <= reasons
    assert {(str(i), "duplicate id") for i in sample.duplicate_id} <= reasons
    assert report.rows_repaired == len(sample.comma_in_name)
    stored = read_rejects(project.table).to_pylist()
    assert {(r["id"], r["reason"]) for r in stored} == reasons
    assert all(status.missing for status in project.status().features.values())


def test_second_ingest_adds_only_new_ids_and_commits_nothing_when_none(settings, source):
    project = Project(settings)
    ingest(project.table, source, project.specs(), settings.fragment_rows)
    version = project.table.dataset().version
    again = ingest(project.table, source, project.specs(), settings.fragment_rows)
    assert again.rows_added == 0 and again.fragments_added == []
    assert project.table.dataset().version == version
    assert len(read_rejects(project.table)) == len(again.rejected)  # recorded once, not per run

    generate_sample(source, 450, seed=7)  # 150 more rows appended to the same folder
    more = ingest(project.table, source, project.specs(), settings.fragment_rows)
    assert 100 < more.rows_added <= 150
    ids = project.table.dataset().to_table(columns=["id"])["id"].to_pylist()
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "breakage, message",
    [("no_folder", "does not exist"), ("no_csv", "styles.csv"), ("bad_header", "header")],
)
def test_bad_source_is_a_clear_error_and_writes_nothing(settings, source, breakage, message):
    if breakage == "no_folder":
        path = source.parent / "nope"
    elif breakage == "no_csv":
        (source / "styles.csv").unlink()
        path = source
    else:
        csv = source / "styles.csv"
        csv.write_text("id,name\n1,x\n")
        path = source
    project = Project(settings)
    with pytest.raises(SourceError, match=message):
        ingest(project.table, path, project.specs(), settings.fragment_rows)
    assert not project.table.exists()


def _ingest_in_process(settings_tuple, barrier) -> None:
    from fashion_assets.settings import Settings

    settings = Settings(*settings_tuple)
    project = Project(settings)
    barrier.wait()
    ingest(project.table, settings.source_dir, project.specs(), settings.fragment_rows)


def test_two_ingests_at_once_add_each_row_once(settings):
    import multiprocessing as mp

    project = Project(settings)
    project.prepare()  # both start from an existing table
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    args = (settings.db_uri, settings.table_name, settings.source_dir, settings.fragment_rows)
    procs = [ctx.Process(target=_ingest_in_process, args=(args, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    ids = project.table.dataset().to_table(columns=["id"])["id"].to_pylist()
    assert ids and len(ids) == len(set(ids))
    rejects = [(r["id"], r["reason"]) for r in read_rejects(project.table).to_pylist()]
    assert rejects and len(rejects) == len(set(rejects))  # each bad row recorded once, not per ingest


def test_append_refuses_to_commit_over_a_newer_append(settings):
    import pyarrow as pa

    from fashion_assets.catalog.source import PRODUCT_SCHEMA
    from fashion_assets.store.table import ConcurrentAppendError

    project = Project(settings)
    project.prepare()
    stale = project.table.dataset().version

    def rows(start: int) -> list[pa.RecordBatch]:
        data = {n: pa.nulls(2, PRODUCT_SCHEMA.field(n).type) for n in PRODUCT_SCHEMA.names}
        data["id"] = pa.array([start, start + 1], pa.int64())
        return [pa.record_batch(list(data.values()), schema=PRODUCT_SCHEMA)]

    project.table.append(rows(1), PRODUCT_SCHEMA, 10, read_version=stale)
    version = project.table.dataset().version
    with pytest.raises(ConcurrentAppendError):
        project.table.append(rows(1), PRODUCT_SCHEMA, 10, read_version=stale)
    assert project.table.dataset().version == version
