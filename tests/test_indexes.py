"""Search indexes: the right structure for the table's size, never empty, folded incrementally, rebuilt when
they no longer fit; the search_index asset and its sensor. Synthetic unit vectors, no models."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
from lancedb.index import IvfPq

from fashion_assets.indexes import (
    PQ_MIN_VECTORS,
    ExistingIndex,
    VectorIndexParams,
    describe_index,
    index_name,
    index_status,
    num_sub_vectors,
    plan_vector_index,
    update_indexes,
)
from fashion_assets.store.table import ColumnSpec, ProductTable

DIM = 512
VECTOR = pa.list_(pa.float32(), DIM)
BASE = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("description", pa.string())])
SPECS = {
    "caption": ColumnSpec("caption", pa.string(), "1"),
    "image_embedding": ColumnSpec("image_embedding", VECTOR, "1"),
    "caption_embedding": ColumnSpec("caption_embedding", VECTOR, "1"),
}


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def vectors_array(v: np.ndarray, valid: np.ndarray | None = None) -> pa.FixedSizeListArray:
    mask = None if valid is None else pa.array(~valid)
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1], mask=mask)


def write_feature(
    table: ProductTable,
    spec: ColumnSpec,
    fragment_id: int,
    values: Callable[[list[int]], pa.Array],
    errors: Callable[[list[int]], pa.Array] | None = None,
) -> None:
    """Write ``spec``'s column for one fragment through the store: ``values(ids)`` in the fragment's row order."""
    ds = table.dataset()
    t = ds.get_fragment(fragment_id).to_table(columns=["id"], with_row_address=True)
    offsets = np.asarray(t["_rowaddr"].to_numpy() & 0xFFFFFFFF, dtype=np.int64)
    ids = t["id"].to_pylist()
    errs = errors(ids) if errors else pa.nulls(len(ids), pa.string())
    table.commit_column_files([table.write_column_file(fragment_id, spec, offsets, values(ids), errs, ds)])


def append_rows(table: ProductTable, ids: Sequence[int], fragment_rows: int) -> list[int]:
    batch = pa.record_batch(
        [pa.array(ids, pa.int64()), pa.array([f"product {i} cotton shirt" for i in ids])], schema=BASE
    )
    return table.append([batch], BASE, fragment_rows)


def fill(table: ProductTable, fragments: Sequence[int], vectors: dict[int, np.ndarray], seed: int) -> None:
    """Captions and both embeddings for ``fragments``; each row's image vector goes into ``vectors``."""
    for f in fragments:
        write_feature(table, SPECS["caption"], f, lambda ids: pa.array([f"photo of item{i}" for i in ids]))
        for name in ("image_embedding", "caption_embedding"):

            def values(ids: list[int], name: str = name, f: int = f) -> pa.Array:
                v = unit_vectors(len(ids), seed * 1000 + f * 7 + len(name))
                if name == "image_embedding":
                    vectors.update(zip(ids, v, strict=True))
                return vectors_array(v)

            write_feature(table, SPECS[name], f, values)


def make_table(
    tmp_path, rows: int, fragment_rows: int, seed: int = 0, vectors: dict | None = None
) -> ProductTable:
    """A products-like table with ``rows`` rows, every feature column written with synthetic values."""
    table = ProductTable(str(tmp_path / "db"))
    table.create(BASE)
    table.ensure_columns(SPECS.values())
    frags = append_rows(table, range(rows), fragment_rows)
    fill(table, frags, vectors if vectors is not None else {}, seed)
    return table


def nearest(table: ProductTable, v: np.ndarray, k: int = 1) -> list[int]:
    hits = (
        table.lancedb_table()
        .search(v, vector_column_name="image_embedding")
        .distance_type("cosine")
        .limit(k)
        .to_arrow()
    )
    return hits["id"].to_pylist()


# ---- parameters ------------------------------------------------------------------------------------------


def test_plan_picks_flat_below_threshold_and_pq_above():
    assert plan_vector_index(0) is None
    assert plan_vector_index(10) == VectorIndexParams("IVF_FLAT", 1)
    assert plan_vector_index(PQ_MIN_VECTORS - 1).index_type == "IVF_FLAT"
    pq = plan_vector_index(PQ_MIN_VECTORS)
    assert pq.index_type == "IVF_PQ" and pq.num_partitions == 1 and DIM % pq.num_sub_vectors == 0
    big = plan_vector_index(100_000)
    assert big.num_partitions == 65 and big.num_sub_vectors == 64
    assert num_sub_vectors(512) == 64 and num_sub_vectors(768) == 96 and num_sub_vectors(100) == 10
    assert all(DIM % plan_vector_index(n).num_sub_vectors == 0 for n in (300, 5000, 10**6))


