"""Search the catalogue: words or a photo in, products out. The core of ``fashion-assets search``.

Modes:

- ``vector``: the query's CLIP embedding against ``image_embedding`` (cosine). A text query is embedded
  exactly as the ``caption_embedding`` feature embeds captions, an image exactly as ``image_embedding``
  embeds product photos, with the project's model profile, so queries and rows share one space.
- ``fts``: BM25 full-text over ``description`` and ``caption``.
- ``hybrid`` (default): both lists fused by reciprocal-rank fusion (``1 / (60 + rank)`` summed over lists).

``where`` is an SQL filter on catalogue columns (``gender = 'Women' AND year >= 2015``) applied before the
top-k is taken. Rows outside the indexes (added since the last index update) are scanned flat, so results are
correct whether or not the indexes are current; the table is opened fresh for every search.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from fashion_assets.catalog.source import PRODUCT_SCHEMA

if TYPE_CHECKING:
    from fashion_assets.project import Project

MODES: tuple[str, ...] = ("hybrid", "vector", "fts")
DEFAULT_MODE = "hybrid"
VECTOR_COLUMN = "image_embedding"
TEXT_COLUMNS: tuple[str, ...] = ("description", "caption")
# Catalogue columns returned with every hit (besides id, description, caption and score).
CATALOGUE_COLUMNS: tuple[str, ...] = (
    *(n for n in PRODUCT_SCHEMA.names if n not in ("id", "description", "image_bytes")),
    "color_tags",
)
RRF_K = 60
# IVF partitions probed and the refine factor (k * factor PQ candidates re-ranked by exact distance).
# Measured by bench/search_bench.py: recall@10 >= 0.95 at 100k rows; harmless on IVF_FLAT and flat scans.
DEFAULT_NPROBES = 16
DEFAULT_REFINE_FACTOR = 10
# Each list feeding the fusion is this many times k long (at least MIN_CANDIDATES).
CANDIDATE_FACTOR = 4
MIN_CANDIDATES = 50


class SearchError(ValueError):
    """A search that cannot be run as asked (no query, unknown mode, bad filter, unreadable image)."""


def _embed_text(project: Project, text: str) -> np.ndarray:
    """``text``'s CLIP embedding, computed by the caption_embedding feature itself (same model, same
    tokenizer, L2-normalised)."""
    batch = pa.record_batch({"caption": pa.array([text], pa.string())})
    return _embed_one(project, "caption_embedding", batch, f"the query text {text!r}")


def _embed_image(project: Project, image: str | Path | bytes) -> np.ndarray:
    """The image's CLIP embedding, computed by the image_embedding feature itself (same decoding,
    preprocessing and model as the product photos)."""
    if isinstance(image, bytes):
        data, label = image, "the query image"
    else:
        path = Path(image)
        try:
            data, label = path.read_bytes(), str(path)
        except OSError as exc:
            raise SearchError(f"cannot read the query image {str(path)!r}: {exc}") from exc
    batch = pa.record_batch({"image_bytes": pa.array([data], pa.binary())})
    return _embed_one(project, "image_embedding", batch, label)


def _embed_one(project: Project, feature: str, batch: pa.RecordBatch, label: str) -> np.ndarray:
    """The one vector ``feature`` computes for the one-row ``batch``; SearchError naming ``label`` if none."""
    out = project.features[feature](batch)
    if out.values[0].is_valid:
        return np.asarray(out.values[0].as_py(), dtype=np.float32)
    reason = out.errors[0].reason if out.errors else "no embedding"
    raise SearchError(f"cannot embed {label}: {reason}")


def _columns(schema_names: Sequence[str]) -> list[str]:
    wanted = ["id", *TEXT_COLUMNS, *CATALOGUE_COLUMNS]
    return [c for c in wanted if c in schema_names]


def _run(builder: Any, what: str) -> pa.Table:
    try:
        return builder.to_arrow()
    except Exception as exc:  # a bad --where is the usual cause: say so, without a Rust backtrace
        message = str(exc).splitlines()[0][:500]
        raise SearchError(f"{what} failed: {message}") from exc


def vector_hits(
    table: Any,
    vector: np.ndarray,
    limit: int,
    where: str | None = None,
    *,
    column: str = VECTOR_COLUMN,
    columns: Sequence[str] = (),
    nprobes: int = DEFAULT_NPROBES,
    refine_factor: int = DEFAULT_REFINE_FACTOR,
) -> pa.Table:
    """The ``limit`` rows nearest ``vector`` in ``column`` (cosine), ``where`` applied first; ``_distance``
    is the cosine distance. Rows without a vector are never returned (Lance skips null vectors; an
    ``IS NOT NULL`` filter here would cost a full scan of the column per query)."""
    builder = (
        table.search(vector, vector_column_name=column)
        .distance_type("cosine")
        .nprobes(nprobes)
        .refine_factor(refine_factor)
        .limit(limit)
    )
    if where and where.strip():
        builder = builder.where(where, prefilter=True)
    if columns:
        builder = builder.select([*columns, "_distance"])
    return _run(builder, "vector search")


def text_hits(
    table: Any,
    text: str,
    limit: int,
    where: str | None = None,
    *,
    text_columns: Sequence[str] = TEXT_COLUMNS,
    columns: Sequence[str] = (),
) -> pa.Table:
    """The ``limit`` best BM25 matches of ``text`` over ``text_columns`` (``_score``), ``where`` first."""
    builder = table.search(text, query_type="fts", fts_columns=list(text_columns)).limit(limit)
    if where and where.strip():
        builder = builder.where(where, prefilter=True)
    if columns:
        builder = builder.select([*columns, "_score"])
    return _run(builder, "full-text search")


def rrf(lists: Sequence[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal-rank fusion: each id scores the sum over lists of ``1 / (k + rank)`` (rank from 1)."""
    scores: dict[int, float] = {}
    for ids in lists:
        for rank, pid in enumerate(ids, start=1):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (k + rank)
    return scores


