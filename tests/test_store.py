"""The store: per-fragment column files, status from the manifest, versions, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pyarrow as pa
import pytest

from fashion_assets.store.table import ColumnSpec, ProductTable, StoreError

BASE = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("description", pa.string())])
SPEC = ColumnSpec("tag", pa.string(), "1")


def make_table(tmp_path, fragments: int = 3, rows: int = 10) -> ProductTable:
    table = ProductTable(str(tmp_path / "db"))
    table.create(BASE)
    table.ensure_columns([SPEC])
    for f in range(fragments):
        ids = pa.array(range(f * 100, f * 100 + rows), pa.int64())
        batch = pa.record_batch([ids, pa.array([f"item {i}" for i in ids.to_pylist()])], schema=BASE)
        table.append([batch], BASE, fragment_rows=rows)
    return table


def write(table: ProductTable, fragment_id: int, fill: str = "v") -> int:
    ds = table.dataset()
    frag = ds.get_fragment(fragment_id)
    t = frag.to_table(columns=["id"], with_row_address=True)
    offsets = np.asarray(t["_rowaddr"].to_numpy() & 0xFFFFFFFF, dtype=np.int64)
    values = pa.array([f"{fill}{i}" for i in t["id"].to_pylist()])
    cf = table.write_column_file(fragment_id, SPEC, offsets, values, pa.nulls(len(values), pa.string()), ds)
    return table.commit_column_files([cf]).version


def files_of(table: ProductTable) -> dict[int, list[str]]:
    return {f.fragment_id: [d.path for d in f.metadata.files] for f in table.dataset().get_fragments()}


def test_new_columns_are_declared_all_null_and_not_materialized(tmp_path):
    table = make_table(tmp_path)
    assert table.column_versions() == {"tag": "1"}
    assert table.materialized("tag") == {0: False, 1: False, 2: False}
    assert table.dataset().count_rows("tag IS NULL") == 30
    version = table.dataset().version
    assert table.ensure_columns([SPEC]) == []  # nothing to do: nothing committed
    assert table.dataset().version == version


def test_column_write_touches_only_its_fragment(tmp_path):
    table = make_table(tmp_path)
    before = files_of(table)
    write(table, 1)
    after = files_of(table)
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1][: len(before[1])] == before[1] and len(after[1]) == len(before[1]) + 1
    assert table.materialized("tag") == {0: False, 1: True, 2: False}
    rows = table.dataset().to_table(columns=["id", "tag"], filter="id >= 100 AND id < 200").to_pylist()
    assert all(r["tag"] == f"v{r['id']}" for r in rows)


def test_deleted_rows_keep_values_in_place(tmp_path):
    table = make_table(tmp_path)
    table.dataset().delete("id IN (101, 105)")
    write(table, 1)
    rows = table.dataset().to_table(columns=["id", "tag"], filter="id >= 100 AND id < 200").to_pylist()
    assert [r["id"] for r in rows] == [100, 102, 103, 104, 106, 107, 108, 109]
    assert all(r["tag"] == f"v{r['id']}" for r in rows)


def test_rewrite_swaps_the_file(tmp_path):
    table = make_table(tmp_path, fragments=1)
    write(table, 0, "a")
    n_files = len(files_of(table)[0])
    write(table, 0, "b")
    assert len(files_of(table)[0]) == n_files
    assert set(table.dataset().to_table(columns=["tag"])["tag"].to_pylist()) == {f"b{i}" for i in range(10)}


def test_version_change_resets_the_column(tmp_path):
    table = make_table(tmp_path)
    write(table, 0)
    assert table.materialized("tag")[0]
    changes = table.ensure_columns([ColumnSpec("tag", pa.string(), "2")])
    assert changes == ["tag: reset to version 2"]
    assert table.materialized("tag") == {0: False, 1: False, 2: False}
    assert table.dataset().count_rows("tag IS NOT NULL") == 0


def test_file_for_a_vanished_fragment_is_not_committed(tmp_path):
    table = make_table(tmp_path)
    ds = table.dataset()
    t = ds.get_fragment(2).to_table(columns=["id"], with_row_address=True)
    offsets = np.asarray(t["_rowaddr"].to_numpy() & 0xFFFFFFFF, dtype=np.int64)
    cf = table.write_column_file(2, SPEC, offsets, pa.array(["x"] * 10), pa.nulls(10, pa.string()), ds)
    table.dataset().delete("id >= 200")  # the whole fragment goes away
    result = table.commit_column_files([cf])
    assert result.version is None and result.vanished == (2,)


def test_bad_offsets_are_refused(tmp_path):
    table = make_table(tmp_path, fragments=1)
    with pytest.raises(ValueError):
        table.write_column_file(0, SPEC, np.array([0, 99]), pa.array(["a", "b"]), pa.nulls(2, pa.string()))


def test_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open table"):
        ProductTable(str(tmp_path / "nowhere")).dataset()


def _writer(uri: str, fragment_ids: list[int], barrier) -> None:
    table = ProductTable(uri)
    barrier.wait()
    for f in fragment_ids:
        write(table, f, fill=f"p{f}-")


def test_two_processes_writing_different_fragments_both_land(tmp_path):
    table = make_table(tmp_path, fragments=6)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(table.db_uri, ids, barrier)) for ids in ([0, 2, 4], [1, 3, 5])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert all(table.materialized("tag").values())
    rows = table.dataset().to_table(columns=["id", "tag"]).to_pylist()
    assert all(r["tag"] == f"p{r['id'] // 100}-{r['id']}" for r in rows)