def test_misfit_reasons():
    pq = VectorIndexParams("IVF_PQ", 10, 64)
    ok = ExistingIndex("x", "IVF_PQ", 1000, 0, 12, 64, "cosine")
    assert pq.misfit(ok) is None
    assert "0 rows" in pq.misfit(ExistingIndex("x", "N/A", 0, 500))
    assert "IVF_FLAT" in pq.misfit(ExistingIndex("x", "IVF_FLAT", 100, 0, 1, None, "cosine"))
    assert "partitions" in pq.misfit(ExistingIndex("x", "IVF_PQ", 1000, 0, 4, 64, "cosine"))
    assert "metric" in pq.misfit(ExistingIndex("x", "IVF_PQ", 1000, 0, 10, 64, "l2"))


# ---- building ----------------------------------------------------------------------------------------------


def test_small_table_gets_ivf_flat_and_fts_never_empty(tmp_path):
    vectors: dict[int, np.ndarray] = {}
    table = make_table(tmp_path, 120, 60, vectors=vectors)
    report = update_indexes(table)
    by = {r.name: r for r in report.results}
    assert set(by) == {
        index_name(c) for c in ("description", "caption", "image_embedding", "caption_embedding")
    }
    assert all(r.action == "created" for r in report.results)
    assert by["image_embedding_idx"].index_type == "IVF_FLAT"
    assert by["caption_embedding_idx"].index_type == "IVF_FLAT"
    for r in report.results:
        assert r.indexed_rows == 120 and r.unindexed_rows == 0, r
    assert report.seconds > 0 and report.rows == 120
    assert nearest(table, vectors[77]) == [77]
    # nothing new: nothing done, no new table version
    version = table.dataset().version
    again = update_indexes(table)
    assert {r.action for r in again.results} == {"current"}
    assert table.dataset().version == version


def test_table_above_threshold_gets_ivf_pq_with_rows(tmp_path):
    vectors: dict[int, np.ndarray] = {}
    table = make_table(tmp_path, 300, 150, vectors=vectors)
    report = update_indexes(table)
    image = next(r for r in report.results if r.column == "image_embedding")
    assert image.index_type == "IVF_PQ" and image.vectors == 300
    assert image.indexed_rows == 300 and image.num_sub_vectors == 64
    stats = table.lancedb_table().index_stats("image_embedding_idx")
    assert stats.num_indexed_rows == 300 and stats.distance_type == "cosine"
    assert nearest(table, vectors[123]) == [123]  # refine with exact distances finds the row itself


def test_no_vectors_yet_builds_text_indexes_only(tmp_path):
    table = ProductTable(str(tmp_path / "db"))
    table.create(BASE)
    table.ensure_columns(SPECS.values())
    append_rows(table, range(50), 50)
    report = update_indexes(table)
    by = {r.column: r for r in report.results}
    assert by["image_embedding"].action == "skipped" and by["image_embedding"].vectors == 0
    assert by["description"].action == "created" and by["description"].indexed_rows == 50
    assert describe_index(table.dataset(), "image_embedding_idx") is None


def test_empty_ivf_pq_is_never_left_in_place(tmp_path):
    table = make_table(tmp_path, 150, 150)
    # what a naive build does: IVF_PQ over < 256 vectors "succeeds" and holds 0 rows
    table.lancedb_table().create_index(
        "image_embedding", config=IvfPq(distance_type="cosine", num_partitions=1), name="image_embedding_idx"
    )
    assert describe_index(table.dataset(), "image_embedding_idx").num_indexed_rows == 0
    result = next(r for r in update_indexes(table).results if r.column == "image_embedding")
    assert result.action == "rebuilt" and "0 rows" in result.reason
    assert result.index_type == "IVF_FLAT" and result.indexed_rows == 150


# ---- incremental -------------------------------------------------------------------------------------------


def test_new_rows_are_folded_in_and_searched_before_that(tmp_path):
    vectors: dict[int, np.ndarray] = {}
    table = make_table(tmp_path, 300, 150, vectors=vectors)
    first = {r.name: r for r in update_indexes(table).results}
    new = append_rows(table, range(1000, 1100), 100)
    fill(table, new, vectors, seed=5)
    status = index_status(table)
    assert status["image_embedding_idx"]["unindexed_rows"] == 100
    assert status["caption_idx"]["unindexed_rows"] == 100
    assert nearest(table, vectors[1042]) == [1042]  # behind the index: still found (flat scan)

    second = {r.name: r for r in update_indexes(table).results}
    for name, r in second.items():
        assert r.action == "folded", (name, r)
        assert r.unindexed_rows == 0 and r.indexed_rows == 400
        assert r.index_type == first[name].index_type  # same structure, not rebuilt
    assert second["image_embedding_idx"].num_partitions == first["image_embedding_idx"].num_partitions
    assert describe_index(table.dataset(), "image_embedding_idx").segments == 1  # merged, no pile of deltas
    assert nearest(table, vectors[1042]) == [1042]
    hits = table.lancedb_table().search("item1042", query_type="fts", fts_columns=["caption"]).limit(1)
    assert hits.to_arrow()["id"].to_pylist() == [1042]