def _records(t: pa.Table, columns: Sequence[str]) -> dict[int, dict[str, Any]]:
    rows = t.select([c for c in columns if c in t.column_names]).to_pylist()
    return {r["id"]: r for r in rows}


def search(
    project: Project,
    query: str | None = None,
    k: int = 10,
    mode: str = DEFAULT_MODE,
    image: str | Path | bytes | None = None,
    where: str | None = None,
    *,
    vector_column: str = VECTOR_COLUMN,
    nprobes: int = DEFAULT_NPROBES,
    refine_factor: int = DEFAULT_REFINE_FACTOR,
) -> list[dict[str, Any]]:
    """The ``k`` best products for ``query`` (words) and/or ``image`` (a path or bytes), best first.

    Each hit is a dict: ``id``, ``description``, ``caption``, ``score`` (cosine similarity in vector mode,
    BM25 in fts mode, the fused RRF score in hybrid mode), ``rank``, the catalogue columns, and
    ``vector_rank`` / ``text_rank`` (the hit's place in each list, None when absent) in hybrid mode.
    An image query searches by the image's embedding; with words as well, hybrid fuses it with full-text
    on the words. Raises SearchError for a search that cannot be run as asked.
    """
    if mode not in MODES:
        raise SearchError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    if k < 1:
        raise SearchError(f"k must be at least 1, got {k}")
    text = (query or "").strip()
    if not text and image is None:
        raise SearchError("nothing to search for: give query words or an image")
    if mode == "fts" and not text:
        raise SearchError("fts mode needs query words")
    if not project.table.exists():
        raise SearchError(f"no table at {project.table.uri}: run `fashion-assets ingest` first")
    use_vector = mode in ("vector", "hybrid")  # by the image when given, else by the words
    use_text = mode in ("fts", "hybrid") and bool(text)

    table = project.table.lancedb_table()  # a fresh handle: sees every commit so far
    columns = _columns(table.schema.names)
    n = k if mode != "hybrid" else max(k * CANDIDATE_FACTOR, MIN_CANDIDATES)

    vector_ids: list[int] = []
    text_ids: list[int] = []
    records: dict[int, dict[str, Any]] = {}
    similarity: dict[int, float] = {}
    bm25: dict[int, float] = {}
    if use_vector:
        vector = _embed_image(project, image) if image is not None else _embed_text(project, text)
        hits = vector_hits(
            table,
            vector,
            n,
            where,
            column=vector_column,
            columns=columns,
            nprobes=nprobes,
            refine_factor=refine_factor,
        )
        vector_ids = hits["id"].to_pylist()
        similarity = dict(zip(vector_ids, (1.0 - d for d in hits["_distance"].to_pylist()), strict=True))
        records.update(_records(hits, columns))
    if use_text:
        present = [c for c in TEXT_COLUMNS if c in table.schema.names]
        hits = text_hits(table, text, n, where, text_columns=present, columns=columns)
        text_ids = hits["id"].to_pylist()
        bm25 = dict(zip(text_ids, hits["_score"].to_pylist(), strict=True))
        for pid, rec in _records(hits, columns).items():
            records.setdefault(pid, rec)

    if use_vector and use_text:
        fused = rrf([vector_ids, text_ids])
        vrank = {pid: i for i, pid in enumerate(vector_ids, start=1)}
        trank = {pid: i for i, pid in enumerate(text_ids, start=1)}
        # ties (same fused score) go to the better single-list rank, then to the full-text list
        big = len(vector_ids) + len(text_ids) + 1
        order = sorted(
            fused,
            key=lambda pid: (-fused[pid], min(vrank.get(pid, big), trank.get(pid, big)), pid not in trank),
        )[:k]
        scores = fused
    else:
        order = (vector_ids or text_ids)[:k]
        scores = similarity if use_vector else bm25
    out = []
    for rank, pid in enumerate(order, start=1):
        rec = records[pid]
        hit: dict[str, Any] = {
            "id": pid,
            "description": rec.get("description"),
            "caption": rec.get("caption"),
            "score": float(scores[pid]),
            "rank": rank,
        }
        if use_vector and use_text:
            hit["vector_rank"] = vrank.get(pid)
            hit["text_rank"] = trank.get(pid)
        hit.update({c: rec.get(c) for c in CATALOGUE_COLUMNS if c in rec})
        out.append(hit)
    return out
