"""Compute one feature over one fragment: read its inputs, compute in batches, checkpoint, write the file.

This is what a worker (a Ray actor or the in-process runner) does for each fragment task. It returns the
column file unwritten to the manifest: the driver commits files in groups.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fashion_assets.execution.checkpoints import ERROR, OFFSET, VALUE, CheckpointStore
from fashion_assets.features.base import Feature
from fashion_assets.store.table import ROW_ADDRESS, ColumnFile, ColumnSpec, ProductTable

OFFSET_MASK = 0xFFFFFFFF
MAX_ERRORS_REPORTED = 20


@dataclass(frozen=True)
class FragmentTask:
    """A fragment to compute, read at a table version the driver saw."""

    fragment_id: int
    version: int


@dataclass
class FragmentResult:
    """One fragment computed: its column file (not yet committed) and what it took."""

    fragment_id: int
    column_file: ColumnFile
    rows: int
    rows_computed: int
    rows_resumed: int
    rows_failed: int
    seconds: float
    errors: list[tuple[int, str]] = field(default_factory=list)  # (product id, reason), first few


@dataclass
class FragmentFailure:
    """A fragment that could not be computed at all (the others go on)."""

    fragment_id: int
    error: str


Progress = Callable[[int, int], None]  # (rows done in this fragment, rows in this fragment)


def _prefetched(
    units: Iterator[tuple[pa.RecordBatch, pa.Array]], prepare: Callable[[pa.RecordBatch], Any]
) -> Iterator[tuple[pa.RecordBatch, pa.Array, Any]]:
    """``(batch, offsets, prepare(batch))`` for each unit, the next one made ahead in a helper thread."""

    def make() -> tuple[pa.RecordBatch, pa.Array, Any] | None:
        unit = next(units, None)
        return None if unit is None else (*unit, prepare(unit[0]))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        ahead = pool.submit(make)
        while (item := ahead.result()) is not None:
            ahead = pool.submit(make)
            yield item


def compute_fragment(
    table: ProductTable,
    feature: Feature,
    spec: ColumnSpec,
    task: FragmentTask,
    checkpoints: CheckpointStore | None = None,
    checkpoint_size: int = 1024,
    on_checkpoint: Callable[[int], None] | None = None,
) -> FragmentResult:
    """Compute ``feature`` for every live row of the fragment and write its column file.

    Rows found in checkpoints of an earlier, interrupted attempt are not computed again. Every
    ``checkpoint_size`` computed rows are saved before the next ones are started.
    """
    started = time.perf_counter()
    ds = table.dataset(task.version)
    columns = ["id", *feature.inputs]
    done = checkpoints.load(task.fragment_id, spec.type) if checkpoints else None
    done_offsets = done.column(OFFSET) if done is not None else pa.array([], pa.uint32())

    parts: list[pa.Table] = [done] if done is not None else []
    pending: list[pa.Table] = []
    pending_rows = 0
    computed = 0
    errors: list[tuple[int, str]] = []
    failed = 0
    if checkpoints is None:  # nothing to save: no reason to cut batches at checkpoint boundaries
        checkpoint_size = 1 << 62
    batch_rows = max(1, min(feature.batch_size, checkpoint_size))

    def flush() -> None:
        nonlocal pending, pending_rows
        if not pending:
            return
        chunk = pa.concat_tables(pending)
        if checkpoints is not None:
            checkpoints.save(task.fragment_id, chunk[OFFSET], chunk[VALUE], chunk[ERROR])
            if on_checkpoint is not None:
                on_checkpoint(chunk.num_rows)
        parts.append(chunk)
        pending, pending_rows = [], 0

    read = 0

    def units() -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        """Batches still to compute, with their row offsets; none straddles a checkpoint boundary."""
        nonlocal read
        produced = 0
        for batch in table.read_fragment(task.fragment_id, columns, task.version, batch_size=batch_rows):
            read += batch.num_rows
            offsets = pc.cast(pc.bit_wise_and(batch.column(ROW_ADDRESS), OFFSET_MASK), pa.uint32())
            if len(done_offsets):
                keep = pc.invert(pc.is_in(offsets, done_offsets))
                batch, offsets = batch.filter(keep), offsets.filter(keep)
            start = 0
            while start < batch.num_rows:
                take = min(batch_rows, checkpoint_size - produced % checkpoint_size, batch.num_rows - start)
                yield batch.slice(start, take), offsets.slice(start, take)
                produced += take
                start += take

    # Reading and feature.prepare (decoding, preprocessing) of batch i+1 run in a helper thread while
    # feature.infer works on batch i, so I/O and CPU preparation hide behind the model.
    for sub, offs, prepared in _prefetched(units(), feature.prepare):
        out = feature.checked(feature.infer(prepared), sub.num_rows)
        take = sub.num_rows
        err = [None] * take
        ids = sub.column("id")
        for e in out.errors:
            err[e.index] = e.reason
            failed += 1
            if len(errors) < MAX_ERRORS_REPORTED:
                errors.append((ids[e.index].as_py(), e.reason))
        pending.append(
            pa.table([offs, out.values, pa.array(err, pa.string())], schema=CheckpointStore.schema(spec.type))
        )
        pending_rows += take
        computed += take
        if pending_rows >= checkpoint_size:
            flush()
    rows = read
    flush()

    result = pa.concat_tables(parts) if parts else CheckpointStore.schema(spec.type).empty_table()
    column_file = table.write_column_file(
        task.fragment_id,
        spec,
        np.asarray(result[OFFSET].to_numpy(), dtype=np.int64),
        result[VALUE].combine_chunks(),
        result[ERROR].combine_chunks(),
        ds=ds,
    )
    resumed = done.num_rows if done is not None else 0
    if done is not None:
        failed += done.filter(pc.is_valid(done[ERROR])).num_rows
    return FragmentResult(
        task.fragment_id,
        column_file,
        rows=rows,
        rows_computed=computed,
        rows_resumed=resumed,
        rows_failed=failed,
        seconds=time.perf_counter() - started,
        errors=errors,
    )
