"""Search indexes over the products table, kept current incrementally. No Dagster here.

Four indexes: full-text (BM25) on ``description`` and on ``caption``, and cosine vector indexes on
``image_embedding`` and ``caption_embedding``. :func:`update_indexes` makes each one current:

- a missing index is created; a vector index gets the structure its number of non-null vectors calls for
  (:func:`plan_vector_index`): IVF_PQ from ``PQ_MIN_VECTORS`` vectors on (sub-vectors dividing the
  dimension), IVF_FLAT below that (exact, and cheap at that size), none while the column holds no vector;
- an existing index whose parameters still fit is *folded*: new or rewritten fragments are added to it with
  Lance's ``optimize_indices`` (no retraining, merged into the existing segment so deltas do not pile up);
- an index whose parameters no longer fit (another structure, a partition count off by 2x or more,
  another metric, or one that holds no row at all) is rebuilt.

Every vector index is checked after the fact: an index that holds 0 rows while the column has vectors
(IVF_PQ trained on fewer than 256 vectors "succeeds" that way) is never left in place silently: an
IVF_PQ is rebuilt as IVF_FLAT, and if that is empty too :class:`IndexBuildError` is raised.

The table's rows outside the indexes (appended or rewritten since the last update) are still searched, flat,
so a stale index costs latency, never results. Never call LanceDB's ``Table.optimize()`` on this table: it
also compacts fragments (unfinished feature columns would be written out as real nulls, see
``compaction.py``) and prunes old versions that running feature jobs may still read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import lance
from lance.commit import CommitConflictError
from lancedb.index import FTS, IvfFlat, IvfPq

from fashion_assets.features.image_embedding import EMBEDDING_DIM
from fashion_assets.store.table import ProductTable

log = logging.getLogger(__name__)

METRIC = "cosine"
VECTOR_COLUMNS: tuple[str, ...] = ("image_embedding", "caption_embedding")
TEXT_COLUMNS: tuple[str, ...] = ("description", "caption")
# Below this many non-null vectors IVF_PQ trains nothing (8-bit codebooks need 256 samples) and Lance
# builds an index that holds 0 rows without an error.
PQ_MIN_VECTORS = 256
# About this many vectors per IVF partition (65 partitions at 100k): a query probing 16 partitions scans a
# quarter of the codes at 100k rows, and k-means over the partitions trains in seconds on 2 cores.
ROWS_PER_PARTITION = 1536
# Sub-vectors of 8 floats (64 for 512-d) with 4-bit codes (16 centroids each): 32 bytes a vector, codebooks
# trained in seconds (8-bit codebooks take minutes on 2 cores at 100k rows), and the candidates are re-ranked
# by exact distance (search's refine_factor), so the coarser codes cost no recall (bench/search_bench.py).
PQ_SUB_VECTOR_DIM = 8
PQ_NUM_BITS = 4
IVF_MAX_ITERATIONS = 25
# An existing IVF is rebuilt when the partition count the data calls for is this factor away from it.
REBUILD_FACTOR = 2.0
COMMIT_ATTEMPTS = 6

T = TypeVar("T")


class IndexBuildError(RuntimeError):
    """An index could not be built or would hold no rows; the message names the index and why."""


def index_name(column: str) -> str:
    """The name of the index on ``column`` (LanceDB's default naming)."""
    return f"{column}_idx"


def num_sub_vectors(dim: int = EMBEDDING_DIM, sub_vector_dim: int = PQ_SUB_VECTOR_DIM) -> int:
    """PQ sub-vectors for ``dim``: ``dim / sub_vector_dim`` when that divides, else the largest divisor of
    ``dim`` not above it (Lance requires the sub-vector count to divide the dimension)."""
    want = max(1, dim // sub_vector_dim)
    return max(d for d in range(1, want + 1) if dim % d == 0)


@dataclass(frozen=True)
class VectorIndexParams:
    """The structure a vector index should have: type, IVF partitions, PQ sub-vectors (IVF_PQ only)."""

    index_type: str
    num_partitions: int
    num_sub_vectors: int | None = None
    metric: str = METRIC

    def config(self) -> IvfPq | IvfFlat:
        """The LanceDB index config that builds this structure."""
        if self.index_type == "IVF_PQ":
            return IvfPq(
                distance_type=self.metric,
                num_partitions=self.num_partitions,
                num_sub_vectors=self.num_sub_vectors,
                num_bits=PQ_NUM_BITS,
                max_iterations=IVF_MAX_ITERATIONS,
            )
        return IvfFlat(
            distance_type=self.metric, num_partitions=self.num_partitions, max_iterations=IVF_MAX_ITERATIONS
        )

    def misfit(self, existing: ExistingIndex) -> str | None:
        """Why ``existing`` should be rebuilt to these parameters (None: it fits, fold new data into it)."""
        if existing.num_indexed_rows == 0:
            return "the index holds 0 rows"
        if existing.index_type != self.index_type:
            return f"{existing.index_type} no longer fits: {self.index_type} wanted"
        if (existing.metric or "").lower() != self.metric:
            return f"metric {existing.metric} is not {self.metric}"
        if self.num_sub_vectors is not None and existing.num_sub_vectors != self.num_sub_vectors:
            return f"{existing.num_sub_vectors} PQ sub-vectors, {self.num_sub_vectors} wanted"
        have, want = existing.num_partitions or 1, self.num_partitions
        if want >= have * REBUILD_FACTOR or have >= want * REBUILD_FACTOR:
            return f"{have} IVF partitions, {want} fit the data now"
        return None


def plan_vector_index(
    num_vectors: int, dim: int = EMBEDDING_DIM, pq_min_vectors: int = PQ_MIN_VECTORS
) -> VectorIndexParams | None:
    """The index structure for ``num_vectors`` non-null vectors of ``dim`` floats (None: no index yet).

    Fewer than ``pq_min_vectors``: IVF_FLAT in one partition (an exact scan, fast at that size). From there
    IVF_PQ with one partition per ``ROWS_PER_PARTITION`` vectors and ``dim / 8`` sub-vectors of 4 bits.
    """
    if num_vectors <= 0:
        return None
    if num_vectors < max(pq_min_vectors, PQ_MIN_VECTORS):
        return VectorIndexParams("IVF_FLAT", 1)
    partitions = max(1, round(num_vectors / ROWS_PER_PARTITION))
    return VectorIndexParams("IVF_PQ", partitions, num_sub_vectors(dim))


@dataclass(frozen=True)
class ExistingIndex:
    """An index as Lance reports it."""

    name: str
    index_type: str
    num_indexed_rows: int
    num_unindexed_rows: int
    num_partitions: int | None = None
    num_sub_vectors: int | None = None
    metric: str | None = None
    segments: int = 1


def describe_index(ds: lance.LanceDataset, name: str) -> ExistingIndex | None:
    """What Lance says about the index ``name`` (None when there is none)."""
    if name not in {i.name for i in ds.describe_indices()}:
        return None
    stats = ds.stats.index_stats(name)
    first = (stats.get("indices") or [{}])[0] or {}
    sub = first.get("sub_index") or {}
    kind = str(stats.get("index_type") or first.get("index_type") or "N/A")
    return ExistingIndex(
        name=name,
        index_type="FTS" if kind.lower() == "inverted" else kind,
        num_indexed_rows=int(stats.get("num_indexed_rows") or 0),
        num_unindexed_rows=int(stats.get("num_unindexed_rows") or 0),
        num_partitions=first.get("num_partitions"),
        num_sub_vectors=sub.get("num_sub_vectors"),
        metric=first.get("metric_type"),
        segments=int(stats.get("num_indices") or 1),
    )


@dataclass
class IndexResult:
    """What happened to one index in an update, and how it stands afterwards."""

    name: str
    column: str
    kind: str  # "vector" | "fts"
    action: str  # created | rebuilt | folded | current | skipped
    reason: str = ""
    index_type: str | None = None
    num_partitions: int | None = None
    num_sub_vectors: int | None = None
    vectors: int | None = None  # non-null values of a vector column
    indexed_rows: int = 0
    unindexed_rows: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IndexReport:
    """Every index after :func:`update_indexes`: per-index results, table rows and total build time."""

    rows: int
    results: list[IndexResult] = field(default_factory=list)
    seconds: float = 0.0
    table_version: int | None = None

    @property
    def indexed_rows(self) -> dict[str, int]:
        return {r.name: r.indexed_rows for r in self.results}

    @property
    def unindexed_rows(self) -> dict[str, int]:
        return {r.name: r.unindexed_rows for r in self.results}

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "table_version": self.table_version,
            "indexes": {r.name: r.as_dict() for r in self.results},
        }


def _retry(what: str, fn: Callable[[], T]) -> T:
    """``fn()``, retried when its commit conflicts with a concurrent writer (a feature run, an ingest)."""
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return fn()
        except (CommitConflictError, OSError, RuntimeError) as exc:
            conflict = isinstance(exc, CommitConflictError) or "conflict" in str(exc).lower()
            if not conflict or attempt == COMMIT_ATTEMPTS:
                raise
            log.info("%s: commit conflict (attempt %d), retrying: %s", what, attempt, exc)
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def _count_vectors(ds: lance.LanceDataset, column: str) -> int:
    return ds.count_rows(filter=f"{column} IS NOT NULL")


def _fold(table: ProductTable, name: str) -> None:
    """Add the rows outside index ``name`` to it, without retraining, merged into its last segment."""
    _retry(
        f"fold {name}",
        lambda: table.dataset().optimize.optimize_indices(index_names=[name], num_indices_to_merge=1),
    )


def _create(table: ProductTable, column: str, name: str, config: Any) -> None:
    def build() -> None:
        table.lancedb_table().create_index(column, config=config, name=name, replace=True)

    _retry(f"build {name}", build)


def update_vector_index(
    table: ProductTable,
    column: str,
    *,
    pq_min_vectors: int = PQ_MIN_VECTORS,
    rebuild: bool = False,
) -> IndexResult:
    """Make the cosine index on ``column`` current (create, fold or rebuild; see the module docstring)."""
    started = time.perf_counter()
    name = index_name(column)
    ds = table.dataset()
    result = IndexResult(name, column, "vector", "current")
    if column not in ds.schema.names:
        result.action, result.reason = "skipped", f"no column {column}"
        return result
    dim = ds.schema.field(column).type.list_size
    vectors = _count_vectors(ds, column)
    result.vectors = vectors
    params = plan_vector_index(vectors, dim, pq_min_vectors)
    existing = describe_index(ds, name)
    if params is None:
        result.action, result.reason = "skipped", "no vectors yet (searches scan the table flat)"
        if existing is not None:
            result.index_type = existing.index_type
            result.indexed_rows, result.unindexed_rows = (
                existing.num_indexed_rows,
                existing.num_unindexed_rows,
            )
        result.seconds = time.perf_counter() - started
        return result
    misfit = "rebuild requested" if rebuild else (params.misfit(existing) if existing else None)
    if existing is None or misfit:
        _create(table, column, name, params.config())
        result.action = "created" if existing is None else "rebuilt"
        result.reason = misfit or f"{vectors} vectors: {params.index_type}"
    elif existing.num_unindexed_rows > 0:
        _fold(table, name)
        result.action = "folded"
        result.reason = f"{existing.num_unindexed_rows} rows added to the index"
    after = describe_index(table.dataset(), name)
    if (after is None or after.num_indexed_rows == 0) and params.index_type == "IVF_PQ":
        log.warning("%s: IVF_PQ over %d vectors holds 0 rows; building IVF_FLAT instead", name, vectors)
        params = VectorIndexParams("IVF_FLAT", params.num_partitions)
        _create(table, column, name, params.config())
        result.action, result.reason = "rebuilt", "IVF_PQ came out empty: IVF_FLAT instead"
        after = describe_index(table.dataset(), name)
    if after is None or after.num_indexed_rows == 0:
        raise IndexBuildError(
            f"index {name} on {table.uri} holds 0 rows although {column} has {vectors} vectors"
        )
    result.index_type = after.index_type
    result.num_partitions = after.num_partitions
    result.num_sub_vectors = after.num_sub_vectors
    result.indexed_rows, result.unindexed_rows = after.num_indexed_rows, after.num_unindexed_rows
    result.seconds = time.perf_counter() - started
    return result


def update_fts_index(table: ProductTable, column: str, *, rebuild: bool = False) -> IndexResult:
    """Make the full-text (BM25) index on ``column`` current: create it, or fold new rows into it."""
    started = time.perf_counter()
    name = index_name(column)
    ds = table.dataset()
    result = IndexResult(name, column, "fts", "current", index_type="FTS")
    if column not in ds.schema.names:
        result.action, result.reason = "skipped", f"no column {column}"
        return result
    existing = describe_index(ds, name)
    if existing is None or rebuild:
        _create(table, column, name, FTS())
        result.action = "created" if existing is None else "rebuilt"
        result.reason = "rebuild requested" if existing else "new index"
    elif existing.num_unindexed_rows > 0:
        _fold(table, name)
        result.action = "folded"
        result.reason = f"{existing.num_unindexed_rows} rows added to the index"
    after = describe_index(table.dataset(), name)
    if after is None:
        raise IndexBuildError(f"index {name} on {table.uri} was not created")
    result.indexed_rows, result.unindexed_rows = after.num_indexed_rows, after.num_unindexed_rows
    result.seconds = time.perf_counter() - started
    return result


def update_indexes(
    table: ProductTable,
    *,
    vector_columns: Sequence[str] = VECTOR_COLUMNS,
    text_columns: Sequence[str] = TEXT_COLUMNS,
    pq_min_vectors: int = PQ_MIN_VECTORS,
    rebuild: bool = False,
) -> IndexReport:
    """Make every search index current; returns what was done and the indexed/unindexed rows of each."""
    started = time.perf_counter()
    report = IndexReport(rows=table.dataset().count_rows())
    for column in text_columns:
        report.results.append(update_fts_index(table, column, rebuild=rebuild))
    for column in vector_columns:
        report.results.append(
            update_vector_index(table, column, pq_min_vectors=pq_min_vectors, rebuild=rebuild)
        )
    ds = table.dataset()
    report.table_version = ds.version
    report.rows = ds.count_rows()
    report.seconds = time.perf_counter() - started
    return report


def index_status(table: ProductTable) -> dict[str, dict[str, Any]]:
    """Per search index (present or not): type, indexed and unindexed rows. Reads, never writes."""
    if not table.exists():
        return {}
    ds = table.dataset()
    out: dict[str, dict[str, Any]] = {}
    for column in (*TEXT_COLUMNS, *VECTOR_COLUMNS):
        name = index_name(column)
        existing = describe_index(ds, name)
        if existing is None:
            out[name] = {"column": column, "present": False, "indexed_rows": 0, "unindexed_rows": None}
        else:
            out[name] = {
                "column": column,
                "present": True,
                "index_type": existing.index_type,
                "indexed_rows": existing.num_indexed_rows,
                "unindexed_rows": existing.num_unindexed_rows,
                "num_partitions": existing.num_partitions,
                "segments": existing.segments,
            }
    return out
