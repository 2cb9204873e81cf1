"""Changing input rows without ever serving their old feature values as current.

Lance's ``update()`` moves changed rows to a new fragment and copies every column with them, feature
columns included: the new fragment then reads as materialized while its features were computed from the
old inputs (NOTES.md). ``update_rows`` instead deletes the old versions of the rows and appends the new
versions with the base columns only, in ONE commit (``LanceOperation.Update`` carrying the deletion vectors
and the new fragment). The new fragment has no feature data files, so every feature reads as missing there
and the next refresh computes exactly those rows; the old rows' values are gone with the rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import lance
import pyarrow as pa
from lance import LanceOperation
from lance.fragment import write_fragments

from fashion_assets.store.table import ProductTable, StoreError


def _base_schema(table_schema: pa.Schema, base_columns: pa.Schema | Sequence[str]) -> pa.Schema:
    names = base_columns.names if isinstance(base_columns, pa.Schema) else list(base_columns)
    if "id" not in names:
        raise ValueError("base_columns must include 'id'")
    missing = [n for n in names if n not in table_schema.names]
    if missing:
        raise StoreError(f"the table has no base column(s) {missing}")
    return pa.schema([table_schema.field(n) for n in names])


def update_rows(
    table: ProductTable,
    rows: pa.Table,
    base_columns: pa.Schema | Sequence[str],
    fragment_rows: int | None = None,
) -> list[int]:
    """Replace the rows of ``table`` whose ``id`` is in ``rows`` with the given new versions.

    Only ``base_columns`` (the inputs, e.g. ``PRODUCT_SCHEMA``) are written for the new versions: their
    feature columns stay unwritten, so they read as missing and get recomputed. Old versions are deleted in
    the same commit (atomic: a crash leaves either the old rows or the new ones, never both or neither).
    An id not yet in the table is simply added. Returns the ids of the new fragments.
    """
    if rows.num_rows == 0:
        return []
    ids = rows.column("id").to_pylist()
    if None in ids or len(set(ids)) != len(ids):
        raise ValueError("update_rows needs unique, non-null ids")
    ds = table.dataset()
    schema = _base_schema(ds.schema, base_columns)
    data = rows.select(schema.names).cast(schema)
    try:
        new_frags = write_fragments(
            data,
            ds,
            max_rows_per_file=fragment_rows or max(1, data.num_rows),
            storage_options=table.storage_options or None,
        )
    except OSError as exc:
        raise StoreError(f"cannot write updated rows to {table.uri}: {exc}") from exc
    paths = {d.path for f in new_frags for d in f.files}
    id_list = ", ".join(str(int(i)) for i in ids)  # integers only: nothing from the data reaches SQL
    predicate = f"id IN ({id_list})"

    def plan(ds: lance.LanceDataset) -> LanceOperation.Update:
        removed: list[int] = []
        updated = []
        for frag in ds.get_fragments():
            if frag.count_rows(predicate) == 0:
                continue
            meta = frag.delete(predicate)
            if meta is None:
                removed.append(frag.fragment_id)
            else:
                updated.append(meta)
        return LanceOperation.Update(
            removed_fragment_ids=removed, updated_fragments=updated, new_fragments=list(new_frags)
        )

    new = table.commit(plan, "updated rows")
    assert new is not None
    return sorted(
        f.fragment_id for f in new.get_fragments() if any(d.path in paths for d in f.metadata.files)
    )