def test_rebuilt_when_the_structure_no_longer_fits(tmp_path):
    table = make_table(tmp_path, 100, 100)
    first = {r.column: r for r in update_indexes(table).results}
    assert first["image_embedding"].index_type == "IVF_FLAT"
    fill(table, append_rows(table, range(1000, 1300), 300), {}, seed=9)
    second = {r.column: r for r in update_indexes(table).results}
    assert second["image_embedding"].action == "rebuilt"
    assert second["image_embedding"].index_type == "IVF_PQ"
    assert second["image_embedding"].indexed_rows == 400 and second["image_embedding"].unindexed_rows == 0
    assert second["description"].action == "folded"


def test_rewritten_fragment_leaves_the_index_until_folded(tmp_path):
    """A feature column written after the index (DataReplacement) drops that fragment from the index
    (searched flat meanwhile); the next update folds it back."""
    vectors: dict[int, np.ndarray] = {}
    table = ProductTable(str(tmp_path / "db"))
    table.create(BASE)
    table.ensure_columns(SPECS.values())
    frags = append_rows(table, range(300), 100)
    fill(table, frags[:2], vectors, seed=1)  # the third fragment's features are not computed yet
    update_indexes(table)
    fill(table, frags[2:], vectors, seed=2)
    assert index_status(table)["image_embedding_idx"]["unindexed_rows"] == 100
    assert nearest(table, vectors[250]) == [250]
    report = {r.column: r for r in update_indexes(table).results}
    assert report["image_embedding"].unindexed_rows == 0
    assert nearest(table, vectors[250]) == [250]


# ---- Dagster ---------------------------------------------------------------------------------------------


def test_search_index_asset_metadata_and_sensor(tmp_path, instance):
    from fashion_assets.defs.resources import FashionTable
    from fashion_assets.defs.search_assets import search_index, search_index_sensor

    table = make_table(tmp_path, 120, 60)
    resource = FashionTable(db_uri=table.db_uri, table_name=table.table_name, source_dir=str(tmp_path))

    context = dg.build_sensor_context(instance=instance, resources={"table": resource})
    result = search_index_sensor(context)
    assert len(result.run_requests) == 1  # no index yet: asks for a run

    out = dg.materialize([search_index], instance=instance, resources={"table": resource})
    assert out.success
    (event,) = out.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["indexed_rows"].value == {
        "description_idx": 120,
        "caption_idx": 120,
        "image_embedding_idx": 120,
        "caption_embedding_idx": 120,
    }
    assert meta["unindexed_rows_total"].value == 0
    assert meta["build_seconds"].value > 0
    assert meta["dagster/row_count"].value == 120

    context = dg.build_sensor_context(instance=instance, resources={"table": resource})
    assert not search_index_sensor(context).run_requests  # current: nothing to ask
    fill(table, append_rows(table, range(500, 520), 20), {}, seed=3)
    context = dg.build_sensor_context(instance=instance, resources={"table": resource})
    assert len(search_index_sensor(context).run_requests) == 1


def test_status_reports_missing_indexes(tmp_path):
    rows = 30
    table = make_table(tmp_path, rows, rows)
    status = index_status(table)
    assert all(not s["present"] for s in status.values())
    update_indexes(table)
    status = index_status(table)
    assert all(s["present"] and s["indexed_rows"] == rows for s in status.values())


@pytest.mark.parametrize("filled", [60, 300])
def test_rows_without_vectors_never_come_back(tmp_path, filled):
    """Null vectors (features not computed yet) are skipped by indexed and flat search alike."""
    from fashion_assets.search import vector_hits

    table = ProductTable(str(tmp_path / "db"))
    table.create(BASE)
    table.ensure_columns(SPECS.values())
    frags = append_rows(table, range(filled), filled)
    vectors: dict[int, np.ndarray] = {}
    fill(table, frags, vectors, seed=4)
    append_rows(table, range(5000, 5040), 40)  # indexed while all null
    update_indexes(table)
    append_rows(table, range(6000, 6040), 40)  # not indexed, all null
    hits = vector_hits(table.lancedb_table(), vectors[7], filled + 100)
    assert sorted(hits["id"].to_pylist()) == list(range(filled))
    assert hits["id"][0].as_py() == 7
