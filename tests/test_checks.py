"""Data-quality checks: pass on good data, fail on planted bad data (non-unit vector, null without a
reason, blank caption, too many failures, index behind), and run as Dagster asset checks."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from fashion_assets.catalog.sample import generate_sample
from fashion_assets.defs.checks import (
    FAILURE_RATE_ENV,
    build_checks,
    captions_finding,
    coverage_finding,
    embedding_finding,
    failure_rate_finding,
    nulls_finding,
)
from fashion_assets.indexes import update_indexes
from fashion_assets.ingest import ingest
from fashion_assets.project import Project
from fashion_assets.settings import Settings
from tests.test_indexes import unit_vectors, vectors_array, write_feature

FRAGMENT_ROWS = 30

Override = Callable[[list[int], pa.Array], pa.Array]


@pytest.fixture
def small(tmp_path, monkeypatch) -> Settings:
    """A 60-row clean sample in two fragments (exported as FASHION_* like conftest's ``settings``)."""
    generate_sample(tmp_path / "source", 60, seed=3, clean=True)
    s = Settings(str(tmp_path / "db"), "products", str(tmp_path / "source"), FRAGMENT_ROWS)
    monkeypatch.setenv("FASHION_DB_URI", s.db_uri)
    monkeypatch.setenv("FASHION_SOURCE_DIR", s.source_dir)
    monkeypatch.setenv("FASHION_FRAGMENT_ROWS", str(s.fragment_rows))
    return s


def synthetic_features(
    project: Project,
    fragments: list[int] | None = None,
    values: dict[str, Override] | None = None,
    errors: dict[str, Callable[[list[int]], pa.Array]] | None = None,
) -> None:
    """Write every feature for ``fragments`` (default all) with good synthetic values, through the store;
    ``values[name](ids, good)`` / ``errors[name](ids)`` replace a feature's values / failure reasons."""
    values, errors = values or {}, errors or {}
    good: dict[str, Callable[[list[int]], pa.Array]] = {
        "color_tags": lambda ids: pa.array(["blue"] * len(ids)),
        "image_embedding": lambda ids: vectors_array(unit_vectors(len(ids), ids[0])),
        "caption": lambda ids: pa.array([f"a photo of product {i}" for i in ids]),
        "caption_embedding": lambda ids: vectors_array(unit_vectors(len(ids), ids[0] + 1)),
    }
    for f in fragments if fragments is not None else [x.id for x in project.table.fragments()]:
        for name, make in good.items():
            change = values.get(name)

            def fill(ids: list[int], make=make, change=change) -> pa.Array:
                return change(ids, make(ids)) if change else make(ids)

            write_feature(project.table, project.spec(name), f, fill, errors.get(name))


def table_of(small: Settings) -> Project:
    project = Project(small)
    ingest(project.table, small.source_dir, project.specs(), FRAGMENT_ROWS)
    return project


def test_good_data_passes_every_check(small):
    project = table_of(small)
    synthetic_features(project)
    for name in ("image_embedding", "caption_embedding"):
        found = embedding_finding(project, name)
        assert found.passed, found.description
        assert found.metadata["vectors_checked"] == 60
    for name in ("color_tags", "image_embedding", "caption", "caption_embedding"):
        assert nulls_finding(project, name).passed
        assert failure_rate_finding(project, name).passed
    assert captions_finding(project).passed


def test_unmaterialized_fragments_are_not_judged(small):
    project = table_of(small)
    first = project.table.fragments()[0].id
    synthetic_features(project, [first])  # the second fragment's features are all null, no reasons
    assert nulls_finding(project, "image_embedding").passed
    assert nulls_finding(project, "image_embedding").metadata["fragments_checked"] == 1
    assert failure_rate_finding(project, "caption").metadata["rows"] == FRAGMENT_ROWS


def test_non_unit_vector_fails(small):
    project = table_of(small)
    bad_id: list[int] = []

    def stretch(ids: list[int], good: pa.Array) -> pa.Array:
        v = np.array(good.to_pylist(), dtype=np.float32)
        if not bad_id:
            v[3] *= 1.5
            bad_id.append(ids[3])
        return vectors_array(v)

    synthetic_features(project, values={"image_embedding": stretch})
    found = embedding_finding(project, "image_embedding")
    assert not found.passed
    assert found.metadata["not_unit_norm"] == 1 and found.metadata["bad_ids_sample"] == bad_id
    assert found.metadata["max_norm_error"] == pytest.approx(0.5, abs=1e-3)
    assert embedding_finding(project, "caption_embedding").passed


def test_null_without_reason_fails_but_null_with_reason_or_null_input_passes(small):
    project = table_of(small)

    def hole(ids: list[int], good: pa.Array) -> pa.Array:
        valid = np.ones(len(ids), dtype=bool)
        valid[0] = False
        return vectors_array(np.array(good.to_pylist(), dtype=np.float32), valid)

    def reason_for_first(ids: list[int]) -> pa.Array:
        return pa.array(["unreadable image"] + [None] * (len(ids) - 1), pa.string())

    # a null with its reason recorded: fine
    synthetic_features(
        project, values={"image_embedding": hole}, errors={"image_embedding": reason_for_first}
    )
    assert nulls_finding(project, "image_embedding").passed
    # a null caption (its failure recorded on caption) makes a null caption_embedding with no reason: fine
    null_first = {"caption": lambda ids, good: pa.array([None, *good.to_pylist()[1:]], pa.string())}
    synthetic_features(
        project, values={**null_first, "caption_embedding": hole}, errors={"caption": reason_for_first}
    )
    assert nulls_finding(project, "caption_embedding").passed
    # a null with no reason and a real input: bad
    synthetic_features(project, values={"caption_embedding": hole})
    found = nulls_finding(project, "caption_embedding")
    assert not found.passed and found.metadata["null_without_reason"] == 2  # first row of each fragment
    # a value that also records a failure: bad
    synthetic_features(project, errors={"color_tags": reason_for_first})
    found = nulls_finding(project, "color_tags")
    assert not found.passed and found.metadata["value_with_reason"] == 2


def test_failure_rate_threshold_is_configurable(small, monkeypatch):
    project = table_of(small)

    def some_fail(ids: list[int]) -> pa.Array:
        return pa.array(["bad image" if i % 10 == 0 else None for i in range(len(ids))], pa.string())

    def nulls_there(ids: list[int], good: pa.Array) -> pa.Array:
        v = np.array(good.to_pylist(), dtype=np.float32)
        return vectors_array(v, np.array([i % 10 != 0 for i in range(len(ids))]))

    synthetic_features(
        project, values={"image_embedding": nulls_there}, errors={"image_embedding": some_fail}
    )
    found = failure_rate_finding(project, "image_embedding")  # 6 of 60 = 10% > 5%
    assert not found.passed and found.metadata["failed_rows"] == 6
    assert nulls_finding(project, "image_embedding").passed  # every null has its reason
    monkeypatch.setenv(FAILURE_RATE_ENV, "0.2")
    assert failure_rate_finding(project, "image_embedding").passed
    assert not failure_rate_finding(project, "image_embedding", threshold=0.01).passed


def test_blank_caption_fails(small):
    project = table_of(small)
    blank = {"caption": lambda ids, good: pa.array(["  ", *good.to_pylist()[1:]], pa.string())}
    synthetic_features(project, values=blank)
    found = captions_finding(project)
    assert not found.passed and found.metadata["blank_captions"] == 2


def test_checks_run_in_dagster_and_index_coverage(small, instance):
    from fashion_assets.defs.assets import build_feature_assets
    from fashion_assets.defs.resources import FashionTable
    from fashion_assets.defs.search_assets import search_index

    project = table_of(small)
    stretch = {"image_embedding": lambda ids, good: vectors_array(np.array(good.to_pylist(), np.float32) * 2)}
    synthetic_features(project, values=stretch)
    assert not coverage_finding(project).passed  # no index yet

    resource = FashionTable(db_uri=small.db_uri, source_dir=small.source_dir, fragment_rows=FRAGMENT_ROWS)
    defs = dg.Definitions(
        assets=[*build_feature_assets(), search_index],
        asset_checks=build_checks(),
        jobs=[dg.define_asset_job("quality", selection=dg.AssetSelection.all_asset_checks())],
        resources={"table": resource, "ray": dg.ResourceDefinition.none_resource()},
    )
    result = defs.resolve_job_def("quality").execute_in_process(instance=instance)
    assert result.success  # failed checks do not fail the run
    evals = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    assert len(evals) == 12  # 2 embedding + 4 nulls + 4 failure-rate + captions + coverage
    assert not evals[("image_embedding", "embedding_shape_and_norm")].passed
    assert evals[("caption_embedding", "embedding_shape_and_norm")].passed
    assert evals[("caption", "captions_non_empty")].passed
    assert evals[("search_index", "index_coverage")].passed is False
    assert evals[("search_index", "index_coverage")].severity == dg.AssetCheckSeverity.WARN
    assert all(
        evals[(n, "nulls_match_failures")].passed for n in ("color_tags", "caption", "image_embedding")
    )

    update_indexes(project.table)
    found = coverage_finding(project)
    assert found.passed and set(found.metadata["coverage"].values()) == {1.0}
